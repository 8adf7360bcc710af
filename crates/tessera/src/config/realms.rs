//! The realm chain of the config file: `[realms.saml.<name>]` and
//! `[realms.oidc.<name>]` tables with Elasticsearch's setting names as
//! keys, and the native realm `[realms.native.default_native]`, on
//! whether configured or not; the JWT realms `[realms.jwt.<name>]` are
//! loaded by [`super::jwt`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use serde::Deserialize;
use tessera_http::jwt::JwtRealms;
use tessera_http::oidc::OidcRealms;
use tessera_http::saml::SamlRealms;
use tessera_realms::saml::{SamlRealm, SamlRealmSettings};

/// The native realm's name; the only one Tessera has.
pub const NATIVE_REALM: &str = "default_native";

/// `[realms]` as written in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealmsFile {
    #[serde(default)]
    saml: BTreeMap<String, toml::Value>,
    #[serde(default)]
    oidc: BTreeMap<String, toml::Value>,
    #[serde(default)]
    native: BTreeMap<String, NativeRealmFile>,
    #[serde(default)]
    jwt: BTreeMap<String, toml::Value>,
}

/// `[realms.native.default_native]`: its place in the chain. The native
/// realm cannot be turned off: the bootstrap user and the dashboard's
/// service user live in it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeRealmFile {
    order: Option<i64>,
}

pub(super) fn realm_error(
    kind: &str,
    name: &str,
    problem: impl std::fmt::Display,
) -> anyhow::Error {
    anyhow::anyhow!("invalid realm `realms.{kind}.{name}`: {problem}")
}

/// The external realms of the chain.
#[derive(Debug, Default)]
pub struct Realms {
    pub saml: SamlRealms,
    pub oidc: OidcRealms,
    pub jwt: JwtRealms,
}

/// Checks the chain and loads every SAML realm's files (paths relative to
/// `base_dir`, the config file's folder): files readable, metadata
/// parsed, entity ids present, URLs well formed; each problem names the
/// realm and the setting. OpenID Connect realms get their client secrets
/// from the environment (`env`) or their secret files. Without `base_dir`
/// the settings are checked and no file is read (the config-file fuzz
/// target), and no realm results.
pub fn resolve(file: RealmsFile, base_dir: Option<&Path>) -> anyhow::Result<Realms> {
    resolve_with_env(file, base_dir, &|name| std::env::var(name).ok())
}

