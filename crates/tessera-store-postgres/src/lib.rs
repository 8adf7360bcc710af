//! The PostgreSQL backend of the Tessera store.
//!
//! Every node of a Tessera cluster can point at the same database. Writes
//! answer only after `COMMIT` has returned (with the server's default
//! `synchronous_commit = on`, that is after the commit record is flushed),
//! and every later read on any connection of any node sees them.
//!
//! # Concurrency
//!
//! [`Store::refresh`] and the invalidations by token, user, realm or
//! NameID run under `READ COMMITTED` with row locks, so that conflicting
//! transactions wait for each other instead of aborting. Identical
//! refreshes in flight on one node share one call (`flight.rs`). A repeat
//! is decided from one unlocked read (`refresh.rs`); a first rotation
//! decided on that read is written by one conditional statement that marks
//! the old record only if it is still as read, and inserts the successor
//! only if it marked it (`rotate.rs`). Racing refreshes from other nodes
//! queue on the row lock that statement takes, then match nothing, read the
//! refreshed record and replay its successor. Reuse that revokes the family
//! locks the presented record with `SELECT ... FOR UPDATE` and runs the
//! domain's decision on it in one transaction (`engine::refresh`).
//!
//! Row locks alone would not do for a refresh racing an invalidation: an
//! `UPDATE ... WHERE username = $1` that waits on the row a refresh holds
//! re-checks only the rows its snapshot already had, and would miss the
//! successor. So every invalidation locks the live rows it revokes in `id`
//! order (`FOR UPDATE`), invalidates them and looks again until a look
//! finds none (`lineage::revoke_tree`, `tokens::invalidate_matching_attempt`):
//! the lock waits for each refresh in flight, and the next look, a new
//! statement, sees its successor. The outcome is one of the two serial
//! orders. Issuance with source checks and user, API key and client
//! changes stay `SERIALIZABLE` (they are rare): a refresh that committed
//! after such a transaction's snapshot changed a row it then locks, so
//! PostgreSQL aborts it with SQLSTATE 40001 and it runs again.
//!
//! Every operation runs in a retry loop: serialization failures (40001) and
//! deadlocks (40P01, possible only between two invalidations whose second
//! looks cross) roll the whole transaction back, so it is run again
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
mod accounts;
mod api_key_updates;
mod cache;
mod config;
mod epoch;
mod flight;
mod keys;
mod lineage;
mod privileges;
mod purge;
mod refresh;
mod role_mappings;
mod rotate;
mod schema;
mod service_tokens;
mod shared;
mod tls;
mod tokens;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;

use async_trait::async_trait;
use deadpool_postgres::{Client, GenericClient};
use tessera_domain::oauth::OAuthClientRecord;
use tessera_domain::user::UserRecord;
use tessera_domain::{Millis, TokenKey, TokenRecord};
use tessera_store::codec::{
    self, ApiKeyRow, OAuthClientRow, TokenRow, UserRow, API_KEY_COLUMNS, OAUTH_CLIENT_COLUMNS,
    TOKEN_COLUMNS, USER_COLUMNS,
};

pub use cache::DEFAULT_CACHE_TTL;
pub use config::PostgresConfig;
pub use schema::TOKENS_FILLFACTOR;

/// The statements a revocation of families runs, with the type of their
/// one parameter, for the test that checks how PostgreSQL plans them.
#[doc(hidden)]
pub const REVOCATION_STATEMENTS: [(&str, &str); 3] = [
    (lineage::CHILD_FAMILIES, "text[]"),
    (lineage::LOCK_LIVE_PAIRS, "text[]"),
    (lineage::CLIENT_FAMILIES, "text"),
];
use tessera_store::engine::{self, Half};
use tessera_store::{
    ApiKeyFilter, ApiKeyInvalidation, ApiKeyRecord, InvalidateCounts, InvalidateOne, Lineage,
    RefreshOutcome, RefreshRequest, RoleDescriptor, RoleMapping, Store, StoreError, StoreResult,
    UserUpsert,
};
use tokio_postgres::{IsolationLevel, Row};

use accounts::*;
use db::{begin, Db, Fail, Repeat};
use epoch::{commit_bumped, Bumped};
use keys::*;
use tokens::*;

pub struct PostgresStore {
    db: Db,
    /// Set once this store knows the `tokens_issued` marker is in `meta`
    /// (it is never removed), so later inserts skip writing it.
    issued_marked: AtomicBool,
    /// What authentication reads, for at most `cache_ttl`.
    cache: cache::ReadCache,
    /// The refreshes in flight on this node, which identical ones join.
    flights: flight::Flights,
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
        let cache = cache::ReadCache::new(config.cache_ttl);
        let db = Db::new(&config)?;
        db.first_connection().await?;
        tracing::info!(servers = %db.target, tls = %db.tls, "connected to PostgreSQL");
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
        cache.watch_epoch(&db);
        Ok(Self {
            db,
            issued_marked: AtomicBool::new(false),
            cache,
            flights: flight::Flights::default(),
        })
    }
}

