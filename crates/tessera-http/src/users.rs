//! Native-realm users: `/_security/user/…`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tessera_domain::authn::{Authentication, AuthenticationType, NATIVE_REALM};
use tessera_domain::privilege::Action;
use tessera_domain::user;
use tessera_store::UserUpsert;
use zeroize::Zeroizing;

use crate::audit::ConfigChange;
use crate::auth::{self, Caller};
use crate::body::{reserved_metadata_key, JsonBody, OptionalJsonBody};
use crate::error::{ApiError, ApiResult};
use crate::params::{self, PathParam};
use crate::state::AppState;

/// A user to create or replace.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutUserRequest {
    username: Option<String>,
    #[schema(value_type = Option<String>)]
    password: Option<Zeroizing<String>>,
    password_hash: Option<String>,
    roles: Option<Vec<String>>,
    full_name: Option<String>,
    email: Option<String>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    enabled: Option<bool>,
}

/// Validates a new password or a supplied hash and returns the hash to store.
async fn password_hash_from(
    state: &AppState,
    password: Option<Zeroizing<String>>,
    hash: Option<String>,
) -> ApiResult<Option<String>> {
    check_new_password(password.as_deref().map(|p| p.as_str()), hash.as_deref())?;
    match (password, hash) {
        (Some(pw), _) => {
            let hashed = state
                .hash_blocking(move || user::hash_password(&pw))
                .await
                .ok_or_else(|| {
                    ApiError::es(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "exception",
                        "password hashing failed",
                    )
                })?;
            Ok(Some(hashed))
        }
        (None, hash) => Ok(hash),
    }
}

/// A new password and a supplied hash, as a request gives them.
fn given<'a>(
    password: &'a Option<Zeroizing<String>>,
    hash: &'a Option<String>,
) -> (Option<&'a str>, Option<&'a str>) {
    (password.as_deref().map(|p| p.as_str()), hash.as_deref())
}

/// The checks on a new password or supplied hash that need no lookup.
pub(crate) fn check_new_password(password: Option<&str>, hash: Option<&str>) -> ApiResult<()> {
    match (password, hash) {
        (Some(_), Some(_)) => Err(ApiError::validation(&[
            "only one of [password, password_hash] can be provided".into(),
        ])),
        (Some(pw), None) => user::validate_password(pw).map_err(|m| ApiError::validation(&[m])),
        (None, Some(h)) if !user::is_supported_hash(h) => {
            Err(ApiError::illegal_argument(user::UNSUPPORTED_HASH_MESSAGE))
        }
        _ => Ok(()),
    }
}

