//! The refresh state machine.
//!
//! A stored pair moves through these states:
//!
//! ```text
//!   fresh ──refresh──▶ refreshed(at, sealed successor) ──window passes──▶ spent
//!     │                    │ repeat within the window: the same successor
//!     └──────── invalidated / expired (terminal) ◀───────┘
//! ```
//!
//! Every chain of refreshes that starts from one grant is a *family*; each
//! record carries its family id and generation. A successor inherits its
//! predecessor's subject, client and OAuth scope unchanged. With
//! [`RefreshPolicy::reuse_revokes_family`] on (the default), presenting a
//! refresh token after its window, or one from an older generation than the
//! current head's immediate predecessor, is treated as theft (RFC 9700 §4.14):
//! the store revokes every member of the family in the same transaction.
//!
//! [`decide`] is a pure function of the stored record, the presented refresh
//! token, the caller and the time. A store calls it *inside* the transaction
//! that holds the record locked, and applies a [`Decision::Rotate`] (update
//! the old record, insert the successor) in that same transaction. That is
//! what makes a refresh one atomic step: there is never a moment at which a
//! record says "refreshed" but its successor is not stored.

use crate::authn::ClientRef;
use crate::crypto;
use crate::time::Millis;
use crate::token::{Fresh, Refreshed, TokenPair, TokenRecord, TokenString};

/// Tunables of a refresh, fixed by configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshPolicy {
    pub access_ttl_ms: Millis,
    /// How long after the first refresh a repeat returns the same pair.
    pub window_ms: Millis,
    /// Reuse outside the window revokes the whole family (otherwise it is
    /// only refused, as in Elasticsearch).
    pub reuse_revokes_family: bool,
}

impl RefreshPolicy {
    /// Elasticsearch's timings: 20-minute access tokens and a 30-second
    /// window for repeats; `reuse_revokes_family` says what reuse after
    /// the window does.
    pub const fn elasticsearch(reuse_revokes_family: bool) -> Self {
        RefreshPolicy {
            access_ttl_ms: 20 * 60 * 1_000,
            window_ms: 30_000,
            reuse_revokes_family,
        }
    }
}

/// Why a refresh was refused. Each maps to Elasticsearch's exact
/// `error_description` for `invalid_grant` (and [`RefreshError::ScopeNotGranted`]
/// to OAuth's `invalid_scope`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    #[error("could not refresh the requested token")]
    NotFound,
    #[error("token document has expired")]
    Expired,
    #[error("token has been invalidated")]
    Invalidated,
    #[error("tokens must be refreshed by the creating client")]
    WrongClient,
    /// Reuse after the window (`window_ms`, the configured one).
    #[error(
        "token has already been refreshed more than {} in the past",
        window_text(*.window_ms)
    )]
    RefreshedTooLongAgo { window_ms: Millis },
    #[error(
        "token has been refreshed more than {} in the future, clock skew too great",
        window_text(*.window_ms)
    )]
    ClockSkew { window_ms: Millis },
    /// A repeat of an older generation than the head's predecessor.
    #[error("token has already been refreshed")]
    AlreadyRefreshed,
    /// An OAuth refresh asked for a scope token the family was not granted
    /// (RFC 6749 §6); nothing changes.
    #[error("scope [{scope}] was not granted to this refresh token")]
    ScopeNotGranted { scope: String },
    /// The family holds a scope token that the refreshing OAuth client is
    /// no longer registered for; nothing changes, and a new grant gets the
    /// registration's scope.
    #[error("scope [{scope}] is no longer registered for this client")]
    ScopeNoLongerRegistered { scope: String },
}

/// The window as the messages state it: Elasticsearch's "30 seconds" for
/// its fixed window, and the configured one otherwise.
fn window_text(window_ms: Millis) -> String {
    match window_ms {
        1000 => "1 second".to_owned(),
        ms if ms % 1000 == 0 => format!("{} seconds", ms / 1000),
        1 => "1 millisecond".to_owned(),
        ms => format!("{ms} milliseconds"),
    }
}

/// A refused refresh. `revoke_family` asks the store to invalidate every
/// member of the family (and, in an outcome, says that it did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub error: RefreshError,
    pub revoke_family: bool,
}

impl Denied {
    pub fn reject(error: RefreshError) -> Self {
        Self {
            error,
            revoke_family: false,
        }
    }

