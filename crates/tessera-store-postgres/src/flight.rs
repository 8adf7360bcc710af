//! Single flight: identical refreshes in flight on one node share one
//! store call.
//!
//! A client that retries, or many tabs of one browser, can present one
//! refresh token hundreds of times at once. Each would otherwise run its
//! own transaction on the same row. Instead, while a refresh of token `H`
//! runs on this node (the *leader*), a refresh of `H` with the same
//! parameters (the presented token, the caller, the asked scope, the OAuth
//! client's registered scope as it was read, the policy, and a clock
//! reading within [`clock_slack`] of the leader's)
//! becomes a *follower*: it waits for the leader's outcome and answers as
//! a repeat of it. Requests with other parameters run alone.
//!
//! # Why a follower's answer is one its own transaction could give
//!
//! A follower joins at `j`, before its request ends, and answers after the
//! leader's call has ended. It takes the leader's outcome only if it joined
//! before the leader *fixed* that outcome in the database:
//!
//! - an outcome that wrote (a rotation, or reuse that revoked the family)
//!   is fixed at its commit: that of the conditional statement of a first
//!   rotation (`rotate.rs`), which writes only if the row is still as its
//!   decision read it, or the `COMMIT` of the locked transaction, which
//!   holds the presented row from the decision on. A follower that joined
//!   before that statement or `COMMIT` was sent has the commit inside its
//!   own interval; its own transaction, ordered just after it, would find
//!   the pair refreshed and replay the same successor (a rotation), or
//!   find it invalidated (a revocation: the follower is answered
//!   `Invalidated`, not as a second reuse);
//! - any other outcome (a replay, a refusal that writes nothing) is fixed
//!   by the reads of its attempt, so a follower must have joined before
//!   the attempt's first statement was sent.
//!
//! Either way the leader's linearization point lies inside the follower's
//! own request interval, so the follower's answer is linearizable.
//! Followers count their joins on an atomic counter that the leader reads
//! just before those statements ([`Marks`]; a leader that reads again, or
//! falls back to the locked transaction, marks again, and its outcome is
//! fixed by its latest marked statement); one that joined later waits
//! for nothing useful and simply runs again (leading or following a new
//! flight). Those that run again are woken together, so the first of them
//! to lead a new flight yields once before its first statement, letting the
//! others join it in time: otherwise each would join just after the new
//! leader's read was sent, and a storm would turn into a chain of one call
//! per late follower. A failure (`Unavailable`, `Internal`) is shared with every
//! follower: its own call would have failed against the same database at
//! the same moment, and many retries would only add load to it.
//!
//! The time-dependent rules (expiry, the repeat window) were applied at the
//! leader's clock reading, which is within [`clock_slack`] (at most 100 ms,
//! and never more than the repeat window) of the follower's own.
//!
//! # Cancellation
//!
//! The store call runs in the leader's own future. If that is dropped (its
//! client went away), the flight is removed and its followers are woken
//! without an outcome; they enter again, so one of them leads a new call,
//! which finds whatever the dropped one committed (the leased connection
//! of a dropped transaction is discarded, so the server rolls back
//! anything it did not commit; a conditional statement, which runs on a
//! shared connection to its end, or a `COMMIT` it had already sent may
//! still commit, and is then found and replayed).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tessera_domain::authn::ClientRef;
use tessera_domain::crypto::ct_eq;
use tessera_domain::refresh::{Denied, RefreshError, RefreshPolicy};
use tessera_domain::token::TokenString;
use tessera_domain::{Millis, TokenKey};
use tessera_store::{RefreshGranted, RefreshOutcome, RefreshRequest, StoreError, StoreResult};
use tokio::sync::watch;

use crate::PostgresStore;

/// The most two clock readings of a shared refresh may differ by.
const CLOCK_SLACK_MS: Millis = 100;

/// How far apart the clock readings of a leader and its followers may be
/// under `policy`: [`CLOCK_SLACK_MS`], and never more than the repeat
/// window, so a follower of a rotation is always inside its window.
fn clock_slack(policy: &RefreshPolicy) -> Millis {
    CLOCK_SLACK_MS.min(policy.window_ms.max(0))
}

/// This node's refreshes in flight, by refresh token.
#[derive(Default)]
pub(crate) struct Flights {
    flights: Mutex<HashMap<TokenKey, Arc<Flight>>>,
    /// Refreshes answered with another's outcome.
    shared: AtomicU64,
}

