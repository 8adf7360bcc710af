//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes go through a single writer thread that owns the only writing
//! connection. It takes every write job that is waiting, runs them in one
//! transaction (without savepoints; a batch in which a job fails is rolled
//! back and run again with a savepoint around each job) and commits once; a syncer thread
//! fsyncs the WAL and only then answers every job of the batch (see
//! `writer`). Concurrent requests therefore share an fsync (group commit)
//! without any of them seeing an answer before its data is durable, and
//! writes are serialised, which is what makes [`Store::refresh`] atomic here.
//!
//! Reads use a small pool of read-only connections on blocking threads. In
//! WAL mode a read sees every transaction committed before it began, so any
//! write that has been answered is visible to every later read; a read
//! answers only once what it saw is durable. The process that serves the
//! file also keeps a read cache for the authentication path that is never
//! stale (see `cache`).

mod api_key_updates;
mod backup;
mod cache;
mod checkpoint;
mod files;
mod lineage;
mod pairs;
mod privileges;
mod reads;
mod records;
mod role_mappings;
mod schema;
mod service_tokens;
mod tokens;
mod upgrade;
mod writer;
pub use {backup::*, schema::SCHEMA_VERSION};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use tessera_domain::oauth::OAuthClientRecord;
use tessera_domain::token::Refreshed;
use tessera_domain::user::UserRecord;
use tessera_domain::{Millis, TokenKey, TokenRecord};
use tessera_store::codec::{
    self, ApiKeyRow, OAuthClientRow, UserRow, API_KEY_COLUMNS, OAUTH_CLIENT_COLUMNS, USER_COLUMNS,
};
use tessera_store::engine::{self, TokenTx};
use tessera_store::{
    ApiKeyFilter, ApiKeyInvalidation, ApiKeyRecord, InvalidateCounts, InvalidateOne, Lineage,
    RefreshOutcome, RefreshRequest, RoleDescriptor, RoleMapping, Store, StoreError, StoreResult,
    UserUpsert,
};

use cache::{Affects, Coherence, Opener, ReadCache, Serving};
use writer::{Durability, Writer};

use checkpoint::{Checkpointer, WalBounds, WalGate};
pub use pairs::bulk_insert;
use reads::ReadPool;
use records::*;
use tokens::*;

pub struct SqliteStore {
    writer: Writer,
    _checkpointer: Checkpointer,
    readers: Arc<ReadPool>,
    /// Known to be true once a token was issued (the marker never goes away).
    tokens_issued: AtomicBool,
    /// How far the writer's commits are on disk; reads wait for what they saw.
    durability: Arc<Durability>,
    /// The read cache of the serving process (see `cache`); `None` elsewhere.
    cache: Option<Arc<ReadCache>>,
    _serving: Option<Serving>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies the
    /// schema, for a process that does not serve it (the CLI, tools, tests):
    /// no read cache, and its revoking writes are announced to the serving
    /// process, if one runs (see `cache`).
    pub fn open(path: &Path) -> StoreResult<Self> {
        let conn = Self::open_writer(path, Opener::Guest(path))?;
        let coherence = Coherence::Guest {
            lock_path: cache::lock_path(path),
            lease: cache::lease_address(path)?,
        };
        Self::assemble(path, conn, coherence, None, None)
    }

    /// Opens the database for the one process that serves it: takes the
    /// exclusive lock (a second server on the same file is refused) and
    /// keeps a read cache for the authentication path that is never stale.
    pub fn open_serving(path: &Path) -> StoreResult<Self> {
        // The lock before the schema: a server never upgrades a file that
        // another server (of an older version) still serves.
        files::make_private(path)?;
        let cache = cache::new_cache();
        let serving = Serving::start(path, Arc::clone(&cache))?;
        let conn = Self::open_writer(path, Opener::Server)?;
        let coherence = Coherence::Owner(Arc::clone(&cache));
        Self::assemble(path, conn, coherence, Some(cache), Some(serving))
    }

