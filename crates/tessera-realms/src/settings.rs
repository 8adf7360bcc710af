//! What the settings of every realm kind (SAML, JWT, OpenID Connect)
//! share: the error that names a key, the table of user properties
//! (`claims.*`, `attributes.*`) and the checks each realm makes the same
//! way ([`Checker`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// A setting that is missing or wrong: the full key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("realm [{realm}]: setting [{key}] {message}")]
pub struct SettingsError {
    pub realm: String,
    pub key: String,
    pub message: String,
}

/// Where a realm reads the user's properties: `claims.*` of a JWT or
/// OpenID Connect realm, `attributes.*` of a SAML realm.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimSettings {
    pub principal: Option<String>,
    pub groups: Option<String>,
    pub name: Option<String>,
    pub mail: Option<String>,
    pub dn: Option<String>,
}

/// The user properties a pattern may be set for.
pub const PROPERTIES: [&str; 5] = ["principal", "groups", "name", "mail", "dn"];

/// The largest `allowed_clock_skew` any realm accepts.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(3_600);

/// The environment variable `TESSERA_REALMS_<KIND>_<NAME>_<SUFFIX>` of a
/// realm's secret, the name upper-cased with every character other than a
/// letter or digit as `_`.
pub fn env_var(kind: &str, realm: &str, suffix: &str) -> String {
    let name: String = realm
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("TESSERA_REALMS_{kind}_{name}_{suffix}")
}

/// Parses a realm's table from TOML text (the body of `[realms.<kind>.<name>]`).
pub fn from_toml<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    toml::from_str(text).map_err(|e| e.to_string())
}

/// The checks of one realm's settings; every error names the realm.
#[derive(Debug, Clone, Copy)]
pub struct Checker<'a> {
    pub realm: &'a str,
}

impl Checker<'_> {
    /// The error for `key`.
    pub fn err(&self, key: &str, message: String) -> SettingsError {
        SettingsError {
            realm: self.realm.to_owned(),
            key: key.to_owned(),
            message,
        }
    }

    /// `order`, which every realm must set.
    pub fn order(&self, order: Option<i64>) -> Result<i64, SettingsError> {
        order.ok_or_else(|| self.err("order", "is required".into()))
    }

    /// A value that must be set and not blank, trimmed.
    pub fn required(&self, key: &str, v: &Option<String>) -> Result<String, SettingsError> {
        match v.as_deref().map(str::trim) {
            Some(s) if !s.is_empty() => Ok(s.to_owned()),
            _ => Err(self.err(key, "is required".into())),
        }
    }

    /// An absolute `http`/`https` URL with a host, when set.
    pub fn optional_url(
        &self,
        key: &str,
        v: &Option<String>,
    ) -> Result<Option<String>, SettingsError> {
        match v {
            Some(u) => {
                check_url(u).map_err(|m| self.err(key, m))?;
                Ok(Some(u.clone()))
            }
            None => Ok(None),
        }
    }

    /// A time value (`30s`, `5m`, …), or `default` when not set.
    pub fn duration(
        &self,
        key: &str,
        v: &Option<String>,
        default: Duration,
    ) -> Result<Duration, SettingsError> {
        match v {
            None => Ok(default),
            Some(text) => {
                tessera_domain::time::parse_time_value(text).map_err(|m| self.err(key, m))
            }
        }
    }

    /// `allowed_clock_skew`: a time value of at most an hour.
    pub fn clock_skew(
        &self,
        v: &Option<String>,
        default: Duration,
    ) -> Result<Duration, SettingsError> {
        let skew = self.duration("allowed_clock_skew", v, default)?;
        if skew > MAX_CLOCK_SKEW {
            return Err(self.err("allowed_clock_skew", "must be at most 1h".into()));
        }
        Ok(skew)
    }

    /// The patterns of `<table>.<property>`: each a known property (`what`
    /// names them in the error) and a regular expression with exactly one
    /// capture group.
    pub fn patterns(
        &self,
        table: &str,
        what: &str,
        patterns: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, regex::Regex>, SettingsError> {
        let mut out = BTreeMap::new();
        for (property, pattern) in patterns {
            let key = format!("{table}.{property}");
            if !PROPERTIES.contains(&property.as_str()) {
                return Err(self.err(
                    &key,
                    format!("is not a known {what} (principal, groups, name, mail, dn)"),
                ));
            }
            let re = regex::Regex::new(pattern)
                .map_err(|e| self.err(&key, format!("is not a valid pattern: {e}")))?;
            if re.captures_len() != 2 {
                return Err(self.err(
                    &key,
                    format!("[{pattern}] must have exactly one capture group"),
                ));
            }
            out.insert(property.clone(), re);
        }
        Ok(out)
    }
}

/// An absolute `http`/`https` URL with a host.
pub fn check_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("[{text}] is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("[{text}] must be an http or https URL with a host"));
    }
    Ok(())
}
