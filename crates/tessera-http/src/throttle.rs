//! Password and client-secret guessing: the per-account soft lock and the
//! per-source failure budget (rules in [`tessera_domain::throttle`]), the
//! source address of a request, the `tessera_authentications_total`
//! counter and the sampled security log of failures.
//!
//! State lives in this process only, in sharded maps of bounded size: an
//! attacker cycling through usernames or addresses makes the maps drop
//! idle entries first and then the longest-quiet ones, never grow.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, OnceLock, PoisonError};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use metrics::Counter;
use sha2::{Digest, Sha256};
use tessera_domain::throttle::{
    AccountLock, Admission, BudgetPolicy, LockPolicy, LogSampler, SourceBudget,
};
use tessera_domain::Millis;

use crate::state::AppState;

/// Accounts and sources remembered at most (each), across all shards.
pub const MAX_TRACKED: usize = 100_000;
const SHARDS: usize = 16;
/// The security log writes at most this many failure lines per window.
const LOG_LINES_PER_WINDOW: u32 = 20;
const LOG_WINDOW_MS: Millis = 10_000;
/// A source stays suspect this long after a failure, whatever its budget.
const SUSPECT_FOR_MS: Millis = 60_000;
/// Failures across the process are counted in windows this long ...
const PRESSURE_WINDOW_MS: Millis = 10_000;
/// ... and more than this many in the current or the last window mean a
/// guessing flood is under way (from sources that have not failed before,
/// say, many addresses with a guess each): then only sources that have
/// logged in successfully lately keep the ordinary hashing lane.
const PRESSURE_FAILURES: u64 = 100;
/// A source that logged in successfully is remembered as known for this
/// long.
const KNOWN_FOR_MS: Millis = 24 * 3_600_000;
/// Verifications of one account take turns on one of these (by the
/// account's hash), so that concurrent guesses cannot all pass the lock
/// check before the first of them fails.
const TURN_STRIPES: usize = 1024;

/// The throttle's settings.
#[derive(Debug, Clone, Default)]
pub struct ThrottleSettings {
    pub lock: LockPolicy,
    pub budget: BudgetPolicy,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Which kind of secret is being guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Realm {
    /// Native users' passwords (`default_native`, type `native`).
    Native,
    /// OAuth clients' secrets (`_oauth2_client`).
    OAuthClient,
}

impl Realm {
    fn labels(self) -> (&'static str, &'static str) {
        match self {
            Realm::Native => ("native", "default_native"),
            Realm::OAuthClient => ("_oauth2_client", "_oauth2_client"),
        }
    }
}

/// How one authentication ended: `tessera_authentications_total`'s
/// `outcome` label, the same names for every realm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// A wrong password or client secret.
    InvalidCredentials,
    /// No such user or client (verified against a dummy all the same).
    UnknownPrincipal,
    /// A disabled user: refused whatever the password; not counted
    /// toward the account's lock.
    Disabled,
    /// Refused unverified: the account is soft-locked.
    Locked,
    /// Refused with 429: the source spent its failure budget.
    RateLimited,
}

impl Outcome {
    const ALL: [Outcome; 6] = [
        Outcome::Success,
        Outcome::InvalidCredentials,
        Outcome::UnknownPrincipal,
        Outcome::Disabled,
        Outcome::Locked,
        Outcome::RateLimited,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::InvalidCredentials => "invalid_credentials",
            Outcome::UnknownPrincipal => "unknown_principal",
            Outcome::Disabled => "disabled",
            Outcome::Locked => "locked",
            Outcome::RateLimited => "rate_limited",
        }
    }
}

/// Registers every realm's and outcome's counter at 0.
pub(crate) fn register_metrics() {
    counter(Realm::Native, Outcome::Success);
}

fn counter(realm: Realm, outcome: Outcome) -> &'static Counter {
    static COUNTERS: OnceLock<Vec<Counter>> = OnceLock::new();
    let all = COUNTERS.get_or_init(|| {
        [Realm::Native, Realm::OAuthClient]
            .into_iter()
            .flat_map(|realm| {
                let (realm_type, name) = realm.labels();
                Outcome::ALL.into_iter().map(move |o| {
                    metrics::counter!(
                        "tessera_authentications_total",
                        "realm_type" => realm_type,
                        "realm" => name,
                        "outcome" => o.as_str()
                    )
                })
            })
            .collect()
    });
    let r = match realm {
        Realm::Native => 0,
        Realm::OAuthClient => 1,
    };
    let o = Outcome::ALL.iter().position(|x| *x == outcome).unwrap_or(0);
    &all[r * Outcome::ALL.len() + o]
}

