//! Path parameters, with failures in our error shape rather than the
//! framework's plain text.

use axum::extract::{FromRequestParts, OptionalFromRequestParts, Path};
use axum::http::request::Parts;

use crate::error::{ApiError, ApiResult};

/// The single `{…}` parameter of a route, as text.
pub struct PathParam(pub String);

fn reject(e: axum::extract::rejection::PathRejection) -> ApiError {
    ApiError::illegal_argument(format!("invalid path parameter: {}", e.body_text()))
}

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        <Path<String> as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| PathParam(p))
            .map_err(reject)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Option<Self>> {
        <Path<String> as OptionalFromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(|p| p.map(|Path(p)| PathParam(p)))
            .map_err(reject)
    }
}
