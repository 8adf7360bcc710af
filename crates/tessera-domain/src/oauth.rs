//! OAuth 2.0 clients (RFC 7591) and scopes (RFC 6749 §3.3).
//!
//! A client is `client_id` + `client_secret`. The id is public: 128 bits
//! from the OS RNG, base64url. The secret carries 256 bits from the OS RNG,
//! is shown once, and is stored only as its SHA-256: it cannot be guessed,
//! so a fast hash is enough, and verification is one hash and one
//! constant-time comparison (as for API keys).
//!
//! Scope rules: a client registers a list of scope tokens; a token request
//! may ask for any subset of them (none named = all registered), and asking
//! for anything else is `invalid_scope`. Tokens issued through the OAuth
//! endpoints always carry their granted scope (`Some`, possibly empty);
//! tokens issued through the Elasticsearch API carry none (`None`,
//! unrestricted). A token with a scope may administer Tessera only if that
//! scope holds [`ADMIN_SCOPE`].

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::authn::{Authentication, ClientRef, RealmRef};
use crate::crypto;
use crate::time::Millis;

/// The realm OAuth clients authenticate in: the `realm` of their
/// [`ClientRef`] and of a client-credentials token's subject.
pub const OAUTH_CLIENT_REALM: RealmRef = RealmRef::borrowed("_oauth2_client", "_oauth2_client");

/// The scope a restricted token needs to call Tessera's administrative
/// endpoints (`/_security/*` except `GET /_security/_authenticate`, and
/// `/oauth2/register`).
pub const ADMIN_SCOPE: &str = "tessera:admin";

/// A client registered with this scope may introspect every token at
/// `/oauth2/introspect`, not only those issued to it (RFC 7662 §4).
pub const INTROSPECT_SCOPE: &str = "tessera:introspect";

/// Longest accepted `client_name`, in characters.
pub const MAX_CLIENT_NAME_CHARS: usize = 256;
/// Most scope tokens a client may register.
pub const MAX_SCOPE_TOKENS: usize = 64;
/// Longest accepted scope token, in bytes.
pub const MAX_SCOPE_TOKEN_BYTES: usize = 256;

/// The grant types a client may register (RFC 7591 `grant_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    ClientCredentials,
    Password,
    RefreshToken,
}

impl GrantType {
    pub const ALL: [GrantType; 3] = [
        GrantType::ClientCredentials,
        GrantType::Password,
        GrantType::RefreshToken,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::Password => "password",
            GrantType::RefreshToken => "refresh_token",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == s)
    }
}

/// How a client authenticates at the token, revocation and introspection
/// endpoints (RFC 7591 `token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// HTTP Basic with the form-urlencoded id and secret (RFC 6749 §2.3.1).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

impl AuthMethod {
    pub const ALL: [AuthMethod; 2] = [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost];

    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// What a client registered: everything about it except its identity,
/// secret and creation time. Replaced as a whole on update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMetadata {
    pub client_name: Option<String>,
    /// Never empty, no duplicates, in [`GrantType::ALL`] order.
    pub grant_types: Vec<GrantType>,
    /// Valid scope tokens, no duplicates, in registration order.
    pub scope: Vec<String>,
    pub token_endpoint_auth_method: AuthMethod,
}

impl Default for ClientMetadata {
    fn default() -> Self {
        Self {
            client_name: None,
            grant_types: vec![GrantType::ClientCredentials],
            scope: Vec::new(),
            token_endpoint_auth_method: AuthMethod::ClientSecretBasic,
        }
    }
}

/// Registration input as sent (RFC 7591 §2 names); absent fields take
/// their defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataInput {
    pub client_name: Option<String>,
    pub grant_types: Option<Vec<String>>,
    pub scope: Option<String>,
    pub token_endpoint_auth_method: Option<String>,
}

