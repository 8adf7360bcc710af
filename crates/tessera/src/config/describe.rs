//! What is said about a configuration: `serve --help`'s notes, the store
//! named in the start-up log, and the warnings given at start and by
//! `check-config`.

use std::time::Duration;

use super::values::show;
use super::{Config, StoreLocation};

/// A TOML value for the effective configuration.
enum Shown {
    Text(String),
    Number(String),
    Bool(bool),
    List(Vec<String>),
    Absent,
}

fn text(s: impl Into<String>) -> Shown {
    Shown::Text(s.into())
}

fn duration(d: Duration) -> Shown {
    Shown::Text(show(d))
}

fn number(n: impl std::fmt::Display) -> Shown {
    Shown::Number(n.to_string())
}

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

impl Config {
    /// The effective configuration as TOML that `--config` accepts, each
    /// value followed by where it came from; secrets as `<redacted>`.
    pub fn to_toml(&self) -> String {
        let t = &self.http.throttle;
        let (pool_size, store_timeout, store_wait, cache_ttl) = match &self.store {
            StoreLocation::Postgres {
                pool_size,
                timeout,
                wait,
                cache_ttl,
                ..
            } => (
                number(pool_size),
                duration(*timeout),
                duration(*wait),
                duration(*cache_ttl),
            ),
            StoreLocation::Sqlite(_) => {
                (Shown::Absent, Shown::Absent, Shown::Absent, Shown::Absent)
            }
        };
        let ca_file = match &self.store {
            StoreLocation::Postgres {
                ca_file: Some(path),
                ..
            } => text(path.display().to_string()),
            _ => Shown::Absent,
        };
        let store = match &self.store {
            StoreLocation::Sqlite(path) => text(format!("sqlite:{}", path.display())),
            StoreLocation::Postgres { url, .. } => text(super::redact_url(url)),
        };
        let delays: Vec<String> = t
            .lock
            .schedule
            .iter()
            .map(|ms| {
                show(Duration::from_millis(
                    u64::try_from(*ms).unwrap_or_default(),
                ))
            })
            .collect();
        let settings: Vec<(&str, Shown)> = vec![
            ("listen", text(self.listen.to_string())),
            ("data_dir", text(self.data_dir.display().to_string())),
            ("store", store),
            ("store_ca_file", ca_file),
            ("store_pool_size", pool_size),
            ("store_timeout", store_timeout),
            ("store_wait", store_wait),
            ("cluster_cache_ttl", cache_ttl),
            ("access_token_ttl", duration(self.http.access_token_ttl)),
            ("refresh_window", duration(self.http.refresh_window)),
            (
                "refresh_reuse_revokes_family",
                Shown::Bool(self.http.refresh_reuse_revokes_family),
            ),
            (
                "revoke_on_user_change",
                Shown::Bool(self.http.revoke_on_user_change),
            ),
            ("node_name", text(self.http.node_name.clone())),
            ("cluster_name", text(self.http.cluster_name.clone())),
            (
                "token_invalidation",
                text(
                    match self.http.token_invalidation {
                        tessera_http::TokenInvalidation::Family => "family",
                        tessera_http::TokenInvalidation::Token => "token",
                    }
                    .to_owned(),
                ),
            ),
            ("max_body_bytes", number(self.http.max_body_bytes)),
            ("request_timeout", duration(self.http.request_timeout)),
            ("cleanup_interval", duration(self.cleanup_interval)),
            ("cleanup_batch", number(self.cleanup_batch)),
            ("shutdown_timeout", duration(self.shutdown_timeout)),
            (
                "header_read_timeout",
                duration(self.connections.header_read_timeout),
            ),
            ("idle_timeout", duration(self.connections.idle_timeout)),
            ("max_connections", number(self.connections.max_connections)),
            ("issuer", text(self.http.issuer.clone())),
            (
                "metrics_listen",
                self.metrics_listen
                    .map_or(Shown::Absent, |a| text(a.to_string())),
            ),
            (
                "tls_cert",
                self.tls
                    .as_ref()
                    .map_or(Shown::Absent, |f| text(f.cert.display().to_string())),
            ),
            (
                "tls_key",
                self.tls
                    .as_ref()
                    .map_or(Shown::Absent, |f| text(f.key.display().to_string())),
            ),
            (
                "log_format",
                text(match self.observability.log_format {
                    super::observability::LogFormat::Text => "text",
                    super::observability::LogFormat::Json => "json",
                }),
            ),
            ("access_log", Shown::Bool(self.observability.access_log)),
            (
                "audit_log",
                match &self.observability.audit_log {
                    None => Shown::Absent,
                    Some(super::observability::AuditTarget::Stdout) => text("-"),
                    Some(super::observability::AuditTarget::File(p)) => {
                        text(p.display().to_string())
                    }
                },
            ),
            (
                "audit_include",
                self.observability
                    .audit_filter
                    .include
                    .as_ref()
                    .map_or(Shown::Absent, |l| Shown::List(l.clone())),
            ),
            (
                "audit_exclude",
                if self.observability.audit_filter.exclude.is_empty() {
                    Shown::Absent
                } else {
                    Shown::List(self.observability.audit_filter.exclude.clone())
                },
            ),
            ("lockout_threshold", number(t.lock.threshold)),
            ("lockout_delays", text(delays.join(","))),
            (
                "lockout_reset_after",
                duration(Duration::from_millis(
                    u64::try_from(t.lock.reset_after).unwrap_or_default(),
                )),
            ),
            ("source_failure_burst", number(t.budget.burst)),
            ("source_failure_rate", number(t.budget.per_second)),
            (
                "trusted_proxies",
                text(
                    t.trusted_proxies
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            ),
            (
                "bootstrap_password",
                self.bootstrap_password
                    .as_ref()
                    .map_or(Shown::Absent, |_| text("<redacted>")),
            ),
        ];
        let mut out =
            String::from("# The effective configuration; each value's source follows it.\n");
        for (name, value) in settings {
            let source = match name {
                "bootstrap_password" => {
                    bootstrap_source(&self.file, self.bootstrap_password.is_some())
                }
                "issuer" if self.issuer.is_none() => "default: http://<listen address>".into(),
                _ => self.file.source(name).unwrap_or_else(|| "default".into()),
            };
            let value = match value {
                Shown::Text(s) => toml::Value::String(s).to_string(),
                Shown::Number(n) => n,
                Shown::Bool(b) => b.to_string(),
                Shown::List(items) => {
                    toml::Value::Array(items.into_iter().map(toml::Value::String).collect())
                        .to_string()
                }
                Shown::Absent => {
                    out.push_str(&format!("# {name} is not set ({source})\n"));
                    continue;
                }
            };
            out.push_str(&format!("{name} = {value}  # {source}\n"));
        }
        if self.file.keys.contains("realms") {
            out.push_str("# [realms.*] tables: as in the config file (checked)\n");
        }
        out
    }
}

fn bootstrap_source(file: &super::FileKeys, set: bool) -> String {
    if std::env::var_os("TESSERA_BOOTSTRAP_PASSWORD").is_some() {
        "environment variable TESSERA_BOOTSTRAP_PASSWORD".into()
    } else if std::env::var_os("TESSERA_BOOTSTRAP_PASSWORD_FILE").is_some() {
        "environment variable TESSERA_BOOTSTRAP_PASSWORD_FILE".into()
    } else if set {
        file.source("bootstrap_password")
            .unwrap_or_else(|| "config file".into())
    } else {
        "generated at first start when the store has no users".into()
    }
}
