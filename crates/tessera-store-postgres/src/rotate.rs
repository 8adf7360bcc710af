//! A first rotation on PostgreSQL in one conditional statement: the
//! second and last round trip of a refresh whose unlocked read
//! (`refresh.rs`) decided `Decision::Rotate`.
//!
//! # The statement
//!
//! [`ROTATE_IF_UNCHANGED`] runs alone, in autocommit, under
//! `READ COMMITTED`. Its `UPDATE` is the marking statement of `PgTx::rotate`
//! ([`MARK_REFRESHED`]) with two more conditions, so it marks the presented
//! pair only if its row is still exactly as the read saw it; its `INSERT`
//! stores the successor with `PgTx::rotate`'s columns and values
//! ([`INSERT_COLUMNS`], [`NewRow`]), taking its one row from the `UPDATE`'s
//! `RETURNING`, so it stores the successor if and only if the mark was
//! made. It answers how many rows it inserted: 1, rotated; 0, the pair had
//! changed and nothing was written.
//!
//! # Why it guarantees what the locked transaction does
//!
//! - **The same decision.** `refresh::decide` is a pure function of the
//!   request and the row. Of the row's columns only three ever change
//!   after it is stored: `refreshed_at` (with `successor_id` and
//!   `sealed_successor`, set once by a rotation), `refresh_invalidated` and
//!   `access_invalidated` (set once, from false to true, by an
//!   invalidation); the purge deletes whole rows. The `UPDATE` matches only
//!   a row that is not refreshed, whose refresh half is not invalidated and
//!   whose access half is as the read saw it (that flag plays no part in the
//!   decision; comparing it keeps the write to the very row that was read).
//!   So when it matches, the row is the one the decision was taken on, and
//!   the locked transaction, deciding on it under the lock, would have
//!   decided the same rotation.
//! - **At most one rotation of a pair commits.** The `UPDATE` takes the
//!   row's lock. If another transaction holds it (a locked refresh, the
//!   statement of a refresh on another node, an invalidation), it waits
//!   for that one to end, then evaluates its `WHERE` again on the newest
//!   version of the row: once a rotation has committed, `refreshed_at` is
//!   set and the statement matches nothing.
//! - **Mark and successor commit together.** Both are written by one
//!   statement, so in one implicit transaction: there is never a row that
//!   says refreshed without its successor (invariant 3), and a repeat that
//!   reads the mark finds the successor in the same snapshot.
//! - **Invalidation stays final and linearizable.** An invalidation locks
//!   the live rows of what it revokes in `id` order (`FOR UPDATE`),
//!   invalidates them and looks again until a look finds nothing live
//!   ([`crate::lineage::revoke_tree`], `tokens::invalidate_matching_attempt`). If
//!   it locked the presented row first, the statement waits for its commit
//!   and then matches nothing (`refresh_invalidated` is set): the refresh
//!   decides again on what the invalidation committed and is refused, as
//!   today. If the statement took the lock first, the invalidation's lock
//!   waits for the statement's implicit commit, which stores the successor
//!   with the mark; its next look, a new statement with a new snapshot,
//!   sees the successor and revokes it. The locked transaction held the
//!   same lock from its `SELECT … FOR UPDATE` to its `COMMIT`; here it is
//!   held from the `UPDATE` to the end of the statement, a shorter span
//!   that still contains both writes and the commit. A `SERIALIZABLE`
//!   revocation (user, API key and client changes) whose snapshot
//!   predates the statement's commit finds the presented row changed when
//!   it locks it, and is aborted and run again, as before.
//! - **Single flight.** The outcome is fixed when the statement commits,
//!   somewhere between sending it and its answer, so the leader calls
//!   `Marks::before_commit` just before sending it (`refresh.rs`).
//! - **Nothing is taken back.** The statement writes the refreshed columns
//!   of the presented pair and adds a row: a rotation is not a revoking
//!   write, answers at once and moves no epoch (`cache.rs`).
//! - **A lost connection.** If the connection dies after the statement was
//!   sent, it may or may not have committed. The attempt is not repeated
//!   (`Repeat::Adds`, like the locked transaction, whose `COMMIT` is just
//!   as uncertain): the caller is told the database is unavailable, waits
//!   the grace as after every failed refresh (`Store::refresh`), and a
//!   retry of the same refresh token within the window replays whatever
//!   was committed. A call dropped after sending the statement (its client
//!   went away) may likewise still commit it: whoever refreshes next finds
//!   the pair refreshed and replays that successor.
//! - **Portability.** A data-modifying `WITH` is accepted by CockroachDB
//!   and YugabyteDB; CockroachDB runs it `SERIALIZABLE`, where a conflict
//!   aborts it (SQLSTATE 40001) and the attempt runs again from its read.

use deadpool_postgres::Client;
use tessera_domain::token::Refreshed;
use tessera_domain::TokenRecord;
use tokio_postgres::types::ToSql;

use crate::db::{changed_nothing, Fail};
use crate::tokens::{insert_placeholders, mark_params, NewRow, INSERT_COLUMNS, MARK_REFRESHED};

/// Marks pair `$1` refreshed (`$2`–`$4`, as [`MARK_REFRESHED`]) if it is
/// not refreshed, its refresh half not invalidated and its access half's
/// flag is `$5`; and only then stores the successor (`$6`…).
pub(crate) static ROTATE_IF_UNCHANGED: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| {
        format!(
            "WITH marked AS (
                 {MARK_REFRESHED}
                   AND NOT refresh_invalidated AND access_invalidated = $5
                 RETURNING id
             )
             INSERT INTO tokens ({}) SELECT {} FROM marked",
            *INSERT_COLUMNS,
            insert_placeholders(6)
        )
    });

/// Rotates `record` as `refreshed` says, storing `successor`, if its row
/// is still as `record` shows it: whether it did. `record` is the pair as
/// the unlocked read found it, on which `refresh::decide` decided this
/// rotation (so it was neither refreshed nor invalidated).
pub(crate) async fn rotate_if_unchanged(
    c: &Client,
    record: &TokenRecord,
    successor: &TokenRecord,
    refreshed: &Refreshed,
) -> Result<bool, Fail> {
    // As `PgTx::rotate` stores it: in the family, with no parent.
    let new = NewRow::of(successor, None)?;
    // Nothing was sent yet if preparing finds the connection dead.
    let stmt = c
        .prepare_cached(&ROTATE_IF_UNCHANGED)
        .await
        .map_err(changed_nothing)?;
    let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(29);
    params.extend(mark_params(&record.id, refreshed));
    params.push(&record.access_invalidated);
    params.extend(new.params());
    Ok(c.execute(&stmt, &params).await? == 1)
}
