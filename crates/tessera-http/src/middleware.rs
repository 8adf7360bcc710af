//! What wraps every request: its id and context, the declared body size,
//! a deadline, Elasticsearch's response headers, metrics by matched route,
//! the access log, and the 404/405 answers.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use metrics::{Counter, Histogram};
use tracing::Instrument;

use crate::error::{ApiError, Detail, Shape};
use crate::request_context::{self, RequestContext};
use crate::state::AppState;

const COMPATIBLE_MEDIA_TYPE: &str = "application/vnd.elasticsearch+json;compatible-with=8";

pub async fn around(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = req.method().clone();
    let wants_compatible = [header::ACCEPT, header::CONTENT_TYPE].iter().any(|h| {
        req.headers()
            .get(h)
            .is_some_and(|v| contains_ignoring_case(v.as_bytes(), b"vnd.elasticsearch+json"))
    });
    // With `TESSERA_LOG=debug`, everything the handler logs carries the
    // method and the matched route (never the URI's query or any header).
    // At the default level the span is not created: formatting and
    // registering it cost about a fifth of the CPU of a cached
    // `_authenticate`. Server errors are logged below with both instead.
    // The request id is not a span field either: the log formatter adds it
    // to every line written inside the request, from its context.
    let ctx = Arc::new(RequestContext::of(&req, state.audit.enabled()));
    let span = tracing::debug_span!("request", %method, %route);
    let mut response =
        if let Some(too_large) = declared_too_large(&req, state.settings.max_body_bytes) {
            too_large
        } else {
            let handled = tokio::time::timeout(state.settings.request_timeout, next.run(req));
            match request_context::scope(Arc::clone(&ctx), handled.instrument(span)).await {
                Ok(r) => r,
                Err(_) => ApiError::es(
                    StatusCode::REQUEST_TIMEOUT,
                    "timeout_exception",
                    "the request took longer than the configured request timeout",
                )
                .into_response(),
            }
        };

    let headers = response.headers_mut();
    headers.insert(ctx.header, ctx.id.clone());
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

    // Every server error is logged here, once, with the detail its
    // response carries (which the client never sees).
    let status = response.status();
    if status.is_server_error() {
        let detail = response.extensions_mut().remove::<Detail>();
        let detail = detail.as_ref().map_or("", |d| d.0.as_str());
        // The same event at `error` for a bug, at `warn` for the rest (an
        // unavailable store, a timeout): a level is fixed where it is logged.
        macro_rules! server_error {
            ($level:ident) => {
                tracing::$level!(
                    %method,
                    route,
                    request_id = ctx.id_str(),
                    status = status.as_u16(),
                    detail,
                    "request answered with a server error"
                )
            };
        }
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            server_error!(error);
        } else {
            server_error!(warn);
        }
    }

    let elapsed = started.elapsed();
    let handles = route_metrics(route, &method, status);
    handles.requests.increment(1);
    handles.duration.record(elapsed.as_secs_f64());
    if state.settings.access_log {
        tracing::info!(
            target: "tessera::access",
            request_id = ctx.id_str(),
            %method,
            route,
            status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            user = ctx.user().as_deref(),
            "request"
        );
    }
    response
}

/// The 413 for a request whose `Content-Length` is over `limit`, answered
/// before any byte of the body is read (so hyper never sends
/// `100 Continue` for it), in the shape of the API it was sent to. The
/// connection is closed after it, since the body was not read.
fn declared_too_large(req: &Request, limit: usize) -> Option<Response> {
    let declared = req.headers().get(header::CONTENT_LENGTH)?;
    // hyper has already refused a Content-Length that is not a number.
    let length: u64 = declared.to_str().ok()?.parse().ok()?;
    if length <= limit as u64 {
        return None;
    }
    let too_large = ApiError::too_large(limit);
    let shape = if req.uri().path().starts_with("/oauth2/") {
        Shape::OAuth
    } else {
        Shape::Elasticsearch
    };
    let mut response = too_large.render(shape);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    Some(response)
}

/// Whether `haystack` contains `needle` (lowercase ASCII), in any case,
/// without allocating (this runs for every request).
fn contains_ignoring_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The metric handles of one (route, method, status): registered on first
/// use, so a request neither allocates label strings nor builds a key.
#[derive(Clone)]
struct RouteMetrics {
    requests: Counter,
    duration: Histogram,
}

type RouteTable = HashMap<String, HashMap<(Method, StatusCode), RouteMetrics>>;

fn route_metrics(route: &str, method: &Method, status: StatusCode) -> RouteMetrics {
    static TABLE: OnceLock<RwLock<RouteTable>> = OnceLock::new();
    let table = TABLE.get_or_init(Default::default);
    // Extension methods share one label, so clients cannot mint series.
    let method = match *method {
        Method::GET
        | Method::POST
        | Method::PUT
        | Method::DELETE
        | Method::HEAD
        | Method::OPTIONS
        | Method::PATCH => method.clone(),
        _ => Method::from_bytes(b"OTHER").expect("a valid method token"),
    };
    let key = (method.clone(), status);
    if let Some(found) = table
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(route)
        .and_then(|by_status| by_status.get(&key))
    {
        return found.clone();
    }
    let handles = RouteMetrics {
        requests: metrics::counter!(
            "tessera_http_requests_total",
            "route" => route.to_owned(),
            "method" => method.to_string(),
            "status" => status.as_u16().to_string()
        ),
        duration: metrics::histogram!(
            "tessera_http_request_duration_seconds",
            "route" => route.to_owned()
        ),
    };
    table
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(route.to_owned())
        .or_default()
        .insert(key, handles.clone());
    handles
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

#[cfg(test)]
mod tests {
    use super::contains_ignoring_case;

    #[test]
    fn finds_the_compatible_media_type_in_any_case() {
        let needle = b"vnd.elasticsearch+json";
        for yes in [
            &b"application/vnd.elasticsearch+json; compatible-with=8"[..],
            b"Application/VND.Elasticsearch+JSON",
        ] {
            assert!(contains_ignoring_case(yes, needle));
        }
        for no in [&b"application/json"[..], b"", b"vnd.elasticsearch"] {
            assert!(!contains_ignoring_case(no, needle));
        }
    }
}
