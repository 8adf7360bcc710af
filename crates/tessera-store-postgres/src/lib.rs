//! The PostgreSQL backend of the Tessera store.
//!
//! Every node of a Tessera cluster can point at the same database. Writes
//! answer only after `COMMIT` has returned (with the server's default
//! `synchronous_commit = on`, that is after the commit record is flushed),
//! and every later read on any connection of any node sees them.
//!
//! # Concurrency
//!
//! [`Store::refresh`] and [`Store::invalidate_matching`] run as
//! `SERIALIZABLE` transactions. A refresh locks the presented record with
//! `SELECT ... FOR UPDATE`, runs the domain's decision on it and, when it
//! rotates, inserts the successor and marks the old record in the same
//! transaction. Racing refreshes of one token queue on the row lock; the
//! ones that wait are aborted with a serialization failure once the first
//! commits, run again, read the refreshed record and replay its successor.
//!
//! The reason for `SERIALIZABLE` rather than row locks alone is the race
//! between a refresh and an invalidation by user or realm. Under `READ
//! COMMITTED`, an `UPDATE ... WHERE username = $1` that waits on the row a
//! refresh holds re-checks only the rows its snapshot already had, so the
//! successor that refresh inserts is never seen and stays valid. With both
//! transactions serializable the outcome must equal one of the two serial
//! orders: refresh first (the invalidation then sees and invalidates the
//! successor) or invalidation first (the refresh then finds the token
//! invalidated and refuses). PostgreSQL enforces that by aborting one of
//! the two with SQLSTATE 40001, and CockroachDB and YugabyteDB provide the
//! same level.
//!
//! Every operation runs in a retry loop: serialization failures (40001) and
//! deadlocks (40P01) roll the whole transaction back, so it is run again
//! from the start, up to ten times with jittered exponential backoff. Each
//! attempt re-reads what it decides on, so a retried refresh can never
//! rotate twice. [`Store::bootstrap_user`] is serializable too, so nodes
//! that start together create exactly one user.
//!
//! # Failures
//!
//! A database that cannot be reached, refuses connections, does not hand
//! out a pooled connection within `acquire_timeout`, or does not answer
//! within the limits (`statement_timeout` on the server, twice that on the
//! client per attempt) yields [`StoreError::Unavailable`]. The pool drops
//! dead connections and opens new ones, so the same store recovers by
//! itself once the database is back.
//!
//! # Portability
//!
//! The SQL keeps to what CockroachDB and YugabyteDB also accept: no stored
//! functions, no LISTEN/NOTIFY; `INSERT ... ON CONFLICT` and
//! `SELECT ... FOR UPDATE` are used. The one exception is the migration
//! lock, `pg_advisory_xact_lock`, taken so that nodes starting together
//! apply the schema once. On CockroachDB (detected from `version()`) it is
//! skipped, since older releases lack it or accept it as a no-op; there the
//! migration transaction relies on its own conflict detection and the
//! retry loop, and every migration statement is idempotent.

#[macro_use]
mod db;
mod lineage;
mod schema;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Client, GenericClient};
use tessera_domain::oauth::OAuthClientRecord;
use tessera_domain::refresh::{self, Decision, Denied, RefreshError};
use tessera_domain::user::UserRecord;
use tessera_domain::{Millis, TokenHash, TokenRecord};
use tessera_store::codec::{
    self, ApiKeyRow, OAuthClientRow, TokenRow, UserRow, API_KEY_COLUMNS, OAUTH_CLIENT_COLUMNS,
    TOKEN_COLUMNS, USER_COLUMNS,
};
use tessera_store::{
    ApiKeyFilter, ApiKeyInvalidation, ApiKeyRecord, InvalidateCounts, InvalidateOne, Lineage,
    RefreshGranted, RefreshOutcome, RefreshRequest, RoleDescriptor, Store, StoreError, StoreResult,
    UserUpsert,
};
use tokio_postgres::{IsolationLevel, Row};

use db::{begin, Db, Fail, Repeat};

/// How to reach the database and how long to wait for it.
#[derive(Clone)]
pub struct PostgresConfig {
    /// A `postgres://user:password@host:port/database` URL. Its query may
    /// carry driver settings, e.g. `?options=-c%20search_path%3Dtessera`.
    pub url: String,
    /// The most connections this store opens.
    pub pool_size: usize,
    /// Limit on opening one connection (TCP connect and handshake).
    pub connect_timeout: Duration,
    /// The server-side limit on one statement, set on every connection.
    pub statement_timeout: Duration,
    /// Limit on waiting for a free pooled connection.
    pub acquire_timeout: Duration,
}

