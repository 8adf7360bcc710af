//! `POST /_security/saml/prepare` and `POST /_security/saml/authenticate`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tessera_domain::privilege::Action;
use tessera_domain::role_mapping::UserData;
use tessera_domain::time::millis;
use tessera_domain::Authentication;
use tessera_realms::saml::requests::new_request_id;
use tessera_realms::saml::{process_response, SamlError, SamlIdentity, SamlRealm, Validation};
use tessera_store::OneTime;

use super::{choose_realm, REALM_TYPE};
use crate::auth::{self, Caller};
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::realm_login;
use crate::service::SourceRevoked;
use crate::state::AppState;

/// Which realm (or ACS) to prepare an AuthnRequest for.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SamlPrepareRequest)]
pub struct PrepareRequest {
    realm: Option<String>,
    acs: Option<String>,
    relay_state: Option<String>,
}

#[utoipa::path(
    post,
    path = "/_security/saml/prepare",
    tag = crate::openapi::SECURITY,
    request_body = PrepareRequest,
    responses(
        (status = 200, description = "The AuthnRequest to send the user to.", body = crate::openapi::schemas::SamlRedirect),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn prepare(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(req): JsonBody<PrepareRequest>,
) -> ApiResult<Json<Value>> {
    auth::require(&state, &caller, Action::SamlPrepare).await?;
    let realm = choose_realm(
        &state,
        req.realm.as_deref(),
        req.acs.as_deref(),
        "SamlPrepareAuthenticationRequest",
    )?;
    let prepared = realm
        .authn_request(&new_request_id(), state.now(), req.relay_state.as_deref())
        .map_err(|e| {
            ApiError::es(
                StatusCode::INTERNAL_SERVER_ERROR,
                "security_exception",
                e.detail,
            )
        })?;
    Ok(Json(json!({
        "realm": realm.config.name,
        "id": prepared.id,
        "redirect": prepared.redirect,
    })))
}

/// The body of a login. No `Debug`: the content is never logged.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SamlAuthenticateRequest)]
pub struct AuthenticateRequest {
    content: Option<String>,
    ids: Option<Vec<String>>,
    realm: Option<String>,
}

/// Elasticsearch's one answer to every refused Response.
fn refused(unsolicited: Option<String>) -> ApiError {
    let e = ApiError::unauthenticated(format!(
        "unable to authenticate user [<unauthenticated-saml-user>] for action [{}]",
        Action::SamlAuthenticate.name()
    ));
    match unsolicited {
        Some(id) => e.with_metadata("security.saml.unsolicited_in_response_to", id.into()),
        None => e,
    }
}

#[utoipa::path(
    post,
    path = "/_security/saml/authenticate",
    tag = crate::openapi::SECURITY,
    request_body = AuthenticateRequest,
    responses(
        (status = 200, description = "A token pair for the asserted user.", body = Object),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn authenticate(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(req): JsonBody<AuthenticateRequest>,
) -> ApiResult<Json<Value>> {
    let mut problems = Vec::new();
    if req.content.as_deref().is_none_or(str::is_empty) {
        problems.push("content is missing".to_owned());
    }
    if req.ids.is_none() {
        problems.push("ids is missing".to_owned());
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(&problems));
    }
    auth::require(&state, &caller, Action::SamlAuthenticate).await?;
    let realms = match req.realm.as_deref() {
        Some(name) => vec![choose_realm(
            &state,
            Some(name),
            None,
            "SamlAuthenticateRequest",
        )?],
        None => state.settings.saml.all(state.now()),
    };
    let content = req.content.unwrap_or_default();
    let ids = req.ids.unwrap_or_default();
    let (realm, identity) = verify(&state, realms, content, ids).await?;

    let subject = subject(&state, &realm, &identity).await?;
    let skew = millis(realm.config.allowed_clock_skew);
    // A pair may be stored once per assertion.
    let proof = OneTime {
        realm: realm.config.name.clone(),
        id: identity.assertion_id.clone(),
        keep_until: identity.not_on_or_after.saturating_add(skew),
    };
    let metadata = token_metadata(&realm, &identity);
    let granted = match realm_login::mint(&state, &caller, &subject, proof, metadata).await? {
        Ok(granted) => granted,
        Err(SourceRevoked) => {
            tracing::warn!(
                target: "tessera::security",
                event = "saml_assertion_replayed",
                realm = %realm.config.name,
                "SAML Response refused: its assertion was already used to log in"
            );
            state
                .metrics
                .saml_response(&realm.config.name, "assertion_replayed");
            return Err(refused(None));
        }
    };
    state.metrics.saml_response(&realm.config.name, "success");
    Ok(Json(realm_login::answer(
        &granted,
        Some(&realm.config.name),
    )))
}

/// Verifies the Response against each candidate realm in chain order
/// (off the async threads, in the bounded lane of password hashing:
/// signatures and decryption are CPU work, and a flood of Responses must
/// queue). The first refusal is what the log and the metric report.
async fn verify(
    state: &AppState,
    realms: Vec<Arc<SamlRealm>>,
    content: String,
    ids: Vec<String>,
) -> ApiResult<(Arc<SamlRealm>, SamlIdentity)> {
    let now = state.now();
    let outcome = state
        .hash_blocking(move || {
            let mut first: Option<(Arc<SamlRealm>, SamlError)> = None;
            for realm in realms {
                match process_response(
                    &realm,
                    &content,
                    Validation {
                        ids: &ids,
                        now_ms: now,
                    },
                ) {
                    Ok(identity) => return Ok((realm, identity)),
                    Err(e) => {
                        first.get_or_insert((realm, e));
                    }
                }
            }
            Err(first)
        })
        .await
        .ok_or_else(|| ApiError::internal("the SAML verification panicked"))?;
    match outcome {
        Ok(found) => Ok(found),
        Err(None) => Err(ApiError::bad_request(
            "security_exception",
            "Cannot find any matching realm for [SamlAuthenticateRequest{realmName=null}]",
        )),
        Err(Some((realm, e))) => {
            let (name, rule) = (&realm.config.name, e.rule.as_str());
            realm_login::log_refusal(
                "saml_response_refused",
                name,
                rule,
                &e.detail,
                "SAML Response refused",
            );
            state.metrics.saml_response(name, rule);
            Err(refused(e.unsolicited_in_response_to))
        }
    }
}

/// The user a Response names, as `_authenticate` will show it: roles from
/// the role mappings, NameID and (if configured) attributes as metadata.
async fn subject(
    state: &AppState,
    realm: &SamlRealm,
    id: &SamlIdentity,
) -> ApiResult<Authentication> {
    let mut metadata = Map::new();
    if realm.config.populate_user_metadata {
        for (key, values) in id.attribute_metadata() {
            metadata.insert(key, json!(values));
        }
    }
    metadata.insert("saml_nameid".into(), json!(id.nameid));
    metadata.insert("saml_nameid_format".into(), json!(id.nameid_format));
    let user = UserData {
        username: id.principal.clone(),
        dn: id.dn.clone(),
        groups: id.groups.clone(),
        realm_name: realm.config.name.clone(),
        metadata,
    };
    realm_login::subject(state, REALM_TYPE, user, id.name.clone(), id.mail.clone()).await
}

/// What the pair keeps for logout (Elasticsearch's token metadata keys).
fn token_metadata(realm: &SamlRealm, id: &SamlIdentity) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("saml_nameid_val".into(), json!(id.nameid));
    m.insert("saml_nameid_fmt".into(), json!(id.nameid_format));
    m.insert("saml_nameid_qual".into(), json!(id.nameid_qualifier));
    m.insert("saml_nameid_sp_qual".into(), json!(id.nameid_sp_qualifier));
    m.insert("saml_session".into(), json!(id.session_index));
    m.insert("saml_realm".into(), json!(realm.config.name));
    m
}
