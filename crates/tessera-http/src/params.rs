//! Path parameters, with failures in our error shape rather than the
//! framework's plain text.

use axum::extract::{FromRequestParts, OptionalFromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};

/// Every `{…}` parameter of a route, by name: `T` is a struct deriving
/// `Deserialize` and, so that one type both reads and documents them,
/// `utoipa::IntoParams` (named in the operation's `params(…)`).
pub struct PathParams<T>(pub T);

/// The single `{…}` parameter of a route, as text.
pub struct PathParam(pub String);

/// The names a comma-separated parameter lists (`a,b`), blanks left out.
pub fn names(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect()
}

fn reject(e: axum::extract::rejection::PathRejection) -> ApiError {
    ApiError::illegal_argument(format!("invalid path parameter: {}", e.body_text()))
}

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        <Path<T> as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| PathParams(p))
            .map_err(reject)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        let PathParams(p) = PathParams::from_request_parts(parts, state).await?;
        Ok(PathParam(p))
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
