//! Service accounts and their tokens: `/_security/service…`, in
//! Elasticsearch 8's shapes, and the authentication of `Bearer <service
//! token>`. The accounts, their privileges and the token format are the
//! domain's (`tessera_domain::service_account`); tokens are kept by
//! [`tessera_store::ServiceTokenStore`] and looked up on every request
//! that presents one, so a deleted token stops working on every node at
//! once.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Map, Value};
use tessera_domain::privilege::Action;
use tessera_domain::service_account::{self, PresentedServiceToken, ServiceAccount};
use tessera_domain::Authentication;
use utoipa::ToSchema;

use crate::audit::ConfigChange;
use crate::auth::{self, Caller, Provenance};
use crate::error::{ApiError, ApiResult};
use crate::params::PathParams;
use crate::state::AppState;

/// Authenticates a bearer value that parsed as a service token: the
/// account must exist and the store must hold a token of that name whose
/// secret this is. Every refusal is Elasticsearch's one 401.
pub async fn authenticate(
    state: &AppState,
    presented: PresentedServiceToken,
) -> ApiResult<(Authentication, Provenance)> {
    let refuse = || {
        state.audit.realm_authentication_failed(
            &service_account::SERVICE_ACCOUNT_REALM,
            &presented.account,
        );
        ApiError::unauthenticated(format!(
            "failed to authenticate service account [{}] with token name [{}]",
            presented.account, presented.name
        ))
    };
    let Some(account) = service_account::find(&presented.account) else {
        return Err(refuse());
    };
    let Some(hash) = state
        .store
        .find_service_token(account.principal, &presented.name)
        .await?
    else {
        return Err(refuse());
    };
    if !presented.verifies(&hash) {
        return Err(refuse());
    }
    // The account's own credential: what it mints depends on nothing
    // that can be taken back apart from it (as a password login).
    Ok((
        account.authentication(&presented.name),
        Provenance::default(),
    ))
}

/// Elasticsearch's 403 for a service account: it has no roles to name.
pub fn forbidden(action: Action, principal: &str) -> ApiError {
    ApiError::es(
        StatusCode::FORBIDDEN,
        "security_exception",
        format!(
            "action [{}] is unauthorized for service account [{principal}], this action is granted by the cluster privileges [{}]",
            action.name(),
            action.granted_by().join(",")
        ),
    )
}

/// The `{namespace}`, `{service}` and `{name}` of a route, with failures
/// in our error shape.
pub struct Params(HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> ApiResult<Self> {
        let PathParams(p) = PathParams::from_request_parts(parts, state).await?;
        Ok(Params(p))
    }
}

impl Params {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn principal(&self) -> String {
        format!(
            "{}/{}",
            self.get("namespace").unwrap_or_default(),
            self.get("service").unwrap_or_default()
        )
    }
}

fn describe(accounts: impl Iterator<Item = &'static ServiceAccount>) -> Json<Value> {
    let mut out = Map::new();
    for a in accounts {
        let descriptor = serde_json::to_value(a.role_descriptor()).unwrap_or(Value::Null);
        out.insert(a.principal.into(), json!({ "role_descriptor": descriptor }));
    }
    Json(Value::Object(out))
}

/// The service accounts a route names, by principal.
#[derive(ToSchema)]
#[schema(as = ServiceAccounts)]
pub struct AccountsSchema(pub std::collections::BTreeMap<String, Value>);

/// `{"created":true,"token":{"name","value"}}`.
#[derive(ToSchema)]
#[schema(as = CreatedServiceToken)]
pub struct CreatedSchema {
    pub created: bool,
    #[schema(value_type = Object)]
    pub token: Value,
}

/// What `_credentials` answers.
#[derive(ToSchema)]
#[schema(as = ServiceCredentials)]
pub struct CredentialsSchema {
    pub service_account: String,
    pub count: u64,
    #[schema(value_type = Object)]
    pub tokens: Value,
    #[schema(value_type = Object)]
    pub nodes_credentials: Value,
}

