//! `POST /_security/oidc/prepare` and `POST /_security/oidc/authenticate`.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tessera_domain::privilege::Action;
use tessera_domain::time::millis;
use tessera_domain::Authentication;
use tessera_realms::identity::Identity;
use tessera_realms::oidc::claims::{identity, merge_userinfo};
use tessera_realms::oidc::flow::{authorization_url, callback_code, random_value};
use tessera_realms::oidc::{OidcError, Rule};
use tessera_store::OneTime;
use zeroize::Zeroizing;

use super::{realm_named, refused, OidcRealm, ID_TOKEN_HINT, OIDC_REALM, REALM_TYPE};
use crate::auth::{self, Caller};
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::realm_login;
use crate::service::SourceRevoked;
use crate::state::AppState;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OidcPrepareRequest)]
pub struct PrepareRequest {
    realm: Option<String>,
    iss: Option<String>,
    login_hint: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

#[utoipa::path(
    post,
    path = "/_security/oidc/prepare",
    tag = crate::openapi::SECURITY,
    request_body = PrepareRequest,
    responses(
        (status = 200, description = "The authorization request to send the user to, with its state and nonce.", body = Object),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn prepare(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(req): JsonBody<PrepareRequest>,
) -> ApiResult<Json<Value>> {
    // Elasticsearch's request validation: exactly one of realm and issuer.
    enum Named<'a> {
        Realm(&'a str),
        Issuer(&'a str),
    }
    let named = match (given(&req.realm), given(&req.iss)) {
        (Some(name), None) => Named::Realm(name),
        (None, Some(iss)) => Named::Issuer(iss),
        (None, None) => {
            return Err(ApiError::validation(&[
                "one of [realm, issuer] must be provided".to_owned(),
            ]))
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(&[
                "only one of [realm, issuer] can be provided in the same request".to_owned(),
            ]))
        }
    };
    auth::require(&state, &caller, Action::OidcPrepare).await?;
    let realm = match named {
        Named::Realm(name) => realm_named(&state, name)?,
        Named::Issuer(iss) => state.settings.oidc.by_issuer(iss).ok_or_else(|| {
            ApiError::bad_request(
                "security_exception",
                format!("Cannot find OpenID Connect realm with issuer [{iss}]"),
            )
        })?,
    };
    let provider = realm.provider(state.now()).await.map_err(|e| {
        tracing::warn!(
            realm = %realm.config.name,
            reason = %e.detail,
            "OpenID Connect prepare: the provider's endpoints are not known"
        );
        ApiError::es(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "security_exception",
            format!(
                "the OpenID Connect provider of realm [{}] is not available",
                realm.config.name
            ),
        )
    })?;
    let st = given(&req.state).map_or_else(random_value, str::to_owned);
    let nonce = given(&req.nonce).map_or_else(random_value, str::to_owned);
    let redirect = authorization_url(
        &realm.config,
        &provider.endpoints.authorization,
        &st,
        &nonce,
        given(&req.login_hint),
    );
    Ok(Json(json!({
        "redirect": redirect,
        "state": st,
        "nonce": nonce,
        "realm": realm.config.name,
    })))
}

/// The body of a login. No `Debug`: the callback URL carries the code.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = OidcAuthenticateRequest)]
pub struct AuthenticateRequest {
    #[schema(value_type = Option<String>)]
    redirect_uri: Option<Zeroizing<String>>,
    state: Option<String>,
    nonce: Option<String>,
    realm: Option<String>,
}

#[utoipa::path(
    post,
    path = "/_security/oidc/authenticate",
    tag = crate::openapi::SECURITY,
    request_body = AuthenticateRequest,
    responses(
        (status = 200, description = "A token pair for the user the provider authenticated.", body = Object),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn authenticate(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(req): JsonBody<AuthenticateRequest>,
) -> ApiResult<Json<Value>> {
    let mut problems = Vec::new();
    if req.redirect_uri.as_deref().is_none_or(|s| s.is_empty()) {
        problems.push("redirect_uri parameter must be provided".to_owned());
    }
    if given(&req.state).is_none() {
        problems.push("state parameter must be provided".to_owned());
    }
    if given(&req.nonce).is_none() {
        problems.push("nonce parameter must be provided".to_owned());
    }
    if !problems.is_empty() {
        return Err(ApiError::validation(&problems));
    }
    auth::require(&state, &caller, Action::OidcAuthenticate).await?;
    let callback = req.redirect_uri.unwrap_or_default();
    let realm = match given(&req.realm) {
        Some(name) => realm_named(&state, name)?,
        None => state
            .settings
            .oidc
            .by_callback(&callback)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "security_exception",
                    "Cannot find any matching OpenID Connect realm for [OpenIdConnectAuthenticateRequest{realm=null}]",
                )
            })?,
    };
    let name = realm.config.name.clone();
    let st = req.state.unwrap_or_default();
    let nonce = req.nonce.unwrap_or_default();
    let (identity, id_token, keep_until) = login(&state, &realm, &callback, &st, &nonce)
        .await
        .map_err(|e| refused(&state, &name, &e))?;

