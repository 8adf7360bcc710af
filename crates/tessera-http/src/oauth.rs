//! The standard OAuth 2.0 endpoints, beside the Elasticsearch API:
//!
//! - `POST /oauth2/token` (RFC 6749): `client_credentials`, `password` and
//!   `refresh_token` grants for registered clients;
//! - `POST /oauth2/revoke` (RFC 7009) and `POST /oauth2/introspect`
//!   (RFC 7662);
//! - `/oauth2/register[/{client_id}[/_rotate_secret]]`: client registration
//!   (RFC 7591) and its management, by a `manage_security` administrator;
//! - `GET /.well-known/oauth-authorization-server` (RFC 8414).
//!
//! Tokens are the very records the Elasticsearch API issues: a token from
//! either API authenticates, introspects, revokes and invalidates through
//! the other. Tokens issued here record their client
//! (`{client_id, "_oauth2_client"}`) and their granted scope.
//!
//! Every failure of the token, revocation and introspection endpoints is
//! RFC 6749 §5.2's flat `{"error","error_description"}` with
//! `Cache-Control: no-store`; so are the registration endpoints' own
//! failures, while the administrator's authentication and privilege check
//! there answer in the Elasticsearch envelope like the rest of the
//! administrative API. The handlers return [`OAuthResult`]: the one
//! [`ApiError`], rendered in [`Shape::OAuth`](crate::error::Shape).

use axum::body::Body;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use tessera_domain::oauth::{
    self, AuthMethod, ClientMetadata, GrantType, MetadataInput, OAuthClientRecord, ADMIN_SCOPE,
    INTROSPECT_SCOPE,
};
use tessera_domain::privilege::Action;
use tessera_domain::refresh::RefreshError;
use tessera_domain::token::{TokenKind, TokenString};
use tessera_domain::{Authentication, Millis, TokenRecord};
use zeroize::Zeroizing;

mod client_auth;
mod error;
mod form;

use error::no_store_json;
pub(crate) use form::Form;
use form::{media_type, read_body};

use crate::audit::ConfigChange;
use crate::auth::{self, Caller, PasswordCredentials};
use crate::error::{ApiError, OAuthResult, OAuthShaped, Shape};
use crate::params::PathParam;
use crate::service::{self, Granted, Mint, Refresh, SourceRevoked};
use crate::state::AppState;
use crate::throttle::ClientIp;
use client_auth::{authenticate_client, authenticate_requester, authentication_failed, Requester};
pub(crate) use client_auth::{presented, Presented};

/// The challenge sent with a 401 `invalid_client` when the client tried
/// HTTP Basic.
pub const BASIC_CHALLENGE: &str = "Basic realm=\"tessera\"";

// ---------------------------------------------------------------------
// POST /oauth2/token
// ---------------------------------------------------------------------

/// `POST /oauth2/token` (RFC 6749 §4.3, §4.4, §6).
#[utoipa::path(
    post,
    path = "/oauth2/token",
    tag = crate::openapi::OAUTH,
    security(("oauth2_client" = [])),
    request_body(content = crate::openapi::schemas::TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A new token (RFC 6749 §5.1).", body = crate::openapi::schemas::OAuthToken),
        crate::openapi::schemas::OAuthErrors,
    )
)]
pub async fn token(
    State(state): State<AppState>,
    ClientIp(source): ClientIp,
    headers: HeaderMap,
    body: Body,
) -> OAuthResult<Response> {
    let form = Form::parse(&headers, &read_body(&state, body).await?)?;
    let client = authenticate_client(&state, source, &headers, &form).await?;
    let grant_name = form.require("grant_type")?;
    let grant = GrantType::parse(grant_name).ok_or_else(|| {
        ApiError::unsupported_grant_type(format!(
            "grant_type [{grant_name}] is not supported; supported: [{}]",
            GrantType::ALL.map(GrantType::as_str).join(", ")
        ))
    })?;
    if !client.allows_grant(grant) {
        return Err(ApiError::unauthorized_client(format!(
            "this client is not registered for grant_type [{grant_name}]"
        ))
        .into());
    }
    let requested_scope = form.get("scope");
    let issued = match grant {
        GrantType::ClientCredentials => {
            let scope = grant_scope(&client, requested_scope)?;
            let provenance = auth::Provenance::default();
            let subject = client.authentication();
            state.audit.access_granted(&subject, Action::TokenCreate);
            issue(&state, &subject, &client, scope, false, &provenance).await?
        }
        GrantType::Password => {
            let username = form.require("username")?;
            let password = form.require("password")?;
            let scope = grant_scope(&client, requested_scope)?;
            let creds = PasswordCredentials {
                username: username.to_owned(),
                password: Zeroizing::new(password.to_owned()),
            };
            let (user, hash) = auth::check_password(&state, &creds, source)
                .await?
                .ok_or_else(|| {
                    ApiError::invalid_grant(format!("unable to authenticate user [{username}]"))
                })?;
            // A refresh token only for a client that may use it.
            let with_refresh = client.allows_grant(GrantType::RefreshToken);
            let mut login = auth::Provenance::default();
            login.add_login(&state, &user.username, &hash);
            state.audit.access_granted(&user, Action::TokenCreate);
            issue(&state, &user, &client, scope, with_refresh, &login).await?
        }
        GrantType::RefreshToken => {
            let presented = form.require("refresh_token")?;
            state
                .audit
                .access_granted(&client.authentication(), Action::TokenRefresh);
            refresh(&state, &client, presented, requested_scope).await?
        }
    };
    Ok(token_response(issued))
}

