//! Service accounts and their tokens, as Elasticsearch 8 has them.
//!
//! A service account is built in (`elastic/kibana`, `elastic/fleet-server`,
//! `elastic/enterprise-search-server`): it has no password and no roles,
//! only the fixed role descriptor defined here, and it authenticates with
//! a service token, `Bearer <value>`. The value is Elasticsearch's: the
//! base64 (no padding) of the four bytes `00 01 00 01` followed by
//! `namespace/service/token-name:secret`, so every value starts with
//! `AAEAA`. The secret carries 256 bits from the OS RNG and is stored only
//! as its SHA-256 (as API key secrets are); verification is one hash and
//! one constant-time comparison.

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::authn::{Authentication, AuthenticationType, RealmRef, TokenRef};
use crate::crypto::{self, Secret};
use crate::privilege::RoleDescriptor;
use crate::time::Millis;

/// The realm service-account authentications report.
pub const SERVICE_ACCOUNT_REALM: RealmRef =
    RealmRef::borrowed("_service_account", "_service_account");

/// The `token.type` of `_authenticate` for a token kept in the store
/// (Elasticsearch's "index" source; Tessera has no file tokens).
pub const INDEX_TOKEN_TYPE: &str = "_service_account_index";

/// The only namespace of built-in service accounts.
pub const NAMESPACE: &str = "elastic";

/// The four bytes every service token's decoded value starts with (magic,
/// token type, reserved, format version).
const PREFIX: [u8; 4] = [0, 1, 0, 1];

/// What every service token's value starts with: [`PREFIX`] in base64.
/// Recognising it costs nothing, so other bearer tokens never reach the
/// store's service-token table.
pub const VALUE_PREFIX: &str = "AAEAA";

/// A built-in service account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceAccount {
    /// `namespace/service`.
    pub principal: &'static str,
    /// The cluster privileges of Elasticsearch's definition that Tessera
    /// knows (the rest guards nothing here).
    pub cluster: &'static [&'static str],
}

/// The built-in accounts, sorted by principal (the order listings use).
pub const ACCOUNTS: &[ServiceAccount] = &[
    ServiceAccount {
        principal: "elastic/enterprise-search-server",
        cluster: &["manage", "manage_security"],
    },
    ServiceAccount {
        principal: "elastic/fleet-server",
        cluster: &["monitor", "manage_own_api_key"],
    },
    // Elasticsearch's `kibana_system` descriptor under the account's name.
    ServiceAccount {
        principal: "elastic/kibana",
        cluster: &[
            "monitor",
            "manage_saml",
            "manage_token",
            "manage_oidc",
            "grant_api_key",
            "manage_own_api_key",
            "cancel_task",
        ],
    },
];

/// The account named `principal` (`namespace/service`), if it exists.
pub fn find(principal: &str) -> Option<&'static ServiceAccount> {
    ACCOUNTS.iter().find(|a| a.principal == principal)
}

impl ServiceAccount {
    /// The account's role descriptor, as `GET /_security/service` shows it.
    pub fn role_descriptor(&self) -> RoleDescriptor {
        RoleDescriptor {
            cluster: self.cluster.iter().map(|p| (*p).to_owned()).collect(),
            indices: Vec::new(),
            applications: Vec::new(),
            run_as: Vec::new(),
            metadata: Map::new(),
            global: None,
            remote_indices: None,
            description: None,
        }
    }

    /// Who a request made with the account's token `token_name` is.
    pub fn authentication(&self, token_name: &str) -> Authentication {
        let mut metadata = Map::new();
        metadata.insert("_elastic_service_account".into(), Value::Bool(true));
        Authentication {
            username: self.principal.to_owned(),
            roles: Vec::new(),
            full_name: Some(format!("Service account - {}", self.principal)),
            email: None,
            token: Some(Box::new(TokenRef {
                name: token_name.to_owned(),
                kind: INDEX_TOKEN_TYPE.to_owned(),
            })),
            metadata,
            enabled: true,
            authentication_realm: SERVICE_ACCOUNT_REALM,
            lookup_realm: SERVICE_ACCOUNT_REALM,
            authentication_type: AuthenticationType::Token,
            api_key: None,
        }
    }
}

/// The account a service-account authentication stands for: the realm
/// says so, and only Tessera's own authenticator sets that realm.
pub fn of_authentication(auth: &Authentication) -> Option<&'static ServiceAccount> {
    (auth.authentication_realm == SERVICE_ACCOUNT_REALM)
        .then(|| find(&auth.username))
        .flatten()
}

/// Elasticsearch's rule for token names: 1 to 256 characters of
/// `[a-zA-Z0-9-_]`, not starting with `_`.
pub fn validate_token_name(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if !name.is_empty() && name.len() <= 256 && !name.starts_with('_') && name.chars().all(allowed)
    {
        Ok(())
    } else {
        Err(format!(
            "invalid service token name [{name}]. service account token name must have at least 1 \
             character and at most 256 characters that are alphanumeric (A-Z, a-z, 0-9) or hyphen \
             (-) or underscore (_). It must not begin with an underscore (_)."
        ))
    }
}

/// A name for a token created without one: `token_` and 20 random
/// characters, as Elasticsearch generates.
pub fn generated_token_name() -> String {
    format!(
        "token_{}",
        URL_SAFE_NO_PAD.encode(crypto::random_bytes::<15>())
    )
}

/// A stored service token: never its secret, only the secret's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTokenRecord {
    /// `namespace/service`.
    pub account: String,
    pub name: String,
    pub secret_hash: [u8; 32],
    pub created_at: Millis,
}

