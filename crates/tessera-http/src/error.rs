//! The HTTP layer's one error type and its two wire shapes.
//!
//! Elasticsearch answers most failures with its error envelope
//! (`{"error":{"root_cause":[…],"type","reason",…},"status"}`) and the token
//! endpoint's OAuth failures with a flat `{"error","error_description"}`.
//! [`ApiError`] covers both; the variant decides the shape.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use tessera_domain::privilege::Action;
use tessera_store::StoreError;

/// The challenges sent with an ordinary 401, in Elasticsearch 8's order.
pub const DEFAULT_CHALLENGES: &[&str] = &[
    "Bearer realm=\"security\"",
    "ApiKey",
    "Basic realm=\"security\" charset=\"UTF-8\"",
];

/// The one challenge sent when a bearer token has expired or was invalidated.
pub const EXPIRED_TOKEN_CHALLENGE: &str =
    "Bearer realm=\"security\", error=\"invalid_token\", error_description=\"The access token expired\"";

#[derive(Debug)]
pub enum ApiError {
    /// An Elasticsearch-envelope error.
    Es {
        status: StatusCode,
        kind: &'static str,
        reason: String,
        /// Extra top-level fields Elasticsearch renders from exception metadata.
        metadata: Vec<(&'static str, Value)>,
        /// `WWW-Authenticate` values, sent as headers and in the body.
        challenges: Vec<String>,
    },
    /// An RFC 6749 §5.2-style flat error from the token endpoint.
    OAuth {
        status: StatusCode,
        error: &'static str,
        description: String,
    },
    /// 429: the source address spent its budget of failed authentications.
    /// The Elasticsearch envelope with `Retry-After`.
    TooManyFailures { retry_after_secs: u64 },
    /// A bare status with an Elasticsearch-shaped body that is not an error
    /// envelope (e.g. `{}` for a missing user, zero counts for an unknown token).
    Body { status: StatusCode, body: Value },
}

impl ApiError {
    pub fn es(status: StatusCode, kind: &'static str, reason: impl Into<String>) -> Self {
        ApiError::Es {
            status,
            kind,
            reason: reason.into(),
            metadata: Vec::new(),
            challenges: Vec::new(),
        }
    }

    pub fn bad_request(kind: &'static str, reason: impl Into<String>) -> Self {
        Self::es(StatusCode::BAD_REQUEST, kind, reason)
    }

    pub fn illegal_argument(reason: impl Into<String>) -> Self {
        Self::bad_request("illegal_argument_exception", reason)
    }

    /// Elasticsearch's `action_request_validation_exception` for a list of problems.
    pub fn validation(messages: &[String]) -> Self {
        Self::bad_request(
            "action_request_validation_exception",
            validation_text(messages),
        )
    }

    pub fn parse(reason: impl Into<String>) -> Self {
        Self::bad_request("x_content_parse_exception", reason)
    }

    pub fn not_found(kind: &'static str, reason: impl Into<String>) -> Self {
        Self::es(StatusCode::NOT_FOUND, kind, reason)
    }