fn grant_scope(
    client: &OAuthClientRecord,
    requested: Option<&str>,
) -> Result<Vec<String>, ApiError> {
    client
        .grant_scope(requested)
        .map_err(|e| ApiError::invalid_scope(e.to_string()))
}

async fn issue(
    state: &AppState,
    subject: &Authentication,
    client: &OAuthClientRecord,
    scope: Vec<String>,
    with_refresh: bool,
    provenance: &auth::Provenance,
) -> Result<Granted, ApiError> {
    let granted = service::issue(
        state,
        Mint {
            subject,
            client: client.client_ref(),
            oauth_client: Some(&client.client_id),
            scope: Some(scope),
            with_refresh,
            provenance,
            metadata: None,
        },
    )
    .await?;
    match granted {
        Ok(granted) => Ok(granted),
        // The client was deleted, or the user's password changed, while
        // the pair was minted: nothing was stored.
        Err(SourceRevoked) => {
            if state
                .store
                .get_oauth_client(&client.client_id)
                .await?
                .is_none()
            {
                return Err(authentication_failed(
                    client.metadata.token_endpoint_auth_method == AuthMethod::ClientSecretBasic,
                ));
            }
            Err(ApiError::invalid_grant(format!(
                "unable to authenticate user [{}]",
                subject.username
            )))
        }
    }
}

/// RFC 6749 §6: only the client that obtained the pair may refresh it,
/// and families, the repeat window and reuse detection apply as for the
/// Elasticsearch API. A `scope` beyond the original grant is
/// `invalid_scope`; a narrower one is accepted but the successor keeps the
/// family's scope (the pair a repeat replays must be the same), which the
/// response's `scope` states. A pair of a client deleted meanwhile is
/// refused: the deletion invalidated its family in the transaction the
/// refresh is ordered against.
async fn refresh(
    state: &AppState,
    client: &OAuthClientRecord,
    presented: &str,
    requested: Option<&str>,
) -> Result<Granted, ApiError> {
    let scope = requested
        .map(|text| {
            oauth::parse_scope(text).map_err(|e| {
                ApiError::invalid_scope(format!("the requested scope is malformed: {e}"))
            })
        })
        .transpose()?;
    let ask = Refresh {
        presented: TokenString::from_presented(presented),
        caller: client.client_ref(),
        presenter: &client.client_id,
        scope,
        registered: Some(client.metadata.scope.clone()),
    };
    service::refresh(state, ask)
        .await?
        .map_err(|refused| match refused {
            RefreshError::ScopeNotGranted { .. } | RefreshError::ScopeNoLongerRegistered { .. } => {
                ApiError::invalid_scope(refused.to_string())
            }
            _ => ApiError::invalid_grant(refused.to_string()),
        })
}

/// RFC 6749 §5.1. `scope` is always given when the granted scope is not
/// empty (it may differ from what was asked: none named means all
/// registered).
fn token_response(granted: Granted) -> Response {
    let mut body = Map::new();
    body.insert("access_token".into(), granted.pair.access.expose().into());
    body.insert("token_type".into(), "Bearer".into());
    body.insert("expires_in".into(), granted.expires_in.into());
    if let Some(rt) = &granted.pair.refresh {
        body.insert("refresh_token".into(), rt.expose().into());
    }
    if let Some(scope) = granted.scope.filter(|s| !s.is_empty()) {
        body.insert("scope".into(), scope.join(" ").into());
    }
    no_store_json(StatusCode::OK, Value::Object(body))
}

