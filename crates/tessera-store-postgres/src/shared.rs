//! Connections that many single statements use at the same time.
//!
//! tokio-postgres pipelines the statements that concurrent callers send on
//! one connection: each goes out as its own `Bind`/`Execute`/`Sync`, so
//! the server runs them one after the other, each in its own implicit
//! transaction, exactly as if each caller had had the connection alone.
//! Up to half the pool ([`Shared::for_pool`]) is kept as such shared
//! connections, opened as the load needs them ([`Shared::lend`]), for
//! statements that need nothing of a session but the session itself:
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
//! refresh from 95–122 µs to 66–81 µs, and refresh from 0.73–0.84× to
//! 0.93–0.98× `pgbench -N` (docs/benchmarks.md).
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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use std::time::Duration;

use deadpool_postgres::{Client, Object, Pool, PoolError, Timeouts};

/// The shared connections of one store, opened from its pool as the load
/// needs them.
pub(crate) struct Shared {
    slots: Arc<[Mutex<Option<Arc<SharedConn>>>]>,
    /// A connection is being opened for a slot, in the background.
    opening: Arc<AtomicBool>,
}

/// What the slots hold at one look.
struct Survey {
    /// The working connection with the fewest users, and how many.
    least: Option<(Arc<SharedConn>, usize)>,
    /// A slot without a working connection.
    free: Option<usize>,
}

impl Shared {
    /// At most half of a pool of `pool_size` connections, so that
    /// transactions keep the other half. A pool of one connection shares none (the
    /// transactions need it); each caller then leases it for the
    /// statement.
    pub(crate) fn for_pool(pool_size: usize) -> Self {
        Self {
            slots: (0..pool_size / 2).map(|_| Mutex::new(None)).collect(),
            opening: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A connection for one caller's statements: the working one with the
    /// fewest callers. When every open one is in use and a slot is free,
    /// the caller still queues on the least busy one, and another
    /// connection is opened in the background (one at a time, only if the
    /// pool has one at hand without waiting): a caller never waits for a
    /// connection to be opened while one is open. So a light load (a storm
    /// that single flight reduces to a call or two per node) keeps to one
    /// warm connection, and a heavy one spreads over all the slots. With
    /// none open, the caller waits for the pool as any caller does.
    pub(crate) async fn lend(&self, pool: &Pool) -> Result<SharedLease, PoolError> {
        if self.slots.is_empty() {
            let conn = Arc::new(SharedConn::new(pool.get().await?));
            return Ok(SharedLease::new(conn));
        }
        let Survey { least, free } = self.survey();
        match (least, free) {
            (Some((conn, 0)), _) | (Some((conn, _)), None) => Ok(SharedLease::new(conn)),
            (Some((conn, _)), Some(slot)) => {
                self.open_in_background(pool, slot);
                Ok(SharedLease::new(conn))
            }
            (None, Some(slot)) => {
                let opened = pool.get().await?;
                Ok(SharedLease::new(fill(&self.slots, slot, opened)))
            }
            (None, None) => unreachable!("a slot without a working connection is free"),
        }
    }

    /// Opens a connection for `slot` on a task of its own, unless one is
    /// being opened already or the pool has none at hand.
    fn open_in_background(&self, pool: &Pool, slot: usize) {
        if self.opening.swap(true, Ordering::AcqRel) {
            return;
        }
        let (pool, slots, opening) = (
            pool.clone(),
            Arc::clone(&self.slots),
            Arc::clone(&self.opening),
        );
        tokio::spawn(async move {
            let at_hand = Timeouts {
                wait: Some(Duration::ZERO),
                ..pool.timeouts()
            };
            if let Ok(opened) = pool.timeout_get(&at_hand).await {
                fill(&slots, slot, opened);
            }
            opening.store(false, Ordering::Release);
        });
    }

    fn survey(&self) -> Survey {
        let mut survey = Survey {
            least: None,
            free: None,
        };
        for (i, slot) in self.slots.iter().enumerate() {
            let mut held = slot.lock().unwrap_or_else(PoisonError::into_inner);
            match held.as_ref().filter(|conn| conn.works()) {
                None => {
                    // A connection given up on leaves its slot now, so the
                    // last of its callers closes it and its place in the
                    // pool is free.
                    *held = None;
                    survey.free.get_or_insert(i);
                }
                Some(conn) => {
                    // Beside the slot's own reference, one per caller.
                    let users = Arc::strong_count(conn) - 1;
                    if survey.least.as_ref().is_none_or(|(_, u)| users < *u) {
                        survey.least = Some((Arc::clone(conn), users));
                    }
                }
            }
        }
        survey
    }

    /// How many slots hold a connection that works.
    pub(crate) fn open(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| {
                slot.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .as_ref()
                    .is_some_and(|conn| conn.works())
            })
            .count()
    }
}

/// Puts `opened` in `slots[slot]`, unless another caller filled it
/// meanwhile (then `opened` goes back to the pool): the slot's connection.
fn fill(slots: &[Mutex<Option<Arc<SharedConn>>>], slot: usize, opened: Object) -> Arc<SharedConn> {
    let mut held = slots[slot].lock().unwrap_or_else(PoisonError::into_inner);
    match held.as_ref() {
        Some(conn) if conn.works() => Arc::clone(conn),
        _ => {
            let conn = Arc::new(SharedConn::new(opened));
            *held = Some(Arc::clone(&conn));
            conn
        }
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