impl PostgresConfig {
    /// The defaults: 16 connections and 5 s for each timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl fmt::Debug for PostgresConfig {
    /// Leaves the URL out: it may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &"<redacted>")
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

pub struct PostgresStore {
    db: Db,
    /// Set once this store knows the `tokens_issued` marker is in `meta`
    /// (it is never removed), so later inserts skip writing it.
    issued_marked: AtomicBool,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Opens a pool, checks that the database answers and applies any
    /// missing migrations.
    pub async fn connect(config: PostgresConfig) -> StoreResult<PostgresStore> {
        let db = Db::new(&config)?;
        let cockroach = db
            .run(
                "connect",
                Repeat::Safe,
                attempt!(|c| schema::is_cockroach(c).await),
            )
            .await?;
        let applied = db
            .run(
                "migrate",
                Repeat::Safe,
                attempt!(|c| schema::migrate(c, !cockroach).await),
            )
            .await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "applied schema migrations");
        }
        Ok(Self {
            db,
            issued_marked: AtomicBool::new(false),
        })
    }
}

impl PostgresStore {
    /// Runs `sql` (`$1` the username, `$2` the new value if any) and, when
    /// `revoke` and the user existed, revokes the user's tokens in the same
    /// serializable transaction. Returns whether the user existed.
    async fn change_user(
        &self,
        op: &'static str,
        sql: &'static str,
        username: &str,
        value: Option<&(dyn tokio_postgres::types::ToSql + Sync)>,
        revoke: bool,
    ) -> StoreResult<bool> {
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&username];
        params.extend(value);
        let params = &params;
        self.db
            .run(
                op,
                Repeat::Unsafe,
                attempt!(|c| {
                    let level = if revoke {
                        IsolationLevel::Serializable
                    } else {
                        IsolationLevel::ReadCommitted
                    };
                    let tx = begin(c, level).await?;
                    let stmt = tx.prepare_cached(sql).await?;
                    let existed = tx.execute(&stmt, params).await? > 0;
                    if existed && revoke {
                        lineage::revoke_user(&tx, username).await?;
                    }
                    tx.commit().await?;
                    Ok(existed)
                }),
            )
            .await
    }
}

static TOKEN_BY_ACCESS: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE access_hash = $1"));
static TOKEN_BY_REFRESH: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE refresh_hash = $1"));
static TOKEN_BY_ID: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE id = $1"));
static LOCK_TOKEN_BY_REFRESH: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE refresh_hash = $1 FOR UPDATE")
});
static INSERT_TOKEN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO tokens ({TOKEN_COLUMNS}, parent_family, api_key_id, client_username)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                 $19, $20, $21, $22, $23)"
    )
});
static USER_BY_NAME: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1"));
static ALL_USERS: LazyLock<String> = LazyLock::new(|| format!("SELECT {USER_COLUMNS} FROM users"));

const MARK_ISSUED: &str =
    "INSERT INTO meta (key, value) VALUES ('tokens_issued', '1') ON CONFLICT (key) DO NOTHING";

/// How often an upsert goes round when rows appear and vanish under it.
const UPSERT_ROUNDS: usize = 5;

fn token_row(row: &Row) -> Result<TokenRow, tokio_postgres::Error> {
    Ok(TokenRow {
        id: row.try_get(0)?,
        access_hash: row.try_get(1)?,
        refresh_hash: row.try_get(2)?,
        family_id: row.try_get(3)?,
        generation: row.try_get(4)?,
        username: row.try_get(5)?,
        realm: row.try_get(6)?,
        subject: row.try_get(7)?,
        client: row.try_get(8)?,
        created_at: row.try_get(9)?,
        access_expires_at: row.try_get(10)?,
        refresh_expires_at: row.try_get(11)?,
        access_invalidated: row.try_get(12)?,
        refresh_invalidated: row.try_get(13)?,
        refreshed_at: row.try_get(14)?,
        successor_id: row.try_get(15)?,
        sealed_successor: row.try_get(16)?,
        purge_after: row.try_get(17)?,
        scope: row.try_get(18)?,
        not_after: row.try_get(19)?,
    })
}

fn token_record(row: Option<Row>) -> Result<Option<TokenRecord>, Fail> {
    match row {
        None => Ok(None),
        Some(row) => Ok(Some(token_row(&row)?.into_record()?)),
    }
}

fn user_row(row: &Row) -> Result<UserRow, tokio_postgres::Error> {
    Ok(UserRow {
        username: row.try_get(0)?,
        password_hash: row.try_get(1)?,
        roles: row.try_get(2)?,
        full_name: row.try_get(3)?,
        email: row.try_get(4)?,
        metadata: row.try_get(5)?,
        enabled: row.try_get(6)?,
    })
}

fn user_record(row: &Row) -> Result<UserRecord, Fail> {
    Ok(user_row(row)?.into_record()?)
}

/// Stores `record`, as a child of the family `parent` if given.
async fn insert_token_row(
    c: &impl GenericClient,
    record: &TokenRecord,
    parent: Option<&str>,
) -> Result<(), Fail> {
    let r = TokenRow::from_record(record)?;
    let (api_key_id, client_username) = lineage::source_columns(record);
    let stmt = c.prepare_cached(&INSERT_TOKEN).await?;
    c.execute(
        &stmt,
        &[
            &r.id,
            &r.access_hash,
            &r.refresh_hash,
            &r.family_id,
            &r.generation,
            &r.username,
            &r.realm,
            &r.subject,
            &r.client,
            &r.created_at,
            &r.access_expires_at,
            &r.refresh_expires_at,
            &r.access_invalidated,
            &r.refresh_invalidated,
            &r.refreshed_at,
            &r.successor_id,
            &r.sealed_successor,
            &r.purge_after,
            &r.scope,
            &r.not_after,
            &parent,
            &api_key_id,
            &client_username,
        ],
    )
    .await?;
    Ok(())
}