/// A freshly minted token: the record to store and the value to hand out
/// once.
pub struct MintedServiceToken {
    pub record: ServiceTokenRecord,
    pub value: Secret,
}

/// Mints a token named `name` (already validated) for `account`.
pub fn mint(account: &ServiceAccount, name: &str, now: Millis) -> MintedServiceToken {
    let secret = Zeroizing::new(URL_SAFE_NO_PAD.encode(crypto::random_bytes::<32>()));
    let value = encode(account.principal, name, &secret);
    MintedServiceToken {
        record: ServiceTokenRecord {
            account: account.principal.to_owned(),
            name: name.to_owned(),
            secret_hash: crypto::sha256(secret.as_bytes()),
            created_at: now,
        },
        value,
    }
}

fn encode(principal: &str, name: &str, secret: &str) -> Secret {
    let mut raw = Zeroizing::new(PREFIX.to_vec());
    raw.extend_from_slice(format!("{principal}/{name}:").as_bytes());
    raw.extend_from_slice(secret.as_bytes());
    Secret::new(STANDARD_NO_PAD.encode(raw.as_slice()))
}

/// A bearer value that has the shape of a service token (nothing is
/// verified yet).
pub struct PresentedServiceToken {
    /// `namespace/service` as presented (it may name no account).
    pub account: String,
    pub name: String,
    secret: Zeroizing<String>,
}

impl std::fmt::Debug for PresentedServiceToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PresentedServiceToken({}/{})", self.account, self.name)
    }
}

impl PresentedServiceToken {
    /// Whether the secret is the one whose SHA-256 is `secret_hash`,
    /// compared in constant time.
    pub fn verifies(&self, secret_hash: &[u8; 32]) -> bool {
        crypto::ct_eq(&crypto::sha256(self.secret.as_bytes()), secret_hash)
    }
}

/// Whether a bearer value may be a service token: a prefix comparison,
/// before any decoding or lookup.
pub fn looks_like_service_token(bearer: &str) -> bool {
    bearer.starts_with(VALUE_PREFIX)
}

/// Parses a bearer value as a service token. `None` when it is not one:
/// not base64 (padding is tolerated), not the prefix, or not
/// `namespace/service/name:secret`.
pub fn parse(bearer: &str) -> Option<PresentedServiceToken> {
    if !looks_like_service_token(bearer) {
        return None;
    }
    let raw = Zeroizing::new(STANDARD_NO_PAD.decode(bearer.trim_end_matches('=')).ok()?);
    let rest = raw.strip_prefix(&PREFIX[..])?;
    let text = Zeroizing::new(String::from_utf8(rest.to_vec()).ok()?);
    let (qualified, secret) = text.split_once(':')?;
    let mut parts = qualified.split('/');
    let (ns, service, name) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || ns.is_empty() || service.is_empty() || name.is_empty() {
        return None;
    }
    Some(PresentedServiceToken {
        account: format!("{ns}/{service}"),
        name: name.to_owned(),
        secret: Zeroizing::new(secret.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_elasticsearch_values_that_verify() {
        let kibana = find("elastic/kibana").unwrap();
        let minted = mint(kibana, "t-1", 5);
        let value = minted.value.expose();
        assert!(value.starts_with("AAEAAWVsYXN0aWMva2liYW5hL3Qt"), "{value}");
        let presented = parse(value).unwrap();
        assert_eq!(presented.account, "elastic/kibana");
        assert_eq!(presented.name, "t-1");
        assert!(presented.verifies(&minted.record.secret_hash));
        assert!(!presented.verifies(&crypto::sha256(b"other")));
        // 256 bits of secret: 43 base64 characters.
        assert_eq!(presented.secret.len(), 43);
        assert!(!format!("{presented:?}").contains(presented.secret.as_str()));
    }

    #[test]
    fn elasticsearch_values_parse() {
        // A value Elasticsearch's own tests use.
        let p = parse("AAEAAWVsYXN0aWMva2liYW5hL2tpYmFuYS10b2tlbjpndGw5dll2VlRMS2xjcWpHcEJRTWNn")
            .unwrap();
        assert_eq!(
            (p.account.as_str(), p.name.as_str()),
            ("elastic/kibana", "kibana-token")
        );
        for not_one in ["", "abc", "AAEAA", "AAEAAWVsYXN0aWM", "dGVzdA=="] {
            assert!(parse(not_one).is_none(), "{not_one}");
        }
    }

    #[test]
    fn token_names_follow_elasticsearch() {
        for ok in ["a", "token-1", "A_b-9", &"x".repeat(256)] {
            assert_eq!(validate_token_name(ok), Ok(()), "{ok}");
        }
        for bad in ["", "_x", "a b", "a/b", "é", &"x".repeat(257)] {
            assert!(validate_token_name(bad).is_err(), "{bad}");
        }
        let generated = generated_token_name();
        assert!(generated.starts_with("token_") && generated.len() == 26);
        assert_eq!(validate_token_name(&generated), Ok(()));
    }

    #[test]
    fn accounts_are_sorted_and_know_their_privileges() {
        let names: Vec<_> = ACCOUNTS.iter().map(|a| a.principal).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        for a in ACCOUNTS {
            assert_eq!(a.role_descriptor().unknown_cluster_privilege(), None);
        }
        let auth = find("elastic/kibana").unwrap().authentication("t");
        assert_eq!(
            of_authentication(&auth).map(|a| a.principal),
            Some("elastic/kibana")
        );
        let native = Authentication::of_realm("elastic/kibana", vec![], crate::authn::NATIVE_REALM);
        assert!(of_authentication(&native).is_none());
    }
}
