//! API keys: long-lived credentials for services, Elasticsearch-compatible.
//!
//! A key is `id:secret`; clients send `ApiKey base64(id:secret)`. The id is
//! public (it appears in listings); the secret carries 256 bits from the OS
//! RNG and is stored only as its SHA-256. Because the secret cannot be
//! guessed, a fast hash is enough, and verification is one hash and one
//! constant-time comparison.

use std::collections::BTreeMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{Map, Value};

use crate::authn::{ApiKeyRef, Authentication, AuthenticationType, API_KEY_REALM};
use crate::crypto;
use crate::privilege::{self, Action, RoleDescriptor};
use crate::time::Millis;

/// A stored API key.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    pub secret_hash: [u8; 32],
    /// The owner as they were authenticated when creating the key.
    pub owner: Authentication,
    pub created_at: Millis,
    pub expires_at: Option<Millis>,
    pub invalidated_at: Option<Millis>,
    /// The key's own role descriptors; empty means "the owner's privileges".
    pub role_descriptors: BTreeMap<String, RoleDescriptor>,
    pub metadata: Map<String, Value>,
}

/// A freshly minted key: the record to store and the secret to hand out once.
pub struct MintedKey {
    pub record: ApiKeyRecord,
    pub secret: zeroize::Zeroizing<String>,
}

impl MintedKey {
    /// `base64(id:secret)`, what clients put after `ApiKey `.
    pub fn encoded(&self) -> String {
        STANDARD.encode(format!("{}:{}", self.record.id, self.secret.as_str()))
    }
}

pub struct NewKey {
    pub name: String,
    pub expires_at: Option<Millis>,
    pub role_descriptors: BTreeMap<String, RoleDescriptor>,
    pub metadata: Map<String, Value>,
}

pub fn mint(owner: &Authentication, new: NewKey, now: Millis) -> MintedKey {
    let id = URL_SAFE_NO_PAD.encode(crypto::random_bytes::<15>());
    let secret = zeroize::Zeroizing::new(URL_SAFE_NO_PAD.encode(crypto::random_bytes::<32>()));
    let record = ApiKeyRecord {
        id,
        name: new.name,
        secret_hash: crypto::sha256(secret.as_bytes()),
        owner: Authentication {
            authentication_type: AuthenticationType::Realm,
            token: None,
            api_key: None,
            ..owner.clone()
        },
        created_at: now,
        expires_at: new.expires_at,
        invalidated_at: None,
        role_descriptors: new.role_descriptors,
        metadata: new.metadata,
    };
    MintedKey { record, secret }
}

/// Splits the credentials after `ApiKey `. `None` when they are not
/// `base64(id:secret)`.
pub fn decode_credentials(encoded: &str) -> Option<(String, zeroize::Zeroizing<String>)> {
    let raw = STANDARD.decode(encoded.trim()).ok()?;
    let text = zeroize::Zeroizing::new(String::from_utf8(raw).ok()?);
    let (id, secret) = text.split_once(':')?;
    if id.is_empty() || secret.is_empty() {
        return None;
    }
    Some((id.to_owned(), zeroize::Zeroizing::new(secret.to_owned())))
}

/// Why a presented key does not authenticate (Elasticsearch's wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyRejection {
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("api key is expired")]
    Expired,
    #[error("api key has been invalidated")]
    Invalidated,
}

impl ApiKeyRecord {
    /// Checks a presented secret and the key's state at `now`.
    pub fn verify(&self, secret: &str, now: Millis) -> Result<(), KeyRejection> {
        if !crypto::ct_eq(&crypto::sha256(secret.as_bytes()), &self.secret_hash) {
            return Err(KeyRejection::InvalidCredentials);
        }
        if self.invalidated_at.is_some() {
            return Err(KeyRejection::Invalidated);
        }
        if self.expires_at.is_some_and(|exp| now >= exp) {
            return Err(KeyRejection::Expired);
        }
        Ok(())
    }

    /// The authentication a request made with this key carries.
    pub fn authentication(&self) -> Authentication {
        Authentication {
            roles: Vec::new(),
            authentication_realm: API_KEY_REALM,
            lookup_realm: API_KEY_REALM,
            authentication_type: AuthenticationType::ApiKey,
            api_key: Some(ApiKeyRef {
                id: self.id.clone(),
                name: Some(self.name.clone()),
            }),
            ..self.owner.clone()
        }
    }

    /// Whether the key's own descriptors allow `action` (the owner's roles
    /// must allow it too: the effective privileges are the intersection).
    pub fn own_descriptors_grant(&self, action: Action) -> bool {
        self.role_descriptors.is_empty()
            || privilege::grants(
                self.role_descriptors
                    .values()
                    .flat_map(|d| d.cluster.iter().map(String::as_str)),
                action,
            )
    }
}

/// A change to an existing key by its owner (update and bulk update):
/// what is given replaces what is stored; `owner` is the owner as they
/// authenticate now, whose roles the key is limited by from then on.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyUpdate {
    pub role_descriptors: Option<BTreeMap<String, RoleDescriptor>>,
    pub metadata: Option<Map<String, Value>>,
    pub expires_at: Option<Millis>,
    pub owner: Authentication,
}

