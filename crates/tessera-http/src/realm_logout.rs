//! What the logout of a SAML and of an OpenID Connect realm share: the
//! pair named by the presented access token, checked to be live and of
//! the realm's kind, then invalidated.

use tessera_domain::privilege::Action;
use tessera_domain::token::TokenString;
use tessera_domain::{Authentication, TokenKind, TokenRecord};
use zeroize::Zeroizing;

use crate::auth;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Ends the pair of `token` (and `refresh_token`, when given) after the
/// caller is checked for `action`; the pair must be live and made by a
/// realm of type `kind`, else `not_of_kind(realm name)` is the 400's
/// reason. As Elasticsearch: the refresh token is invalidated first, then
/// the access token; either ends the whole family. Gives the pair's record.
pub async fn end_pair(
    state: &AppState,
    caller: &Authentication,
    action: Action,
    token: Option<Zeroizing<String>>,
    refresh_token: Option<Zeroizing<String>>,
    kind: &str,
    not_of_kind: impl FnOnce(&str) -> String,
) -> ApiResult<TokenRecord> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(ApiError::validation(&["token is missing".to_owned()]));
    };
    auth::require(state, caller, action).await?;
    let access = TokenString::from_presented(&token);
    let record = match access.hash_as(TokenKind::Access) {
        Some(hash) => state.store.find_by_access(&hash).await?,
        None => None,
    };
    let Some(record) =
        record.filter(|r| !r.access_invalidated && r.access_expires_at > state.now())
    else {
        return Err(ApiError::token_expired());
    };
    if record.subject.authentication_realm.kind != kind {
        return Err(ApiError::illegal_argument(not_of_kind(
            &record.subject.authentication_realm.name,
        )));
    }
    if let Some(refresh) = refresh_token.filter(|t| !t.is_empty()) {
        let refresh = TokenString::from_presented(&refresh);
        state.store.invalidate_refresh(&refresh.hash()).await?;
    }
    state.store.invalidate_access(&access.hash()).await?;
    Ok(record)
}
