//! The rules a token must pass, as a pure function of the token, the keys,
//! the [`Policy`] and `now`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

use super::error::{JoseError, JoseErrorKind as K};
use super::keys::Keys;

/// The claims of a valid token, as sent.
pub type Claims = serde_json::Map<String, Value>;

/// The longest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What a token must satisfy besides its signature.
#[derive(Clone, Debug)]
pub struct Policy {
    /// `iss` must equal this.
    pub issuer: String,
    /// `aud` (a string or an array) must contain at least one of these.
    pub audiences: Vec<String>,
    /// The header's `alg` must be one of these. `none` never is.
    pub algorithms: Vec<Algorithm>,
    /// Allowed clock skew for `exp`, `nbf` and `iat`, in seconds.
    pub skew_secs: u64,
    /// When set, `sub` must be one of these.
    pub subjects: Option<Vec<String>>,
}

/// True when `s` has the shape of a compact JWS: three dot-separated
/// base64url segments, the first two non-empty. Tessera's own tokens never
/// have this shape, so a bearer credential can be routed without decoding.
pub fn looks_like_jwt(s: &str) -> bool {
    let mut parts = s.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let b64url = |p: &str| {
        p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    !h.is_empty() && !p.is_empty() && b64url(h) && b64url(p) && b64url(sig)
}

/// The parts of the header the rules need.
#[derive(Debug, Clone)]
pub struct TokenHeader {
    pub alg: Algorithm,
    pub kid: Option<String>,
}

/// Reads the header without trusting it: the algorithm must be in the
/// allow-list (so `none` and unknown names are refused here).
pub fn read_header(token: &str, allowed: &[Algorithm]) -> Result<TokenHeader, JoseError> {
    if token.len() > MAX_TOKEN_BYTES {
        return Err(JoseError::new(K::Malformed, "token too large"));
    }
    if !looks_like_jwt(token) {
        return Err(JoseError::new(K::Malformed, "not a compact JWS"));
    }
    let segment = token.split('.').next().unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JoseError::new(K::Malformed, "header is not base64url"))?;
    let header: serde_json::Map<String, Value> = serde_json::from_slice(&bytes)
        .map_err(|_| JoseError::new(K::Malformed, "header is not a JSON object"))?;
    if header.contains_key("crit") {
        return Err(JoseError::new(
            K::Malformed,
            "critical header parameters are not supported",
        ));
    }
    let alg_name = header
        .get("alg")
        .and_then(Value::as_str)
        .ok_or_else(|| JoseError::new(K::Malformed, "header has no alg"))?;
    let alg: Algorithm = alg_name.parse().map_err(|_| {
        JoseError::new(
            K::AlgorithmNotAllowed,
            format!("alg {alg_name:?} is not supported"),
        )
    })?;
    if !allowed.contains(&alg) {
        return Err(JoseError::new(
            K::AlgorithmNotAllowed,
            format!("alg {alg_name} is not in the allowed signature algorithms"),
        ));
    }
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(k)) => Some(k.clone()),
        Some(_) => return Err(JoseError::new(K::Malformed, "kid is not a string")),
    };
    Ok(TokenHeader { alg, kid })
}

/// Verifies the signature only, with the kind of key the algorithm calls
/// for: HS* with the HMAC key, anything else with the JWKS. Returns the
/// claims, unchecked.
pub fn verify_signature(
    token: &str,
    header: &TokenHeader,
    keys: &Keys<'_>,
) -> Result<Claims, JoseError> {
    let alg = header.alg;
    let is_hmac = matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512);
    if is_hmac {
        let Some(hmac) = keys.hmac else {
            return Err(JoseError::new(
                K::AlgorithmNotAllowed,
                format!("{alg:?} needs an HMAC key and none is configured"),
            ));
        };
        return verify_with(token, alg, &hmac.decoding_key());
    }
    let Some(jwks) = keys.jwks else {
        return Err(JoseError::new(
            K::AlgorithmNotAllowed,
            format!("{alg:?} needs a JWKS and none is configured"),
        ));
    };
    let mut last = None;
    for key in jwks.candidates(header.kid.as_deref(), alg) {
        match verify_with(token, alg, &key.key) {
            Ok(claims) => return Ok(claims),
            Err(e) if e.kind == K::BadSignature => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        JoseError::new(
            K::UnknownKey,
            format!("no key for kid {:?} and alg {alg:?}", header.kid),
        )
    }))
}

