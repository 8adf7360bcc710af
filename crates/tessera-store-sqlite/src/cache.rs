//! The serving process's read cache, and how every process that writes to
//! the same file keeps it exact.
//!
//! The process that serves (`SqliteStore::open_serving`) keeps what the
//! authentication path reads (access tokens by hash, users, roles, API keys)
//! in memory, one [`Table`] each. The cache is never stale, by construction:
//!
//! - Every write that may change or remove an existing row (a *revoking*
//!   write: an invalidation, a refresh, any change to a user, role or key)
//!   names the tables it may make stale ([`Affects`]), and is bracketed by
//!   two counters of each of them: `begun` is bumped just before the
//!   transaction's `COMMIT` (nothing it wrote is visible to readers until
//!   then) and `done` after it has committed, before anyone is answered.
//!   Writes that only insert new rows leave them alone: nothing cached can
//!   depend on a row that did not exist.
//! - A lookup in a table is served from memory only while no revoking write
//!   on that table is in flight (`begun == done`) and the entry was filled
//!   under the table's current `done`. So once an invalidation has been
//!   answered, every later lookup of a token misses and reads the database,
//!   while users, roles and keys stay cached (a refresh does not make the
//!   caller's Basic credentials a database read).
//! - A miss fills the table only if its counters did not move while the
//!   database was read, so a read that raced a revoking write never leaves
//!   its (possibly old) answer behind.
//!
//! Other processes (`tessera client …`, tools on the same file) write
//! through a plain [`SqliteStore::open`](crate::SqliteStore::open). The
//! serving process holds an exclusive lock on `<db>.lock` and listens on an
//! abstract Unix socket named after the database's path. Before a revoking
//! write another process either takes a shared lock on `<db>.lock` (so no
//! server is running, and none can start until it is done), or, when a
//! server holds the lock, opens a *lease* on that socket: the server bumps
//! every table's `begun` on connect and `done` when the lease ends (or its
//! process dies and the kernel closes the socket), and confirms before the
//! writer answers.

use std::collections::HashMap;
use std::fs::{File, TryLockError};
use std::hash::Hash;
use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tessera_domain::token::to_hex;
use tessera_domain::user::UserRecord;
use tessera_domain::{TokenKey, TokenRecord};
use tessera_store::{ApiKeyRecord, RoleDescriptor, StoreError, StoreResult};

/// Entries per table; a full table starts over (the working set of a busy
/// node is its live tokens, far fewer than what is stored).
const TABLE_CAPACITY: usize = 65_536;
/// How long a process waits for the lock or a lease before giving up.
const LOCK_PATIENCE: Duration = Duration::from_secs(5);
/// Lease connections a server serves at once; more are refused.
const MAX_LEASES: usize = 64;

const LEASE_GRANTED: u8 = b'L';
const LEASE_DONE: u8 = b'D';
const LEASE_CONFIRMED: u8 = b'K';

pub(crate) struct ReadCache {
    pub tokens: Table<TokenKey, TokenRecord>,
    pub users: Table<String, UserRecord>,
    pub roles: Table<String, RoleDescriptor>,
    pub api_keys: Table<String, ApiKeyRecord>,
}

/// Which tables of the cache a revoking write may make stale.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Affects(u8);

impl Affects {
    pub const NOTHING: Affects = Affects(0);
    pub const TOKENS: Affects = Affects(1);
    pub const USERS: Affects = Affects(2);
    pub const ROLES: Affects = Affects(4);
    pub const API_KEYS: Affects = Affects(8);
    pub const ALL: Affects = Affects(15);

    /// The tables either names.
    pub const fn union(self, other: Affects) -> Affects {
        Affects(self.0 | other.0)
    }

    fn contains(self, other: Affects) -> bool {
        self.0 & other.0 == other.0
    }
}

/// A table's pair of counters (see the module's documentation).
#[derive(Default)]
struct Counters {
    begun: AtomicU64,
    done: AtomicU64,
}

