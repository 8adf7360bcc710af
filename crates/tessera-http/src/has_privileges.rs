//! What a caller may do: `/_security/user/_has_privileges`,
//! `/_security/user/{username}/_has_privileges` and
//! `/_security/user/_privileges`, and the role resolution they share with
//! the application privilege API.
//!
//! A caller's privileges are one or two layers of role descriptors: its
//! roles (built-in ones by their definition, the others from the store),
//! or, for an API key with role descriptors of its own, those descriptors
//! and then its owner's roles; a privilege is held when every layer holds
//! it (Elasticsearch's limited-by roles).

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Map, Value};
use tessera_domain::privilege::check::{user_privileges, CheckResult};
use tessera_domain::privilege::{self, Action, Permissions, PrivilegesCheck, RoleDescriptor};
use tessera_domain::Authentication;

use crate::auth::{self, Caller};
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::params::PathParam;
use crate::state::AppState;

/// The descriptors of `names`: built-in roles by their definition, the
/// others from the store (unknown names give nothing).
pub(crate) async fn role_descriptors(
    state: &AppState,
    names: &[String],
) -> ApiResult<Vec<RoleDescriptor>> {
    Ok(named_role_descriptors(state, names)
        .await?
        .into_iter()
        .map(|(_, d)| d)
        .collect())
}

/// [`role_descriptors`] with each descriptor's role name.
pub(crate) async fn named_role_descriptors(
    state: &AppState,
    names: &[String],
) -> ApiResult<Vec<(String, RoleDescriptor)>> {
    let mut out: Vec<(String, RoleDescriptor)> = names
        .iter()
        .filter_map(|n| privilege::built_in_role(n).map(|d| (n.clone(), d)))
        .collect();
    let stored: Vec<String> = names
        .iter()
        .filter(|n| privilege::built_in_role(n).is_none())
        .cloned()
        .collect();
    if !stored.is_empty() {
        out.extend(state.store.get_roles(&stored).await?);
    }
    Ok(out)
}

/// The caller's layers of descriptors (see the module's documentation).
pub(crate) async fn caller_descriptors(
    state: &AppState,
    auth: &Authentication,
) -> ApiResult<Vec<Vec<RoleDescriptor>>> {
    let Some(key_ref) = &auth.api_key else {
        return Ok(vec![role_descriptors(state, &auth.roles).await?]);
    };
    let Some(key) = state.store.get_api_key(&key_ref.id).await? else {
        return Ok(vec![Vec::new()]);
    };
    let owner = role_descriptors(state, &key.owner.roles).await?;
    if key.role_descriptors.is_empty() {
        Ok(vec![owner])
    } else {
        Ok(vec![key.role_descriptors.into_values().collect(), owner])
    }
}

/// The caller's layers as permissions.
pub(crate) async fn caller_permissions(
    state: &AppState,
    auth: &Authentication,
) -> ApiResult<Vec<Permissions>> {
    Ok(caller_descriptors(state, auth)
        .await?
        .iter()
        .map(Permissions::of)
        .collect())
}

/// `_has_privileges`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct HasPrivilegesAnswer {
    username: String,
    has_all_requested: bool,
    #[schema(value_type = Object)]
    cluster: Map<String, Value>,
    /// By index name, then privilege.
    #[schema(value_type = Object)]
    index: Map<String, Value>,
    /// By application, then resource, then privilege.
    #[schema(value_type = Object)]
    application: Map<String, Value>,
}

/// What `_has_privileges` is asked: `cluster`, `index`, `application`.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "a schema of the OpenAPI document only")]
pub struct HasPrivilegesRequest {
    cluster: Option<Vec<String>>,
    /// `{names, privileges, allow_restricted_indices?}` entries.
    #[schema(value_type = Option<Vec<Object>>)]
    index: Option<Vec<Object>>,
    /// `{application, privileges, resources}` entries.
    #[schema(value_type = Option<Vec<Object>>)]
    application: Option<Vec<Object>>,
}

/// Any JSON object.
type Object = Value;

