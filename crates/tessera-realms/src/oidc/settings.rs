//! The settings of an OpenID Connect realm, with Elasticsearch's setting
//! names (`op.issuer`, `rp.client_id`, `claims.principal`, …).
//!
//! In the config file a realm is the TOML table `[realms.oidc.<name>]`
//! whose dotted keys are Elasticsearch's. [`OidcRealmSettings`] is that
//! table as written; [`OidcRealmSettings::validate`] checks it once and
//! gives an [`OidcRealmConfig`], or a [`SettingsError`] naming the key.
//! The client secret is never read from the table: it comes from the
//! environment or a file (see [`ClientSecret`]).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::settings::{check_url, env_var, Checker};
pub use crate::settings::{ClaimSettings, SettingsError, PROPERTIES as CLAIMS};

/// A realm's table as written in the config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcRealmSettings {
    pub order: Option<i64>,
    #[serde(default)]
    pub op: OpSettings,
    #[serde(default)]
    pub rp: RpSettings,
    #[serde(default)]
    pub claims: ClaimSettings,
    #[serde(default)]
    pub claim_patterns: BTreeMap<String, String>,
    pub populate_user_metadata: Option<bool>,
    pub allowed_clock_skew: Option<String>,
    #[serde(default)]
    pub http: HttpSettings,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpSettings {
    pub issuer: Option<String>,
    pub authorization_endpoint: Option<String>,
    pub token_endpoint: Option<String>,
    pub jwkset_path: Option<String>,
    pub userinfo_endpoint: Option<String>,
    pub endsession_endpoint: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpSettings {
    pub client_id: Option<String>,
    /// Refused: a secret never sits in clear in the config file.
    pub client_secret: Option<toml::Value>,
    pub client_secret_file: Option<String>,
    pub client_auth_method: Option<String>,
    pub redirect_uri: Option<String>,
    pub response_type: Option<String>,
    pub requested_scopes: Option<Vec<String>>,
    pub signature_algorithm: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub connect_timeout: Option<String>,
    pub connection_read_timeout: Option<String>,
    pub socket_timeout: Option<String>,
    pub connection_pool_ttl: Option<String>,
}

/// The client secret: its `Debug` never shows it, and its memory is
/// zeroed when dropped.
#[derive(Clone)]
pub struct ClientSecret(Zeroizing<String>);

impl ClientSecret {
    pub fn new(secret: String) -> Self {
        Self(Zeroizing::new(secret))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// HTTP Basic with the client id and secret (the default).
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Post,
}

/// Which claim gives a user property, and an optional pattern whose one
/// group is the value.
#[derive(Debug, Clone)]
pub struct ClaimRule {
    pub claim: String,
    pub pattern: Option<regex::Regex>,
}

/// The provider's endpoints as configured; those left out come from
/// discovery (`op.issuer` + `/.well-known/openid-configuration`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub authorization: Option<String>,
    pub token: Option<String>,
    /// A URL, or a file path relative to the config file's folder.
    pub jwks: Option<String>,
    pub userinfo: Option<String>,
    pub end_session: Option<String>,
}

/// Back-channel limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    /// How long an idle pooled connection may be reused: below the three
    /// minutes after which providers and their proxies drop them.
    pub pool_idle: Duration,
}

/// A validated OpenID Connect realm.
#[derive(Debug, Clone)]
pub struct OidcRealmConfig {
    pub name: String,
    pub order: i64,
    pub issuer: String,
    pub endpoints: Endpoints,
    pub client_id: String,
    /// Set by the loader from the environment or `rp.client_secret_file`.
    pub client_secret: Option<ClientSecret>,
    pub client_secret_file: Option<String>,
    pub client_auth_method: ClientAuthMethod,
    pub redirect_uri: String,
    /// `openid` first, then the configured scopes.
    pub scopes: Vec<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub principal: ClaimRule,
    pub groups: Option<ClaimRule>,
    pub name_claim: Option<ClaimRule>,
    pub mail: Option<ClaimRule>,
    pub dn: Option<ClaimRule>,
    pub populate_user_metadata: bool,
    pub allowed_clock_skew: Duration,
    pub http: HttpLimits,
}

