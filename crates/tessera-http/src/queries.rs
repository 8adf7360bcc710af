//! `GET|POST /_security/_query/api_key` and `/_security/_query/user`: the
//! query DSL subset of `tessera_domain::query`, evaluated in memory over
//! the keys the caller may see (or every native user).

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use tessera_domain::privilege::Action;
use tessera_domain::query::{self, Doc, Fields, QueryError, Search};
use tessera_store::ApiKeyFilter;

use crate::api_keys::{key_json, owner_of};
use crate::auth::{self, Caller};
use crate::body::OptionalJsonBody;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The most documents a query evaluates in memory. A query over more (a
/// caller who may see more keys, or a store with more users) is refused
/// rather than answered slowly.
pub const MAX_QUERIED: usize = 100_000;

/// The body of a query (every field optional; no body means `match_all`).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[schema(as = QueryRequest)]
pub struct QueryRequest {
    /// A query of the supported subset: `bool`, `term`, `terms`, `prefix`,
    /// `wildcard`, `range`, `exists`, `ids`, `match_all`.
    #[schema(value_type = Option<Object>)]
    pub query: Option<Value>,
    /// Hits to skip (0 by default).
    pub from: Option<u32>,
    /// Hits to answer (10 by default; `from + size` at most 10 000).
    pub size: Option<u32>,
    /// A field name, `{field: order}`, `{field: {order}}`, or a list of them.
    #[schema(value_type = Option<Object>)]
    pub sort: Option<Value>,
    /// The `_sort` values of the last hit of the previous page.
    #[schema(value_type = Option<Vec<Object>>)]
    pub search_after: Option<Vec<Value>>,
}

fn refused(e: QueryError) -> ApiError {
    ApiError::es(StatusCode::BAD_REQUEST, e.kind, e.reason)
}

/// Refuses query-string parameters other than `allowed`, as Elasticsearch does.
fn check_params(params: &HashMap<String, String>, path: &str, allowed: &[&str]) -> ApiResult<()> {
    match params.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(unknown) => Err(ApiError::illegal_argument(format!(
            "request [{path}] contains unrecognized parameter: [{unknown}]"
        ))),
        None => Ok(()),
    }
}

fn parse(body: Option<Value>, fields: &Fields, request: &str) -> ApiResult<Search> {
    query::parse(&body.unwrap_or(Value::Null), fields, request).map_err(refused)
}

fn too_many(what: &str, n: usize) -> ApiError {
    ApiError::illegal_argument(format!(
        "too many {what} to query in memory: [{n}] is more than [{MAX_QUERIED}]"
    ))
}

/// The page's hits, each with `_sort` when sorted.
fn hits(page: query::Page) -> (usize, Vec<Value>) {
    let hits = page
        .hits
        .into_iter()
        .map(|(mut body, sort)| {
            if let (Some(values), Value::Object(m)) = (sort, &mut body) {
                m.insert("_sort".into(), Value::Array(values));
            }
            body
        })
        .collect();
    (page.total, hits)
}

#[utoipa::path(
    method(get, post),
    path = "/_security/_query/api_key",
    tag = crate::openapi::SECURITY,
    params(
        ("with_limited_by" = Option<bool>, Query, description = "Accepted; owners' descriptors are not shown."),
        ("with_profile_uid" = Option<bool>, Query, description = "Accepted; Tessera keeps no user profiles."),
        ("typed_keys" = Option<bool>, Query, description = "Accepted; there are no aggregations."),
    ),
    request_body(content = Option<QueryRequest>),
    responses(
        (status = 200, description = "A page of the keys the caller may see that match.", body = crate::openapi::schemas::QueriedApiKeys),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn query_api_keys(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(params): Query<HashMap<String, String>>,
    OptionalJsonBody(body): OptionalJsonBody<Value>,
) -> ApiResult<Json<Value>> {
    check_params(
        &params,
        "/_security/_query/api_key",
        &["with_limited_by", "with_profile_uid", "typed_keys"],
    )?;
    let search = parse(body, &query::API_KEY_FIELDS, "query_api_key_request")?;
    // `read_security` or `manage_api_key` see every key; otherwise
    // `manage_own_api_key` sees the caller's own (an API key, itself).
    let filter = if auth::holds(&state, &caller, Action::ApiKeyQuery).await? {
        state.audit.access_granted(&caller, Action::ApiKeyQuery);
        ApiKeyFilter::default()
    } else if auth::holds(&state, &caller, Action::ApiKeyManageOwn).await? {
        state.audit.access_granted(&caller, Action::ApiKeyManageOwn);
        match &caller.api_key {
            Some(key) => ApiKeyFilter {
                ids: Some(vec![key.id.clone()]),
                ..Default::default()
            },
            None => {
                let (username, realm) = owner_of(&caller);
                ApiKeyFilter {
                    username: Some(username),
                    realm: Some(realm),
                    ..Default::default()
                }
            }
        }
    } else {
        state.audit.access_denied(&caller, Action::ApiKeyQuery);
        return Err(ApiError::forbidden(
            Action::ApiKeyQuery,
            &caller.username,
            &caller.roles,
        ));
    };
    let keys = state.store.find_api_keys(&filter).await?;
    if keys.len() > MAX_QUERIED {
        return Err(too_many("API keys", keys.len()));
    }
    let docs = keys
        .iter()
        .map(|k| Doc {
            id: k.id.clone(),
            body: key_json(k),
        })
        .collect();
    let (total, api_keys) = hits(search.run(docs, state.now()));
    Ok(Json(json!({
        "total": total,
        "count": api_keys.len(),
        "api_keys": api_keys,
    })))
}

#[utoipa::path(
    method(get, post),
    path = "/_security/_query/user",
    tag = crate::openapi::SECURITY,
    params(
        ("with_profile_uid" = Option<bool>, Query, description = "Accepted; Tessera keeps no user profiles."),
    ),
    request_body(content = Option<QueryRequest>),
    responses(
        (status = 200, description = "A page of the native users that match.", body = crate::openapi::schemas::QueriedUsers),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn query_users(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Query(params): Query<HashMap<String, String>>,
    OptionalJsonBody(body): OptionalJsonBody<Value>,
) -> ApiResult<Json<Value>> {
    check_params(&params, "/_security/_query/user", &["with_profile_uid"])?;
    let search = parse(body, &query::USER_FIELDS, "query_user_request")?;
    auth::require(&state, &caller, Action::UserQuery).await?;
    let users = state.store.list_users().await?;
    if users.len() > MAX_QUERIED {
        return Err(too_many("users", users.len()));
    }
    let docs = users
        .iter()
        .map(|u| Doc {
            id: u.username.clone(),
            body: u.to_json(),
        })
        .collect();
    let (total, users) = hits(search.run(docs, state.now()));
    Ok(Json(json!({
        "total": total,
        "count": users.len(),
        "users": users,
    })))
}
