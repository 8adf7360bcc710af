//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes go through a single writer thread that owns the only writing
//! connection. It takes every write job that is waiting, runs each in its
//! own savepoint inside one transaction and commits once; a syncer thread
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

mod cache;
mod files;
mod pairs;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row};
use tessera_domain::oauth::OAuthClientRecord;
use tessera_domain::refresh::{self, Decision, Denied};
use tessera_domain::user::UserRecord;
use tessera_domain::{Millis, TokenHash, TokenRecord};
use tessera_store::codec::{
    self, ApiKeyRow, OAuthClientRow, UserRow, API_KEY_COLUMNS, OAUTH_CLIENT_COLUMNS, USER_COLUMNS,
};
use tessera_store::{
    ApiKeyFilter, ApiKeyInvalidation, ApiKeyRecord, InvalidateCounts, InvalidateOne,
    RefreshGranted, RefreshOutcome, RefreshRequest, RoleDescriptor, Store, StoreError, StoreResult,
    UserUpsert,
};

use cache::{Affects, Coherence, ReadCache, Serving};
use writer::{Durability, Writer};

/// Read connections kept open between reads. Enough for every request a
/// busy node has in flight, so connections (and their page caches) are
/// reused instead of reopened.
const READ_POOL_MAX_IDLE: usize = 64;

pub use pairs::bulk_insert;

pub struct SqliteStore {
    writer: Writer,
    stop_checkpointer: Arc<std::sync::atomic::AtomicBool>,
    readers: Arc<ReadPool>,
    /// Known to be true once a token was issued (the marker never goes away).
    tokens_issued: std::sync::atomic::AtomicBool,
    /// How far the writer's commits are on disk; reads wait for what they saw.
    durability: Arc<Durability>,
    /// The read cache of the serving process (see `cache`); `None` elsewhere.
    cache: Option<Arc<ReadCache>>,
    _serving: Option<Serving>,
}

struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies the
    /// schema, for a process that does not serve it (the CLI, tools, tests):
    /// no read cache, and its revoking writes are announced to the serving
    /// process, if one runs (see `cache`).
    pub fn open(path: &Path) -> StoreResult<Self> {
        let conn = Self::open_writer(path)?;
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
        let conn = Self::open_writer(path)?;
        let cache = cache::new_cache();
        let serving = Serving::start(path, Arc::clone(&cache))?;
        let coherence = Coherence::Owner(Arc::clone(&cache));
        Self::assemble(path, conn, coherence, Some(cache), Some(serving))
    }

    fn open_writer(path: &Path) -> StoreResult<Connection> {
        files::make_private(path)?;
        let conn = Connection::open(path).map_err(unavailable)?;
        schema::prepare_writer(&conn)?;
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
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let durability = Arc::new(Durability::default());
        let writer = Writer::spawn(conn, wal.into(), coherence, Arc::clone(&durability));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        spawn_checkpointer(path.to_owned(), Arc::clone(&stop))?;
        Ok(Self {
            writer,
            stop_checkpointer: stop,
            tokens_issued: std::sync::atomic::AtomicBool::new(false),
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

    /// Runs `f` in the writer's transaction; `f` only inserts new rows, or
    /// changes nothing the read cache holds.
    async fn write_insert<T, F>(&self, f: F) -> StoreResult<T>
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
        let names = names.to_vec();
        let rows = self
            .read(move |c| {
                let mut stmt =
                    c.prepare_cached("SELECT name, descriptor FROM roles WHERE name = ?1")?;
                let mut out = Vec::new();
                for n in &names {
                    if let Some(row) = stmt
                        .query_row([n], |r| {
                            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                        })
                        .optional()?
                    {
                        out.push(row);
                    }
                }
                Ok(out)
            })
            .await?;
        rows.into_iter()
            .map(|(n, d)| Ok((n, codec::from_json(&d)?)))
            .collect()
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop_checkpointer
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

/// Copies committed WAL pages into the database file every
/// [`CHECKPOINT_INTERVAL`], on its own connection. `PASSIVE` never blocks the writer or readers, so commits
/// only pay for appending to the WAL and its fsync. Durability does not
/// depend on this: a commit is durable once its WAL frames are synced.
/// How often the checkpointer runs. A page changed many times in between
/// is copied once: with one second instead of 100 ms the refresh benchmark
/// ran about 14% faster. The writer still checkpoints by itself if the WAL
/// passes 32 MiB first.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

fn spawn_checkpointer(path: PathBuf, stop: Arc<std::sync::atomic::AtomicBool>) -> StoreResult<()> {
    let conn = Connection::open(&path).map_err(unavailable)?;
    std::thread::Builder::new()
        .name("tessera-sqlite-checkpoint".into())
        .spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                std::thread::sleep(CHECKPOINT_INTERVAL);
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
                }
            }
        })
        .map_err(|e| StoreError::Internal(format!("spawning the checkpointer: {e}")))?;
    Ok(())
}