impl OidcRealmConfig {
    /// Are all the endpoints a login needs configured (no discovery)?
    pub fn needs_discovery(&self) -> bool {
        let e = &self.endpoints;
        e.authorization.is_none() || e.token.is_none() || e.jwks.is_none()
    }
}

impl OidcRealmSettings {
    /// Parses a realm's table from TOML text (the body of `[realms.oidc.<name>]`).
    pub fn from_toml(text: &str) -> Result<Self, String> {
        crate::settings::from_toml(text)
    }

    /// Checks every setting once; the first problem is reported by key.
    /// The client secret is not set here (see [`OidcRealmConfig::client_secret`]).
    pub fn validate(&self, realm: &str) -> Result<OidcRealmConfig, SettingsError> {
        let c = Checker { realm };
        let err = |key: &str, message: String| c.err(key, message);
        let provider_url =
            |key: &str, v: &Option<String>| -> Result<Option<String>, SettingsError> {
                match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                    Some(u) => {
                        check_provider_url(u).map_err(|m| err(key, m))?;
                        Ok(Some(u.to_owned()))
                    }
                    None => Ok(None),
                }
            };
        let order = c.order(self.order)?;
        let issuer = c.required("op.issuer", &self.op.issuer)?;
        let jwks = match self.op.jwkset_path.as_deref().map(str::trim) {
            Some(p) if p.contains("://") => {
                check_provider_url(p).map_err(|m| err("op.jwkset_path", m))?;
                Some(p.to_owned())
            }
            Some("") | None => None,
            Some(p) => Some(p.to_owned()),
        };
        let endpoints = Endpoints {
            authorization: provider_url(
                "op.authorization_endpoint",
                &self.op.authorization_endpoint,
            )?,
            token: provider_url("op.token_endpoint", &self.op.token_endpoint)?,
            jwks,
            userinfo: provider_url("op.userinfo_endpoint", &self.op.userinfo_endpoint)?,
            end_session: provider_url("op.endsession_endpoint", &self.op.endsession_endpoint)?,
        };
        let needs_discovery = endpoints.authorization.is_none()
            || endpoints.token.is_none()
            || endpoints.jwks.is_none();
        if needs_discovery {
            // Discovery reads `<issuer>/.well-known/openid-configuration`.
            check_provider_url(&issuer).map_err(|m| {
                err(
                    "op.issuer",
                    format!("{m} (op.authorization_endpoint, op.token_endpoint or op.jwkset_path is not set, so the issuer is used for discovery)"),
                )
            })?;
        }
        let client_id = c.required("rp.client_id", &self.rp.client_id)?;
        if self.rp.client_secret.is_some() {
            return Err(err(
                "rp.client_secret",
                format!(
                    "must not be written in the config file: set the environment variable [{}] or name a file holding it with [rp.client_secret_file]",
                    secret_env_var(realm)
                ),
            ));
        }
        let client_auth_method = match self.rp.client_auth_method.as_deref() {
            None | Some("client_secret_basic") => ClientAuthMethod::Basic,
            Some("client_secret_post") => ClientAuthMethod::Post,
            Some("client_secret_jwt") => {
                return Err(err(
                    "rp.client_auth_method",
                    "[client_secret_jwt] is not supported yet: use client_secret_basic or client_secret_post".into(),
                ))
            }
            Some(other) => {
                return Err(err(
                    "rp.client_auth_method",
                    format!("[{other}] is not one of client_secret_basic, client_secret_post"),
                ))
            }
        };
        let redirect_uri = c.required("rp.redirect_uri", &self.rp.redirect_uri)?;
        check_url(&redirect_uri).map_err(|m| err("rp.redirect_uri", m))?;
        match self.rp.response_type.as_deref().map(str::trim) {
            Some("code") => {}
            None | Some("") => return Err(err("rp.response_type", "is required (code)".into())),
            Some(t @ ("id_token" | "id_token token")) => {
                return Err(err(
                    "rp.response_type",
                    format!("[{t}] (implicit flow) is not supported yet: use code"),
                ))
            }
            Some(other) => {
                return Err(err(
                    "rp.response_type",
                    format!("[{other}] is not supported: use code"),
                ))
            }
        }
        let mut scopes = vec!["openid".to_owned()];
        for s in self.rp.requested_scopes.iter().flatten() {
            let s = s.trim();
            if s.is_empty() || s.contains(char::is_whitespace) {
                return Err(err(
                    "rp.requested_scopes",
                    format!("[{s}] is not a scope token"),
                ));
            }
            if !scopes.iter().any(|x| x == s) {
                scopes.push(s.to_owned());
            }
        }
        match self.rp.signature_algorithm.as_deref() {
            None | Some("RS256") => {}
            Some(other) => {
                return Err(err(
                    "rp.signature_algorithm",
                    format!("[{other}] is not supported: RS256 is the only algorithm accepted"),
                ))
            }
        }
        let post_logout_redirect_uri = c.optional_url(
            "rp.post_logout_redirect_uri",
            &self.rp.post_logout_redirect_uri,
        )?;

