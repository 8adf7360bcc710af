//! `/_security/saml/*`: the SAML realm's logins and logouts, as a
//! dashboard (with `manage_saml`) calls them on its users' behalf.
//!
//! The protocol work is `tessera_realms::saml`; here the realm is chosen,
//! the subject built (roles from the role mappings), and the pair minted
//! through the token service, once per assertion. Every refusal of a
//! Response is the same 401; its reason goes to the log only, and no SAML
//! message, token or answer is ever logged.

pub(crate) mod login;
pub(crate) mod logout;
mod realms;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use tessera_domain::privilege::Action;
use tessera_realms::saml::SamlRealm;

use crate::auth::{self, Caller};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub use login::{authenticate, prepare};
pub use logout::{complete_logout, invalidate, logout};
pub use realms::{SamlRealms, RELOAD_CHECK_MS};

/// The realm type SAML logins report.
pub const REALM_TYPE: &str = "saml";

/// The realm a request names, by name or by ACS; with neither, the only
/// SAML realm. Elasticsearch answers these with a 500; Tessera says 400.
pub(crate) fn choose_realm(
    state: &AppState,
    realm: Option<&str>,
    acs: Option<&str>,
    request: &str,
) -> ApiResult<Arc<SamlRealm>> {
    let now = state.now();
    let realms = &state.settings.saml;
    let found = match (realm, acs) {
        (Some(name), acs) => realms
            .get(name, now)
            .filter(|r| acs.is_none_or(|a| r.config.sp_acs == a)),
        (None, Some(acs)) => realms.by_acs(acs, now),
        (None, None) => realms.only(now),
    };
    found.ok_or_else(|| {
        ApiError::bad_request(
            "security_exception",
            format!(
                "Cannot find any matching realm for [{request}{{realmName={}, assertionConsumerServiceURL={}}}]",
                realm.unwrap_or("null"),
                acs.unwrap_or("null")
            ),
        )
    })
}

/// `GET /_security/saml/metadata/{realm}`: the SP metadata to give the IdP.
#[utoipa::path(
    get,
    path = "/_security/saml/metadata/{realm}",
    tag = crate::openapi::SECURITY,
    params(("realm" = String, Path, description = "A SAML realm's name.")),
    responses(
        (status = 200, description = "The realm's SP metadata.", body = crate::openapi::schemas::SamlMetadata),
        crate::openapi::schemas::EsErrors,
    )
)]
pub async fn metadata(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(realm): Path<String>,
) -> ApiResult<Json<Value>> {
    auth::require(&state, &caller, Action::SamlMetadata).await?;
    let realm = choose_realm(&state, Some(&realm), None, "SamlSpMetadataRequest")?;
    Ok(Json(json!({ "metadata": realm.sp_metadata() })))
}
