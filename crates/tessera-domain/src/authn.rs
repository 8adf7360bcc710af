//! Who a request is: the authentication object that `_authenticate` returns
//! and that a token carries with it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The realm of the native users, named as Elasticsearch names the implicit
/// native realm.
pub const NATIVE_REALM: RealmRef = RealmRef::borrowed("default_native", "native");
/// The realm API-key authentications report.
pub const API_KEY_REALM: RealmRef = RealmRef::borrowed("_es_api_key", "_es_api_key");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RealmRef {
    pub name: std::borrow::Cow<'static, str>,
    #[serde(rename = "type")]
    pub kind: std::borrow::Cow<'static, str>,
}

impl RealmRef {
    pub const fn borrowed(name: &'static str, kind: &'static str) -> Self {
        Self {
            name: std::borrow::Cow::Borrowed(name),
            kind: std::borrow::Cow::Borrowed(kind),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthenticationType {
    Realm,
    Token,
    ApiKey,
}

/// The service token a service-account authentication used
/// (`_authenticate`'s `token`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRef {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyRef {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An authenticated identity, serialised field for field as Elasticsearch's
/// `_authenticate` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authentication {
    pub username: String,
    pub roles: Vec<String>,
    pub full_name: Option<String>,
    pub email: Option<String>,
    /// Only for service accounts: the service token used.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub token: Option<Box<TokenRef>>,
    pub metadata: Map<String, Value>,
    pub enabled: bool,
    pub authentication_realm: RealmRef,
    pub lookup_realm: RealmRef,
    pub authentication_type: AuthenticationType,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub api_key: Option<ApiKeyRef>,
}

impl Authentication {
    /// `username` with `roles`, authenticated by `realm` itself (neither a
    /// token nor an API key), enabled, with no name, email or metadata.
    pub fn of_realm(username: impl Into<String>, roles: Vec<String>, realm: RealmRef) -> Self {
        Self {
            username: username.into(),
            roles,
            full_name: None,
            email: None,
            token: None,
            metadata: Map::new(),
            enabled: true,
            authentication_realm: realm.clone(),
            lookup_realm: realm,
            authentication_type: AuthenticationType::Realm,
            api_key: None,
        }
    }

    /// The same identity as seen through a token minted for it.
    pub fn as_token(&self) -> Self {
        Self {
            authentication_type: AuthenticationType::Token,
            ..self.clone()
        }
    }

    /// The identity that "owns" requests made with this authentication: the
    /// client recorded on tokens it creates.
    pub fn client_ref(&self) -> ClientRef {
        ClientRef {
            username: self.username.clone(),
            realm: self.authentication_realm.name.to_string(),
            api_key_id: self.api_key.as_ref().map(|k| k.id.clone()),
        }
    }
}

/// The caller that created a token. Only the same caller may refresh it:
/// same user in the same realm (and, for API keys, the same key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRef {
    pub username: String,
    pub realm: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub api_key_id: Option<String>,
}
