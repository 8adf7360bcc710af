//! JWT fixtures: the test keys `jwt-*.key` of `tests/data`, their JWKS, and
//! tokens signed with them (or forged: `alg: none`, HS/RS confusion).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub const ISSUER: &str = "https://issuer.example.org";
pub const AUDIENCE: &str = "tessera";

/// A signing key of the test issuer.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    encoding: EncodingKey,
}

impl TestKey {
    /// `jwt-rsa-1.key` or `jwt-rsa-2.key` (RS256).
    pub fn rsa(n: u8, kid: &str) -> TestKey {
        let pem = super::data(&format!("jwt-rsa-{n}.key"));
        TestKey {
            kid: kid.into(),
            alg: Algorithm::RS256,
            encoding: EncodingKey::from_rsa_pem(pem.as_bytes()).expect("test RSA key"),
        }
    }

    /// `jwt-ec-1.key` (ES256).
    pub fn ec(kid: &str) -> TestKey {
        let pem = super::data("jwt-ec-1.key");
        TestKey {
            kid: kid.into(),
            alg: Algorithm::ES256,
            encoding: EncodingKey::from_ec_pem(pem.as_bytes()).expect("test EC key"),
        }
    }

    /// The public JWK, with `kid`, `use: sig` and `alg`.
    pub fn jwk(&self) -> Value {
        let jwk = Jwk::from_encoding_key(&self.encoding, self.alg).expect("jwk");
        let mut v = serde_json::to_value(jwk).expect("jwk json");
        v["kid"] = json!(self.kid);
        v["use"] = json!("sig");
        v
    }

    /// A token with this key's `alg` and `kid`.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        encode(&header, claims, &self.encoding).expect("sign")
    }
}

/// A JWKS document of these keys.
pub fn jwks(keys: &[&TestKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }).to_string()
}

/// An HS256 token signed with `secret`.
pub fn sign_hs256(secret: &[u8], claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

/// An unsigned token (`alg: none`).
pub fn unsigned(claims: &Value) -> String {
    format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The public key of `jwt-rsa-1.key` as PEM text (what an attacker who
/// tries HS/RS confusion uses as the HMAC secret).
pub fn rsa_1_public_pem() -> String {
    super::data("jwt-rsa-1.pub")
}

/// Claims of the test issuer for the test audience: `iat` = `now`, `exp` =
/// `now + lifetime`.
pub fn claims(sub: &str, now: u64, lifetime: u64) -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "iat": now,
        "exp": now + lifetime,
    })
}
