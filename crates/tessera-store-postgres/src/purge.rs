//! The purge of expired records on PostgreSQL: one batch per call.
//!
//! What a batch deletes can no longer be used by anyone: pairs past their
//! last usable instant, API keys long past their end, one-time proofs past
//! their keep time. So the purge takes nothing back and answers without
//! the revocation grace (which, waited once per batch, held a pass to
//! about 3,500 rows a second, fewer than a busy store expires). Caches are
//! still kept to what the database holds: a batch that deleted anything
//! moves the revocation epoch, so every node stops serving its entries of
//! what was deleted once they are `T` old, and this node forgets its own
//! entries at once ([`crate::PostgresStore::forget_purged`]). Until then
//! another node may show a purged row, as the expired row it was.

use deadpool_postgres::Client;
use tessera_domain::{Millis, TokenKey};
use tokio_postgres::IsolationLevel;

use crate::db::{begin, Fail};
use crate::epoch;

/// What one batch deleted.
#[derive(Debug, Default)]
pub(crate) struct Purged {
    /// Rows deleted: pairs, API keys and one-time proofs.
    pub(crate) count: u64,
    /// The access-token hashes of the deleted pairs.
    pub(crate) tokens: Vec<TokenKey>,
    /// The ids of the deleted API keys.
    pub(crate) api_keys: Vec<String>,
}

/// Each batch's pairs are collected first, in index order, and deleted by
/// key: written as `id IN (subquery)`, a table without statistics (a new
/// or restored database) was planned as a hash join over a scan of every
/// row, once per batch.
const PAIRS: &str = "DELETE FROM tokens WHERE id = ANY(ARRAY(
       SELECT id FROM tokens WHERE purge_after <= $1 ORDER BY purge_after LIMIT $2))
     RETURNING access_hash";

/// API keys are found through `api_keys_by_retention`.
const API_KEYS: &str = "DELETE FROM api_keys WHERE id = ANY(ARRAY(
       SELECT id FROM api_keys WHERE LEAST(invalidated_at, expires_at) <= $1
        ORDER BY LEAST(invalidated_at, expires_at) LIMIT $2))
     RETURNING id";

/// Proofs are keyed by (realm, id): the batch's realms and ids find them
/// through the primary key. A row of the product that is not in the batch
/// is deleted only if it has expired too.
const PROOFS: &str = "WITH batch AS (
       SELECT realm, id FROM one_time_proofs WHERE keep_until < $1
        ORDER BY keep_until LIMIT $2)
     DELETE FROM one_time_proofs
      WHERE realm = ANY(ARRAY(SELECT realm FROM batch))
        AND id = ANY(ARRAY(SELECT id FROM batch)) AND keep_until < $1";

/// One attempt at a batch of at most `limit` records of each kind that
/// were purgeable at `now` (API keys: `API_KEY_RETENTION_MS` after they
/// stopped working).
pub(crate) async fn batch(c: &mut Client, now: Millis, limit: u32) -> Result<Purged, Fail> {
    let limit = i64::from(limit);
    let tx = begin(c, IsolationLevel::ReadCommitted).await?;
    let stmt = tx.prepare_cached(PAIRS).await?;
    let rows = tx.query(&stmt, &[&now, &limit]).await?;
    let pairs = rows.len() as u64;
    let mut tokens = Vec::with_capacity(rows.len());
    for row in rows {
        let hash: &[u8] = row.try_get(0)?;
        // A hash of another length was never a cache key.
        if let Ok(hash) = <[u8; 32]>::try_from(hash) {
            tokens.push(TokenKey(hash));
        }
    }
    let stmt = tx.prepare_cached(API_KEYS).await?;
    let cutoff = now.saturating_sub(tessera_store::API_KEY_RETENTION_MS);
    let api_keys = tx
        .query(&stmt, &[&cutoff, &limit])
        .await?
        .iter()
        .map(|row| row.try_get::<_, String>(0))
        .collect::<Result<Vec<_>, _>>()?;
    let stmt = tx.prepare_cached(PROOFS).await?;
    let proofs = tx.execute(&stmt, &[&now, &limit]).await?;
    let count = pairs + api_keys.len() as u64 + proofs;
    let purged = Purged {
        count,
        tokens,
        api_keys,
    };
    if purged.tokens.is_empty() && purged.api_keys.is_empty() {
        // Nothing any node caches was deleted: the epoch stays.
        tx.commit().await?;
        Ok(purged)
    } else {
        Ok(epoch::commit_bumped(tx, purged).await?.into_inner())
    }
}
