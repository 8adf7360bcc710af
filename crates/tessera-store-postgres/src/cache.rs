//! Each node's read cache of what authentication reads, and the revocation
//! grace that keeps it from ever honouring what another node took back.
//!
//! Many nodes share one database and nothing tells a node that another one
//! changed a row (no LISTEN/NOTIFY, which CockroachDB and YugabyteDB lack
//! anyway). So the rule is one of time, with two halves:
//!
//! - **An entry lives at most `T`** (`cluster_cache_ttl`), counted on this
//!   node's monotonic clock from the moment *before* the read that filled
//!   it was sent. Whatever that read saw was committed before it started,
//!   so an entry is never older than `T` measured from a point at which it
//!   was current. Only rows that were found are kept: an absent token,
//!   user, role or key is asked of the database every time, so anything
//!   created on another node is seen at once.
//! - **Every write that may take something back answers only `T` after its
//!   commit** ([`Grace`], applied by [`crate::db::Db::run`] to every
//!   [`Repeat::Unsafe`](crate::db::Repeat) operation, and by
//!   `Store::refresh` when it revoked a family on reuse). A stale entry on
//!   any node was filled by a read that started before that commit, so it
//!   has expired by the time the caller hears "done". Writes that only add
//!   rows (a new pair, a new API key, the first user) are `Repeat::Adds`
//!   and answer at once.
//! - A refresh that rotates takes nothing back (the presented access token
//!   stays usable until it expires), so it answers at once; the node that
//!   ran it drops the refreshed pair from its own cache, so that its own
//!   later reads show the pair as refreshed. Another node may show it
//!   unrefreshed for up to `T`, which no answer depends on (authentication
//!   and introspection look only at the access token's own state).
//!
//! Entries are checked against `T` when read, on each node's own clock; two
//! clocks' rates differ by parts per million, so the grace adds 1% and a
//! millisecond. `T = 0` turns the cache and the grace off.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use tessera_domain::user::UserRecord;
use tessera_domain::{TokenKey, TokenRecord};
use tessera_store::{ApiKeyRecord, RoleDescriptor, StoreResult};

use crate::accounts::{named_documents, user_record, USER_BY_NAME};
use crate::db::Repeat;
use crate::keys::api_key_record;
use crate::tokens::{token_record, TOKEN_BY_ACCESS};
use crate::PostgresStore;

/// Entries per table; a full table first drops what has expired, then
/// starts over (a node's working set is its live tokens and their users).
const TABLE_CAPACITY: usize = 65_536;

/// The default `T`: well under a second, so revoking calls stay quick.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_millis(250);

/// How long a write that took something back waits after its commit.
pub(crate) struct Grace {
    wait: Duration,
    waits: AtomicU64,
}

impl Grace {
    pub(crate) fn new(ttl: Duration) -> Self {
        let wait = if ttl.is_zero() {
            Duration::ZERO
        } else {
            ttl + ttl / 100 + Duration::from_millis(1)
        };
        Self {
            wait,
            waits: AtomicU64::new(0),
        }
    }

    /// Called once the write's transaction has ended (committed, rolled
    /// back, or lost with its connection: an error may hide a commit), so
    /// every entry filled before the commit has expired on every node.
    pub(crate) async fn after_commit(&self) {
        if self.wait.is_zero() {
            return;
        }
        self.waits.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(self.wait).await;
    }

    /// How many writes have waited so far.
    pub(crate) fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }
}

/// One kind of cached row: each entry with the instant its read began,
/// and other keys it may be dropped by (a pair's refresh hash).
struct Table<K, V> {
    inner: RwLock<Inner<K, V>>,
}

struct Inner<K, V> {
    entries: HashMap<K, (Instant, V)>,
    aliases: HashMap<K, K>,
}

impl<K: Eq + Hash + Clone, V: Clone> Table<K, V> {
    fn new() -> Self {
        Self {
            inner: RwLock::new(Inner {
                entries: HashMap::new(),
                aliases: HashMap::new(),
            }),
        }
    }

    fn get<Q>(&self, key: &Q, ttl: Duration) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let (read_at, value) = inner.entries.get(key)?;
        (read_at.elapsed() < ttl).then(|| value.clone())
    }

    /// Remembers what a read begun at `read_at` found, unless it is already
    /// too old to serve; `alias` is another key [`Table::forget`] knows it by.
    fn put(&self, read_at: Instant, ttl: Duration, key: K, alias: Option<K>, value: V) {
        if read_at.elapsed() >= ttl {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let Inner { entries, aliases } = &mut *inner;
        if entries.len() >= TABLE_CAPACITY {
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= TABLE_CAPACITY {
                entries.clear();
            }
            aliases.retain(|_, key| entries.contains_key(key));
        }
        // A later read's answer is never replaced by an earlier one's.
        match entries.get(&key) {
            Some((at, _)) if *at > read_at => {}
            _ => {
                if let Some(alias) = alias {
                    aliases.insert(alias, key.clone());
                }
                entries.insert(key, (read_at, value));
            }
        }
    }

    /// Drops the entry known by `alias`.
    fn forget(&self, alias: &K) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(key) = inner.aliases.remove(alias) {
            inner.entries.remove(&key);
        }
    }
}