impl ReadPool {
    fn take(&self) -> StoreResult<Connection> {
        if let Some(conn) = self.idle.lock().expect("read pool lock").pop() {
            return Ok(conn);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(unavailable)?;
        schema::prepare_reader(&conn).map_err(internal)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        let mut idle = self.idle.lock().expect("read pool lock");
        if idle.len() < READ_POOL_MAX_IDLE {
            idle.push(conn);
        }
    }
}

fn internal(e: rusqlite::Error) -> StoreError {
    StoreError::Internal(e.to_string())
}

fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn oauth_client_row(row: &Row<'_>) -> rusqlite::Result<OAuthClientRow> {
    Ok(OAuthClientRow {
        client_id: row.get(0)?,
        secret_hash: row.get(1)?,
        client_name: row.get(2)?,
        grant_types: row.get(3)?,
        scope: row.get(4)?,
        token_endpoint_auth_method: row.get(5)?,
        created_at: row.get(6)?,
    })
}

fn api_key_row(row: &Row<'_>) -> rusqlite::Result<ApiKeyRow> {
    Ok(ApiKeyRow {
        id: row.get(0)?,
        name: row.get(1)?,
        secret_hash: row.get(2)?,
        username: row.get(3)?,
        realm: row.get(4)?,
        owner: row.get(5)?,
        created_at: row.get(6)?,
        expires_at: row.get(7)?,
        invalidated_at: row.get(8)?,
        role_descriptors: row.get(9)?,
        metadata: row.get(10)?,
    })
}

/// The keys `filter` matches, oldest first: narrowed by id or owner in
/// SQL, finished by [`ApiKeyFilter::matches`].
fn select_api_keys(conn: &Connection, filter: &ApiKeyFilter) -> StoreResult<Vec<ApiKeyRecord>> {
    let sql = format!(
        "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE (?1 IS NULL OR username = ?1) ORDER BY created_at, id"
    );
    let rows = match &filter.ids {
        Some(ids) => {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = ?1"
                ))
                .map_err(internal)?;
            let mut rows = Vec::new();
            for id in ids {
                if let Some(row) = stmt
                    .query_row([id], api_key_row)
                    .optional()
                    .map_err(internal)?
                {
                    rows.push(row);
                }
            }
            rows.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            rows.dedup_by(|a, b| a.id == b.id);
            rows
        }
        None => conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| {
                stmt.query_map([&filter.username], api_key_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(internal)?,
    };
    let mut keys = Vec::with_capacity(rows.len());
    for row in rows {
        let key = row.into_record()?;
        if filter.matches(&key) {
            keys.push(key);
        }
    }
    Ok(keys)
}

fn user_row(row: &Row<'_>) -> rusqlite::Result<UserRow> {
    Ok(UserRow {
        username: row.get(0)?,
        password_hash: row.get(1)?,
        roles: row.get(2)?,
        full_name: row.get(3)?,
        email: row.get(4)?,
        metadata: row.get(5)?,
        enabled: row.get(6)?,
    })
}

/// Records, once for the database, that tokens were ever issued.
fn mark_tokens_issued(conn: &Connection) -> StoreResult<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO meta (key, value) VALUES ('tokens_issued', '1')")
        .and_then(|mut stmt| stmt.execute([]))
        .map(|_| ())
        .map_err(internal)
}