impl Counters {
    /// The current generation, or `None` while a revoking write is in flight.
    fn stable(&self) -> Option<u64> {
        let done = self.done.load(SeqCst);
        let begun = self.begun.load(SeqCst);
        (begun == done).then_some(done)
    }
}

/// One kind of cached row, with its own counters: a write that can only
/// change tokens leaves the users, roles and keys cached, and so on.
pub(crate) struct Table<K, V> {
    counters: Counters,
    /// The `done` generation the entries were filled under, and the entries.
    inner: RwLock<(u64, HashMap<K, V>)>,
}

impl<K: Eq + Hash, V: Clone> Table<K, V> {
    fn new() -> Self {
        Self {
            counters: Counters::default(),
            inner: RwLock::new((0, HashMap::new())),
        }
    }

    /// The table's current generation, or `None` while a revoking write
    /// that may change it is in flight (then nothing is served from, or put
    /// into, the table).
    pub fn stable(&self) -> Option<u64> {
        self.counters.stable()
    }

    /// The cached value, if it is current.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        let generation = self.stable()?;
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        if inner.0 != generation {
            return None;
        }
        inner.1.get(key).cloned()
    }

    /// Remembers what a read that started at `read_at` (from
    /// [`Table::stable`]) found, unless a revoking write on this table
    /// began or ended since.
    pub fn put(&self, read_at: u64, key: K, value: V) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        // Checked under the table's lock: a later generation can only be
        // installed by a put that saw it, so an entry never outlives its own.
        if self.stable() != Some(read_at) {
            return;
        }
        if inner.0 != read_at || inner.1.len() >= TABLE_CAPACITY {
            inner.1.clear();
            inner.0 = read_at;
        }
        inner.1.insert(key, value);
    }
}

impl ReadCache {
    fn new() -> Self {
        Self {
            tokens: Table::new(),
            users: Table::new(),
            roles: Table::new(),
            api_keys: Table::new(),
        }
    }

    /// The counters of the tables `affects` names.
    fn counters(&self, affects: Affects) -> impl Iterator<Item = &Counters> {
        [
            (Affects::TOKENS, &self.tokens.counters),
            (Affects::USERS, &self.users.counters),
            (Affects::ROLES, &self.roles.counters),
            (Affects::API_KEYS, &self.api_keys.counters),
        ]
        .into_iter()
        .filter(move |(table, _)| affects.contains(*table))
        .map(|(_, counters)| counters)
    }

    fn begin_revoking(&self, affects: Affects) {
        for c in self.counters(affects) {
            c.begun.fetch_add(1, SeqCst);
        }
    }

    fn end_revoking(&self, affects: Affects) {
        for c in self.counters(affects) {
            c.done.fetch_add(1, SeqCst);
        }
    }
}

/// How a store's writer announces revoking writes.
pub(crate) enum Coherence {
    /// The serving process: its own cache.
    Owner(Arc<ReadCache>),
    /// Any other process: through the lock file or a lease from the server.
    Guest {
        lock_path: PathBuf,
        lease: SocketAddr,
    },
}

