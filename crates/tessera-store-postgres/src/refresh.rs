//! A refresh on PostgreSQL: one unlocked read decides everything that
//! writes nothing (a repeat within the window, a refusal); only a decision
//! that writes (a first rotation, reuse that revokes the family) runs the
//! locked transaction of `engine::refresh`.
//!
//! # Why a repeat may be decided without the row lock
//!
//! The read is one statement, so it sees one snapshot: the presented pair
//! and the successor its `successor_id` names. A rotation inserts the
//! successor and marks the presented pair in one transaction, so a
//! snapshot that shows the pair refreshed shows its successor too. What
//! a repeat depends on only ever moves one way (a pair is refreshed,
//! invalidated or expired for good), so if the snapshot shows the pair
//! and its successor live, they were live at the moment of the snapshot,
//! and the repeat takes effect there: an invalidation that commits later
//! is ordered after it (and its call, which answers after its commit, kills
//! the pair that was handed out: the successor row existed before it), and
//! one whose call answered before this request began committed before the
//! snapshot was taken, so the read sees it and the repeat is refused. A
//! repeat writes nothing, so no other transaction depends on its order.
//! Reuse that revokes the family writes, so it takes the locked path and,
//! as every revocation, answers only after the grace (`cache.rs`).

use tessera_domain::refresh::{self, judge_replay, Decision, Denied, RefreshError};
use tessera_domain::token::Refreshed;
use tessera_store::engine::{self, Half, TokenTx};
use tessera_store::{OneTime, RefreshGranted, Requirement};

use super::*;
use crate::flight::Marks;

/// The pair holding refresh token `$1` (`FALSE`) and the successor it
/// names, if any (`TRUE`), in one snapshot.
static PAIR_AND_SUCCESSOR: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {TOKEN_COLUMNS}, FALSE FROM tokens WHERE refresh_hash = $1
         UNION ALL
         SELECT {TOKEN_COLUMNS}, TRUE FROM tokens
          WHERE id = (SELECT successor_id FROM tokens WHERE refresh_hash = $1)"
    )
});

/// What one statement finds: the pair holding refresh token `hash` and,
/// when it was refreshed, its successor.
async fn pair_and_successor(
    c: &Client,
    hash: &TokenKey,
) -> Result<Option<(TokenRecord, Option<TokenRecord>)>, Fail> {
    let stmt = c.prepare_cached(&PAIR_AND_SUCCESSOR).await?;
    let (mut pair, mut successor) = (None, None);
    for row in c.query(&stmt, &[&hash.0.as_slice()]).await? {
        let is_successor: bool = row.try_get(row.len() - 1)?;
        let record = token_row(&row)?.into_record()?;
        if is_successor {
            successor = Some(record);
        } else {
            pair = Some(record);
        }
    }
    Ok(pair.map(|p| (p, successor)))
}

/// The outcome of `request` on what the read found, if it writes nothing;
/// `None` when the decision needs the locked transaction.
fn without_lock(
    found: Option<(TokenRecord, Option<TokenRecord>)>,
    request: &RefreshRequest,
) -> Option<RefreshOutcome> {
    let Some((record, successor)) = found else {
        return Some(Err(Denied::reject(RefreshError::NotFound)));
    };
    let denied = match refresh::decide(&record, request) {
        Decision::Rotate { .. } => return None,
        Decision::Replay { pair, successor_id } => {
            // As `engine::refresh` does: the successor is the pair whose
            // access token was sealed.
            let successor =
                successor.filter(|s| s.id == successor_id && s.access_hash == pair.access.hash());
            match judge_replay(successor.as_ref(), request.now, request.policy) {
                Ok(()) => {
                    return Some(Ok(RefreshGranted {
                        pair,
                        subject: record.subject,
                        scope: record.scope,
                        not_after: record.not_after,
                        rotated: false,
                    }))
                }
                Err(denied) => denied,
            }
        }
        Decision::Deny(denied) => denied,
    };
    (!denied.revoke_family).then_some(Err(denied))
}

