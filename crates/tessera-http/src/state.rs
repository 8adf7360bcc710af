//! The application state every handler works on: the settings, the
//! store, the caches, the throttle and the bounded hashing lanes.

use std::sync::Arc;
use std::time::Duration;

use tessera_domain::refresh::RefreshPolicy;
use tessera_domain::time::millis;
use tessera_domain::Millis;
use tessera_store::Store;

use crate::audit::Audit;
use crate::clock;
use crate::credentials::CredentialCache;
use crate::jwt::JwtRealms;
use crate::low_priority;
use crate::oidc::OidcRealms;
use crate::saml::SamlRealms;
use crate::throttle::{Throttle, ThrottleSettings};

/// The HTTP layer's settings (validated by the binary before they get here).
#[derive(Debug, Clone)]
pub struct Settings {
    pub access_token_ttl: Duration,
    pub refresh_window: Duration,
    /// Reuse of a refresh token outside its window (or of an older
    /// generation) revokes its whole family (RFC 9700). Off: only refused,
    /// as in Elasticsearch.
    pub refresh_reuse_revokes_family: bool,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest a request may take, body included, before it gets a 408.
    pub request_timeout: Duration,
    /// The OAuth authorization server's issuer identifier (RFC 8414): an
    /// http(s) URL without query, fragment or trailing slash. The OAuth
    /// endpoints' URLs in the metadata document are built on it.
    pub issuer: String,
    /// Deleting or disabling a user, or changing its password, revokes
    /// every token family of the user and everything derived from them,
    /// and the user's API keys stop authenticating while it is disabled or
    /// deleted. Off: Elasticsearch's behaviour (tokens keep the identity
    /// they were issued for).
    pub revoke_on_user_change: bool,
    /// Where the time comes from (a manual clock in tests).
    pub clock: clock::Clock,
    /// Password and client-secret guessing: the account lock, the source
    /// budget and the trusted proxies.
    pub throttle: ThrottleSettings,
    /// The SAML realms of the realm chain (none: the native realm alone).
    pub saml: SamlRealms,
    /// The JWT realms of the realm chain (none: bearer JWTs are refused).
    pub jwt: JwtRealms,
    /// The OpenID Connect realms of the realm chain.
    pub oidc: OidcRealms,
    /// The audit log (off by default).
    pub audit: Audit,
    /// One `tessera::access` log line per request (off by default).
    pub access_log: bool,
    /// The node's name in `GET /`.
    pub node_name: String,
    /// The cluster's name in `GET /`.
    pub cluster_name: String,
    /// What `DELETE /_security/oauth2/token` invalidates.
    pub token_invalidation: TokenInvalidation,
}

/// What invalidating one token by value takes with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TokenInvalidation {
    /// The token's whole family (its pair and every refresh of it).
    #[default]
    Family,
    /// The named token alone, as Elasticsearch does.
    Token,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            access_token_ttl: Duration::from_secs(20 * 60),
            refresh_window: Duration::from_secs(30),
            refresh_reuse_revokes_family: true,
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            issuer: "http://127.0.0.1:9200".into(),
            revoke_on_user_change: true,
            clock: clock::Clock::system(),
            throttle: ThrottleSettings::default(),
            saml: SamlRealms::default(),
            jwt: JwtRealms::default(),
            oidc: OidcRealms::default(),
            audit: Audit::default(),
            access_log: false,
            node_name: "tessera".into(),
            cluster_name: "tessera".into(),
            token_invalidation: TokenInvalidation::Family,
        }
    }
}

impl Settings {
    pub fn access_ttl_ms(&self) -> Millis {
        millis(self.access_token_ttl)
    }

    pub fn refresh_policy(&self) -> RefreshPolicy {
        RefreshPolicy {
            access_ttl_ms: self.access_ttl_ms(),
            window_ms: millis(self.refresh_window),
            reuse_revokes_family: self.refresh_reuse_revokes_family,
        }
    }
}