        let patterns = c.patterns("claim_patterns", "claim setting", &self.claim_patterns)?;
        let rule = |which: &str, v: &Option<String>| -> Result<Option<ClaimRule>, SettingsError> {
            match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                Some(claim) => Ok(Some(ClaimRule {
                    claim: claim.to_owned(),
                    pattern: patterns.get(which).cloned(),
                })),
                None if patterns.contains_key(which) => Err(err(
                    &format!("claim_patterns.{which}"),
                    format!("needs claims.{which}"),
                )),
                None => Ok(None),
            }
        };
        let principal = rule("principal", &self.claims.principal)?
            .ok_or_else(|| err("claims.principal", "is required (e.g. sub)".into()))?;
        let groups = rule("groups", &self.claims.groups)?;
        let name_claim = rule("name", &self.claims.name)?;
        let mail = rule("mail", &self.claims.mail)?;
        let dn = rule("dn", &self.claims.dn)?;

        let duration = |key: &str, v: &Option<String>, default| c.duration(key, v, default);
        let allowed_clock_skew = c.clock_skew(&self.allowed_clock_skew, Duration::from_secs(60))?;
        let five = Duration::from_secs(5);
        let connect_timeout = duration("http.connect_timeout", &self.http.connect_timeout, five)?;
        let read_timeout = match (
            &self.http.connection_read_timeout,
            &self.http.socket_timeout,
        ) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "http.socket_timeout",
                    "and http.connection_read_timeout are the same limit: set only one".into(),
                ))
            }
            (Some(t), None) => duration("http.connection_read_timeout", &Some(t.clone()), five)?,
            (None, t) => duration("http.socket_timeout", t, five)?,
        };
        let pool_idle = duration(
            "http.connection_pool_ttl",
            &self.http.connection_pool_ttl,
            Duration::from_secs(60),
        )?;
        if pool_idle >= Duration::from_secs(180) {
            return Err(err(
                "http.connection_pool_ttl",
                "must be below 3m: providers drop idle connections after that".into(),
            ));
        }
        for (key, d) in [
            ("http.connect_timeout", connect_timeout),
            ("http.socket_timeout", read_timeout),
        ] {
            if d.is_zero() || d > Duration::from_secs(120) {
                return Err(err(key, "must be between 1ms and 2m".into()));
            }
        }
        Ok(OidcRealmConfig {
            name: realm.to_owned(),
            order,
            issuer,
            endpoints,
            client_id,
            client_secret: None,
            client_secret_file: self.rp.client_secret_file.clone(),
            client_auth_method,
            redirect_uri,
            scopes,
            post_logout_redirect_uri,
            principal,
            groups,
            name_claim,
            mail,
            dn,
            populate_user_metadata: self.populate_user_metadata.unwrap_or(true),
            allowed_clock_skew,
            http: HttpLimits {
                connect_timeout,
                read_timeout,
                pool_idle,
            },
        })
    }
}

/// The environment variable holding realm `name`'s client secret:
/// `TESSERA_REALMS_OIDC_<NAME>_RP_CLIENT_SECRET` (see [`env_var`]).
pub fn secret_env_var(realm: &str) -> String {
    env_var("OIDC", realm, "RP_CLIENT_SECRET")
}

