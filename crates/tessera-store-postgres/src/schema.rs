//! The schema, as numbered migrations applied once each at connect.
//!
//! One row per token pair in `tokens` (the SQLite backend has its own,
//! more compact layout), with `BYTEA` for hashes and sealed blobs,
//! `BIGINT` for times in milliseconds and `BOOLEAN` for flags. JSON values
//! stay `TEXT` so that they come back byte for byte as written (key order
//! included).

use crate::lineage::oauth_client_pairs;
use deadpool_postgres::Client;
use tessera_store::StoreError;
use tokio_postgres::IsolationLevel;

use crate::db::{begin, Fail};

/// First key of the advisory lock that serialises migrations between nodes
/// ("tess" in ASCII); the second is the schema's name hashed, so nodes of
/// different schemas (tenants, tests) in one database never wait on each
/// other.
const MIGRATION_LOCK: i32 = 0x7465_7373;

/// Migrations in order. A released migration never changes; a schema
/// change is a new entry at the end.
const MIGRATIONS: &[(i64, &[&str])] = &[
    (
        1,
        &[
            "CREATE TABLE IF NOT EXISTS meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        )",
            "CREATE TABLE IF NOT EXISTS users (
            username      TEXT PRIMARY KEY,
            password_hash TEXT NOT NULL,
            roles         TEXT NOT NULL,
            full_name     TEXT,
            email         TEXT,
            metadata      TEXT NOT NULL,
            enabled       BOOLEAN NOT NULL
        )",
            "CREATE TABLE IF NOT EXISTS roles (
            name       TEXT PRIMARY KEY,
            descriptor TEXT NOT NULL
        )",
            "CREATE TABLE IF NOT EXISTS tokens (
            id                  TEXT PRIMARY KEY,
            access_hash         BYTEA NOT NULL UNIQUE,
            refresh_hash        BYTEA UNIQUE,
            family_id           TEXT NOT NULL,
            generation          BIGINT NOT NULL,
            username            TEXT NOT NULL,
            realm               TEXT NOT NULL,
            subject             TEXT NOT NULL,
            client              TEXT NOT NULL,
            created_at          BIGINT NOT NULL,
            access_expires_at   BIGINT NOT NULL,
            refresh_expires_at  BIGINT,
            access_invalidated  BOOLEAN NOT NULL,
            refresh_invalidated BOOLEAN NOT NULL,
            refreshed_at        BIGINT,
            successor_id        TEXT,
            sealed_successor    BYTEA,
            purge_after         BIGINT NOT NULL
        )",
            "CREATE INDEX IF NOT EXISTS tokens_by_username ON tokens (username)",
            "CREATE INDEX IF NOT EXISTS tokens_by_realm ON tokens (realm)",
            "CREATE INDEX IF NOT EXISTS tokens_by_family ON tokens (family_id)",
            "CREATE INDEX IF NOT EXISTS tokens_by_purge ON tokens (purge_after)",
        ],
    ),
    (
        2,
        &[
            "CREATE TABLE IF NOT EXISTS api_keys (
            id               TEXT PRIMARY KEY,
            name             TEXT NOT NULL,
            secret_hash      BYTEA NOT NULL,
            username         TEXT NOT NULL,
            realm            TEXT NOT NULL,
            owner            TEXT NOT NULL,
            created_at       BIGINT NOT NULL,
            expires_at       BIGINT,
            invalidated_at   BIGINT,
            role_descriptors TEXT NOT NULL,
            metadata         TEXT NOT NULL
        )",
            "CREATE INDEX IF NOT EXISTS api_keys_by_username ON api_keys (username)",
        ],
    ),
    (
        3,
        &[
            // The OAuth scope of a pair (JSON array; NULL is unrestricted).
            "ALTER TABLE tokens ADD COLUMN IF NOT EXISTS scope TEXT",
            "CREATE TABLE IF NOT EXISTS oauth_clients (
            client_id                  TEXT PRIMARY KEY,
            secret_hash                BYTEA NOT NULL,
            client_name                TEXT,
            grant_types                TEXT NOT NULL,
            scope                      TEXT NOT NULL,
            token_endpoint_auth_method TEXT NOT NULL,
            created_at                 BIGINT NOT NULL
        )",
        ],
    ),
    (
        4,
        &[
            "ALTER TABLE tokens ADD COLUMN IF NOT EXISTS not_after BIGINT",
            "ALTER TABLE tokens ADD COLUMN IF NOT EXISTS parent_family TEXT",
            "ALTER TABLE tokens ADD COLUMN IF NOT EXISTS api_key_id TEXT",
            "ALTER TABLE tokens ADD COLUMN IF NOT EXISTS client_username TEXT",
            "UPDATE tokens SET api_key_id = COALESCE(client::jsonb ->> 'api_key_id',
                                                    subject::jsonb -> 'api_key' ->> 'id')
              WHERE client LIKE '%\"api_key_id\"%' OR subject LIKE '%\"api_key\"%'",
            "UPDATE tokens SET client_username = client::jsonb ->> 'username'
              WHERE client::jsonb ->> 'username' <> username",
            "CREATE INDEX IF NOT EXISTS tokens_by_parent ON tokens (parent_family)
              WHERE parent_family IS NOT NULL",
            "CREATE INDEX IF NOT EXISTS tokens_by_api_key ON tokens (api_key_id)
              WHERE api_key_id IS NOT NULL",
            "CREATE INDEX IF NOT EXISTS tokens_by_client_username ON tokens (client_username)
              WHERE client_username IS NOT NULL",
        ],
    ),
    (
        5,
        &[
            "CREATE TABLE IF NOT EXISTS one_time_proofs (
            realm      TEXT NOT NULL,
            id         TEXT NOT NULL,
            keep_until BIGINT NOT NULL,
            PRIMARY KEY (realm, id)
        )",
            "CREATE INDEX IF NOT EXISTS one_time_proofs_by_age ON one_time_proofs (keep_until)",
            "ALTER TABLE tokens ADD COLUMN IF NOT EXISTS token_metadata TEXT",
            // SAML single logout finds a NameID's pairs through this
            // index; only rows that carry a NameID are in it.
            "CREATE INDEX IF NOT EXISTS tokens_by_saml_nameid
               ON tokens (realm, (subject::jsonb #>> '{metadata,saml_nameid}'))
               WHERE subject LIKE '%\"saml_nameid\"%'",
        ],
    ),
    (
        6,
        &[
            // Role mappings of external realms (`role_mappings.rs`).
            "CREATE TABLE IF NOT EXISTS role_mappings (
            name    TEXT PRIMARY KEY,
            mapping TEXT NOT NULL
        )",
        ],
    ),
    (
        7,
        &[
            // Token strings start with a time-ordered locator, so the
            // btree entries of concurrently minted tokens share their
            // rightmost leaf page, and every serializable refresh that
            // looks its token up there conflicts with every other one that
            // inserts its successor there. Hash indexes spread the entries
            // (and the predicate locks) over buckets; a 256-bit random
            // token needs no uniqueness constraint.
            "CREATE INDEX IF NOT EXISTS tokens_by_access_hash ON tokens USING hash (access_hash)",
            "CREATE INDEX IF NOT EXISTS tokens_by_refresh_hash ON tokens USING hash (refresh_hash)",
            "ALTER TABLE tokens DROP CONSTRAINT IF EXISTS tokens_access_hash_key",
            "ALTER TABLE tokens DROP CONSTRAINT IF EXISTS tokens_refresh_hash_key",
        ],
    ),
    (
        8,
        &[
            // Service tokens (`service_tokens.rs`).
            "CREATE TABLE IF NOT EXISTS service_tokens (
            account     TEXT NOT NULL,
            name        TEXT NOT NULL,
            secret_hash BYTEA NOT NULL,
            created_at  BIGINT NOT NULL,
            PRIMARY KEY (account, name)
        )",
        ],
    ),
    (
        9,
        &[
            // Application privileges (`privileges.rs`).
            "CREATE TABLE IF NOT EXISTS application_privileges (
            application TEXT NOT NULL,
            name        TEXT NOT NULL,
            privilege   TEXT NOT NULL,
            PRIMARY KEY (application, name)
        )",
        ],
    ),
    (
        10,
        &[
            // The revocation epoch (`epoch.rs`): every write that takes
            // something back adds one to a row of it, chosen at random so
            // that concurrent writers seldom wait on the same row.
            "CREATE TABLE IF NOT EXISTS cache_epoch (
            shard INT PRIMARY KEY,
            n     BIGINT NOT NULL
        )",
            "INSERT INTO cache_epoch (shard, n)
             SELECT s, 0 FROM generate_series(0, 15) AS s
             ON CONFLICT (shard) DO NOTHING",
        ],
    ),
    (
        11,
        &[
            // Deleting an OAuth client revokes the pairs issued to it
            // (`lineage::revoke_client`), found by the `client` column,
            // which no index covered: a scan of every token, in a
            // serializable transaction. Only pairs issued to an OAuth
            // client are indexed (`oauth_client_pairs!`, which
            // `CLIENT_FAMILIES` repeats so that the planner may use it).
            concat!(
                "CREATE INDEX IF NOT EXISTS tokens_by_oauth_client ON tokens (client) WHERE ",
                oauth_client_pairs!()
            ),
        ],
    ),
    (
        12,
        &[
            // The purge finds API keys past their retention by when they
            // stopped working, which no index covered: each batch read
            // every key. The expression is the purge's own.
            "CREATE INDEX IF NOT EXISTS api_keys_by_retention
               ON api_keys ((LEAST(invalidated_at, expires_at)))",
        ],
    ),
];

