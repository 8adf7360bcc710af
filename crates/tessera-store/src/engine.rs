//! The one driver of the token transactions.
//!
//! Issuing, refreshing and invalidating a token each read a few rows,
//! let the domain decide, and write the decision's effects, all inside
//! one store transaction. The order of those steps is written here, once;
//! each backend implements [`TokenTx`], the handful of row operations a
//! transaction offers, and runs these functions inside its own
//! transaction (SQLite on its writer thread, PostgreSQL in a
//! `SERIALIZABLE` transaction that it retries on conflict). Because the
//! rules ([`tessera_domain::refresh::decide`], [`judge_replay`]) are pure
//! and the randomness of a rotation comes with the request, a retried
//! transaction decides the same thing again.
//!
//! A backend's transactions never wait on anything but their own
//! connection, so the SQLite writer runs these futures to completion with
//! [`run_now`] without an executor.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use tessera_domain::refresh::{self, judge_replay, Decision, Denied, RefreshError};
use tessera_domain::token::Refreshed;
use tessera_domain::{Millis, TokenKey, TokenRecord};

use crate::{
    InvalidateOne, Lineage, OneTime, RefreshGranted, RefreshOutcome, RefreshRequest, Requirement,
    StoreError,
};

/// Which half of a pair a token string names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    Access,
    Refresh,
}

/// The row operations of one open store transaction, in domain terms.
/// `Pair` is the backend's handle on a stored pair (where it is and which
/// family it belongs to), returned by the lookups and handed back to the
/// writes.
#[expect(
    async_fn_in_trait,
    reason = "each backend calls the driver with its own concrete type, \
              so the futures' auto traits are known where they are needed"
)]
pub trait TokenTx {
    type Pair;
    type Error: From<StoreError>;

    /// The pair holding refresh token `hash`, locked for update until the
    /// transaction ends. A backend may leave a pair that is already
    /// refreshed unlocked: it is never rotated again, and whatever
    /// revokes it locks it.
    async fn lock_by_refresh(
        &mut self,
        hash: &TokenKey,
    ) -> Result<Option<(Self::Pair, TokenRecord)>, Self::Error>;
    /// The pair holding access token `hash`.
    async fn by_access(&mut self, hash: &TokenKey) -> Result<Option<TokenRecord>, Self::Error>;
    /// Whether the named half of the pair holding `hash` is invalidated,
    /// and the pair, locked against concurrent revocation.
    async fn invalidation_state(
        &mut self,
        half: Half,
        hash: &TokenKey,
    ) -> Result<Option<(bool, Self::Pair)>, Self::Error>;
    /// Records `proof` as used; `false` if it already was.
    async fn use_once(&mut self, proof: &OneTime) -> Result<bool, Self::Error>;
    /// Whether `requirement` holds at `at` (see [`Requirement`]).
    async fn holds(&mut self, requirement: &Requirement, at: Millis) -> Result<bool, Self::Error>;
    /// Stores the first pair of a family, as a child of `parent`'s family
    /// when given.
    async fn insert_first(
        &mut self,
        record: &TokenRecord,
        parent: Option<&Self::Pair>,
    ) -> Result<(), Self::Error>;
    /// Stores `successor` in the family of `previous`, and records that
    /// `previous`'s refresh token was used (`refreshed`), so that a later
    /// read of `previous` answers with `refreshed`. Where the record is
    /// kept is the backend's choice, but it must be readable for as long
    /// as `previous`'s refresh token has not expired.
    async fn rotate(
        &mut self,
        previous: &Self::Pair,
        successor: &TokenRecord,
        refreshed: &Refreshed,
    ) -> Result<(), Self::Error>;
    /// Invalidates both halves of every pair of `pair`'s family and of
    /// every family derived from it, however deep.
    async fn revoke_family(&mut self, pair: &Self::Pair) -> Result<(), Self::Error>;
    /// Invalidates the named half of `pair` alone.
    async fn invalidate_half(&mut self, pair: &Self::Pair, half: Half) -> Result<(), Self::Error>;
}