impl ClientMetadata {
    /// Validates registration input. `Err` is the `error_description` of an
    /// `invalid_client_metadata` answer.
    pub fn from_input(input: MetadataInput) -> Result<Self, String> {
        let defaults = ClientMetadata::default();
        let client_name = match input.client_name {
            None => None,
            Some(name) => {
                validate_client_name(&name)?;
                Some(name)
            }
        };
        let grant_types = match input.grant_types {
            None => defaults.grant_types,
            Some(names) => {
                if names.is_empty() {
                    return Err("grant_types must name at least one grant type".into());
                }
                let mut grants = Vec::new();
                for name in &names {
                    let grant = GrantType::parse(name).ok_or_else(|| {
                        format!(
                            "grant type [{name}] is not supported; supported: [{}]",
                            GrantType::ALL.map(GrantType::as_str).join(", ")
                        )
                    })?;
                    if !grants.contains(&grant) {
                        grants.push(grant);
                    }
                }
                grants.sort();
                grants
            }
        };
        let scope = match input.scope {
            None => defaults.scope,
            Some(text) if text.is_empty() => Vec::new(),
            Some(text) => {
                let tokens = parse_scope(&text).map_err(|e| format!("scope: {e}"))?;
                if tokens.len() > MAX_SCOPE_TOKENS {
                    return Err(format!(
                        "scope may hold at most {MAX_SCOPE_TOKENS} scope tokens"
                    ));
                }
                tokens
            }
        };
        let token_endpoint_auth_method = match input.token_endpoint_auth_method {
            None => defaults.token_endpoint_auth_method,
            Some(name) => AuthMethod::parse(&name).ok_or_else(|| {
                format!(
                    "token_endpoint_auth_method [{name}] is not supported; supported: [{}]",
                    AuthMethod::ALL.map(AuthMethod::as_str).join(", ")
                )
            })?,
        };
        Ok(Self {
            client_name,
            grant_types,
            scope,
            token_endpoint_auth_method,
        })
    }

    /// The registered scope as RFC 6749 renders it (space-delimited).
    pub fn scope_text(&self) -> String {
        self.scope.join(" ")
    }
}

fn validate_client_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        Err("client_name must not be blank".into())
    } else if name.chars().count() > MAX_CLIENT_NAME_CHARS {
        Err(format!(
            "client_name may not be longer than {MAX_CLIENT_NAME_CHARS} characters"
        ))
    } else if name.chars().any(char::is_control) {
        Err("client_name may not contain control characters".into())
    } else {
        Ok(())
    }
}

/// Whether `c` may appear in a scope token: RFC 6749 §3.3,
/// `%x21 / %x23-5B / %x5D-7E` (printable ASCII except space, `"` and `\`).
fn is_scope_char(c: u8) -> bool {
    c == 0x21 || (0x23..=0x5B).contains(&c) || (0x5D..=0x7E).contains(&c)
}

/// Parses a space-delimited scope (RFC 6749 §3.3) into its tokens, without
/// duplicates, in order. An empty scope, an empty token (two spaces in a
/// row) or a character outside the scope-token set is an error.
pub fn parse_scope(text: &str) -> Result<Vec<String>, String> {
    if text.is_empty() {
        return Err("the scope is empty".into());
    }
    let mut tokens: Vec<String> = Vec::new();
    for token in text.split(' ') {
        if token.is_empty() {
            return Err("scope tokens are separated by single spaces".into());
        }
        if token.len() > MAX_SCOPE_TOKEN_BYTES {
            return Err(format!(
                "a scope token may not be longer than {MAX_SCOPE_TOKEN_BYTES} characters"
            ));
        }
        if !token.bytes().all(is_scope_char) {
            return Err(format!(
                "scope token [{}] has a character outside RFC 6749's scope-token set",
                token.escape_default()
            ));
        }
        if !tokens.iter().any(|t| t == token) {
            tokens.push(token.to_owned());
        }
    }
    Ok(tokens)
}

/// Whether a token with this scope may call an administrative endpoint.
/// `None` is unrestricted (tokens from the Elasticsearch API).
pub fn scope_allows_admin(scope: Option<&[String]>) -> bool {
    scope.is_none_or(|s| s.iter().any(|t| t == ADMIN_SCOPE))
}

/// Why a requested scope is refused (`invalid_scope`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("the requested scope is malformed: {0}")]
    Malformed(String),
    #[error("scope [{0}] is not registered for this client")]
    NotRegistered(String),
}

/// A registered client as stored. The secret appears only as its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthClientRecord {
    pub client_id: String,
    pub secret_hash: [u8; 32],
    pub metadata: ClientMetadata,
    pub created_at: Millis,
}

/// A freshly minted client: the record to store and the secret to show once.
pub struct MintedClient {
    pub record: OAuthClientRecord,
    pub secret: Zeroizing<String>,
}

/// The caller recorded on tokens the client `client_id` obtains.
pub fn client_ref(client_id: &str) -> ClientRef {
    ClientRef {
        username: client_id.to_owned(),
        realm: OAUTH_CLIENT_REALM.name.to_string(),
        api_key_id: None,
    }
}

