//! The HTTP layer's one error type, [`ApiError`], and its two wire shapes.
//!
//! An error says what went wrong: its kind (as each API names it),
//! status, reason, `WWW-Authenticate` challenges and, for a server error,
//! the internal detail. How it is written out is chosen by the API family
//! that answers, as a [`Shape`]:
//!
//! - [`Shape::Elasticsearch`], what an `ApiError` returned by a handler or
//!   an extractor renders as: Elasticsearch's envelope
//!   (`{"error":{"root_cause":[…],"type","reason",…},"status"}`), except
//!   that a failure named by an RFC 6749 code (the token endpoint's) is the
//!   flat `{"error","error_description"}`, as Elasticsearch answers it;
//! - [`Shape::OAuth`], what the `/oauth2/*` handlers answer by returning
//!   [`OAuthShaped`]: RFC 6749 §5.2's flat `{"error","error_description"}`
//!   with `Cache-Control: no-store`, for every failure OAuth has a name for.
//!
//! No conversion between the shapes exists: a failure the two APIs name
//! differently (the store is down, the source is throttled, the body is
//! too large) carries both names. The administrator's checks on the
//! registration endpoints keep the envelope wherever they are answered
//! ([`ApiError::with_shape`]).
//!
//! Nothing internal is ever rendered. A server error's detail travels in
//! the response's extensions ([`Detail`]) to the request wrapper, which
//! logs it, once, with the request's method and route
//! (`middleware::around`).

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
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

/// How an [`ApiError`] is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The Elasticsearch security API's answers.
    Elasticsearch,
    /// The standard OAuth 2.0 endpoints' answers (RFC 6749 §5.2).
    OAuth,
}

