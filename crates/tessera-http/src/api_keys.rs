//! API keys: `/_security/api_key` and `Authorization: ApiKey …`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use tessera_domain::api_key::{self, ApiKeyRecord, NewKey};
use tessera_domain::authn::{AuthenticationType, API_KEY_REALM};
use tessera_domain::privilege::{Action, RoleDescriptor};
use tessera_domain::time::{millis, parse_time_value};
use tessera_domain::Authentication;
use tessera_store::{ApiKeyFilter, NameMatch};

use crate::audit::ConfigChange;
use crate::auth::{self, Caller, Minter};
use crate::body::{reserved_metadata_key, JsonBody, OptionalJsonBody};
use crate::error::{ApiError, ApiResult};
use crate::params::PathParam;
use crate::state::AppState;

/// An API key to create.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateApiKeyRequest)]
pub struct CreateRequest {
    name: Option<String>,
    /// A lifetime in Elasticsearch's time units (`1d`, `12h`).
    expiration: Option<String>,
    #[schema(value_type = Option<Object>)]
    role_descriptors: Option<BTreeMap<String, RoleDescriptor>>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Map<String, Value>>,
}

impl CreateRequest {
    /// The checks that need no lookup: name, metadata, expiration (the
    /// key's lifetime, returned) and the descriptors' privileges.
    pub(crate) fn validate(&self) -> ApiResult<Option<Duration>> {
        let mut errors = Vec::new();
        if let Err(m) = api_key::validate_name(self.name.as_deref().unwrap_or_default()) {
            errors.push(m);
        }
        errors.extend(reserved_metadata_key(self.metadata.as_ref()));
        if !errors.is_empty() {
            return Err(ApiError::validation(&errors));
        }
        let lifetime = self
            .expiration
            .as_deref()
            .map(parse_time_value)
            .transpose()
            .map_err(ApiError::illegal_argument)?;
        for descriptor in self.role_descriptors.iter().flat_map(BTreeMap::values) {
            crate::roles::check_cluster_privileges(descriptor)?;
        }
        Ok(lifetime)
    }
}

#[utoipa::path(
    method(put, post),
    path = "/_security/api_key",
    tag = crate::openapi::SECURITY,
    request_body = CreateRequest,
    responses(
        (status = 200, description = "The new key.", body = crate::openapi::schemas::CreatedApiKey),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    Minter(caller, provenance): Minter,
    JsonBody(req): JsonBody<CreateRequest>,
) -> ApiResult<Json<Value>> {
    let lifetime = req.validate()?;
    auth::require(&state, &caller, Action::ApiKeyCreate).await?;
    // A key outlives the session that created it (it belongs to its
    // owner), so a caller whose authority is borrowed from an API key or
    // from another token may not turn it into a key of its own.
    if provenance.borrowed {
        return Err(ApiError::illegal_argument(
            "an API key, or a token minted by an API key or by another token, cannot create API keys; authenticate as a user",
        ));
    }
    store_new_key(&state, &caller, req, lifetime).await
}

/// Mints a key of `owner` from a validated request, stores it and answers
/// as create API key does (create and grant).
pub(crate) async fn store_new_key(
    state: &AppState,
    owner: &Authentication,
    req: CreateRequest,
    lifetime: Option<Duration>,
) -> ApiResult<Json<Value>> {
    let name = req.name.unwrap_or_default();
    let now = state.now();
    let expires_at = lifetime.map(|d| now.saturating_add(millis(d)));
    let minted = api_key::mint(
        owner,
        NewKey {
            name,
            expires_at,
            role_descriptors: normalized(req.role_descriptors.unwrap_or_default()),
            metadata: req.metadata.unwrap_or_default(),
        },
        now,
    );
    state.store.insert_api_key(&minted.record).await?;
    state.audit.config_change(ConfigChange::create_apikey(
        &minted.record.id,
        &minted.record.name,
        minted.record.expires_at,
    ));
    let mut body = Map::new();
    body.insert("id".into(), minted.record.id.clone().into());
    body.insert("name".into(), minted.record.name.clone().into());
    if let Some(exp) = minted.record.expires_at {
        body.insert("expiration".into(), exp.into());
    }
    body.insert("api_key".into(), minted.secret.as_str().into());
    body.insert("encoded".into(), minted.encoded().into());
    Ok(Json(Value::Object(body)))
}

