//! The realm chain of the config file: `[realms.saml.<name>]` tables with
//! Elasticsearch's setting names as keys, and the native realm
//! `[realms.native.default_native]`, on whether configured or not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::bail;
use serde::Deserialize;
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
    native: BTreeMap<String, NativeRealmFile>,
}

/// `[realms.native.default_native]`: its place in the chain. The native
/// realm cannot be turned off: the bootstrap user and the dashboard's
/// service user live in it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NativeRealmFile {
    order: Option<i64>,
}

fn realm_error(kind: &str, name: &str, problem: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("invalid realm `realms.{kind}.{name}`: {problem}")
}

/// Checks the chain and loads every SAML realm's files (paths relative to
/// `base_dir`, the config file's folder): files readable, metadata
/// parsed, entity ids present, URLs well formed; each problem names the
/// realm and the setting.
pub fn resolve(file: RealmsFile, base_dir: &Path) -> anyhow::Result<SamlRealms> {
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
        let realm = SamlRealm::load(config, base_dir).map_err(|e| realm_error("saml", &name, e))?;
        loaded.push((realm, base_dir.to_owned()));
    }
    Ok(SamlRealms::new(loaded))
}

/// The folder a config file's relative paths are resolved against.
pub fn base_dir(config_file: Option<&Path>) -> PathBuf {
    config_file
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_owned)
}