/// Held from before a revoking transaction begins until it has committed.
pub(crate) enum RevokingWrite {
    Owner(Arc<ReadCache>, Affects),
    /// No server runs; the shared lock keeps one from starting meanwhile.
    Unserved(#[allow(dead_code)] File),
    Lease(UnixStream),
}

impl Coherence {
    /// Announces a revoking write that may change the `affects` tables. A
    /// guest's lease covers every table.
    pub fn begin(&self, affects: Affects) -> StoreResult<RevokingWrite> {
        match self {
            Coherence::Owner(cache) => {
                cache.begin_revoking(affects);
                Ok(RevokingWrite::Owner(Arc::clone(cache), affects))
            }
            Coherence::Guest { lock_path, lease } => guest_begin(lock_path, lease),
        }
    }
}

impl RevokingWrite {
    /// Called once the transaction has committed (or failed), before any
    /// job is answered.
    pub fn end(self) -> StoreResult<()> {
        match self {
            RevokingWrite::Owner(cache, affects) => {
                cache.end_revoking(affects);
                Ok(())
            }
            RevokingWrite::Unserved(_lock) => Ok(()),
            RevokingWrite::Lease(mut stream) => {
                let mut confirmed = [0u8; 1];
                stream
                    .write_all(&[LEASE_DONE])
                    .and_then(|()| stream.read_exact(&mut confirmed))
                    .map_err(|e| {
                        StoreError::Unavailable(format!(
                            "the running server did not confirm the end of a write lease: {e}"
                        ))
                    })?;
                Ok(())
            }
        }
    }
}

/// The shared lock on `lock_path`, held by the returned file; `None` when
/// a server holds the exclusive one.
fn try_shared(lock_path: &Path) -> StoreResult<Option<File>> {
    let file = open_lock_file(lock_path)?;
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(file)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => Err(StoreError::Unavailable(format!(
            "cannot lock {}: {e}",
            lock_path.display()
        ))),
    }
}

