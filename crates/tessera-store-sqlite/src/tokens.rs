//! The token transactions run on the writer: the refresh, its denial
//! and the invalidation of a family.

use super::*;

/// Records, once for the database, that tokens were ever issued.
pub(crate) fn mark_tokens_issued(conn: &Connection) -> StoreResult<()> {
    conn.prepare_cached("INSERT OR IGNORE INTO meta (key, value) VALUES ('tokens_issued', '1')")
        .and_then(|mut stmt| stmt.execute([]))
        .map(|_| ())
        .map_err(internal)
}

/// Runs a refresh inside the writer's transaction. The writer is the only
/// writing connection, so the record cannot change between the read and the
/// update below.
pub(crate) fn refresh_in_tx(
    conn: &Connection,
    req: &RefreshRequest,
) -> StoreResult<RefreshOutcome> {
    let hash = req.refresh_token.hash();
    let Some((at, record)) = pairs::find(conn, pairs::Half::Refresh, &hash)? else {
        return Ok(Err(Denied::reject(refresh::RefreshError::NotFound)));
    };
    match refresh::decide(
        &record,
        &req.refresh_token,
        &req.caller,
        req.now,
        req.policy,
    ) {
        Decision::Deny(denied) => deny(conn, at.family, denied),
        Decision::Replay { pair, .. } => {
            // The successor is the pair whose access token the sealed pair holds.
            let successor =
                pairs::find(conn, pairs::Half::Access, &pair.access.hash())?.map(|(_, r)| r);
            match refresh::judge_replay(successor.as_ref(), req.now, req.policy) {
                Ok(()) => Ok(Ok(RefreshGranted {
                    pair,
                    subject: record.subject,
                    scope: record.scope,
                    not_after: record.not_after,
                    rotated: false,
                })),
                Err(denied) => deny(conn, at.family, denied),
            }
        }
        Decision::Rotate {
            successor,
            refreshed,
            pair,
        } => {
            pairs::insert_successor(conn, &successor, at)?;
            pairs::mark_refreshed(conn, at.seq, &refreshed)?;
            Ok(Ok(RefreshGranted {
                pair,
                subject: record.subject,
                scope: record.scope,
                not_after: record.not_after,
                rotated: true,
            }))
        }
    }
}

/// Refuses a refresh, first revoking the family when the denial asks for it.
pub(crate) fn deny(conn: &Connection, family: i64, denied: Denied) -> StoreResult<RefreshOutcome> {
    if denied.revoke_family {
        pairs::revoke_family(conn, family)?;
    }
    Ok(Err(denied))
}

/// Invalidation is final for the whole family: the named token's state
/// decides the answer, every member is invalidated.
pub(crate) fn invalidate_one(
    conn: &Connection,
    half: pairs::Half,
    hash: &TokenHash,
) -> StoreResult<InvalidateOne> {
    let Some((already, family)) = pairs::invalidation_state(conn, half, hash)? else {
        return Ok(InvalidateOne::NotFound);
    };
    pairs::revoke_family(conn, family)?;
    Ok(if already {
        InvalidateOne::AlreadyInvalidated
    } else {
        InvalidateOne::Invalidated
    })
}
