//! Connections that many single statements use at the same time.
//!
//! tokio-postgres pipelines the statements that concurrent callers send on
//! one connection: each goes out as its own `Bind`/`Execute`/`Sync`, so
//! the server runs them one after the other, each in its own implicit
//! transaction, exactly as if each caller had had the connection alone.
//! Half the pool ([`Shared::for_pool`]) is kept as such shared connections
//! for statements that need nothing of a session but the session itself:
//! the two statements of an unlocked refresh (`refresh.rs`) and the insert
//! of a pair that has no sources (`insert_derived`). Everything else, and
//! every transaction, leases a connection of its own (`db::Lease`).
//!
//! # Why
//!
//! A refresh is two round trips, and the second depends on what the domain
//! decides from the first. With a connection leased per refresh, each
//! statement is a system call that wakes a backend for one statement, and
//! the backend then waits, idle, while the node decides. On a shared
//! connection, statements that queue while its connection task waits to
//! run leave in one write and are read by the backend in one go, and the
//! backend has the next caller's statement to run while the node decides
//! on the previous one. On the benchmark machine this took a node's CPU per
//! refresh from about 100 µs to about 70 µs and refresh from about 0.78× to
//! about 0.95× `pgbench -N` (docs/benchmarks.md).
//!
//! # What may run here
//!
//! Only statements that leave nothing behind in the session: no `BEGIN`,
//! no `SET`, no advisory lock held past the statement, no temporary table,
//! no `LISTEN`. Each statement is its own transaction, so one caller's
//! failure or cancellation (`statement_timeout` cancels only the statement
//! that ran out) never touches another's.
//!
//! # Waiting behind another caller
//!
//! A statement that waits for a row lock delays the statements queued
//! behind it on the same connection. The lock's holder is a transaction on
//! a leased connection (a locked refresh, an invalidation, a user change),
//! which never waits for a shared connection, so the wait ends when it
//! commits, or at the statement timeout; a shared connection can therefore
//! never be part of a deadlock the server cannot see.
//!
//! # When a connection fails
//!
//! A caller that finds its connection dead, or whose attempt on it took
//! longer than the client-side limit (`db::Db::attempts`: the connection
//! may be hung), gives it up: the next caller of its slot opens another
//! through the pool. Callers still using the old one finish (or fail) on
//! it, and the last of them closes it instead of handing it back to the
//! pool. A caller that merely goes away (its client hung up) keeps nothing
//! half-done: the driver sends each statement whole and drops the answer
//! nobody waits for, and the statement is its own transaction.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use deadpool_postgres::{Client, Object, Pool, PoolError};

/// The shared connections of one store, filled from its pool when first
/// needed.
pub(crate) struct Shared {
    slots: Box<[Mutex<Option<Arc<SharedConn>>>]>,
    /// The slot the next caller takes, round robin.
    next: AtomicUsize,
}

impl Shared {
    /// Half of a pool of `pool_size` connections, so that transactions
    /// keep the other half. A pool of one connection shares none (the
    /// transactions need it); each caller then leases it for the
    /// statement.
    pub(crate) fn for_pool(pool_size: usize) -> Self {
        Self {
            slots: (0..pool_size / 2).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// A connection for one caller's statements: the next slot's, opened
    /// through `pool` if the slot holds none that works.
    pub(crate) async fn lend(&self, pool: &Pool) -> Result<SharedLease, PoolError> {
        if self.slots.is_empty() {
            let conn = Arc::new(SharedConn::new(pool.get().await?));
            return Ok(SharedLease::new(conn));
        }
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        if let Some(conn) = self.working(slot) {
            return Ok(SharedLease::new(conn));
        }
        let opened = Arc::new(SharedConn::new(pool.get().await?));
        let mut held = self.slots[slot]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let conn = match held.as_ref() {
            // Another caller filled the slot meanwhile: the connection
            // opened here goes back to the pool.
            Some(conn) if conn.works() => Arc::clone(conn),
            _ => {
                *held = Some(Arc::clone(&opened));
                opened
            }
        };
        Ok(SharedLease::new(conn))
    }

    /// How many slots hold a connection that works.
    pub(crate) fn open(&self) -> usize {
        (0..self.slots.len())
            .filter(|&slot| self.working(slot).is_some())
            .count()
    }

    fn working(&self, slot: usize) -> Option<Arc<SharedConn>> {
        let held = self.slots[slot]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        held.as_ref().filter(|conn| conn.works()).map(Arc::clone)
    }
}

/// A pooled connection held by a slot and by the callers using it.
pub(crate) struct SharedConn {
    conn: Option<Object>,
    /// Given up on: closed when the last user lets go, not pooled again.
    broken: AtomicBool,
}

impl SharedConn {
    fn new(conn: Object) -> Self {
        Self {
            conn: Some(conn),
            broken: AtomicBool::new(false),
        }
    }

    fn client(&self) -> &Client {
        self.conn
            .as_ref()
            .expect("a shared connection holds its client until dropped")
    }

    fn works(&self) -> bool {
        !self.broken.load(Ordering::Acquire) && !self.client().is_closed()
    }
}

impl Drop for SharedConn {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if *self.broken.get_mut() {
                drop(Object::take(conn));
            }
            // Otherwise dropping the object hands it back to the pool.
        }
    }
}

/// A shared connection lent to one attempt of one caller.
///
/// Dropping it only lets go of it, even in the middle of a statement (the
/// caller went away): the driver sends each statement whole and discards
/// the answer nobody waits for, so the connection stays in step for the
/// others. It is given up only when found dead or when an attempt on it
/// took too long ([`GiveUp`]).
pub(crate) struct SharedLease {
    conn: Arc<SharedConn>,
}

impl SharedLease {
    fn new(conn: Arc<SharedConn>) -> Self {
        Self { conn }
    }

    /// Gives the connection up: its slot opens another for the next
    /// caller, and its last user closes it.
    pub(crate) fn give_up(&self) {
        self.conn.broken.store(true, Ordering::Release);
    }

    /// What gives this lease's connection up after its attempt was dropped
    /// for taking too long.
    pub(crate) fn on_timeout(&self) -> GiveUp {
        GiveUp(Some(Arc::clone(&self.conn)))
    }
}

/// Gives a connection up when called ([`SharedLease::on_timeout`]); empty
/// for a connection leased alone, which its dropped lease discards.
pub(crate) struct GiveUp(pub(crate) Option<Arc<SharedConn>>);

impl GiveUp {
    pub(crate) fn now(self) {
        if let Some(conn) = self.0 {
            conn.broken.store(true, Ordering::Release);
        }
    }
}

impl std::ops::Deref for SharedLease {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.conn.client()
    }
}