/// Runs a refresh inside the writer's transaction. The writer is the only
/// writing connection, so the record cannot change between the read and the
/// update below.
fn refresh_in_tx(conn: &Connection, req: &RefreshRequest) -> StoreResult<RefreshOutcome> {
    let hash = req.refresh_token.hash();
    let Some((at, record)) = pairs::find(conn, pairs::Half::Refresh, &hash)? else {
        return Ok(Err(Denied::reject(refresh::RefreshError::NotFound)));
    };
    match refresh::decide(
        &record,
        &req.refresh_token,
        &req.caller,
        req.now,
        req.policy,
    ) {
        Decision::Deny(denied) => deny(conn, at.family, denied),
        Decision::Replay { pair, .. } => {
            // The successor is the pair whose access token the sealed pair holds.
            let successor =
                pairs::find(conn, pairs::Half::Access, &pair.access.hash())?.map(|(_, r)| r);
            match refresh::judge_replay(successor.as_ref(), req.now, req.policy) {
                Ok(()) => Ok(Ok(RefreshGranted {
                    pair,
                    subject: record.subject,
                    scope: record.scope,
                    rotated: false,
                })),
                Err(denied) => deny(conn, at.family, denied),
            }
        }
        Decision::Rotate {
            successor,
            refreshed,
            pair,
        } => {
            pairs::insert_successor(conn, &successor, at)?;
            pairs::mark_refreshed(conn, at.seq, &refreshed)?;
            Ok(Ok(RefreshGranted {
                pair,
                subject: record.subject,
                scope: record.scope,
                rotated: true,
            }))
        }
    }
}

/// Refuses a refresh, first revoking the family when the denial asks for it.
fn deny(conn: &Connection, family: i64, denied: Denied) -> StoreResult<RefreshOutcome> {
    if denied.revoke_family {
        pairs::revoke_family(conn, family)?;
    }
    Ok(Err(denied))
}

