//! Roles: `/_security/role/…`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};
use tessera_domain::privilege::{
    self, built_in_role, Action, RoleDescriptor, BUILT_IN_ROLES, KNOWN_CLUSTER_PRIVILEGES,
};

use crate::audit::ConfigChange;
use crate::auth::{self, Caller};
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::params::{self, PathParam};
use crate::state::AppState;

fn reserved(name: &str) -> ApiError {
    ApiError::illegal_argument(format!("Role [{name}] is reserved and may not be used."))
}

/// Refuses a descriptor naming a cluster privilege Tessera does not know.
pub(crate) fn check_cluster_privileges(role: &RoleDescriptor) -> ApiResult<()> {
    match role.unknown_cluster_privilege() {
        Some(p) => Err(ApiError::illegal_argument(format!(
            "unknown cluster privilege [{p}]. a privilege must be one of the predefined cluster privilege names [{}]",
            KNOWN_CLUSTER_PRIVILEGES.join(",")
        ))),
        None => Ok(()),
    }
}

#[utoipa::path(
    method(put, post),
    path = "/_security/role/{name}",
    tag = crate::openapi::SECURITY,
    params(("name" = String, Path, description = "A role's name.")),
    request_body = Object,
    responses(
        (status = 200, description = "Created or updated.", body = crate::openapi::schemas::RoleCreated),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn put_role(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathParam(name): PathParam,
    JsonBody(role): JsonBody<RoleDescriptor>,
) -> ApiResult<Json<Value>> {
    privilege::validate_role_name(&name).map_err(|m| ApiError::validation(&[m]))?;
    let problems = role.application_problems();
    if !problems.is_empty() {
        return Err(ApiError::validation(&problems));
    }
    check_cluster_privileges(&role)?;
    if built_in_role(&name).is_some() {
        return Err(reserved(&name));
    }
    auth::require(&state, &caller, Action::RolePut).await?;
    let role = role.normalized();
    let created = state.store.put_role(&name, &role).await?;
    state.audit.config_change(ConfigChange::put_role(
        &name,
        serde_json::to_value(&role).unwrap_or_default(),
    ));
    Ok(Json(json!({ "role": { "created": created } })))
}

fn role_json(role: &RoleDescriptor) -> Value {
    let mut v = serde_json::to_value(role).expect("serialisable");
    v.as_object_mut()
        .expect("a descriptor is an object")
        .insert("transient_metadata".into(), json!({ "enabled": true }));
    v
}

#[utoipa::path(
    get,
    path = "/_security/role",
    tag = crate::openapi::SECURITY,
    responses(
        (status = 200, description = "Every role (built-in ones included), by name.", body = crate::openapi::schemas::ByName),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn get_roles(
    State(state): State<AppState>,
    Caller(caller): Caller,
    names: Option<PathParam>,
) -> ApiResult<Json<Value>> {
    auth::require(&state, &caller, Action::RoleGet).await?;
    let mut out = Map::new();
    match names {
        None => {
            for name in BUILT_IN_ROLES {
                if let Some(role) = built_in_role(name) {
                    out.insert((*name).into(), role_json(&role));
                }
            }
            for (name, role) in state.store.list_roles().await? {
                out.insert(name, role_json(&role));
            }
        }
        Some(PathParam(names)) => {
            let names = params::names(&names);
            for name in &names {
                if let Some(role) = built_in_role(name) {
                    out.insert(name.clone(), role_json(&role));
                }
            }
            for (name, role) in state.store.get_roles(&names).await? {
                out.insert(name, role_json(&role));
            }
            if out.is_empty() {
                return Err(ApiError::body(StatusCode::NOT_FOUND, json!({})));
            }
        }
    }
    Ok(Json(Value::Object(out)))
}

/// `GET /_security/role/{name}`: [`get_roles`] of the names given.
#[utoipa::path(
    get,
    path = "/_security/role/{name}",
    tag = crate::openapi::SECURITY,
    params(("name" = String, Path, description = "One or more role names, comma-separated.")),
    responses(
        (status = 200, description = "The roles named (comma-separated), by name.", body = crate::openapi::schemas::ByName),
        (status = 404, description = "None of them exists.", body = crate::openapi::schemas::Empty),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn get_role(
    state: State<AppState>,
    caller: Caller,
    names: PathParam,
) -> ApiResult<Json<Value>> {
    get_roles(state, caller, Some(names)).await
}

#[utoipa::path(
    delete,
    path = "/_security/role/{name}",
    tag = crate::openapi::SECURITY,
    params(("name" = String, Path, description = "A role's name.")),
    responses(
        (status = 200, description = "Deleted.", body = crate::openapi::schemas::Found),
        (status = 404, description = "No such role.", body = crate::openapi::schemas::Found),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn delete_role(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathParam(name): PathParam,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if built_in_role(&name).is_some() {
        return Err(reserved(&name));
    }
    auth::require(&state, &caller, Action::RoleDelete).await?;
    let found = state.store.delete_role(&name).await?;
    if found {
        state.audit.config_change(ConfigChange::delete_role(&name));
    }
    Ok(crate::users::delete_answer(found))
}
