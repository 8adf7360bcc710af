//! The ID token of a code-flow login, validated by the shared JOSE layer
//! (`tessera_realms::jose`) against the provider's keys: signature
//! (`rp.signature_algorithm`, RS256), `iss`, `aud`, `azp`, `exp` and `iat`
//! with the realm's skew, `nonce`, and `at_hash` when present. An unknown
//! key id or a failed signature reads the JWKS again once (rate-limited),
//! for key rotation.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tessera_domain::Millis;
use tessera_realms::jose::validate::numeric_date;
use tessera_realms::jose::{
    validate_id_token, Algorithm, IdTokenCheck, JoseError, JoseErrorKind, JwksLocation, JwksSource,
    Keys,
};
use tessera_realms::oidc::{OidcError, Rule};

use super::OidcRealm;

/// At most one JWKS re-read per this interval when tokens name unknown
/// keys (a flood of forged tokens must not become a flood of fetches).
pub const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// A validated ID token: its claims and when it expires.
pub struct ValidIdToken {
    pub claims: Map<String, Value>,
    pub expires_at: Millis,
}

/// The JWKS source of `jwks` (a URL, or a file relative to `base_dir`). A
/// file is read now; a URL on first use.
pub fn jwks_source(jwks: &str, base_dir: &Path) -> Result<JwksSource, String> {
    let location = match JwksLocation::parse(jwks).map_err(|e| e.to_string())? {
        JwksLocation::File(path) => JwksLocation::File(base_dir.join(path)),
        url => url,
    };
    JwksSource::new(location, JWKS_REFRESH_INTERVAL).map_err(|e| e.to_string())
}

fn refused(e: JoseError) -> OidcError {
    let rule = match e.kind {
        JoseErrorKind::WrongNonce => Rule::Nonce,
        _ => Rule::IdToken,
    };
    OidcError::new(rule, format!("ID token: {} ({})", e.detail, e.label()))
}

pub async fn validate(
    realm: &OidcRealm,
    jwks: &Arc<JwksSource>,
    id_token: &str,
    nonce: &str,
    access_token: &str,
    now: Millis,
) -> Result<ValidIdToken, OidcError> {
    let check = IdTokenCheck {
        issuer: &realm.config.issuer,
        client_id: &realm.config.client_id,
        algorithms: &[Algorithm::RS256],
        skew_secs: realm.config.allowed_clock_skew.as_secs(),
        nonce: Some(nonce),
        access_token: Some(access_token),
    };
    let now_ms = u64::try_from(now).unwrap_or_default();
    let unavailable = |e: tessera_realms::jose::SourceError| {
        OidcError::new(Rule::Unavailable, format!("JWKS: {e}"))
    };
    // A changed JWKS file is read again before use (a local stat).
    jwks.reload_if_changed().await.map_err(unavailable)?;
    if jwks.current().keys().is_empty() {
        jwks.refresh(now_ms).await.map_err(unavailable)?;
    }
    let once = |keys: &tessera_realms::jose::KeySet| {
        validate_id_token(id_token, &Keys::jwks(keys), &check, now_ms / 1000)
    };
    let claims = match once(&jwks.current()) {
        Err(e) if e.warrants_refresh() => match jwks.refresh(now_ms).await {
            Ok(true) => once(&jwks.current()),
            Ok(false) => Err(e),
            Err(fetch) => {
                tracing::warn!(realm = %realm.config.name, error = %fetch, "OpenID Connect realm: the JWKS could not be read again");
                Err(e)
            }
        },
        other => other,
    }
    .map_err(refused)?;
    // `exp` read as the validation just read it (a fractional NumericDate
    // included), so the one-time proof lasts as long as the token does.
    let exp = numeric_date(&claims, "exp")
        .map_err(refused)?
        .ok_or_else(|| OidcError::new(Rule::IdToken, "ID token: no exp claim"))?;
    let expires_at = i64::try_from(exp).unwrap_or(i64::MAX).saturating_mul(1000);
    Ok(ValidIdToken { claims, expires_at })
}