fn verify_with(token: &str, alg: Algorithm, key: &DecodingKey) -> Result<Claims, JoseError> {
    // The library checks the signature only; every claim rule is ours, with
    // the caller's `now`.
    let mut v = jsonwebtoken::Validation::new(alg);
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    match jsonwebtoken::decode::<Claims>(token, key, &v) {
        Ok(data) => Ok(data.claims),
        Err(e) => Err(match e.kind() {
            ErrorKind::Base64(_)
            | ErrorKind::Json(_)
            | ErrorKind::Utf8(_)
            | ErrorKind::InvalidToken => {
                JoseError::new(K::Malformed, format!("undecodable token: {e}"))
            }
            ErrorKind::InvalidAlgorithm => JoseError::new(K::AlgorithmNotAllowed, e.to_string()),
            _ => JoseError::new(K::BadSignature, format!("signature check failed: {e}")),
        }),
    }
}

/// Validates a token: header, signature, then the claims against `policy` at
/// `now` (seconds since the epoch). Returns the claims.
pub fn validate(
    token: &str,
    keys: &Keys<'_>,
    policy: &Policy,
    now: u64,
) -> Result<Claims, JoseError> {
    let header = read_header(token, &policy.algorithms)?;
    let claims = verify_signature(token, &header, keys)?;
    check_claims(&claims, policy, now)?;
    Ok(claims)
}

/// The claim rules alone, on claims whose signature was verified.
pub fn check_claims(claims: &Claims, policy: &Policy, now: u64) -> Result<(), JoseError> {
    match claims.get("iss").and_then(Value::as_str) {
        Some(iss) if iss == policy.issuer => {}
        Some(iss) => {
            return Err(JoseError::new(
                K::WrongIssuer,
                format!("iss {iss:?} is not {:?}", policy.issuer),
            ))
        }
        None => return Err(JoseError::new(K::WrongIssuer, "no iss claim")),
    }
    let aud = audiences(claims)?;
    if !aud.iter().any(|a| policy.audiences.iter().any(|p| p == a)) {
        return Err(JoseError::new(
            K::WrongAudience,
            format!("aud {aud:?} names none of {:?}", policy.audiences),
        ));
    }
    let skew = policy.skew_secs;
    let exp =
        numeric_date(claims, "exp")?.ok_or_else(|| JoseError::new(K::Expired, "no exp claim"))?;
    if now >= exp.saturating_add(skew) {
        return Err(JoseError::new(
            K::Expired,
            format!("exp {exp} + skew {skew} <= now {now}"),
        ));
    }
    if let Some(nbf) = numeric_date(claims, "nbf")? {
        if nbf > now.saturating_add(skew) {
            return Err(JoseError::new(
                K::NotYetValid,
                format!("nbf {nbf} > now {now} + skew {skew}"),
            ));
        }
    }
    let iat =
        numeric_date(claims, "iat")?.ok_or_else(|| JoseError::new(K::Malformed, "no iat claim"))?;
    if iat > now.saturating_add(skew) {
        return Err(JoseError::new(
            K::IssuedInFuture,
            format!("iat {iat} > now {now} + skew {skew}"),
        ));
    }
    if let Some(allowed) = &policy.subjects {
        match claims.get("sub").and_then(Value::as_str) {
            Some(sub) if allowed.iter().any(|a| a == sub) => {}
            Some(sub) => {
                return Err(JoseError::new(
                    K::SubjectNotAllowed,
                    format!("sub {sub:?} is not allowed"),
                ))
            }
            None => return Err(JoseError::new(K::SubjectNotAllowed, "no sub claim")),
        }
    }
    Ok(())
}

/// The `aud` claim as a list (a single string or an array of strings).
pub fn audiences(claims: &Claims) -> Result<Vec<&str>, JoseError> {
    match claims.get("aud") {
        Some(Value::String(s)) => Ok(vec![s.as_str()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| JoseError::new(K::Malformed, "aud holds a non-string"))
            })
            .collect(),
        Some(_) => Err(JoseError::new(
            K::Malformed,
            "aud is neither a string nor an array",
        )),
        None => Err(JoseError::new(K::WrongAudience, "no aud claim")),
    }
}

/// A NumericDate claim in whole seconds (fractions are truncated), or
/// `None` when absent. Negative or non-numeric values are malformed.
pub fn numeric_date(claims: &Claims, name: &str) -> Result<Option<u64>, JoseError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.is_finite() && *f >= 0.0)
                    .map(|f| f as u64)
            })
            .map(Some)
            .ok_or_else(|| JoseError::new(K::Malformed, format!("{name} is not a valid date"))),
        Some(_) => Err(JoseError::new(
            K::Malformed,
            format!("{name} is not a number"),
        )),
    }
}