/// What went wrong, as each API names it.
#[derive(Debug)]
enum Kind {
    /// An Elasticsearch exception (the envelope's `type`), which OAuth has
    /// no name for.
    Exception(&'static str),
    /// An RFC 6749 error code, answered flat in either shape.
    OAuth(&'static str),
    /// 413: the request body is over the limit.
    TooLarge,
    /// 429: the source address spent its budget of failed authentications.
    TooManyFailures { retry_after_secs: u64 },
    /// 503: the store is unavailable.
    Unavailable,
    /// 500: a bug or a corrupted store; the detail is only logged.
    Internal,
    /// Not an error envelope: a status with an Elasticsearch body of its
    /// own (`{}` for a missing user, zero counts for an unknown token).
    Body(Value),
}

/// What a failure is written as.
enum Written {
    /// Elasticsearch's envelope with this `type`.
    Envelope(&'static str),
    /// RFC 6749 §5.2's flat shape with this `error`.
    Flat(&'static str),
    Body(Value),
}

impl Kind {
    /// The one table of each failure's names in each shape.
    fn written(self, shape: Shape) -> Written {
        use Written::{Envelope, Flat};
        match (self, shape) {
            (Kind::Body(body), _) => Written::Body(body),
            (Kind::Exception(kind), _) => Envelope(kind),
            (Kind::OAuth(code), _) => Flat(code),
            (Kind::TooLarge, Shape::Elasticsearch) => Envelope("content_too_long_exception"),
            (Kind::TooLarge, Shape::OAuth) => Flat("invalid_request"),
            (Kind::TooManyFailures { .. }, Shape::Elasticsearch) => Envelope("security_exception"),
            (Kind::TooManyFailures { .. }, Shape::OAuth) => Flat("temporarily_unavailable"),
            (Kind::Unavailable, Shape::Elasticsearch) => Envelope("unavailable_exception"),
            (Kind::Unavailable, Shape::OAuth) => Flat("temporarily_unavailable"),
            (Kind::Internal, Shape::Elasticsearch) => Envelope("exception"),
            (Kind::Internal, Shape::OAuth) => Flat("server_error"),
        }
    }
}

/// A failure of a request, in whichever API it was made. Boxed, so that a
/// `Result` carrying it stays small on the paths that succeed.
#[derive(Debug)]
pub struct ApiError(Box<Parts>);

#[derive(Debug)]
struct Parts {
    status: StatusCode,
    kind: Kind,
    /// The envelope's `reason`, or the flat shape's `error_description`.
    reason: String,
    /// Extra top-level fields Elasticsearch renders from exception metadata.
    metadata: Vec<(&'static str, Value)>,
    /// `WWW-Authenticate` values, sent as headers (and in the envelope's
    /// body).
    challenges: Vec<String>,
    /// The shape this error keeps whichever family answers it.
    shape: Option<Shape>,
    /// What the log gets and the client never does.
    detail: Option<String>,
}

/// The internal detail of a server error, carried in the response's
/// extensions for the request wrapper to log; never rendered.
#[derive(Debug, Clone)]
pub struct Detail(pub String);

impl ApiError {
    fn new(status: StatusCode, kind: Kind, reason: String) -> Self {
        ApiError(Box::new(Parts {
            status,
            kind,
            reason,
            metadata: Vec::new(),
            challenges: Vec::new(),
            shape: None,
            detail: None,
        }))
    }

    /// An Elasticsearch exception.
    pub fn es(status: StatusCode, kind: &'static str, reason: impl Into<String>) -> Self {
        Self::new(status, Kind::Exception(kind), reason.into())
    }

    /// An RFC 6749 §5.2 error with `status`.
    pub fn oauth_with_status(
        status: StatusCode,
        error: &'static str,
        description: impl Into<String>,
    ) -> Self {
        Self::new(status, Kind::OAuth(error), description.into())
    }

    /// A 400 RFC 6749 §5.2 error.
    pub fn oauth(error: &'static str, description: impl Into<String>) -> Self {
        Self::oauth_with_status(StatusCode::BAD_REQUEST, error, description)
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
        Self::es(StatusCode::UNAUTHORIZED, "security_exception", reason)
            .with_challenges(DEFAULT_CHALLENGES)
    }

    /// The 401 for presented credentials that match nothing (Elasticsearch 8).
    pub fn unsuccessful_credentials(what: &str) -> Self {
        let mut e = Self::unauthenticated(
            "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
        );
        e.0.metadata = vec![(
            "additional_unsuccessful_credentials",
            Value::String(what.into()),
        )];
        e
    }

    /// The 401 for an expired or invalidated bearer token.
    pub fn token_expired() -> Self {
        Self::es(
            StatusCode::UNAUTHORIZED,
            "security_exception",
            "token expired",
        )
        .with_challenges(&[EXPIRED_TOKEN_CHALLENGE])
    }

    /// RFC 6750 §3.1: the bearer token is valid but its OAuth scope lacks
    /// what the endpoint requires. A 403 in Elasticsearch's envelope with
    /// the `insufficient_scope` challenge.
    pub fn insufficient_scope(required: &str) -> Self {
        Self::es(
            StatusCode::FORBIDDEN,
            "security_exception",
            format!(
                "the access token's scope does not include [{required}], which this endpoint requires"
            ),
        )
        .with_challenges(&[&format!(
            "Bearer realm=\"security\", error=\"insufficient_scope\", scope=\"{required}\""
        )])
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

    /// A bare status with an Elasticsearch-shaped body that is not an error
    /// envelope.
    pub fn body(status: StatusCode, body: Value) -> Self {
        Self::new(status, Kind::Body(body), String::new())
    }

    /// 413: a request body over `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Kind::TooLarge,
            format!("request body is larger than the limit of [{limit}] bytes"),
        )
    }

    /// 429 with `Retry-After`: the source spent its budget of failed
    /// authentications.
    pub fn too_many_failures(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            Kind::TooManyFailures { retry_after_secs },
            too_many_failures_reason(retry_after_secs),
        )
    }

    /// 503: the store is unavailable; `detail` is logged.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Kind::Unavailable,
            "the token store is unavailable; retry later".into(),
        )
        .with_detail(detail)
    }

    /// 500: nothing internal in the answer; `detail` is logged.
    pub fn internal(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Kind::Internal,
            "internal error; see the server log".into(),
        )
        .with_detail(detail)
    }

    /// Adds `WWW-Authenticate` challenges.
    pub fn with_challenges(mut self, challenges: &[&str]) -> Self {
        self.0
            .challenges
            .extend(challenges.iter().map(|c| (*c).to_owned()));
        self
    }

