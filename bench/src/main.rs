//! `tessera-bench`: the benchmark harness. See `bench/README.md`.
//!
//! `tessera-bench run` starts Tessera (and a bare axum "ceiling" server) as
//! child processes, drives them over HTTP from this process, prints a table
//! and writes a JSON report. Timing lives here, never in `cargo test`.

mod ceiling;
mod client;
mod guessing;
mod measure;
mod peer;
mod pgbench;
mod process;
mod report;
mod run;
mod seed;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// A tiny run of a few seconds that proves the harness works (CI).
    #[arg(long)]
    pub smoke: bool,
    /// Measured seconds per scenario [default: 10, smoke: 1].
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Warm-up seconds before each measured phase [default: 3, smoke: 0.5].
    #[arg(long, value_name = "SECS")]
    pub warmup: Option<f64>,
    /// Concurrent keep-alive connections of the load generator [default: 64, smoke: 8].
    #[arg(long, value_name = "N")]
    pub connections: Option<usize>,
    /// Threads of the load generator's runtime.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub client_threads: usize,
    /// Rounds of the 256-way refresh storm [default: 20, smoke: 3].
    #[arg(long, value_name = "N")]
    pub storm_rounds: Option<usize>,
    /// Where to write the JSON report [default: bench/results/latest.json].
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Also measure at scale: 1,000 vs 1,000,000 stored tokens, memory, disk (ignored with --smoke).
    #[arg(long)]
    pub scale: bool,
    /// Store URL passed to the server instead of the embedded SQLite, e.g. postgres://…
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Also benchmark a peer implementation (`oidc-provider`).
    #[arg(long, value_name = "NAME")]
    pub peer: Option<String>,
    /// Seed the scale measurements through the store's `insert_token` (slow) instead of bulk transactions.
    #[arg(long)]
    pub seed_via_store: bool,
    /// Keep the temporary data directories and server logs, and print where.
    #[arg(long)]
    pub keep_data: bool,
    /// Do not run `cargo build -p tessera` first when launched by `cargo run`.
    #[arg(long)]
    pub no_build: bool,
}

#[derive(Args, Debug, Clone)]
pub struct GuessArgs {
    /// Samples per median [default: 30].
    #[arg(long, default_value_t = 30)]
    pub samples: usize,
    /// Concurrent connections of each guessing flood.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Seconds of each guesses-per-second measurement.
    #[arg(long, default_value_t = 10.0)]
    pub flood_secs: f64,
    /// Do not run `cargo build -p tessera` first when launched by `cargo run`.
    #[arg(long)]
    pub no_build: bool,
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
