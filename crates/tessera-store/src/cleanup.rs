//! The purge of expired records, one pass at a time.
//!
//! A pass calls [`Store::purge_expired`] in batches of `batch` records
//! until a batch comes back short: everything that was purgeable at `now`
//! is gone when it returns, however large the backlog, so the store keeps
//! pace with expiry at any creation rate. Between batches the pass yields,
//! so each batch is one short write among the requests' writes (on SQLite,
//! one job of the single writer, queued behind the requests that arrived
//! during the previous batch) rather than one long write that holds them
//! up.

use tessera_domain::Millis;

use crate::{Store, StoreResult};

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Records removed (tokens, API keys and one-time proofs).
    pub purged: u64,
    /// Calls of [`Store::purge_expired`] made.
    pub batches: u64,
}

/// Purges everything purgeable at `now`, `batch` records at a time, until
/// a batch comes back short or `stop` says so (checked between batches).
/// `each` is told how many records every batch removed.
pub async fn purge_backlog(
    store: &dyn Store,
    now: Millis,
    batch: u32,
    stop: impl Fn() -> bool + Send,
    mut each: impl FnMut(u64) + Send,
) -> StoreResult<Pass> {
    let batch = batch.max(1);
    let mut pass = Pass::default();
    loop {
        let n = store.purge_expired(now, batch).await?;
        pass.purged += n;
        pass.batches += 1;
        each(n);
        // A batch removes up to `batch` of each kind: any kind that filled
        // it makes the sum reach `batch`, so a short sum means none did.
        if n < u64::from(batch) || stop() {
            return Ok(pass);
        }
        tokio::task::yield_now().await;
    }
}
