//! `tessera backup`, `tessera restore` and `tessera migrate`.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use serde_json::{json, Value};
use tessera_store_postgres::{PostgresConfig, PostgresStore};

use super::{absolute, StoreArgs};
use crate::config::StoreLocation;

/// What `tessera migrate --check` exits with.
pub mod exit {
    /// The store's schema is this binary's.
    pub const CURRENT: u8 = 0;
    /// The store's schema is older (or absent): `serve` or `migrate`
    /// upgrades it.
    pub const OLDER: u8 = 3;
    /// The store's schema is newer: this binary refuses to serve it.
    pub const NEWER: u8 = 4;
}

const BACKUP_EXAMPLES: &str = "\
Examples:
  tessera backup /backups/tessera-$(date +%F).db --data-dir /var/lib/tessera
  tessera restore /backups/tessera-2026-01-31.db --data-dir /var/lib/tessera-restored

The embedded (SQLite) store only; back up a PostgreSQL store with pg_dump.";

#[derive(Debug, Args)]
#[command(after_help = BACKUP_EXAMPLES)]
pub struct BackupArgs {
    /// The file to write (created 0600).
    file: PathBuf,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
#[command(after_help = BACKUP_EXAMPLES)]
pub struct RestoreArgs {
    /// A file written by `tessera backup`.
    file: PathBuf,
    #[command(flatten)]
    store: StoreArgs,
}

const MIGRATE_EXAMPLES: &str = "\
Examples:
  tessera migrate --check --data-dir /var/lib/tessera   # exit 0: current, 3: older, 4: newer
  tessera migrate --data-dir /var/lib/tessera           # upgrade now rather than at the next start";

#[derive(Debug, Args)]
#[command(after_help = MIGRATE_EXAMPLES)]
pub struct MigrateArgs {
    /// Only report how the store's schema compares with this binary's
    /// (exit 0: current, 3: older, 4: newer, 1: error), changing nothing.
    #[arg(long)]
    check: bool,
    #[command(flatten)]
    store: StoreArgs,
}

const PG_DUMP: &str = "tessera backup copies the embedded (SQLite) store only; \
back up a PostgreSQL store with pg_dump (and restore it with pg_restore or psql)";

pub async fn backup(args: BackupArgs) -> anyhow::Result<Value> {
    let config = args.store.resolve()?;
    let StoreLocation::Sqlite(db) = config.store else {
        bail!(PG_DUMP);
    };
    let file = args.file;
    let (from, to) = (db.clone(), file.clone());
    tokio::task::spawn_blocking(move || tessera_store_sqlite::backup(&from, &to, args.force))
        .await
        .context("the backup panicked")??;
    Ok(json!({ "backup": absolute(&file), "store": absolute(&db) }))
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<Value> {
    let config = args.store.resolve()?;
    let StoreLocation::Sqlite(db) = config.store else {
        bail!(PG_DUMP);
    };
    let dir = db
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    if !args.file.is_file() {
        bail!("no backup file at {}", absolute(&args.file).display());
    }
    prepare_empty_dir(&dir)?;
    let (from, to) = (args.file.clone(), db.clone());
    tokio::task::spawn_blocking(move || tessera_store_sqlite::restore(&from, &to))
        .await
        .context("the restore panicked")??;
    Ok(json!({ "restored": absolute(&args.file), "store": absolute(&db) }))
}

/// Creates `dir` 0700, or accepts it if it exists and is empty (a server
/// running on it would have its files there).
fn prepare_empty_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "the data directory {} is not empty: restore into a new or empty \
                     directory (stop the server, restore next to it, then switch)",
                    absolute(dir).display()
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
            .with_context(|| format!("cannot create the data directory {}", dir.display())),
        Err(e) => {
            Err(e).with_context(|| format!("cannot use {} as the data directory", dir.display()))
        }
    }
}

/// The outcome of `migrate`: what to print and the exit code.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<(Value, u8)> {
    if !args.check {
        let (_, store) = args.store.open().await?;
        store.ping().await?;
        return Ok((json!({ "schema": "current" }), exit::CURRENT));
    }
    let config = args.store.resolve()?;
    let (stored, current) = match &config.store {
        StoreLocation::Sqlite(db) => {
            if !db.exists() {
                bail!("no store at {}", absolute(db).display());
            }
            let db = db.clone();
            let check =
                tokio::task::spawn_blocking(move || tessera_store_sqlite::check_schema(&db))
                    .await
                    .map_err(|e| anyhow!("the check panicked: {e}"))??;
            (check.stored, check.current)
        }
        StoreLocation::Postgres { .. } => PostgresStore::check_schema(PostgresConfig {
            cache_ttl: std::time::Duration::ZERO,
            ..config.store.postgres_config().expect("a PostgreSQL store")
        })
        .await
        .context("cannot check the PostgreSQL store")?,
    };
    let (state, code) = match stored {
        Some(v) if v == current => ("current", exit::CURRENT),
        Some(v) if v > current => ("newer", exit::NEWER),
        _ => ("older", exit::OLDER),
    };
    Ok((
        json!({ "schema": state, "store_version": stored, "binary_version": current }),
        code,
    ))
}
