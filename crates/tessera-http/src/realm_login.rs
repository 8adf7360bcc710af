//! What the login of a SAML and of an OpenID Connect realm share: the
//! subject (the realm's user, with the roles of the role mappings), the
//! pair minted once per login proof on behalf of the dashboard that
//! relays it, the answer, and the security log of a refused message.

use std::borrow::Cow;

use serde_json::{json, Map, Value};
use tessera_domain::authn::RealmRef;
use tessera_domain::role_mapping::UserData;
use tessera_domain::Authentication;
use tessera_store::{Lineage, OneTime};

use crate::auth::Provenance;
use crate::error::ApiResult;
use crate::service::{self, Granted, Mint, SourceRevoked};
use crate::state::AppState;

/// The user a realm of type `kind` names, as `_authenticate` will show
/// it: the roles of the role mappings that match `user`, its realm
/// (`user.realm_name`) as both authentication and lookup realm.
pub async fn subject(
    state: &AppState,
    kind: &'static str,
    user: UserData,
    full_name: Option<String>,
    email: Option<String>,
) -> ApiResult<Authentication> {
    let realm = RealmRef {
        name: Cow::Owned(user.realm_name.clone()),
        kind: Cow::Borrowed(kind),
    };
    crate::role_mappings::mapped_user(state, user, realm, full_name, email).await
}

/// Mints the pair of a login for `subject`. Its authority is the login
/// proof (an assertion, an ID token), not the credential of `caller`, the
/// dashboard that only relays it: the pair is no child of the caller's
/// token, and one proof mints at most one pair, on every node, until
/// `proof.keep_until`. `Ok(Err(_))`: the proof was used already.
pub async fn mint(
    state: &AppState,
    caller: &Authentication,
    subject: &Authentication,
    proof: OneTime,
    metadata: Map<String, Value>,
) -> ApiResult<Result<Granted, SourceRevoked>> {
    let provenance = Provenance {
        lineage: Lineage {
            one_time: Some(proof),
            ..Lineage::default()
        },
        ..Provenance::default()
    };
    let mint = Mint {
        subject,
        client: caller.client_ref(),
        oauth_client: None,
        scope: None,
        with_refresh: true,
        provenance: &provenance,
        metadata: Some(metadata),
    };
    Ok(service::issue(state, mint).await?)
}

/// A login's answer: who logged in, the pair, and the subject as
/// `_authenticate` shows it; SAML's names the realm too.
pub fn answer(granted: &Granted, realm: Option<&str>) -> Value {
    let mut out = Map::new();
    out.insert("username".into(), json!(granted.subject.username));
    if let Some(realm) = realm {
        out.insert("realm".into(), json!(realm));
    }
    let refresh = granted.pair.refresh.as_ref().map(|t| t.expose());
    out.insert("access_token".into(), json!(granted.pair.access.expose()));
    out.insert("refresh_token".into(), json!(refresh));
    out.insert("expires_in".into(), json!(granted.expires_in));
    out.insert("authentication".into(), json!(granted.subject));
    Value::Object(out)
}

/// Logs a login or logout message a realm refused, as the security event
/// `event`: the realm, the rule the message broke and the detail, never
/// the message itself.
pub fn log_refusal(event: &'static str, realm: &str, rule: &'static str, detail: &str, what: &str) {
    tracing::warn!(
        target: "tessera::security",
        event,
        realm = %realm,
        rule,
        detail = %detail,
        "{what}"
    );
}
