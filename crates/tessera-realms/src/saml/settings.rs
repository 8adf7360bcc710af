//! The settings of a SAML realm, with Elasticsearch's setting names.
//!
//! In the config file a realm is a TOML table whose dotted keys are
//! Elasticsearch's (`idp.metadata.path = "…"` is the nested table
//! `idp.metadata`). [`SamlRealmSettings`] is that table as written;
//! [`SamlRealmSettings::validate`] checks it once and gives a
//! [`SamlRealmConfig`], or a [`SettingsError`] naming the key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

pub use crate::settings::{check_url, SettingsError};
use crate::settings::{Checker, ClaimSettings};

/// The default NameID format Elasticsearch requests.
pub const NAMEID_TRANSIENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";
/// The persistent NameID format.
pub const NAMEID_PERSISTENT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent";

/// A realm's table as written in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamlRealmSettings {
    pub order: Option<i64>,
    #[serde(default)]
    pub idp: IdpSettings,
    #[serde(default)]
    pub sp: SpSettings,
    #[serde(default)]
    pub attributes: AttributeSettings,
    #[serde(default)]
    pub attribute_patterns: BTreeMap<String, String>,
    #[serde(default)]
    pub attribute_delimiters: BTreeMap<String, String>,
    pub nameid_format: Option<String>,
    #[serde(default)]
    pub nameid: NameIdSettings,
    pub force_authn: Option<bool>,
    pub populate_user_metadata: Option<bool>,
    #[serde(default)]
    pub req_authn_context_class_ref: Vec<String>,
    #[serde(default)]
    pub signing: SigningSettings,
    #[serde(default)]
    pub encryption: EncryptionSettings,
    pub allowed_clock_skew: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpSettings {
    #[serde(default)]
    pub metadata: IdpMetadataSettings,
    pub entity_id: Option<String>,
    pub use_single_logout: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdpMetadataSettings {
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpSettings {
    pub entity_id: Option<String>,
    pub acs: Option<String>,
    pub logout: Option<String>,
}

/// `attributes.*`: the attribute (or `nameid`) each user property comes from.
pub type AttributeSettings = ClaimSettings;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameIdSettings {
    pub allow_create: Option<bool>,
    pub sp_qualifier: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSettings {
    pub certificate: Option<String>,
    pub key: Option<String>,
    pub saml_messages: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncryptionSettings {
    pub certificate: Option<String>,
    pub key: Option<String>,
}

/// Where a user property comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeSource {
    /// The NameID (`nameid`); with `persistent_only`, only a persistent one
    /// (`nameid:persistent`).
    NameId { persistent_only: bool },
    /// An attribute, by Name or FriendlyName.
    Attribute(String),
}

/// How a user property is read: its source and an optional pattern whose
/// single group is the value.
#[derive(Debug, Clone)]
pub struct AttributeRule {
    pub source: AttributeSource,
    pub pattern: Option<regex::Regex>,
}

/// The SAML messages the SP signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedMessage {
    AuthnRequest,
    LogoutRequest,
    LogoutResponse,
}

/// A key pair given as files: PEM certificate and PEM private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
}

/// A validated SAML realm.
#[derive(Debug, Clone)]
pub struct SamlRealmConfig {
    pub name: String,
    pub order: i64,
    pub idp_metadata_path: PathBuf,
    pub idp_entity_id: String,
    pub idp_use_single_logout: bool,
    pub sp_entity_id: String,
    pub sp_acs: String,
    pub sp_logout: Option<String>,
    pub principal: AttributeRule,
    pub groups: Option<AttributeRule>,
    pub name_attribute: Option<AttributeRule>,
    pub mail: Option<AttributeRule>,
    pub dn: Option<AttributeRule>,
    pub groups_delimiter: Option<String>,
    pub nameid_format: String,
    pub nameid_allow_create: bool,
    pub nameid_sp_qualifier: Option<String>,
    pub force_authn: bool,
    pub populate_user_metadata: bool,
    pub req_authn_context_class_ref: Vec<String>,
    pub signing: Option<KeyFiles>,
    pub signed_messages: Vec<SignedMessage>,
    pub encryption: Option<KeyFiles>,
    pub allowed_clock_skew: Duration,
}

impl SamlRealmConfig {
    /// Does the SP sign messages of this kind?
    pub fn signs(&self, message: SignedMessage) -> bool {
        self.signing.is_some() && self.signed_messages.contains(&message)
    }
}

impl SamlRealmSettings {
    /// Parses a realm's table from TOML text (the body of `[realms.saml.<name>]`).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        crate::settings::from_toml(text)
    }

    /// Checks every setting once; the first problem is reported by key.
    pub fn validate(&self, realm: &str) -> Result<SamlRealmConfig, SettingsError> {
        let c = Checker { realm };
        let err = |key: &str, message: String| c.err(key, message);
        let order = c.order(self.order)?;
        let metadata_path = c.required("idp.metadata.path", &self.idp.metadata.path)?;
        if metadata_path.contains("://") {
            return Err(err(
                "idp.metadata.path",
                format!("[{metadata_path}] must be a file path (metadata URLs are not supported)"),
            ));
        }
        let idp_entity_id = c.required("idp.entity_id", &self.idp.entity_id)?;
        let sp_entity_id = c.required("sp.entity_id", &self.sp.entity_id)?;
        let sp_acs = c.required("sp.acs", &self.sp.acs)?;
        check_url(&sp_acs).map_err(|m| err("sp.acs", m))?;
        let sp_logout = c.optional_url("sp.logout", &self.sp.logout)?;
        let patterns = c.patterns("attribute_patterns", "attribute", &self.attribute_patterns)?;
        for key in self.attribute_delimiters.keys() {
            if key != "groups" {
                return Err(err(
                    &format!("attribute_delimiters.{key}"),
                    "only groups may have a delimiter".into(),
                ));
            }
        }
        let rule =
            |attr: &str, v: &Option<String>| -> Result<Option<AttributeRule>, SettingsError> {
                let Some(v) = v.as_deref().map(str::trim).filter(|s| !s.is_empty()) else {
                    if patterns.contains_key(attr) {
                        return Err(err(
                            &format!("attribute_patterns.{attr}"),
                            format!("needs attributes.{attr}"),
                        ));
                    }
                    return Ok(None);
                };
                let source = match v {
                    "nameid" => AttributeSource::NameId {
                        persistent_only: false,
                    },
                    "nameid:persistent" => AttributeSource::NameId {
                        persistent_only: true,
                    },
                    other => AttributeSource::Attribute(other.to_owned()),
                };
                Ok(Some(AttributeRule {
                    source,
                    pattern: patterns.get(attr).cloned(),
                }))
            };
        let principal = rule("principal", &self.attributes.principal)?
            .ok_or_else(|| err("attributes.principal", "is required".into()))?;
        let groups = rule("groups", &self.attributes.groups)?;
        let name_attribute = rule("name", &self.attributes.name)?;
        let mail = rule("mail", &self.attributes.mail)?;
        let dn = rule("dn", &self.attributes.dn)?;
        let groups_delimiter = self.attribute_delimiters.get("groups").cloned();
        if groups_delimiter.as_deref() == Some("") {
            return Err(err(
                "attribute_delimiters.groups",
                "must not be empty".into(),
            ));
        }

        let key_files =
            |prefix: &str, cert: &Option<String>, key: &Option<String>| match (cert, key) {
                (None, None) => Ok(None),
                (Some(c), Some(k)) => Ok(Some(KeyFiles {
                    certificate: PathBuf::from(c),
                    key: PathBuf::from(k),
                })),
                (Some(_), None) => Err(err(
                    &format!("{prefix}.key"),
                    format!("is required with {prefix}.certificate"),
                )),
                (None, Some(_)) => Err(err(
                    &format!("{prefix}.certificate"),
                    format!("is required with {prefix}.key"),
                )),
            };
        let signing = key_files("signing", &self.signing.certificate, &self.signing.key)?;
        let encryption = key_files(
            "encryption",
            &self.encryption.certificate,
            &self.encryption.key,
        )?;
        let mut signed_messages = Vec::new();
        for m in self
            .signing
            .saml_messages
            .clone()
            .unwrap_or_else(|| vec!["*".into()])
        {
            match m.as_str() {
                "*" => signed_messages.extend([
                    SignedMessage::AuthnRequest,
                    SignedMessage::LogoutRequest,
                    SignedMessage::LogoutResponse,
                ]),
                "AuthnRequest" => signed_messages.push(SignedMessage::AuthnRequest),
                "LogoutRequest" => signed_messages.push(SignedMessage::LogoutRequest),
                "LogoutResponse" => signed_messages.push(SignedMessage::LogoutResponse),
                other => {
                    return Err(err(
                        "signing.saml_messages",
                        format!(
                        "[{other}] is not one of *, AuthnRequest, LogoutRequest, LogoutResponse"
                    ),
                    ))
                }
            }
        }
        let allowed_clock_skew =
            c.clock_skew(&self.allowed_clock_skew, Duration::from_secs(180))?;
        let nameid_format = self
            .nameid_format
            .clone()
            .unwrap_or_else(|| NAMEID_TRANSIENT.to_owned());
        Ok(SamlRealmConfig {
            name: realm.to_owned(),
            order,
            idp_metadata_path: PathBuf::from(metadata_path),
            idp_entity_id,
            idp_use_single_logout: self.idp.use_single_logout.unwrap_or(true),
            sp_entity_id,
            sp_acs,
            sp_logout,
            principal,
            groups,
            name_attribute,
            mail,
            dn,
            groups_delimiter,
            nameid_format,
            nameid_allow_create: self.nameid.allow_create.unwrap_or(false),
            nameid_sp_qualifier: self.nameid.sp_qualifier.clone(),
            force_authn: self.force_authn.unwrap_or(false),
            populate_user_metadata: self.populate_user_metadata.unwrap_or(true),
            req_authn_context_class_ref: self.req_authn_context_class_ref.clone(),
            signing,
            signed_messages,
            encryption,
            allowed_clock_skew,
        })
    }
}
