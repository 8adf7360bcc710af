//! The revocation epoch: what lets a node keep serving a cached entry after
//! `T` (`cluster_cache_ttl`) without ever serving one that another node
//! took back.
//!
//! `cache_epoch` holds a few counters whose sum is the epoch. Every write
//! that may take something back adds one to a counter in its own
//! transaction, as its last statement ([`bump`]), and answers only `T`
//! after its commit (the grace, `cache::Grace`). Each node reads the sum
//! every `T / 4` ([`spawn_poller`]) and keeps the newest answer with the
//! instant its query was sent ([`Latest`]). A cached entry carries the
//! epoch of the newest poll that had *completed* before the read that
//! filled it was sent (its tag). At time `t` the entry is served if it is
//! younger than `T` (the plain rule), or if the newest poll was sent less
//! than `T` before `t` and read the entry's tag.
//!
//! Why that never serves what was taken back once the revoking call has
//! answered: say the revocation committed at `c` and the entry's read was
//! sent at `r`. If `r > c`, the read saw the revocation. Otherwise the tag
//! poll's snapshot was taken before `r < c`, and the caller hears "done"
//! only at `c + T`, so a request at `t ≥ c + T` is served only by a poll
//! sent after `t - T ≥ c`, whose snapshot includes the revocation's bump:
//! its sum is larger than the tag. The counters only grow, and one poll
//! runs at a time, so equal sums mean no bump committed in between.
//!
//! When polls fail (the database is away), the newest one ages past `T`
//! and every entry falls back to the plain rule, then to the database.
//! Several counters instead of one keep concurrent revoking writes from
//! queueing on one row; a bump is the last statement before `COMMIT`, so a
//! transaction never waits on another lock while it holds a counter's.
//! Nothing here needs LISTEN/NOTIFY or stored functions.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use deadpool_postgres::{GenericClient, Object, Pool, Transaction};
use rand::Rng;
use tokio_postgres::IsolationLevel;

use crate::db::{begin, Fail};

/// Rows of `cache_epoch` (migration 10 creates them).
const SHARDS: i32 = 16;

/// The shortest pause between two polls.
const MIN_POLL_EVERY: Duration = Duration::from_millis(10);

/// Proof that a transaction added to the epoch before it committed: the
/// only answer [`crate::db::Db::revoking`] accepts, so a revoking write
/// cannot forget its bump.
#[must_use]
pub(crate) struct Bumped<T>(T);

impl<T> Bumped<T> {
    pub(crate) fn into_inner(self) -> T {
        self.0
    }

    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Bumped<U> {
        Bumped(f(self.0))
    }
}

/// Bumps the epoch as `tx`'s last statement, then commits it.
pub(crate) async fn commit_bumped<T>(tx: Transaction<'_>, value: T) -> Result<Bumped<T>, Fail> {
    let bumped = bump(&tx, value).await?;
    tx.commit().await?;
    Ok(bumped)
}

/// Adds one to the epoch in the transaction `c` is in, carrying the
/// write's `value`. It must be the transaction's last statement.
pub(crate) async fn bump<T>(c: &impl GenericClient, value: T) -> Result<Bumped<T>, Fail> {
    let shard = rand::thread_rng().gen_range(0..SHARDS);
    let stmt = c
        .prepare_cached("UPDATE cache_epoch SET n = n + 1 WHERE shard = $1")
        .await?;
    c.execute(&stmt, &[&shard]).await?;
    Ok(Bumped(value))
}

/// The epoch a poll read, and when its query was sent.
#[derive(Debug, Clone, Copy)]
struct Seen {
    sent: Instant,
    epoch: i64,
}

/// This node's newest completed poll.
#[derive(Debug, Default)]
pub(crate) struct Latest(RwLock<Option<Seen>>);

impl Latest {
    /// The tag of an entry whose read is about to be sent: the newest
    /// epoch read, however old (`None` before the first poll).
    pub(crate) fn tag(&self) -> Option<i64> {
        self.seen().map(|s| s.epoch)
    }

    /// The epoch that entries may be served by now: the newest poll's,
    /// if that poll was sent less than `ttl` ago.
    pub(crate) fn current(&self, ttl: Duration) -> Option<i64> {
        self.seen()
            .filter(|s| s.sent.elapsed() < ttl)
            .map(|s| s.epoch)
    }

    fn seen(&self) -> Option<Seen> {
        *self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    pub(crate) fn record_for_test(&self, sent: Instant, epoch: i64) {
        self.record(Seen { sent, epoch });
    }

    fn record(&self, seen: Seen) {
        let mut latest = self.0.write().unwrap_or_else(PoisonError::into_inner);
        // Polls run one at a time, so a newer answer is always later.
        *latest = Some(seen);
    }
}

/// The polling task; dropping it stops the task.
pub(crate) struct Poller(tokio::task::JoinHandle<()>);

impl Drop for Poller {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Polls the epoch every `ttl / 4` on one of `pool`'s connections, each
/// poll given at most `timeout`, and records each answer in `latest`.
pub(crate) fn spawn_poller(
    pool: Pool,
    latest: Arc<Latest>,
    ttl: Duration,
    timeout: Duration,
) -> Poller {
    let every = (ttl / 4).max(MIN_POLL_EVERY);
    Poller(tokio::spawn(async move {
        loop {
            let sent = Instant::now();
            match tokio::time::timeout(timeout, read_epoch(&pool)).await {
                Ok(Ok(epoch)) => latest.record(Seen { sent, epoch }),
                Ok(Err(e)) => tracing::debug!(error = %e, "reading the cache epoch failed"),
                Err(_) => tracing::debug!("reading the cache epoch timed out"),
            }
            tokio::time::sleep(every).await;
        }
    }))
}

async fn read_epoch(pool: &Pool) -> Result<i64, String> {
    let mut lease = Held(Some(pool.get().await.map_err(|e| e.to_string())?));
    let client = lease.0.as_ref().expect("held until the end");
    let stmt = client
        .prepare_cached("SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM cache_epoch")
        .await
        .map_err(|e| e.to_string())?;
    let row = client
        .query_one(&stmt, &[])
        .await
        .map_err(|e| e.to_string())?;
    let epoch = row.try_get(0).map_err(|e| e.to_string());
    // Answered: the connection goes back to the pool.
    drop(lease.0.take());
    epoch
}

/// A pooled connection that is discarded, not pooled again, if the poll
/// stops half-way (an error, or its time ran out mid-query).
struct Held(Option<Object>);

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            drop(Object::take(client));
        }
    }
}

impl crate::PostgresStore {
    /// Runs one statement (`params` its `$1…`) as a revoking write of its
    /// own; returns how many rows it changed.
    pub(crate) async fn revoking_execute(
        &self,
        op: &'static str,
        sql: &'static str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> tessera_store::StoreResult<u64> {
        self.db
            .revoking(
                op,
                attempt!(|c| {
                    let tx = begin(c, IsolationLevel::ReadCommitted).await?;
                    let stmt = tx.prepare_cached(sql).await?;
                    let changed = tx.execute(&stmt, params).await?;
                    commit_bumped(tx, changed).await
                }),
            )
            .await
    }
}
