//! `/_security/oidc/*`: the OpenID Connect realm's logins and logouts, as
//! a dashboard (with `manage_oidc`) calls them on its users' behalf. As in
//! Elasticsearch, Tessera keeps no browser session: the dashboard keeps
//! the `state` and `nonce` that `prepare` gave and passes them back.
//!
//! The protocol work is `tessera_realms::oidc`; here the realm is chosen,
//! the back channel spoken, the subject built (roles from the role
//! mappings), and the pair minted through the token service, once per ID
//! token. Every refused login is the same 401; its reason goes to the
//! `tessera::security` log and to the `result` label of
//! `tessera_oidc_logins_total`, and no token, code or callback URL is
//! ever logged.

mod backchannel;
mod id_token;
pub(crate) mod login;
pub(crate) mod logout;
mod realms;

use std::sync::Arc;

use tessera_domain::privilege::Action;
use tessera_realms::oidc::OidcError;

use crate::error::{ApiError, ApiResult};
use crate::realm_login::log_refusal;
use crate::state::AppState;

pub use login::{authenticate, prepare};
pub use logout::logout;
pub use realms::{OidcRealm, OidcRealms};

/// The realm type OpenID Connect logins report.
pub const REALM_TYPE: &str = "oidc";

/// Token metadata: the ID token, kept for `id_token_hint` at logout.
pub const ID_TOKEN_HINT: &str = "id_token_hint";
/// Token metadata: the realm the pair was minted by.
pub const OIDC_REALM: &str = "oidc_realm";

/// The realm a request names; Elasticsearch answers an unknown one with
/// an exception; Tessera says 400 in its shape.
pub(crate) fn realm_named(state: &AppState, name: &str) -> ApiResult<Arc<OidcRealm>> {
    state.settings.oidc.get(name).ok_or_else(|| {
        ApiError::bad_request(
            "security_exception",
            format!("Cannot find OpenID Connect realm with name [{name}]"),
        )
    })
}

/// Elasticsearch's one answer to every refused login, after logging the
/// reason and counting it.
pub(crate) fn refused(state: &AppState, realm: &str, e: &OidcError) -> ApiError {
    let rule = e.rule.as_str();
    log_refusal(
        "oidc_login_refused",
        realm,
        rule,
        &e.detail,
        "OpenID Connect login refused",
    );
    state.metrics.oidc_login(realm, rule);
    ApiError::unauthenticated(format!(
        "unable to authenticate user [<OIDC Token>] for action [{}]",
        Action::OidcAuthenticate.name()
    ))
}
