//! OpenID Connect test fixtures (feature `testing`): ID tokens signed in
//! the test (RS256 with the test IdP key of `tests/data`, or any header
//! and signature a test wants), and the JWKS that publishes the key.

use base64::Engine;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};

use super::data;

/// The key id the JWKS gives the test key.
pub const KID: &str = "test-key-1";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn key(name: &str) -> RsaPrivateKey {
    RsaPrivateKey::from_pkcs8_pem(&data(name)).expect("a PKCS#8 test key")
}

/// A compact JWT of `header` and `claims`, signed RS256 with the key file
/// `key_file` of `tests/data` (`idp.key`, `attacker.key`).
pub fn sign_with(header: &Value, claims: &Value, key_file: &str) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signer = rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(key(key_file));
    let signature = signer.sign(input.as_bytes());
    format!("{input}.{}", b64(&signature.to_bytes()))
}

/// An ID token with `claims`, signed RS256 by the test key under [`KID`].
pub fn id_token(claims: &Value) -> String {
    sign_with(
        &json!({"alg": "RS256", "typ": "JWT", "kid": KID}),
        claims,
        "idp.key",
    )
}

/// An unsigned token (`alg: none`).
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"}).to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    )
}

/// The JWKS publishing the test key (`idp.key`) under `kid`.
pub fn jwks(kid: &str) -> Value {
    let public = key("idp.key").to_public_key();
    json!({"keys": [{
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": b64(&public.n().to_bytes_be()),
        "e": b64(&public.e().to_bytes_be()),
    }]})
}

/// The claims of a valid ID token for `issuer`/`client_id`, issued at
/// `now_s` (seconds) and valid five minutes, for `nonce`.
pub fn claims(issuer: &str, client_id: &str, nonce: &str, now_s: i64) -> Value {
    json!({
        "iss": issuer, "sub": "alice", "aud": client_id, "nonce": nonce,
        "iat": now_s, "exp": now_s + 300, "email": "alice@example.org",
    })
}
