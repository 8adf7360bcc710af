//! A refresh on PostgreSQL in two round trips: one unlocked read decides
//! everything that writes nothing (a repeat within the window, a
//! refusal), and a first rotation is written by one conditional statement
//! (`rotate.rs`). Only reuse that revokes the family, and a rotation whose
//! pair changed between the read and the write into something that still
//! needs a write, run the locked transaction of `engine::refresh`, the
//! one driver of the refresh steps.
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
//!
//! # A first rotation
//!
//! When the read shows the pair unrefreshed and the domain decides to
//! rotate it, the rotation is written by one statement that marks the pair
//! only if its row is still as read and stores the successor only if the
//! mark was made (`rotate.rs` argues why that is the locked transaction's
//! equal). If it matched nothing, a racing refresh or invalidation
//! committed in between: the pair is read and decided again, as a refresh
//! ordered after that one would be (a repeat of the racing rotation's
//! successor, a refusal, or reuse that revokes, which takes the locked
//! path).

use tessera_domain::refresh::{self, judge_replay, Decision, Denied, RefreshError};
use tessera_domain::token::{Refreshed, TokenPair};
use tessera_store::engine;
use tessera_store::RefreshGranted;

use super::*;
use crate::db::changed_nothing;
use crate::flight::Marks;
use crate::rotate::rotate_if_unchanged;
use crate::tokens::token_row_at;

/// The pair holding refresh token `$1` and, in the same row, the
/// successor it names (all `NULL` when it names none), in one snapshot:
/// one lookup of the refresh hash, then one of the successor's key only
/// when the pair was refreshed.
static PAIR_AND_SUCCESSOR: LazyLock<String> = LazyLock::new(|| {
    let columns = |table: &str| {
        TOKEN_COLUMNS
            .split(", ")
            .map(|c| format!("{table}.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "SELECT {}, {} FROM tokens p LEFT JOIN tokens s ON s.id = p.successor_id
          WHERE p.refresh_hash = $1",
        columns("p"),
        columns("s")
    )
});

/// How many columns one pair takes in [`PAIR_AND_SUCCESSOR`].
static PAIR_WIDTH: LazyLock<usize> = LazyLock::new(|| TOKEN_COLUMNS.split(", ").count());

/// What one statement finds: the pair holding refresh token `hash` and,
/// when it was refreshed, its successor. It changes nothing, so a dead
/// connection found here leaves the attempt free to run again.
async fn pair_and_successor(
    c: &Client,
    hash: &TokenKey,
) -> Result<Option<(TokenRecord, Option<TokenRecord>)>, Fail> {
    let stmt = c
        .prepare_cached(&PAIR_AND_SUCCESSOR)
        .await
        .map_err(changed_nothing)?;
    let Some(row) = c
        .query_opt(&stmt, &[&hash.0.as_slice()])
        .await
        .map_err(changed_nothing)?
    else {
        return Ok(None);
    };
    let pair = token_row(&row)?.into_record()?;
    let successor_id: Option<&str> = row.try_get(*PAIR_WIDTH)?;
    let successor = match successor_id {
        None => None,
        Some(_) => Some(token_row_at(&row, *PAIR_WIDTH)?.into_record()?),
    };
    Ok(Some((pair, successor)))
}

/// A first rotation as `refresh::decide` decided it on the pair `record`.
struct Rotation {
    record: TokenRecord,
    successor: Box<TokenRecord>,
    refreshed: Refreshed,
    pair: TokenPair,
}

impl Rotation {
    fn granted(self) -> RefreshGranted {
        RefreshGranted {
            pair: self.pair,
            subject: self.record.subject,
            scope: self.record.scope,
            not_after: self.record.not_after,
            rotated: true,
        }
    }
}

/// What the unlocked read decides.
#[expect(
    clippy::large_enum_variant,
    reason = "one value per refresh, moved once or twice"
)]
enum Step {
    /// An outcome that writes nothing.
    Answer(RefreshOutcome),
    /// A first rotation, for [`rotate_if_unchanged`].
    Rotate(Rotation),
    /// Reuse that revokes the family: the locked transaction.
    Revoke,
}

