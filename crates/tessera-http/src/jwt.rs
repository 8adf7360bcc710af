//! The JWT realms: `Authorization: Bearer <jwt>` from another issuer, as
//! Elasticsearch's JWT realm takes it. A bearer credential shaped like a
//! JWT (three dot-separated base64url segments, which Tessera's own tokens
//! never are) is tried against each JWT realm in chain order; the token
//! rules are [`tessera_realms::jose`], the user's roles come from the role
//! mappings. Results are cached ([`cache`]), never past the token's `exp`
//! and never across a change of the realm's JWKS.

mod cache;

use std::borrow::Cow;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use tessera_domain::authn::RealmRef;
use tessera_domain::{crypto, Authentication, Millis};
use tessera_realms::identity::Identity;
use tessera_realms::jose::{self, HmacKey, JoseError, JwksSource, Keys, Policy};
use tessera_realms::jwt::{ClientAuthentication, JwtRealmConfig, JwtUser};
use tessera_store::Lineage;

use crate::auth::Provenance;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub use cache::{Hit, JwtCache};

/// The realm type shown in `authentication_realm`.
pub const REALM_TYPE: &str = "jwt";
/// The header carrying the client's shared secret.
pub const CLIENT_AUTHENTICATION_HEADER: &str = "es-client-authentication";

/// One configured JWT realm, with its keys and secrets loaded.
pub struct JwtRealm {
    pub config: JwtRealmConfig,
    policy: Policy,
    jwks: Option<JwksSource>,
    hmac: Option<HmacKey>,
    /// SHA-256 of the client shared secret (type `shared_secret`).
    shared_secret: Option<[u8; 32]>,
    /// When a cached result last looked at the JWKS file (server clock,
    /// ms): a cache hit does so at most once a second, so that hits cost no
    /// `stat` each (a validation still looks every time).
    hits_checked_keys_at: AtomicI64,
}

impl std::fmt::Debug for JwtRealm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtRealm")
            .field("name", &self.config.name)
            .field("jwks", &self.jwks)
            .finish_non_exhaustive()
    }
}

impl JwtRealm {
    /// A realm of checked settings with its secrets (read by the caller
    /// from the environment or the files the settings name) and its key
    /// source (built by the caller: a file is read at once).
    pub fn new(
        config: JwtRealmConfig,
        jwks: Option<JwksSource>,
        hmac: Option<HmacKey>,
        shared_secret: Option<&[u8]>,
    ) -> Self {
        let policy = Policy {
            issuer: config.allowed_issuer.clone(),
            audiences: config.allowed_audiences.clone(),
            algorithms: config.algorithms.clone(),
            skew_secs: config.allowed_clock_skew.as_secs(),
            subjects: config.allowed_subjects.clone(),
        };
        Self {
            config,
            policy,
            jwks,
            hmac,
            shared_secret: shared_secret.map(|s| Sha256::digest(s).into()),
            hits_checked_keys_at: AtomicI64::new(Millis::MIN),
        }
    }

    fn realm_ref(&self) -> RealmRef {
        RealmRef {
            name: Cow::Owned(self.config.name.clone()),
            kind: Cow::Borrowed(REALM_TYPE),
        }
    }

    /// Whether the presented `ES-Client-Authentication` secret is the
    /// realm's (compared in constant time, on hashes).
    fn client_authenticated(&self, presented: Option<&[u8]>) -> bool {
        match self.config.client_authentication {
            ClientAuthentication::None => true,
            ClientAuthentication::SharedSecret => match (&self.shared_secret, presented) {
                (Some(expected), Some(p)) => {
                    let digest: [u8; 32] = Sha256::digest(p).into();
                    crypto::ct_eq(expected, &digest)
                }
                _ => false,
            },
        }
    }

    /// The generation of the realm's key set (0 without a JWKS).
    fn keys_generation(&self) -> u64 {
        self.jwks.as_ref().map_or(0, JwksSource::generation)
    }