/// Role descriptors as stored.
pub(crate) fn normalized(
    descriptors: BTreeMap<String, RoleDescriptor>,
) -> BTreeMap<String, RoleDescriptor> {
    descriptors
        .into_iter()
        .map(|(name, d)| (name, d.normalized()))
        .collect()
}

/// Who a get or invalidate request is about, before the privilege check.
struct Scope {
    filter: ApiKeyFilter,
    /// The request names only the caller's own keys.
    own: bool,
    /// The caller's realm, when the request names its owner by user name
    /// alone: allowed only its own keys, the caller gets its own realm's,
    /// never those of a namesake in another realm.
    own_realm: Option<String>,
}

/// The owner whose keys are the caller's own: its name and realm. An API
/// key acts for its owner's keys ([`key_owner_of`]); here it stands for no
/// realm at all, so that it owns nothing by name.
pub(crate) fn owner_of(caller: &Authentication) -> (String, String) {
    let realm = if caller.authentication_type == AuthenticationType::ApiKey {
        API_KEY_REALM.name.to_string()
    } else {
        caller.authentication_realm.name.to_string()
    };
    (caller.username.clone(), realm)
}

/// [`owner_of`], and for an API key its owner's own realm, read from the
/// key (a key of a SAML user or of a service account is not a native
/// namesake's).
async fn key_owner_of(state: &AppState, caller: &Authentication) -> ApiResult<(String, String)> {
    match (&caller.api_key, caller.authentication_type) {
        (Some(key), AuthenticationType::ApiKey) => {
            let realm = state
                .store
                .get_api_key(&key.id)
                .await?
                .map(|k| k.owner.authentication_realm.name.to_string())
                .unwrap_or_else(|| API_KEY_REALM.name.to_string());
            Ok((caller.username.clone(), realm))
        }
        _ => Ok(owner_of(caller)),
    }
}

fn scope(
    caller: &Authentication,
    (me, my_realm): (String, String),
    ids: Option<Vec<String>>,
    name: Option<String>,
    username: Option<String>,
    realm: Option<String>,
    owner: bool,
) -> Scope {
    let name = name
        .filter(|n| !n.is_empty() && n != "*")
        .map(|n| match n.strip_suffix('*') {
            Some(prefix) => NameMatch::Prefix(prefix.to_owned()),
            None => NameMatch::Exact(n),
        });
    let (username, realm) = if owner {
        (Some(me.clone()), Some(my_realm.clone()))
    } else {
        (username, realm)
    };
    let own =
        username.as_deref() == Some(me.as_str()) && realm.as_deref().is_none_or(|r| r == my_realm);
    let own_realm = (own && realm.is_none()).then_some(my_realm);
    let own_key_only = caller.api_key.as_ref().is_some_and(|k| {
        ids.as_deref()
            .is_some_and(|ids| ids.iter().all(|i| i == &k.id))
    });
    Scope {
        filter: ApiKeyFilter {
            ids,
            name,
            username,
            realm,
        },
        own: own || own_key_only,
        own_realm,
    }
}

async fn require_scope(
    state: &AppState,
    caller: &Authentication,
    action: Action,
    scope: &mut Scope,
) -> ApiResult<()> {
    if auth::holds(state, caller, action).await? {
        state.audit.access_granted(caller, action);
        return Ok(());
    }
    if scope.own && auth::holds(state, caller, Action::ApiKeyManageOwn).await? {
        if let Some(realm) = scope.own_realm.take() {
            scope.filter.realm = Some(realm);
        }
        state.audit.access_granted(caller, Action::ApiKeyManageOwn);
        return Ok(());
    }
    state.audit.access_denied(caller, action);
    Err(ApiError::forbidden(action, &caller.username, &caller.roles))
}

pub(crate) fn key_json(k: &ApiKeyRecord) -> Value {
    let mut v = Map::new();
    v.insert("id".into(), k.id.clone().into());
    v.insert("name".into(), k.name.clone().into());
    v.insert("type".into(), "rest".into());
    v.insert("creation".into(), k.created_at.into());
    if let Some(exp) = k.expires_at {
        v.insert("expiration".into(), exp.into());
    }
    v.insert("invalidated".into(), k.invalidated_at.is_some().into());
    if let Some(at) = k.invalidated_at {
        v.insert("invalidation".into(), at.into());
    }
    v.insert("username".into(), k.owner.username.clone().into());
    v.insert(
        "realm".into(),
        k.owner.authentication_realm.name.to_string().into(),
    );
    v.insert(
        "realm_type".into(),
        k.owner.authentication_realm.kind.to_string().into(),
    );
    v.insert("metadata".into(), Value::Object(k.metadata.clone()));
    v.insert(
        "role_descriptors".into(),
        serde_json::to_value(&k.role_descriptors).expect("serialisable"),
    );
    Value::Object(v)
}

