//! What the node tells its operator: the log format, the access log and
//! the audit log.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Deserialize;
use tessera_http::audit::{AuditFilter, EVENT_ACTIONS};

use super::values::{boolean, setting_error};

/// The flags (and environment variables) of these settings.
#[derive(Debug, Clone, Default, Args)]
pub struct ObservabilityArgs {
    /// Log lines as `text` or as one JSON object per line (`json`)
    /// [default: text].
    #[arg(long, env = "TESSERA_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// One `tessera::access` log line per request: method, route, status,
    /// duration, request id and user [default: false].
    #[arg(long, env = "TESSERA_ACCESS_LOG")]
    pub access_log: Option<String>,
    /// Audit log in Elasticsearch's format: a file (created 0600), or `-`
    /// for standard output [default: none].
    #[arg(long, env = "TESSERA_AUDIT_LOG")]
    pub audit_log: Option<String>,
    /// Event actions the audit log writes, comma-separated [default: all].
    #[arg(long, env = "TESSERA_AUDIT_INCLUDE")]
    pub audit_include: Option<String>,
    /// Event actions the audit log leaves out, comma-separated
    /// [default: none].
    #[arg(long, env = "TESSERA_AUDIT_EXCLUDE")]
    pub audit_exclude: Option<String>,
}

/// The same settings from the TOML file.
#[derive(Debug, Default, Deserialize)]
pub struct ObservabilityFile {
    pub log_format: Option<String>,
    /// The file's value as text (`true`, `"true"`: one rule for booleans).
    pub access_log: Option<String>,
    pub audit_log: Option<String>,
    pub audit_include: Option<Vec<String>>,
    pub audit_exclude: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Where the audit log goes.
#[derive(Debug, Clone, PartialEq)]
pub enum AuditTarget {
    Stdout,
    File(PathBuf),
}

/// The resolved settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observability {
    pub log_format: LogFormat,
    pub access_log: bool,
    pub audit_log: Option<AuditTarget>,
    pub audit_filter: AuditFilter,
}

pub fn resolve(args: ObservabilityArgs, file: ObservabilityFile) -> anyhow::Result<Observability> {
    let log_format = log_format(args.log_format.or(file.log_format))?;
    let access_log = boolean(
        "access_log",
        args.access_log.or(file.access_log),
        None,
        false,
    )?;
    let audit_log = match args.audit_log.or(file.audit_log) {
        None => None,
        Some(s) if s.trim().is_empty() => {
            return Err(setting_error("audit_log", "expected a file or `-`, got []"))
        }
        Some(s) if s == "-" => Some(AuditTarget::Stdout),
        Some(s) => Some(AuditTarget::File(PathBuf::from(s))),
    };
    let include = actions("audit_include", args.audit_include, file.audit_include)?;
    let exclude = actions("audit_exclude", args.audit_exclude, file.audit_exclude)?;
    Ok(Observability {
        log_format,
        access_log,
        audit_log,
        audit_filter: AuditFilter {
            include,
            exclude: exclude.unwrap_or_default(),
        },
    })
}

fn log_format(text: Option<String>) -> anyhow::Result<LogFormat> {
    match text.as_deref().map(str::trim) {
        None | Some("text") => Ok(LogFormat::Text),
        Some("json") => Ok(LogFormat::Json),
        Some(other) => Err(setting_error(
            "log_format",
            format!("expected text or json, got [{other}]"),
        )),
    }
}

/// A list of event actions, each one the audit log knows.
fn actions(
    name: &str,
    text: Option<String>,
    file: Option<Vec<String>>,
) -> anyhow::Result<Option<Vec<String>>> {
    let list = match (text, file) {
        (Some(t), _) => t
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        (None, Some(l)) => l,
        (None, None) => return Ok(None),
    };
    if let Some(unknown) = list.iter().find(|a| !EVENT_ACTIONS.contains(&a.as_str())) {
        return Err(setting_error(
            name,
            format!(
                "unknown event action [{unknown}]; known: {}",
                EVENT_ACTIONS.join(", ")
            ),
        ));
    }
    Ok(Some(list))
}

/// The log format as early as it can be known, before the rest of the
/// configuration is resolved (its lines must already be in that format):
/// the flag or environment, else the config file's `log_format` if the
/// file can be read; any error is left to the full resolution.
pub fn early_log_format(args: &ObservabilityArgs, config: Option<&Path>) -> LogFormat {
    #[derive(Deserialize)]
    struct Only {
        log_format: Option<String>,
    }
    let from_file = || {
        let text = std::fs::read_to_string(config?).ok()?;
        // Only this key: the file's other keys are checked later.
        let table: toml::Table = toml::from_str(&text).ok()?;
        let only: Only = toml::Value::Table(table).try_into().ok()?;
        only.log_format
    };
    log_format(args.log_format.clone().or_else(from_file)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let o = resolve(ObservabilityArgs::default(), ObservabilityFile::default()).unwrap();
        assert_eq!(o, Observability::default());
        let o = resolve(
            ObservabilityArgs {
                log_format: Some("json".into()),
                access_log: Some("true".into()),
                audit_log: Some("-".into()),
                audit_exclude: Some("access_granted, authentication_success".into()),
                ..Default::default()
            },
            ObservabilityFile {
                audit_include: Some(vec!["access_denied".into()]),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(o.log_format, LogFormat::Json);
        assert!(o.access_log);
        assert_eq!(o.audit_log, Some(AuditTarget::Stdout));
        assert_eq!(o.audit_filter.include, Some(vec!["access_denied".into()]));
        assert_eq!(o.audit_filter.exclude.len(), 2);
        for (args, name) in [
            (
                ObservabilityArgs {
                    log_format: Some("xml".into()),
                    ..Default::default()
                },
                "log_format",
            ),
            (
                ObservabilityArgs {
                    audit_include: Some("access_granted,nope".into()),
                    ..Default::default()
                },
                "audit_include",
            ),
        ] {
            let err = resolve(args, ObservabilityFile::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("`{name}`")), "{err}");
        }
    }
}
