//! The schema and connection settings.

use rusqlite::Connection;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
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
CREATE TABLE IF NOT EXISTS tokens (
    id                  TEXT PRIMARY KEY,
    access_hash         BLOB NOT NULL UNIQUE,
    refresh_hash        BLOB UNIQUE,
    family_id           TEXT NOT NULL,
    generation          INTEGER NOT NULL,
    username            TEXT NOT NULL,
    realm               TEXT NOT NULL,
    subject             TEXT NOT NULL,
    client              TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    access_expires_at   INTEGER NOT NULL,
    refresh_expires_at  INTEGER,
    access_invalidated  INTEGER NOT NULL,
    refresh_invalidated INTEGER NOT NULL,
    refreshed_at        INTEGER,
    successor_id        TEXT,
    sealed_successor    BLOB,
    purge_after         INTEGER NOT NULL,
    scope               TEXT
);
CREATE INDEX IF NOT EXISTS tokens_by_username ON tokens (username);
CREATE INDEX IF NOT EXISTS tokens_by_realm ON tokens (realm);
CREATE INDEX IF NOT EXISTS tokens_by_family ON tokens (family_id);
CREATE INDEX IF NOT EXISTS tokens_by_purge ON tokens (purge_after);
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
CREATE TABLE IF NOT EXISTS oauth_clients (
    client_id                  TEXT PRIMARY KEY,
    secret_hash                BLOB NOT NULL,
    client_name                TEXT,
    grant_types                TEXT NOT NULL,
    scope                      TEXT NOT NULL,
    token_endpoint_auth_method TEXT NOT NULL,
    created_at                 INTEGER NOT NULL
);
";

#[cfg(test)]
pub const SCHEMA_FOR_TESTS: &str = SCHEMA;

/// Columns added after a table was first released, for databases created
/// before them: `(table, column, definition)`.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[("tokens", "scope", "TEXT")];

/// Settings for the one writing connection, and the schema.
/// `synchronous = FULL` in WAL mode makes every commit durable before
/// `COMMIT` returns.
pub fn prepare_writer(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Checkpoints run on their own thread (`spawn_checkpointer`), not inside
    // the writer's commits. The writer checkpoints itself only if the WAL
    // passes 8192 pages (32 MiB) anyway, which bounds the WAL when the
    // background thread cannot keep up; the file is then cut back to 64 MiB.
    conn.pragma_update(None, "wal_autocheckpoint", 8192)?;
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(SCHEMA)?;
    for (table, column, definition) in ADDED_COLUMNS {
        let present: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |r| r.get(0),
        )?;
        if !present {
            conn.execute_batch(&format!(
                "ALTER TABLE {table} ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    Ok(())
}

pub fn prepare_reader(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))
}