    fn reuse(error: RefreshError, policy: RefreshPolicy) -> Self {
        Self {
            error,
            revoke_family: policy.reuse_revokes_family,
        }
    }
}

/// What a store must do with a refresh request.
#[derive(Debug)]
pub enum Decision {
    /// Refuse; change nothing unless `revoke_family` is set.
    Deny(Denied),
    /// Already refreshed within the window: answer with the successor pair
    /// that the first refresh produced (after [`judge_replay`]).
    Replay {
        successor_id: String,
        pair: TokenPair,
    },
    /// First refresh: store `successor`, mark the old record `refreshed`,
    /// both in one transaction, then hand out `pair`.
    Rotate {
        successor: Box<TokenRecord>,
        refreshed: Refreshed,
        pair: TokenPair,
    },
}

/// A refresh as the rules see it: who presents which refresh token, when,
/// under which policy, and the randomness a rotation would use.
#[derive(Debug, Clone)]
pub struct Request {
    pub refresh_token: TokenString,
    pub caller: ClientRef,
    pub now: Millis,
    pub policy: RefreshPolicy,
    /// The scope an OAuth client asked for (RFC 6749 §6): every token must
    /// have been granted to the family. `None`: no narrowing asked.
    pub scope: Option<Vec<String>>,
    /// What a rotation mints the successor from.
    pub fresh: Fresh,
    /// The scope the refreshing OAuth client is registered for now: a
    /// family whose scope holds a token outside it is refused (the
    /// registration was narrowed since it was granted). `None`: no
    /// registration to answer to (the Elasticsearch API).
    pub registered: Option<Vec<String>>,
}

impl Request {
    /// A refresh without a scope, with fresh randomness from the OS RNG.
    pub fn new(
        refresh_token: TokenString,
        caller: ClientRef,
        now: Millis,
        policy: RefreshPolicy,
    ) -> Self {
        Self {
            refresh_token,
            caller,
            now,
            policy,
            scope: None,
            fresh: Fresh::draw(now),
            registered: None,
        }
    }
}

/// The decision on `request` given the stored `record` its refresh token
/// names: a pure function of the two.
pub fn decide(record: &TokenRecord, request: &Request) -> Decision {
    let Request {
        refresh_token: presented,
        caller,
        now,
        policy,
        ..
    } = request;
    let (now, policy) = (*now, *policy);
    let Some(refresh_expires_at) = record.refresh_expires_at else {
        // A pair minted without a refresh token (client_credentials).
        return Decision::Deny(Denied::reject(RefreshError::NotFound));
    };
    if now >= refresh_expires_at {
        return Decision::Deny(Denied::reject(RefreshError::Expired));
    }
    if record.refresh_invalidated {
        return Decision::Deny(Denied::reject(RefreshError::Invalidated));
    }
    if &record.client != caller {
        return Decision::Deny(Denied::reject(RefreshError::WrongClient));
    }
    if let Some(scope) = beyond_scope(record, request.scope.as_deref()) {
        return Decision::Deny(Denied::reject(RefreshError::ScopeNotGranted {
            scope: scope.to_owned(),
        }));
    }
    if let Some(scope) = beyond_registration(record, request.registered.as_deref()) {
        return Decision::Deny(Denied::reject(RefreshError::ScopeNoLongerRegistered {
            scope: scope.to_owned(),
        }));
    }
    match &record.refreshed {
        Some(done) => {
            if now > done.at.saturating_add(policy.window_ms) {
                return Decision::Deny(Denied::reuse(
                    RefreshError::RefreshedTooLongAgo {
                        window_ms: policy.window_ms,
                    },
                    policy,
                ));
            }
            if now < done.at.saturating_sub(policy.window_ms) {
                return Decision::Deny(Denied::reject(RefreshError::ClockSkew {
                    window_ms: policy.window_ms,
                }));
            }
            match open_successor(record, presented, done) {
                Some(pair) => Decision::Replay {
                    successor_id: done.successor_id.clone(),
                    pair,
                },
                // Only a presented token whose hash matched can reach this
                // point, so a failure to open means corrupted storage.
                None => Decision::Deny(Denied::reject(RefreshError::NotFound)),
            }
        }
        None => {
            let (successor, pair) = TokenRecord::in_family(
                request.fresh.clone(),
                record.subject.clone(),
                record.client.clone(),
                record.scope.clone(),
                true,
                now,
                policy.access_ttl_ms,
                record.family_id.clone(),
                record.generation.saturating_add(1),
            );
            // The family's cap (from the credential that minted it) binds
            // every successor, and its token metadata goes with it.
            let mut successor = successor.capped(record.not_after);
            successor.metadata = record.metadata.clone();
            let refreshed = Refreshed {
                at: now,
                successor_id: successor.id.clone(),
                sealed_successor: seal_successor(
                    record,
                    &successor.id,
                    presented,
                    &pair,
                    &request.fresh.seal,
                ),
            };
            Decision::Rotate {
                successor: Box::new(successor),
                refreshed,
                pair,
            }
        }
    }
}

