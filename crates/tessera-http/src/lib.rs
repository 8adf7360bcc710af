//! Tessera's HTTP layer: the Elasticsearch security API on axum.
//!
//! Handlers are thin: they extract, authenticate, call the domain and the
//! store, and map the result. Every failure is an [`error::ApiError`]; the
//! API family that answers it chooses its wire shape (the Elasticsearch
//! envelope, or RFC 6749's flat shape on `/oauth2/*`), and the request
//! wrapper logs every server error once.

pub mod api_keys;
pub mod audit;
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
pub mod request_context;
pub mod role_mappings;
pub mod roles;
pub mod saml;
pub mod service;
mod state;
pub mod telemetry;
pub mod throttle;
pub mod tokens;
pub mod users;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::routing::{any, get, post, put};
use axum::{Extension, Json, Router};
use serde_json::json;
use tessera_domain::privilege::Action;
use tessera_domain::Authentication;

use crate::auth::Caller;
use crate::error::{ApiResult, Detail};
pub use crate::state::{AppState, Inner, Metrics, MetricsRender, Settings};

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
            "/_security/role_mapping",
            get(role_mappings::get_role_mappings),
        )
        .route(
            "/_security/role_mapping/{name}",
            put(role_mappings::put_role_mapping)
                .post(role_mappings::put_role_mapping)
                .get(role_mappings::get_role_mappings)
                .delete(role_mappings::delete_role_mapping),
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
        .route("/_security/saml/prepare", post(saml::prepare))
        .route("/_security/saml/authenticate", post(saml::authenticate))
        .route("/_security/saml/logout", post(saml::logout))
        .route("/_security/saml/invalidate", post(saml::invalidate))
        .route(
            "/_security/saml/complete_logout",
            post(saml::complete_logout),
        )
        .route("/_security/saml/metadata/{realm}", get(saml::metadata))
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

/// Ready only when the store answers a read and a write. Why not is
/// logged by the request wrapper, like every server error's detail.
async fn ready(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Extension(Detail(format!("readiness check failed: {e}"))),
            Json(json!({ "status": "unavailable", "reason": "the token store is not answering" })),
        )
            .into_response(),
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
