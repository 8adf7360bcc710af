//! Each node's read cache of what authentication reads, and the revocation
//! grace that keeps it from ever honouring what another node took back.
//!
//! Many nodes share one database and nothing tells a node that another one
//! changed a row (no LISTEN/NOTIFY, which CockroachDB and YugabyteDB lack
//! anyway). So the rules are of time and of one shared counter:
//!
//! - **An entry lives at most `T`** (`cluster_cache_ttl`), counted on this
//!   node's monotonic clock from the moment *before* the read that filled
//!   it was sent. Whatever that read saw was committed before it started,
//!   so an entry is never older than `T` measured from a point at which it
//!   was current. Only rows that were found are kept: an absent token,
//!   user, role or key is asked of the database every time, so anything
//!   created on another node is seen at once.
//! - **Every write that may take something back answers only `T` after its
//!   commit** ([`Grace`], applied by [`crate::db::Db::revoking`] to every
//!   such write, and by `Store::refresh` when it revoked a family on
//!   reuse). A stale entry on any node was filled by a read that started
//!   before that commit, so it has expired by the time the caller hears
//!   "done". Writes that only add rows (a new pair, a new API key, the
//!   first user, a service token) are `Repeat::Adds` and answer at once.
//! - **An entry may outlive `T` while nothing is taken back**: each
//!   revoking write also adds to the revocation epoch in its transaction,
//!   and an entry older than `T` is still served while this node's newest
//!   poll of the epoch, sent less than `T` ago, reads the same epoch as
//!   the entry's read did (`epoch.rs` argues why that is safe). So hot
//!   entries are read from the database once, not once every `T`, until
//!   anything is taken back anywhere.
//! - A refresh that rotates takes nothing back (the presented access token
//!   stays usable until it expires), so it answers at once and does not
//!   move the epoch; the node that ran it drops the refreshed pair from its
//!   own cache, so that its own later reads show the pair as refreshed.
//!   Another node may show it unrefreshed for as long as it keeps the
//!   entry, which no answer depends on (authentication and introspection
//!   look only at the access token's own state).
//!
//! Entries are checked against `T` when read, on each node's own clock; two
//! clocks' rates differ by parts per million, so the grace adds 1% and a
//! millisecond. `T = 0` turns the cache and the grace off.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tessera_domain::user::UserRecord;
use tessera_domain::{TokenKey, TokenRecord};
use tessera_store::{ApiKeyRecord, RoleDescriptor, StoreResult};

use crate::accounts::{named_documents, user_record, USER_BY_NAME};
use crate::db::{Db, Repeat};
use crate::epoch::{spawn_poller, Latest, Poller};
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

/// One kind of cached row: each entry with the instant its read began and
/// its epoch tag, and other keys it may be dropped by (a pair's refresh
/// hash).
struct Table<K, V> {
    inner: RwLock<Inner<K, V>>,
}

struct Inner<K, V> {
    entries: HashMap<K, Entry<V>>,
    aliases: HashMap<K, K>,
}

struct Entry<V> {
    read_at: Instant,
    tag: Option<i64>,
    value: V,
}

/// What an entry must satisfy to be served now: be younger than `ttl`,
/// or carry the epoch `current` (see `epoch.rs`).
#[derive(Clone, Copy)]
struct Fresh {
    ttl: Duration,
    current: Option<i64>,
}

impl Fresh {
    /// `None`: not to be served; `Some(true)`: served by the epoch only.
    fn judge<V>(&self, entry: &Entry<V>) -> Option<bool> {
        if entry.read_at.elapsed() < self.ttl {
            Some(false)
        } else if entry.tag.is_some() && entry.tag == self.current {
            Some(true)
        } else {
            None
        }
    }
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