/// The first token of `asked` the family was not granted. A family with
/// no scope (Elasticsearch-API tokens) is unrestricted.
fn beyond_scope<'a>(record: &TokenRecord, asked: Option<&'a [String]>) -> Option<&'a str> {
    let granted = record.scope.as_ref()?;
    asked?
        .iter()
        .find(|t| !granted.contains(t))
        .map(String::as_str)
}

/// The first scope token of the family that `registered` (an OAuth
/// client's registration as it is now) no longer holds.
fn beyond_registration<'a>(
    record: &'a TokenRecord,
    registered: Option<&[String]>,
) -> Option<&'a str> {
    let registered = registered?;
    record
        .scope
        .as_ref()?
        .iter()
        .find(|t| !registered.contains(t))
        .map(String::as_str)
}

/// A replay hands out the successor only if that successor can still be
/// honoured (it exists and has not been taken back) and, with families on,
/// only while it is the head of its family: once the successor has itself
/// been refreshed, a repeat of its predecessor is reuse of an older
/// generation.
pub fn judge_replay(
    successor: Option<&TokenRecord>,
    now: Millis,
    policy: RefreshPolicy,
) -> Result<(), Denied> {
    match successor {
        None => Err(Denied::reject(RefreshError::NotFound)),
        Some(s) if s.access_invalidated || s.refresh_invalidated => {
            Err(Denied::reject(RefreshError::Invalidated))
        }
        Some(s) if s.refreshed.is_some() && policy.reuse_revokes_family => {
            Err(Denied::reuse(RefreshError::AlreadyRefreshed, policy))
        }
        Some(s) if now >= s.access_expires_at => Err(Denied::reject(RefreshError::Expired)),
        Some(_) => Ok(()),
    }
}

fn seal_context(record: &TokenRecord, successor_id: &str) -> Vec<u8> {
    format!("{}>{}", record.id, successor_id).into_bytes()
}

fn seal_successor(
    record: &TokenRecord,
    successor_id: &str,
    presented: &TokenString,
    pair: &TokenPair,
    random: &crypto::SealRandom,
) -> Vec<u8> {
    let refresh = pair
        .refresh
        .as_ref()
        .expect("a refresh always mints a refresh token");
    let plaintext =
        zeroize::Zeroizing::new(format!("{}|{}", pair.access.expose(), refresh.expose()));
    crypto::seal(
        presented.expose().as_bytes(),
        &seal_context(record, successor_id),
        plaintext.as_bytes(),
        random,
    )
}