/// One attempt at a refresh, in a serializable transaction (see the crate
/// docs). Rejections and replays commit too: under `SERIALIZABLE`, what a
/// transaction read is only known to be consistent once it has committed.
async fn refresh_attempt(
    client: &mut Client,
    req: &RefreshRequest,
) -> Result<RefreshOutcome, Fail> {
    let hash = req.refresh_token.hash();
    let tx = begin(client, IsolationLevel::Serializable).await?;
    let stmt = tx.prepare_cached(&LOCK_TOKEN_BY_REFRESH).await?;
    let Some(record) = token_record(tx.query_opt(&stmt, &[&hash.0.as_slice()]).await?)? else {
        tx.commit().await?;
        return Ok(Err(Denied::reject(RefreshError::NotFound)));
    };
    let outcome = match refresh::decide(
        &record,
        &req.refresh_token,
        &req.caller,
        req.now,
        req.policy,
    ) {
        Decision::Deny(denied) => Err(denied),
        Decision::Replay { successor_id, pair } => {
            let stmt = tx.prepare_cached(&TOKEN_BY_ID).await?;
            let successor = token_record(tx.query_opt(&stmt, &[&successor_id]).await?)?;
            refresh::judge_replay(successor.as_ref(), req.now, req.policy).map(|()| {
                RefreshGranted {
                    pair,
                    subject: record.subject.clone(),
                    scope: record.scope.clone(),
                    not_after: record.not_after,
                    rotated: false,
                }
            })
        }
        Decision::Rotate {
            successor,
            refreshed,
            pair,
        } => {
            insert_token_row(&tx, &successor, None).await?;
            let stmt = tx
                .prepare_cached(
                    "UPDATE tokens SET refreshed_at = $2, successor_id = $3, sealed_successor = $4
                     WHERE id = $1 AND refreshed_at IS NULL",
                )
                .await?;
            let updated = tx
                .execute(
                    &stmt,
                    &[
                        &record.id,
                        &refreshed.at,
                        &refreshed.successor_id,
                        &refreshed.sealed_successor,
                    ],
                )
                .await?;
            if updated != 1 {
                // The row is locked by this transaction, so this cannot
                // happen unless something is badly wrong.
                return Err(StoreError::Internal(
                    "the locked token changed during its refresh".into(),
                )
                .into());
            }
            Ok(RefreshGranted {
                pair,
                subject: record.subject,
                scope: record.scope,
                not_after: record.not_after,
                rotated: true,
            })
        }
    };
    if let Err(denied) = &outcome {
        if denied.revoke_family {
            revoke_family(&tx, &record.family_id).await?;
        }
    }
    tx.commit().await?;
    Ok(outcome)
}

/// Invalidates both halves of every pair in a family, and of every family
/// derived from it.
async fn revoke_family(c: &impl GenericClient, family_id: &str) -> Result<(), Fail> {
    lineage::revoke_tree(c, &[family_id.to_owned()]).await
}

/// One attempt at invalidating the pair holding a token and the rest of its
/// family. Serializable, like a refresh, so that the two are linearizable:
/// a successor minted by a refresh racing this call is either seen and
/// invalidated here, or the refresh is retried and finds its token dead.
/// The answer reflects the named token's own flag before the call; the flag
/// only goes from false to true, so racing invalidations agree on who
/// changed it.
async fn invalidate_one(
    client: &mut Client,
    column: &str,
    flag: &str,
    hash: &TokenHash,
) -> Result<InvalidateOne, Fail> {
    let key = hash.0.as_slice();
    let tx = begin(client, IsolationLevel::Serializable).await?;
    let stmt = tx
        .prepare_cached(&format!(
            "SELECT {flag}, family_id FROM tokens WHERE {column} = $1 FOR UPDATE"
        ))
        .await?;
    let Some(row) = tx.query_opt(&stmt, &[&key]).await? else {
        tx.commit().await?;
        return Ok(InvalidateOne::NotFound);
    };
    let already: bool = row.try_get(0)?;
    let family_id: String = row.try_get(1)?;
    revoke_family(&tx, &family_id).await?;
    tx.commit().await?;
    Ok(if already {
        InvalidateOne::AlreadyInvalidated
    } else {
        InvalidateOne::Invalidated
    })
}

