//! `PUT /_security/api_key/{id}` and `POST /_security/api_key/_bulk_update`:
//! owners change their own keys' role descriptors, metadata and
//! expiration. The store is read on every authentication with a key (and
//! the embedded store's cache forgets updated keys before answering), so
//! an update applies at once on every node.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tessera_domain::api_key::KeyUpdate;
use tessera_domain::authn::AuthenticationType;
use tessera_domain::privilege::{Action, RoleDescriptor};
use tessera_domain::time::{millis, parse_time_value};
use tessera_domain::Authentication;
use tessera_store::api_key_updates::{KeyOwner, KeyUpdated};

use crate::api_keys::{normalized, owner_of};
use crate::audit::ConfigChange;
use crate::auth::{self, Caller};
use crate::body::{reserved_metadata_key, JsonBody};
use crate::error::{ApiError, ApiResult};
use crate::params::PathParam;
use crate::state::AppState;

/// What to change of one key; what is left out stays.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UpdateApiKeyRequest)]
pub struct UpdateRequest {
    #[schema(value_type = Option<Object>)]
    role_descriptors: Option<BTreeMap<String, RoleDescriptor>>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    /// A new lifetime from now, in Elasticsearch's time units.
    expiration: Option<String>,
}

/// What to change of several keys.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BulkUpdateApiKeyRequest)]
pub struct BulkUpdateRequest {
    ids: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    role_descriptors: Option<BTreeMap<String, RoleDescriptor>>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
    expiration: Option<String>,
}

impl BulkUpdateRequest {
    /// The keys named, and what to change of each.
    fn split(self) -> (Vec<String>, UpdateRequest) {
        let change = UpdateRequest {
            role_descriptors: self.role_descriptors,
            metadata: self.metadata,
            expiration: self.expiration,
        };
        (self.ids.unwrap_or_default(), change)
    }
}

/// Updates the caller's keys among `ids`, after the checks every update
/// makes before it reads a key: who may update, and the change itself.
/// Gives what became of each key.
async fn update_keys(
    state: &AppState,
    caller: &Authentication,
    action: Action,
    ids: &[String],
    req: UpdateRequest,
) -> ApiResult<Vec<(String, KeyUpdated)>> {
    let UpdateRequest {
        role_descriptors,
        metadata,
        expiration,
    } = req;
    let errors: Vec<String> = reserved_metadata_key(metadata.as_ref())
        .into_iter()
        .collect();
    if !errors.is_empty() {
        return Err(ApiError::validation(&errors));
    }
    let lifetime: Option<Duration> = expiration
        .as_deref()
        .map(parse_time_value)
        .transpose()
        .map_err(ApiError::illegal_argument)?;
    for d in role_descriptors.iter().flat_map(BTreeMap::values) {
        crate::roles::check_cluster_privileges(d)?;
    }
    auth::require(state, caller, action).await?;
    if caller.authentication_type == AuthenticationType::ApiKey || caller.api_key.is_some() {
        return Err(ApiError::illegal_argument(
            "authentication via API key not supported: only the owner user can update an API key",
        ));
    }
    let (username, realm) = owner_of(caller);
    let change = KeyUpdate {
        role_descriptors: role_descriptors.map(normalized),
        metadata,
        expires_at: lifetime.map(|d| state.now().saturating_add(millis(d))),
        owner: caller.clone(),
    };
    let owner = KeyOwner { username, realm };
    let now = state.now();
    Ok(state
        .store
        .update_api_keys(&owner, ids, &change, now)
        .await?)
}

fn not_found(id: &str) -> (&'static str, String) {
    (
        "resource_not_found_exception",
        format!("no API key owned by requesting user found for ID [{id}]"),
    )
}

#[utoipa::path(
    put,
    path = "/_security/api_key/{id}",
    tag = crate::openapi::SECURITY,
    params(("id" = String, Path, description = "The key's id.")),
    request_body = UpdateRequest,
    responses(
        (status = 200, description = "Whether the key changed.", body = crate::openapi::schemas::UpdatedApiKey),
        (status = 404, description = "No key of that id belongs to the caller.", body = crate::openapi::schemas::ErrorEnvelope),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathParam(id): PathParam,
    JsonBody(req): JsonBody<UpdateRequest>,
) -> ApiResult<Json<Value>> {
    let ids = std::slice::from_ref(&id);
    let outcome = update_keys(&state, &caller, Action::ApiKeyUpdate, ids, req).await?;
    match outcome.first().map(|(_, o)| *o) {
        Some(KeyUpdated::Updated) => {
            state
                .audit
                .config_change(ConfigChange::change_apikeys(std::slice::from_ref(&id)));
            Ok(Json(json!({ "updated": true })))
        }
        Some(KeyUpdated::Noop) => Ok(Json(json!({ "updated": false }))),
        Some(KeyUpdated::Refused(refusal)) => Err(ApiError::illegal_argument(refusal.reason(&id))),
        Some(KeyUpdated::NotFound) | None => {
            let (kind, reason) = not_found(&id);
            Err(ApiError::not_found(kind, reason))
        }
    }
}

#[utoipa::path(
    post,
    path = "/_security/api_key/_bulk_update",
    tag = crate::openapi::SECURITY,
    request_body = BulkUpdateRequest,
    responses(
        (status = 200, description = "Which keys changed, which were already so, and why the others could not change.", body = crate::openapi::schemas::BulkUpdatedApiKeys),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn bulk_update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(req): JsonBody<BulkUpdateRequest>,
) -> ApiResult<Json<Value>> {
    let (ids, change) = req.split();
    if ids.is_empty() {
        return Err(ApiError::validation(
            &["Field [ids] cannot be empty".into()],
        ));
    }
    if ids.iter().any(|i| i.trim().is_empty()) {
        return Err(ApiError::validation(&[
            "Field [ids] must not contain blank id".into(),
        ]));
    }
    let outcome = update_keys(&state, &caller, Action::ApiKeyBulkUpdate, &ids, change).await?;
    let (mut updated, mut noops, mut details) = (Vec::new(), Vec::new(), Map::new());
    for (id, what) in outcome {
        let error = match what {
            KeyUpdated::Updated => {
                updated.push(id);
                continue;
            }
            KeyUpdated::Noop => {
                noops.push(id);
                continue;
            }
            KeyUpdated::NotFound => not_found(&id),
            KeyUpdated::Refused(r) => ("illegal_argument_exception", r.reason(&id)),
        };
        details.insert(id, json!({ "type": error.0, "reason": error.1 }));
    }
    if !updated.is_empty() {
        state
            .audit
            .config_change(ConfigChange::change_apikeys(&updated));
    }
    let mut body = json!({ "updated": updated, "noops": noops });
    if !details.is_empty() {
        body["errors"] = json!({ "count": details.len(), "details": details });
    }
    Ok(Json(body))
}
