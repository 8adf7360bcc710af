//! What every request carries besides its own content: its id (the
//! caller's `X-Opaque-Id` or `X-Request-Id`, else a generated one, echoed
//! in the response), and, for the audit log and the access log, where it
//! came from and who it turned out to be. The context is a task-local of
//! the request's handler, so the audit hooks (authentication, privilege
//! checks, configuration changes) need no extra arguments.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use tessera_domain::run_as::RunBy;

/// The longest request id taken from a caller; a longer one is replaced.
pub const MAX_REQUEST_ID_LEN: usize = 128;

pub static X_OPAQUE_ID: HeaderName = HeaderName::from_static("x-opaque-id");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// One request's context.
pub struct RequestContext {
    /// The request id, as it is echoed.
    pub id: HeaderValue,
    /// The header the id is echoed under.
    pub header: &'static HeaderName,
    pub method: Method,
    /// The request path (never its query, which may hold secrets).
    pub path: String,
    /// The connection's peer, when the router is served with it.
    pub origin: Option<SocketAddr>,
    /// The authenticated user's name, once known (for the access log).
    user: Mutex<Option<String>>,
    /// The caller, when the request runs as another user (for the audit
    /// log's `user.run_by.*`).
    run_by: OnceLock<RunBy>,
}

impl RequestContext {
    /// The context of `req`: its id, and, when `detailed` (the audit log
    /// is on), the path; the cheap parts always.
    pub fn of<B>(req: &Request<B>, detailed: bool) -> Self {
        let (id, header) = request_id(req.headers());
        Self {
            id,
            header,
            method: req.method().clone(),
            path: if detailed {
                req.uri().path().to_owned()
            } else {
                String::new()
            },
            origin: req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            user: Mutex::new(None),
            run_by: OnceLock::new(),
        }
    }

    /// The id as text (it is printable ASCII by construction).
    pub fn id_str(&self) -> &str {
        self.id.to_str().unwrap_or_default()
    }

    pub fn set_user(&self, name: &str) {
        *self.user.lock().unwrap_or_else(PoisonError::into_inner) = Some(name.to_owned());
    }

    /// Records who runs the request as another user (once).
    pub fn set_run_by(&self, run_by: RunBy) {
        let _ = self.run_by.set(run_by);
    }

    pub fn run_by(&self) -> Option<&RunBy> {
        self.run_by.get()
    }

    pub fn user(&self) -> Option<String> {
        self.user
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

tokio::task_local! {
    static CURRENT: Arc<RequestContext>;
}

/// Runs `f` as the request whose context is `ctx`.
pub async fn scope<F: std::future::Future>(ctx: Arc<RequestContext>, f: F) -> F::Output {
    CURRENT.scope(ctx, f).await
}

/// Calls `f` with the current request's context, if any.
pub fn with_current<T>(f: impl FnOnce(&RequestContext) -> T) -> Option<T> {
    CURRENT.try_with(|c| f(c)).ok()
}

/// The caller's id (`X-Opaque-Id` first, then `X-Request-Id`) if it is
/// acceptable, else a generated one under `X-Request-Id`.
fn request_id(headers: &HeaderMap) -> (HeaderValue, &'static HeaderName) {
    for name in [&X_OPAQUE_ID, &X_REQUEST_ID] {
        if let Some(v) = headers.get(name).filter(|v| acceptable(v.as_bytes())) {
            return (v.clone(), name);
        }
    }
    (generate(), &X_REQUEST_ID)
}

/// 1 to [`MAX_REQUEST_ID_LEN`] bytes of printable ASCII without spaces or
/// quotes (it is written into log lines and JSON as is).
pub fn acceptable(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_graphic() && *b != b'"' && *b != b'\\')
}

/// A new id: a random per-process prefix and a counter, base64url (22
/// characters, like Elasticsearch's).
fn generate() -> HeaderValue {
    static PREFIX: OnceLock<[u8; 8]> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(rand::random::<[u8; 8]>);
    let mut raw = [0u8; 16];
    raw[..8].copy_from_slice(prefix);
    raw[8..].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_be_bytes());
    let mut text = [0u8; 22];
    let n = URL_SAFE_NO_PAD
        .encode_slice(raw, &mut text)
        .expect("16 bytes fit in 22 characters");
    HeaderValue::from_bytes(&text[..n]).expect("base64url is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_a_sane_caller_id_and_replaces_others() {
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(
            request_id(&h),
            (HeaderValue::from_static("abc-123"), &X_REQUEST_ID)
        );
        h.insert(&X_OPAQUE_ID, HeaderValue::from_static("opaque"));
        assert_eq!(request_id(&h).1, &X_OPAQUE_ID);
        for bad in ["has space", "quote\"d", &"x".repeat(MAX_REQUEST_ID_LEN + 1)] {
            let mut h = HeaderMap::new();
            h.insert(&X_OPAQUE_ID, HeaderValue::from_str(bad).unwrap());
            let (id, name) = request_id(&h);
            assert_eq!(name, &X_REQUEST_ID);
            assert_eq!(id.len(), 22);
        }
        assert_ne!(generate(), generate());
    }
}