/// One leader's call and who waits for it.
struct Flight {
    presented: TokenString,
    caller: ClientRef,
    scope: Option<Vec<String>>,
    registered: Option<Vec<String>>,
    policy: RefreshPolicy,
    now: Millis,
    marks: Arc<Counts>,
    landed: watch::Sender<Option<Arc<Landing>>>,
}

/// Followers that joined, and how many had joined when the leader sent
/// the statements that may fix its outcome.
#[derive(Default)]
struct Counts {
    joined: AtomicU64,
    /// Before the first statement of the latest attempt.
    at_read: AtomicU64,
    /// Before the commit (a `COMMIT`, or the conditional statement of a
    /// first rotation) of the latest attempt.
    at_commit: AtomicU64,
}

/// The leader's outcome, and which followers may take it: those whose
/// join index is below `eligible`.
struct Landing {
    outcome: StoreResult<RefreshOutcome>,
    eligible: u64,
}

/// The leader's hooks into its own attempts: called just before sending
/// the statements that may fix the outcome. Inert for a call that leads
/// nobody.
#[derive(Clone, Default)]
pub(crate) struct Marks(Option<Arc<Counts>>);

impl Marks {
    /// Just before the first statement of an attempt.
    pub(crate) fn before_read(&self) {
        if let Some(c) = &self.0 {
            c.at_read
                .store(c.joined.load(Ordering::SeqCst), Ordering::SeqCst);
        }
    }

    /// Just before the statement that commits an attempt's write: the
    /// conditional statement of a first rotation, or a `COMMIT`.
    pub(crate) fn before_commit(&self) {
        if let Some(c) = &self.0 {
            c.at_commit
                .store(c.joined.load(Ordering::SeqCst), Ordering::SeqCst);
        }
    }
}

impl Flight {
    fn new(request: &RefreshRequest) -> Self {
        Self {
            presented: request.refresh_token.clone(),
            caller: request.caller.clone(),
            scope: request.scope.clone(),
            registered: request.registered.clone(),
            policy: request.policy,
            now: request.now,
            marks: Arc::default(),
            landed: watch::Sender::new(None),
        }
    }

    /// Whether `request` asks exactly what this flight's leader asked.
    fn same(&self, request: &RefreshRequest) -> bool {
        ct_eq(
            self.presented.expose().as_bytes(),
            request.refresh_token.expose().as_bytes(),
        ) && self.caller == request.caller
            && self.scope == request.scope
            && self.registered == request.registered
            && self.policy == request.policy
            && self.now.abs_diff(request.now) <= clock_slack(&self.policy).unsigned_abs()
    }
}

enum Entry<'f> {
    Lead(Lead<'f>),
    Follow {
        index: u64,
        landed: watch::Receiver<Option<Arc<Landing>>>,
    },
    /// Another flight of the same token with other parameters.
    Alone,
}

/// The leader's hold on its flight. Dropped without landing (the leader's
/// call was cancelled), it removes the flight and wakes the followers
/// without an outcome.
struct Lead<'f> {
    flights: &'f Flights,
    key: TokenKey,
    flight: Arc<Flight>,
}

impl Lead<'_> {
    /// Publishes `outcome` to the followers that joined before it was fixed.
    fn land(self, outcome: &StoreResult<RefreshOutcome>) {
        let counts = &self.flight.marks;
        let eligible = match outcome {
            Ok(Ok(granted)) if granted.rotated => counts.at_commit.load(Ordering::SeqCst),
            Ok(Err(denied)) if denied.revoke_family => counts.at_commit.load(Ordering::SeqCst),
            Ok(_) => counts.at_read.load(Ordering::SeqCst),
            Err(_) => u64::MAX,
        };
        // Removed before publishing, so a follower that may not take this
        // outcome and enters again cannot find this flight.
        self.flights.remove(&self.key, &self.flight);
        let landing = Landing {
            outcome: copy(outcome, false),
            eligible,
        };
        self.flight.landed.send_replace(Some(Arc::new(landing)));
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        // After `land` this finds nothing to remove.
        self.flights.remove(&self.key, &self.flight);
    }
}