    /// Reads a changed JWKS file again (a local `stat`); a file that cannot
    /// be used leaves the previous keys.
    async fn reload_keys_if_changed(&self) {
        if let Some(source) = &self.jwks {
            if let Err(e) = source.reload_if_changed().await {
                tracing::warn!(realm = %self.config.name, error = %e, "JWT realm: the changed JWKS cannot be used; keeping the previous keys");
            }
        }
    }

    /// [`Self::reload_keys_if_changed`] for a cache hit at `now`: at most
    /// once a second, by one of the hits that find it due.
    async fn reload_keys_if_due(&self, now: Millis) {
        let checked = self.hits_checked_keys_at.load(Ordering::Relaxed);
        let due = now >= checked.saturating_add(1_000)
            && self
                .hits_checked_keys_at
                .compare_exchange(checked, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        if due {
            self.reload_keys_if_changed().await;
        }
    }

    /// The token's claims and the generation of the keys that checked it.
    fn check(&self, token: &str, now_secs: u64) -> Result<(jose::Claims, u64), JoseError> {
        let (set, generation) = match &self.jwks {
            Some(source) => {
                let (set, generation) = source.current_with_generation();
                (Some(set), generation)
            }
            None => (None, 0),
        };
        let keys = Keys {
            jwks: set.as_deref(),
            hmac: self.hmac.as_ref(),
        };
        jose::validate(token, &keys, &self.policy, now_secs).map(|claims| (claims, generation))
    }

    /// Validates `token` at `now`; when the key id is unknown or the
    /// signature fails, the key set is re-read once (rate-limited) and the
    /// token tried again. Gives the claims and the generation of the keys
    /// that validated them.
    async fn validate(&self, token: &str, now: Millis) -> Result<(jose::Claims, u64), JoseError> {
        let now_secs = u64::try_from(now / 1000).unwrap_or(0);
        self.reload_keys_if_changed().await;
        let first = self.check(token, now_secs);
        let (Err(e), Some(source)) = (&first, &self.jwks) else {
            return first;
        };
        if !e.warrants_refresh() {
            return first;
        }
        match source.refresh(u64::try_from(now).unwrap_or(0)).await {
            Ok(true) => self.check(token, now_secs),
            Ok(false) => first,
            Err(fetch) => {
                tracing::warn!(realm = %self.config.name, error = %fetch, "JWT realm: the JWKS cannot be re-read");
                first
            }
        }
    }
}

/// The JWT realms of the realm chain, in `order`, and their shared result
/// cache. Cheap to clone.
#[derive(Clone, Default)]
pub struct JwtRealms(Arc<Inner>);

#[derive(Default)]
struct Inner {
    realms: Vec<JwtRealm>,
    cache: JwtCache,
}

impl std::fmt::Debug for JwtRealms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.realms.iter()).finish()
    }
}

impl JwtRealms {
    pub fn new(mut realms: Vec<JwtRealm>) -> Self {
        realms.sort_by_key(|r| r.config.order);
        let size = realms
            .iter()
            .map(|r| r.config.cache_size)
            .max()
            .unwrap_or(0);
        Self(Arc::new(Inner {
            realms,
            cache: JwtCache::new(size),
        }))
    }

    pub fn is_empty(&self) -> bool {
        self.0.realms.is_empty()
    }

    /// Forgets every cached result (role mappings changed).
    pub fn clear_cache(&self) {
        self.0.cache.clear();
    }
}

/// The `ES-Client-Authentication: SharedSecret <secret>` value, if any.
fn presented_secret(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(CLIENT_AUTHENTICATION_HEADER)?.to_str().ok()?;
    let (scheme, secret) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("SharedSecret")
        .then(|| secret.trim().as_bytes())
        .filter(|s| !s.is_empty())
}

/// The 401 every refusal gets: what failed goes to the log only.
fn refused() -> ApiError {
    ApiError::unauthenticated(
        "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
    )
}