/// Renders the metrics exposition text; installed by the binary.
pub type MetricsRender = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub store: Arc<dyn Store>,
    pub settings: Settings,
    pub credentials: CredentialCache,
    pub metrics: Metrics,
    pub throttle: Throttle,
    /// The audit log (see [`crate::audit`]).
    pub audit: Audit,
    /// Bounds concurrent password hashing (see [`AppState::hash_blocking`]).
    hashing: tokio::sync::Semaphore,
    /// The narrower lane for verifications from sources or for accounts
    /// with recent failures (see [`AppState::verify_blocking`]).
    suspect_hashing: tokio::sync::Semaphore,
    /// Where suspect verifications run: threads at the lowest priority.
    low_priority: low_priority::LowPriority,
    pub(crate) render_metrics: Option<MetricsRender>,
    /// The store's cluster UUID, once read.
    cluster_uuid: tokio::sync::OnceCell<String>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(
        store: Arc<dyn Store>,
        settings: Settings,
        render_metrics: Option<MetricsRender>,
    ) -> Self {
        let throttle = Throttle::new(settings.throttle.clone());
        let audit = settings.audit.clone();
        Self(Arc::new(Inner {
            audit,
            store,
            settings,
            credentials: CredentialCache::default(),
            metrics: Metrics,
            throttle,
            hashing: tokio::sync::Semaphore::new(hashing_slots()),
            suspect_hashing: tokio::sync::Semaphore::new(suspect_slots()),
            low_priority: low_priority::LowPriority::new(suspect_slots()),
            render_metrics,
            cluster_uuid: tokio::sync::OnceCell::new(),
        }))
    }

    /// The store's cluster UUID, kept by the store the first time any node
    /// asks (22 URL-safe base64 characters, as Elasticsearch's).
    pub async fn cluster_uuid(&self) -> Result<&str, tessera_store::StoreError> {
        self.cluster_uuid
            .get_or_try_init(|| async {
                use base64::Engine as _;
                let fresh: [u8; 16] = rand::random();
                let fresh = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(fresh);
                self.store.cluster_uuid(&fresh).await
            })
            .await
            .map(String::as_str)
    }

    /// Runs CPU-heavy password hashing or verification on a blocking thread,
    /// a few at a time: each argon2id computation holds 19 MiB, so a burst of
    /// first logins must queue rather than take memory without bound.
    /// `None` if the computation panicked.
    pub async fn hash_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let _permit = self.hashing.acquire().await.ok()?;
        tokio::task::spawn_blocking(f).await.ok()
    }

    /// Runs a password verification like [`AppState::hash_blocking`]. A
    /// `suspect` one (from a source or for an account with recent
    /// failures) instead waits for one of a few slots of its own and runs
    /// on a thread at the lowest CPU priority, so that a guessing flood
    /// takes at most half the cores' threads, only when nothing else
    /// wants them, and never a slot of other logins.
    pub async fn verify_blocking(
        &self,
        suspect: bool,
        f: impl FnOnce() -> bool + Send + 'static,
    ) -> bool {
        if !suspect {
            return self.hash_blocking(f).await.unwrap_or(false);
        }
        let Ok(_slot) = self.suspect_hashing.acquire().await else {
            return false;
        };
        self.low_priority.run(f).await.unwrap_or(false)
    }

    /// The current time in milliseconds, from the configured clock.
    pub fn now(&self) -> Millis {
        self.settings.clock.now()
    }
}

/// Two concurrent hashes per core keeps the cores busy and memory bounded.
fn hashing_slots() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
}

/// Half the cores (at least one) for suspect verifications.
fn suspect_slots() -> usize {
    (std::thread::available_parallelism().map_or(2, |n| n.get()) / 2).max(1)
}

/// Domain counters, exported through the `metrics` facade.
pub struct Metrics;

impl Metrics {
    pub fn issued(&self) {
        metrics::counter!("tessera_tokens_issued_total").increment(1);
    }

    /// A refresh token was presented again outside what is allowed (and
    /// its family revoked, or not).
    pub fn reuse_detected(&self, family_revoked: bool) {
        let outcome = if family_revoked {
            "family_revoked"
        } else {
            "reuse_detected"
        };
        metrics::counter!("tessera_refresh_total", "outcome" => outcome).increment(1);
    }

    pub fn refresh(&self, rotated: bool) {
        let outcome = if rotated {
            "rotated"
        } else {
            "replayed_in_window"
        };
        metrics::counter!("tessera_refresh_total", "outcome" => outcome).increment(1);
    }

    /// A SAML Response was accepted (`success`) or refused (the rule),
    /// also counted in the per-realm authentications.
    pub fn saml_response(&self, realm: &str, result: &'static str) {
        metrics::counter!(
            "tessera_saml_responses_total",
            "realm" => realm.to_owned(),
            "result" => result
        )
        .increment(1);
        self.realm_authentication(realm, "saml", success_or_failure(result));
    }

    /// An OpenID Connect login was accepted (`success`) or refused (the
    /// rule). `realm` is a configured realm's name: the labels are bounded.
    pub fn oidc_login(&self, realm: &str, result: &'static str) {
        metrics::counter!(
            "tessera_oidc_logins_total",
            "realm" => realm.to_owned(),
            "result" => result
        )
        .increment(1);
        self.realm_authentication(realm, "oidc", success_or_failure(result));
    }

    /// An OpenID Connect logout ended a pair's family.
    pub fn oidc_logout(&self, realm: &str) {
        metrics::counter!("tessera_oidc_logouts_total", "realm" => realm.to_owned()).increment(1);
    }
}

/// The per-realm outcome of a realm's detailed result.
fn success_or_failure(result: &str) -> &'static str {
    if result == "success" {
        "success"
    } else {
        "failure"
    }
}
