//! `POST /_security/saml/logout` (SP-initiated), `/invalidate`
//! (IdP-initiated) and `/complete_logout`.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tessera_domain::privilege::Action;
use tessera_realms::saml::requests::{new_request_id, SessionNameId};
use tessera_realms::saml::SamlError;
use zeroize::Zeroizing;

use super::{choose_realm, REALM_TYPE};
use crate::auth::{self, Caller};
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::realm_login::log_refusal;
use crate::state::AppState;

/// The tokens of the SAML session to end.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SamlLogoutRequest)]
pub struct LogoutRequest {
    #[schema(value_type = Option<String>)]
    token: Option<Zeroizing<String>>,
    #[schema(value_type = Option<String>)]
    refresh_token: Option<Zeroizing<String>>,
}

/// A logout or logout answer the realm refused: a 401 in Elasticsearch's
/// shape, the reason in the log.
fn refused(action: Action, realm: &str, e: &SamlError) -> ApiError {
    let rule = e.rule.as_str();
    log_refusal(
        "saml_logout_refused",
        realm,
        rule,
        &e.detail,
        "SAML logout message refused",
    );
    ApiError::unauthenticated(format!(
        "unable to authenticate user [<unauthenticated-saml-user>] for action [{}]",
        action.name()
    ))
}

fn text(m: &Map<String, Value>, key: &str) -> Option<String> {
    m.get(key).and_then(Value::as_str).map(str::to_owned)
}

#[utoipa::path(
    post,
    path = "/_security/saml/logout",
    tag = crate::openapi::SECURITY,
    request_body = LogoutRequest,
    responses(
        (status = 200, description = "The LogoutRequest to send the user to, if any.", body = crate::openapi::schemas::SamlRedirect),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(req): JsonBody<LogoutRequest>,
) -> ApiResult<Json<Value>> {
    let record = crate::realm_logout::end_pair(
        &state,
        &caller,
        Action::SamlLogout,
        req.token,
        req.refresh_token,
        REALM_TYPE,
        |realm| format!("authentication realm [{realm}] is not a SAML realm"),
    )
    .await?;
    let meta = record.metadata.unwrap_or_default();
    let realm = state
        .settings
        .saml
        .get(&record.subject.authentication_realm.name, state.now());
    let prepared = match (realm, text(&meta, "saml_nameid_val")) {
        (Some(realm), Some(value)) => realm.logout_request(
            &new_request_id(),
            state.now(),
            &SessionNameId {
                value,
                format: text(&meta, "saml_nameid_fmt"),
                qualifier: text(&meta, "saml_nameid_qual"),
                sp_qualifier: text(&meta, "saml_nameid_sp_qual"),
            },
            text(&meta, "saml_session").as_deref(),
        ),
        _ => None,
    };
    Ok(Json(match prepared {
        Some(p) => json!({ "id": p.id, "redirect": p.redirect }),
        None => json!({ "id": null, "redirect": null }),
    }))
}

/// An IdP-initiated LogoutRequest.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SamlInvalidateRequest)]
pub struct InvalidateRequest {
    query_string: Option<String>,
    realm: Option<String>,
    acs: Option<String>,
}

#[utoipa::path(
    post,
    path = "/_security/saml/invalidate",
    tag = crate::openapi::SECURITY,
    request_body = InvalidateRequest,
    responses(
        (status = 200, description = "What the IdP-initiated logout invalidated.", body = Object),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn invalidate(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(req): JsonBody<InvalidateRequest>,
) -> ApiResult<Json<Value>> {
    let Some(query) = req.query_string.filter(|q| !q.is_empty()) else {
        return Err(ApiError::validation(
            &["query_string is missing".to_owned()],
        ));
    };
    auth::require(&state, &caller, Action::SamlInvalidate).await?;
    let realm = choose_realm(
        &state,
        req.realm.as_deref(),
        req.acs.as_deref(),
        "SamlInvalidateSessionRequest",
    )?;
    let name = realm.config.name.clone();
    let request = realm
        .parse_logout_request(&query, state.now())
        .map_err(|e| refused(Action::SamlInvalidate, &name, &e))?;
    let invalidated = match &request.nameid {
        Some(nameid) => {
            // The sessions of this NameID, or only the one the IdP names.
            state
                .store
                .invalidate_by_nameid(
                    &name,
                    &nameid.value,
                    request.session_index.as_deref(),
                    state.now(),
                )
                .await?
        }
        None => 0,
    };
    let redirect = realm.logout_response(
        &new_request_id(),
        state.now(),
        &request.id,
        request.relay_state.as_deref(),
    );
    Ok(Json(json!({
        "realm": name,
        "invalidated": invalidated,
        "redirect": redirect,
    })))
}

/// The IdP's LogoutResponse.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SamlCompleteLogoutRequest)]
pub struct CompleteLogoutRequest {
    realm: Option<String>,
    ids: Option<Vec<String>>,
    query_string: Option<String>,
    content: Option<String>,
}

#[utoipa::path(
    post,
    path = "/_security/saml/complete_logout",
    tag = crate::openapi::SECURITY,
    request_body = CompleteLogoutRequest,
    responses(
        (status = 200, description = "The logout is complete.", body = crate::openapi::schemas::Empty),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn complete_logout(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(req): JsonBody<CompleteLogoutRequest>,
) -> ApiResult<Json<Value>> {
    let mut problems = Vec::new();
    if req.realm.as_deref().is_none_or(str::is_empty) {
        problems.push("realm may not be empty".to_owned());
    }
    if req.ids.is_none() {
        problems.push("ids may not be null".to_owned());
    }
    match (&req.query_string, &req.content) {
        (None, None) => problems.push("query_string and content may not both be empty".to_owned()),
        (Some(_), Some(_)) => {
            problems.push("query_string and content may not both present".to_owned())
        }
        _ => {}
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(&problems));
    }
    auth::require(&state, &caller, Action::SamlCompleteLogout).await?;
    let realm = choose_realm(
        &state,
        req.realm.as_deref(),
        None,
        "SamlCompleteLogoutRequest",
    )?;
    let ids = req.ids.unwrap_or_default();
    let checked = match (req.query_string, req.content) {
        (Some(query), _) => realm.check_logout_response(&query, &ids),
        (None, content) => realm.check_logout_response_post(&content.unwrap_or_default(), &ids),
    };
    checked.map_err(|e| refused(Action::SamlCompleteLogout, &realm.config.name, &e))?;
    Ok(Json(json!({})))
}
