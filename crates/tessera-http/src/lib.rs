//! Tessera's HTTP layer: the Elasticsearch security API on axum.
//!
//! Handlers are thin: they extract, authenticate, call the domain and the
//! store, and map the result. Every failure is an [`error::ApiError`],
//! which renders in the API family's own JSON shape.

pub mod api_keys;
pub mod auth;
pub mod body;
pub mod clock;
pub mod credentials;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
mod low_priority;
mod middleware;
pub mod oauth;
pub mod params;
pub mod roles;
pub mod throttle;
pub mod tokens;
pub mod users;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::{any, get, post, put};
use axum::{Json, Router};
use serde_json::json;
use tessera_domain::privilege::Action;
use tessera_domain::refresh::RefreshPolicy;
use tessera_domain::time::millis;
use tessera_domain::{Authentication, Millis};
use tessera_store::Store;

use crate::auth::Caller;
use crate::credentials::CredentialCache;
use crate::error::ApiResult;
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
    /// Bounds concurrent password hashing (see [`AppState::hash_blocking`]).
    hashing: tokio::sync::Semaphore,
    /// The narrower lane for verifications from sources or for accounts
    /// with recent failures (see [`AppState::verify_blocking`]).
    suspect_hashing: tokio::sync::Semaphore,
    /// Where suspect verifications run: threads at the lowest priority.
    low_priority: low_priority::LowPriority,
    render_metrics: Option<MetricsRender>,
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
        Self(Arc::new(Inner {
            store,
            settings,
            credentials: CredentialCache::default(),
            metrics: Metrics,
            throttle,
            hashing: tokio::sync::Semaphore::new(hashing_slots()),
            suspect_hashing: tokio::sync::Semaphore::new(suspect_slots()),
            low_priority: low_priority::LowPriority::new(suspect_slots()),
            render_metrics,
        }))
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

    /// A refresh token was presented again outside what is allowed.
    pub fn reuse_detected(&self, family_revoked: bool) {
        metrics::counter!("tessera_refresh_reuse_detected_total").increment(1);
        if family_revoked {
            metrics::counter!("tessera_family_revoked_total").increment(1);
        }
    }

    pub fn refresh(&self, rotated: bool) {
        let outcome = if rotated {
            "rotated"
        } else {
            "replayed_in_window"
        };
        metrics::counter!("tessera_refresh_total", "outcome" => outcome).increment(1);
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/_security/oauth2/token",
            post(tokens::get_token).delete(tokens::invalidate_token),
        )
        .route("/_security/_authenticate", get(authenticate))
        .route("/_security/user", get(users::get_users))
        // Not implemented yet; routed so that it is not taken for a user
        // named `_has_privileges`.
        .route(
            "/_security/user/_has_privileges",
            any(users::has_privileges),
        )
        .route(
            "/_security/user/{username}/_has_privileges",
            any(users::has_privileges),
        )
        .route(
            "/_security/user/_password",
            put(users::change_own_password).post(users::change_own_password),
        )
        .route(
            "/_security/user/{username}",
            put(users::put_user)
                .post(users::put_user)
                .get(users::get_users)
                .delete(users::delete_user),
        )
        .route(
            "/_security/user/{username}/_password",
            put(users::change_password).post(users::change_password),
        )
        .route(
            "/_security/user/{username}/_enable",
            put(users::enable_user).post(users::enable_user),
        )
        .route(
            "/_security/user/{username}/_disable",
            put(users::disable_user).post(users::disable_user),
        )
        .route("/_security/role", get(roles::get_roles))
        .route(
            "/_security/role/{name}",
            put(roles::put_role)
                .post(roles::put_role)
                .get(roles::get_roles)
                .delete(roles::delete_role),
        )
        .route(
            "/_security/api_key",
            put(api_keys::create)
                .post(api_keys::create)
                .get(api_keys::get)
                .delete(api_keys::invalidate),
        )
        .route(
            "/_security/api_key/{ids}/_clear_cache",
            post(api_keys::clear_cache),
        )
        .route("/oauth2/token", post(oauth::token))
        .route("/oauth2/revoke", post(oauth::revoke))
        .route("/oauth2/introspect", post(oauth::introspect))
        .route(
            "/oauth2/register",
            post(oauth::register).get(oauth::list_clients),
        )
        .route(
            "/oauth2/register/{client_id}",
            get(oauth::get_client)
                .put(oauth::update_client)
                .delete(oauth::delete_client),
        )
        .route(
            "/oauth2/register/{client_id}/_rotate_secret",
            post(oauth::rotate_secret),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::server_metadata),
        )
        .route("/_tessera/ready", get(ready))
        .route(
            "/_tessera/live",
            get(|| async { Json(json!({ "status": "live" })) }),
        )
        .route("/_tessera/metrics", get(render_metrics))
        .fallback(middleware::no_route)
        .method_not_allowed_fallback(middleware::wrong_method)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::around,
        ))
        .with_state(state)
}

async fn authenticate(Caller(who): Caller) -> Json<Authentication> {
    Json(who)
}

/// Ready only when the store answers a read and a write.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({ "status": "unavailable", "reason": "the token store is not answering" }),
                ),
            )
        }
    }
}

/// `GET /_tessera/metrics` on the API port: for callers holding the
/// `monitor` cluster privilege (or `manage`, `all`).
async fn render_metrics(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Response> {
    auth::require(&state, &caller, Action::MetricsRead).await?;
    Ok(metrics_text(state.render_metrics.as_ref()))
}

fn metrics_text(render: Option<&MetricsRender>) -> Response {
    match render {
        Some(render) => (StatusCode::OK, render()).into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response(),
    }
}

/// The metrics alone, without authentication: what `metrics_listen`
/// serves on its own address, for a scraper on a private network. Every
/// other path is 404.
pub fn metrics_router(render: MetricsRender) -> Router {
    Router::new().route(
        "/_tessera/metrics",
        get(move || {
            let render = Arc::clone(&render);
            async move { metrics_text(Some(&render)) }
        }),
    )
}