/// One attempt at invalidating every active pair of a user and/or realm,
/// in a serializable transaction (see the crate docs for why).
async fn invalidate_matching_attempt(
    client: &mut Client,
    username: Option<&str>,
    realm: Option<&str>,
    now: Millis,
) -> Result<InvalidateCounts, Fail> {
    let mut filters = Vec::new();
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = vec![&now];
    if let Some(u) = &username {
        params.push(u);
        filters.push(format!("username = ${}", params.len()));
    }
    if let Some(r) = &realm {
        params.push(r);
        filters.push(format!("realm = ${}", params.len()));
    }
    if filters.is_empty() {
        return Err(
            StoreError::Internal("invalidate_matching needs a username or a realm".into()).into(),
        );
    }
    let select = format!(
        "SELECT id, refresh_hash IS NOT NULL, refresh_invalidated, access_invalidated, family_id
           FROM tokens
         WHERE {} AND ((NOT access_invalidated AND access_expires_at > $1)
                    OR (refresh_hash IS NOT NULL AND NOT refresh_invalidated AND refresh_expires_at > $1))
         ORDER BY id FOR UPDATE",
        filters.join(" AND ")
    );
    let tx = begin(client, IsolationLevel::Serializable).await?;
    let stmt = tx.prepare_cached(&select).await?;
    let rows = tx.query(&stmt, &params).await?;
    let mut counts = InvalidateCounts::default();
    let mut ids = Vec::with_capacity(rows.len());
    let mut families = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.try_get(0)?;
        codec::count_invalidation(
            &mut counts,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
        );
        ids.push(id);
        families.push(row.try_get::<_, String>(4)?);
    }
    if !ids.is_empty() {
        let stmt = tx
            .prepare_cached(
                "UPDATE tokens SET access_invalidated = TRUE, refresh_invalidated = (refresh_hash IS NOT NULL)
                 WHERE id = ANY($1)",
            )
            .await?;
        tx.execute(&stmt, &[&ids]).await?;
        // Whatever those pairs minted dies with them.
        families.sort();
        families.dedup();
        lineage::revoke_children(&tx, &families).await?;
    }
    tx.commit().await?;
    Ok(counts)
}

/// Updates an existing user or, failing that, creates it; one statement
/// each, so no transaction is needed. Returns whether it created the user.
async fn upsert_user(client: &impl GenericClient, user: &UserUpsert) -> Result<bool, Fail> {
    let roles = codec::to_json(&user.roles)?;
    let metadata = codec::to_json(&user.metadata)?;
    let update = client
        .prepare_cached(
            "UPDATE users SET password_hash = COALESCE($2, password_hash), roles = $3, full_name = $4,
               email = $5, metadata = $6, enabled = $7
             WHERE username = $1",
        )
        .await?;
    let insert = client
        .prepare_cached(
            "INSERT INTO users (username, password_hash, roles, full_name, email, metadata, enabled)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (username) DO NOTHING",
        )
        .await?;
    for _ in 0..UPSERT_ROUNDS {
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
            &user.username,
            &user.password_hash,
            &roles,
            &user.full_name,
            &user.email,
            &metadata,
            &user.enabled,
        ];
        if client.execute(&update, &params).await? > 0 {
            return Ok(false);
        }
        if user.password_hash.is_none() {
            return Err(StoreError::PasswordRequired.into());
        }
        if client.execute(&insert, &params).await? > 0 {
            return Ok(true);
        }
        // Created by someone else between the two statements: update it.
    }
    Err(StoreError::Internal(format!(
        "user {} kept changing during an update",
        user.username
    ))
    .into())
}

/// One attempt at creating the first user, serializable so that nodes
/// racing to bootstrap create exactly one.
async fn bootstrap_attempt(client: &mut Client, user: &UserUpsert) -> Result<bool, Fail> {
    let tx = begin(client, IsolationLevel::Serializable).await?;
    let any = tx.query_opt("SELECT 1 FROM users LIMIT 1", &[]).await?;
    if any.is_some() {
        tx.commit().await?;
        return Ok(false);
    }
    let Some(password_hash) = &user.password_hash else {
        return Err(StoreError::PasswordRequired.into());
    };
    let inserted = tx
        .execute(
            "INSERT INTO users (username, password_hash, roles, full_name, email, metadata, enabled)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (username) DO NOTHING",
            &[
                &user.username,
                password_hash,
                &codec::to_json(&user.roles)?,
                &user.full_name,
                &user.email,
                &codec::to_json(&user.metadata)?,
                &user.enabled,
            ],
        )
        .await?;
    tx.commit().await?;
    Ok(inserted > 0)
}

