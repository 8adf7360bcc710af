//! What clients ask first: `GET /` (the node's name, cluster and version,
//! as an Elasticsearch 8 node answers it) and
//! `GET /_security/privilege/_builtin`.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use tessera_domain::privilege::{Action, INDEX_PRIVILEGES, KNOWN_CLUSTER_PRIVILEGES};

use crate::auth::{self, Caller};
use crate::error::ApiResult;
use crate::openapi;
use crate::state::AppState;

/// The Elasticsearch release whose security API Tessera answers as (see
/// `docs/compatibility.md`): clients pick their behaviour by this number.
pub const ES_VERSION: &str = "8.17.0";
const LUCENE_VERSION: &str = "9.12.0";
const MIN_WIRE_VERSION: &str = "7.17.0";
const MIN_INDEX_VERSION: &str = "7.0.0";

/// `GET /` (and `HEAD /`) for any authenticated caller.
#[utoipa::path(
    get,
    path = "/",
    tag = openapi::SECURITY,
    responses(
        (status = 200, description = "The node's name, cluster and version, as Elasticsearch 8.",
         body = Object),
        openapi::schemas::EsErrors,
    )
)]
pub async fn root(State(state): State<AppState>, Caller(_): Caller) -> ApiResult<Json<Value>> {
    let uuid = state.cluster_uuid().await?;
    let s = &state.settings;
    Ok(Json(json!({
        "name": s.node_name,
        "cluster_name": s.cluster_name,
        "cluster_uuid": uuid,
        "version": {
            "number": ES_VERSION,
            "build_flavor": "default",
            "build_type": "tar",
            "build_hash": concat!("tessera-", env!("CARGO_PKG_VERSION")),
            "build_date": "2024-12-11T12:08:05.663969764Z",
            "build_snapshot": false,
            "lucene_version": LUCENE_VERSION,
            "minimum_wire_compatibility_version": MIN_WIRE_VERSION,
            "minimum_index_compatibility_version": MIN_INDEX_VERSION,
        },
        "tagline": "You Know, for Search",
    })))
}

/// `GET /_security/privilege/_builtin`: the cluster privileges Tessera
/// knows and Elasticsearch's index privileges.
#[utoipa::path(
    get,
    path = "/_security/privilege/_builtin",
    tag = openapi::SECURITY,
    responses(
        (status = 200, description = "`cluster`, `index` and `remote_cluster` privilege names.",
         body = Object),
        openapi::schemas::EsErrors,
    )
)]
pub async fn builtin_privileges(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> ApiResult<Json<Value>> {
    auth::require(&state, &caller, Action::BuiltinPrivilegesGet).await?;
    Ok(Json(json!({
        "cluster": KNOWN_CLUSTER_PRIVILEGES,
        "index": INDEX_PRIVILEGES,
        "remote_cluster": ["monitor_enrich", "monitor_stats"],
    })))
}