    fn open_writer(path: &Path, opener: Opener) -> StoreResult<Connection> {
        files::make_private(path)?;
        let conn = Connection::open(path).map_err(|e| files::cannot_open(path, e))?;
        schema::prepare_writer(&conn, opener)?;
        // From now on commits do not wait for the disk: the writer's syncer
        // thread fsyncs the WAL before any job is answered (see `writer`).
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(internal)?;
        Ok(conn)
    }

    fn assemble(
        path: &Path,
        conn: Connection,
        coherence: Coherence,
        cache: Option<Arc<ReadCache>>,
        serving: Option<Serving>,
    ) -> StoreResult<Self> {
        let durability = Arc::new(Durability::default());
        let gate = WalGate::new(WalBounds::default());
        let writer = Writer::spawn(
            conn,
            path,
            coherence,
            Arc::clone(&durability),
            Arc::clone(&gate),
        );
        let checkpointer = Checkpointer::spawn(path, gate)?;
        Ok(Self {
            writer,
            _checkpointer: checkpointer,
            tokens_issued: AtomicBool::new(false),
            readers: Arc::new(ReadPool {
                path: path.to_owned(),
                idle: Mutex::new(Vec::new()),
            }),
            durability,
            cache,
            _serving: serving,
        })
    }

    async fn read<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.read_store(move |conn| f(conn).map_err(internal)).await
    }

    /// Runs `f` on a pooled read connection on a blocking thread.
    async fn read_store<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let (pool, durability) = (Arc::clone(&self.readers), Arc::clone(&self.durability));
        let (result, seen) = tokio::task::spawn_blocking(move || {
            let result = pool.take().and_then(|conn| {
                let result = f(&conn);
                pool.give_back(conn);
                result
            });
            (result, durability.visible_now())
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?;
        // Answer only with what is on disk (see `writer`).
        self.durability.wait_for(seen).await;
        result
    }

    /// Runs `f` in the writer's transaction as a revoking write: one that
    /// may change or remove existing rows of the cached tables `affects`
    /// names.
    async fn write<T, F>(&self, affects: Affects, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.writer.run(affects, f).await
    }

    /// Runs `f` in the writer's transaction, moving no cache generation:
    /// `f` only inserts new rows, or changes tables the read cache does not
    /// hold (OAuth clients, the meta table).
    async fn write_uncached<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> StoreResult<T> + Send + 'static,
    {
        self.writer.run(Affects::NOTHING, f).await
    }

    /// `lookup` through `table` of the read cache, when this process has one.
    async fn cached<K, V, Fut>(
        &self,
        table: impl Fn(&ReadCache) -> &cache::Table<K, V>,
        key: K,
        lookup: impl FnOnce(K) -> Fut,
    ) -> StoreResult<Option<V>>
    where
        K: Eq + std::hash::Hash + Clone,
        V: Clone,
        Fut: std::future::Future<Output = StoreResult<Option<V>>>,
    {
        let Some(cache) = &self.cache else {
            return lookup(key).await;
        };
        let table = table(cache);
        if let Some(hit) = table.get(&key) {
            return Ok(Some(hit));
        }
        let read_at = table.stable();
        let found = lookup(key.clone()).await?;
        if let (Some(read_at), Some(value)) = (read_at, &found) {
            table.put(read_at, key, value.clone());
        }
        Ok(found)
    }

    async fn read_roles(&self, names: &[String]) -> StoreResult<Vec<(String, RoleDescriptor)>> {
        let sql = "SELECT name, descriptor FROM roles WHERE name = ?1";
        let rows = self.read_named(sql, names.to_vec()).await?;
        rows.into_iter()
            .map(|(n, d)| Ok((n, codec::from_json(&d)?)))
            .collect()
    }

    /// The `(name, document)` row `sql` (`?1` the name) finds for each of
    /// `names`, in their order; a name without a row is left out.
    async fn read_named(
        &self,
        sql: &'static str,
        names: Vec<String>,
    ) -> StoreResult<Vec<(String, String)>> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(sql)?;
            let mut out = Vec::new();
            for n in &names {
                if let Some(row) = stmt
                    .query_row([n], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?
                {
                    out.push(row);
                }
            }
            Ok(out)
        })
        .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())))
            .await?;
        self.write_uncached(|_| Ok(())).await
    }

    /// A real write ([`schema::ready_probe`]): an empty transaction
    /// would succeed on a read-only file.
    async fn ready(&self) -> StoreResult<()> {
        self.ping().await?;
        self.write_uncached(schema::ready_probe).await
    }

    async fn get_user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        self.cached(
            |c| &c.users,
            username.to_owned(),
            |username| async move {
                self.read(move |c| {
                    c.prepare_cached(&format!(
                        "SELECT {USER_COLUMNS} FROM users WHERE username = ?1"
                    ))?
                    .query_row([username], user_row)
                    .optional()
                })
                .await?
                .map(UserRow::into_record)
                .transpose()
            },
        )
        .await
    }

    async fn list_users(&self) -> StoreResult<Vec<UserRecord>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users ORDER BY username"
            ))?
            .query_map([], user_row)?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?
        .into_iter()
        .map(UserRow::into_record)
        .collect()
    }

    async fn put_user(&self, user: UserUpsert) -> StoreResult<bool> {
        let revoke = user.revoke_tokens && (user.password_hash.is_some() || !user.enabled);
        self.write(user_change(revoke), move |c| {
            let created = upsert_user(c, &user)?;
            revoke_user_if(c, revoke && !created, &user.username)?;
            Ok(created)
        })
        .await
    }

    async fn bootstrap_user(&self, user: UserUpsert) -> StoreResult<bool> {
        self.write(Affects::USERS, move |c| {
            let count: i64 = c
                .query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))
                .map_err(internal)?;
            if count > 0 {
                return Ok(false);
            }
            upsert_user(c, &user)
        })
        .await
    }

    async fn delete_user(&self, username: &str, revoke: bool, now: Millis) -> StoreResult<bool> {
        let username = username.to_owned();
        self.write(user_deletion(revoke), move |c| {
            let existed = c
                .execute("DELETE FROM users WHERE username = ?1", [&username])
                .map_err(internal)?
                > 0;
            revoke_deleted_user_if(c, existed && revoke, &username, now)?;
            Ok(existed)
        })
        .await
    }

    async fn set_password(
        &self,
        username: &str,
        password_hash: &str,
        revoke_tokens: bool,
    ) -> StoreResult<bool> {
        let (username, hash) = (username.to_owned(), password_hash.to_owned());
        self.write(user_change(revoke_tokens), move |c| {
            let exists = c
                .execute(
                    "UPDATE users SET password_hash = ?2 WHERE username = ?1",
                    [&username, &hash],
                )
                .map_err(internal)?
                > 0;
            revoke_user_if(c, exists && revoke_tokens, &username)?;
            Ok(exists)
        })
        .await
    }

    async fn set_enabled(
        &self,
        username: &str,
        enabled: bool,
        revoke_tokens: bool,
    ) -> StoreResult<bool> {
        let username = username.to_owned();
        let revoke = revoke_tokens && !enabled;
        self.write(user_change(revoke), move |c| {
            let exists = c
                .execute(
                    "UPDATE users SET enabled = ?2 WHERE username = ?1",
                    params![username, enabled],
                )
                .map_err(internal)?
                > 0;
            revoke_user_if(c, exists && revoke, &username)?;
            Ok(exists)
        })
        .await
    }

    async fn put_role(&self, name: &str, role: &RoleDescriptor) -> StoreResult<bool> {
        let name = name.to_owned();
        let body = codec::to_json(role)?;
        self.write(Affects::ROLES, move |c| {
            let existed = c
                .query_row("SELECT 1 FROM roles WHERE name = ?1", [&name], |_| Ok(()))
                .optional()
                .map_err(internal)?
                .is_some();
            c.execute(
                "INSERT INTO roles (name, descriptor) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET descriptor = excluded.descriptor",
                [&name, &body],
            )
            .map_err(internal)?;
            Ok(!existed)
        })
        .await
    }

    async fn list_roles(&self) -> StoreResult<Vec<(String, RoleDescriptor)>> {
        let rows = self
            .read(|c| {
                c.prepare_cached("SELECT name, descriptor FROM roles ORDER BY name")?
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows.into_iter()
            .map(|(n, d)| Ok((n, codec::from_json(&d)?)))
            .collect()
    }

    async fn get_roles(&self, names: &[String]) -> StoreResult<Vec<(String, RoleDescriptor)>> {
        // From the cache only when every role is there (absent roles are
        // never cached).
        if let Some(cache) = &self.cache {
            let hits: Option<Vec<_>> = names
                .iter()
                .map(|n| cache.roles.get(n.as_str()).map(|d| (n.clone(), d)))
                .collect();
            if let Some(hits) = hits {
                return Ok(hits);
            }
        }
        let read_at = self.cache.as_ref().and_then(|c| c.roles.stable());
        let found = self.read_roles(names).await?;
        if let (Some(cache), Some(read_at)) = (&self.cache, read_at) {
            for (name, descriptor) in &found {
                cache.roles.put(read_at, name.clone(), descriptor.clone());
            }
        }
        Ok(found)
    }

    async fn delete_role(&self, name: &str) -> StoreResult<bool> {
        let name = name.to_owned();
        self.write(Affects::ROLES, move |c| {
            c.execute("DELETE FROM roles WHERE name = ?1", [&name])
                .map(|n| n > 0)
                .map_err(internal)
        })
        .await
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
        let (record, lineage) = (record.clone(), lineage.clone());
        // The marker is written with the first token only; it is never
        // removed, so once this store knows it is there it skips the write.
        let mark = !self.tokens_issued.load(Ordering::Acquire);
        let stored = self
            .write_uncached(move |c| {
                // On the one writer, the sources cannot change between
                // their check and the insert.
                if !engine::run_now(engine::issue(&mut WriterTx(c), &record, &lineage))?? {
                    return Ok(false);
                }
                if mark {
                    mark_tokens_issued(c)?;
                }
                Ok(true)
            })
            .await?;
        if stored {
            self.tokens_issued.store(true, Ordering::Release);
        }
        Ok(stored)
    }

    async fn find_by_access(&self, hash: &TokenKey) -> StoreResult<Option<TokenRecord>> {
        self.cached(
            |c| &c.tokens,
            *hash,
            |hash| async move {
                self.read_store(move |c| {
                    Ok(pairs::find(c, pairs::Half::Access, &hash)?.map(|(_, r)| r))
                })
                .await
            },
        )
        .await
    }

    fn find_by_access_now(&self, hash: &TokenKey) -> Option<TokenRecord> {
        self.cache.as_ref()?.tokens.get(hash)
    }

    async fn find_by_refresh(&self, hash: &TokenKey) -> StoreResult<Option<TokenRecord>> {
        let hash = *hash;
        self.read_store(move |c| Ok(pairs::find(c, pairs::Half::Refresh, &hash)?.map(|(_, r)| r)))
            .await
    }

    async fn refresh(&self, request: RefreshRequest) -> StoreResult<RefreshOutcome> {
        self.write(Affects::TOKENS, move |c| {
            engine::run_now(engine::refresh(&mut WriterTx(c), &request))?
        })
        .await
    }

    async fn invalidate_access(&self, hash: &TokenKey) -> StoreResult<InvalidateOne> {
        self.invalidate_named(pairs::Half::Access, hash, true).await
    }

    async fn invalidate_refresh(&self, hash: &TokenKey) -> StoreResult<InvalidateOne> {
        self.invalidate_named(pairs::Half::Refresh, hash, true)
            .await
    }

    async fn invalidate_token(
        &self,
        half: pairs::Half,
        hash: &TokenKey,
    ) -> StoreResult<InvalidateOne> {
        self.invalidate_named(half, hash, false).await
    }

    async fn invalidate_matching(
        &self,
        username: Option<&str>,
        realm: Option<&str>,
        now: Millis,
    ) -> StoreResult<InvalidateCounts> {
        let (username, realm) = (username.map(str::to_owned), realm.map(str::to_owned));
        self.write(Affects::TOKENS, move |c| {
            let whose = pairs::Whose::User {
                username: username.as_deref(),
                realm: realm.as_deref(),
            };
            invalidate_live(c, pairs::live_pairs(c, whose, now)?)
        })
        .await
    }

    async fn invalidate_by_nameid(
        &self,
        realm: &str,
        nameid: &str,
        session: Option<&str>,
        now: Millis,
    ) -> StoreResult<u64> {
        let (realm, nameid) = (realm.to_owned(), nameid.to_owned());
        let session = session.map(str::to_owned);
        self.write(Affects::TOKENS, move |c| {
            let whose = pairs::Whose::NameId {
                realm: &realm,
                nameid: &nameid,
                session: session.as_deref(),
            };
            let live = pairs::live_pairs(c, whose, now)?;
            let pairs = live.len() as u64;
            invalidate_live(c, live)?;
            Ok(pairs)
        })
        .await
    }

    async fn tokens_ever_issued(&self) -> StoreResult<bool> {
        if self.tokens_issued.load(Ordering::Acquire) {
            return Ok(true);
        }
        let issued = self
            .read(|c| {
                c.query_row("SELECT 1 FROM meta WHERE key = 'tokens_issued'", [], |_| {
                    Ok(())
                })
                .optional()
                .map(|o| o.is_some())
            })
            .await?;
        if issued {
            self.tokens_issued.store(true, Ordering::Release);
        }
        Ok(issued)
    }

    async fn cluster_uuid(&self, fresh: &str) -> StoreResult<String> {
        let fresh = fresh.to_owned();
        self.write_uncached(move |c| schema::cluster_uuid(c, &fresh))
            .await
    }

    async fn purge_expired(&self, now: Millis, limit: u32) -> StoreResult<u64> {
        self.write(Affects::TOKENS.union(Affects::API_KEYS), move |c| {
            purge_expired(c, now, limit)
        })
        .await
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let r = ApiKeyRow::from_record(key)?;
        self.write_uncached(move |c| {
            c.prepare_cached(&format!(
                "INSERT INTO api_keys ({API_KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ))
            .and_then(|mut stmt| {
                stmt.execute(params![
                    r.id,
                    r.name,
                    r.secret_hash,
                    r.username,
                    r.realm,
                    r.owner,
                    r.created_at,
                    r.expires_at,
                    r.invalidated_at,
                    r.role_descriptors,
                    r.metadata
                ])
            })
            .map(|_| ())
            .map_err(internal)
        })
        .await
    }

    async fn get_api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        self.cached(
            |c| &c.api_keys,
            id.to_owned(),
            |id| async move {
                self.read(move |c| {
                    c.prepare_cached(&format!(
                        "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ?1"
                    ))?
                    .query_row([id], api_key_row)
                    .optional()
                })
                .await?
                .map(ApiKeyRow::into_record)
                .transpose()
            },
        )
        .await
    }

    async fn find_api_keys(&self, filter: &ApiKeyFilter) -> StoreResult<Vec<ApiKeyRecord>> {
        let filter = filter.clone();
        self.read_store(move |conn| select_api_keys(conn, &filter))
            .await
    }

    async fn invalidate_api_keys(
        &self,
        filter: &ApiKeyFilter,
        now: Millis,
    ) -> StoreResult<ApiKeyInvalidation> {
        let filter = filter.clone();
        self.write(Affects::API_KEYS.union(Affects::TOKENS), move |c| {
            let mut outcome = ApiKeyInvalidation::default();
            let mut update = c
                .prepare_cached("UPDATE api_keys SET invalidated_at = ?2 WHERE id = ?1 AND invalidated_at IS NULL")
                .map_err(internal)?;
            for key in select_api_keys(c, &filter)? {
                // Every token the key minted or stands for dies with it
                // (again, for a key invalidated before: idempotent).
                lineage::revoke_api_key(c, &key.id)?;
                if update.execute(params![key.id, now]).map_err(internal)? > 0 {
                    outcome.invalidated.push(key.id);
                } else {
                    outcome.previously_invalidated.push(key.id);
                }
            }
            Ok(outcome)
        })
        .await
    }

    async fn put_oauth_client(&self, client: &OAuthClientRecord) -> StoreResult<bool> {
        let r = OAuthClientRow::from_record(client)?;
        self.write_uncached(move |c| {
            let existed = c
                .prepare_cached("SELECT 1 FROM oauth_clients WHERE client_id = ?1")
                .and_then(|mut stmt| stmt.query_row([&r.client_id], |_| Ok(())).optional())
                .map_err(internal)?
                .is_some();
            // An update leaves secret_hash and created_at as they are.
            c.prepare_cached(&format!(
                "INSERT INTO oauth_clients ({OAUTH_CLIENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (client_id) DO UPDATE SET client_name = excluded.client_name,
                   grant_types = excluded.grant_types, scope = excluded.scope,
                   token_endpoint_auth_method = excluded.token_endpoint_auth_method"
            ))
            .and_then(|mut stmt| {
                stmt.execute(params![
                    r.client_id,
                    r.secret_hash,
                    r.client_name,
                    r.grant_types,
                    r.scope,
                    r.token_endpoint_auth_method,
                    r.created_at
                ])
            })
            .map_err(internal)?;
            Ok(!existed)
        })
        .await
    }

    async fn get_oauth_client(&self, client_id: &str) -> StoreResult<Option<OAuthClientRecord>> {
        let id = client_id.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {OAUTH_CLIENT_COLUMNS} FROM oauth_clients WHERE client_id = ?1"
            ))?
            .query_row([id], oauth_client_row)
            .optional()
        })
        .await?
        .map(OAuthClientRow::into_record)
        .transpose()
    }

    async fn list_oauth_clients(&self) -> StoreResult<Vec<OAuthClientRecord>> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {OAUTH_CLIENT_COLUMNS} FROM oauth_clients ORDER BY created_at, client_id"
            ))?
            .query_map([], oauth_client_row)?
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?
        .into_iter()
        .map(OAuthClientRow::into_record)
        .collect()
    }

    async fn set_oauth_client_secret(
        &self,
        client_id: &str,
        secret_hash: &[u8; 32],
    ) -> StoreResult<bool> {
        let (id, hash) = (client_id.to_owned(), secret_hash.to_vec());
        self.write_uncached(move |c| {
            c.execute(
                "UPDATE oauth_clients SET secret_hash = ?2 WHERE client_id = ?1",
                params![id, hash],
            )
            .map(|n| n > 0)
            .map_err(internal)
        })
        .await
    }

    async fn delete_oauth_client(&self, client_id: &str) -> StoreResult<bool> {
        let id = client_id.to_owned();
        let client_column = codec::client_column(&tessera_domain::oauth::client_ref(&id))?;
        self.write(Affects::TOKENS, move |c| {
            let deleted = c
                .execute("DELETE FROM oauth_clients WHERE client_id = ?1", [&id])
                .map_err(internal)?;
            if deleted == 0 {
                return Ok(false);
            }
            lineage::revoke_client(c, &client_column)?;
            Ok(true)
        })
        .await
    }

    async fn count_tokens(&self) -> StoreResult<u64> {
        self.read(pairs::count).await.map(|n| n as u64)
    }
}

#[cfg(test)]
mod tests;