fn open_successor(
    record: &TokenRecord,
    presented: &TokenString,
    done: &Refreshed,
) -> Option<TokenPair> {
    let plain = crypto::open(
        presented.expose().as_bytes(),
        &seal_context(record, &done.successor_id),
        &done.sealed_successor,
    )?;
    let text = std::str::from_utf8(&plain).ok()?;
    let (access, refresh) = text.split_once('|')?;
    Some(TokenPair {
        access: TokenString::from_presented(access),
        refresh: Some(TokenString::from_presented(refresh)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::{Authentication, NATIVE_REALM};

    const POLICY: RefreshPolicy = RefreshPolicy::elasticsearch(true);
    const ES_POLICY: RefreshPolicy = RefreshPolicy::elasticsearch(false);

    /// The decision on a refresh without a scope, with fresh randomness.
    fn ask(
        record: &TokenRecord,
        presented: &TokenString,
        caller: &ClientRef,
        now: Millis,
        policy: RefreshPolicy,
    ) -> Decision {
        decide(record, &request(presented, caller, now, policy, None))
    }

    fn request(
        presented: &TokenString,
        caller: &ClientRef,
        now: Millis,
        policy: RefreshPolicy,
        scope: Option<Vec<String>>,
    ) -> Request {
        Request {
            refresh_token: presented.clone(),
            caller: caller.clone(),
            now,
            policy,
            scope,
            fresh: Fresh::draw(now),
            registered: None,
        }
    }

    #[test]
    fn the_decision_is_a_function_of_its_inputs() {
        let (record, pair) = issued(0);
        let req = request(
            pair.refresh.as_ref().unwrap(),
            &record.client,
            1_000,
            POLICY,
            None,
        );
        let (
            Decision::Rotate {
                successor: a,
                refreshed: ra,
                pair: pa,
            },
            Decision::Rotate {
                successor: b,
                refreshed: rb,
                pair: pb,
            },
        ) = (decide(&record, &req), decide(&record, &req))
        else {
            panic!("expected two rotations");
        };
        assert_eq!(
            pa.access, req.fresh.access,
            "the successor is minted from `fresh`"
        );
        assert_eq!((a, ra, pa), (b, rb, pb));
    }

    #[test]
    fn a_scope_beyond_the_grant_is_refused_and_a_narrower_one_accepted() {
        let (record, pair) = issued(0);
        let rt = pair.refresh.unwrap();
        let wider = request(
            &rt,
            &record.client,
            10,
            POLICY,
            Some(vec!["a".into(), "b".into()]),
        );
        assert_eq!(
            denied(decide(&record, &wider)),
            Denied::reject(RefreshError::ScopeNotGranted { scope: "b".into() })
        );
        assert_eq!(
            RefreshError::ScopeNotGranted { scope: "b".into() }.to_string(),
            "scope [b] was not granted to this refresh token"
        );
        let narrower = request(&rt, &record.client, 10, POLICY, Some(vec!["a".into()]));
        assert!(matches!(
            decide(&record, &narrower),
            Decision::Rotate { .. }
        ));
        // Elasticsearch-API families have no scope: nothing to exceed.
        let s = subject();
        let (unscoped, up) = TokenRecord::issue(&s, s.client_ref(), true, 0, 1000);
        let any = request(
            up.refresh.as_ref().unwrap(),
            &unscoped.client,
            10,
            POLICY,
            Some(vec!["z".into()]),
        );
        assert!(matches!(decide(&unscoped, &any), Decision::Rotate { .. }));
    }

    fn denied(d: Decision) -> Denied {
        match d {
            Decision::Deny(d) => d,
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    fn subject() -> Authentication {
        Authentication::of_realm("u", vec!["superuser".into()], NATIVE_REALM)
    }

    fn issued(now: Millis) -> (TokenRecord, TokenPair) {
        let s = subject();
        TokenRecord::first_of_family(
            Fresh::draw(now),
            &s,
            s.client_ref(),
            Some(vec!["a".into(), "tessera:admin".into()]),
            true,
            now,
            POLICY.access_ttl_ms,
        )
    }

    fn rotate(record: &mut TokenRecord, presented: &TokenString, now: Millis) -> TokenPair {
        match ask(record, presented, &record.client.clone(), now, POLICY) {
            Decision::Rotate {
                refreshed,
                pair,
                successor,
            } => {
                assert_eq!(successor.generation, record.generation + 1);
                assert_eq!(successor.family_id, record.family_id);
                assert_eq!(successor.access_hash, pair.access.hash());
                assert_eq!(
                    successor.scope, record.scope,
                    "successors inherit the scope"
                );
                record.refreshed = Some(refreshed);
                pair
            }
            other => panic!("expected rotate, got {other:?}"),
        }
    }

    #[test]
    fn successors_inherit_the_familys_cap() {
        let (record, pair) = issued(0);
        let mut record = record.capped(Some(5_000));
        let refresh = pair.refresh.unwrap();
        match ask(&record, &refresh, &record.client.clone(), 1_000, POLICY) {
            Decision::Rotate { successor, .. } => {
                assert_eq!(successor.not_after, Some(5_000));
                assert_eq!(successor.access_expires_at, 5_000);
                assert_eq!(successor.refresh_expires_at, Some(5_000));
            }
            other => panic!("expected a rotation, got {other:?}"),
        }
        // Past the cap the refresh token has expired.
        record.refreshed = None;
        let d = denied(ask(
            &record,
            &refresh,
            &record.client.clone(),
            5_000,
            POLICY,
        ));
        assert_eq!(d.error, RefreshError::Expired);
    }

    #[test]
    fn first_refresh_rotates_and_repeats_replay_the_same_pair() {
        let (mut record, pair) = issued(0);
        let rt = pair.refresh.unwrap();
        let first = rotate(&mut record, &rt, 1_000);
        for at in [1_000, 5_000, 31_000] {
            match ask(&record, &rt, &record.client, at, POLICY) {
                Decision::Replay { pair, .. } => assert_eq!(pair, first),
                other => panic!("expected replay at {at}, got {other:?}"),
            }
        }
        let late = denied(ask(&record, &rt, &record.client, 31_001, POLICY));
        assert_eq!(
            late.error,
            RefreshError::RefreshedTooLongAgo { window_ms: 30_000 }
        );
        assert!(
            late.revoke_family,
            "reuse after the window revokes the family"
        );
        let late_es = denied(ask(&record, &rt, &record.client, 31_001, ES_POLICY));
        assert!(!late_es.revoke_family, "Elasticsearch mode only refuses");
        let skew = denied(ask(&record, &rt, &record.client, -40_000, POLICY));
        assert_eq!(
            skew,
            Denied::reject(RefreshError::ClockSkew { window_ms: 30_000 })
        );
    }

    #[test]
    fn rejections_follow_elasticsearch_order() {
        let (mut record, pair) = issued(0);
        let rt = pair.refresh.unwrap();
        let stranger = ClientRef {
            username: "other".into(),
            realm: "default_native".into(),
            api_key_id: None,
        };
        assert_eq!(
            denied(ask(&record, &rt, &stranger, 10, POLICY)),
            Denied::reject(RefreshError::WrongClient),
            "a stranger presenting the token does not get to revoke the family"
        );
        record.refresh_invalidated = true;
        assert_eq!(
            denied(ask(&record, &rt, &stranger, 10, POLICY)),
            Denied::reject(RefreshError::Invalidated)
        );
        let end_of_life = crate::token::REFRESH_TOKEN_LIFETIME_MS;
        assert_eq!(
            denied(ask(&record, &rt, &stranger, end_of_life, POLICY)),
            Denied::reject(RefreshError::Expired)
        );
    }

    #[test]
    fn replay_target_must_be_honourable_and_the_head() {
        let (record, pair) = issued(0);
        assert_eq!(
            judge_replay(None, 0, POLICY),
            Err(Denied::reject(RefreshError::NotFound))
        );
        assert_eq!(judge_replay(Some(&record), 0, POLICY), Ok(()));
        let mut gone = record.clone();
        gone.access_invalidated = true;
        assert_eq!(
            judge_replay(Some(&gone), 0, POLICY),
            Err(Denied::reject(RefreshError::Invalidated))
        );
        let mut moved_on = record.clone();
        rotate(&mut moved_on, pair.refresh.as_ref().unwrap(), 1);
        let older = judge_replay(Some(&moved_on), 2, POLICY).unwrap_err();
        assert_eq!(older.error, RefreshError::AlreadyRefreshed);
        assert!(
            older.revoke_family,
            "only the immediate predecessor enjoys the window"
        );
        assert_eq!(judge_replay(Some(&moved_on), 2, ES_POLICY), Ok(()));
    }

    #[test]
    fn pair_without_refresh_token_cannot_refresh() {
        let s = subject();
        let (record, _) = TokenRecord::issue(&s, s.client_ref(), false, 0, 1000);
        let fake = TokenString::mint(crate::token::TokenKind::Refresh, 0);
        assert_eq!(
            denied(ask(&record, &fake, &record.client, 1, POLICY)),
            Denied::reject(RefreshError::NotFound)
        );
    }

    #[test]
    fn reuse_messages_state_the_real_window() {
        let at = |ms| RefreshError::RefreshedTooLongAgo { window_ms: ms }.to_string();
        // Elasticsearch's exact text for its fixed window.
        assert_eq!(
            at(30_000),
            "token has already been refreshed more than 30 seconds in the past"
        );
        assert_eq!(
            at(5_000),
            "token has already been refreshed more than 5 seconds in the past"
        );
        assert_eq!(
            at(1_000),
            "token has already been refreshed more than 1 second in the past"
        );
        assert_eq!(
            at(1_500),
            "token has already been refreshed more than 1500 milliseconds in the past"
        );
        assert_eq!(
            RefreshError::ClockSkew { window_ms: 30_000 }.to_string(),
            "token has been refreshed more than 30 seconds in the future, clock skew too great"
        );
    }
}