/// Authenticates a JWT bearer credential against the JWT realms.
///
/// What it mints is capped by the token's `exp` and cannot outlive it
/// (`borrowed`: the caller's authority ends with the token).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
) -> ApiResult<(Authentication, Provenance)> {
    let realms = &state.settings.jwt;
    let secret = presented_secret(headers);
    let key = cache_key(token, secret);
    let now = state.now();
    if let Some(hit) = realms.0.cache.get(&key, now) {
        // A result is served only while its realm's keys are those that
        // validated it: a key dropped from the JWKS ends its tokens' entries.
        let realm = &realms.0.realms[hit.realm];
        realm.reload_keys_if_due(now).await;
        if realm.keys_generation() == hit.keys {
            state
                .metrics
                .realm_authentication(&realm.config.name, REALM_TYPE, "success");
            return Ok((hit.who, provenance(hit.not_after)));
        }
    }
    let mut first: Option<(&str, &'static str, String)> = None;
    for (index, realm) in realms.0.realms.iter().enumerate() {
        let name = realm.config.name.as_str();
        if !realm.client_authenticated(secret) {
            state
                .metrics
                .realm_authentication(name, REALM_TYPE, "client_authentication");
            first.get_or_insert((
                name,
                "client_authentication",
                "missing or wrong ES-Client-Authentication shared secret".into(),
            ));
            continue;
        }
        let (claims, keys) = match realm.validate(token, now).await {
            Ok(validated) => validated,
            Err(e) => {
                state
                    .metrics
                    .realm_authentication(name, REALM_TYPE, e.label());
                first.get_or_insert((name, e.label(), e.detail));
                continue;
            }
        };
        let user = match JwtUser::from_claims(&realm.config, &claims) {
            Ok(user) => user,
            Err(e) => {
                state
                    .metrics
                    .realm_authentication(name, REALM_TYPE, "missing_principal");
                first.get_or_insert((name, "missing_principal", e.0));
                continue;
            }
        };
        let who = authentication(state, realm, &user.identity).await?;
        let not_after = i64::try_from(user.exp.saturating_mul(1000)).unwrap_or(Millis::MAX);
        let ttl = Millis::try_from(realm.config.cache_ttl.as_millis()).unwrap_or(Millis::MAX);
        let hit = Hit {
            who: who.clone(),
            not_after,
            realm: index,
            keys,
        };
        realms
            .0
            .cache
            .insert(key, hit, now.saturating_add(ttl).min(not_after), now);
        state
            .metrics
            .realm_authentication(name, REALM_TYPE, "success");
        return Ok((who, provenance(not_after)));
    }
    if let Some((realm, rule, detail)) = first {
        tracing::warn!(
            target: "tessera::security",
            event = "jwt_refused",
            realm = %realm,
            rule,
            detail = %detail,
            "JWT refused"
        );
    }
    Err(refused())
}

fn provenance(not_after: Millis) -> Provenance {
    Provenance {
        lineage: Lineage::default(),
        not_after: Some(not_after),
        borrowed: true,
        ..Provenance::default()
    }
}

/// The cache key: SHA-256 of the token and the presented shared secret, so
/// that neither is kept and a wrong secret never finds a right one's entry.
fn cache_key(token: &str, secret: Option<&[u8]>) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(token.as_bytes());
    h.update([0]);
    h.update(secret.unwrap_or_default());
    h.finalize().into()
}

/// The user as `_authenticate` shows it: roles from the role mappings.
async fn authentication(
    state: &AppState,
    realm: &JwtRealm,
    user: &Identity,
) -> ApiResult<Authentication> {
    crate::role_mappings::mapped_user(
        state,
        user.user_data(&realm.config.name),
        realm.realm_ref(),
        user.name.clone(),
        user.mail.clone(),
    )
    .await
}

/// The shortest time between two JWKS re-reads caused by failed
/// validations, per realm.
pub const JWKS_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(60);