// ---------------------------------------------------------------------
// POST /oauth2/revoke and /oauth2/introspect
// ---------------------------------------------------------------------

/// The stored pair a presented token belongs to, and which half it is.
/// Tessera's token strings carry their kind, so `token_type_hint` is not
/// needed (RFC 7009 §2.1 lets a server search beyond the hint).
async fn lookup(
    state: &AppState,
    token: &TokenString,
) -> Result<Option<(TokenRecord, TokenKind)>, ApiError> {
    let (record, kind) = if let Some(hash) = token.hash_as(TokenKind::Access) {
        (state.store.find_by_access(&hash).await?, TokenKind::Access)
    } else if let Some(hash) = token.hash_as(TokenKind::Refresh) {
        (
            state.store.find_by_refresh(&hash).await?,
            TokenKind::Refresh,
        )
    } else {
        (None, TokenKind::Access)
    };
    Ok(record.map(|r| (r, kind)))
}

/// A revocation or introspection request: the authenticated requester and
/// the `token` it presents. As an extractor it reads the form body and
/// authenticates its sender, failing in RFC 6749's shape.
pub struct TokenQuery {
    requester: Requester,
    token: TokenString,
}

impl FromRequest<AppState> for TokenQuery {
    type Rejection = OAuthShaped;

    async fn from_request(request: Request, state: &AppState) -> OAuthResult<Self> {
        let (parts, body) = request.into_parts();
        let source = ClientIp::of(&parts, state);
        let form = Form::parse(&parts.headers, &read_body(state, body).await?)?;
        let requester = authenticate_requester(state, source, &parts.headers, &form).await?;
        let token = TokenString::from_presented(form.require("token")?);
        Ok(TokenQuery { requester, token })
    }
}

/// `POST /oauth2/revoke` (RFC 7009). A token that matches nothing gets
/// 200 (§2.2); a token issued to another client is refused with
/// `unauthorized_client` and left alone (§2.1); otherwise the token's
/// whole family is invalidated, as invalidation always is here.
#[utoipa::path(
    post,
    path = "/oauth2/revoke",
    tag = crate::openapi::OAUTH,
    security(("oauth2_client" = [])),
    request_body(content = crate::openapi::schemas::TokenQueryForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke (RFC 7009 §2.2)."),
        crate::openapi::schemas::OAuthErrors,
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    TokenQuery { requester, token }: TokenQuery,
) -> OAuthResult<Response> {
    let Some((record, kind)) = lookup(&state, &token).await? else {
        return Ok(StatusCode::OK.into_response());
    };
    if record.client != requester.client_ref() {
        return Err(
            ApiError::unauthorized_client("the token was not issued to this client").into(),
        );
    }
    match kind {
        TokenKind::Access => state.store.invalidate_access(&token.hash()).await?,
        TokenKind::Refresh => state.store.invalidate_refresh(&token.hash()).await?,
    };
    tracing::info!(
        target: "tessera::security",
        event = "token_revoked",
        client = %requester.name(),
        family = %record.family_id,
        "a token family was revoked through /oauth2/revoke"
    );
    Ok(StatusCode::OK.into_response())
}

fn seconds(ms: Millis) -> i64 {
    ms.div_euclid(1000)
}

/// `POST /oauth2/introspect` (RFC 7662). An access token is active while
/// it authenticates; a refresh token while it can still be used for a
/// first refresh. Only a caller allowed to see the token (see
/// [`may_introspect`]) is told so; every other caller gets
/// `{"active":false}` (§4), as for a token that matches nothing.
#[utoipa::path(
    post,
    path = "/oauth2/introspect",
    tag = crate::openapi::OAUTH,
    security(("oauth2_client" = [])),
    // A native user holding `manage_token` may introspect too.
    request_body(content = crate::openapi::schemas::TokenQueryForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The token's state (RFC 7662 §2.2).", body = crate::openapi::schemas::Introspection),
        crate::openapi::schemas::OAuthErrors,
    )
)]
pub async fn introspect(
    State(state): State<AppState>,
    TokenQuery { requester, token }: TokenQuery,
) -> OAuthResult<Response> {
    let now = state.now();
    let found = match lookup(&state, &token).await? {
        Some((record, kind)) if may_introspect(&state, &requester, &record).await? => {
            Some((record, kind))
        }
        _ => None,
    };
    let body = match found {
        Some((r, TokenKind::Access)) if r.access_usable(now) => {
            active(&state, &r, "Bearer", r.access_expires_at)
        }
        Some((r, TokenKind::Refresh)) if r.refresh_unused(now) => {
            let exp = r.refresh_expires_at.unwrap_or(r.access_expires_at);
            active(&state, &r, "refresh_token", exp)
        }
        _ => json!({ "active": false }),
    };
    Ok(no_store_json(StatusCode::OK, body))
}