    /// Adds a top-level field to the envelope (Elasticsearch's exception
    /// metadata, such as `security.saml.unsolicited_in_response_to`).
    pub fn with_metadata(mut self, key: &'static str, value: Value) -> Self {
        self.0.metadata.push((key, value));
        self
    }

    /// What the log gets with this error (never the client).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.0.detail = Some(detail.into());
        self
    }

    /// Answered in `shape` whichever API family returns it.
    pub fn with_shape(mut self, shape: Shape) -> Self {
        self.0.shape = Some(shape);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The response in `shape` (unless the error keeps a shape of its own).
    pub fn render(self, shape: Shape) -> Response {
        let Parts {
            status,
            kind,
            reason,
            metadata,
            challenges,
            shape: own_shape,
            detail,
        } = *self.0;
        let shape = own_shape.unwrap_or(shape);
        let retry_after = match kind {
            Kind::TooManyFailures { retry_after_secs } => Some(retry_after_secs),
            _ => None,
        };
        let written = kind.written(shape);
        let flat = matches!(written, Written::Flat(_));
        let mut response = match written {
            Written::Envelope(kind) => envelope(status, kind, reason, metadata, &challenges),
            Written::Flat(code) => (
                status,
                axum::Json(json!({ "error": code, "error_description": reason })),
            )
                .into_response(),
            Written::Body(body) => (status, axum::Json(body)).into_response(),
        };
        let headers = response.headers_mut();
        if shape == Shape::OAuth && flat {
            // RFC 6749 §5.1, as for every answer of the OAuth endpoints.
            no_store(headers);
        }
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        for c in &challenges {
            if let Ok(v) = HeaderValue::from_str(c) {
                headers.append(header::WWW_AUTHENTICATE, v);
            }
        }
        if let Some(detail) = detail {
            response.extensions_mut().insert(Detail(detail));
        }
        response
    }
}

/// Elasticsearch's error envelope.
fn envelope(
    status: StatusCode,
    kind: &'static str,
    reason: String,
    metadata: Vec<(&'static str, Value)>,
    challenges: &[String],
) -> Response {
    let mut cause = Map::new();
    cause.insert("type".into(), Value::String(kind.into()));
    cause.insert("reason".into(), Value::String(reason));
    for (k, v) in metadata {
        cause.insert(k.into(), v);
    }
    if !challenges.is_empty() {
        let value = match challenges {
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
    (status, axum::Json(body)).into_response()
}

/// RFC 6749 §5.1: responses carrying tokens or credentials, and the OAuth
/// endpoints' errors, are not cached.
pub fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
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
            StoreError::Unavailable(_) => ApiError::unavailable(e.to_string()),
            StoreError::PasswordRequired => ApiError::validation(&[e.to_string()]),
            StoreError::Internal(_) => ApiError::internal(e.to_string()),
        }
    }
}

/// The Elasticsearch API's rendering: what handlers and extractors answer.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.render(Shape::Elasticsearch)
    }
}

/// An [`ApiError`] answered in [`Shape::OAuth`]: what the `/oauth2/*`
/// handlers return.
#[derive(Debug)]
pub struct OAuthShaped(pub ApiError);

impl From<ApiError> for OAuthShaped {
    fn from(e: ApiError) -> Self {
        OAuthShaped(e)
    }
}

impl From<StoreError> for OAuthShaped {
    fn from(e: StoreError) -> Self {
        OAuthShaped(e.into())
    }
}

impl IntoResponse for OAuthShaped {
    fn into_response(self) -> Response {
        self.0.render(Shape::OAuth)
    }
}

/// The reason given with a 429 for too many failed authentications.
pub fn too_many_failures_reason(retry_after_secs: u64) -> String {
    format!(
        "too many failed authentication attempts from this address; retry in [{retry_after_secs}] seconds"
    )
}

pub type ApiResult<T> = Result<T, ApiError>;
pub type OAuthResult<T> = Result<T, OAuthShaped>;

#[cfg(test)]
mod tests {
    use super::*;