/// What authentication reads, per node.
pub(crate) struct ReadCache {
    ttl: Duration,
    tokens: Table<TokenKey, TokenRecord>,
    users: Table<String, UserRecord>,
    roles: Table<String, RoleDescriptor>,
    api_keys: Table<String, ApiKeyRecord>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ReadCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            tokens: Table::new(),
            users: Table::new(),
            roles: Table::new(),
            api_keys: Table::new(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    fn count<V>(&self, found: Option<V>) -> Option<V> {
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Lookups answered from memory and lookups that went to the database.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }
}

/// The store's cached reads (`Store::find_by_access`, `get_user`,
/// `get_roles`, `get_api_key`).
impl PostgresStore {
    pub(crate) fn token_now(&self, hash: &TokenKey) -> Option<TokenRecord> {
        let cache = &self.cache;
        if !cache.enabled() {
            return None;
        }
        cache.count(cache.tokens.get(hash, cache.ttl))
    }

    pub(crate) async fn cached_token(&self, hash: &TokenKey) -> StoreResult<Option<TokenRecord>> {
        if let Some(hit) = self.token_now(hash) {
            return Ok(Some(hit));
        }
        let read_at = Instant::now();
        let found = self
            .db
            .run(
                "find_by_access",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c.prepare_cached(&TOKEN_BY_ACCESS).await?;
                    token_record(c.query_opt(&stmt, &[&hash.0.as_slice()]).await?)
                }),
            )
            .await?;
        if let (true, Some(record)) = (self.cache.enabled(), &found) {
            let cache = &self.cache;
            let alias = record.refresh_hash;
            cache
                .tokens
                .put(read_at, cache.ttl, *hash, alias, record.clone());
        }
        Ok(found)
    }

    /// Drops this node's cached pair of the refresh token `hash` (after
    /// a refresh on this node).
    pub(crate) fn forget_refreshed(&self, hash: &TokenKey) {
        if self.cache.enabled() {
            self.cache.tokens.forget(hash);
        }
    }

    pub(crate) async fn cached_user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let cache = &self.cache;
        if cache.enabled() {
            if let Some(hit) = cache.count(cache.users.get(username, cache.ttl)) {
                return Ok(Some(hit));
            }
        }
        let read_at = Instant::now();
        let found = self
            .db
            .read_one("get_user", &USER_BY_NAME, username, user_record)
            .await?;
        if let (true, Some(user)) = (cache.enabled(), &found) {
            cache
                .users
                .put(read_at, cache.ttl, username.to_owned(), None, user.clone());
        }
        Ok(found)
    }

    pub(crate) async fn cached_api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let cache = &self.cache;
        if cache.enabled() {
            if let Some(hit) = cache.count(cache.api_keys.get(id, cache.ttl)) {
                return Ok(Some(hit));
            }
        }
        let read_at = Instant::now();
        let sql = format!(
            "SELECT {} FROM api_keys WHERE id = $1",
            tessera_store::codec::API_KEY_COLUMNS
        );
        let found = self
            .db
            .read_one("get_api_key", &sql, id, api_key_record)
            .await?;
        if let (true, Some(key)) = (cache.enabled(), &found) {
            cache
                .api_keys
                .put(read_at, cache.ttl, id.to_owned(), None, key.clone());
        }
        Ok(found)
    }

    /// The named roles that exist, in the order asked: from memory when
    /// every one is cached, else all read again (a name that does not
    /// exist is never cached, so it always reads).
    pub(crate) async fn cached_roles(
        &self,
        names: &[String],
    ) -> StoreResult<Vec<(String, RoleDescriptor)>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let cache = &self.cache;
        if cache.enabled() {
            let hits: Option<Vec<_>> = names
                .iter()
                .map(|n| cache.roles.get(n, cache.ttl).map(|d| (n.clone(), d)))
                .collect();
            if let Some(hits) = cache.count(hits) {
                return Ok(hits);
            }
        }
        let read_at = Instant::now();
        let found = self
            .db
            .run(
                "get_roles",
                Repeat::Safe,
                attempt!(|c| {
                    let stmt = c
                        .prepare_cached("SELECT name, descriptor FROM roles WHERE name = ANY($1)")
                        .await?;
                    named_documents(
                        &c.query(&stmt, &[&names]).await?,
                        tessera_store::codec::from_json::<RoleDescriptor>,
                    )
                }),
            )
            .await?;
        if cache.enabled() {
            for (name, role) in &found {
                cache
                    .roles
                    .put(read_at, cache.ttl, name.clone(), None, role.clone());
            }
        }
        // In the order asked for, like the other backends.
        Ok(names
            .iter()
            .filter_map(|n| found.iter().find(|(name, _)| name == n).cloned())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_served_only_younger_than_the_ttl_counted_from_its_read() {
        let ttl = Duration::from_secs(3600);
        let table: Table<String, u32> = Table::new();
        let now = Instant::now();
        table.put(now, ttl, "a".into(), Some("alias".into()), 1);
        assert_eq!(table.get("a", ttl), Some(1));
        // The same entry is too old for a shorter limit.
        assert_eq!(table.get("a", Duration::ZERO), None);
        // A read that began before the cached one never replaces it.
        let earlier = now.checked_sub(Duration::from_millis(5)).unwrap_or(now);
        table.put(earlier, ttl, "a".into(), None, 0);
        if earlier < now {
            assert_eq!(table.get("a", ttl), Some(1));
        }
        table.forget(&"alias".to_owned());
        assert_eq!(table.get("a", ttl), None);
        // A read that began longer than the ttl ago is not kept.
        let old = now.checked_sub(Duration::from_secs(7200));
        if let Some(old) = old {
            table.put(old, ttl, "b".into(), None, 2);
            assert_eq!(table.get("b", ttl), None);
        }
    }

    #[test]
    fn the_grace_outlasts_the_ttl_and_is_off_with_it() {
        let ttl = Duration::from_millis(250);
        assert!(Grace::new(ttl).wait > ttl);
        assert!(Grace::new(Duration::ZERO).wait.is_zero());
    }
}
