//! The provider's endpoints: those configured, and those a discovery
//! document (`<op.issuer>/.well-known/openid-configuration`) fills in.

use serde_json::Value;

use super::settings::{check_provider_url, Endpoints, OidcRealmConfig};

/// The most a discovery document may weigh.
pub const MAX_DISCOVERY_BYTES: usize = 256 * 1024;

/// Where the discovery document of `issuer` is (OpenID Connect Discovery
/// 1.0 §4: the issuer without its trailing slash, then the well-known path).
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// What a discovery document says, checked: its `issuer` is exactly the
/// configured one, and every URL obeys the provider URL rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    pub endpoints: Endpoints,
}

impl Discovered {
    pub fn parse(issuer: &str, body: &[u8]) -> Result<Discovered, String> {
        if body.len() > MAX_DISCOVERY_BYTES {
            return Err(format!(
                "the discovery document is over {MAX_DISCOVERY_BYTES} bytes"
            ));
        }
        let doc: Value = serde_json::from_slice(body)
            .map_err(|e| format!("the discovery document is not JSON: {e}"))?;
        let text = |key: &str| -> Result<Option<String>, String> {
            match doc.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("the discovery document's [{key}] is not a string")),
            }
        };
        match text("issuer")? {
            Some(i) if i == issuer => {}
            Some(i) => {
                return Err(format!(
                    "the discovery document's issuer [{i}] is not op.issuer [{issuer}]"
                ))
            }
            None => return Err("the discovery document has no issuer".into()),
        }
        let url = |key: &str| -> Result<Option<String>, String> {
            let v = text(key)?;
            if let Some(u) = &v {
                check_provider_url(u)
                    .map_err(|m| format!("the discovery document's [{key}]: {m}"))?;
            }
            Ok(v)
        };
        Ok(Discovered {
            endpoints: Endpoints {
                authorization: url("authorization_endpoint")?,
                token: url("token_endpoint")?,
                jwks: url("jwks_uri")?,
                userinfo: url("userinfo_endpoint")?,
                end_session: url("end_session_endpoint")?,
            },
        })
    }
}

/// The endpoints a realm works with: each configured one, else the
/// discovered one. Userinfo and end session stay optional; a realm whose
/// userinfo endpoint is only discovered does not call it (as
/// Elasticsearch, userinfo is used when `op.userinfo_endpoint` is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderEndpoints {
    pub authorization: String,
    pub token: String,
    /// A URL, or a file path relative to the config file's folder.
    pub jwks: String,
    pub userinfo: Option<String>,
    pub end_session: Option<String>,
}

impl ProviderEndpoints {
    pub fn resolve(
        config: &OidcRealmConfig,
        discovered: Option<&Discovered>,
    ) -> Result<ProviderEndpoints, String> {
        let c = &config.endpoints;
        let d = discovered.map(|d| &d.endpoints);
        let pick = |key: &str, mine: &Option<String>, theirs: Option<&Option<String>>| {
            mine.clone()
                .or_else(|| theirs.cloned().flatten())
                .ok_or_else(|| format!("[op.{key}] is neither configured nor discovered"))
        };
        Ok(ProviderEndpoints {
            authorization: pick(
                "authorization_endpoint",
                &c.authorization,
                d.map(|d| &d.authorization),
            )?,
            token: pick("token_endpoint", &c.token, d.map(|d| &d.token))?,
            jwks: pick("jwkset_path", &c.jwks, d.map(|d| &d.jwks))?,
            userinfo: c.userinfo.clone(),
            end_session: c
                .end_session
                .clone()
                .or_else(|| d.and_then(|d| d.end_session.clone())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::settings::OidcRealmSettings;
    use crate::testing::oidc::settings;
    use serde_json::json;

    #[test]
    fn discovery_fills_what_is_not_configured() {
        let settings = settings("https://op.example.org/", "d", "https://d.example.org/cb");
        let config = OidcRealmSettings::from_toml(&format!(
            "{settings}op.token_endpoint = \"https://op.example.org/mine\"\n"
        ))
        .unwrap()
        .validate("oidc1")
        .unwrap();
        assert!(config.needs_discovery());
        assert_eq!(
            discovery_url(&config.issuer),
            "https://op.example.org/.well-known/openid-configuration"
        );
        let doc = json!({"issuer": "https://op.example.org/",
            "authorization_endpoint": "https://op.example.org/auth",
            "token_endpoint": "https://op.example.org/token",
            "jwks_uri": "https://op.example.org/jwks",
            "userinfo_endpoint": "https://op.example.org/me",
            "end_session_endpoint": "https://op.example.org/logout"});
        let d = Discovered::parse(&config.issuer, doc.to_string().as_bytes()).unwrap();
        let e = ProviderEndpoints::resolve(&config, Some(&d)).unwrap();
        assert_eq!(e.token, "https://op.example.org/mine");
        assert_eq!(e.authorization, "https://op.example.org/auth");
        assert_eq!(e.jwks, "https://op.example.org/jwks");
        assert_eq!(e.userinfo, None);
        assert_eq!(
            e.end_session.as_deref(),
            Some("https://op.example.org/logout")
        );
        assert!(ProviderEndpoints::resolve(&config, None).is_err());

        for (bad, says) in [
            (
                json!({"issuer": "https://evil.example/"}),
                "is not op.issuer",
            ),
            (json!({"token_endpoint": "https://x/"}), "no issuer"),
            (
                json!({"issuer": "https://op.example.org/", "jwks_uri": "http://evil.example/"}),
                "https",
            ),
            (
                json!({"issuer": "https://op.example.org/", "jwks_uri": 3}),
                "not a string",
            ),
        ] {
            let e = Discovered::parse(&config.issuer, bad.to_string().as_bytes()).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
        assert!(Discovered::parse(&config.issuer, b"<html>").is_err());
    }
}