/// The decision on `request` given what the read found.
fn without_lock(
    found: Option<(TokenRecord, Option<TokenRecord>)>,
    request: &RefreshRequest,
) -> Step {
    let Some((record, successor)) = found else {
        return Step::Answer(Err(Denied::reject(RefreshError::NotFound)));
    };
    let denied = match refresh::decide(&record, request) {
        Decision::Rotate {
            successor,
            refreshed,
            pair,
        } => {
            return Step::Rotate(Rotation {
                record,
                successor,
                refreshed,
                pair,
            })
        }
        Decision::Replay { pair, successor_id } => {
            // As `engine::refresh` does: the successor is the pair whose
            // access token was sealed.
            let successor =
                successor.filter(|s| s.id == successor_id && s.access_hash == pair.access.hash());
            match judge_replay(successor.as_ref(), request.now, request.policy) {
                Ok(()) => {
                    return Step::Answer(Ok(RefreshGranted {
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
    if denied.revoke_family {
        Step::Revoke
    } else {
        Step::Answer(Err(denied))
    }
}

/// How the refresh ended without the locked transaction.
#[expect(
    clippy::large_enum_variant,
    reason = "one value per refresh, moved once"
)]
enum Unlocked {
    Done(RefreshOutcome),
    /// The locked transaction decides; `rotate`: the latest read saw the
    /// pair unrefreshed, so it locks the pair at once.
    Locked {
        rotate: bool,
    },
}

/// One attempt at a refresh without a transaction: the read, and for a
/// first rotation the conditional statement (and, if that matched nothing,
/// the read again). The leader's [`Marks`] are set before each read and
/// before the statement, whose commit fixes a rotation.
async fn unlocked_attempt(
    c: &Client,
    hash: &TokenKey,
    request: &RefreshRequest,
    marks: &Marks,
) -> Result<Unlocked, Fail> {
    marks.before_read();
    let rotation = match without_lock(pair_and_successor(c, hash).await?, request) {
        Step::Answer(outcome) => return Ok(Unlocked::Done(outcome)),
        Step::Revoke => return Ok(Unlocked::Locked { rotate: false }),
        Step::Rotate(rotation) => rotation,
    };
    marks.before_commit();
    let Rotation {
        record,
        successor,
        refreshed,
        ..
    } = &rotation;
    if rotate_if_unchanged(c, record, successor, refreshed).await? {
        return Ok(Unlocked::Done(Ok(rotation.granted())));
    }
    // The pair changed after the read: a racing refresh or invalidation
    // committed first. Decided again on what it committed.
    marks.before_read();
    Ok(
        match without_lock(pair_and_successor(c, hash).await?, request) {
            Step::Answer(outcome) => Unlocked::Done(outcome),
            Step::Revoke => Unlocked::Locked { rotate: false },
            // Still unrefreshed: only its access half was invalidated
            // meanwhile. The locked transaction rotates it.
            Step::Rotate(_) => Unlocked::Locked { rotate: true },
        },
    )
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
    // When the unlocked read saw the pair unrefreshed (`rotate`), it is
    // locked at once instead of being read again first. A pair that was
    // already refreshed is read without a lock, as [`PgTx`] does (it is
    // never rotated again, and whatever revokes it locks it), so a
    // revocation on reuse takes its locks in the same order as every
    // invalidation.
    let mut tx_ops = if rotate {
        PgTx::locking_at_once(&tx)
    } else {
        PgTx::new(&tx)
    };
    let outcome = engine::refresh(&mut tx_ops, request).await?;
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
    /// One refresh, shared with nobody: in two round trips without a
    /// transaction, on a connection other callers' statements share
    /// (`shared.rs`), when it writes nothing or is a first rotation; else
    /// by the locked transaction, on a connection of its own.
    ///
    /// Both run as writes that are not repeated once they may have taken
    /// effect (`Repeat::Adds`, as the locked transaction always has): a
    /// connection lost after the conditional statement or the `COMMIT`
    /// was sent leaves it unknown whether the rotation committed, and the
    /// caller is told the database is unavailable (see `rotate.rs`). The
    /// reads change nothing, so a dead connection found by one still lets
    /// the attempt run again ([`changed_nothing`]).
    pub(crate) async fn refresh_unshared(
        &self,
        request: &RefreshRequest,
        marks: &Marks,
    ) -> StoreResult<RefreshOutcome> {
        let hash = request.refresh_token.hash();
        let unlocked = self
            .db
            .run(
                "refresh",
                Repeat::Adds,
                shared_attempt!(|c| unlocked_attempt(c, &hash, request, marks).await),
            )
            .await?;
        let rotate = match unlocked {
            Unlocked::Done(outcome) => return Ok(outcome),
            Unlocked::Locked { rotate } => rotate,
        };
        self.db
            .run(
                "refresh_locked",
                Repeat::Adds,
                attempt!(|c| locked_attempt(c, request, rotate, marks).await),
            )
            .await
    }
}
