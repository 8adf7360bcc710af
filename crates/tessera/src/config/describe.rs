//! What is said about a configuration: `serve --help`'s notes, the store
//! named in the start-up log, and the warnings given at start and by
//! `check-config`.

use super::{Config, StoreLocation};

/// Printed after `tessera serve --help`'s flags.
pub const SERVE_HELP: &str = "\
Settings without a flag:
  TESSERA_BOOTSTRAP_PASSWORD       password of the superuser `elastic`, created only when
                                   the store has no users (otherwise ignored, with a warning)
  TESSERA_BOOTSTRAP_PASSWORD_FILE  the same, read from a file (one line)
  bootstrap_password = \"…\"         the same, as a key of the --config file
                                   (without any of them a password is generated and printed once;
                                   `tessera user reset-password elastic` sets a new one)
  TESSERA_LOG                      log filter, e.g. `info`, `warn,tessera=debug` [default: info]

Every flag can also be given as its TESSERA_* environment variable or as its
snake_case key in the --config file; a flag wins over the variable, which wins
over the file. Durations take a unit: 500ms, 30s, 20m, 1h, 1d. In the file,
numbers and booleans may be written as TOML values or as strings.

Examples:
  tessera serve
  TESSERA_BOOTSTRAP_PASSWORD=changeme tessera serve --data-dir /var/lib/tessera
  tessera serve --config /etc/tessera/tessera.toml --listen 0.0.0.0:9200 --issuer https://auth.example.com";

impl Config {
    /// The store in use, for the start-up log (never a database password).
    pub fn store_description(&self) -> String {
        match &self.store {
            StoreLocation::Sqlite(path) => {
                format!("sqlite:{}", crate::admin::absolute(path).display())
            }
            StoreLocation::Postgres { url, .. } => super::redact_url(url),
        }
    }

    /// Why the configuration may surprise, if it may: the default issuer
    /// on a wildcard address names that address, which no client reaches.
    pub fn issuer_warning(&self) -> Option<String> {
        (self.issuer.is_none() && self.listen.ip().is_unspecified()).then(|| {
            format!(
                "no `issuer` is set and `listen` is {}: the OAuth issuer and the URLs in \
                 /.well-known/oauth-authorization-server will be http://{} , which clients \
                 cannot reach; set `issuer` (--issuer, TESSERA_ISSUER) to the URL clients use",
                self.listen, self.listen
            )
        })
    }

    /// Logs [`Config::issuer_warning`], if any.
    pub fn warn_about_issuer(&self) {
        if let Some(warning) = self.issuer_warning() {
            tracing::warn!("{warning}");
        }
    }
}