/// Whether the server is CockroachDB, whose releases before transaction
/// level advisory locks either lack `pg_advisory_xact_lock` or accept it
/// as a no-op.
pub(crate) async fn is_cockroach(client: &Client) -> Result<bool, Fail> {
    let row = client.query_one("SELECT version()", &[]).await?;
    let version: String = row.try_get(0)?;
    Ok(version.contains("CockroachDB"))
}

/// One attempt at bringing the schema up to date, in one transaction.
///
/// Every node runs this at start. The advisory lock makes concurrent
/// starters queue: the first applies what is missing and commits, the
/// others then find it applied. Without the lock (CockroachDB), concurrent
/// starters conflict on `tessera_schema_migrations` and the losers are
/// retried by the caller; every statement is idempotent either way.
pub(crate) async fn migrate(client: &mut Client, take_lock: bool) -> Result<Vec<i64>, Fail> {
    let tx = begin(client, IsolationLevel::ReadCommitted).await?;
    if take_lock {
        tx.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))",
            &[&MIGRATION_LOCK],
        )
        .await?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS tessera_schema_migrations (version INT PRIMARY KEY)",
    )
    .await?;
    let applied: Vec<i64> = tx
        .query(
            "SELECT CAST(version AS BIGINT) FROM tessera_schema_migrations",
            &[],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    refuse_newer(applied.iter().max().copied())?;
    let mut done = Vec::new();
    for (version, statements) in MIGRATIONS {
        if applied.contains(version) {
            continue;
        }
        for statement in *statements {
            tx.batch_execute(statement).await?;
        }
        // The version is a constant of this file, so it is written as a
        // literal: `INT` is four bytes on PostgreSQL and eight on CockroachDB.
        tx.batch_execute(&format!(
            "INSERT INTO tessera_schema_migrations (version) VALUES ({version}) ON CONFLICT (version) DO NOTHING"
        ))
        .await?;
        done.push(*version);
    }
    if take_lock {
        // PostgreSQL itself (CockroachDB has no heap pages to fill).
        leave_room_on_token_pages(&tx).await?;
    }
    tx.commit().await?;
    Ok(done)
}

