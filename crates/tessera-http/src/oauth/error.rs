//! The OAuth endpoints' failures by their RFC 6749 §5.2 (and RFC 7591
//! §3.2.2) names: constructors of [`ApiError`], which the `/oauth2/*`
//! handlers answer in [`crate::error::Shape::OAuth`].

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use super::BASIC_CHALLENGE;
use crate::error::{no_store, ApiError};

impl ApiError {
    pub(crate) fn invalid_request(description: impl Into<String>) -> Self {
        Self::oauth("invalid_request", description)
    }

    /// 401; with the Basic challenge when the client tried the
    /// `Authorization` header (RFC 6749 §5.2).
    pub(crate) fn invalid_client(description: impl Into<String>, tried_header: bool) -> Self {
        let e = Self::oauth_with_status(StatusCode::UNAUTHORIZED, "invalid_client", description);
        if tried_header {
            e.with_challenges(&[BASIC_CHALLENGE])
        } else {
            e
        }
    }

    pub(crate) fn invalid_grant(description: impl Into<String>) -> Self {
        Self::oauth("invalid_grant", description)
    }

    pub(crate) fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::oauth("unauthorized_client", description)
    }

    pub(crate) fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::oauth("unsupported_grant_type", description)
    }

    pub(crate) fn invalid_scope(description: impl Into<String>) -> Self {
        Self::oauth("invalid_scope", description)
    }

    pub(crate) fn invalid_client_metadata(description: impl Into<String>) -> Self {
        Self::oauth("invalid_client_metadata", description)
    }

    pub(crate) fn client_not_found(client_id: &str) -> Self {
        Self::oauth_with_status(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("OAuth client [{client_id}] not found"),
        )
    }
}

/// A successful answer that must not be cached (RFC 6749 §5.1).
pub(super) fn no_store_json(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    no_store(response.headers_mut());
    response
}