pub fn resolve_with_env(
    file: RealmsFile,
    base_dir: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<Realms> {
    let mut orders: BTreeMap<i64, String> = BTreeMap::new();
    for (name, native) in &file.native {
        if name != NATIVE_REALM {
            bail!(realm_error(
                "native",
                name,
                format!("the only native realm is `{NATIVE_REALM}`")
            ));
        }
        if let Some(order) = native.order {
            orders.insert(order, format!("native.{name}"));
        }
    }
    let mut loaded = Vec::new();
    for (name, table) in file.saml {
        if name.is_empty() || name.starts_with('_') || name == NATIVE_REALM {
            bail!(realm_error("saml", &name, "this realm name is reserved"));
        }
        let settings: SamlRealmSettings = table
            .try_into()
            .map_err(|e: toml::de::Error| realm_error("saml", &name, e.message()))?;
        let config = settings
            .validate(&name)
            .map_err(|e| realm_error("saml", &name, e))?;
        if let Some(other) = orders.insert(config.order, format!("saml.{name}")) {
            bail!(realm_error(
                "saml",
                &name,
                format!(
                    "setting [order] {} is also the order of realm `realms.{other}`; orders must be unique",
                    config.order
                )
            ));
        }
        let Some(base_dir) = base_dir else {
            continue;
        };
        let realm = SamlRealm::load(config, base_dir).map_err(|e| realm_error("saml", &name, e))?;
        loaded.push((realm, base_dir.to_owned()));
    }
    let mut oidc = Vec::new();
    for (name, table) in file.oidc {
        if name.is_empty() || name.starts_with('_') || name == NATIVE_REALM {
            bail!(realm_error("oidc", &name, "this realm name is reserved"));
        }
        if orders
            .values()
            .any(|other| other == &format!("saml.{name}"))
        {
            bail!(realm_error(
                "oidc",
                &name,
                "a SAML realm has this name; realm names must be unique"
            ));
        }
        let config = super::oidc::realm(&name, table, base_dir, env)
            .map_err(|e| realm_error("oidc", &name, e))?;
        if let Some(other) = orders.insert(config.order, format!("oidc.{name}")) {
            bail!(realm_error(
                "oidc",
                &name,
                format!(
                    "setting [order] {} is also the order of realm `realms.{other}`; orders must be unique",
                    config.order
                )
            ));
        }
        if let Some(base_dir) = base_dir {
            oidc.push((config, base_dir.to_owned()));
        }
    }
    let jwt = super::jwt::resolve(file.jwt, &mut orders, base_dir)?;
    Ok(Realms {
        saml: SamlRealms::new(loaded),
        oidc: OidcRealms::new(oidc).map_err(|e| anyhow::anyhow!("invalid OpenID Connect {e}"))?,
        jwt,
    })
}

/// The folder a config file's relative paths are resolved against.
pub fn base_dir(config_file: Option<&Path>) -> PathBuf {
    config_file
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_realms::testing::{self as fx, oidc::configured};

    /// Resolves `[realms]` written as `toml` in a folder holding the test
    /// IdP's metadata; the error text when it fails.
    fn resolve_text(toml: &str) -> Result<SamlRealms, String> {
        resolve_all(toml).map(|r| r.saml)
    }

    fn resolve_all(toml: &str) -> Result<Realms, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("idp-metadata.xml"),
            fx::idp_metadata(fx::IDP),
        )
        .unwrap();
        let file: RealmsFile = toml::from_str(toml).map_err(|e| e.to_string())?;
        std::fs::write(dir.path().join("secret.txt"), "from-a-file\n").unwrap();
        let key = fx::jwt::TestKey::rsa(1, "k1");
        std::fs::write(dir.path().join("jwks.json"), fx::jwt::jwks(&[&key])).unwrap();
        let env = |name: &str| {
            (name == "TESSERA_REALMS_OIDC_OIDC_ENV_RP_CLIENT_SECRET").then(|| "from-env".to_owned())
        };
        resolve_with_env(file, Some(dir.path()), &env).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn an_oidc_realm_takes_its_secret_from_the_environment_or_a_file() {
        let oidc = configured();
        let realms = resolve_all(&format!(
            "[oidc.oidc_env]\n{oidc}\n[oidc.oidc_file]\n{}rp.client_secret_file = \"secret.txt\"\n",
            oidc.replace("order = 3", "order = 6")
        ))
        .unwrap();
        let secret = |name: &str| {
            realms
                .oidc
                .get(name)
                .unwrap()
                .config
                .client_secret
                .as_ref()
                .unwrap()
                .expose()
                .to_owned()
        };
        assert_eq!(secret("oidc_env"), "from-env");
        assert_eq!(secret("oidc_file"), "from-a-file");
        let debug = format!("{:?}", realms.oidc);
        assert!(!debug.contains("from-"), "{debug}");
    }

    #[test]
    fn oidc_problems_name_the_realm_and_the_setting() {
        let oidc = configured();
        let cases = [
            (
                format!("[oidc.oidc1]\n{oidc}"),
                "TESSERA_REALMS_OIDC_OIDC1_RP_CLIENT_SECRET",
            ),
            (
                format!("[oidc.oidc1]\n{oidc}rp.client_secret = \"x\"\n"),
                "must not be written in the config file",
            ),
            (
                format!("[oidc.oidc1]\n{oidc}rp.client_secret_file = \"missing\"\n"),
                "cannot read",
            ),
            (
                format!("[oidc.oidc_env]\n{oidc}rp.client_secret_file = \"secret.txt\"\n"),
                "given twice",
            ),
            (
                format!(
                    "[oidc.oidc_env]\n{oidc}\n{}",
                    saml1(&fx::SETTINGS.replace("order = 2", "order = 3"))
                ),
                "orders must be unique",
            ),
            (
                format!(
                    "[oidc.saml1]\n{}\n{}",
                    oidc.replace("order = 3", "order = 9"),
                    saml1(fx::SETTINGS)
                ),
                "names must be unique",
            ),
        ];
        for (toml, expected) in cases {
            let e = resolve_all(&toml)
                .err()
                .unwrap_or_else(|| panic!("accepted: {toml}"));
            assert!(e.contains(expected), "{e:?} should say {expected:?}");
            assert!(e.contains("realms.oidc."), "{e}");
        }
    }

    fn saml1(settings: &str) -> String {
        format!("[saml.saml1]\n{settings}")
    }

    #[test]
    fn no_realms_is_the_native_realm_alone() {
        assert!(resolve_text("").unwrap().is_empty());
        assert!(resolve_text("[native.default_native]\norder = 0\n")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_saml_realm_loads_relative_to_the_config_folder() {
        let realms = resolve_text(&saml1(fx::SETTINGS)).unwrap();
        let realm = realms.get("saml1", 0).unwrap();
        assert_eq!(realm.idp.entity_id, fx::IDP);
        assert!(realms.by_acs(fx::ACS, 0).is_some());
    }

    #[test]
    fn problems_name_the_realm_and_the_setting() {
        let cases = [
            (
                saml1(&fx::SETTINGS.replace("idp-metadata.xml", "missing.xml")),
                "[idp.metadata.path] cannot read",
            ),
            (
                saml1(&fx::SETTINGS.replace("idp.entity_id = \"https://idp.example.org/\"\n", "")),
                "setting [idp.entity_id] is required",
            ),
            (
                saml1(&fx::SETTINGS.replace(
                    "idp.entity_id = \"https://idp.example.org/\"",
                    "idp.entity_id = \"https://other.example.org/\"",
                )),
                "[idp.metadata.path]",
            ),
            (
                saml1(&fx::SETTINGS.replace(
                    "sp.acs = \"https://dashboard.example.org/api/security/saml/callback\"",
                    "sp.acs = \"not a url\"",
                )),
                "setting [sp.acs]",
            ),
            (
                format!(
                    "{}\n[native.default_native]\norder = 2\n",
                    saml1(fx::SETTINGS)
                ),
                "orders must be unique",
            ),
            (
                "[native.ldap1]\norder = 1\n".to_owned(),
                "the only native realm",
            ),
            (saml1("order = 1\nsurprise = 1\n"), "surprise"),
        ];
        for (toml, expected) in cases {
            let e = resolve_text(&toml)
                .err()
                .unwrap_or_else(|| panic!("accepted: {toml}"));
            assert!(e.contains(expected), "{e:?} should say {expected:?}");
            if !toml.contains("ldap1") {
                assert!(e.contains("realms.") || e.contains("saml1"), "{e}");
            }
        }
    }
}
