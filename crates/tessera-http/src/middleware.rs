//! What wraps every request: a deadline, Elasticsearch's response headers,
//! metrics by matched route, and the 404/405 answers.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use tracing::Instrument;

use crate::error::ApiError;
use crate::AppState;

const COMPATIBLE_MEDIA_TYPE: &str = "application/vnd.elasticsearch+json;compatible-with=8";

pub async fn around(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().clone();
    let wants_compatible = [header::ACCEPT, header::CONTENT_TYPE].iter().any(|h| {
        req.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("vnd.elasticsearch+json"))
    });
    // Everything the handler logs carries the method and the matched route
    // (never the URI's query or any header).
    let span = tracing::info_span!("request", %method, %route);
    let handled = tokio::time::timeout(state.settings.request_timeout, next.run(req));
    let mut response = match handled.instrument(span).await {
        Ok(r) => r,
        Err(_) => ApiError::es(
            StatusCode::REQUEST_TIMEOUT,
            "timeout_exception",
            "the request took longer than the configured request timeout",
        )
        .into_response(),
    };

    let headers = response.headers_mut();
    headers.insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    if wants_compatible
        && headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
    {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(COMPATIBLE_MEDIA_TYPE),
        );
    }

    let status = response.status().as_u16().to_string();
    metrics::counter!("tessera_http_requests_total", "route" => route.clone(), "method" => method.to_string(), "status" => status)
        .increment(1);
    metrics::histogram!("tessera_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

pub async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::es(
        StatusCode::NOT_FOUND,
        "resource_not_found_exception",
        format!("no handler found for uri [{uri}] and method [{method}]"),
    )
}

pub async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::es(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed_exception",
        format!("Incorrect HTTP method for uri [{uri}] and method [{method}]"),
    )
}