/// An owner's `roles` as `limited_by` shows them: Elasticsearch's list of
/// one map of role name to descriptor. Built-in roles show their
/// definition, stored ones the store's; a name that no role has any more
/// is left out (it grants nothing).
async fn limited_by(state: &AppState, roles: &[String]) -> ApiResult<Value> {
    let named: Map<String, Value> = crate::has_privileges::named_role_descriptors(state, roles)
        .await?
        .into_iter()
        .map(|(name, d)| (name, serde_json::to_value(d).expect("serialisable")))
        .collect();
    Ok(Value::Array(vec![Value::Object(named)]))
}

fn flag(params: &HashMap<String, String>, name: &str) -> ApiResult<bool> {
    match params.get(name).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") | Some("") => Ok(true),
        Some(other) => Err(ApiError::illegal_argument(format!(
            "Failed to parse value [{other}] as only [true] or [false] are allowed."
        ))),
    }
}

const GET_PARAMS: &[&str] = &[
    "id",
    "name",
    "username",
    "realm_name",
    "owner",
    "with_limited_by",
    "active_only",
];

#[utoipa::path(
    get,
    path = "/_security/api_key",
    tag = crate::openapi::SECURITY,
    params(
        ("id" = Option<String>, Query, description = "An API key's id."),
        ("name" = Option<String>, Query, description = "An API key's name (wildcards allowed)."),
        ("username" = Option<String>, Query, description = "The owner's name."),
        ("realm_name" = Option<String>, Query, description = "The owner's realm."),
        ("owner" = Option<bool>, Query, description = "Only the caller's own keys."),
        ("with_limited_by" = Option<bool>, Query, description = "Include the owner's role descriptors as `limited_by` (an API key caller needs `manage_api_key`)."),
        ("active_only" = Option<bool>, Query, description = "Leave out invalidated and expired keys."),
    ),
    responses(
        (status = 200, description = "The keys found.", body = crate::openapi::schemas::ApiKeys),
        (status = 404, description = "No key matched: `{\"api_keys\":[]}`.", body = crate::openapi::schemas::ApiKeys),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if let Some(unknown) = params.keys().find(|k| !GET_PARAMS.contains(&k.as_str())) {
        return Err(ApiError::illegal_argument(format!(
            "request [{}] contains unrecognized parameter: [{unknown}]",
            "/_security/api_key"
        )));
    }
    let owner = flag(&params, "owner")?;
    let active_only = flag(&params, "active_only")?;
    let with_limited_by = flag(&params, "with_limited_by")?;
    let id = params.get("id").cloned().filter(|s| !s.is_empty());
    let mut scope = scope(
        &caller,
        key_owner_of(&state, &caller).await?,
        id.clone().map(|i| vec![i]),
        params.get("name").cloned(),
        params.get("username").cloned().filter(|s| !s.is_empty()),
        params.get("realm_name").cloned().filter(|s| !s.is_empty()),
        owner,
    );
    require_scope(&state, &caller, Action::ApiKeyGet, &mut scope).await?;
    // As in Elasticsearch, an API key sees no owner's descriptors (its own
    // included) unless it may manage every key.
    if with_limited_by
        && caller.api_key.is_some()
        && !auth::holds(&state, &caller, Action::ApiKeyGet).await?
    {
        return Err(ApiError::forbidden(
            Action::ApiKeyGet,
            &caller.username,
            &caller.roles,
        ));
    }
    let now = state.now();
    let mut owners: HashMap<Vec<String>, Value> = HashMap::new();
    let mut keys = Vec::new();
    for k in state.store.find_api_keys(&scope.filter).await? {
        if active_only && (k.invalidated_at.is_some() || k.expires_at.is_some_and(|e| e <= now)) {
            continue;
        }
        let mut v = key_json(&k);
        if with_limited_by {
            let limited_by = match owners.get(&k.owner.roles) {
                Some(known) => known.clone(),
                None => {
                    let found = limited_by(&state, &k.owner.roles).await?;
                    owners.insert(k.owner.roles.clone(), found.clone());
                    found
                }
            };
            v["limited_by"] = limited_by;
        }
        keys.push(v);
    }
    let status = if keys.is_empty() && id.is_some() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "api_keys": keys }))))
}

