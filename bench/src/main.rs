//! `tessera-bench`: the benchmark harness. See `bench/README.md`.
//!
//! `tessera-bench run` starts Tessera (and a bare axum "ceiling" server) as
//! child processes, drives them over HTTP from this process, prints a table
//! and writes a JSON report. Timing lives here, never in `cargo test`.

mod args;
mod ceiling;
mod client;
mod guessing;
mod measure;
mod peer;
mod pgbench;
mod process;
mod profile;
mod report;
mod run;
mod seed;

use std::net::SocketAddr;

use clap::{Parser, Subcommand};

use crate::args::{GuessArgs, RunArgs};

/// mimalloc for the load generator and the ceiling, so the comparison with Tessera is like for like: fewer cycles per allocation than glibc's
/// malloc and no per-thread arena growth under the blocking pool.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    version,
    about = "Benchmarks a real Tessera process over HTTP and checks the performance targets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the benchmark (see bench/README.md).
    Run(RunArgs),
    /// Measure password guessing and user enumeration by timing (see bench/README.md).
    Guessing(GuessArgs),
    /// Serve a fixed JSON body on every path: the ceiling the benchmark compares against.
    #[command(hide = true)]
    Ceiling {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value_t = 300)]
        body_bytes: usize,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ceiling { listen, body_bytes } => {
            ceiling::serve(listen, body_bytes).map(|()| true)
        }
        Command::Run(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.client_threads.max(1))
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(run::run(args))),
        Command::Guessing(args) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(guessing::run(args))),
    };
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tessera-bench: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