    /// The entry, if it may be served, and whether only its epoch let it.
    fn get<Q>(&self, key: &Q, fresh: Fresh) -> Option<(V, bool)>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let entry = inner.entries.get(key)?;
        fresh
            .judge(entry)
            .map(|extended| (entry.value.clone(), extended))
    }

    /// Remembers what a read begun at `read_at`, tagged `tag`, found;
    /// `alias` is another key [`Table::forget`] knows it by.
    fn put(&self, fresh: Fresh, entry: Entry<V>, key: K, alias: Option<K>) {
        if fresh.judge(&entry).is_none() {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        let Inner { entries, aliases } = &mut *inner;
        if entries.len() >= TABLE_CAPACITY {
            entries.retain(|_, e| fresh.judge(e).is_some());
            if entries.len() >= TABLE_CAPACITY {
                entries.clear();
            }
            aliases.retain(|_, key| entries.contains_key(key));
        }
        // A later read's answer is never replaced by an earlier one's.
        match entries.get(&key) {
            Some(e) if e.read_at > entry.read_at => {}
            _ => {
                if let Some(alias) = alias {
                    aliases.insert(alias, key.clone());
                }
                entries.insert(key, entry);
            }
        }
    }

    /// Drops the entries of `keys`.
    fn remove(&self, keys: &[K]) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        for key in keys {
            inner.entries.remove(key);
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
    /// The newest epoch this node read, and the task reading it.
    latest: Arc<Latest>,
    poller: Mutex<Option<Poller>>,
    hits: AtomicU64,
    extended: AtomicU64,
    misses: AtomicU64,
}

/// A read about to be sent: when, and the epoch its entries are tagged with.
struct Ticket {
    read_at: Instant,
    tag: Option<i64>,
}

impl ReadCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            tokens: Table::new(),
            users: Table::new(),
            roles: Table::new(),
            api_keys: Table::new(),
            latest: Arc::default(),
            poller: Mutex::new(None),
            hits: AtomicU64::new(0),
            extended: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Starts polling the revocation epoch, so that entries may outlive
    /// `T` while nothing is taken back (once the schema has `cache_epoch`).
    pub(crate) fn watch_epoch(&self, db: &Db) {
        if self.enabled() {
            let (pool, timeout) = db.pool();
            let poller = spawn_poller(pool, Arc::clone(&self.latest), self.ttl, timeout);
            *self.poller.lock().unwrap_or_else(PoisonError::into_inner) = Some(poller);
        }
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    fn fresh(&self) -> Fresh {
        Fresh {
            ttl: self.ttl,
            current: self.latest.current(self.ttl),
        }
    }

    fn ticket(&self) -> Ticket {
        // The tag first: the poll it comes from completed before the read.
        let tag = self.latest.tag();
        Ticket {
            read_at: Instant::now(),
            tag,
        }
    }

    fn keep<K: Eq + Hash + Clone, V: Clone>(
        &self,
        table: &Table<K, V>,
        ticket: &Ticket,
        key: K,
        alias: Option<K>,
        value: V,
    ) {
        let entry = Entry {
            read_at: ticket.read_at,
            tag: ticket.tag,
            value,
        };
        table.put(self.fresh(), entry, key, alias);
    }

    /// Counts a lookup: a hit (and whether only the epoch allowed it), or
    /// a miss.
    fn count<V>(&self, found: Option<(V, bool)>) -> Option<V> {
        let counter = match &found {
            Some((_, false)) => &self.hits,
            Some((_, true)) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                &self.extended
            }
            None => &self.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found.map(|(value, _)| value)
    }

    /// Lookups answered from memory (of which, by the epoch alone past
    /// `T`), and lookups that went to the database.
    pub(crate) fn counts(&self) -> (u64, u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.extended.load(Ordering::Relaxed),
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
        cache.count(cache.tokens.get(hash, cache.fresh()))
    }

    pub(crate) async fn cached_token(&self, hash: &TokenKey) -> StoreResult<Option<TokenRecord>> {
        if let Some(hit) = self.token_now(hash) {
            return Ok(Some(hit));
        }
        let ticket = self.cache.ticket();
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
            let alias = record.refresh_hash;
            let cache = &self.cache;
            cache.keep(&cache.tokens, &ticket, *hash, alias, record.clone());
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

    /// Drops this node's cached pairs and API keys that a purge on this
    /// node deleted.
    pub(crate) fn forget_purged(&self, purged: &crate::purge::Purged) {
        if self.cache.enabled() {
            self.cache.tokens.remove(&purged.tokens);
            self.cache.api_keys.remove(&purged.api_keys);
        }
    }

    pub(crate) async fn cached_user(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let cache = &self.cache;
        if cache.enabled() {
            if let Some(hit) = cache.count(cache.users.get(username, cache.fresh())) {
                return Ok(Some(hit));
            }
        }
        let ticket = cache.ticket();
        let found = self
            .db
            .read_one("get_user", &USER_BY_NAME, username, user_record)
            .await?;
        if let (true, Some(user)) = (cache.enabled(), &found) {
            cache.keep(
                &cache.users,
                &ticket,
                username.to_owned(),
                None,
                user.clone(),
            );
        }
        Ok(found)
    }

    pub(crate) async fn cached_api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let cache = &self.cache;
        if cache.enabled() {
            if let Some(hit) = cache.count(cache.api_keys.get(id, cache.fresh())) {
                return Ok(Some(hit));
            }
        }
        let ticket = cache.ticket();
        let sql = format!(
            "SELECT {} FROM api_keys WHERE id = $1",
            tessera_store::codec::API_KEY_COLUMNS
        );
        let found = self
            .db
            .read_one("get_api_key", &sql, id, api_key_record)
            .await?;
        if let (true, Some(key)) = (cache.enabled(), &found) {
            cache.keep(&cache.api_keys, &ticket, id.to_owned(), None, key.clone());
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
            let fresh = cache.fresh();
            let mut extended = false;
            let hits: Option<Vec<_>> = names
                .iter()
                .map(|n| {
                    let (role, by_epoch) = cache.roles.get(n, fresh)?;
                    extended |= by_epoch;
                    Some((n.clone(), role))
                })
                .collect();
            if let Some(hits) = cache.count(hits.map(|h| (h, extended))) {
                return Ok(hits);
            }
        }
        let ticket = cache.ticket();
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
                cache.keep(&cache.roles, &ticket, name.clone(), None, role.clone());
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

    fn entry(read_at: Instant, tag: Option<i64>, value: u32) -> Entry<u32> {
        Entry {
            read_at,
            tag,
            value,
        }
    }

    fn young(ttl: Duration) -> Fresh {
        Fresh { ttl, current: None }
    }

    #[test]
    fn an_entry_is_served_only_younger_than_the_ttl_counted_from_its_read() {
        let ttl = Duration::from_secs(3600);
        let table: Table<String, u32> = Table::new();
        let now = Instant::now();
        table.put(
            young(ttl),
            entry(now, None, 1),
            "a".into(),
            Some("alias".into()),
        );
        assert_eq!(table.get("a", young(ttl)), Some((1, false)));
        // The same entry is too old for a shorter limit.
        assert_eq!(table.get("a", young(Duration::ZERO)), None);
        // A read that began before the cached one never replaces it.
        let earlier = now.checked_sub(Duration::from_millis(5)).unwrap_or(now);
        table.put(young(ttl), entry(earlier, None, 0), "a".into(), None);
        if earlier < now {
            assert_eq!(table.get("a", young(ttl)), Some((1, false)));
        }
        table.forget(&"alias".to_owned());
        assert_eq!(table.get("a", young(ttl)), None);
        // A read that began longer than the ttl ago is not kept.
        let old = now.checked_sub(Duration::from_secs(7200));
        if let Some(old) = old {
            table.put(young(ttl), entry(old, None, 2), "b".into(), None);
            assert_eq!(table.get("b", young(ttl)), None);
        }
    }

    #[test]
    fn an_old_entry_is_served_only_while_a_recent_poll_reads_its_tag() {
        let table: Table<String, u32> = Table::new();
        let expired = Duration::ZERO;
        let at = |current| Fresh {
            ttl: expired,
            current,
        };
        table.put(
            at(Some(7)),
            entry(Instant::now(), Some(7), 1),
            "a".into(),
            None,
        );
        assert_eq!(table.get("a", at(Some(7))), Some((1, true)));
        // Something was taken back since: the epoch moved on.
        assert_eq!(table.get("a", at(Some(8))), None);
        // No recent poll: only the plain rule, which it fails.
        assert_eq!(table.get("a", at(None)), None);
        // An entry read before any poll has no tag, so no poll serves it.
        table.put(
            young(Duration::from_secs(60)),
            entry(Instant::now(), None, 2),
            "b".into(),
            None,
        );
        assert_eq!(table.get("b", at(Some(7))), None);
        assert_eq!(table.get("b", at(None)), None);
    }

    #[test]
    fn only_a_poll_sent_within_the_ttl_is_current() {
        let latest = Latest::default();
        assert_eq!(latest.tag(), None);
        latest.record_for_test(Instant::now(), 3);
        assert_eq!(latest.tag(), Some(3));
        assert_eq!(latest.current(Duration::from_secs(60)), Some(3));
        assert_eq!(latest.current(Duration::ZERO), None);
    }

    #[test]
    fn the_grace_outlasts_the_ttl_and_is_off_with_it() {
        let ttl = Duration::from_millis(250);
        assert!(Grace::new(ttl).wait > ttl);
        assert!(Grace::new(Duration::ZERO).wait.is_zero());
    }
}
