//! The keys a token may be signed with: a JWKS of public keys, or one HMAC
//! secret. Parsing only; reading and fetching are in [`super::source`].

use std::fmt;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use zeroize::Zeroizing;

/// The largest JWKS document accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 512 * 1024;

/// One public verification key of a JWKS.
#[derive(Clone)]
pub struct PublicKey {
    /// The `kid`, when the JWKS gives one.
    pub kid: Option<String>,
    /// The `alg` the JWKS pins this key to, when it does.
    pub alg: Option<Algorithm>,
    /// The algorithms this key can verify (from its type and curve).
    pub algorithms: Vec<Algorithm>,
    pub(crate) key: DecodingKey,
    /// The JWK it was read from: what tells two keys apart.
    jwk: serde_json::Value,
}

/// Two keys are the same when their JWKs are (the decoding key is made
/// from the JWK).
impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.jwk == other.jwk
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// True when this key may verify a token signed with `alg`.
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.alg.is_none_or(|pinned| pinned == alg) && self.algorithms.contains(&alg)
    }
}

/// A parsed JWKS: the public keys (RSA, EC P-256/P-384, Ed25519) usable for
/// signatures. Symmetric (`oct`) keys, encryption keys and unsupported curves
/// are skipped: an HMAC secret comes only from an [`HmacKey`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeySet {
    keys: Vec<PublicKey>,
}

/// Why a JWKS document could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeySetError {
    #[error("the JWKS is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("the JWKS is not a JSON object with a \"keys\" array: {0}")]
    NotJwks(String),
    #[error("the JWKS holds no usable signature key (RSA, EC P-256/P-384 or Ed25519)")]
    NoUsableKey,
}

impl KeySet {
    /// Parses a JWKS document (`{"keys": [...]}`). Keys that cannot be used
    /// for signatures are skipped; a set with no usable key is an error.
    pub fn parse(bytes: &[u8]) -> Result<KeySet, KeySetError> {
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(KeySetError::TooLarge);
        }
        let doc: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| KeySetError::NotJwks(e.to_string()))?;
        let entries = doc
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or_else(|| KeySetError::NotJwks("no \"keys\" array".into()))?;
        let keys: Vec<PublicKey> = entries.iter().filter_map(public_key).collect();
        if keys.is_empty() {
            return Err(KeySetError::NoUsableKey);
        }
        Ok(KeySet { keys })
    }

    /// All usable keys, in document order.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// The keys that may verify a token with this `kid` and `alg`: the key
    /// with that id when the token names one, else every key accepting `alg`.
    pub fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a PublicKey> + 'a {
        self.keys.iter().filter(move |k| {
            k.accepts(alg)
                && match kid {
                    Some(kid) => k.kid.as_deref() == Some(kid),
                    None => true,
                }
        })
    }
}

fn public_key(value: &serde_json::Value) -> Option<PublicKey> {
    let jwk: Jwk = serde_json::from_value(value.clone()).ok()?;
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption) | Some(PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let algorithms = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => vec![
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => vec![Algorithm::ES256],
            EllipticCurve::P384 => vec![Algorithm::ES384],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            vec![Algorithm::EdDSA]
        }
        _ => return None,
    };
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(ka) => Some(key_algorithm(ka)?),
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(PublicKey {
        kid: jwk.common.key_id.clone(),
        alg,
        algorithms,
        key,
        jwk: value.clone(),
    })
}

fn key_algorithm(ka: KeyAlgorithm) -> Option<Algorithm> {
    Some(match ka {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// A configured HMAC secret (HS256/384/512). Its `Debug` says nothing of it.
#[derive(Clone)]
pub struct HmacKey {
    secret: Zeroizing<Vec<u8>>,
}

impl HmacKey {
    /// The secret's bytes, as configured (UTF-8 text is used as is, as
    /// Elasticsearch does with `hmac_key`).
    pub fn new(secret: impl Into<Vec<u8>>) -> HmacKey {
        HmacKey {
            secret: Zeroizing::new(secret.into()),
        }
    }

    pub(crate) fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_secret(&self.secret)
    }

    /// The secret's length in bytes (for the start-up checks).
    pub fn len(&self) -> usize {
        self.secret.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secret.is_empty()
    }
}

impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey(<redacted>)")
    }
}

/// The keys one validation may use: public keys for RS/PS/ES/EdDSA, an HMAC
/// secret for HS*. Either may be absent; an algorithm whose kind of key is
/// absent is refused as not allowed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Keys<'a> {
    pub jwks: Option<&'a KeySet>,
    pub hmac: Option<&'a HmacKey>,
}

impl<'a> Keys<'a> {
    pub fn jwks(jwks: &'a KeySet) -> Keys<'a> {
        Keys {
            jwks: Some(jwks),
            hmac: None,
        }
    }

    pub fn hmac(hmac: &'a HmacKey) -> Keys<'a> {
        Keys {
            jwks: None,
            hmac: Some(hmac),
        }
    }
}