/// A map split into shards behind their own locks, each holding at most
/// `MAX_TRACKED / SHARDS` entries.
struct Sharded<K, V> {
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<K, V>>>,
}

impl<K: Hash + Eq + Copy, V> Sharded<K, V> {
    fn new() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }

    fn with<T>(&self, key: &K, f: impl FnOnce(&mut HashMap<K, V>) -> T) -> T {
        let shard = &self.shards[self.hasher.hash_one(key) as usize % SHARDS];
        f(&mut shard.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The entry for `key`, made room for if the shard is full: idle
    /// entries go first, then the one quiet longest.
    fn upsert<T>(
        &self,
        key: K,
        idle: impl Fn(&V) -> bool,
        last: impl Fn(&V) -> Millis,
        new: impl FnOnce() -> V,
        f: impl FnOnce(&mut V) -> T,
    ) -> T {
        self.with(&key, |map| {
            if !map.contains_key(&key) && map.len() >= MAX_TRACKED / SHARDS {
                map.retain(|_, v| !idle(v));
                if map.len() >= MAX_TRACKED / SHARDS {
                    let oldest = map.iter().min_by_key(|(_, v)| last(v)).map(|(k, _)| *k);
                    if let Some(oldest) = oldest {
                        map.remove(&oldest);
                    }
                }
            }
            match map.entry(key) {
                Entry::Occupied(mut e) => f(e.get_mut()),
                Entry::Vacant(e) => f(e.insert(new())),
            }
        })
    }

    fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len())
            .sum()
    }
}

/// The throttle of one process.
pub struct Throttle {
    settings: ThrottleSettings,
    turns: Vec<tokio::sync::Mutex<()>>,
    accounts: Sharded<[u8; 32], AccountLock>,
    sources: Sharded<IpAddr, SourceBudget>,
    /// When each source last logged in successfully.
    known: Sharded<IpAddr, Millis>,
    /// Failures in the current and the previous pressure window.
    pressure: Mutex<Pressure>,
    log: Mutex<LogSampler>,
}

/// Failures counted per [`PRESSURE_WINDOW_MS`].
#[derive(Debug, Default)]
struct Pressure {
    window: Millis,
    current: u64,
    previous: u64,
}

impl Pressure {
    fn roll(&mut self, now: Millis) {
        let window = now.div_euclid(PRESSURE_WINDOW_MS);
        if window != self.window {
            self.previous = if window == self.window + 1 {
                self.current
            } else {
                0
            };
            self.current = 0;
            self.window = window;
        }
    }

    fn fail(&mut self, now: Millis) {
        self.roll(now);
        self.current += 1;
    }

    fn high(&mut self, now: Millis) -> bool {
        self.roll(now);
        self.current.max(self.previous) > PRESSURE_FAILURES
    }
}

/// The source failed its budget: answer 429 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyFailures {
    pub retry_after_secs: u64,
}