/// One attempt at the locked refresh, under `READ COMMITTED`:
/// `engine::refresh` locks the row of the presented refresh token (`FOR
/// UPDATE`, so a racing refresh or invalidation of the same pair waits,
/// then reads what it committed), decides, and inserts the successor and
/// marks the row in the same transaction. Invalidations lock every live
/// row of the family ([`lineage::revoke_tree`]), so they wait for this one
/// and then see its successor. Conflicts wait instead of aborting. The
/// leader's [`Marks`] are set before its first statement and its `COMMIT`.
async fn locked_attempt(
    client: &mut Client,
    request: &RefreshRequest,
    rotate: bool,
    marks: &Marks,
) -> Result<RefreshOutcome, Fail> {
    marks.before_read();
    let tx = begin(client, IsolationLevel::ReadCommitted).await?;
    let outcome = engine::refresh(
        &mut Locking {
            tx: PgTx(&tx),
            rotate,
        },
        request,
    )
    .await?;
    // Reuse that revoked the family took something back: it moves the
    // revocation epoch, as its last statement.
    let outcome = if matches!(&outcome, Err(denied) if denied.revoke_family) {
        crate::epoch::bump(&tx, outcome).await?.into_inner()
    } else {
        outcome
    };
    marks.before_commit();
    tx.commit().await?;
    Ok(outcome)
}

impl PostgresStore {
    /// One refresh, shared with nobody: decided from one unlocked read
    /// when it writes nothing, else by the locked transaction.
    pub(crate) async fn refresh_unshared(
        &self,
        request: &RefreshRequest,
        marks: &Marks,
    ) -> StoreResult<RefreshOutcome> {
        let hash = request.refresh_token.hash();
        let found = self
            .db
            .run(
                "refresh_read",
                Repeat::Safe,
                attempt!(|c| {
                    marks.before_read();
                    pair_and_successor(c, &hash).await
                }),
            )
            .await?;
        // The read saw the pair unrefreshed: the rotation locks it at once.
        let rotate = matches!(&found, Some((record, _)) if record.refreshed.is_none());
        if let Some(outcome) = without_lock(found, request) {
            return Ok(outcome);
        }
        self.db
            .run(
                "refresh",
                Repeat::Adds,
                attempt!(|c| locked_attempt(c, request, rotate, marks).await),
            )
            .await
    }
}

/// [`PgTx`] for a refresh whose unlocked read already happened: when that
/// read saw the pair unrefreshed (`rotate`), the pair is locked at once
/// instead of being read again first. A pair that was already refreshed is
/// read without a lock, as [`PgTx`] does (it is never rotated again, and
/// whatever revokes it locks it), so a revocation on reuse takes its locks
/// in the same order as every invalidation.
struct Locking<'c, C> {
    tx: PgTx<'c, C>,
    rotate: bool,
}

impl<C: GenericClient + Sync> TokenTx for Locking<'_, C> {
    type Pair = PgPair;
    type Error = Fail;

    async fn lock_by_refresh(
        &mut self,
        hash: &TokenKey,
    ) -> Result<Option<(PgPair, TokenRecord)>, Fail> {
        if !self.rotate {
            return self.tx.lock_by_refresh(hash).await;
        }
        let c = self.tx.0;
        let stmt = c.prepare_cached(&LOCK_TOKEN_BY_REFRESH).await?;
        let found = token_record(c.query_opt(&stmt, &[&hash.0.as_slice()]).await?)?;
        Ok(found.map(|r| (PgPair::of(&r), r)))
    }

    async fn by_access(&mut self, hash: &TokenKey) -> Result<Option<TokenRecord>, Fail> {
        self.tx.by_access(hash).await
    }

    async fn invalidation_state(
        &mut self,
        half: Half,
        hash: &TokenKey,
    ) -> Result<Option<(bool, PgPair)>, Fail> {
        self.tx.invalidation_state(half, hash).await
    }

    async fn use_once(&mut self, proof: &OneTime) -> Result<bool, Fail> {
        self.tx.use_once(proof).await
    }

    async fn holds(&mut self, requirement: &Requirement, at: Millis) -> Result<bool, Fail> {
        self.tx.holds(requirement, at).await
    }

    async fn insert_first(
        &mut self,
        record: &TokenRecord,
        parent: Option<&PgPair>,
    ) -> Result<(), Fail> {
        self.tx.insert_first(record, parent).await
    }

    async fn insert_successor(
        &mut self,
        previous: &PgPair,
        successor: &TokenRecord,
    ) -> Result<(), Fail> {
        self.tx.insert_successor(previous, successor).await
    }

    async fn mark_refreshed(&mut self, pair: &PgPair, refreshed: &Refreshed) -> Result<(), Fail> {
        self.tx.mark_refreshed(pair, refreshed).await
    }

    async fn revoke_family(&mut self, pair: &PgPair) -> Result<(), Fail> {
        self.tx.revoke_family(pair).await
    }

    async fn invalidate_half(&mut self, pair: &PgPair, half: Half) -> Result<(), Fail> {
        self.tx.invalidate_half(pair, half).await
    }
}