impl PostgresStore {
    /// The schema version recorded in the database (`None`: no Tessera
    /// schema yet) and this build's, without applying anything.
    pub async fn check_schema(config: PostgresConfig) -> StoreResult<(Option<i64>, i64)> {
        let db = Db::new(&config)?;
        let stored = db
            .run(
                "check schema",
                Repeat::Safe,
                attempt!(|c| schema::stored_version(c).await),
            )
            .await?;
        Ok((stored, schema::SCHEMA_VERSION))
    }
}

/// How often an upsert goes round when rows appear and vanish under it.
pub(crate) const UPSERT_ROUNDS: usize = 5;

fn count(row: &Row) -> Result<u64, Fail> {
    let n: i64 = row.try_get(0)?;
    u64::try_from(n).map_err(|_| StoreError::Internal("negative count".into()).into())
}

#[async_trait]
impl Store for PostgresStore {
    fn pool_status(&self) -> Option<tessera_store::PoolStatus> {
        let (cache_hits, cache_extended_hits, cache_misses) = self.cache.counts();
        Some(tessera_store::PoolStatus {
            cache_hits,
            cache_extended_hits,
            cache_misses,
            ..self.db.pool_status()
        })
    }

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

    /// Whether the session is read-only: a standby in recovery reports
    /// `transaction_read_only = on`, and so does a database or role set to
    /// `default_transaction_read_only`.
    async fn ready(&self) -> StoreResult<()> {
        let read_only = self
            .db
            .run(
                "ready",
                Repeat::Safe,
                attempt!(|c| {
                    let row = c
                        .query_one("SELECT current_setting('transaction_read_only')", &[])
                        .await?;
                    Ok(row.try_get::<_, String>(0)? == "on")
                }),
            )
            .await?;
        if read_only {
            return Err(StoreError::Unavailable(
                "the database is read-only (a standby, or default_transaction_read_only)".into(),
            ));
        }
        Ok(())
    }