impl Flights {
    /// Runs `call` for `request`, or waits for an identical call in flight
    /// on this node and answers as a repeat of its outcome. `call` is given
    /// the [`Marks`] its attempts must set.
    pub(crate) async fn share<F, Fut>(
        &self,
        request: &RefreshRequest,
        mut call: F,
    ) -> StoreResult<RefreshOutcome>
    where
        F: FnMut(Marks) -> Fut,
        Fut: Future<Output = StoreResult<RefreshOutcome>>,
    {
        // Whether this request already waited for a flight whose outcome
        // it could not take (or whose leader was dropped).
        let mut again = false;
        loop {
            match self.enter(request) {
                Entry::Alone => return call(Marks::default()).await,
                Entry::Lead(lead) => {
                    if again {
                        // Woken together with the other followers of that
                        // flight: let them join this one before its first
                        // statement is sent, so one call answers them all
                        // rather than a new call for each that joins it
                        // too late.
                        tokio::task::yield_now().await;
                    }
                    let outcome = call(Marks(Some(Arc::clone(&lead.flight.marks)))).await;
                    lead.land(&outcome);
                    return outcome;
                }
                Entry::Follow { index, mut landed } => {
                    // An error: the leader was dropped before it landed.
                    let landing = match landed.wait_for(Option::is_some).await {
                        Ok(seen) => seen.clone(),
                        Err(_) => None,
                    };
                    again = true;
                    let Some(landing) = landing else { continue };
                    if index < landing.eligible {
                        self.shared.fetch_add(1, Ordering::Relaxed);
                        return copy(&landing.outcome, true);
                    }
                }
            }
        }
    }

    fn enter(&self, request: &RefreshRequest) -> Entry<'_> {
        let key = request.refresh_token.hash();
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        match flights.get(&key) {
            Some(flight) if flight.same(request) => Entry::Follow {
                index: flight.marks.joined.fetch_add(1, Ordering::SeqCst),
                landed: flight.landed.subscribe(),
            },
            Some(_) => Entry::Alone,
            None => {
                let flight = Arc::new(Flight::new(request));
                flights.insert(key, Arc::clone(&flight));
                Entry::Lead(Lead {
                    flights: self,
                    key,
                    flight,
                })
            }
        }
    }

    fn remove(&self, key: &TokenKey, flight: &Arc<Flight>) {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if flights.get(key).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            flights.remove(key);
        }
    }
}

/// `outcome` as a follower answers it (`follower`), or kept for followers.
/// A follower's grant is a repeat (`rotated: false`), and a follower of a
/// refusal that revoked the family finds the token invalidated, as its own
/// transaction after the leader's would.
fn copy(outcome: &StoreResult<RefreshOutcome>, follower: bool) -> StoreResult<RefreshOutcome> {
    match outcome {
        Ok(Ok(g)) => Ok(Ok(RefreshGranted {
            pair: g.pair.clone(),
            subject: g.subject.clone(),
            scope: g.scope.clone(),
            not_after: g.not_after,
            rotated: g.rotated && !follower,
        })),
        Ok(Err(denied)) if follower && denied.revoke_family => {
            Ok(Err(Denied::reject(RefreshError::Invalidated)))
        }
        Ok(Err(denied)) => Ok(Err(denied.clone())),
        Err(StoreError::Unavailable(m)) => Err(StoreError::Unavailable(m.clone())),
        Err(StoreError::Internal(m)) => Err(StoreError::Internal(m.clone())),
        Err(StoreError::PasswordRequired) => Err(StoreError::PasswordRequired),
    }
}

/// What single flight did on this node, for tests and diagnostics.
impl PostgresStore {
    /// How many refreshes were answered with another's outcome.
    pub fn shared_refreshes(&self) -> u64 {
        self.flights.shared.load(Ordering::Relaxed)
    }

