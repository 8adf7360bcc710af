use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tessera::admin::backup::{BackupArgs, MigrateArgs, RestoreArgs};
use tessera::admin::roles::{RoleCommand, RoleMappingCommand};
use tessera::admin::service_tokens::ServiceTokenCommand;
use tessera::admin::tokens::{ApiKeyCommand, TokenCommand};
use tessera::admin::users::{Printed, UserCommand};
use tessera::admin::{self};
use tessera::clients::{self, ClientCommand};
use tessera::config::observability::{self, LogFormat};
use tessera::config::{Config, ObservabilityArgs, ServeArgs};
use tessera::{logging, server};

/// mimalloc for the server: fewer cycles per allocation than glibc's
/// malloc and no per-thread arena growth under the blocking pool.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXAMPLES: &str = "\
Examples:
  tessera serve --data-dir /var/lib/tessera          # run the server
  tessera check-config --config tessera.toml         # print the effective configuration
  tessera user reset-password elastic                # a new password for the superuser
  tessera backup /backups/tessera.db                 # a consistent copy while serving

Every command reads the same settings: flags, TESSERA_* environment
variables, then the --config file, then defaults. `tessera COMMAND --help`
lists a command's flags. Documentation: README.md and docs/operations.md.";

/// Tessera: an authentication token server that speaks the Elasticsearch
/// security API (users, roles, tokens, API keys, role mappings, SAML) and
/// OAuth 2.0, on an embedded SQLite store or on PostgreSQL.
#[derive(Parser)]
#[command(version, long_about = None, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    #[command(after_help = tessera::config::SERVE_HELP)]
    Serve(ServeArgs),
    /// Check the configuration and print the effective settings as TOML,
    /// each with its source (secrets hidden), then exit.
    CheckConfig(ServeArgs),
    /// Manage OAuth 2.0 clients directly in the configured store.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage native users directly in the configured store.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage roles directly in the configured store.
    #[command(subcommand)]
    Role(RoleCommand),
    /// Manage role mappings directly in the configured store.
    #[command(subcommand)]
    RoleMapping(RoleMappingCommand),
    /// Invalidate tokens directly in the configured store.
    #[command(subcommand)]
    Token(TokenCommand),
    /// List and invalidate API keys directly in the configured store.
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Create, list and delete service account tokens directly in the
    /// configured store.
    #[command(subcommand)]
    ServiceToken(ServiceTokenCommand),
    /// Write a consistent copy of the embedded store to FILE, also while a
    /// server runs on it.
    Backup(BackupArgs),
    /// Restore a backup into a new or empty data directory.
    Restore(RestoreArgs),
    /// Upgrade the store's schema, or with --check say whether it is
    /// older, current or newer than this binary's.
    Migrate(MigrateArgs),
}

/// The log format before the configuration is resolved, so that every
/// line, start-up included, is in it.
fn early_log_format(command: &Command) -> LogFormat {
    match command {
        Command::Serve(args) | Command::CheckConfig(args) => {
            observability::early_log_format(&args.observability, args.config.as_deref())
        }
        _ => {
            let args = ObservabilityArgs {
                log_format: std::env::var("TESSERA_LOG_FORMAT").ok(),
                ..Default::default()
            };
            observability::early_log_format(&args, None)
        }
    }
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("serialisable")
    );
}

/// Runs the command; returns the exit code for a success.
async fn run(command: Command) -> anyhow::Result<u8> {
    match command {
        Command::Serve(args) => {
            let config = Config::resolve(args)?;
            let running = server::start(config, server::shutdown_signal()).await?;
            running.wait().await?;
            tracing::info!("stopped");
        }
        Command::CheckConfig(args) => {
            // As TOML with each value's source; secrets as `<redacted>`.
            let config = Config::resolve(args)?;
            config.warn_about_issuer();
            // The certificate and key are loaded as `serve` loads them: a
            // missing, unreadable or mismatched pair fails the check.
            if let Some(files) = config.tls.clone() {
                tessera::tls::Tls::load(files)?;
            }
            print!("{}", config.to_toml());
        }
        Command::Client(command) => print_json(&clients::run(command).await?),
        Command::User(command) => match admin::users::run(command).await? {
            Printed::Json(value) => print_json(&value),
            Printed::Text(text) => println!("{text}"),
        },
        Command::Role(command) => print_json(&admin::roles::run_role(command).await?),
        Command::RoleMapping(command) => print_json(&admin::roles::run_mapping(command).await?),
        Command::Token(command) => print_json(&admin::tokens::run_token(command).await?),
        Command::ApiKey(command) => print_json(&admin::tokens::run_api_key(command).await?),
        Command::ServiceToken(command) => print_json(&admin::service_tokens::run(command).await?),
        Command::Backup(args) => print_json(&admin::backup::backup(args).await?),
        Command::Restore(args) => print_json(&admin::backup::restore(args).await?),
        Command::Migrate(args) => {
            let (value, code) = admin::backup::migrate(args).await?;
            print_json(&value);
            return Ok(code);
        }
    }
    Ok(0)
}

/// A user error prints one line, `error: …` with its causes joined, and
/// exits 1; never a backtrace, whatever `RUST_BACKTRACE` says.
#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = early_log_format(&cli.command);
    logging::init(format);
    match run(cli.command).await {
        Ok(code) => ExitCode::from(code),
        // In JSON the error is a log line too.
        Err(e) if format == LogFormat::Json => {
            tracing::error!(error = format!("{e:#}"), "tessera failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