impl Throttle {
    pub fn new(settings: ThrottleSettings) -> Self {
        Self {
            settings,
            turns: (0..TURN_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            accounts: Sharded::new(),
            sources: Sharded::new(),
            known: Sharded::new(),
            pressure: Mutex::new(Pressure::default()),
            log: Mutex::new(LogSampler::new(LOG_WINDOW_MS, LOG_LINES_PER_WINDOW)),
        }
    }

    pub fn settings(&self) -> &ThrottleSettings {
        &self.settings
    }

    /// Whether failures across the process amount to a flood.
    fn under_pressure(&self, now: Millis) -> bool {
        self.pressure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .high(now)
    }

    /// Whether `source` logged in successfully in the last
    /// [`KNOWN_FOR_MS`].
    fn known_source(&self, source: IpAddr, now: Millis) -> bool {
        self.known.with(&source, |map| {
            map.get(&source).is_some_and(|at| now - *at < KNOWN_FOR_MS)
        })
    }

    /// Begins one authentication of `principal` in `realm` from `source`.
    pub fn attempt<'a>(&'a self, realm: Realm, principal: &'a str, source: IpAddr) -> Attempt<'a> {
        let mut h = Sha256::new();
        h.update(realm.labels().1.as_bytes());
        h.update([0]);
        h.update(principal.as_bytes());
        Attempt {
            throttle: self,
            realm,
            account: h.finalize().into(),
            principal,
            source,
        }
    }

    /// How many accounts and sources are remembered (for tests).
    pub fn tracked(&self) -> (usize, usize) {
        (self.accounts.len(), self.sources.len())
    }

    fn log_failure(&self, attempt: &Attempt<'_>, outcome: Outcome, now: Millis, locked_now: bool) {
        let decision = self
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .event(now);
        if decision.suppressed_before > 0 {
            tracing::warn!(
                target: "tessera::security",
                event = "authentication_failures_suppressed",
                count = decision.suppressed_before,
                "further authentication failures were not logged one by one (see tessera_authentications_total)"
            );
        }
        if decision.write {
            let (realm_type, realm) = attempt.realm.labels();
            tracing::info!(
                target: "tessera::security",
                event = "authentication_failed",
                realm_type,
                realm,
                principal = %attempt.principal,
                source = %attempt.source,
                reason = outcome.as_str(),
                account_locked = locked_now,
                "authentication failed"
            );
        }
    }
}

/// One authentication in progress. Check the source, then the account,
/// verify, and [`Attempt::finish`] with the outcome.
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    realm: Realm,
    account: [u8; 32],
    principal: &'a str,
    source: IpAddr,
}

impl<'a> Attempt<'a> {
    /// `Err` once the source has spent its budget of failures (the
    /// refusal is counted and logged here).
    pub fn check_source(&self, now: Millis) -> Result<(), TooManyFailures> {
        let policy = &self.throttle.settings.budget;
        let admitted = self.throttle.sources.with(&self.source, |map| {
            map.get_mut(&self.source)
                .map_or(Ok(()), |b| b.admit(policy, now))
        });
        admitted.map_err(|wait_ms| {
            self.record(Outcome::RateLimited, now);
            TooManyFailures {
                retry_after_secs: (wait_ms as u64).div_ceil(1000).max(1),
            }
        })
    }

    /// Whether the account is soft-locked: then refuse without verifying,
    /// exactly as a wrong password is refused, and finish with
    /// [`Outcome::Locked`].
    pub fn account_locked(&self, now: Millis) -> bool {
        self.throttle.accounts.with(&self.account, |map| {
            map.get(&self.account)
                .is_some_and(|l| matches!(l.admit(now), Admission::Locked { .. }))
        })
    }

    /// Waits for this account's turn to verify: one verification per
    /// account at a time, so the lock is checked again after each failure
    /// and concurrent guesses cannot slip past it. Check
    /// [`Attempt::account_locked`] (and any cache) again once it is yours.
    pub async fn turn(&self) -> tokio::sync::MutexGuard<'a, ()> {
        let stripe = u64::from_le_bytes(self.account[..8].try_into().unwrap_or_default());
        let throttle: &'a Throttle = self.throttle;
        throttle.turns[stripe as usize % TURN_STRIPES].lock().await
    }

    /// Whether this attempt comes from a source or for an account with
    /// recent failures, or, while the process sees a flood of failures,
    /// from a source that has not logged in successfully lately: its
    /// hashing then waits in the narrower lane, so a guessing flood cannot
    /// take every hashing slot from other logins. (The lane depends on the
    /// source and the account's failures, never on whether the user
    /// exists.)
    pub fn suspect(&self, now: Millis) -> bool {
        let t = self.throttle;
        let source_dirty = t.sources.with(&self.source, |map| {
            map.get(&self.source)
                .is_some_and(|b| b.failed_since(now - SUSPECT_FOR_MS))
        });
        source_dirty
            || t.accounts.with(&self.account, |map| {
                map.get(&self.account)
                    .is_some_and(|l| !l.is_idle(&t.settings.lock, now))
            })
            || (t.under_pressure(now) && !t.known_source(self.source, now))
    }

    /// Records how the attempt ended.
    pub fn finish(self, outcome: Outcome, now: Millis) {
        self.record(outcome, now);
    }

    fn record(&self, outcome: Outcome, now: Millis) {
        counter(self.realm, outcome).increment(1);
        let t = self.throttle;
        let (lock, budget) = (&t.settings.lock, &t.settings.budget);
        let charge_source = || {
            t.sources.upsert(
                self.source,
                |b| b.is_idle(budget, now),
                SourceBudget::last_seen,
                || SourceBudget::full(budget, now),
                |b| b.charge(budget, now),
            )
        };
        let locked_now = match outcome {
            Outcome::Success => {
                t.accounts
                    .with(&self.account, |map| map.remove(&self.account));
                t.known.upsert(
                    self.source,
                    |at| now - *at >= KNOWN_FOR_MS,
                    |at| *at,
                    || now,
                    |at| *at = now,
                );
                return;
            }
            Outcome::InvalidCredentials | Outcome::UnknownPrincipal => {
                charge_source();
                t.pressure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .fail(now);
                t.accounts.upsert(
                    self.account,
                    |l| l.is_idle(lock, now),
                    |l| l.last_failure,
                    AccountLock::default,
                    |l| {
                        l.fail(lock, now);
                        matches!(l.admit(now), Admission::Locked { .. })
                    },
                )
            }
            Outcome::Disabled | Outcome::Locked => {
                charge_source();
                false
            }
            Outcome::RateLimited => false,
        };
        t.log_failure(self, outcome, now, locked_now);
    }
}