/// `GET /_security/service`: every service account.
#[utoipa::path(
    get,
    path = "/_security/service",
    tag = crate::openapi::SECURITY,
    responses(
        (status = 200, description = "Every service account with its role descriptor.", body = AccountsSchema),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn get_all(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Value>> {
    auth::require(&state, &caller, Action::ServiceAccountGet).await?;
    Ok(describe(service_account::ACCOUNTS.iter()))
}

/// `GET /_security/service/{namespace}`: the namespace's accounts (`{}`
/// when there are none).
#[utoipa::path(
    get,
    path = "/_security/service/{namespace}",
    tag = crate::openapi::SECURITY,
    params(("namespace" = String, Path, description = "A namespace (`elastic`).")),
    responses(
        (status = 200, description = "The namespace's service accounts; `{}` for none.", body = AccountsSchema),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn get_namespace(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    auth::require(&state, &caller, Action::ServiceAccountGet).await?;
    let namespace = params.get("namespace").unwrap_or_default();
    Ok(describe(service_account::ACCOUNTS.iter().filter(|a| {
        a.principal
            .split_once('/')
            .is_some_and(|(ns, _)| ns == namespace)
    })))
}

/// `GET /_security/service/{namespace}/{service}`: one account (`{}` when
/// it does not exist).
#[utoipa::path(
    get,
    path = "/_security/service/{namespace}/{service}",
    tag = crate::openapi::SECURITY,
    params(
        ("namespace" = String, Path, description = "A namespace (`elastic`)."),
        ("service" = String, Path, description = "A service (`kibana`, `fleet-server`, …)."),
    ),
    responses(
        (status = 200, description = "The service account; `{}` when it does not exist.", body = AccountsSchema),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn get_one(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    auth::require(&state, &caller, Action::ServiceAccountGet).await?;
    Ok(describe(
        service_account::find(&params.principal()).into_iter(),
    ))
}

fn valid_name(name: &str) -> ApiResult<()> {
    service_account::validate_token_name(name).map_err(|m| ApiError::validation(&[m]))
}

async fn create(
    state: &AppState,
    caller: &Authentication,
    params: &Params,
    name: String,
) -> ApiResult<Json<Value>> {
    valid_name(&name)?;
    auth::require(state, caller, Action::ServiceTokenCreate).await?;
    let principal = params.principal();
    let Some(account) = service_account::find(&principal) else {
        return Err(ApiError::illegal_argument(format!(
            "service account [{principal}] does not exist"
        )));
    };
    let minted = service_account::mint(account, &name, state.now());
    if !state.store.create_service_token(&minted.record).await? {
        return Err(ApiError::es(
            StatusCode::CONFLICT,
            "version_conflict_engine_exception",
            format!(
                "[service_account_token-{principal}/{name}]: version conflict, document already exists (current version [1])"
            ),
        ));
    }
    state
        .audit
        .config_change(ConfigChange::service_token(true, account.principal, &name));
    Ok(Json(json!({
        "created": true,
        "token": { "name": name, "value": minted.value.expose() },
    })))
}

/// `POST /_security/service/{namespace}/{service}/credential/token`: a
/// token with a generated name (`token_…`). The value is shown only here.
#[utoipa::path(
    post,
    path = "/_security/service/{namespace}/{service}/credential/token",
    tag = crate::openapi::SECURITY,
    params(
        ("namespace" = String, Path, description = "A namespace (`elastic`)."),
        ("service" = String, Path, description = "A service (`kibana`, `fleet-server`, …)."),
    ),
    responses(
        (status = 200, description = "The new token, its value shown once.", body = CreatedSchema),
        (status = 409, description = "The account has a token of that name.", body = crate::openapi::schemas::ErrorEnvelope),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn create_generated(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    create(
        &state,
        &caller,
        &params,
        service_account::generated_token_name(),
    )
    .await
}

/// `POST|PUT /_security/service/{namespace}/{service}/credential/token/{name}`.
#[utoipa::path(
    method(post, put),
    path = "/_security/service/{namespace}/{service}/credential/token/{name}",
    tag = crate::openapi::SECURITY,
    params(
        ("namespace" = String, Path, description = "A namespace (`elastic`)."),
        ("service" = String, Path, description = "A service (`kibana`, `fleet-server`, …)."),
        ("name" = String, Path, description = "The token's name: `[a-zA-Z0-9-_]`, 1 to 256, not starting with `_`."),
    ),
    responses(
        (status = 200, description = "The new token, its value shown once.", body = CreatedSchema),
        (status = 409, description = "The account has a token of that name.", body = crate::openapi::schemas::ErrorEnvelope),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn create_named(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    let name = params.get("name").unwrap_or_default().to_owned();
    create(&state, &caller, &params, name).await
}

/// `DELETE /_security/service/{namespace}/{service}/credential/token/{name}`:
/// `{"found":true}`, or 404 with `{"found":false}`. Once answered, the
/// token authenticates nowhere.
#[utoipa::path(
    delete,
    path = "/_security/service/{namespace}/{service}/credential/token/{name}",
    tag = crate::openapi::SECURITY,
    params(
        ("namespace" = String, Path, description = "A namespace (`elastic`)."),
        ("service" = String, Path, description = "A service (`kibana`, `fleet-server`, …)."),
        ("name" = String, Path, description = "The token's name."),
    ),
    responses(
        (status = 200, description = "Deleted.", body = crate::openapi::schemas::Found),
        (status = 404, description = "No such token.", body = crate::openapi::schemas::Found),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Params,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let name = params.get("name").unwrap_or_default();
    valid_name(name)?;
    auth::require(&state, &caller, Action::ServiceTokenDelete).await?;
    let found = match service_account::find(&params.principal()) {
        Some(account) => {
            state
                .store
                .delete_service_token(account.principal, name)
                .await?
        }
        None => false,
    };
    if found {
        let principal = params.principal();
        state
            .audit
            .config_change(ConfigChange::service_token(false, &principal, name));
    }
    Ok(crate::users::delete_answer(found))
}

/// `GET /_security/service/{namespace}/{service}/_credentials`: the
/// account's tokens by name (never their values).
#[utoipa::path(
    get,
    path = "/_security/service/{namespace}/{service}/_credentials",
    tag = crate::openapi::SECURITY,
    params(
        ("namespace" = String, Path, description = "A namespace (`elastic`)."),
        ("service" = String, Path, description = "A service (`kibana`, `fleet-server`, …)."),
    ),
    responses(
        (status = 200, description = "The account's tokens.", body = CredentialsSchema),
        (status = 404, description = "No such service account.", body = crate::openapi::schemas::ErrorEnvelope),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn credentials(
    State(state): State<AppState>,
    Caller(caller): Caller,
    params: Params,
) -> ApiResult<Json<Value>> {
    auth::require(&state, &caller, Action::ServiceCredentialsGet).await?;
    let principal = params.principal();
    let Some(account) = service_account::find(&principal) else {
        return Err(ApiError::not_found(
            "resource_not_found_exception",
            format!("service account [{principal}] does not exist"),
        ));
    };
    let tokens = state.store.list_service_tokens(account.principal).await?;
    let by_name: Map<String, Value> = tokens.iter().map(|t| (t.name.clone(), json!({}))).collect();
    Ok(Json(json!({
        "service_account": account.principal,
        "count": tokens.len(),
        "tokens": by_name,
        "nodes_credentials": {
            "_nodes": { "total": 1, "successful": 1, "failed": 0 },
            "file_tokens": {},
        },
    })))
}