async fn upsert_role(client: &Client, name: &str, body: &str) -> Result<bool, Fail> {
    let update = client
        .prepare_cached("UPDATE roles SET descriptor = $2 WHERE name = $1")
        .await?;
    let insert = client
        .prepare_cached(
            "INSERT INTO roles (name, descriptor) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .await?;
    for _ in 0..UPSERT_ROUNDS {
        if client.execute(&update, &[&name, &body]).await? > 0 {
            return Ok(false);
        }
        if client.execute(&insert, &[&name, &body]).await? > 0 {
            return Ok(true);
        }
    }
    Err(StoreError::Internal(format!("role {name} kept changing during an update")).into())
}

fn role_pairs(rows: &[Row]) -> Result<Vec<(String, RoleDescriptor)>, Fail> {
    rows.iter()
        .map(|row| {
            let name: String = row.try_get(0)?;
            let body: String = row.try_get(1)?;
            Ok((name, codec::from_json(&body)?))
        })
        .collect()
}

fn api_key_record(row: &Row) -> Result<ApiKeyRecord, Fail> {
    Ok(ApiKeyRow {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        secret_hash: row.try_get(2)?,
        username: row.try_get(3)?,
        realm: row.try_get(4)?,
        owner: row.try_get(5)?,
        created_at: row.try_get(6)?,
        expires_at: row.try_get(7)?,
        invalidated_at: row.try_get(8)?,
        role_descriptors: row.try_get(9)?,
        metadata: row.try_get(10)?,
    }
    .into_record()?)
}

/// The keys `filter` matches, oldest first: narrowed by id or owner in
/// SQL, finished by [`ApiKeyFilter::matches`].
async fn select_api_keys(
    c: &impl GenericClient,
    filter: &ApiKeyFilter,
) -> Result<Vec<ApiKeyRecord>, Fail> {
    let rows = match &filter.ids {
        Some(ids) => {
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ANY($1) ORDER BY created_at, id"
                ))
                .await?;
            c.query(&stmt, &[ids]).await?
        }
        None => {
            let stmt = c
                .prepare_cached(&format!(
                    "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE ($1::TEXT IS NULL OR username = $1) ORDER BY created_at, id"
                ))
                .await?;
            c.query(&stmt, &[&filter.username]).await?
        }
    };
    let mut keys = Vec::with_capacity(rows.len());
    for row in &rows {
        let key = api_key_record(row)?;
        if filter.matches(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

/// Invalidates the matching keys. The flag only goes from unset to set, so
/// a conditional update tells which keys this call invalidated even when
/// invalidations race.
async fn invalidate_api_keys_attempt(
    c: &mut Client,
    filter: &ApiKeyFilter,
    now: Millis,
) -> Result<ApiKeyInvalidation, Fail> {
    // Serializable, so that a token minted from a key while it is being
    // invalidated is either revoked here or refused (see `lineage`).
    let tx = begin(c, IsolationLevel::Serializable).await?;
    let keys = select_api_keys(&tx, filter).await?;
    let ids: Vec<String> = keys.into_iter().map(|k| k.id).collect();
    if ids.is_empty() {
        tx.commit().await?;
        return Ok(ApiKeyInvalidation::default());
    }
    let stmt = tx
        .prepare_cached(
            "UPDATE api_keys SET invalidated_at = $2 WHERE id = ANY($1) AND invalidated_at IS NULL RETURNING id",
        )
        .await?;
    let changed: Vec<String> = tx
        .query(&stmt, &[&ids, &now])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    // Every token the keys minted or stand for dies with them (again, for
    // a key invalidated before: idempotent).
    lineage::revoke_api_keys(&tx, &ids).await?;
    tx.commit().await?;
    let (invalidated, previously_invalidated) =
        ids.into_iter().partition(|id| changed.contains(id));
    Ok(ApiKeyInvalidation {
        invalidated,
        previously_invalidated,
    })
}

fn oauth_client_record(row: &Row) -> Result<OAuthClientRecord, Fail> {
    Ok(OAuthClientRow {
        client_id: row.try_get(0)?,
        secret_hash: row.try_get(1)?,
        client_name: row.try_get(2)?,
        grant_types: row.try_get(3)?,
        scope: row.try_get(4)?,
        token_endpoint_auth_method: row.try_get(5)?,
        created_at: row.try_get(6)?,
    }
    .into_record()?)
}

/// Updates an existing client's metadata (never its secret hash or
/// creation time) or, failing that, creates it; one statement each, as for
/// users, so the SQL stays portable. Returns whether it created the client.
async fn upsert_oauth_client(c: &Client, r: &OAuthClientRow) -> Result<bool, Fail> {
    let update = c
        .prepare_cached(
            "UPDATE oauth_clients SET client_name = $2, grant_types = $3, scope = $4,
               token_endpoint_auth_method = $5
             WHERE client_id = $1",
        )
        .await?;
    let insert = c
        .prepare_cached(&format!(
            "INSERT INTO oauth_clients ({OAUTH_CLIENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (client_id) DO NOTHING"
        ))
        .await?;
    for _ in 0..UPSERT_ROUNDS {
        let metadata: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
            &r.client_id,
            &r.client_name,
            &r.grant_types,
            &r.scope,
            &r.token_endpoint_auth_method,
        ];
        if c.execute(&update, &metadata).await? > 0 {
            return Ok(false);
        }
        let row: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
            &r.client_id,
            &r.secret_hash,
            &r.client_name,
            &r.grant_types,
            &r.scope,
            &r.token_endpoint_auth_method,
            &r.created_at,
        ];
        if c.execute(&insert, &row).await? > 0 {
            return Ok(true);
        }
        // Created by someone else between the two statements: update it.
    }
    Err(StoreError::Internal(format!(
        "client {} kept changing during an update",
        r.client_id
    ))
    .into())
}

