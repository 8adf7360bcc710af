//! The settings of a JWT realm, with Elasticsearch's setting names
//! (`[realms.jwt.<name>]`; dotted keys such as `claims.principal` are
//! nested TOML tables). [`JwtRealmSettings::validate`] checks them once and
//! gives a [`JwtRealmConfig`], or a [`SettingsError`] naming the key.
//! Secrets (`hmac_key`, the client shared secret) never come from this
//! table in clear: the caller reads them from the environment or from the
//! files named here.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::jose::{Algorithm, JwksLocation};
pub use crate::settings::ClaimSettings;
use crate::settings::{env_var, Checker, SettingsError};

/// Elasticsearch's default `allowed_clock_skew`.
pub const DEFAULT_SKEW: Duration = Duration::from_secs(60);
/// Default `jwt.cache.ttl`: shorter than Elasticsearch's 20 minutes, since a
/// role-mapping change made on another node reaches a cached result only
/// when the entry ends.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5 * 60);
/// Default `jwt.cache.size` (Elasticsearch's).
pub const DEFAULT_CACHE_SIZE: usize = 100_000;

/// A realm's table as written in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtRealmSettings {
    pub order: Option<i64>,
    pub token_type: Option<String>,
    pub allowed_issuer: Option<String>,
    #[serde(default)]
    pub allowed_audiences: Vec<String>,
    pub allowed_subjects: Option<Vec<String>>,
    pub allowed_signature_algorithms: Option<Vec<String>>,
    pub pkc_jwkset_path: Option<String>,
    /// Refused when set: the HMAC key comes from the environment or
    /// `hmac_key_file`, never in clear in the config file.
    pub hmac_key: Option<toml::Value>,
    pub hmac_key_file: Option<PathBuf>,
    #[serde(default)]
    pub claims: ClaimSettings,
    #[serde(default)]
    pub fallback_claims: FallbackClaimSettings,
    pub allowed_clock_skew: Option<String>,
    #[serde(default)]
    pub client_authentication: ClientAuthSettings,
    #[serde(default)]
    pub jwt: JwtCacheTable,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackClaimSettings {
    pub sub: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthSettings {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Refused when set: the secret never sits in clear in the config file.
    pub shared_secret: Option<toml::Value>,
    pub shared_secret_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtCacheTable {
    #[serde(default)]
    pub cache: CacheSettings,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    pub ttl: Option<String>,
    pub size: Option<usize>,
}

/// `token_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenType {
    IdToken,
    AccessToken,
}

/// `client_authentication.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthentication {
    SharedSecret,
    None,
}

/// A realm's checked settings.
#[derive(Debug, Clone)]
pub struct JwtRealmConfig {
    pub name: String,
    pub order: i64,
    pub token_type: TokenType,
    pub allowed_issuer: String,
    pub allowed_audiences: Vec<String>,
    pub allowed_subjects: Option<Vec<String>>,
    pub algorithms: Vec<Algorithm>,
    /// Where the public keys are, when any RS/PS/ES/EdDSA algorithm is allowed.
    pub jwkset: Option<JwksLocation>,
    /// The file holding the HMAC key, when HS* is allowed and it is not in
    /// the environment.
    pub hmac_key_file: Option<PathBuf>,
    pub principal_claim: String,
    pub groups_claim: Option<String>,
    pub name_claim: Option<String>,
    pub mail_claim: Option<String>,
    pub dn_claim: Option<String>,
    pub fallback_sub: Option<String>,
    pub allowed_clock_skew: Duration,
    pub client_authentication: ClientAuthentication,
    pub shared_secret_file: Option<PathBuf>,
    pub cache_ttl: Duration,
    pub cache_size: usize,
}

impl JwtRealmConfig {
    /// The environment variable that may hold the realm's HMAC key.
    pub fn hmac_key_env(&self) -> String {
        env_name(&self.name, "HMAC_KEY")
    }

    /// The environment variable that may hold the client shared secret.
    pub fn shared_secret_env(&self) -> String {
        env_name(&self.name, "CLIENT_AUTHENTICATION_SHARED_SECRET")
    }

    /// True when an HS* algorithm is allowed.
    pub fn uses_hmac(&self) -> bool {
        self.algorithms.iter().any(|a| is_hmac(*a))
    }
}

/// `TESSERA_REALMS_JWT_<NAME>_<SUFFIX>` (see [`env_var`]).
pub fn env_name(realm: &str, suffix: &str) -> String {
    env_var("JWT", realm, suffix)
}