/// A provider URL: `https://`, or `http://` on a loopback address only
/// (`127.0.0.0/8`, `[::1]`: literal addresses, as the JWKS source has
/// them, so no name lookup decides), for local providers and tests.
pub fn check_provider_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| format!("[{text}] is not a URL: {e}"))?;
    let Some(host) = url.host() else {
        return Err(format!("[{text}] has no host"));
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&host) => Ok(()),
        "http" => Err(format!(
            "[{text}] must be an https URL (http is accepted only on loopback addresses)"
        )),
        other => Err(format!("[{text}] has scheme [{other}]; it must be https")),
    }
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::oidc::configured;

    fn validate(text: &str) -> Result<OidcRealmConfig, String> {
        OidcRealmSettings::from_toml(text)?
            .validate("oidc1")
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let c = validate(&configured()).unwrap();
        assert_eq!(c.scopes, ["openid"]);
        assert_eq!(c.client_auth_method, ClientAuthMethod::Basic);
        assert_eq!(c.allowed_clock_skew, Duration::from_secs(60));
        assert_eq!(c.http.connect_timeout, Duration::from_secs(5));
        assert_eq!(c.http.read_timeout, Duration::from_secs(5));
        assert_eq!(c.http.pool_idle, Duration::from_secs(60));
        assert!(!c.needs_discovery());
        assert!(c.populate_user_metadata);
    }

    #[test]
    fn problems_name_the_setting() {
        let base = configured();
        let cases = [
            (
                base.replace("claims.principal = \"sub\"", ""),
                "[claims.principal] is required",
            ),
            (
                format!("{base}rp.client_secret = \"s3cret\""),
                "TESSERA_REALMS_OIDC_OIDC1_RP_CLIENT_SECRET",
            ),
            (
                base.replace(
                    "rp.response_type = \"code\"",
                    "rp.response_type = \"id_token\"",
                ),
                "not supported yet",
            ),
            (
                base.replace("rp.response_type = \"code\"", ""),
                "[rp.response_type] is required",
            ),
            (
                format!("{base}rp.client_auth_method = \"client_secret_jwt\""),
                "not supported yet",
            ),
            (
                format!("{base}rp.signature_algorithm = \"HS256\""),
                "RS256 is the only",
            ),
            (
                format!("{base}http.connection_pool_ttl = \"3m\""),
                "below 3m",
            ),
            (
                format!("{base}allowed_clock_skew = \"60\""),
                "[allowed_clock_skew]",
            ),
            (
                format!("{base}claim_patterns.groups = \"^(a)$\""),
                "needs claims.groups",
            ),
            (
                format!("{base}claim_patterns.principal = \"^a$\""),
                "exactly one capture group",
            ),
            (
                format!("{base}claim_patterns.foo = \"^(a)$\""),
                "claim_patterns.foo",
            ),
            (
                base.replace(
                    "https://op.example.org/token",
                    "http://op.example.org/token",
                ),
                "[op.token_endpoint]",
            ),
            (
                base.replace("jwks.json", "http://10.0.0.1/jwks"),
                "[op.jwkset_path]",
            ),
            (
                base.replace("op.token_endpoint = \"https://op.example.org/token\"\n", "")
                    .replace("https://op.example.org\"", "http://op.example.org\""),
                "[op.issuer]",
            ),
            (format!("{base}surprise = 1"), "surprise"),
        ];
        for (text, says) in cases {
            let e = validate(&text)
                .err()
                .unwrap_or_else(|| panic!("accepted: {text}"));
            assert!(e.contains(says), "{e:?} should say {says:?}");
        }
    }

    #[test]
    fn http_is_for_loopback_only() {
        for ok in [
            "https://op.example.org/x",
            "http://127.0.0.1:8080/x",
            "http://127.1.2.3/",
            "http://[::1]:9/",
        ] {
            assert!(check_provider_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://op.example.org/",
            "http://localhost:3000/",
            "http://10.0.0.1/",
            "http://[::2]/",
            "ftp://127.0.0.1/",
            "file:///etc/passwd",
            "nope",
        ] {
            assert!(check_provider_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scopes_start_with_openid_once() {
        let c = validate(&format!(
            "{}rp.requested_scopes = [\"email\", \"openid\", \"email\"]",
            configured()
        ))
        .unwrap();
        assert_eq!(c.scopes, ["openid", "email"]);
        assert_eq!(
            secret_env_var("my-realm.1"),
            "TESSERA_REALMS_OIDC_MY_REALM_1_RP_CLIENT_SECRET"
        );
        assert_eq!(
            format!("{:?}", ClientSecret::new("hunter2".into())),
            "ClientSecret(<redacted>)"
        );
    }
}
