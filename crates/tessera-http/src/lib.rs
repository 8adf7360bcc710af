//! Tessera's HTTP layer: the Elasticsearch security API on axum.
//!
//! Handlers are thin: they extract, authenticate, call the domain and the
//! store, and map the result. Every failure is an [`error::ApiError`]; the
//! API family that answers it chooses its wire shape (the Elasticsearch
//! envelope, or RFC 6749's flat shape on `/oauth2/*`), and the request
//! wrapper logs every server error once.

pub mod api_key_grant;
pub mod api_key_update;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod body;
pub mod clock;
pub mod credentials;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod has_privileges;
pub mod jwt;
mod low_priority;
mod middleware;
pub mod node;
pub mod oauth;
pub mod oidc;
pub mod openapi;
pub mod params;
pub mod privileges;
pub mod queries;
mod realm_login;
mod realm_logout;
pub mod request_context;
pub mod role_mappings;
pub mod roles;
pub mod run_as;
pub mod saml;
pub mod service;
pub mod service_accounts;
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
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Value};
use tessera_domain::privilege::Action;
use tessera_domain::Authentication;

use crate::auth::Caller;
use crate::error::{ApiResult, Detail};
pub use crate::state::{AppState, Inner, Metrics, MetricsRender, Settings, TokenInvalidation};

/// The API: the routes of [`openapi::routes`] (each documented), with
/// Elasticsearch's answers to an unknown path or method, behind the
/// request wrapper.
pub fn router(state: AppState) -> Router {
    openapi::build();
    let (routes, _) = openapi::routes().split_for_parts();
    routes
        .fallback(middleware::no_route)
        .method_not_allowed_fallback(middleware::wrong_method)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::around,
        ))
        .with_state(state)
}

/// Who the caller is.
#[utoipa::path(
    get,
    path = "/_security/_authenticate",
    tag = openapi::SECURITY,
    responses(
        (status = 200, description = "The caller's user, roles and realms.",
         body = openapi::schemas::Authentication),
        openapi::schemas::EsErrors,
    )
)]
async fn authenticate(Caller(who): Caller) -> Json<Authentication> {
    Json(who)
}

/// Ready only when the store answers a read and can take a write (a
/// read-only database is not ready). Why not is logged by the request
/// wrapper, like every server error's detail.
#[utoipa::path(
    get,
    path = "/_tessera/ready",
    tag = openapi::TESSERA,
    security(()),
    responses(
        (status = 200, description = "The store answers reads and writes.",
         body = openapi::schemas::Probe),
        (status = 503, description = "The store is not answering.",
         body = openapi::schemas::Probe),
    )
)]
async fn ready(State(state): State<AppState>) -> Response {
    match state.store.ready().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Extension(Detail(format!("readiness check failed: {e}"))),
            Json(json!({ "status": "unavailable", "reason": "the token store is not answering or cannot take writes" })),
        )
            .into_response(),
    }
}

/// The process answers.
#[utoipa::path(
    get,
    path = "/_tessera/live",
    tag = openapi::TESSERA,
    security(()),
    responses((status = 200, description = "Always.", body = openapi::schemas::Probe))
)]
async fn live() -> Json<Value> {
    Json(json!({ "status": "live" }))
}

/// `GET /_tessera/metrics` on the API port: for callers holding the
/// `monitor` cluster privilege (or `manage`, `all`).
#[utoipa::path(
    get,
    path = "/_tessera/metrics",
    tag = openapi::TESSERA,
    responses(
        (status = 200, description = "Prometheus text exposition format.",
         content_type = "text/plain", body = String),
        (status = 404, description = "Metrics are not enabled.",
         content_type = "text/plain", body = String),
        openapi::schemas::EsErrors,
    )
)]
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
