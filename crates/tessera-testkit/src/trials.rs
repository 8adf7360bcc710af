//! The harness of the test binaries that need PostgreSQL (`harness =
//! false`, on `libtest-mimic`): it lists and runs them as `cargo test`
//! does, with the same flags and output, and decides at run time what a
//! test that cannot reach PostgreSQL is:
//!
//! - a server answered: the test runs;
//! - none, under CI ([`in_ci`]): the test runs and fails, saying why;
//! - none elsewhere: the test is reported as ignored (never as passed),
//!   also when asked to run ignored tests (`--ignored`), then with the
//!   reason.

use std::future::Future;

pub use libtest_mimic::Trial;
use libtest_mimic::{Arguments, Completion, Failed};

use crate::postgres::{in_ci, server};

/// A test that needs the PostgreSQL server; `test` gets its URL.
pub fn needs_postgres(name: impl Into<String>, test: impl FnOnce(&str) + Send + 'static) -> Trial {
    match server() {
        Ok(url) => Trial::test(name, move || {
            test(url);
            Ok(())
        }),
        Err(why) if in_ci() => Trial::test(name, move || {
            Err(Failed::from(format!(
                "tests that need PostgreSQL must run under CI: {why}"
            )))
        }),
        Err(why) => Trial::ignorable_test(name, move || {
            Ok(Completion::ignored_with(format!("no PostgreSQL: {why}")))
        })
        .with_ignored_flag(true),
    }
}

/// [`needs_postgres`] for an async test, run on a multi-threaded runtime
/// of `workers` threads of its own.
pub fn needs_postgres_async<F, Fut>(name: impl Into<String>, workers: usize, test: F) -> Trial
where
    F: FnOnce(String) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    needs_postgres(name, move |url| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .expect("a runtime for the test")
            .block_on(test(url.to_owned()))
    })
}

/// A test that needs nothing outside this process.
pub fn plain(name: impl Into<String>, test: impl FnOnce() + Send + 'static) -> Trial {
    Trial::test(name, move || {
        test();
        Ok(())
    })
}

/// Runs `trials` as the command line says (filters, `--list`,
/// `--ignored`, `--test-threads` …) and exits with the result. When
/// PostgreSQL tests are ignored for want of a server, says why first.
pub fn run(trials: Vec<Trial>) -> ! {
    let args = Arguments::from_args();
    if let Err(why) = server() {
        if !in_ci() && !args.list && trials.iter().any(Trial::has_ignored_flag) {
            eprintln!(
                "SKIPPED (reported as ignored): the tests that need PostgreSQL, because {why}"
            );
        }
    }
    libtest_mimic::run(&args, trials).exit()
}

/// One [`needs_postgres`] trial per function, named after its path:
/// `postgres_trials![module::test, …]`, each `fn(&str)`.
#[macro_export]
macro_rules! postgres_trials {
    ($($($segment:ident)::+),* $(,)?) => {
        vec![$(
            $crate::trials::needs_postgres(stringify!($($segment)::+).replace(' ', ""), $($segment)::+)
        ),*]
    };
}
