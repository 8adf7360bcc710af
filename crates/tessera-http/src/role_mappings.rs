//! Role mappings: `/_security/role_mapping[/{name}]`, in Elasticsearch's
//! shapes. The document and its rules are the domain's
//! (`tessera_domain::role_mapping`); realms resolve a user's roles with
//! `tessera_store::role_mappings::resolve_roles`, through [`mapped_user`].

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};
use tessera_domain::authn::RealmRef;
use tessera_domain::privilege::Action;
use tessera_domain::role_mapping::{MappingError, RoleMapping, UserData};
use tessera_domain::{Authentication, AuthenticationType};

use crate::audit::ConfigChange;
use crate::auth::{self, Caller};
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::params::{self, PathParam};
use crate::state::AppState;

/// The user an external realm (SAML, OpenID Connect, JWT) authenticated,
/// as `_authenticate` shows it: the roles of the mappings that match
/// `user`, the realm as both authentication and lookup realm.
pub async fn mapped_user(
    state: &AppState,
    user: UserData,
    realm: RealmRef,
    full_name: Option<String>,
    email: Option<String>,
) -> ApiResult<Authentication> {
    let roles = tessera_store::role_mappings::resolve_roles(state.store.as_ref(), &user).await?;
    Ok(Authentication {
        username: user.username,
        roles,
        full_name,
        email,
        metadata: user.metadata,
        enabled: true,
        authentication_realm: realm.clone(),
        lookup_realm: realm,
        authentication_type: AuthenticationType::Realm,
        token: None,
        api_key: None,
    })
}

/// A refused mapping, as the Elasticsearch exception it corresponds to.
pub(crate) fn refused(e: MappingError) -> ApiError {
    match e {
        MappingError::Invalid(problems) => ApiError::validation(&problems),
        other => ApiError::bad_request(other.kind(), other.to_string()),
    }
}

/// `PUT|POST /_security/role_mapping/{name}`: `{"role_mapping":{"created":bool}}`.
#[utoipa::path(
    method(put, post),
    path = "/_security/role_mapping/{name}",
    tag = crate::openapi::SECURITY,
    params(("name" = String, Path, description = "A role mapping's name.")),
    request_body = Object,
    responses(
        (status = 200, description = "Created or updated.", body = crate::openapi::schemas::RoleMappingCreated),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn put_role_mapping(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathParam(name): PathParam,
    JsonBody(body): JsonBody<Value>,
) -> ApiResult<Json<Value>> {
    let mapping = RoleMapping::parse(&name, &body).map_err(refused)?;
    auth::require(&state, &caller, Action::RoleMappingPut).await?;
    let created = state.store.put_role_mapping(&name, &mapping).await?;
    state.settings.jwt.clear_cache();
    state.audit.config_change(ConfigChange::put_role_mapping(
        &name,
        &mapping.roles,
        mapping.enabled,
    ));
    Ok(Json(json!({ "role_mapping": { "created": created } })))
}

/// `GET /_security/role_mapping[/{n1,n2}]`: the mappings by name; 404 with
/// `{}` when names were given and none exists.
#[utoipa::path(
    get,
    path = "/_security/role_mapping",
    tag = crate::openapi::SECURITY,
    responses(
        (status = 200, description = "Every role mapping, by name.", body = crate::openapi::schemas::ByName),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn get_role_mappings(
    State(state): State<AppState>,
    Caller(caller): Caller,
    names: Option<PathParam>,
) -> ApiResult<Json<Value>> {
    auth::require(&state, &caller, Action::RoleMappingGet).await?;
    let found = match &names {
        None => state.store.list_role_mappings().await?,
        Some(PathParam(names)) => state.store.get_role_mappings(&params::names(names)).await?,
    };
    if names.is_some() && found.is_empty() {
        return Err(ApiError::body(StatusCode::NOT_FOUND, json!({})));
    }
    let mut out = Map::new();
    for (name, mapping) in found {
        out.insert(name, serde_json::to_value(&mapping).unwrap_or(Value::Null));
    }
    Ok(Json(Value::Object(out)))
}

/// `DELETE /_security/role_mapping/{name}`: `{"found":true}`, or 404 with
/// `{"found":false}`.
/// `GET /_security/role_mapping/{name}`: [`get_role_mappings`] of the
/// names given.
#[utoipa::path(
    get,
    path = "/_security/role_mapping/{name}",
    tag = crate::openapi::SECURITY,
    params(("name" = String, Path, description = "One or more mapping names, comma-separated.")),
    responses(
        (status = 200, description = "The mappings named (comma-separated), by name.", body = crate::openapi::schemas::ByName),
        (status = 404, description = "None of them exists.", body = crate::openapi::schemas::Empty),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn get_role_mapping(
    state: State<AppState>,
    caller: Caller,
    names: PathParam,
) -> ApiResult<Json<Value>> {
    get_role_mappings(state, caller, Some(names)).await
}

#[utoipa::path(
    delete,
    path = "/_security/role_mapping/{name}",
    tag = crate::openapi::SECURITY,
    params(("name" = String, Path, description = "A role mapping's name.")),
    responses(
        (status = 200, description = "Deleted.", body = crate::openapi::schemas::Found),
        (status = 404, description = "No such mapping.", body = crate::openapi::schemas::Found),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn delete_role_mapping(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathParam(name): PathParam,
) -> ApiResult<(StatusCode, Json<Value>)> {
    auth::require(&state, &caller, Action::RoleMappingDelete).await?;
    let found = state.store.delete_role_mapping(&name).await?;
    state.settings.jwt.clear_cache();
    if found {
        state
            .audit
            .config_change(ConfigChange::delete_role_mapping(&name));
    }
    Ok(crate::users::delete_answer(found))
}
