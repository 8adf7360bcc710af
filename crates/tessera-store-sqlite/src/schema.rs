//! The schema and connection settings.

use rusqlite::{Connection, OptionalExtension};
use tessera_store::{StoreError, StoreResult};

use crate::cache::Opener;
use crate::{internal, lineage, pairs, privileges, role_mappings, service_tokens, upgrade};

/// When an API key stopped working: the earlier of its invalidation and
/// its expiry. The purge's statement and the index it is found by must
/// spell it alike.
macro_rules! key_stopped {
    () => {
        "MIN(COALESCE(invalidated_at, expires_at), COALESCE(expires_at, invalidated_at))"
    };
}
pub(crate) use key_stopped;

const SCHEMA: &str = concat!(
    "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS one_time_proofs (
    realm      TEXT NOT NULL,
    id         TEXT NOT NULL,
    keep_until INTEGER NOT NULL,
    PRIMARY KEY (realm, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS one_time_proofs_by_age ON one_time_proofs (keep_until);
CREATE TABLE IF NOT EXISTS users (
    username      TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL,
    full_name     TEXT,
    email         TEXT,
    metadata      TEXT NOT NULL,
    enabled       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS roles (
    name       TEXT PRIMARY KEY,
    descriptor TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL,
    secret_hash      BLOB NOT NULL,
    username         TEXT NOT NULL,
    realm            TEXT NOT NULL,
    owner            TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER,
    invalidated_at   INTEGER,
    role_descriptors TEXT NOT NULL,
    metadata         TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS api_keys_by_username ON api_keys (username);
CREATE INDEX IF NOT EXISTS api_keys_by_retention ON api_keys (",
    key_stopped!(),
    ");
CREATE TABLE IF NOT EXISTS oauth_clients (
    client_id                  TEXT PRIMARY KEY,
    secret_hash                BLOB NOT NULL,
    client_name                TEXT,
    grant_types                TEXT NOT NULL,
    scope                      TEXT NOT NULL,
    token_endpoint_auth_method TEXT NOT NULL,
    created_at                 INTEGER NOT NULL
);
"
);

/// The schema version this build writes, recorded as `meta.schema_version`.
/// Files written before versions were recorded carry none: version 0.
///
/// - 1: pairs in `token_pairs`, refresh records in `refreshes`;
/// - 2: a refresh record in the successor's row (`token_pairs.sealed`).
pub const SCHEMA_VERSION: i64 = 2;

/// The version recorded in the file: `None` for a file without Tessera's
/// tables (new), `Some(0)` for one written before versions were recorded.
pub(crate) fn stored_version(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    let has_meta: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
        [],
        |row| row.get(0),
    )?;
    if !has_meta {
        return Ok(None);
    }
    let version: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .optional()?;
    Ok(Some(
        version.and_then(|v| v.parse().ok()).unwrap_or_default(),
    ))
}

/// Refuses a file whose schema is newer than this build's.
pub(crate) fn refuse_newer(stored: Option<i64>) -> StoreResult<()> {
    match stored {
        Some(v) if v > SCHEMA_VERSION => Err(StoreError::Unavailable(format!(
            "the store's schema is version {v}, newer than version {SCHEMA_VERSION} that this \
             tessera ({}) knows: run the newer tessera, or restore a backup taken before the upgrade",
            env!("CARGO_PKG_VERSION")
        ))),
        _ => Ok(()),
    }
}

/// Settings for the one writing connection, and the schema.
/// `synchronous = FULL` in WAL mode makes every commit durable before
/// `COMMIT` returns.
pub(crate) fn prepare_writer(conn: &Connection, opener: Opener) -> StoreResult<()> {
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(internal)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(internal)?;
    // The writer never checkpoints: every checkpoint runs on the
    // checkpointer thread, off the commit path, which also keeps the WAL
    // bounded (see `checkpoint`: it starts over at 32 MiB). A WAL file that
    // grew past 64 MiB is cut back to that size when it starts over.
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .map_err(internal)?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .map_err(internal)?;
    // The page cache stays at SQLite's default (2 MB). A larger one costs
    // more than it saves while the file is under 1 GiB: a B-tree balance
    // renumbers pages through the lock-byte page's number (262,145 with
    // 4 KiB pages), and the truncation at the end of that transaction then
    // walks the whole cache (docs/benchmarks.md, "experiments not kept").
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(internal)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(internal)?;
    // The schema, and the move of pairs stored by earlier versions, in one
    // transaction: a crash leaves the file as it was or fully upgraded.
    // A schema is only changed by a process that no server of an older
    // version runs beside (`Opener::hold_for_upgrade`); a guest holds what
    // it takes for that until the end of the transaction.
    conn.execute_batch("BEGIN IMMEDIATE").map_err(internal)?;
    let mut _unserved = None;
    let upgraded = stored_version(conn)
        .map_err(internal)
        .and_then(|stored| {
            refuse_newer(stored)?;
            if stored != Some(SCHEMA_VERSION) {
                _unserved = opener.hold_for_upgrade(stored)?;
            }
            Ok(())
        })
        .and_then(|()| conn.execute_batch(SCHEMA).map_err(internal))
        .and_then(|()| {
            conn.execute_batch(pairs::SCHEMA)
                .and_then(|()| conn.execute_batch(role_mappings::SCHEMA))
                .and_then(|()| conn.execute_batch(service_tokens::SCHEMA))
                .and_then(|()| conn.execute_batch(privileges::SCHEMA))
                .map_err(internal)
        })
        .and_then(|()| lineage::upgrade(conn))
        .and_then(|()| {
            let (moved, orphaned) = upgrade::move_refresh_records(conn)?;
            if moved + orphaned > 0 {
                tracing::info!(
                    moved,
                    orphaned,
                    "moved refresh records into their successors' rows (an orphaned \
                     one's used refresh token is invalidated)"
                );
            }
            Ok(())
        })
        .and_then(|()| upgrade::migrate_from_single_table(conn))
        .and_then(|moved| {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?1) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [SCHEMA_VERSION.to_string()],
            )
            .map_err(internal)?;
            Ok(moved)
        });
    match upgraded {
        Ok(moved) => {
            conn.execute_batch("COMMIT").map_err(internal)?;
            if moved > 0 {
                tracing::info!(
                    pairs = moved,
                    "moved stored token pairs to the current layout"
                );
            }
            Ok(())
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

pub fn prepare_reader(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))
}

/// The write `Store::ready` makes, committed and synced like any other:
/// one row of `meta`, so that a read-only file or disk fails it.
pub(crate) fn ready_probe(c: &Connection) -> StoreResult<()> {
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    c.prepare_cached(
        "INSERT INTO meta (key, value) VALUES ('ready_probe', ?1)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .and_then(|mut stmt| stmt.execute([at.to_string()]))
    .map(drop)
    .map_err(crate::unavailable)
}

/// Keeps `fresh` as the cluster UUID unless one is kept already; answers
/// the kept one.
pub(crate) fn cluster_uuid(c: &Connection, fresh: &str) -> StoreResult<String> {
    c.prepare_cached("INSERT OR IGNORE INTO meta (key, value) VALUES ('cluster_uuid', ?1)")
        .and_then(|mut stmt| stmt.execute([fresh]))
        .and_then(|_| {
            c.query_row(
                "SELECT value FROM meta WHERE key = 'cluster_uuid'",
                [],
                |r| r.get(0),
            )
        })
        .map_err(crate::unavailable)
}