/// Which API keys to invalidate.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = InvalidateApiKeyRequest)]
pub struct InvalidateRequest {
    ids: Option<Vec<String>>,
    id: Option<String>,
    name: Option<String>,
    username: Option<String>,
    realm_name: Option<String>,
    owner: Option<bool>,
}

impl InvalidateRequest {
    /// Elasticsearch's request validation; the ids named (by `id` or `ids`).
    pub(crate) fn validate(&mut self) -> ApiResult<Option<Vec<String>>> {
        let owner = self.owner.unwrap_or(false);
        let ids = match (self.ids.take(), self.id.take()) {
            (Some(_), Some(_)) => {
                return Err(ApiError::validation(&[
                    "Must use either [id] or [ids], not both at the same time".into(),
                ]))
            }
            (Some(ids), None) => Some(ids),
            (None, Some(id)) => Some(vec![id]),
            (None, None) => None,
        };
        let text = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
        let mut errors = Vec::new();
        if ids
            .as_ref()
            .is_some_and(|ids| ids.iter().any(|i| i.trim().is_empty()))
        {
            errors.push("Field [ids] must not contain blank id".to_string());
        }
        if !owner
            && ids.as_ref().is_none_or(Vec::is_empty)
            && !text(&self.name)
            && !text(&self.username)
            && !text(&self.realm_name)
        {
            errors.push(
                "One of [api key id(s), api key name, username, realm name] must be specified if [owner] flag is false"
                    .into(),
            );
        }
        if owner && (text(&self.username) || text(&self.realm_name)) {
            errors.push(
                "username or realm name must not be specified when the current user should be used"
                    .into(),
            );
        }
        if !errors.is_empty() {
            return Err(ApiError::validation(&errors));
        }
        Ok(ids)
    }
}

#[utoipa::path(
    delete,
    path = "/_security/api_key",
    tag = crate::openapi::SECURITY,
    request_body = InvalidateRequest,
    responses(
        (status = 200, description = "What was invalidated.", body = crate::openapi::schemas::InvalidatedApiKeys),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn invalidate(
    State(state): State<AppState>,
    Caller(caller): Caller,
    JsonBody(mut req): JsonBody<InvalidateRequest>,
) -> ApiResult<Json<Value>> {
    let owner = req.owner.unwrap_or(false);
    let ids = req.validate()?;
    let mut scope = scope(
        &caller,
        key_owner_of(&state, &caller).await?,
        ids.filter(|v| !v.is_empty()),
        req.name,
        req.username.filter(|s| !s.is_empty()),
        req.realm_name.filter(|s| !s.is_empty()),
        owner,
    );
    require_scope(&state, &caller, Action::ApiKeyInvalidate, &mut scope).await?;
    let outcome = state
        .store
        .invalidate_api_keys(&scope.filter, state.now())
        .await?;
    state
        .audit
        .config_change(ConfigChange::invalidate_apikeys(&outcome.invalidated));
    Ok(Json(json!({
        "invalidated_api_keys": outcome.invalidated,
        "previously_invalidated_api_keys": outcome.previously_invalidated,
        "error_count": 0,
    })))
}

#[utoipa::path(
    post,
    path = "/_security/api_key/{ids}/_clear_cache",
    tag = crate::openapi::SECURITY,
    params(("ids" = String, Path, description = "API key ids, comma-separated, or `*`.")),
    responses(
        (status = 200, description = "Tessera keeps no API-key cache: a one-node answer.", body = crate::openapi::schemas::ClearedCache),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn clear_cache(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathParam(_ids): PathParam,
    _body: OptionalJsonBody<Map<String, Value>>,
) -> ApiResult<Json<Value>> {
    auth::require(&state, &caller, Action::ApiKeyInvalidate).await?;
    // Tessera keeps no API-key cache: every request reads the key, so there
    // is nothing to clear. Answer as a one-node cluster would.
    Ok(Json(json!({
        "_nodes": { "total": 1, "successful": 1, "failed": 0 },
        "cluster_name": "tessera",
        "nodes": {},
    })))
}
