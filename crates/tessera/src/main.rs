use clap::{Parser, Subcommand};
use tessera::clients::{self, ClientCommand};
use tessera::config::{Config, ServeArgs};
use tessera::server;

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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: logs that go to a file or a journal stay
    // plain text (and formatting every request's span costs less).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
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