/// Stores a new family's first pair if every source of its authority
/// still stands: each requirement holds, the parent token's family (if
/// any) is not revoked, and its one-time proof (if any) is used now for
/// the first time. Returns whether it stored the pair.
pub async fn issue<T: TokenTx>(
    tx: &mut T,
    record: &TokenRecord,
    lineage: &Lineage,
) -> Result<bool, T::Error> {
    for requirement in &lineage.requires {
        if !tx.holds(requirement, record.created_at).await? {
            return Ok(false);
        }
    }
    let parent = match &lineage.parent {
        None => None,
        Some(hash) => match tx.invalidation_state(Half::Access, hash).await? {
            Some((false, pair)) => Some(pair),
            // The minting token is gone or was taken back.
            _ => return Ok(false),
        },
    };
    if let Some(proof) = &lineage.one_time {
        if !tx.use_once(proof).await? {
            return Ok(false);
        }
    }
    tx.insert_first(record, parent.as_ref()).await?;
    Ok(true)
}

/// The atomic refresh: find and lock the presented pair, let the domain
/// decide, then rotate, replay or deny (revoking the family when the
/// denial says so).
pub async fn refresh<T: TokenTx>(
    tx: &mut T,
    request: &RefreshRequest,
) -> Result<RefreshOutcome, T::Error> {
    let Some((pair, record)) = tx.lock_by_refresh(&request.refresh_token.hash()).await? else {
        return Ok(Err(Denied::reject(RefreshError::NotFound)));
    };
    let denied = match refresh::decide(&record, request) {
        Decision::Rotate {
            successor,
            refreshed,
            pair: minted,
        } => {
            tx.rotate(&pair, &successor, &refreshed).await?;
            return Ok(Ok(granted(record, minted, true)));
        }
        Decision::Replay {
            pair: sealed,
            successor_id,
        } => {
            // The successor is the pair whose access token was sealed.
            let successor = tx.by_access(&sealed.access.hash()).await?;
            let successor = successor.filter(|s| s.id == successor_id);
            match judge_replay(successor.as_ref(), request.now, request.policy) {
                Ok(()) => return Ok(Ok(granted(record, sealed, false))),
                Err(denied) => denied,
            }
        }
        Decision::Deny(denied) => denied,
    };
    if denied.revoke_family {
        tx.revoke_family(&pair).await?;
    }
    Ok(Err(denied))
}

fn granted(
    record: TokenRecord,
    pair: tessera_domain::token::TokenPair,
    rotated: bool,
) -> RefreshGranted {
    RefreshGranted {
        pair,
        subject: record.subject,
        scope: record.scope,
        not_after: record.not_after,
        rotated,
    }
}

/// Invalidates the token `hash` names: with `family`, its pair and the rest
/// of its family (and every family derived from it); without, the named
/// token alone, as Elasticsearch does (the other half of its pair, its
/// family and the families derived from it are left as they are). The
/// answer is the named half's state before the call; the flag only goes
/// from false to true, so racing invalidations agree on who changed it.
pub async fn invalidate<T: TokenTx>(
    tx: &mut T,
    half: Half,
    hash: &TokenKey,
    family: bool,
) -> Result<InvalidateOne, T::Error> {
    let Some((already, pair)) = tx.invalidation_state(half, hash).await? else {
        return Ok(InvalidateOne::NotFound);
    };
    if family {
        // Again when already invalidated: a successor may have joined.
        tx.revoke_family(&pair).await?;
    } else if !already {
        tx.invalidate_half(&pair, half).await?;
    }
    Ok(if already {
        InvalidateOne::AlreadyInvalidated
    } else {
        InvalidateOne::Invalidated
    })
}

/// Runs a transaction future that never waits (every step is a call on a
/// connection the caller holds) to completion on the current thread.
pub fn run_now<F: Future>(future: F) -> Result<F::Output, StoreError> {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => Ok(out),
        Poll::Pending => Err(StoreError::Internal(
            "a synchronous store transaction tried to wait".into(),
        )),
    }
}