/// The address a request comes from, for the per-source budget: the
/// connection's peer, or, when the peer is a trusted proxy, the nearest
/// address in `X-Forwarded-For` that is not one. IPv6 addresses count
/// by their /64 (one host usually holds a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    pub fn of(parts: &Parts, state: &AppState) -> IpAddr {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        client_ip(
            peer,
            &parts.headers,
            &state.throttle.settings().trusted_proxies,
        )
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(ClientIp::of(parts, state)))
    }
}

/// See [`ClientIp`]. Without a peer address (a router served without
/// connection info) every request shares the unspecified address.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let Some(peer) = peer.map(|p| p.to_canonical()) else {
        return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let mut client = peer;
    if is_trusted(&peer) {
        // Right to left: each hop appends the address it saw.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()) {
                Ok(ip) => {
                    client = ip;
                    if !is_trusted(&ip) {
                        break;
                    }
                }
                // Junk from a trusted hop: keep the last hop that said it.
                Err(_) => break,
            }
        }
    }
    per_host(client)
}

fn per_host(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let h = xff(&["1.2.3.4"]);
        assert_eq!(client_ip(Some(ip("8.8.8.8")), &h, &trusted), ip("8.8.8.8"));
        assert_eq!(client_ip(Some(ip("10.1.1.1")), &h, &trusted), ip("1.2.3.4"));
        // A client's forged entries sit left of what the proxy appended.
        let h = xff(&["6.6.6.6, 1.2.3.4", "10.0.0.2"]);
        assert_eq!(client_ip(Some(ip("10.1.1.1")), &h, &trusted), ip("1.2.3.4"));
        // Junk: the last trusted hop is the source.
        let h = xff(&["1.2.3.4, garbage"]);
        assert_eq!(
            client_ip(Some(ip("10.1.1.1")), &h, &trusted),
            ip("10.1.1.1")
        );
        // No header: the proxy itself.
        assert_eq!(
            client_ip(Some(ip("10.1.1.1")), &HeaderMap::new(), &trusted),
            ip("10.1.1.1")
        );
        assert_eq!(
            client_ip(Some(ip("::ffff:8.8.8.8")), &HeaderMap::new(), &trusted),
            ip("8.8.8.8")
        );
        assert_eq!(
            client_ip(Some(ip("2001:db8:1:2:3:4:5:6")), &HeaderMap::new(), &[]),
            ip("2001:db8:1:2::")
        );
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_names_and_addresses() {
        let t = Throttle::new(ThrottleSettings::default());
        for i in 0..(MAX_TRACKED as u32 + 2_000) {
            let name = format!("user-{i}");
            let source = IpAddr::V4(Ipv4Addr::from(i));
            t.attempt(Realm::Native, &name, source)
                .finish(Outcome::UnknownPrincipal, 0);
        }
        let (accounts, sources) = t.tracked();
        assert!(accounts <= MAX_TRACKED, "{accounts}");
        assert!(sources <= MAX_TRACKED, "{sources}");
    }

    #[test]
    fn under_a_flood_only_known_sources_keep_the_ordinary_lane() {
        let t = Throttle::new(ThrottleSettings::default());
        let (known, fresh) = (ip("192.0.2.1"), ip("192.0.2.2"));
        t.attempt(Realm::Native, "joe", known)
            .finish(Outcome::Success, 0);
        assert!(!t.attempt(Realm::Native, "ann", fresh).suspect(0));
        // A flood of single guesses from as many new addresses.
        for i in 0..=PRESSURE_FAILURES as u32 {
            let source = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            t.attempt(Realm::Native, &format!("u{i}"), source)
                .finish(Outcome::UnknownPrincipal, 1_000);
        }
        assert!(t.attempt(Realm::Native, "ann", fresh).suspect(1_000));
        assert!(!t.attempt(Realm::Native, "joe", known).suspect(1_000));
        // The same for an unknown name from the known source: the lane
        // says nothing about who exists.
        assert!(!t.attempt(Realm::Native, "nobody", known).suspect(1_000));
        // The flood counts through the next window, then is over.
        assert!(t
            .attempt(Realm::Native, "ann", fresh)
            .suspect(PRESSURE_WINDOW_MS + 1));
        assert!(!t
            .attempt(Realm::Native, "ann", fresh)
            .suspect(3 * PRESSURE_WINDOW_MS));
        // A known source is forgotten after a day.
        t.attempt(Realm::Native, "joe", known)
            .finish(Outcome::Success, 0);
        for i in 0..=PRESSURE_FAILURES as u32 {
            let source = IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i));
            t.attempt(Realm::Native, &format!("v{i}"), source)
                .finish(Outcome::UnknownPrincipal, KNOWN_FOR_MS);
        }
        assert!(t.attempt(Realm::Native, "joe", known).suspect(KNOWN_FOR_MS));
    }

    #[test]
    fn lock_refuses_and_success_resets() {
        let t = Throttle::new(ThrottleSettings::default());
        let src = ip("192.0.2.1");
        for _ in 0..5 {
            let a = t.attempt(Realm::Native, "joe", src);
            assert!(!a.account_locked(0));
            a.finish(Outcome::InvalidCredentials, 0);
        }
        let a = t.attempt(Realm::Native, "joe", src);
        assert!(a.account_locked(0));
        assert!(a.suspect(0));
        a.finish(Outcome::Locked, 0);
        // Another account, another realm: unaffected.
        assert!(!t.attempt(Realm::Native, "ann", src).account_locked(0));
        assert!(!t.attempt(Realm::OAuthClient, "joe", src).account_locked(0));
        let a = t.attempt(Realm::Native, "joe", src);
        assert!(!a.account_locked(1_000));
        a.finish(Outcome::Success, 1_000);
        for _ in 0..4 {
            t.attempt(Realm::Native, "joe", src)
                .finish(Outcome::InvalidCredentials, 1_000);
        }
        assert!(!t.attempt(Realm::Native, "joe", src).account_locked(1_000));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_guesses_take_turns_and_cannot_slip_past_the_lock() {
        let t = std::sync::Arc::new(Throttle::new(ThrottleSettings::default()));
        let verified = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let tasks: Vec<_> = (0..40)
            .map(|_| {
                let (t, verified) = (t.clone(), verified.clone());
                tokio::spawn(async move {
                    let a = t.attempt(Realm::Native, "target", ip("192.0.2.5"));
                    let _turn = a.turn().await;
                    if a.account_locked(0) {
                        a.finish(Outcome::Locked, 0);
                    } else {
                        // A verification that yields while it runs.
                        tokio::task::yield_now().await;
                        verified.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        a.finish(Outcome::InvalidCredentials, 0);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(verified.load(std::sync::atomic::Ordering::SeqCst), 5);
    }

    #[test]
    fn source_budget_counts_locked_refusals_but_not_disabled_for_the_lock() {
        let t = Throttle::new(ThrottleSettings {
            budget: BudgetPolicy {
                burst: 3.0,
                per_second: 1.0,
            },
            ..Default::default()
        });
        let src = ip("192.0.2.9");
        for _ in 0..3 {
            let a = t.attempt(Realm::Native, "off", src);
            assert!(a.check_source(0).is_ok());
            a.finish(Outcome::Disabled, 0);
        }
        let a = t.attempt(Realm::Native, "off", src);
        assert_eq!(
            a.check_source(0),
            Err(TooManyFailures {
                retry_after_secs: 1
            })
        );
        assert!(!a.account_locked(0), "disabled refusals do not lock");
        // Another source is unaffected.
        assert!(t
            .attempt(Realm::Native, "off", ip("192.0.2.10"))
            .check_source(0)
            .is_ok());
    }
}