/// One attempt at deleting a client and invalidating its pairs,
/// serializable like an invalidation by user, so that a refresh racing it
/// either is seen (its successor invalidated) or finds its token dead.
async fn delete_oauth_client_attempt(
    client: &mut Client,
    client_id: &str,
    client_column: &str,
) -> Result<bool, Fail> {
    let tx = begin(client, IsolationLevel::Serializable).await?;
    let stmt = tx
        .prepare_cached("DELETE FROM oauth_clients WHERE client_id = $1")
        .await?;
    if tx.execute(&stmt, &[&client_id]).await? == 0 {
        tx.commit().await?;
        return Ok(false);
    }
    lineage::revoke_client(&tx, client_column).await?;
    tx.commit().await?;
    Ok(true)
}

fn count(row: &Row) -> Result<u64, Fail> {
    let n: i64 = row.try_get(0)?;
    u64::try_from(n).map_err(|_| StoreError::Internal("negative count".into()).into())
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        self.db
            .run(
                "ping",
                Repeat::Safe,
                attempt!(|c| {
                    c.simple_query("SELECT 1").await?;
                    Ok(())
                }),
            )
            .await
    }

    async fn get_user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        self.db
            .run(
                "get_user",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c.prepare_cached(&USER_BY_NAME).await?;
                    c.query_opt(&stmt, &[&username])
                        .await?
                        .as_ref()
                        .map(user_record)
                        .transpose()
                }),
            )
            .await
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        let mut users = self
            .db
            .run(
                "list_users",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c.prepare_cached(&ALL_USERS).await?;
                    c.query(&stmt, &[])
                        .await?
                        .iter()
                        .map(user_record)
                        .collect::<Result<Vec<_>, _>>()
                }),
            )
            .await?;
        // Sorted here, by bytes, so the order does not depend on the
        // database's collation.
        users.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(users)
    }

    async fn put_user(&self, user: UserUpsert) -> StoreResult<bool> {
        let user = &user;
        let revoke = user.revoke_tokens && (user.password_hash.is_some() || !user.enabled);
        self.db
            .run(
                "put_user",
                Repeat::Unsafe,
                attempt!(|c| {
                    if !revoke {
                        return upsert_user(&*c, user).await;
                    }
                    let tx = begin(c, IsolationLevel::Serializable).await?;
                    let created = upsert_user(&tx, user).await?;
                    if !created {
                        lineage::revoke_user(&tx, &user.username).await?;
                    }
                    tx.commit().await?;
                    Ok(created)
                }),
            )
            .await
    }

    async fn delete_user(&self, username: &str, revoke_tokens: bool) -> StoreResult<bool> {
        self.change_user(
            "delete_user",
            "DELETE FROM users WHERE username = $1",
            username,
            None,
            revoke_tokens,
        )
        .await
    }

    async fn set_password(
        &self,
        username: &str,
        password_hash: &str,
        revoke_tokens: bool,
    ) -> StoreResult<bool> {
        self.change_user(
            "set_password",
            "UPDATE users SET password_hash = $2 WHERE username = $1",
            username,
            Some(&password_hash),
            revoke_tokens,
        )
        .await
    }

    async fn set_enabled(
        &self,
        username: &str,
        enabled: bool,
        revoke_tokens: bool,
    ) -> StoreResult<bool> {
        self.change_user(
            "set_enabled",
            "UPDATE users SET enabled = $2 WHERE username = $1",
            username,
            Some(&enabled),
            revoke_tokens && !enabled,
        )
        .await
    }

    async fn bootstrap_user(&self, user: UserUpsert) -> StoreResult<bool> {
        let user = &user;
        self.db
            .run(
                "bootstrap_user",
                Repeat::Unsafe,
                attempt!(|c| bootstrap_attempt(c, user).await),
            )
            .await
    }

    async fn put_role(&self, name: &str, role: &RoleDescriptor) -> StoreResult<bool> {
        let body = &codec::to_json(role)?;
        self.db
            .run(
                "put_role",
                Repeat::Unsafe,
                attempt!(|c| upsert_role(c, name, body).await),
            )
            .await
    }

    async fn list_roles(&self) -> StoreResult<Vec<(String, RoleDescriptor)>> {
        let mut roles = self
            .db
            .run(
                "list_roles",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c
                        .prepare_cached("SELECT name, descriptor FROM roles")
                        .await?;
                    role_pairs(&c.query(&stmt, &[]).await?)
                }),
            )
            .await?;
        roles.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(roles)
    }

    async fn get_roles(&self, names: &[String]) -> StoreResult<Vec<(String, RoleDescriptor)>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let found = self
            .db
            .run(
                "get_roles",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c
                        .prepare_cached("SELECT name, descriptor FROM roles WHERE name = ANY($1)")
                        .await?;
                    role_pairs(&c.query(&stmt, &[&names]).await?)
                }),
            )
            .await?;
        // In the order asked for, like the other backends.
        Ok(names
            .iter()
            .filter_map(|n| found.iter().find(|(name, _)| name == n).cloned())
            .collect())
    }

    async fn delete_role(&self, name: &str) -> StoreResult<bool> {
        self.db
            .run(
                "delete_role",
                Repeat::Unsafe,
                attempt!(|c| {
                    let stmt = c
                        .prepare_cached("DELETE FROM roles WHERE name = $1")
                        .await?;
                    Ok(c.execute(&stmt, &[&name]).await? > 0)
                }),
            )
            .await
    }

    async fn insert_derived(&self, record: &TokenRecord, lineage: &Lineage) -> StoreResult<bool> {
        let mark = !self.issued_marked.load(Ordering::Acquire);
        let stored = self
            .db
            .run(
                "insert_token",
                Repeat::Unsafe,
                attempt!(|c| {
                    if !mark && lineage.is_empty() {
                        insert_token_row(&*c, record, None).await?;
                        return Ok(true);
                    }
                    // Checking sources needs a serializable transaction
                    // (see `lineage`); the first insert of this store also
                    // records (once for the database) that tokens were ever
                    // issued.
                    let level = if lineage.is_empty() {
                        IsolationLevel::ReadCommitted
                    } else {
                        IsolationLevel::Serializable
                    };
                    let tx = begin(c, level).await?;
                    let Some(parent) = lineage::check(&tx, lineage, record.created_at).await?
                    else {
                        tx.commit().await?;
                        return Ok(false);
                    };
                    insert_token_row(&tx, record, parent.as_deref()).await?;
                    if mark {
                        tx.execute(MARK_ISSUED, &[]).await?;
                    }
                    tx.commit().await?;
                    Ok(true)
                }),
            )
            .await?;
        if mark && stored {
            self.issued_marked.store(true, Ordering::Release);
        }
        Ok(stored)
    }

    async fn find_by_access(&self, hash: &TokenHash) -> StoreResult<Option<TokenRecord>> {
        self.db
            .run(
                "find_by_access",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c.prepare_cached(&TOKEN_BY_ACCESS).await?;
                    token_record(c.query_opt(&stmt, &[&hash.0.as_slice()]).await?)
                }),
            )
            .await
    }

    async fn find_by_refresh(&self, hash: &TokenHash) -> StoreResult<Option<TokenRecord>> {
        self.db
            .run(
                "find_by_refresh",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c.prepare_cached(&TOKEN_BY_REFRESH).await?;
                    token_record(c.query_opt(&stmt, &[&hash.0.as_slice()]).await?)
                }),
            )
            .await
    }

    async fn refresh(&self, request: RefreshRequest) -> StoreResult<RefreshOutcome> {
        let request = &request;
        self.db
            .run(
                "refresh",
                Repeat::Unsafe,
                attempt!(|c| refresh_attempt(c, request).await),
            )
            .await
    }

    async fn invalidate_access(&self, hash: &TokenHash) -> StoreResult<InvalidateOne> {
        self.db
            .run(
                "invalidate_access",
                Repeat::Unsafe,
                attempt!(|c| invalidate_one(c, "access_hash", "access_invalidated", hash).await),
            )
            .await
    }

    async fn invalidate_refresh(&self, hash: &TokenHash) -> StoreResult<InvalidateOne> {
        self.db
            .run(
                "invalidate_refresh",
                Repeat::Unsafe,
                attempt!(|c| invalidate_one(c, "refresh_hash", "refresh_invalidated", hash).await),
            )
            .await
    }

    async fn invalidate_matching(
        &self,
        username: Option<&str>,
        realm: Option<&str>,
        now: Millis,
    ) -> StoreResult<InvalidateCounts> {
        self.db
            .run(
                "invalidate_matching",
                Repeat::Unsafe,
                attempt!(|c| invalidate_matching_attempt(c, username, realm, now).await),
            )
            .await
    }

    async fn tokens_ever_issued(&self) -> StoreResult<bool> {
        if self.issued_marked.load(Ordering::Acquire) {
            return Ok(true);
        }
        let issued = self
            .db
            .run(
                "tokens_ever_issued",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c
                        .prepare_cached("SELECT 1 FROM meta WHERE key = 'tokens_issued'")
                        .await?;
                    Ok(c.query_opt(&stmt, &[]).await?.is_some())
                }),
            )
            .await?;
        if issued {
            self.issued_marked.store(true, Ordering::Release);
        }
        Ok(issued)
    }

    async fn purge_expired(&self, now: Millis, limit: u32) -> StoreResult<u64> {
        self.db
            .run("purge_expired", Repeat::Unsafe, attempt!(|c| {
                let stmt = c
                    .prepare_cached(
                        "DELETE FROM tokens WHERE id IN
                           (SELECT id FROM tokens WHERE purge_after <= $1 ORDER BY purge_after LIMIT $2)",
                    )
                    .await?;
                let tokens = c.execute(&stmt, &[&now, &i64::from(limit)]).await?;
                let stmt = c
                    .prepare_cached(
                        "DELETE FROM api_keys WHERE id IN
                           (SELECT id FROM api_keys WHERE LEAST(invalidated_at, expires_at) <= $1 LIMIT $2)",
                    )
                    .await?;
                let cutoff = now.saturating_sub(tessera_store::API_KEY_RETENTION_MS);
                let keys = c.execute(&stmt, &[&cutoff, &i64::from(limit)]).await?;
                Ok(tokens + keys)
            }))
            .await
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let r = &ApiKeyRow::from_record(key)?;
        self.db
            .run(
                "insert_api_key",
                Repeat::Unsafe,
                attempt!(|c| {
                    let stmt = c
                        .prepare_cached(&format!(
                            "INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                        ))
                        .await?;
                    c.execute(
                        &stmt,
                        &[
                            &r.id,
                            &r.name,
                            &r.secret_hash,
                            &r.username,
                            &r.realm,
                            &r.owner,
                            &r.created_at,
                            &r.expires_at,
                            &r.invalidated_at,
                            &r.role_descriptors,
                            &r.metadata,
                        ],
                    )
                    .await?;
                    Ok(())
                }),
            )
            .await
    }

    async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.db
            .run(
                "get_api_key",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c
                        .prepare_cached(&format!(
                            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1"
                        ))
                        .await?;
                    c.query_opt(&stmt, &[&id])
                        .await?
                        .as_ref()
                        .map(api_key_record)
                        .transpose()
                }),
            )
            .await
    }

    async fn find_api_keys(&self, filter: &ApiKeyFilter) -> StoreResult<Vec<ApiKeyRecord>> {
        self.db
            .run(
                "find_api_keys",
                Repeat::Safe,
                attempt!(|c| select_api_keys(&*c, filter).await),
            )
            .await
    }

    async fn invalidate_api_keys(
        &self,
        filter: &ApiKeyFilter,
        now: Millis,
    ) -> StoreResult<ApiKeyInvalidation> {
        self.db
            .run(
                "invalidate_api_keys",
                Repeat::Unsafe,
                attempt!(|c| invalidate_api_keys_attempt(c, filter, now).await),
            )
            .await
    }

    async fn put_oauth_client(&self, client: &OAuthClientRecord) -> StoreResult<bool> {
        let r = &OAuthClientRow::from_record(client)?;
        self.db
            .run(
                "put_oauth_client",
                Repeat::Unsafe,
                attempt!(|c| upsert_oauth_client(c, r).await),
            )
            .await
    }

    async fn get_oauth_client(&self, client_id: &str) -> StoreResult<Option<OAuthClientRecord>> {
        self.db
            .run(
                "get_oauth_client",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c
                        .prepare_cached(&format!(
                            "SELECT {OAUTH_CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = $1"
                        ))
                        .await?;
                    c.query_opt(&stmt, &[&client_id])
                        .await?
                        .as_ref()
                        .map(oauth_client_record)
                        .transpose()
                }),
            )
            .await
    }

    async fn list_oauth_clients(&self) -> StoreResult<Vec<OAuthClientRecord>> {
        let mut clients = self
            .db
            .run(
                "list_oauth_clients",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c
                        .prepare_cached(&format!(
                            "SELECT {OAUTH_CLIENT_COLUMNS} FROM oauth_clients"
                        ))
                        .await?;
                    c.query(&stmt, &[])
                        .await?
                        .iter()
                        .map(oauth_client_record)
                        .collect::<Result<Vec<_>, _>>()
                }),
            )
            .await?;
        // Sorted here, by bytes, independent of the database's collation.
        clients.sort_by(|a, b| (a.created_at, &a.client_id).cmp(&(b.created_at, &b.client_id)));
        Ok(clients)
    }

    async fn set_oauth_client_secret(
        &self,
        client_id: &str,
        secret_hash: &[u8; 32],
    ) -> StoreResult<bool> {
        let hash = secret_hash.as_slice();
        self.db
            .run(
                "set_oauth_client_secret",
                Repeat::Unsafe,
                attempt!(|c| {
                    let stmt = c
                        .prepare_cached(
                            "UPDATE oauth_clients SET secret_hash = $2 WHERE client_id = $1",
                        )
                        .await?;
                    Ok(c.execute(&stmt, &[&client_id, &hash]).await? > 0)
                }),
            )
            .await
    }

    async fn delete_oauth_client(&self, client_id: &str) -> StoreResult<bool> {
        let column = &codec::client_column(&tessera_domain::oauth::client_ref(client_id))?;
        self.db
            .run(
                "delete_oauth_client",
                Repeat::Unsafe,
                attempt!(|c| delete_oauth_client_attempt(c, client_id, column).await),
            )
            .await
    }

    async fn count_tokens(&self) -> StoreResult<u64> {
        self.db
            .run(
                "count_tokens",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c.prepare_cached("SELECT COUNT(*) FROM tokens").await?;
                    count(&c.query_one(&stmt, &[]).await?)
                }),
            )
            .await
    }
}
