//! `[realms.jwt.<name>]`: JWT realms with Elasticsearch's setting names
//! (see `tessera_realms::jwt::settings`). Each realm's settings are checked,
//! its secrets read from the environment or the files named, and its JWKS
//! file read, at start; every problem names the realm and the setting.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::bail;
use tessera_http::jwt::{JwtRealm, JwtRealms, JWKS_MIN_REFRESH_INTERVAL};
use tessera_realms::jose::{HmacKey, JwksLocation, JwksSource};
use tessera_realms::jwt::{ClientAuthentication, JwtRealmSettings};
use zeroize::Zeroizing;

use super::realms::{realm_error, NATIVE_REALM};

/// The shortest HMAC key accepted, in bytes (RFC 7518 §3.2 for HS256).
const MIN_HMAC_KEY_BYTES: usize = 32;

/// Checks and loads every JWT realm; `orders` holds the orders already
/// taken by other realms. Without `base_dir` nothing is read and no realm
/// results (the config-file fuzz target).
pub fn resolve(
    tables: BTreeMap<String, toml::Value>,
    orders: &mut BTreeMap<i64, String>,
    base_dir: Option<&Path>,
) -> anyhow::Result<JwtRealms> {
    let mut realms = Vec::new();
    for (name, table) in tables {
        let err = |problem: &dyn std::fmt::Display| realm_error("jwt", &name, problem);
        if name.is_empty() || name.starts_with('_') || name == NATIVE_REALM {
            bail!(err(&"this realm name is reserved"));
        }
        let settings: JwtRealmSettings = table
            .try_into()
            .map_err(|e: toml::de::Error| err(&e.message()))?;
        let mut config = settings.validate(&name).map_err(|e| err(&e))?;
        if let Some(other) = orders.insert(config.order, format!("jwt.{name}")) {
            bail!(err(&format!(
                "setting [order] {} is also the order of realm `realms.{other}`; orders must be unique",
                config.order
            )));
        }
        let Some(base_dir) = base_dir else {
            continue;
        };
        let hmac = if config.uses_hmac() {
            let key = secret(
                &config.hmac_key_env(),
                config.hmac_key_file.as_deref(),
                base_dir,
            )
            .map_err(|e| err(&format!("setting [hmac_key_file] {e}")))?
            .ok_or_else(|| {
                err(&format!(
                    "setting [hmac_key] is required for HS* algorithms: set {} or hmac_key_file",
                    config.hmac_key_env()
                ))
            })?;
            if key.len() < MIN_HMAC_KEY_BYTES {
                bail!(err(&format!(
                    "setting [hmac_key] must be at least {MIN_HMAC_KEY_BYTES} bytes"
                )));
            }
            Some(HmacKey::new(key.as_bytes().to_vec()))
        } else {
            None
        };
        let shared_secret = match config.client_authentication {
            ClientAuthentication::None => None,
            ClientAuthentication::SharedSecret => Some(
                secret(
                    &config.shared_secret_env(),
                    config.shared_secret_file.as_deref(),
                    base_dir,
                )
                .map_err(|e| err(&format!("setting [client_authentication.shared_secret_file] {e}")))?
                .ok_or_else(|| {
                    err(&format!(
                        "setting [client_authentication.shared_secret] is required with client_authentication.type = shared_secret: set {} or client_authentication.shared_secret_file",
                        config.shared_secret_env()
                    ))
                })?,
            ),
        };
        if let Some(JwksLocation::File(path)) = &mut config.jwkset {
            *path = base_dir.join(&*path);
        }
        let jwks = config
            .jwkset
            .clone()
            .map(|location| JwksSource::new(location, JWKS_MIN_REFRESH_INTERVAL))
            .transpose()
            .map_err(|e| err(&format!("setting [pkc_jwkset_path] {e}")))?;
        realms.push(JwtRealm::new(
            config,
            jwks,
            hmac,
            shared_secret.as_ref().map(|s| s.as_bytes()),
        ));
    }
    Ok(JwtRealms::new(realms))
}

/// A secret from the environment variable `env`, else from `file`
/// (relative to `base_dir`, trailing newline dropped); `None` when neither
/// is set.
fn secret(
    env: &str,
    file: Option<&Path>,
    base_dir: &Path,
) -> Result<Option<Zeroizing<String>>, String> {
    if let Ok(value) = std::env::var(env) {
        if !value.is_empty() {
            return Ok(Some(Zeroizing::new(value)));
        }
    }
    let Some(file) = file else {
        return Ok(None);
    };
    let path = base_dir.join(file);
    let text = Zeroizing::new(
        std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    let value = text.trim_end_matches(['\r', '\n']);
    if value.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(Some(Zeroizing::new(value.to_owned())))
}

#[cfg(test)]
mod tests {
    use super::super::realms::{resolve, RealmsFile};
    use tessera_realms::testing::jwt::{jwks, TestKey};

    const REALM: &str = "[jwt.jwt1]\norder = 1\nallowed_issuer = \"https://issuer.example.org\"\nallowed_audiences = [\"tessera\"]\npkc_jwkset_path = \"jwks.json\"\n";

    /// Resolves `[realms]` written as `toml` in a folder holding a JWKS and
    /// a shared-secret file; the error text when it fails.
    fn resolve_text(toml: &str) -> Result<bool, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("jwks.json"),
            jwks(&[&TestKey::rsa(1, "k1")]),
        )
        .unwrap();
        std::fs::write(dir.path().join("secret.txt"), "s3cret\n").unwrap();
        let file: RealmsFile = toml::from_str(toml).map_err(|e| e.to_string())?;
        resolve(file, Some(dir.path()))
            .map(|r| !r.jwt.is_empty())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_jwt_realm_loads_and_problems_name_the_realm_and_the_setting() {
        let secret = "client_authentication.shared_secret_file = \"secret.txt\"\n";
        assert_eq!(resolve_text(&format!("{REALM}{secret}")), Ok(true));
        let cases = [
            (
                REALM.to_owned(),
                "[client_authentication.shared_secret] is required",
            ),
            (
                format!("{REALM}client_authentication.shared_secret = \"x\"\n"),
                "must not be written in the config file",
            ),
            (
                format!("{REALM}{secret}hmac_key = \"x\"\n"),
                "[hmac_key] must not be written",
            ),
            (
                REALM.replace("jwks.json", "missing.json") + secret,
                "[pkc_jwkset_path] cannot read",
            ),
            (
                REALM.replace("jwks.json", "http://idp.example.org/jwks") + secret,
                "loopback",
            ),
            (
                REALM.replace("allowed_audiences = [\"tessera\"]\n", "") + secret,
                "[allowed_audiences]",
            ),
            (
                format!("{REALM}{secret}allowed_signature_algorithms = [\"none\"]\n"),
                "[allowed_signature_algorithms]",
            ),
            (
                format!("{REALM}{secret}allowed_signature_algorithms = [\"HS256\", \"RS256\"]\n"),
                "mixes HMAC",
            ),
            (
                format!("{REALM}{secret}[native.default_native]\norder = 1\n"),
                "orders must be unique",
            ),
            (format!("{REALM}{secret}surprise = 1\n"), "surprise"),
        ];
        for (toml, expected) in cases {
            let e = resolve_text(&toml)
                .err()
                .unwrap_or_else(|| panic!("accepted: {toml}"));
            assert!(e.contains(expected), "{e:?} should say {expected:?}");
            assert!(e.contains("realms.jwt.jwt1"), "{e}");
        }
    }
}