/// How full `tokens` fills its heap pages, unless its owner chose.
pub const TOKENS_FILLFACTOR: u8 = 65;

/// Sets `tokens` to fill its pages to [`TOKENS_FILLFACTOR`] % when it has
/// no fill factor of its own, and keeps one an operator set.
///
/// Marking a pair refreshed lengthens its row (the sealed successor) and
/// changes no indexed column: with room left on its page, PostgreSQL
/// rewrites the row there without an index entry (a heap-only update).
/// Pages filled to the brim made about half of the marks move their row
/// and add an entry to every index. Only pages written from then on keep
/// the room. It is a storage setting, not part of the schema's version,
/// so a binary that predates it still serves the store.
async fn leave_room_on_token_pages(tx: &tokio_postgres::Transaction<'_>) -> Result<(), Fail> {
    let row = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM unnest(reloptions) AS option
                             WHERE option LIKE 'fillfactor=%'),
                    pg_has_role(relowner, 'MEMBER')
               FROM pg_class WHERE oid = 'tokens'::regclass",
            &[],
        )
        .await?;
    let (chosen, owner): (bool, bool) = (row.try_get(0)?, row.try_get(1)?);
    if chosen {
        return Ok(());
    }
    if !owner {
        // Only the table's owner may change it; a node running as
        // another role serves the store as it is.
        tracing::warn!(
            "the tokens table fills its pages full and this role does not own it: refreshes \
             would be faster after `ALTER TABLE tokens SET (fillfactor = {TOKENS_FILLFACTOR})`"
        );
        return Ok(());
    }
    tx.batch_execute(&format!(
        "ALTER TABLE tokens SET (fillfactor = {TOKENS_FILLFACTOR})"
    ))
    .await?;
    Ok(())
}

/// The newest schema version this build applies.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Refuses a database whose schema is newer than this build's.
pub(crate) fn refuse_newer(stored: Option<i64>) -> Result<(), Fail> {
    match stored {
        Some(v) if v > SCHEMA_VERSION => Err(StoreError::Unavailable(format!(
            "the database schema is version {v}, newer than version {SCHEMA_VERSION} that this \
             tessera ({}) knows: run the newer tessera, or restore a dump taken before the upgrade",
            env!("CARGO_PKG_VERSION")
        ))
        .into()),
        _ => Ok(()),
    }
}

/// The newest version recorded in the database (`None`: no Tessera schema
/// yet). Changes nothing.
pub(crate) async fn stored_version(client: &mut Client) -> Result<Option<i64>, Fail> {
    let row = client
        .query_one(
            "SELECT to_regclass('tessera_schema_migrations') IS NOT NULL",
            &[],
        )
        .await?;
    let exists: bool = row.try_get(0)?;
    if !exists {
        return Ok(None);
    }
    let row = client
        .query_one(
            "SELECT CAST(MAX(version) AS BIGINT) FROM tessera_schema_migrations",
            &[],
        )
        .await?;
    Ok(row.try_get::<_, Option<i64>>(0)?.or(Some(0)))
}
