//! OpenID Connect ID tokens (OpenID Connect Core 1.0 §3.1.3.7): the
//! common rules of [`super::validate`] plus `aud`/`azp` against the client
//! id, `nonce` and `at_hash`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::Value;
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::error::{JoseError, JoseErrorKind as K};
use super::keys::Keys;
use super::validate::{audiences, check_claims, read_header, verify_signature, Claims, Policy};

/// What an ID token is checked against. Its `Debug` does not show the
/// access token.
#[derive(Clone)]
pub struct IdTokenCheck<'a> {
    /// The provider's issuer identifier (`op.issuer`).
    pub issuer: &'a str,
    /// The relying party's client id (`rp.client_id`): `aud` must contain it.
    pub client_id: &'a str,
    /// Allowed signature algorithms (`rp.signature_algorithm`).
    pub algorithms: &'a [Algorithm],
    /// Allowed clock skew in seconds.
    pub skew_secs: u64,
    /// The nonce sent in the authentication request; when set, the token's
    /// `nonce` must equal it.
    pub nonce: Option<&'a str>,
    /// The access token issued with the ID token; when set and the token has
    /// an `at_hash`, the two must match.
    pub access_token: Option<&'a str>,
}

impl std::fmt::Debug for IdTokenCheck<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenCheck")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("algorithms", &self.algorithms)
            .field("skew_secs", &self.skew_secs)
            .field("nonce", &self.nonce.map(|_| "<redacted>"))
            .field("access_token", &self.access_token.map(|_| "<redacted>"))
            .finish()
    }
}

/// Validates an ID token at `now` (seconds since the epoch): signature,
/// `iss`, `aud` containing the client id, `azp` (required when `aud` has
/// several values, equal to the client id when present), `exp`, `nbf`,
/// `iat` with skew, `nonce`, and `at_hash` when present.
pub fn validate_id_token(
    token: &str,
    keys: &Keys<'_>,
    check: &IdTokenCheck<'_>,
    now: u64,
) -> Result<Claims, JoseError> {
    let header = read_header(token, check.algorithms)?;
    let claims = verify_signature(token, &header, keys)?;
    let policy = Policy {
        issuer: check.issuer.to_string(),
        audiences: vec![check.client_id.to_string()],
        algorithms: check.algorithms.to_vec(),
        skew_secs: check.skew_secs,
        subjects: None,
    };
    check_claims(&claims, &policy, now)?;
    if claims.get("sub").and_then(Value::as_str).is_none() {
        return Err(JoseError::new(K::Malformed, "ID token without sub"));
    }
    let aud = audiences(&claims)?;
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == check.client_id => {}
        Some(azp) => {
            return Err(JoseError::new(
                K::WrongAuthorizedParty,
                format!("azp {azp} is not the client id"),
            ))
        }
        None if aud.len() > 1 => {
            return Err(JoseError::new(
                K::WrongAuthorizedParty,
                "several audiences and no azp",
            ))
        }
        None => {}
    }
    if let Some(expected) = check.nonce {
        match claims.get("nonce").and_then(Value::as_str) {
            Some(n) if n == expected => {}
            Some(_) => return Err(JoseError::new(K::WrongNonce, "nonce differs")),
            None => return Err(JoseError::new(K::WrongNonce, "no nonce claim")),
        }
    }
    if let (Some(access_token), Some(claimed)) = (check.access_token, claims.get("at_hash")) {
        let expected = at_hash(header.alg, access_token);
        if claimed.as_str() != Some(expected.as_str()) {
            return Err(JoseError::new(
                K::WrongAccessTokenHash,
                "at_hash does not match the access token",
            ));
        }
    }
    Ok(claims)
}

/// The `at_hash` of an access token for a token signed with `alg`: the
/// base64url left-most half of its hash with the algorithm's hash function
/// (SHA-256 for *256, SHA-384 for *384, SHA-512 for *512 and EdDSA).
pub fn at_hash(alg: Algorithm, access_token: &str) -> String {
    let digest: Vec<u8> = match alg {
        Algorithm::HS256 | Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 => {
            Sha256::digest(access_token.as_bytes()).to_vec()
        }
        Algorithm::HS384 | Algorithm::RS384 | Algorithm::PS384 | Algorithm::ES384 => {
            Sha384::digest(access_token.as_bytes()).to_vec()
        }
        Algorithm::HS512 | Algorithm::RS512 | Algorithm::PS512 | Algorithm::EdDSA => {
            Sha512::digest(access_token.as_bytes()).to_vec()
        }
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}
