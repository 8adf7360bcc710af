//! Administration commands on the configured store (`tessera user …`,
//! `role …`, `role-mapping …`, `token …`, `api-key …`, `service-token …`,
//! `backup`, `restore`,
//! `migrate`), safe while a server runs on the same store: they go through
//! the same [`Store`] methods as the HTTP API, and on the embedded store
//! their revoking writes are announced to the serving process (see
//! `tessera_store_sqlite`), whose read cache then drops what they revoked.
//! Every command prints JSON on stdout unless it says otherwise.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::bail;
use clap::Args;
use tessera_store::Store;

use crate::config::{Config, ServeArgs, StoreConnectArgs, StoreLocation};
use crate::server;

pub mod backup;
pub mod roles;
pub mod service_tokens;
pub mod tokens;
pub mod users;

/// The settings a command that only opens the store needs: the same
/// flags, variables and config file as `serve`, without the server's.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreArgs {
    /// TOML configuration file (as for `serve`).
    #[arg(long, env = "TESSERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory of the embedded store [default: ./data].
    #[arg(long, env = "TESSERA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub connect: StoreConnectArgs,
    /// PostgreSQL: the servers' `cluster_cache_ttl`, which every change
    /// that takes something back waits after its commit [default: 250ms].
    #[arg(long, env = "TESSERA_CLUSTER_CACHE_TTL")]
    pub cluster_cache_ttl: Option<String>,
    /// Create the embedded store if it does not exist (only `serve` creates
    /// one otherwise, so that a command run in the wrong folder fails
    /// instead of working on a new, empty store).
    #[arg(long)]
    pub create: bool,
}

impl StoreArgs {
    /// The configuration these settings resolve to (the file's server
    /// settings are checked as `serve` would, except the listen address,
    /// which store commands do not use).
    pub fn resolve(&self) -> anyhow::Result<Config> {
        Config::resolve(ServeArgs {
            config: self.config.clone(),
            // Not used here: never refused here either.
            listen: Some("127.0.0.1:0".into()),
            data_dir: self.data_dir.clone(),
            connect: self.connect.clone(),
            cluster_cache_ttl: self.cluster_cache_ttl.clone(),
            ..server_settings_from_env()?
        })
    }

    /// Resolves the configuration and opens the store as a guest (never
    /// taking it from a running server). An embedded store that does not
    /// exist is refused unless `--create`.
    pub async fn open(&self) -> anyhow::Result<(Config, Arc<dyn Store>)> {
        let config = self.resolve()?;
        if let StoreLocation::Sqlite(path) = &config.store {
            if !self.create && !path.exists() {
                bail!(
                    "no store at {}: give the data directory with --data-dir (or \
                     TESSERA_DATA_DIR, or `data_dir` in --config), or pass --create to create \
                     an empty store there",
                    absolute(path).display()
                );
            }
        }
        let store = server::open_store(&config, false).await?;
        Ok((config, store))
    }
}

/// The server's settings given as `TESSERA_*` variables (such as
/// `TESSERA_REVOKE_ON_USER_CHANGE`), read as `serve` reads them, so that a
/// command acts under the settings of the server beside it.
fn server_settings_from_env() -> anyhow::Result<ServeArgs> {
    use clap::FromArgMatches;
    let command = ServeArgs::augment_args(clap::Command::new("tessera").no_binary_name(true));
    let matches = command
        .try_get_matches_from(std::iter::empty::<String>())
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim()))?;
    Ok(ServeArgs::from_arg_matches(&matches)?)
}

/// `path` made absolute against the working directory, for messages.
pub fn absolute(path: &std::path::Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// The current time from the system clock, as the server reads it.
fn now() -> tessera_domain::Millis {
    tessera_http::clock::Clock::system().now()
}