fn guest_begin(lock_path: &Path, lease: &SocketAddr) -> StoreResult<RevokingWrite> {
    let deadline = Instant::now() + LOCK_PATIENCE;
    loop {
        if let Some(file) = try_shared(lock_path)? {
            return Ok(RevokingWrite::Unserved(file));
        }
        // A server holds the lock: ask it for a lease.
        if let Ok(mut stream) = UnixStream::connect_addr(lease) {
            stream.set_read_timeout(Some(LOCK_PATIENCE)).ok();
            let mut granted = [0u8; 1];
            if stream.read_exact(&mut granted).is_ok() && granted[0] == LEASE_GRANTED {
                return Ok(RevokingWrite::Lease(stream));
            }
        }
        // The server is starting or stopping: try again shortly.
        if Instant::now() >= deadline {
            return Err(StoreError::Unavailable(format!(
                "a tessera server holds {} but does not grant a write lease",
                lock_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Who opens a database, as far as an upgrade of its schema goes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Opener<'a> {
    /// The serving process: it took the exclusive lock before opening.
    Server,
    /// Any other process, on the database at this path.
    Guest(&'a Path),
}

impl Opener<'_> {
    /// What the opener holds while it upgrades a schema of version
    /// `stored` (`None`: no tables yet). A guest takes the shared lock, so
    /// that no server starts until the upgrade has committed; if a server
    /// holds the lock, the guest refuses: that server runs an older tessera
    /// (this one would have upgraded the schema when it started), and
    /// moving the schema from under it would break it.
    pub(crate) fn hold_for_upgrade(self, stored: Option<i64>) -> StoreResult<Option<File>> {
        let Opener::Guest(db) = self else {
            return Ok(None);
        };
        match try_shared(&lock_path(db))? {
            Some(file) => Ok(Some(file)),
            None => Err(StoreError::Unavailable(format!(
                "a tessera server is serving {} with schema version {}, older than version \
                 {} of this tessera ({}); upgrading it now would break that server: stop it, \
                 then start this version's server (it upgrades the store) or run this command \
                 again",
                db.display(),
                stored.map_or_else(|| "none".to_owned(), |v| v.to_string()),
                crate::SCHEMA_VERSION,
                env!("CARGO_PKG_VERSION"),
            ))),
        }
    }
}

fn open_lock_file(lock_path: &Path) -> StoreResult<File> {
    crate::files::open_private(lock_path)
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", lock_path.display())))
}

/// `<db>.lock` next to the database.
pub(crate) fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// The abstract socket a server on `db` grants leases on: named after the
/// database's canonical path, so every process finds the same one.
pub(crate) fn lease_address(db: &Path) -> StoreResult<SocketAddr> {
    let canonical = std::fs::canonicalize(db)
        .map_err(|e| StoreError::Unavailable(format!("cannot resolve {}: {e}", db.display())))?;
    let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
    let name = format!("tessera-lease-{}", to_hex(&digest[..16]));
    SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| StoreError::Internal(format!("lease socket name: {e}")))
}

/// What the serving process holds: the exclusive lock and the lease
/// listener. Dropping it stops the listener and releases the lock.
pub(crate) struct Serving {
    _lock: File,
    stop: Arc<AtomicBool>,
    lease: SocketAddr,
    listener: Option<std::thread::JoinHandle<()>>,
}

impl Serving {
    /// Takes the exclusive lock (waiting a little for other processes'
    /// writes to finish) and starts granting leases to `cache`.
    pub fn start(db: &Path, cache: Arc<ReadCache>) -> StoreResult<Self> {
        let lock_path = lock_path(db);
        let deadline = Instant::now() + LOCK_PATIENCE;
        let lock = loop {
            let file = open_lock_file(&lock_path)?;
            match file.try_lock() {
                Ok(()) => break file,
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(StoreError::Unavailable(format!(
                        "{} is locked: another tessera server is running on this database \
                         (the embedded store serves one process; scale out with PostgreSQL)",
                        lock_path.display()
                    )))
                }
                Err(TryLockError::Error(e)) => {
                    return Err(StoreError::Unavailable(format!(
                        "cannot lock {}: {e}",
                        lock_path.display()
                    )))
                }
            }
        };
        let lease = lease_address(db)?;
        let listener = UnixListener::bind_addr(&lease)
            .map_err(|e| StoreError::Unavailable(format!("cannot listen for write leases: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let running = Arc::clone(&stop);
        let listener = std::thread::Builder::new()
            .name("sqlite-leases".into())
            .spawn(move || grant_leases(listener, cache, running))
            .map_err(|e| StoreError::Internal(format!("spawning the lease thread: {e}")))?;
        Ok(Self {
            _lock: lock,
            stop,
            lease,
            listener: Some(listener),
        })
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        // Wake the accept loop so it sees the flag, and wait until it has
        // closed the socket: the name is free again when this returns.
        if UnixStream::connect_addr(&self.lease).is_ok() {
            if let Some(listener) = self.listener.take() {
                let _ = listener.join();
            }
        }
    }
}

fn grant_leases(listener: UnixListener, cache: Arc<ReadCache>, stop: Arc<AtomicBool>) {
    let open = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(SeqCst) {
            break;
        }
        let Ok(mut stream) = stream else { continue };
        if open.fetch_add(1, SeqCst) >= MAX_LEASES {
            open.fetch_sub(1, SeqCst);
            continue;
        }
        let (cache, in_thread) = (Arc::clone(&cache), Arc::clone(&open));
        let spawned = std::thread::Builder::new()
            .name("sqlite-lease".into())
            .spawn(move || {
                cache.begin_revoking(Affects::ALL);
                let mut byte = [0u8; 1];
                // Whatever happens next (the lease ends, the guest dies, the
                // socket breaks), the lease ends here and the cache with it.
                if stream.write_all(&[LEASE_GRANTED]).is_ok() {
                    let _ = stream.read_exact(&mut byte);
                }
                cache.end_revoking(Affects::ALL);
                if byte[0] == LEASE_DONE {
                    let _ = stream.write_all(&[LEASE_CONFIRMED]);
                }
                in_thread.fetch_sub(1, SeqCst);
            });
        if spawned.is_err() {
            open.fetch_sub(1, SeqCst);
            tracing::error!("cannot spawn a thread for a write lease; refused");
        }
    }
}

/// A fresh cache for a serving store.
pub(crate) fn new_cache() -> Arc<ReadCache> {
    Arc::new(ReadCache::new())
}
