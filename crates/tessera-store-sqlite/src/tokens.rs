//! The token transactions run on the writer: the engine's row operations
//! (issue, refresh, invalidation) on the writer's connection.

use super::*;
use tessera_store::{OneTime, Requirement};

/// Records, once for the database, that tokens were ever issued.
pub(crate) fn mark_tokens_issued(conn: &Connection) -> StoreResult<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO meta (key, value) VALUES ('tokens_issued', '1')")
        .and_then(|mut stmt| stmt.execute([]))
        .map(|_| ())
        .map_err(internal)
}

/// The writer's connection inside its transaction, as the engine's
/// [`TokenTx`]. The writer is the only writing connection, so nothing a
/// transaction read can change before it ends: the "locks" are implicit.
pub(crate) struct WriterTx<'c>(pub(crate) &'c Connection);

impl TokenTx for WriterTx<'_> {
    type Pair = pairs::Located;
    type Error = StoreError;

    async fn lock_by_refresh(
        &mut self,
        hash: &TokenKey,
    ) -> StoreResult<Option<(pairs::Located, TokenRecord)>> {
        pairs::find(self.0, pairs::Half::Refresh, hash)
    }

    async fn by_access(&mut self, hash: &TokenKey) -> StoreResult<Option<TokenRecord>> {
        Ok(pairs::find(self.0, pairs::Half::Access, hash)?.map(|(_, r)| r))
    }

    async fn invalidation_state(
        &mut self,
        half: pairs::Half,
        hash: &TokenKey,
    ) -> StoreResult<Option<(bool, pairs::Located)>> {
        pairs::invalidation_state(self.0, half, hash)
    }

    async fn use_once(&mut self, proof: &OneTime) -> StoreResult<bool> {
        self.0
            .prepare_cached(
                "INSERT OR IGNORE INTO one_time_proofs (realm, id, keep_until) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut stmt| stmt.execute(params![proof.realm, proof.id, proof.keep_until]))
            .map(|inserted| inserted == 1)
            .map_err(internal)
    }

    async fn holds(&mut self, requirement: &Requirement, at: Millis) -> StoreResult<bool> {
        lineage::holds(self.0, requirement, at)
    }

    async fn insert_first(
        &mut self,
        record: &TokenRecord,
        parent: Option<&pairs::Located>,
    ) -> StoreResult<()> {
        pairs::insert(self.0, record, parent.map(|p| p.family)).map(drop)
    }

    async fn rotate(
        &mut self,
        previous: &pairs::Located,
        successor: &TokenRecord,
        refreshed: &Refreshed,
    ) -> StoreResult<()> {
        pairs::insert_successor(self.0, successor, *previous, refreshed).map(drop)
    }

    async fn revoke_family(&mut self, pair: &pairs::Located) -> StoreResult<()> {
        pairs::revoke_family(self.0, pair.family)
    }

    async fn invalidate_half(
        &mut self,
        pair: &pairs::Located,
        half: pairs::Half,
    ) -> StoreResult<()> {
        let sql = match half {
            pairs::Half::Access => "UPDATE token_pairs SET access_invalidated = 1 WHERE seq = ?1",
            pairs::Half::Refresh => "UPDATE token_pairs SET refresh_invalidated = 1 WHERE seq = ?1",
        };
        self.0
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute([pair.seq]))
            .map(drop)
            .map_err(internal)
    }
}

impl SqliteStore {
    /// Invalidates the token `hash` names: with its family (`family`), or
    /// alone.
    pub(crate) async fn invalidate_named(
        &self,
        half: pairs::Half,
        hash: &TokenKey,
        family: bool,
    ) -> StoreResult<InvalidateOne> {
        let hash = *hash;
        self.write(Affects::TOKENS, move |c| {
            let tx = &mut WriterTx(c);
            engine::run_now(engine::invalidate(tx, half, &hash, family))?
        })
        .await
    }
}

/// Invalidates the `live` pairs and every family they minted, counting as
/// Elasticsearch does.
pub(crate) fn invalidate_live(
    conn: &Connection,
    live: Vec<pairs::LivePair>,
) -> StoreResult<InvalidateCounts> {
    let mut counts = InvalidateCounts::default();
    let mut families = Vec::with_capacity(live.len());
    for pair in live {
        codec::count_invalidation(
            &mut counts,
            pair.has_refresh,
            pair.refresh_invalidated,
            pair.access_invalidated,
        );
        pairs::invalidate_pair(conn, pair.seq)?;
        families.push(pair.family);
    }
    // Whatever those pairs minted dies with them.
    lineage::revoke_children(conn, &families)?;
    Ok(counts)
}
