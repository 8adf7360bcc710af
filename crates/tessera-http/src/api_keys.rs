//! API keys (`Authorization: ApiKey …`).

use crate::error::{ApiError, ApiResult};
use crate::AppState;
use tessera_domain::Authentication;

/// API keys are not issued yet, so no presented key can match.
pub async fn authenticate(_state: &AppState, _presented: &str) -> ApiResult<Authentication> {
    Err(ApiError::unsuccessful_credentials(
        "API key: invalid credentials",
    ))
}
