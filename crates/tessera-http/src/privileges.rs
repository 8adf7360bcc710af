//! Application privileges: `/_security/privilege…` (besides `_builtin`,
//! in `node.rs`).
//!
//! Writing needs `manage_security`, reading `read_security`, or the global
//! privilege to manage the applications concerned
//! (`global.application.manage.applications`, which `kibana_system` holds
//! for `kibana-*`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};
use tessera_domain::privilege::patterns::Pattern;
use tessera_domain::privilege::{Action, ApplicationPrivilege};
use tessera_domain::Authentication;

use crate::audit::ConfigChange;
use crate::auth::{self, Caller};
use crate::body::JsonBody;
use crate::error::{ApiError, ApiResult};
use crate::has_privileges::caller_permissions;
use crate::params::{self, PathParam, PathParams};
use crate::state::AppState;

/// Refuses with the 403 of `action` unless the caller holds it, or may
/// manage every one of `applications` (never when `applications` is
/// empty: "every application").
async fn require_for(
    state: &AppState,
    caller: &Authentication,
    action: Action,
    applications: &[String],
) -> ApiResult<()> {
    if !applications.is_empty() && !auth::holds(state, caller, action).await? {
        let layers = caller_permissions(state, caller).await?;
        let managed = applications
            .iter()
            .all(|a| layers.iter().all(|l| l.manages_application(a)));
        if managed {
            state.audit.access_granted(caller, action);
            return Ok(());
        }
    }
    auth::require(state, caller, action).await
}

/// Reads `{app: {name: {actions, metadata}}}`; a malformed body is a
/// parse error naming the place, invalid names and actions are a
/// validation failure listing every problem.
fn parse_body(body: Map<String, Value>) -> ApiResult<Vec<ApplicationPrivilege>> {
    let mut out = Vec::new();
    for (application, privileges) in body {
        let Value::Object(privileges) = privileges else {
            return Err(ApiError::parse(format!(
                "failed to parse privileges for application [{application}]: expected an object"
            )));
        };
        for (name, p) in privileges {
            out.push(parse_privilege(&application, name, p)?);
        }
    }
    let problems: Vec<String> = out
        .iter()
        .flat_map(ApplicationPrivilege::problems)
        .collect();
    if !problems.is_empty() {
        return Err(ApiError::validation(&problems));
    }
    if out.is_empty() {
        return Err(ApiError::validation(&[
            "At least one application privilege must be provided".into(),
        ]));
    }
    Ok(out)
}

fn parse_privilege(application: &str, name: String, p: Value) -> ApiResult<ApplicationPrivilege> {
    let failed = |why: String| {
        ApiError::parse(format!(
            "failed to parse application privilege [{application}:{name}]: {why}"
        ))
    };
    let Value::Object(fields) = p else {
        return Err(failed("expected an object".into()));
    };
    let mut actions = None;
    let mut metadata = Map::new();
    for (field, value) in fields {
        match (field.as_str(), value) {
            ("actions", Value::Array(list)) => {
                let list: Option<Vec<String>> = list
                    .into_iter()
                    .map(|a| a.as_str().map(str::to_owned))
                    .collect();
                actions = Some(list.ok_or_else(|| failed("[actions] must be strings".into()))?);
            }
            ("metadata", Value::Object(m)) => metadata = m,
            ("application", Value::String(a)) if a == application => {}
            ("name", Value::String(n)) if n == name => {}
            ("application" | "name", v) => {
                return Err(ApiError::illegal_argument(format!(
                    "field [{field}] of the privilege body [{v}] does not match [{}]",
                    if field == "name" { &name } else { application }
                )))
            }
            ("actions" | "metadata", _) => {
                return Err(failed(format!("[{field}] has the wrong type")))
            }
            (other, _) => return Err(failed(format!("unknown field [{other}]"))),
        }
    }
    let actions = actions.ok_or_else(|| failed("[actions] is required".into()))?;
    Ok(ApplicationPrivilege {
        application: application.to_owned(),
        name,
        actions,
        metadata,
    })
}