/// A new secret: the string to hand out once and the hash to store.
pub fn new_secret() -> (Zeroizing<String>, [u8; 32]) {
    let secret = Zeroizing::new(URL_SAFE_NO_PAD.encode(crypto::random_bytes::<32>()));
    let hash = crypto::sha256(secret.as_bytes());
    (secret, hash)
}

/// Registers a client: a random id (128 bits) and secret (256 bits).
pub fn mint_client(metadata: ClientMetadata, now: Millis) -> MintedClient {
    // Never starting with `-`, which command lines would take for a flag.
    let client_id = loop {
        let id = URL_SAFE_NO_PAD.encode(crypto::random_bytes::<16>());
        if !id.starts_with('-') {
            break id;
        }
    };
    let (secret, secret_hash) = new_secret();
    MintedClient {
        record: OAuthClientRecord {
            client_id,
            secret_hash,
            metadata,
            created_at: now,
        },
        secret,
    }
}

impl OAuthClientRecord {
    /// The client as the registration endpoints (and `tessera client`)
    /// show it (RFC 7591 §3.2.1); the secret only when it was just minted.
    pub fn registration_json(&self, secret: Option<&str>) -> serde_json::Value {
        use serde_json::{Map, Value};
        let m = &self.metadata;
        let mut out = Map::new();
        out.insert("client_id".into(), self.client_id.clone().into());
        if let Some(secret) = secret {
            out.insert("client_secret".into(), secret.into());
        }
        out.insert(
            "client_id_issued_at".into(),
            self.created_at.div_euclid(1000).into(),
        );
        out.insert("client_secret_expires_at".into(), 0.into());
        if let Some(name) = &m.client_name {
            out.insert("client_name".into(), name.clone().into());
        }
        out.insert(
            "grant_types".into(),
            m.grant_types
                .iter()
                .map(|g| Value::from(g.as_str()))
                .collect(),
        );
        if !m.scope.is_empty() {
            out.insert("scope".into(), m.scope_text().into());
        }
        out.insert(
            "token_endpoint_auth_method".into(),
            m.token_endpoint_auth_method.as_str().into(),
        );
        Value::Object(out)
    }

    /// Whether `presented` is this client's secret (constant time).
    pub fn verify_secret(&self, presented: &str) -> bool {
        crypto::ct_eq(&crypto::sha256(presented.as_bytes()), &self.secret_hash)
    }

    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.metadata.grant_types.contains(&grant)
    }

    /// The caller recorded on tokens this client obtains; only it may
    /// refresh or revoke them.
    pub fn client_ref(&self) -> ClientRef {
        client_ref(&self.client_id)
    }

    /// Who a client-credentials token stands for: the client itself, with
    /// no roles.
    pub fn authentication(&self) -> Authentication {
        Authentication {
            full_name: self.metadata.client_name.clone(),
            ..Authentication::of_realm(self.client_id.clone(), Vec::new(), OAUTH_CLIENT_REALM)
        }
    }

    /// The scope to grant for a token request's `scope` parameter: every
    /// registered scope when none is named, else exactly the named ones,
    /// each of which must be registered.
    pub fn grant_scope(&self, requested: Option<&str>) -> Result<Vec<String>, ScopeError> {
        let Some(text) = requested else {
            return Ok(self.metadata.scope.clone());
        };
        let tokens = parse_scope(text).map_err(ScopeError::Malformed)?;
        if let Some(unknown) = tokens.iter().find(|t| !self.metadata.scope.contains(t)) {
            return Err(ScopeError::NotRegistered(unknown.clone()));
        }
        Ok(tokens)
    }
}

/// Splits `client_id:client_secret` from a Basic header's decoded text,
/// each form-urlencoded per RFC 6749 §2.3.1 (`+` is a space, `%XX` a
/// byte). `None` when the text has no colon or a part is not UTF-8.
pub fn decode_basic_client(text: &str) -> Option<(String, Zeroizing<String>)> {
    let (id, secret) = text.split_once(':')?;
    Some((form_decode(id)?, Zeroizing::new(form_decode(secret)?)))
}