    let subject = subject(&state, &realm, &identity).await?;
    // One ID token mints at most one pair, until it has expired anyway.
    let proof = OneTime {
        realm: name.clone(),
        id: id_token_key(&id_token),
        keep_until,
    };
    let mut metadata = Map::new();
    metadata.insert(ID_TOKEN_HINT.into(), json!(id_token));
    metadata.insert(OIDC_REALM.into(), json!(name));
    let granted = match realm_login::mint(&state, &caller, &subject, proof, metadata).await? {
        Ok(granted) => granted,
        Err(SourceRevoked) => {
            let e = OidcError::new(Rule::Replayed, "the ID token was already used to log in");
            return Err(refused(&state, &name, &e));
        }
    };
    state.metrics.oidc_login(&name, "success");
    Ok(Json(realm_login::answer(&granted, None)))
}

/// The one-time key of an ID token: its SHA-256, so that the same token
/// (a replayed callback, a second node) cannot mint twice.
fn id_token_key(id_token: &str) -> String {
    let digest = Sha256::digest(id_token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The code flow from the callback on: state, code exchange, ID token,
/// userinfo, claims. Gives the identity, the ID token (kept for logout)
/// and how long its one-time key must be remembered.
async fn login(
    state: &AppState,
    realm: &OidcRealm,
    callback: &str,
    expected_state: &str,
    nonce: &str,
) -> Result<(Identity, String, i64), OidcError> {
    let provider = realm.provider(state.now()).await?;
    let code = callback_code(
        &realm.config,
        callback,
        expected_state,
        &realm.config.issuer,
    )?;
    let tokens = realm
        .back
        .exchange_code(&realm.config, &provider.endpoints.token, &code)
        .await?;
    let validated = super::id_token::validate(
        realm,
        &provider.jwks,
        &tokens.id_token,
        nonce,
        &tokens.access_token,
        state.now(),
    )
    .await?;
    let mut claims = validated.claims;
    if let Some(userinfo) = &provider.endpoints.userinfo {
        let info = realm.back.userinfo(userinfo, &tokens.access_token).await?;
        merge_userinfo(&mut claims, info)?;
    }
    let who = identity(&realm.config, &claims)?;
    let skew = millis(realm.config.allowed_clock_skew);
    let keep_until = validated.expires_at.saturating_add(skew);
    Ok((who, tokens.id_token, keep_until))
}

/// The user a login names, as `_authenticate` will show it: roles from
/// the role mappings, the claims as `oidc(<claim>)` metadata.
async fn subject(state: &AppState, realm: &OidcRealm, id: &Identity) -> ApiResult<Authentication> {
    let user = id.user_data(&realm.config.name);
    realm_login::subject(state, REALM_TYPE, user, id.name.clone(), id.mail.clone()).await
}