    async fn parts(response: Response) -> (StatusCode, HeaderMap, Value, Option<Detail>) {
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("a rendered body");
        let body = serde_json::from_slice(&bytes).expect("a JSON body");
        let detail = parts.extensions.get::<Detail>().cloned();
        (parts.status, parts.headers, body, detail)
    }

    #[tokio::test]
    async fn a_store_failure_renders_nothing_internal_and_carries_its_detail_to_the_log() {
        let internal = || ApiError::from(StoreError::Internal("page 7 is malformed".into()));
        let (status, headers, body, detail) = parts(internal().into_response()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let cause = json!({ "type": "exception", "reason": "internal error; see the server log" });
        assert_eq!(
            body,
            json!({
                "error": { "root_cause": [cause], "type": "exception",
                           "reason": "internal error; see the server log" },
                "status": 500,
            })
        );
        assert!(headers.get(header::CACHE_CONTROL).is_none());
        assert_eq!(
            detail.expect("the detail").0,
            "internal store error: page 7 is malformed"
        );

        let (status, headers, body, detail) = parts(OAuthShaped(internal()).into_response()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            json!({ "error": "server_error",
                    "error_description": "internal error; see the server log" })
        );
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(headers[header::PRAGMA], "no-cache");
        assert!(detail.expect("the detail").0.contains("page 7"));
    }

    #[tokio::test]
    async fn one_failure_has_a_name_in_each_shape_and_no_detail_unless_internal() {
        let throttled = || ApiError::too_many_failures(30);
        let reason = too_many_failures_reason(30);
        let (status, headers, body, detail) = parts(throttled().into_response()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "30");
        assert_eq!(body["error"]["type"], "security_exception");
        assert_eq!(body["error"]["reason"], reason.as_str());
        assert_eq!(body["status"], 429);
        assert!(detail.is_none());

        let (status, headers, body, _) = parts(OAuthShaped(throttled()).into_response()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "30");
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
        assert_eq!(
            body,
            json!({ "error": "temporarily_unavailable", "error_description": reason })
        );
    }

    #[tokio::test]
    async fn an_oauth_code_is_flat_in_either_shape_but_uncached_only_on_oauth_endpoints() {
        let grant = || ApiError::oauth("invalid_grant", "token has already been refreshed");
        let flat = json!({ "error": "invalid_grant",
                           "error_description": "token has already been refreshed" });
        let (status, headers, body, _) = parts(grant().into_response()).await;
        assert_eq!((status, body), (StatusCode::BAD_REQUEST, flat.clone()));
        assert!(headers.get(header::CACHE_CONTROL).is_none());
        let (status, headers, body, _) = parts(OAuthShaped(grant()).into_response()).await;
        assert_eq!((status, body), (StatusCode::BAD_REQUEST, flat));
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    }

    #[tokio::test]
    async fn challenges_go_in_headers_and_only_the_envelope_repeats_them() {
        let (_, headers, body, _) = parts(ApiError::unauthenticated("no").into_response()).await;
        let sent: Vec<_> = headers.get_all(header::WWW_AUTHENTICATE).iter().collect();
        assert_eq!(sent, DEFAULT_CHALLENGES);
        assert_eq!(
            body["error"]["header"]["WWW-Authenticate"],
            json!(DEFAULT_CHALLENGES)
        );

        let client = ApiError::oauth_with_status(StatusCode::UNAUTHORIZED, "invalid_client", "no")
            .with_challenges(&["Basic realm=\"tessera\""]);
        let (status, headers, body, _) = parts(OAuthShaped(client).into_response()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Basic realm=\"tessera\"");
        assert_eq!(
            body,
            json!({ "error": "invalid_client", "error_description": "no" })
        );
    }

    #[tokio::test]
    async fn an_error_with_a_shape_of_its_own_keeps_it() {
        let down = ApiError::unavailable("connection refused").with_shape(Shape::Elasticsearch);
        let (status, headers, body, detail) = parts(OAuthShaped(down).into_response()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["type"], "unavailable_exception");
        assert_eq!(
            body["error"]["reason"],
            "the token store is unavailable; retry later"
        );
        assert!(headers.get(header::CACHE_CONTROL).is_none());
        assert_eq!(detail.expect("the detail").0, "connection refused");
    }
}