/// `application/x-www-form-urlencoded` decoding of one value.
pub fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(grants: Option<&[&str]>, scope: Option<&str>, method: Option<&str>) -> MetadataInput {
        MetadataInput {
            client_name: Some("svc".into()),
            grant_types: grants.map(|g| g.iter().map(|s| s.to_string()).collect()),
            scope: scope.map(str::to_owned),
            token_endpoint_auth_method: method.map(str::to_owned),
        }
    }

    #[test]
    fn metadata_defaults_and_validation() {
        let m = ClientMetadata::from_input(MetadataInput::default()).unwrap();
        assert_eq!(m, ClientMetadata::default());
        assert_eq!(m.grant_types, [GrantType::ClientCredentials]);
        let m = ClientMetadata::from_input(input(
            Some(&["refresh_token", "password", "password"]),
            Some("b a b"),
            Some("client_secret_post"),
        ))
        .unwrap();
        assert_eq!(
            m.grant_types,
            [GrantType::Password, GrantType::RefreshToken]
        );
        assert_eq!(m.scope, ["b", "a"]);
        assert_eq!(m.scope_text(), "b a");
        assert_eq!(m.token_endpoint_auth_method, AuthMethod::ClientSecretPost);
        for bad in [
            input(Some(&["authorization_code"]), None, None),
            input(Some(&[]), None, None),
            input(None, Some("a  b"), None),
            input(None, Some("caf\"e"), None),
            input(None, None, Some("none")),
            input(None, None, Some("private_key_jwt")),
            MetadataInput {
                client_name: Some(" ".into()),
                ..Default::default()
            },
        ] {
            assert!(ClientMetadata::from_input(bad.clone()).is_err(), "{bad:?}");
        }
        assert!(ClientMetadata::from_input(input(None, Some(""), None))
            .unwrap()
            .scope
            .is_empty());
    }

    #[test]
    fn scope_tokens_follow_rfc_6749() {
        assert_eq!(
            parse_scope("tessera:admin read!#[]~").unwrap(),
            ["tessera:admin", "read!#[]~"]
        );
        for bad in ["", " a", "a ", "a\tb", "a\\b", "é"] {
            assert!(parse_scope(bad).is_err(), "{bad:?}");
        }
        assert!(scope_allows_admin(None));
        assert!(!scope_allows_admin(Some(&[])));
        assert!(scope_allows_admin(Some(&[ADMIN_SCOPE.to_string()])));
    }

    #[test]
    fn clients_mint_verify_and_grant_scope() {
        let metadata = ClientMetadata::from_input(input(None, Some("a b"), None)).unwrap();
        let minted = mint_client(metadata, 5);
        let c = &minted.record;
        assert_eq!(c.client_id.len(), 22, "128 bits, base64url");
        assert_eq!(minted.secret.len(), 43, "256 bits, base64url");
        assert!(c.verify_secret(&minted.secret));
        assert!(!c.verify_secret("nope"));
        assert_ne!(
            mint_client(ClientMetadata::default(), 5).record.client_id,
            c.client_id
        );
        assert!(c.allows_grant(GrantType::ClientCredentials));
        assert!(!c.allows_grant(GrantType::Password));
        assert_eq!(c.grant_scope(None).unwrap(), ["a", "b"]);
        assert_eq!(c.grant_scope(Some("b")).unwrap(), ["b"]);
        assert_eq!(
            c.grant_scope(Some("b c")),
            Err(ScopeError::NotRegistered("c".into()))
        );
        assert!(matches!(
            c.grant_scope(Some("")),
            Err(ScopeError::Malformed(_))
        ));
        let auth = c.authentication();
        assert_eq!(auth.username, c.client_id);
        assert!(auth.roles.is_empty());
        assert_eq!(auth.authentication_realm, OAUTH_CLIENT_REALM);
        assert_eq!(auth.full_name.as_deref(), Some("svc"));
        assert_eq!(c.client_ref().realm, "_oauth2_client");
        let (s1, h1) = new_secret();
        assert_eq!(crypto::sha256(s1.as_bytes()), h1);
    }

    #[test]
    fn basic_client_credentials_are_form_decoded() {
        let (id, secret) = decode_basic_client("my+client%3A1:s%25e+c%2Bret").unwrap();
        assert_eq!(id, "my client:1");
        assert_eq!(secret.as_str(), "s%e c+ret");
        assert!(decode_basic_client("nocolon").is_none());
        assert!(decode_basic_client("a:%zz").is_none());
        assert!(decode_basic_client("a:%4").is_none());
        assert!(decode_basic_client("a:%+1").is_none());
        assert!(decode_basic_client("a:%ff").is_none(), "not UTF-8");
    }
}