/// Why a key cannot be updated (Elasticsearch's wording takes the id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateRefusal {
    Invalidated,
    Expired,
}

impl UpdateRefusal {
    pub fn reason(self, id: &str) -> String {
        match self {
            UpdateRefusal::Invalidated => format!("cannot update invalidated API key [{id}]"),
            UpdateRefusal::Expired => format!("cannot update expired API key [{id}]"),
        }
    }
}

impl ApiKeyRecord {
    /// The key as `change` leaves it at `now`: `Ok(None)` when nothing
    /// would change (a noop), refused when the key is invalidated or
    /// expired.
    pub fn updated(
        &self,
        change: &KeyUpdate,
        now: Millis,
    ) -> Result<Option<ApiKeyRecord>, UpdateRefusal> {
        if self.invalidated_at.is_some() {
            return Err(UpdateRefusal::Invalidated);
        }
        if self.expires_at.is_some_and(|exp| now >= exp) {
            return Err(UpdateRefusal::Expired);
        }
        let mut next = self.clone();
        if let Some(rd) = &change.role_descriptors {
            next.role_descriptors = rd.clone();
        }
        if let Some(md) = &change.metadata {
            next.metadata = md.clone();
        }
        if let Some(exp) = change.expires_at {
            next.expires_at = Some(exp);
        }
        next.owner = Authentication {
            authentication_type: AuthenticationType::Realm,
            api_key: None,
            ..change.owner.clone()
        };
        Ok((next != *self).then_some(next))
    }
}

/// Elasticsearch's name rules for API keys.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        Err("api key name is required".into())
    } else if name.len() > 256 {
        Err("api key name may not be more than [256] characters long".into())
    } else if name.trim() != name {
        Err("api key name may not contain leading or trailing whitespace".into())
    } else if name.starts_with('_') {
        Err("api key name may not begin with an underscore".into())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authn::NATIVE_REALM;

    fn owner() -> Authentication {
        Authentication {
            full_name: Some("Service".into()),
            ..Authentication::of_realm("svc", vec!["r".into()], NATIVE_REALM)
        }
    }

    fn new_key(expires_at: Option<Millis>) -> NewKey {
        NewKey {
            name: "k".into(),
            expires_at,
            role_descriptors: BTreeMap::new(),
            metadata: Map::new(),
        }
    }

    #[test]
    fn minted_keys_verify_and_encode() {
        let key = mint(&owner(), new_key(Some(1_000)), 0);
        assert_eq!(key.secret.len(), 43);
        let (id, secret) = decode_credentials(&key.encoded()).unwrap();
        assert_eq!(id, key.record.id);
        assert_eq!(key.record.verify(&secret, 10), Ok(()));
        assert_eq!(
            key.record.verify("wrong", 10),
            Err(KeyRejection::InvalidCredentials)
        );
        assert_eq!(
            key.record.verify(&secret, 1_000),
            Err(KeyRejection::Expired)
        );
        let mut gone = key.record.clone();
        gone.invalidated_at = Some(5);
        assert_eq!(gone.verify(&secret, 10), Err(KeyRejection::Invalidated));
        let auth = key.record.authentication();
        assert_eq!(auth.username, "svc");
        assert!(auth.roles.is_empty());
        assert_eq!(auth.authentication_type, AuthenticationType::ApiKey);
    }

    #[test]
    fn bad_credentials_do_not_decode() {
        for bad in [
            "",
            "!!!",
            &STANDARD.encode("nocolon"),
            &STANDARD.encode(":x"),
            &STANDARD.encode("x:"),
        ] {
            assert!(decode_credentials(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn updates_replace_what_is_given_and_refuse_dead_keys() {
        let key = mint(&owner(), new_key(Some(1_000)), 0).record;
        let same = KeyUpdate {
            role_descriptors: None,
            metadata: None,
            expires_at: None,
            owner: key.owner.clone(),
        };
        assert_eq!(key.updated(&same, 10), Ok(None));
        let mut metadata = Map::new();
        metadata.insert("env".into(), "prod".into());
        let change = KeyUpdate {
            metadata: Some(metadata.clone()),
            expires_at: Some(2_000),
            ..same.clone()
        };
        let next = key.updated(&change, 10).unwrap().unwrap();
        assert_eq!((next.metadata, next.expires_at), (metadata, Some(2_000)));
        assert_eq!(next.secret_hash, key.secret_hash);
        let mut roles_changed = same.clone();
        roles_changed.owner.roles = vec!["other".into()];
        assert!(key.updated(&roles_changed, 10).unwrap().is_some());
        assert_eq!(key.updated(&same, 1_000), Err(UpdateRefusal::Expired));
        let mut gone = key.clone();
        gone.invalidated_at = Some(5);
        assert_eq!(gone.updated(&same, 10), Err(UpdateRefusal::Invalidated));
        assert_eq!(
            UpdateRefusal::Invalidated.reason("k"),
            "cannot update invalidated API key [k]"
        );
    }

    #[test]
    fn names_follow_the_rules() {
        assert!(validate_name("ok name").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("_x").is_err());
        assert!(validate_name(&"a".repeat(257)).is_err());
    }
}