/// RFC 7662 §4: a client sees the tokens issued to it; a client
/// registered with [`INTROSPECT_SCOPE`], or a native user holding
/// `manage_token` (or a privilege above it), sees every token.
async fn may_introspect(
    state: &AppState,
    requester: &Requester,
    record: &TokenRecord,
) -> Result<bool, ApiError> {
    match requester {
        Requester::Client(client) => Ok(record.client == client.client_ref()
            || client.metadata.scope.iter().any(|s| s == INTROSPECT_SCOPE)),
        Requester::User(user) => auth::holds(state, user, Action::TokenIntrospect).await,
    }
}

fn active(state: &AppState, r: &TokenRecord, token_type: &str, expires_at: Millis) -> Value {
    let mut m = Map::new();
    m.insert("active".into(), true.into());
    if let Some(scope) = r.scope.as_ref().filter(|s| !s.is_empty()) {
        m.insert("scope".into(), scope.join(" ").into());
    }
    m.insert("client_id".into(), r.client.username.clone().into());
    m.insert("username".into(), r.subject.username.clone().into());
    m.insert("token_type".into(), token_type.into());
    m.insert("exp".into(), seconds(expires_at).into());
    m.insert("iat".into(), seconds(r.created_at).into());
    m.insert("sub".into(), r.subject.username.clone().into());
    m.insert("iss".into(), state.settings.issuer.clone().into());
    Value::Object(m)
}

// ---------------------------------------------------------------------
// /oauth2/register
// ---------------------------------------------------------------------

/// The registration body: a JSON object of client metadata. Members this
/// server does not understand are ignored (RFC 7591 §2).
async fn metadata_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Map<String, Value>, ApiError> {
    let bytes = read_body(state, body).await?;
    match media_type(headers).as_deref() {
        Some("application/json") => {}
        Some(other) => {
            return Err(ApiError::invalid_request(format!(
                "Content-Type [{other}] is not supported; send application/json"
            )))
        }
        None => {
            return Err(ApiError::invalid_request(
                "the request needs Content-Type application/json",
            ))
        }
    }
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid_request(
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::invalid_request(format!(
            "the request body is not valid JSON: {e}"
        ))),
    }
}

pub(crate) fn metadata_from(map: &Map<String, Value>) -> Result<ClientMetadata, ApiError> {
    if map.contains_key("client_secret") {
        return Err(ApiError::invalid_client_metadata(
            "[client_secret] is generated by the server; rotate it with POST /oauth2/register/{client_id}/_rotate_secret",
        ));
    }
    let string = |name: &str| match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::invalid_client_metadata(format!(
            "[{name}] must be a string"
        ))),
    };
    let grant_types = match map.get("grant_types") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    ApiError::invalid_client_metadata("[grant_types] must be an array of strings")
                })?,
        ),
        Some(_) => {
            return Err(ApiError::invalid_client_metadata(
                "[grant_types] must be an array of strings",
            ))
        }
    };
    ClientMetadata::from_input(MetadataInput {
        client_name: string("client_name")?,
        grant_types,
        scope: string("scope")?,
        token_endpoint_auth_method: string("token_endpoint_auth_method")?,
    })
    .map_err(ApiError::invalid_client_metadata)
}

/// The administrator's privilege check answers in the Elasticsearch
/// envelope, like the administrative API's authentication before it.
async fn require_admin(state: &AppState, admin: &Authentication) -> Result<(), ApiError> {
    auth::require(state, admin, Action::OAuthClientManage)
        .await
        .map_err(|e| e.with_shape(Shape::Elasticsearch))
}