impl PutUserRequest {
    /// The checks that need no lookup, in Elasticsearch's order (the
    /// password's come after the privilege check, in the handler).
    pub(crate) fn validate(&self, username: &str) -> ApiResult<()> {
        let mut errors = Vec::new();
        if let Err(m) = user::validate_username(username) {
            errors.push(m);
        }
        if self.roles.is_none() {
            errors.push("roles are missing".to_string());
        }
        errors.extend(reserved_metadata_key(self.metadata.as_ref()));
        if !errors.is_empty() {
            return Err(ApiError::validation(&errors));
        }
        if let Some(body_name) = &self.username {
            if body_name != username {
                return Err(ApiError::illegal_argument(format!(
                    "the username in the request body [{body_name}] does not match the username in the path [{username}]"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn new_password(&self) -> (Option<&str>, Option<&str>) {
        given(&self.password, &self.password_hash)
    }
}

#[utoipa::path(
    method(put, post),
    path = "/_security/user/{username}",
    tag = crate::openapi::SECURITY,
    params(("username" = String, Path, description = "A user's name.")),
    request_body = PutUserRequest,
    responses(
        (status = 200, description = "Created or updated.", body = crate::openapi::schemas::Created),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn put_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathParam(username): PathParam,
    JsonBody(req): JsonBody<PutUserRequest>,
) -> ApiResult<Json<Value>> {
    req.validate(&username)?;
    auth::require(&state, &caller, Action::UserPut).await?;
    let password_hash = password_hash_from(&state, req.password, req.password_hash).await?;
    let (roles, enabled) = (req.roles.unwrap_or_default(), req.enabled.unwrap_or(true));
    let change = ConfigChange::put_user(&username, enabled, &roles, password_hash.is_some());
    let created = state
        .store
        .put_user(UserUpsert {
            username: username.clone(),
            password_hash,
            roles,
            full_name: req.full_name,
            email: req.email,
            metadata: req.metadata.unwrap_or_default(),
            enabled,
            revoke_tokens: state.settings.revoke_on_user_change,
        })
        .await?;
    state.audit.config_change(change);
    state.credentials.forget(&username);
    Ok(Json(json!({ "created": created })))
}

#[utoipa::path(
    get,
    path = "/_security/user",
    tag = crate::openapi::SECURITY,
    responses(
        (status = 200, description = "Every user, by name.", body = crate::openapi::schemas::ByName),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn get_users(
    State(state): State<AppState>,
    Caller(caller): Caller,
    names: Option<PathParam>,
) -> ApiResult<Json<Value>> {
    auth::require(&state, &caller, Action::UserGet).await?;
    let mut out = Map::new();
    match names {
        None => {
            for u in state.store.list_users().await? {
                out.insert(u.username.clone(), u.to_json());
            }
        }
        Some(PathParam(names)) => {
            for name in params::names(&names) {
                if let Some(u) = state.store.get_user(&name).await? {
                    out.insert(u.username.clone(), u.to_json());
                }
            }
            if out.is_empty() {
                return Err(ApiError::body(StatusCode::NOT_FOUND, json!({})));
            }
        }
    }
    Ok(Json(Value::Object(out)))
}

/// A delete's answer: 200 with `{"found":true}`, or 404 with
/// `{"found":false}`.
pub(crate) fn delete_answer(found: bool) -> (StatusCode, Json<Value>) {
    let status = if found {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    (status, Json(json!({ "found": found })))
}

/// `GET /_security/user/{username}`: [`get_users`] of the names given.
#[utoipa::path(
    get,
    path = "/_security/user/{username}",
    tag = crate::openapi::SECURITY,
    params(("username" = String, Path, description = "One or more user names, comma-separated.")),
    responses(
        (status = 200, description = "The users named (comma-separated), by name.", body = crate::openapi::schemas::ByName),
        (status = 404, description = "None of them exists.", body = crate::openapi::schemas::Empty),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn get_user(
    state: State<AppState>,
    caller: Caller,
    names: PathParam,
) -> ApiResult<Json<Value>> {
    get_users(state, caller, Some(names)).await
}

#[utoipa::path(
    delete,
    path = "/_security/user/{username}",
    tag = crate::openapi::SECURITY,
    params(("username" = String, Path, description = "A user's name.")),
    responses(
        (status = 200, description = "Deleted.", body = crate::openapi::schemas::Found),
        (status = 404, description = "No such user.", body = crate::openapi::schemas::Found),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn delete_user(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathParam(username): PathParam,
) -> ApiResult<(StatusCode, Json<Value>)> {
    auth::require(&state, &caller, Action::UserDelete).await?;
    let found = state
        .store
        .delete_user(&username, state.settings.revoke_on_user_change, state.now())
        .await?;
    if found {
        state
            .audit
            .config_change(ConfigChange::delete_user(&username));
    }
    state.credentials.forget(&username);
    Ok(delete_answer(found))
}

/// A new password, or its hash.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    #[schema(value_type = Option<String>)]
    password: Option<Zeroizing<String>>,
    password_hash: Option<String>,
}

impl ChangePasswordRequest {
    /// A new password or hash must be given (its own checks come after
    /// the privilege check, in the handler).
    pub(crate) fn validate(&self) -> ApiResult<()> {
        if self.password.is_none() && self.password_hash.is_none() {
            return Err(ApiError::validation(&["password must be specified".into()]));
        }
        Ok(())
    }

    pub(crate) fn new_password(&self) -> (Option<&str>, Option<&str>) {
        given(&self.password, &self.password_hash)
    }
}

#[utoipa::path(
    method(put, post),
    path = "/_security/user/_password",
    tag = crate::openapi::SECURITY,
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed.", body = crate::openapi::schemas::Empty),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn change_own_password(
    state: State<AppState>,
    caller: Caller,
    body: JsonBody<ChangePasswordRequest>,
) -> ApiResult<Json<Value>> {
    change_password_of(state, caller, None, body).await
}

#[utoipa::path(
    method(put, post),
    path = "/_security/user/{username}/_password",
    tag = crate::openapi::SECURITY,
    params(("username" = String, Path, description = "A user's name.")),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed.", body = crate::openapi::schemas::Empty),
        (status = 404, description = "No such user.", body = crate::openapi::schemas::EsError),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn change_password(
    state: State<AppState>,
    caller: Caller,
    PathParam(username): PathParam,
    body: JsonBody<ChangePasswordRequest>,
) -> ApiResult<Json<Value>> {
    change_password_of(state, caller, Some(username), body).await
}

async fn change_password_of(
    State(state): State<AppState>,
    Caller(caller): Caller,
    username: Option<String>,
    JsonBody(req): JsonBody<ChangePasswordRequest>,
) -> ApiResult<Json<Value>> {
    let username = username.unwrap_or_else(|| caller.username.clone());
    req.validate()?;
    let own = username == caller.username && may_change_own_password(&caller);
    if !own {
        auth::require(&state, &caller, Action::UserChangePassword).await?;
    }
    let hash = password_hash_from(&state, req.password, req.password_hash)
        .await?
        .expect("one of them is present");
    let existed = state
        .store
        .set_password(&username, &hash, state.settings.revoke_on_user_change)
        .await?;
    if existed {
        state
            .audit
            .config_change(ConfigChange::change_password(&username));
    }
    changed(&state, &username, existed)
}

/// Whether `caller` may change its own password without the privilege
/// (Elasticsearch's same-user rule): only when it proved who it is to the
/// native realm with that password (not with a token or an API key), or,
/// running as a native user, with a realm credential of its own. A user of
/// another realm (a JWT's principal, an OAuth client) that bears a native
/// user's name is someone else.
fn may_change_own_password(caller: &Authentication) -> bool {
    let runs_as = crate::request_context::with_current(|c| c.run_by().is_some()).unwrap_or(false);
    let realm = if runs_as {
        &caller.lookup_realm
    } else {
        &caller.authentication_realm
    };
    caller.authentication_type == AuthenticationType::Realm && realm.kind == NATIVE_REALM.kind
}

#[utoipa::path(
    method(put, post),
    path = "/_security/user/{username}/_enable",
    tag = crate::openapi::SECURITY,
    params(("username" = String, Path, description = "A user's name.")),
    responses(
        (status = 200, description = "Enabled.", body = crate::openapi::schemas::Empty),
        (status = 404, description = "No such user.", body = crate::openapi::schemas::EsError),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn enable_user(
    state: State<AppState>,
    caller: Caller,
    PathParam(username): PathParam,
    _body: OptionalJsonBody<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    set_enabled(state, caller, username, true).await
}

#[utoipa::path(
    method(put, post),
    path = "/_security/user/{username}/_disable",
    tag = crate::openapi::SECURITY,
    params(("username" = String, Path, description = "A user's name.")),
    responses(
        (status = 200, description = "Disabled.", body = crate::openapi::schemas::Empty),
        (status = 404, description = "No such user.", body = crate::openapi::schemas::EsError),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn disable_user(
    state: State<AppState>,
    caller: Caller,
    PathParam(username): PathParam,
    _body: OptionalJsonBody<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    set_enabled(state, caller, username, false).await
}

/// The answer to a change of `username`'s account: `{}` once its cached
/// credentials are forgotten, or 404 when there was no such user.
fn changed(state: &AppState, username: &str, existed: bool) -> ApiResult<Json<Value>> {
    if !existed {
        return Err(ApiError::not_found(
            "resource_not_found_exception",
            format!("user [{username}] does not exist"),
        ));
    }
    state.credentials.forget(username);
    Ok(Json(json!({})))
}

async fn set_enabled(
    State(state): State<AppState>,
    Caller(caller): Caller,
    username: String,
    enabled: bool,
) -> ApiResult<Json<Value>> {
    auth::require(&state, &caller, Action::UserSetEnabled).await?;
    if username == caller.username {
        return Err(ApiError::illegal_argument(
            "users may not update the enabled status of their own account",
        ));
    }
    let existed = state
        .store
        .set_enabled(&username, enabled, state.settings.revoke_on_user_change)
        .await?;
    if existed {
        state
            .audit
            .config_change(ConfigChange::set_enabled(&username, enabled));
    }
    changed(&state, &username, existed)
}