fn is_hmac(a: Algorithm) -> bool {
    matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

impl JwtRealmSettings {
    /// Checks every setting once; the first problem is reported by key.
    pub fn validate(&self, realm: &str) -> Result<JwtRealmConfig, SettingsError> {
        let c = Checker { realm };
        let err = |key: &str, message: String| c.err(key, message);
        let order = c.order(self.order)?;
        let token_type = match self.token_type.as_deref() {
            None | Some("id_token") => TokenType::IdToken,
            Some("access_token") => TokenType::AccessToken,
            Some(other) => {
                return Err(err(
                    "token_type",
                    format!("must be id_token or access_token, not {other:?}"),
                ))
            }
        };
        let allowed_issuer = self
            .allowed_issuer
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| err("allowed_issuer", "is required".into()))?;
        if self.allowed_audiences.is_empty() || self.allowed_audiences.iter().any(String::is_empty)
        {
            return Err(err(
                "allowed_audiences",
                "needs at least one non-empty audience".into(),
            ));
        }
        let names = self
            .allowed_signature_algorithms
            .clone()
            .unwrap_or_else(|| vec!["RS256".into()]);
        let mut algorithms = Vec::new();
        for n in &names {
            let alg: Algorithm = n.parse().map_err(|_| {
                err(
                    "allowed_signature_algorithms",
                    format!("{n:?} is not a supported algorithm (HS256/384/512, RS256/384/512, PS256/384/512, ES256/384, EdDSA)"),
                )
            })?;
            algorithms.push(alg);
        }
        if algorithms.is_empty() {
            return Err(err(
                "allowed_signature_algorithms",
                "must not be empty".into(),
            ));
        }
        let hmac = algorithms.iter().any(|a| is_hmac(*a));
        let public = algorithms.iter().any(|a| !is_hmac(*a));
        if hmac && public {
            return Err(err(
                "allowed_signature_algorithms",
                "mixes HMAC (HS*) and public-key algorithms; use one kind per realm".into(),
            ));
        }
        if self.hmac_key.is_some() {
            return Err(err(
                "hmac_key",
                format!(
                    "must not be written in the config file; set {} or hmac_key_file",
                    env_name(realm, "HMAC_KEY")
                ),
            ));
        }
        let jwkset = match (&self.pkc_jwkset_path, public) {
            (Some(p), true) => {
                Some(JwksLocation::parse(p).map_err(|e| err("pkc_jwkset_path", e.to_string()))?)
            }
            (None, true) => {
                return Err(err(
                    "pkc_jwkset_path",
                    "is required for public-key algorithms".into(),
                ))
            }
            (Some(_), false) => {
                return Err(err(
                    "pkc_jwkset_path",
                    "is only used with public-key algorithms".into(),
                ))
            }
            (None, false) => None,
        };
        if self.hmac_key_file.is_some() && !hmac {
            return Err(err(
                "hmac_key_file",
                "is only used with HS* algorithms".into(),
            ));
        }
        let non_empty = |key: &str, v: &Option<String>| -> Result<Option<String>, SettingsError> {
            match v {
                Some(s) if s.is_empty() => Err(err(key, "must not be empty".into())),
                other => Ok(other.clone()),
            }
        };
        let principal_claim =
            non_empty("claims.principal", &self.claims.principal)?.unwrap_or_else(|| "sub".into());
        let allowed_clock_skew = c.clock_skew(&self.allowed_clock_skew, DEFAULT_SKEW)?;
        let client_authentication = match self.client_authentication.kind.as_deref() {
            None | Some("shared_secret") => ClientAuthentication::SharedSecret,
            Some("none") => ClientAuthentication::None,
            Some(other) => {
                return Err(err(
                    "client_authentication.type",
                    format!("must be shared_secret or none, not {other:?}"),
                ))
            }
        };
        if self.client_authentication.shared_secret.is_some() {
            return Err(err(
                "client_authentication.shared_secret",
                format!(
                    "must not be written in the config file; set {} or client_authentication.shared_secret_file",
                    env_name(realm, "CLIENT_AUTHENTICATION_SHARED_SECRET")
                ),
            ));
        }
        if client_authentication == ClientAuthentication::None
            && self.client_authentication.shared_secret_file.is_some()
        {
            return Err(err(
                "client_authentication.shared_secret_file",
                "is only used with client_authentication.type = shared_secret".into(),
            ));
        }
        let cache_ttl = c.duration("jwt.cache.ttl", &self.jwt.cache.ttl, DEFAULT_CACHE_TTL)?;
        Ok(JwtRealmConfig {
            name: realm.to_owned(),
            order,
            token_type,
            allowed_issuer,
            allowed_audiences: self.allowed_audiences.clone(),
            allowed_subjects: self.allowed_subjects.clone(),
            algorithms,
            jwkset,
            hmac_key_file: self.hmac_key_file.clone(),
            principal_claim,
            groups_claim: non_empty("claims.groups", &self.claims.groups)?,
            name_claim: non_empty("claims.name", &self.claims.name)?,
            mail_claim: non_empty("claims.mail", &self.claims.mail)?,
            dn_claim: non_empty("claims.dn", &self.claims.dn)?,
            fallback_sub: non_empty("fallback_claims.sub", &self.fallback_claims.sub)?,
            allowed_clock_skew,
            client_authentication,
            shared_secret_file: self.client_authentication.shared_secret_file.clone(),
            cache_ttl,
            cache_size: self.jwt.cache.size.unwrap_or(DEFAULT_CACHE_SIZE),
        })
    }
}