/// `POST /oauth2/register` (RFC 7591 §3): 201 with the new client's id,
/// its secret (shown only here and on rotation) and its metadata.
#[utoipa::path(
    post,
    path = "/oauth2/register",
    tag = crate::openapi::OAUTH,
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 201, description = "Registered: the metadata and the secret (RFC 7591 §3.2.1).", body = crate::openapi::schemas::ClientRegistration),
        crate::openapi::schemas::RegistrationErrors,
    )
)]
pub async fn register(
    State(state): State<AppState>,
    Caller(admin): Caller,
    headers: HeaderMap,
    body: Body,
) -> OAuthResult<Response> {
    require_admin(&state, &admin).await?;
    let map = metadata_body(&state, &headers, body).await?;
    if map.contains_key("client_id") {
        return Err(
            ApiError::invalid_client_metadata("[client_id] is assigned by the server").into(),
        );
    }
    let metadata = metadata_from(&map)?;
    let minted = oauth::mint_client(metadata, state.now());
    state.store.put_oauth_client(&minted.record).await?;
    state.audit.config_change(ConfigChange::create_oauth_client(
        &minted.record.client_id,
        minted.record.metadata.client_name.as_deref(),
    ));
    tracing::info!(
        target: "tessera::security",
        event = "oauth_client_registered",
        client_id = %minted.record.client_id,
        by = %admin.username,
        "an OAuth client was registered"
    );
    Ok(no_store_json(
        StatusCode::CREATED,
        minted.record.registration_json(Some(&minted.secret)),
    ))
}

/// `GET /oauth2/register`: every client, oldest first (no secrets).
#[utoipa::path(
    get,
    path = "/oauth2/register",
    tag = crate::openapi::OAUTH,
    responses(
        (status = 200, description = "Every registered client.", body = crate::openapi::schemas::ClientList),
        crate::openapi::schemas::RegistrationErrors,
    )
)]
pub async fn list_clients(
    State(state): State<AppState>,
    Caller(admin): Caller,
) -> OAuthResult<Response> {
    require_admin(&state, &admin).await?;
    let clients: Vec<Value> = state
        .store
        .list_oauth_clients()
        .await?
        .iter()
        .map(|c| c.registration_json(None))
        .collect();
    Ok(Json(json!({ "clients": clients })).into_response())
}

/// `GET /oauth2/register/{client_id}`: the client's metadata (no secret).
#[utoipa::path(
    get,
    path = "/oauth2/register/{client_id}",
    tag = crate::openapi::OAUTH,
    params(("client_id" = String, Path, description = "A registered client's id.")),
    responses(
        (status = 200, description = "The client's metadata.", body = crate::openapi::schemas::ClientRegistration),
        crate::openapi::schemas::RegistrationErrors,
    )
)]
pub async fn get_client(
    State(state): State<AppState>,
    Caller(admin): Caller,
    PathParam(client_id): PathParam,
) -> OAuthResult<Response> {
    require_admin(&state, &admin).await?;
    match state.store.get_oauth_client(&client_id).await? {
        Some(client) => Ok(Json(client.registration_json(None)).into_response()),
        None => Err(ApiError::client_not_found(&client_id).into()),
    }
}

/// `PUT /oauth2/register/{client_id}`: replaces the metadata as a whole
/// (RFC 7592 §2.2: omitted fields take their defaults); the secret stays.
#[utoipa::path(
    put,
    path = "/oauth2/register/{client_id}",
    tag = crate::openapi::OAUTH,
    params(("client_id" = String, Path, description = "A registered client's id.")),
    request_body(content = Object, content_type = "application/json"),
    responses(
        (status = 200, description = "The client's new metadata.", body = crate::openapi::schemas::ClientRegistration),
        crate::openapi::schemas::RegistrationErrors,
    )
)]
pub async fn update_client(
    State(state): State<AppState>,
    Caller(admin): Caller,
    PathParam(client_id): PathParam,
    headers: HeaderMap,
    body: Body,
) -> OAuthResult<Response> {
    require_admin(&state, &admin).await?;
    let Some(mut client) = state.store.get_oauth_client(&client_id).await? else {
        return Err(ApiError::client_not_found(&client_id).into());
    };
    let map = metadata_body(&state, &headers, body).await?;
    match map.get("client_id") {
        None | Some(Value::Null) => {}
        Some(Value::String(id)) if *id == client_id => {}
        Some(_) => {
            return Err(ApiError::invalid_client_metadata(
                "[client_id] does not match the client being updated",
            )
            .into())
        }
    }
    client.metadata = metadata_from(&map)?;
    if state.store.put_oauth_client(&client).await? {
        // Deleted between the read and the write: an update must not
        // bring it back.
        state.store.delete_oauth_client(&client_id).await?;
        return Err(ApiError::client_not_found(&client_id).into());
    }
    state.audit.config_change(ConfigChange::change_oauth_client(
        &client_id,
        client.metadata.client_name.as_deref(),
    ));
    Ok(Json(client.registration_json(None)).into_response())
}

