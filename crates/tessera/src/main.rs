use clap::{Parser, Subcommand};
use tessera::clients::{self, ClientCommand};
use tessera::config::observability::{self, LogFormat};
use tessera::config::{Config, ObservabilityArgs, ServeArgs};
use tessera::{logging, server};

/// mimalloc for the server: fewer cycles per allocation than glibc's
/// malloc and no per-thread arena growth under the blocking pool.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tessera: an authentication token service that speaks the Elasticsearch
/// security API.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Check the configuration and print it (secrets hidden), then exit.
    CheckConfig(ServeArgs),
    /// Manage OAuth 2.0 clients directly in the configured store.
    #[command(subcommand)]
    Client(ClientCommand),
}

/// The log format before the configuration is resolved, so that every
/// line, start-up included, is in it.
fn early_log_format(command: &Command) -> LogFormat {
    match command {
        Command::Serve(args) | Command::CheckConfig(args) => {
            observability::early_log_format(&args.observability, args.config.as_deref())
        }
        Command::Client(_) => {
            let args = ObservabilityArgs {
                log_format: std::env::var("TESSERA_LOG_FORMAT").ok(),
                ..Default::default()
            };
            observability::early_log_format(&args, None)
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let format = early_log_format(&cli.command);
    logging::init(format);
    match run(cli.command).await {
        // In JSON the error is a log line too, and the exit status says it
        // failed; in text anyhow prints it.
        Err(e) if format == LogFormat::Json => {
            tracing::error!(error = format!("{e:#}"), "tessera failed");
            std::process::exit(1);
        }
        result => result,
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let config = Config::resolve(args)?;
            let running = server::start(config, server::shutdown_signal()).await?;
            running.wait().await?;
            tracing::info!("stopped");
        }
        Command::CheckConfig(args) => {
            // Secrets (the bootstrap password) print as `<redacted>`.
            let config = Config::resolve(args)?;
            println!("{config:#?}");
        }
        Command::Client(command) => {
            let out = clients::run(command).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&out).expect("serialisable")
            );
        }
    }
    Ok(())
}