    /// How many refreshes have joined the flight of refresh token `hash`
    /// now in flight on this node (`None`: none is).
    pub fn refresh_followers(&self, hash: &TokenKey) -> Option<u64> {
        let flights = self
            .flights
            .flights
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        flights
            .get(hash)
            .map(|f| f.marks.joined.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tessera_domain::authn::{Authentication, NATIVE_REALM};
    use tessera_domain::token::{TokenKind, TokenPair};
    use tokio::sync::Semaphore;

    use super::*;

    const POLICY: RefreshPolicy = RefreshPolicy::elasticsearch(true);
    const NOW: Millis = 1_700_000_000_000;

    fn subject() -> Authentication {
        Authentication::of_realm("u", Vec::new(), NATIVE_REALM)
    }

    fn request(token: &TokenString, now: Millis) -> RefreshRequest {
        RefreshRequest::new(token.clone(), subject().client_ref(), now, POLICY)
    }

    fn granted(pair: &TokenPair) -> StoreResult<RefreshOutcome> {
        Ok(Ok(RefreshGranted {
            pair: pair.clone(),
            subject: subject(),
            scope: None,
            not_after: None,
            rotated: true,
        }))
    }

    /// A store call that counts itself, marks as told, waits for a permit,
    /// then answers `outcome`.
    struct Fake {
        calls: AtomicUsize,
        gate: Semaphore,
        outcome: StoreResult<RefreshOutcome>,
    }

    impl Fake {
        fn new(outcome: StoreResult<RefreshOutcome>) -> Arc<Self> {
            Arc::new(Self {
                calls: AtomicUsize::new(0),
                gate: Semaphore::new(0),
                outcome,
            })
        }

        async fn call(&self, marks: Marks, read_first: bool) -> StoreResult<RefreshOutcome> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if read_first {
                marks.before_read();
            }
            self.gate.acquire().await.expect("open gate").forget();
            if !read_first {
                marks.before_read();
            }
            marks.before_commit();
            copy(&self.outcome, false)
        }
    }

    fn spawn(
        flights: &Arc<Flights>,
        fake: &Arc<Fake>,
        request: RefreshRequest,
        read_first: bool,
    ) -> tokio::task::JoinHandle<StoreResult<RefreshOutcome>> {
        let (flights, fake) = (Arc::clone(flights), Arc::clone(fake));
        tokio::spawn(async move {
            flights
                .share(&request, |marks| fake.call(marks, read_first))
                .await
        })
    }

    fn joined(flights: &Flights, token: &TokenString) -> Option<u64> {
        let flights = flights.flights.lock().unwrap();
        flights
            .get(&token.hash())
            .map(|f| f.marks.joined.load(Ordering::SeqCst))
    }

    /// Waits until `done` holds (the spawned tasks got there).
    async fn until(mut done: impl FnMut() -> bool) {
        for _ in 0..10_000 {
            if done() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("the tasks never got there");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn followers_answer_the_leaders_rotation_as_a_repeat() {
        let token = TokenString::mint(TokenKind::Refresh, NOW);
        let pair = TokenPair {
            access: TokenString::mint(TokenKind::Access, NOW),
            refresh: Some(TokenString::mint(TokenKind::Refresh, NOW)),
        };
        let (flights, fake) = (Arc::new(Flights::default()), Fake::new(granted(&pair)));
        let leader = spawn(&flights, &fake, request(&token, NOW), false);
        until(|| joined(&flights, &token).is_some()).await;
        // Within the clock slack, same parameters: followers.
        let followers: Vec<_> = (0..20)
            .map(|i| spawn(&flights, &fake, request(&token, NOW + i % 50), false))
            .collect();
        // Another caller, or a clock reading too far off, runs alone.
        let mut stranger = request(&token, NOW);
        stranger.caller.username = "someone else".into();
        let alone = [
            spawn(&flights, &fake, stranger, false),
            spawn(&flights, &fake, request(&token, NOW + 101), false),
        ];
        until(|| joined(&flights, &token) == Some(20) && fake.calls.load(Ordering::SeqCst) == 3)
            .await;
        fake.gate.add_permits(3);
        let led = leader.await.unwrap().unwrap().unwrap();
        assert!(led.rotated);
        for f in followers {
            let got = f.await.unwrap().unwrap().unwrap();
            assert!(!got.rotated, "a follower answers as a repeat");
            assert_eq!(got.pair, pair);
        }
        for a in alone {
            assert!(a.await.unwrap().unwrap().unwrap().rotated);
        }
        assert_eq!(fake.calls.load(Ordering::SeqCst), 3);
        assert_eq!(flights.shared.load(Ordering::Relaxed), 20);
        assert!(flights.flights.lock().unwrap().is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_follower_that_joined_after_a_read_decided_runs_again() {
        let token = TokenString::mint(TokenKind::Refresh, NOW);
        // A replay (not a write): fixed by the attempt's first read.
        let replay = Ok(Err(Denied::reject(RefreshError::Expired)));
        let (flights, fake) = (Arc::new(Flights::default()), Fake::new(replay));
        let leader = spawn(&flights, &fake, request(&token, NOW), true);
        until(|| fake.calls.load(Ordering::SeqCst) == 1).await;
        // Joins after the leader's read was sent: it may not take the
        // outcome, so it runs its own call once the leader has landed.
        let late = spawn(&flights, &fake, request(&token, NOW), false);
        until(|| joined(&flights, &token) == Some(1)).await;
        fake.gate.add_permits(2);
        assert!(leader.await.unwrap().unwrap().is_err());
        assert!(late.await.unwrap().unwrap().is_err());
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
        assert_eq!(flights.shared.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn followers_that_joined_too_late_share_one_new_call() {
        let token = TokenString::mint(TokenKind::Refresh, NOW);
        let refused = Ok(Err(Denied::reject(RefreshError::Expired)));
        let (flights, fake) = (Arc::new(Flights::default()), Fake::new(refused));
        let leader = spawn(&flights, &fake, request(&token, NOW), true);
        until(|| fake.calls.load(Ordering::SeqCst) == 1).await;
        // All join after the leader's read was sent: none may take its
        // outcome. Woken together, they share one new call.
        let late: Vec<_> = (0..20)
            .map(|_| spawn(&flights, &fake, request(&token, NOW), true))
            .collect();
        until(|| joined(&flights, &token) == Some(20)).await;
        fake.gate.add_permits(1);
        until(|| fake.calls.load(Ordering::SeqCst) == 2).await;
        // Enough for a call each, had they not shared.
        fake.gate.add_permits(20);
        assert!(leader.await.unwrap().unwrap().is_err());
        for l in late {
            assert!(l.await.unwrap().unwrap().is_err());
        }
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
        assert_eq!(flights.shared.load(Ordering::Relaxed), 19);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_revocation_reaches_followers_as_invalidated_and_errors_are_shared() {
        let token = TokenString::mint(TokenKind::Refresh, NOW);
        let revoked = Ok(Err(Denied {
            error: RefreshError::RefreshedTooLongAgo { window_ms: 30_000 },
            revoke_family: true,
        }));
        for (outcome, expected) in [
            (
                revoked,
                "Ok(Err(Denied { error: Invalidated, revoke_family: false }))",
            ),
            (
                Err(StoreError::Unavailable("down".into())),
                "Err(Unavailable(\"down\"))",
            ),
        ] {
            let (flights, fake) = (Arc::new(Flights::default()), Fake::new(outcome));
            let leader = spawn(&flights, &fake, request(&token, NOW), true);
            until(|| joined(&flights, &token).is_some()).await;
            let follower = spawn(&flights, &fake, request(&token, NOW), false);
            until(|| joined(&flights, &token) == Some(1)).await;
            fake.gate.add_permits(1);
            leader.await.unwrap().ok();
            let got = follower.await.unwrap();
            assert_eq!(format!("{got:?}"), expected);
            assert_eq!(fake.calls.load(Ordering::SeqCst), 1);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_leader_hands_over_to_a_follower() {
        let token = TokenString::mint(TokenKind::Refresh, NOW);
        let pair = TokenPair {
            access: TokenString::mint(TokenKind::Access, NOW),
            refresh: None,
        };
        let (flights, fake) = (Arc::new(Flights::default()), Fake::new(granted(&pair)));
        let leader = spawn(&flights, &fake, request(&token, NOW), false);
        until(|| joined(&flights, &token).is_some()).await;
        let followers: Vec<_> = (0..5)
            .map(|_| spawn(&flights, &fake, request(&token, NOW), false))
            .collect();
        until(|| joined(&flights, &token) == Some(5)).await;
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        // One follower leads a new call, the others join it.
        until(|| joined(&flights, &token) == Some(4)).await;
        fake.gate.add_permits(1);
        let mut rotated = 0;
        for f in followers {
            let got = f.await.unwrap().unwrap().unwrap();
            rotated += usize::from(got.rotated);
            assert_eq!(got.pair, pair);
        }
        assert_eq!(rotated, 1);
        assert_eq!(fake.calls.load(Ordering::SeqCst), 2);
    }

    /// A request joins a flight only with the same parameters, the OAuth
    /// client's registration as it was read included: a refresh that read
    /// a narrowed registration is decided on its own.
    #[test]
    fn a_changed_registration_runs_alone() {
        let token = TokenString::mint(TokenKind::Refresh, NOW);
        let mut asked = request(&token, NOW);
        asked.registered = Some(vec!["read".into(), "write".into()]);
        let flight = Flight::new(&asked);
        assert!(flight.same(&asked));
        let mut narrowed = asked.clone();
        narrowed.registered = Some(vec!["read".into()]);
        assert!(!flight.same(&narrowed));
    }
}