/// `POST /oauth2/register/{client_id}/_rotate_secret`: a new secret,
/// shown once; the old one stops working at once. Tokens already issued
/// stay valid.
#[utoipa::path(
    post,
    path = "/oauth2/register/{client_id}/_rotate_secret",
    tag = crate::openapi::OAUTH,
    params(("client_id" = String, Path, description = "A registered client's id.")),
    responses(
        (status = 200, description = "The client with its new secret.", body = crate::openapi::schemas::ClientRegistration),
        crate::openapi::schemas::RegistrationErrors,
    )
)]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Caller(admin): Caller,
    PathParam(client_id): PathParam,
) -> OAuthResult<Response> {
    require_admin(&state, &admin).await?;
    let (secret, hash) = oauth::new_secret();
    if !state
        .store
        .set_oauth_client_secret(&client_id, &hash)
        .await?
    {
        return Err(ApiError::client_not_found(&client_id).into());
    }
    let Some(client) = state.store.get_oauth_client(&client_id).await? else {
        return Err(ApiError::client_not_found(&client_id).into());
    };
    state
        .audit
        .config_change(ConfigChange::change_oauth_client_secret(&client_id));
    tracing::info!(
        target: "tessera::security",
        event = "oauth_client_secret_rotated",
        client_id = %client_id,
        by = %admin.username,
        "an OAuth client's secret was rotated"
    );
    Ok(no_store_json(
        StatusCode::OK,
        client.registration_json(Some(&secret)),
    ))
}

/// `DELETE /oauth2/register/{client_id}`: 204; every token issued to the
/// client is invalidated with it (RFC 7592 §2.3).
#[utoipa::path(
    delete,
    path = "/oauth2/register/{client_id}",
    tag = crate::openapi::OAUTH,
    params(("client_id" = String, Path, description = "A registered client's id.")),
    responses(
        (status = 204, description = "Deleted, with every pair issued to it."),
        crate::openapi::schemas::RegistrationErrors,
    )
)]
pub async fn delete_client(
    State(state): State<AppState>,
    Caller(admin): Caller,
    PathParam(client_id): PathParam,
) -> OAuthResult<Response> {
    require_admin(&state, &admin).await?;
    if !state.store.delete_oauth_client(&client_id).await? {
        return Err(ApiError::client_not_found(&client_id).into());
    }
    state
        .audit
        .config_change(ConfigChange::delete_oauth_client(&client_id));
    tracing::info!(
        target: "tessera::security",
        event = "oauth_client_deleted",
        client_id = %client_id,
        by = %admin.username,
        "an OAuth client was deleted and its tokens invalidated"
    );
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---------------------------------------------------------------------
// GET /.well-known/oauth-authorization-server
// ---------------------------------------------------------------------

/// RFC 8414 metadata: only what is true. There is no authorization
/// endpoint, so no response types.
#[utoipa::path(
    get,
    path = "/.well-known/oauth-authorization-server",
    tag = crate::openapi::OAUTH,
    security(()),
    responses((status = 200, description = "RFC 8414 metadata.", body = crate::openapi::schemas::ServerMetadata))
)]
pub async fn server_metadata(State(state): State<AppState>) -> Json<Value> {
    let issuer = &state.settings.issuer;
    let methods: Vec<&str> = AuthMethod::ALL.iter().map(|m| m.as_str()).collect();
    Json(json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "registration_endpoint": format!("{issuer}/oauth2/register"),
        "scopes_supported": [ADMIN_SCOPE, INTROSPECT_SCOPE],
        "response_types_supported": [],
        "grant_types_supported": GrantType::ALL.map(GrantType::as_str),
        "token_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "introspection_endpoint_auth_methods_supported": methods,
    }))
}
