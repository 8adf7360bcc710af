//! `POST /_security/oidc/logout`: ends the pair (its whole family) and
//! gives the provider's end-session URL.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tessera_domain::privilege::Action;
use tessera_realms::oidc::flow::{end_session_url, random_value};
use zeroize::Zeroizing;

use super::{ID_TOKEN_HINT, REALM_TYPE};
use crate::auth::Caller;
use crate::body::JsonBody;
use crate::error::ApiResult;
use crate::realm_logout::end_pair;
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OidcLogoutRequest)]
pub struct LogoutRequest {
    #[schema(value_type = Option<String>)]
    token: Option<Zeroizing<String>>,
    #[schema(value_type = Option<String>)]
    refresh_token: Option<Zeroizing<String>>,
}

#[utoipa::path(
    post,
    path = "/_security/oidc/logout",
    tag = crate::openapi::SECURITY,
    request_body = LogoutRequest,
    responses(
        (status = 200, description = "The provider's end-session URL (`redirect`, null without one); the pair is invalidated.", body = Object),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(req): JsonBody<LogoutRequest>,
) -> ApiResult<Json<Value>> {
    let record = end_pair(
        &state,
        &caller,
        Action::OidcLogout,
        req.token,
        req.refresh_token,
        REALM_TYPE,
        |realm| format!("Authentication realm [{realm}] is not an OpenID Connect realm"),
    )
    .await?;
    let realm_name = record.subject.authentication_realm.name.to_string();
    state.metrics.oidc_logout(&realm_name);
    let hint = record
        .metadata
        .as_ref()
        .and_then(|m| m.get(ID_TOKEN_HINT))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let redirect = match (state.settings.oidc.get(&realm_name), hint) {
        (Some(realm), Some(hint)) => match realm.provider(state.now()).await {
            Ok(provider) => provider.endpoints.end_session.as_deref().map(|endpoint| {
                end_session_url(
                    endpoint,
                    &hint,
                    realm.config.post_logout_redirect_uri.as_deref(),
                    &random_value(),
                )
            }),
            Err(_) => None,
        },
        _ => None,
    };
    Ok(Json(json!({ "redirect": redirect })))
}