async fn answer(
    state: &AppState,
    username: String,
    layers: Vec<Permissions>,
    check: PrivilegesCheck,
) -> ApiResult<Json<HasPrivilegesAnswer>> {
    if let Some(m) = check.invalid() {
        return Err(ApiError::validation(&[m]));
    }
    if let Some(m) = check.problem() {
        return Err(ApiError::illegal_argument(m));
    }
    let defined = if check.application.is_empty() {
        Vec::new()
    } else {
        state.store.list_application_privileges().await?
    };
    let CheckResult {
        has_all_requested,
        cluster,
        index,
        application,
    } = check.evaluate(&layers, &defined);
    Ok(Json(HasPrivilegesAnswer {
        username,
        has_all_requested,
        cluster,
        index,
        application,
    }))
}

/// `GET|POST /_security/user/_has_privileges`: whether the caller holds
/// the privileges asked. Any authenticated caller may ask about itself.
#[utoipa::path(
    method(get, post),
    path = "/_security/user/_has_privileges",
    tag = crate::openapi::SECURITY,
    request_body = HasPrivilegesRequest,
    responses(
        (status = 200, description = "Each privilege asked, held or not.", body = HasPrivilegesAnswer),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn has_privileges(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(check): JsonBody<PrivilegesCheck>,
) -> ApiResult<Json<HasPrivilegesAnswer>> {
    let layers = caller_permissions(&state, &caller).await?;
    answer(&state, caller.username, layers, check).await
}

/// `GET|POST /_security/user/{username}/_has_privileges`: as
/// [`has_privileges`] for the caller itself; for another native user, a
/// caller with `manage_security` learns what that user's roles hold.
#[utoipa::path(
    method(get, post),
    path = "/_security/user/{username}/_has_privileges",
    tag = crate::openapi::SECURITY,
    params(("username" = String, Path, description = "A user's name.")),
    request_body = HasPrivilegesRequest,
    responses(
        (status = 200, description = "Each privilege asked, held or not.", body = HasPrivilegesAnswer),
        (status = 404, description = "No such user.", body = crate::openapi::schemas::EsError),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn has_privileges_of(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathParam(username): PathParam,
    JsonBody(check): JsonBody<PrivilegesCheck>,
) -> ApiResult<Json<HasPrivilegesAnswer>> {
    if username == caller.username {
        let layers = caller_permissions(&state, &caller).await?;
        return answer(&state, username, layers, check).await;
    }
    auth::require(&state, &caller, Action::HasPrivilegesOfOther).await?;
    let Some(user) = state.store.get_user(&username).await? else {
        return Err(ApiError::not_found(
            "resource_not_found_exception",
            format!("user [{username}] does not exist"),
        ));
    };
    let layers = vec![Permissions::of(
        &role_descriptors(&state, &user.roles).await?,
    )];
    answer(&state, username, layers, check).await
}

/// `GET /_security/user/_privileges`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct UserPrivileges {
    cluster: Vec<String>,
    #[schema(value_type = Vec<Object>)]
    global: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    indices: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    applications: Vec<Value>,
    run_as: Vec<String>,
}

/// `GET /_security/user/_privileges`: the union of the caller's roles.
#[utoipa::path(
    get,
    path = "/_security/user/_privileges",
    tag = crate::openapi::SECURITY,
    responses(
        (status = 200, description = "The caller's privileges, merged over its roles.", body = UserPrivileges),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn user_privileges_of_caller(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Value>> {
    let mut layers = caller_descriptors(&state, &caller).await?;
    if layers.len() > 1 {
        return Err(ApiError::illegal_argument(
            "Cannot retrieve privileges for API keys with assigned role descriptors. Please use the Get API key information API https://ela.st/es-api-get-api-key",
        ));
    }
    let descriptors = layers.pop().unwrap_or_default();
    let mut answer = user_privileges(&descriptors);
    // `global` lists the configurable privileges, as Elasticsearch does.
    let global: Vec<Value> = descriptors
        .iter()
        .filter_map(|d| d.global.clone())
        .collect();
    answer["global"] = json!(global);
    Ok(Json(answer))
}