/// `PUT|POST /_security/privilege`: creates or replaces application
/// privileges.
#[utoipa::path(
    method(put, post),
    path = "/_security/privilege",
    tag = crate::openapi::SECURITY,
    request_body(content = Object, description = "`{application: {name: {actions, metadata}}}`."),
    responses(
        (status = 200, description = "`{application: {name: {created}}}`.", body = crate::openapi::schemas::ByName),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn put_privileges(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    let privileges = parse_body(body)?;
    let mut applications: Vec<String> = privileges.iter().map(|p| p.application.clone()).collect();
    applications.dedup();
    require_for(&state, &caller, Action::PrivilegePut, &applications).await?;
    let created = state.store.put_application_privileges(&privileges).await?;
    state
        .audit
        .config_change(ConfigChange::put_privileges(privileges.iter().map(|p| {
            (
                p.application.as_str(),
                p.name.as_str(),
                p.actions.as_slice(),
            )
        })));
    let mut out = Map::new();
    for (p, created) in privileges.iter().zip(created) {
        let app = out
            .entry(p.application.clone())
            .or_insert_with(|| json!({}));
        app[&p.name] = json!({ "created": created });
    }
    Ok(Json(Value::Object(out)))
}

fn by_application(found: Vec<ApplicationPrivilege>) -> Value {
    let mut out = Map::new();
    for p in found {
        let app = out
            .entry(p.application.clone())
            .or_insert_with(|| json!({}));
        app[&p.name] = serde_json::to_value(&p).unwrap_or_default();
    }
    Value::Object(out)
}

/// `GET /_security/privilege`: every application privilege.
#[utoipa::path(
    get,
    path = "/_security/privilege",
    tag = crate::openapi::SECURITY,
    responses(
        (status = 200, description = "By application, then name.", body = crate::openapi::schemas::ByName),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn get_all_privileges(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Value>> {
    auth::require(&state, &caller, Action::PrivilegeGet).await?;
    Ok(Json(by_application(
        state.store.list_application_privileges().await?,
    )))
}

/// The privileges of the applications `apps` names (comma-separated,
/// trailing wildcards) with one of `names` (all when `None`). As in
/// Elasticsearch, finding none is a 404 `{}` only when names were asked
/// for, and `{}` otherwise.
async fn get_some(
    state: &AppState,
    caller: &Authentication,
    apps: &str,
    names: Option<&str>,
) -> ApiResult<Json<Value>> {
    let apps = params::names(apps);
    require_for(state, caller, Action::PrivilegeGet, &apps).await?;
    let patterns: Vec<Pattern> = apps.iter().map(|a| Pattern::wildcard(a)).collect();
    let names = names.map(params::names);
    let found: Vec<ApplicationPrivilege> = state
        .store
        .list_application_privileges()
        .await?
        .into_iter()
        .filter(|p| patterns.iter().any(|a| a.covers(&p.application)))
        .filter(|p| names.as_ref().is_none_or(|n| n.contains(&p.name)))
        .collect();
    if found.is_empty() && names.is_some() {
        return Err(ApiError::body(StatusCode::NOT_FOUND, json!({})));
    }
    Ok(Json(by_application(found)))
}

/// `GET /_security/privilege/{application}`: the privileges of one or
/// more applications.
#[utoipa::path(
    get,
    path = "/_security/privilege/{application}",
    tag = crate::openapi::SECURITY,
    params(("application" = String, Path, description = "Application names, comma-separated; a trailing `*` is a wildcard.")),
    responses(
        (status = 200, description = "By application, then name (`{}` when there is none).", body = crate::openapi::schemas::ByName),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn get_application(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathParam(apps): PathParam,
) -> ApiResult<Json<Value>> {
    get_some(&state, &caller, &apps, None).await
}

/// `GET /_security/privilege/{application}/{name}`: named privileges.
#[utoipa::path(
    get,
    path = "/_security/privilege/{application}/{name}",
    tag = crate::openapi::SECURITY,
    params(
        ("application" = String, Path, description = "Application names, comma-separated."),
        ("name" = String, Path, description = "Privilege names, comma-separated."),
    ),
    responses(
        (status = 200, description = "By application, then name.", body = crate::openapi::schemas::ByName),
        (status = 404, description = "None found.", body = crate::openapi::schemas::Empty),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn get_named(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathParams((apps, names)): PathParams<(String, String)>,
) -> ApiResult<Json<Value>> {
    get_some(&state, &caller, &apps, Some(&names)).await
}

/// `DELETE /_security/privilege/{application}/{name}`: deletes named
/// privileges of one application; 404 when none of them existed.
#[utoipa::path(
    delete,
    path = "/_security/privilege/{application}/{name}",
    tag = crate::openapi::SECURITY,
    params(
        ("application" = String, Path, description = "An application's name."),
        ("name" = String, Path, description = "Privilege names, comma-separated."),
    ),
    responses(
        (status = 200, description = "`{application: {name: {found}}}`.", body = crate::openapi::schemas::ByName),
        (status = 404, description = "None of them existed.", body = crate::openapi::schemas::ByName),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn delete_privileges(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathParams((application, names)): PathParams<(String, String)>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let names = params::names(&names);
    require_for(
        &state,
        &caller,
        Action::PrivilegeDelete,
        std::slice::from_ref(&application),
    )
    .await?;
    let deleted = state
        .store
        .delete_application_privileges(&application, &names)
        .await?;
    if !deleted.is_empty() {
        state
            .audit
            .config_change(ConfigChange::delete_privileges(&application, &deleted));
    }
    let mut found = Map::new();
    for n in &names {
        found.insert(n.clone(), json!({ "found": deleted.contains(n) }));
    }
    let status = if deleted.is_empty() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ application: found }))))
}
