//! `[realms.oidc.<name>]`: OpenID Connect realms with Elasticsearch's
//! setting names. The client secret is never in the file: it comes from
//! the environment variable `TESSERA_REALMS_OIDC_<NAME>_RP_CLIENT_SECRET`
//! or from the file `rp.client_secret_file` names.

use std::path::Path;

use tessera_realms::oidc::settings::{secret_env_var, ClientSecret};
use tessera_realms::oidc::{OidcRealmConfig, OidcRealmSettings};

/// Checks a realm's table and gives its settings with the client secret.
/// Without `base_dir` no file is read (the config-file fuzz target) and
/// the secret is left out.
pub fn realm(
    name: &str,
    table: toml::Value,
    base_dir: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<OidcRealmConfig, String> {
    let settings: OidcRealmSettings = table
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_owned())?;
    let mut config = settings.validate(name).map_err(|e| e.to_string())?;
    let Some(base_dir) = base_dir else {
        return Ok(config);
    };
    let var = secret_env_var(name);
    let from_env = env(&var).filter(|s| !s.is_empty());
    let secret = match (from_env, &config.client_secret_file) {
        (Some(_), Some(_)) => {
            return Err(format!(
                "the client secret is given twice: by [{var}] and by setting [rp.client_secret_file]; keep one"
            ))
        }
        (Some(s), None) => s,
        (None, Some(file)) => {
            let path = base_dir.join(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "setting [rp.client_secret_file]: cannot read [{}]: {e}",
                    path.display()
                )
            })?;
            let text = text.trim_end_matches(['\r', '\n']).to_owned();
            if text.is_empty() {
                return Err(format!(
                    "setting [rp.client_secret_file]: [{}] is empty",
                    path.display()
                ));
            }
            text
        }
        (None, None) => {
            return Err(format!(
                "the client secret is required: set the environment variable [{var}] or name a file holding it with setting [rp.client_secret_file]"
            ))
        }
    };
    config.client_secret = Some(ClientSecret::new(secret));
    Ok(config)
}