    async fn get_user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        self.cached_user(username).await
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
            .revoking(
                "put_user",
                attempt!(|c| {
                    let tx = begin(c, user_change_level(revoke)).await?;
                    let created = upsert_user(&tx, user).await?;
                    if revoke && !created {
                        lineage::revoke_user(&tx, &user.username).await?;
                    }
                    commit_bumped(tx, created).await
                }),
            )
            .await
    }

    async fn delete_user(&self, username: &str, revoke: bool, now: Millis) -> StoreResult<bool> {
        self.change_user(
            "delete_user",
            "DELETE FROM users WHERE username = $1",
            username,
            None,
            revoke,
            Some(now),
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
            None,
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
            None,
        )
        .await
    }

    async fn bootstrap_user(&self, user: UserUpsert) -> StoreResult<bool> {
        let user = &user;
        self.db
            .run(
                "bootstrap_user",
                Repeat::Adds,
                attempt!(|c| bootstrap_attempt(c, user).await),
            )
            .await
    }

    async fn put_role(&self, name: &str, role: &RoleDescriptor) -> StoreResult<bool> {
        let body = &codec::to_json(role)?;
        self.db
            .revoking(
                "put_role",
                attempt!(|c| {
                    let tx = begin(c, IsolationLevel::ReadCommitted).await?;
                    let created = upsert_role(&tx, name, body).await?;
                    commit_bumped(tx, created).await
                }),
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
                    named_documents(&c.query(&stmt, &[]).await?, codec::from_json)
                }),
            )
            .await?;
        roles.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(roles)
    }

    async fn get_roles(&self, names: &[String]) -> StoreResult<Vec<(String, RoleDescriptor)>> {
        self.cached_roles(names).await
    }

    async fn delete_role(&self, name: &str) -> StoreResult<bool> {
        let sql = "DELETE FROM roles WHERE name = $1";
        Ok(self.revoking_execute("delete_role", sql, &[&name]).await? > 0)
    }

    async fn put_role_mapping(&self, name: &str, mapping: &RoleMapping) -> StoreResult<bool> {
        self.store_role_mapping(name, mapping).await
    }

    async fn get_role_mappings(&self, names: &[String]) -> StoreResult<Vec<(String, RoleMapping)>> {
        self.read_role_mappings(names).await
    }

    async fn list_role_mappings(&self) -> StoreResult<Vec<(String, RoleMapping)>> {
        self.all_role_mappings().await
    }

    async fn delete_role_mapping(&self, name: &str) -> StoreResult<bool> {
        self.remove_role_mapping(name).await
    }

    async fn insert_derived(&self, record: &TokenRecord, lineage: &Lineage) -> StoreResult<bool> {
        let mark = !self.issued_marked.load(Ordering::Acquire);
        if !mark && lineage.is_empty() {
            // One statement on its own.
            return self
                .db
                .run(
                    "insert_token",
                    Repeat::Adds,
                    shared_attempt!(|c| engine::issue(&mut PgTx::new(c), record, lineage).await),
                )
                .await;
        }
        let stored = self
            .db
            .run(
                "insert_token",
                Repeat::Adds,
                attempt!(|c| {
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
                    if !engine::issue(&mut PgTx::new(&tx), record, lineage).await? {
                        tx.commit().await?;
                        return Ok(false);
                    }
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

    async fn find_by_access(&self, hash: &TokenKey) -> StoreResult<Option<TokenRecord>> {
        self.cached_token(hash).await
    }

    fn find_by_access_now(&self, hash: &TokenKey) -> Option<TokenRecord> {
        self.token_now(hash)
    }

    async fn find_by_refresh(&self, hash: &TokenKey) -> StoreResult<Option<TokenRecord>> {
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
        let call = |marks: flight::Marks| async move {
            let outcome = self.refresh_unshared(request, &marks).await;
            self.forget_refreshed(&request.refresh_token.hash());
            // A rotation takes nothing back (the presented access token stays
            // usable until it expires); reuse that revoked the family does.
            if matches!(&outcome, Ok(Err(denied)) if denied.revoke_family) || outcome.is_err() {
                self.db.grace.after_commit().await;
            }
            outcome
        };
        self.flights.share(request, call).await
    }

    async fn invalidate_access(&self, hash: &TokenKey) -> StoreResult<InvalidateOne> {
        self.invalidate_named("invalidate_access", Half::Access, hash, true)
            .await
    }

    async fn invalidate_refresh(&self, hash: &TokenKey) -> StoreResult<InvalidateOne> {
        self.invalidate_named("invalidate_refresh", Half::Refresh, hash, true)
            .await
    }

    async fn invalidate_token(&self, half: Half, hash: &TokenKey) -> StoreResult<InvalidateOne> {
        self.invalidate_named("invalidate_token", half, hash, false)
            .await
    }

    async fn invalidate_matching(
        &self,
        username: Option<&str>,
        realm: Option<&str>,
        now: Millis,
    ) -> StoreResult<InvalidateCounts> {
        self.db
            .revoking(
                "invalidate_matching",
                attempt!(|c| {
                    let whose = Whose::User { username, realm };
                    Ok(invalidate_matching_attempt(c, whose, now)
                        .await?
                        .map(|o| o.0))
                }),
            )
            .await
    }

    async fn invalidate_by_nameid(
        &self,
        realm: &str,
        nameid: &str,
        session: Option<&str>,
        now: Millis,
    ) -> StoreResult<u64> {
        self.db
            .revoking(
                "invalidate_by_nameid",
                attempt!(|c| {
                    let whose = Whose::NameId {
                        realm,
                        nameid,
                        session,
                    };
                    Ok(invalidate_matching_attempt(c, whose, now)
                        .await?
                        .map(|o| o.1))
                }),
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

    async fn cluster_uuid(&self, fresh: &str) -> StoreResult<String> {
        self.db
            .run(
                "cluster_uuid",
                Repeat::Safe,
                attempt!(|c| {
                    let insert = c
                        .prepare_cached(
                            "INSERT INTO meta (key, value) VALUES ('cluster_uuid', $1)
                         ON CONFLICT (key) DO NOTHING",
                        )
                        .await?;
                    c.execute(&insert, &[&fresh]).await?;
                    let select = c
                        .prepare_cached("SELECT value FROM meta WHERE key = 'cluster_uuid'")
                        .await?;
                    Ok(c.query_one(&select, &[]).await?.get::<_, String>(0))
                }),
            )
            .await
    }

    async fn purge_expired(&self, now: Millis, limit: u32) -> StoreResult<u64> {
        // Not a revoking write: what it deletes can no longer be used
        // (`purge.rs`).
        let purged = self
            .db
            .run(
                "purge_expired",
                Repeat::Adds,
                attempt!(|c| purge::batch(c, now, limit).await),
            )
            .await?;
        self.forget_purged(&purged);
        Ok(purged.count)
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let r = &ApiKeyRow::from_record(key)?;
        self.db
            .run(
                "insert_api_key",
                Repeat::Adds,
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
        self.cached_api_key(id).await
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
            .revoking(
                "invalidate_api_keys",
                attempt!(|c| invalidate_api_keys_attempt(c, filter, now).await),
            )
            .await
    }

    async fn put_oauth_client(&self, client: &OAuthClientRecord) -> StoreResult<bool> {
        let r = &OAuthClientRow::from_record(client)?;
        self.db
            .revoking(
                "put_oauth_client",
                attempt!(|c| {
                    let tx = begin(c, IsolationLevel::ReadCommitted).await?;
                    let created = upsert_oauth_client(&tx, r).await?;
                    commit_bumped(tx, created).await
                }),
            )
            .await
    }

    async fn get_oauth_client(&self, client_id: &str) -> StoreResult<Option<OAuthClientRecord>> {
        let sql = format!("SELECT {OAUTH_CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = $1");
        self.db
            .read_one("get_oauth_client", &sql, client_id, oauth_client_record)
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
        let sql = "UPDATE oauth_clients SET secret_hash = $2 WHERE client_id = $1";
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&client_id, &hash];
        Ok(self
            .revoking_execute("set_oauth_client_secret", sql, &params)
            .await?
            > 0)
    }

    async fn delete_oauth_client(&self, client_id: &str) -> StoreResult<bool> {
        let column = &codec::client_column(&tessera_domain::oauth::client_ref(client_id))?;
        self.db
            .revoking(
                "delete_oauth_client",
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
