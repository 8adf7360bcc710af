//! Request bodies: one extractor so that every malformed body gets *our*
//! error shape with a message that says what is wrong, never the framework's.

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// A JSON request body, required.
pub struct JsonBody<T>(pub T);

/// A JSON request body that may be absent (empty).
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> ApiResult<Self> {
        match OptionalJsonBody::<T>::from_request(req, state).await?.0 {
            Some(v) => Ok(JsonBody(v)),
            None => Err(ApiError::bad_request(
                "parse_exception",
                "request body is required",
            )),
        }
    }
}

impl<T: DeserializeOwned> FromRequest<AppState> for OptionalJsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> ApiResult<Self> {
        let limit = state.settings.max_body_bytes;
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("<not ASCII>").to_owned());
        let bytes = axum::body::to_bytes(Body::new(req.into_body()), limit)
            .await
            .map_err(|_| ApiError::too_large(limit))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(None));
        }
        if let Some(ct) = content_type {
            if !is_json_media_type(&ct) {
                return Err(ApiError::es(
                    StatusCode::NOT_ACCEPTABLE,
                    "media_type_header_exception",
                    format!("Content-Type header [{ct}] is not supported; send application/json"),
                ));
            }
        }
        parse_json(&bytes).map(|v| OptionalJsonBody(Some(v)))
    }
}

/// `application/json` or Elasticsearch's versioned media type, with
/// parameters such as `charset` or `compatible-with`.
pub fn is_json_media_type(value: &str) -> bool {
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence == "application/vnd.elasticsearch+json"
}

/// Parses a JSON object into `T`, mapping every failure to a 400 whose
/// message names the problem.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ApiError::parse(format!(
            "request body is not valid UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ApiError::parse(format!("request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::parse("request body must be a JSON object"));
    }
    // Parse the text again rather than the value so that errors carry
    // line and column.
    serde_json::from_str(text)
        .map_err(|e| ApiError::parse(format!("failed to parse request body: {e}")))
}

/// Elasticsearch reserves metadata keys that start with `_` (for users, roles
/// and API keys alike); the validation message for the first one found.
pub fn reserved_metadata_key(
    metadata: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Option<String> {
    metadata
        .into_iter()
        .flat_map(|m| m.keys())
        .find(|k| k.starts_with('_'))
        .map(|k| format!("metadata keys may not start with [_] (found [{k}])"))
}