/// Invalidation is final for the whole family: the named token's state
/// decides the answer, every member is invalidated.
fn invalidate_one(
    conn: &Connection,
    half: pairs::Half,
    hash: &TokenHash,
) -> StoreResult<InvalidateOne> {
    let Some((already, family)) = pairs::invalidation_state(conn, half, hash)? else {
        return Ok(InvalidateOne::NotFound);
    };
    pairs::revoke_family(conn, family)?;
    Ok(if already {
        InvalidateOne::AlreadyInvalidated
    } else {
        InvalidateOne::Invalidated
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.read(|c| c.query_row("SELECT 1", [], |_| Ok(())))
            .await?;
        self.write_insert(|_| Ok(())).await
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
        self.write(Affects::USERS, move |c| upsert_user(c, &user))
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

    async fn delete_user(&self, username: &str) -> StoreResult<bool> {
        let username = username.to_owned();
        self.write(Affects::USERS, move |c| {
            c.execute("DELETE FROM users WHERE username = ?1", [&username])
                .map(|n| n > 0)
                .map_err(internal)
        })
        .await
    }

    async fn set_password(&self, username: &str, password_hash: &str) -> StoreResult<bool> {
        let (username, hash) = (username.to_owned(), password_hash.to_owned());
        self.write(Affects::USERS, move |c| {
            c.execute(
                "UPDATE users SET password_hash = ?2 WHERE username = ?1",
                [&username, &hash],
            )
            .map(|n| n > 0)
            .map_err(internal)
        })
        .await
    }

    async fn set_enabled(&self, username: &str, enabled: bool) -> StoreResult<bool> {
        let username = username.to_owned();
        self.write(Affects::USERS, move |c| {
            c.execute(
                "UPDATE users SET enabled = ?2 WHERE username = ?1",
                params![username, enabled],
            )
            .map(|n| n > 0)
            .map_err(internal)
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

    async fn insert_token(&self, record: &TokenRecord) -> StoreResult<()> {
        let record = record.clone();
        // The marker is written with the first token only; it is never
        // removed, so once this store knows it is there it skips the write.
        let mark = !self
            .tokens_issued
            .load(std::sync::atomic::Ordering::Acquire);
        self.write_insert(move |c| {
            pairs::insert(c, &record)?;
            if mark {
                mark_tokens_issued(c)?;
            }
            Ok(())
        })
        .await?;
        self.tokens_issued
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    async fn find_by_access(&self, hash: &TokenHash) -> StoreResult<Option<TokenRecord>> {
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

    fn find_by_access_now(&self, hash: &TokenHash) -> Option<TokenRecord> {
        self.cache.as_ref()?.tokens.get(hash)
    }

    async fn find_by_refresh(&self, hash: &TokenHash) -> StoreResult<Option<TokenRecord>> {
        let hash = *hash;
        self.read_store(move |c| Ok(pairs::find(c, pairs::Half::Refresh, &hash)?.map(|(_, r)| r)))
            .await
    }

    async fn refresh(&self, request: RefreshRequest) -> StoreResult<RefreshOutcome> {
        self.write(Affects::TOKENS, move |c| refresh_in_tx(c, &request))
            .await
    }

    async fn invalidate_access(&self, hash: &TokenHash) -> StoreResult<InvalidateOne> {
        let hash = *hash;
        self.write(Affects::TOKENS, move |c| {
            invalidate_one(c, pairs::Half::Access, &hash)
        })
        .await
    }

    async fn invalidate_refresh(&self, hash: &TokenHash) -> StoreResult<InvalidateOne> {
        let hash = *hash;
        self.write(Affects::TOKENS, move |c| {
            invalidate_one(c, pairs::Half::Refresh, &hash)
        })
        .await
    }

    async fn invalidate_matching(
        &self,
        username: Option<&str>,
        realm: Option<&str>,
        now: Millis,
    ) -> StoreResult<InvalidateCounts> {
        let (username, realm) = (username.map(str::to_owned), realm.map(str::to_owned));
        self.write(Affects::TOKENS, move |c| {
            let mut counts = InvalidateCounts::default();
            let live = pairs::live_pairs_matching(c, username.as_deref(), realm.as_deref(), now)?;
            for (seq, has_refresh, refresh_was, access_was) in live {
                codec::count_invalidation(&mut counts, has_refresh, refresh_was, access_was);
                pairs::invalidate_pair(c, seq)?;
            }
            Ok(counts)
        })
        .await
    }

    async fn tokens_ever_issued(&self) -> StoreResult<bool> {
        if self
            .tokens_issued
            .load(std::sync::atomic::Ordering::Acquire)
        {
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
            self.tokens_issued
                .store(true, std::sync::atomic::Ordering::Release);
        }
        Ok(issued)
    }

    async fn purge_expired(&self, now: Millis, limit: u32) -> StoreResult<u64> {
        self.write(Affects::TOKENS.and(Affects::API_KEYS), move |c| {
            let tokens = pairs::purge(c, now, limit)?;
            let keys = c
                .execute(
                    "DELETE FROM api_keys WHERE id IN (SELECT id FROM api_keys
                       WHERE MIN(COALESCE(invalidated_at, expires_at), COALESCE(expires_at, invalidated_at)) <= ?1
                       LIMIT ?2)",
                    params![now.saturating_sub(tessera_store::API_KEY_RETENTION_MS), limit],
                )
                .map_err(internal)?;
            Ok((tokens + keys) as u64)
        })
        .await
    }

    async fn insert_api_key(&self, key: &ApiKeyRecord) -> StoreResult<()> {
        let r = ApiKeyRow::from_record(key)?;
        self.write_insert(move |c| {
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
        self.write(Affects::API_KEYS, move |c| {
            let mut outcome = ApiKeyInvalidation::default();
            let mut update = c
                .prepare_cached("UPDATE api_keys SET invalidated_at = ?2 WHERE id = ?1 AND invalidated_at IS NULL")
                .map_err(internal)?;
            for key in select_api_keys(c, &filter)? {
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
        self.write_insert(move |c| {
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
        self.write_insert(move |c| {
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
            pairs::invalidate_client(c, &client_column)?;
            Ok(true)
        })
        .await
    }

    async fn count_tokens(&self) -> StoreResult<u64> {
        self.read(pairs::count).await.map(|n| n as u64)
    }
}

fn upsert_user(c: &Connection, user: &UserUpsert) -> StoreResult<bool> {
    let roles = codec::to_json(&user.roles)?;
    let metadata = codec::to_json(&user.metadata)?;
    let existing: Option<String> = c
        .query_row(
            "SELECT password_hash FROM users WHERE username = ?1",
            [&user.username],
            |r| r.get(0),
        )
        .optional()
        .map_err(internal)?;
    let password_hash = match (&user.password_hash, &existing) {
        (Some(h), _) => h.clone(),
        (None, Some(h)) => h.clone(),
        (None, None) => return Err(StoreError::PasswordRequired),
    };
    c.execute(
        "INSERT INTO users (username, password_hash, roles, full_name, email, metadata, enabled)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash, roles = excluded.roles,
           full_name = excluded.full_name, email = excluded.email, metadata = excluded.metadata, enabled = excluded.enabled",
        params![user.username, password_hash, roles, user.full_name, user.email, metadata, user.enabled],
    )
    .map_err(internal)?;
    Ok(existing.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first released schema: one `tokens` table with every column of
    /// a pair inline, before tokens had a scope and before OAuth clients.
    const FIRST_SCHEMA: &str = "
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE users (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL,
            roles TEXT NOT NULL, full_name TEXT, email TEXT, metadata TEXT NOT NULL,
            enabled INTEGER NOT NULL);
        CREATE TABLE roles (name TEXT PRIMARY KEY, descriptor TEXT NOT NULL);
        CREATE TABLE tokens (id TEXT PRIMARY KEY, access_hash BLOB NOT NULL UNIQUE,
            refresh_hash BLOB UNIQUE, family_id TEXT NOT NULL, generation INTEGER NOT NULL,
            username TEXT NOT NULL, realm TEXT NOT NULL, subject TEXT NOT NULL,
            client TEXT NOT NULL, created_at INTEGER NOT NULL,
            access_expires_at INTEGER NOT NULL, refresh_expires_at INTEGER,
            access_invalidated INTEGER NOT NULL, refresh_invalidated INTEGER NOT NULL,
            refreshed_at INTEGER, successor_id TEXT, sealed_successor BLOB,
            purge_after INTEGER NOT NULL);
        CREATE INDEX tokens_by_username ON tokens (username);
        CREATE INDEX tokens_by_family ON tokens (family_id);";

    /// A database of the first release (one `tokens` table, no scope, no
    /// OAuth clients) is upgraded at open: its pairs move to the current
    /// layout unchanged (a refreshed one included), still refresh and
    /// replay, and read as unrestricted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn databases_from_the_first_release_are_upgraded_in_place() {
        use tessera_domain::refresh::RefreshPolicy;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let s = tessera_store::conformance::subject("old");
        let (old, old_pair) = TokenRecord::issue(&s, s.client_ref(), true, 1_000, 60_000);
        let (mut refreshed, refreshed_pair) =
            TokenRecord::issue(&s, s.client_ref(), true, 1_000, 60_000);
        let policy = RefreshPolicy {
            access_ttl_ms: 60_000,
            window_ms: 30_000,
            reuse_revokes_family: true,
        };
        let rt = refreshed_pair.refresh.clone().unwrap();
        let tessera_domain::refresh::Decision::Rotate {
            successor,
            refreshed: done,
            pair: successor_pair,
        } = tessera_domain::refresh::decide(&refreshed, &rt, &refreshed.client, 2_000, policy)
        else {
            panic!("a fresh pair rotates");
        };
        refreshed.refreshed = Some(done);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(FIRST_SCHEMA).unwrap();
            for record in [&old, &refreshed, &*successor] {
                let r = tessera_store::codec::TokenRow::from_record(record).unwrap();
                conn.execute(
                    "INSERT INTO tokens VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                    params![
                        r.id, r.access_hash, r.refresh_hash, r.family_id, r.generation, r.username,
                        r.realm, r.subject, r.client, r.created_at, r.access_expires_at,
                        r.refresh_expires_at, r.access_invalidated, r.refresh_invalidated,
                        r.refreshed_at, r.successor_id, r.sealed_successor, r.purge_after
                    ],
                )
                .unwrap();
            }
        }
        {
            let store = SqliteStore::open(&path).unwrap();
            assert_eq!(store.count_tokens().await.unwrap(), 3);
            for (record, pair) in [(&old, &old_pair), (&refreshed, &refreshed_pair)] {
                let found = store
                    .find_by_access(&pair.access.hash())
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(&found, record);
            }
            assert_eq!(
                store
                    .find_by_access(&successor_pair.access.hash())
                    .await
                    .unwrap()
                    .unwrap(),
                *successor
            );
            // The refreshed pair replays its successor, byte for byte.
            let replay = store
                .refresh(RefreshRequest {
                    refresh_token: rt.clone(),
                    caller: refreshed.client.clone(),
                    now: 3_000,
                    policy,
                })
                .await
                .unwrap()
                .unwrap();
            assert_eq!(replay.pair, successor_pair);
            assert!(!replay.rotated);
            // The moved pairs are still one family: invalidating the first
            // invalidates its successor.
            store.invalidate_refresh(&rt.hash()).await.unwrap();
            let successor_now = store
                .find_by_access(&successor_pair.access.hash())
                .await
                .unwrap()
                .unwrap();
            assert!(successor_now.access_invalidated && successor_now.refresh_invalidated);
            let unrelated = store
                .find_by_access(&old_pair.access.hash())
                .await
                .unwrap()
                .unwrap();
            assert!(!unrelated.access_invalidated);
        }
        for _ in 0..2 {
            // Twice: the upgrade is idempotent.
            let store = SqliteStore::open(&path).unwrap();
            let found = store
                .find_by_access(&old_pair.access.hash())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found, old);
            assert_eq!(found.scope, None);
            let client = tessera_domain::oauth::mint_client(Default::default(), 5).record;
            assert!(store.put_oauth_client(&client).await.unwrap());
            let (scoped, pair) = TokenRecord::issue_scoped(
                &s,
                client.client_ref(),
                Some(vec!["a".into()]),
                false,
                1_000,
                60_000,
            );
            store.insert_token(&scoped).await.unwrap();
            assert_eq!(
                store
                    .find_by_access(&pair.access.hash())
                    .await
                    .unwrap()
                    .unwrap(),
                scoped
            );
        }
    }

    /// The one conformance suite, run against a real SQLite file: as the
    /// serving process opens it (with the read cache) and as any other
    /// process does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = 0;
        tessera_store::conformance::run(|| {
            n += 1;
            let path = dir.path().join(format!("store-{n}.db"));
            async move {
                std::sync::Arc::new(SqliteStore::open_serving(&path).unwrap())
                    as std::sync::Arc<dyn Store>
            }
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance_without_serving() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = 0;
        tessera_store::conformance::run(|| {
            n += 1;
            let path = dir.path().join(format!("store-{n}.db"));
            async move {
                std::sync::Arc::new(SqliteStore::open(&path).unwrap()) as std::sync::Arc<dyn Store>
            }
        })
        .await;
    }

    /// The serving process caches; another process (here another store on
    /// the same file) invalidates: once that returned, the serving process
    /// never answers from its old entry. Many trials, with readers racing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writes_by_other_processes_reach_the_serving_cache() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("shared.db");
        let server = Arc::new(SqliteStore::open_serving(&path).unwrap());
        let cli = SqliteStore::open(&path).unwrap();
        let s = tessera_store::conformance::subject("shared");
        for trial in 0..100 {
            let (record, pair) = TokenRecord::issue(&s, s.client_ref(), true, 1_000, 60_000);
            // Inserted by either side; both are plain inserts.
            if trial % 2 == 0 {
                cli.insert_token(&record).await.unwrap();
            } else {
                server.insert_token(&record).await.unwrap();
            }
            let hash = pair.access.hash();
            for _ in 0..2 {
                let found = server.find_by_access(&hash).await.unwrap().unwrap();
                assert!(!found.access_invalidated);
            }
            let returned = Arc::new(AtomicBool::new(false));
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    let (server, returned) = (Arc::clone(&server), Arc::clone(&returned));
                    tokio::spawn(async move {
                        let mut after = 0;
                        while after < 3 {
                            let started_after = returned.load(Ordering::SeqCst);
                            let found = server.find_by_access(&hash).await.unwrap().unwrap();
                            if started_after {
                                assert!(found.access_invalidated, "trial {trial}: stale read");
                                after += 1;
                            }
                        }
                    })
                })
                .collect();
            assert_eq!(
                cli.invalidate_access(&hash).await.unwrap(),
                InvalidateOne::Invalidated
            );
            returned.store(true, Ordering::SeqCst);
            for r in readers {
                r.await.unwrap();
            }
        }
        // Users too: a password changed elsewhere is what the server reads.
        let upsert = |hash: &str| UserUpsert {
            username: "u".into(),
            password_hash: Some(hash.into()),
            roles: vec![],
            full_name: None,
            email: None,
            metadata: Default::default(),
            enabled: true,
        };
        server.put_user(upsert("h1")).await.unwrap();
        for _ in 0..2 {
            assert_eq!(
                server.get_user("u").await.unwrap().unwrap().password_hash,
                "h1"
            );
        }
        cli.set_password("u", "h2").await.unwrap();
        assert_eq!(
            server.get_user("u").await.unwrap().unwrap().password_hash,
            "h2"
        );
    }

    /// One serving process per database file; the next may start once it
    /// has gone, and a process that dies mid-lease ends its lease.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_serving_process_per_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("one.db");
        let first = SqliteStore::open_serving(&path).unwrap();
        let Err(e) = SqliteStore::open_serving(&path) else {
            panic!("a second serving store opened the same file");
        };
        assert!(e.to_string().contains("another tessera server"), "{e}");
        drop(first);
        let second = SqliteStore::open_serving(&path).unwrap();

        // A guest that takes a lease and vanishes (its socket closes).
        let cache = second.cache.clone().unwrap();
        let lease = cache::lease_address(&path).unwrap();
        let before = generations(&cache);
        let mut stream = std::os::unix::net::UnixStream::connect_addr(&lease).unwrap();
        let mut granted = [0u8; 1];
        std::io::Read::read_exact(&mut stream, &mut granted).unwrap();
        assert_eq!(
            generations(&cache),
            [None; 4],
            "nothing is served from the cache during a lease"
        );
        drop(stream);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while generations(&cache).contains(&None) {
            assert!(
                std::time::Instant::now() < deadline,
                "the lease never ended"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        for (after, before) in generations(&cache).iter().zip(before) {
            assert!(after > &before, "the ended lease moved every generation");
        }
    }

    /// Every table's generation, `None` while a write on it is in flight.
    fn generations(cache: &ReadCache) -> [Option<u64>; 4] {
        [
            cache.tokens.stable(),
            cache.users.stable(),
            cache.roles.stable(),
            cache.api_keys.stable(),
        ]
    }

    /// A write moves the generations of the tables it names and no other:
    /// a refresh leaves the users, roles and keys cached.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_move_only_the_tables_they_name() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open_serving(&dir.path().join("tables.db")).unwrap();
        let cache = store.cache.clone().unwrap();
        store
            .put_user(UserUpsert {
                username: "carol".into(),
                password_hash: Some("h".into()),
                roles: vec![],
                full_name: None,
                email: None,
                metadata: Default::default(),
                enabled: true,
            })
            .await
            .unwrap();
        let s = tessera_store::conformance::subject("carol");
        let (record, pair) = TokenRecord::issue(&s, s.client_ref(), true, 1_000, 60_000);
        store.insert_token(&record).await.unwrap();

        let before = generations(&cache);
        let refreshed = store
            .refresh(RefreshRequest {
                refresh_token: pair.refresh.unwrap(),
                caller: s.client_ref(),
                now: 2_000,
                policy: refresh::RefreshPolicy {
                    access_ttl_ms: 60_000,
                    window_ms: 30_000,
                    reuse_revokes_family: true,
                },
            })
            .await
            .unwrap();
        assert!(refreshed.is_ok());
        let after = generations(&cache);
        assert!(
            after[0] > before[0],
            "a refresh moves the tokens' generation"
        );
        assert_eq!(after[1..], before[1..], "and no other");

        store.set_enabled("carol", false).await.unwrap();
        let last = generations(&cache);
        assert!(
            last[1] > after[1],
            "a user change moves the users' generation"
        );
        assert_eq!(
            (last[0], &last[2..]),
            (after[0], &after[2..]),
            "and no other"
        );
    }
}