    /// A 401 `security_exception` with the default challenges.
    pub fn unauthenticated(reason: impl Into<String>) -> Self {
        ApiError::Es {
            status: StatusCode::UNAUTHORIZED,
            kind: "security_exception",
            reason: reason.into(),
            metadata: Vec::new(),
            challenges: DEFAULT_CHALLENGES.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The 401 for presented credentials that match nothing (Elasticsearch 8).
    pub fn unsuccessful_credentials(what: &str) -> Self {
        ApiError::Es {
            status: StatusCode::UNAUTHORIZED,
            kind: "security_exception",
            reason: "unable to authenticate with provided credentials and anonymous access is not allowed for this request".into(),
            metadata: vec![("additional_unsuccessful_credentials", Value::String(what.into()))],
            challenges: DEFAULT_CHALLENGES.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The 401 for an expired or invalidated bearer token.
    pub fn token_expired() -> Self {
        ApiError::Es {
            status: StatusCode::UNAUTHORIZED,
            kind: "security_exception",
            reason: "token expired".into(),
            metadata: Vec::new(),
            challenges: vec![EXPIRED_TOKEN_CHALLENGE.into()],
        }
    }

    /// RFC 6750 §3.1: the bearer token is valid but its OAuth scope lacks
    /// what the endpoint requires. A 403 in Elasticsearch's envelope with
    /// the `insufficient_scope` challenge.
    pub fn insufficient_scope(required: &str) -> Self {
        ApiError::Es {
            status: StatusCode::FORBIDDEN,
            kind: "security_exception",
            reason: format!(
                "the access token's scope does not include [{required}], which this endpoint requires"
            ),
            metadata: Vec::new(),
            challenges: vec![format!(
                "Bearer realm=\"security\", error=\"insufficient_scope\", scope=\"{required}\""
            )],
        }
    }

    /// Elasticsearch's 403 for a missing cluster privilege.
    pub fn forbidden(action: Action, username: &str, roles: &[String]) -> Self {
        Self::es(
            StatusCode::FORBIDDEN,
            "security_exception",
            format!(
                "action [{}] is unauthorized for user [{}] with effective roles [{}], this action is granted by the cluster privileges [{}]",
                action.name(),
                username,
                roles.join(","),
                action.granted_by().join(",")
            ),
        )
    }

    pub fn oauth(error: &'static str, description: impl Into<String>) -> Self {
        ApiError::OAuth {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
        }
    }

    pub fn body(status: StatusCode, body: Value) -> Self {
        ApiError::Body { status, body }
    }

    pub fn unavailable() -> Self {
        Self::es(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable_exception",
            "the token store is unavailable; retry later",
        )
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Es { status, .. }
            | ApiError::OAuth { status, .. }
            | ApiError::Body { status, .. } => *status,
            ApiError::TooManyFailures { .. } => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// "Validation Failed: 1: a;2: b;"
pub fn validation_text(messages: &[String]) -> String {
    let mut out = String::from("Validation Failed: ");
    for (i, m) in messages.iter().enumerate() {
        out.push_str(&format!("{}: {};", i + 1, m));
    }
    out
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable");
                ApiError::unavailable()
            }
            StoreError::PasswordRequired => ApiError::validation(&[
                "password must be specified unless you are updating an existing user".into(),
            ]),
            StoreError::Internal(detail) => {
                // Logged once here; the client learns nothing internal.
                tracing::error!(%detail, "internal store error");
                ApiError::es(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "exception",
                    "internal error; see the server log",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Es {
                status,
                kind,
                reason,
                metadata,
                challenges,
            } => {
                let mut cause = Map::new();
                cause.insert("type".into(), Value::String(kind.into()));
                cause.insert("reason".into(), Value::String(reason));
                for (k, v) in metadata {
                    cause.insert(k.into(), v);
                }
                if !challenges.is_empty() {
                    let value = match challenges.as_slice() {
                        [one] => Value::String(one.clone()),
                        many => Value::Array(many.iter().cloned().map(Value::String).collect()),
                    };
                    cause.insert("header".into(), json!({ "WWW-Authenticate": value }));
                }
                let mut error = Map::new();
                error.insert(
                    "root_cause".into(),
                    Value::Array(vec![Value::Object(cause.clone())]),
                );
                error.extend(cause);
                let body = json!({ "error": Value::Object(error), "status": status.as_u16() });
                let mut response = (status, axum::Json(body)).into_response();
                for c in challenges {
                    if let Ok(v) = HeaderValue::from_str(&c) {
                        response.headers_mut().append(header::WWW_AUTHENTICATE, v);
                    }
                }
                response
            }
            ApiError::OAuth {
                status,
                error,
                description,
            } => (
                status,
                axum::Json(json!({ "error": error, "error_description": description })),
            )
                .into_response(),
            ApiError::Body { status, body } => (status, axum::Json(body)).into_response(),
            ApiError::TooManyFailures { retry_after_secs } => {
                let mut response = ApiError::es(
                    StatusCode::TOO_MANY_REQUESTS,
                    "security_exception",
                    too_many_failures_reason(retry_after_secs),
                )
                .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
                response
            }
        }
    }
}

/// The reason given with a 429 for too many failed authentications.
pub fn too_many_failures_reason(retry_after_secs: u64) -> String {
    format!(
        "too many failed authentication attempts from this address; retry in [{retry_after_secs}] seconds"
    )
}

pub type ApiResult<T> = Result<T, ApiError>;
