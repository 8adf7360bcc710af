//! The parsers every setting goes through: durations, whole numbers,
//! booleans, and the one wording of a setting's error.

use std::time::Duration;

use anyhow::bail;
use tessera_domain::time::parse_time_value;

/// A setting's error: names the setting, where this value came from (when
/// known), and every way of setting it.
pub(crate) fn setting_error(name: &str, problem: impl std::fmt::Display) -> anyhow::Error {
    let from = super::sources::current_source(name)
        .map(|s| format!("set by {s}; "))
        .unwrap_or_default();
    anyhow::anyhow!(
        "invalid setting `{name}` ({from}flag --{}, environment TESSERA_{}, or `{name}` in the config file): {problem}",
        name.replace('_', "-"),
        name.to_ascii_uppercase()
    )
}

pub(crate) fn duration(
    name: &str,
    value: Option<String>,
    default: &str,
    min: Duration,
    max: Duration,
) -> anyhow::Result<Duration> {
    let text = value.unwrap_or_else(|| default.to_owned());
    let d = parse_time_value(&text).map_err(|e| setting_error(name, e))?;
    if d < min || d > max {
        return Err(setting_error(
            name,
            format!(
                "must be between {} and {}, got [{text}]",
                show(min),
                show(max)
            ),
        ));
    }
    Ok(d)
}

pub(crate) fn show(d: Duration) -> String {
    if d.subsec_millis() != 0 {
        return format!("{}ms", d.as_millis());
    }
    match d.as_secs() {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s if s >= 1 => format!("{s}s"),
        _ => format!("{}ms", d.as_millis()),
    }
}

pub(crate) fn integer<T: TryFrom<u64>>(
    name: &str,
    value: Option<String>,
    default: u64,
    min: u64,
    max: u64,
) -> anyhow::Result<T> {
    let n = match value {
        None => default,
        Some(text) => text
            .trim()
            .parse::<u64>()
            .map_err(|_| setting_error(name, format!("expected a whole number, got [{text}]")))?,
    };
    if n < min || n > max {
        return Err(setting_error(
            name,
            format!("must be between {min} and {max}, got {n}"),
        ));
    }
    T::try_from(n).map_err(|_| setting_error(name, "out of range"))
}

/// A true/false setting: the flag or environment text if given, else the
/// file's value, else `default`.
pub(crate) fn boolean(
    name: &str,
    text: Option<String>,
    file: Option<bool>,
    default: bool,
) -> anyhow::Result<bool> {
    match text {
        Some(text) => match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => bail!(setting_error(
                name,
                format!("expected true or false, got [{text}]")
            )),
        },
        None => Ok(file.unwrap_or(default)),
    }
}

pub(crate) fn toml_text(v: Option<toml::Value>) -> Option<String> {
    v.map(|v| match v {
        toml::Value::String(s) => s,
        other => other.to_string(),
    })
}

/// An `ADDRESS:PORT` setting. `localhost:PORT` and `:PORT` both mean
/// 127.0.0.1 (never every interface by accident: that takes an explicit
/// `0.0.0.0:PORT` or `[::]:PORT`).
pub(crate) fn address(name: &str, text: &str) -> anyhow::Result<std::net::SocketAddr> {
    let trimmed = text.trim();
    let port = trimmed
        .strip_prefix("localhost:")
        .or_else(|| trimmed.strip_prefix(':'));
    let normalized = match port {
        Some(port) => format!("127.0.0.1:{port}"),
        None => trimmed.to_owned(),
    };
    normalized.parse().map_err(|_| {
        setting_error(
            name,
            format!(
                "expected ADDRESS:PORT (127.0.0.1:9200, 0.0.0.0:9200, [::1]:9200, \
                 localhost:9200, or :9200 for 127.0.0.1), got [{text}]"
            ),
        )
    })
}

/// Parses a config file's `text` as `T`. An error says where and what,
/// but never quotes the file, since the line may hold a secret (a password,
/// a client secret) and the message is logged; and when that line, or the
/// message, names a secret, neither shows the value the message is about.
pub(crate) fn parse_file<T: serde::de::DeserializeOwned>(text: &str) -> anyhow::Result<T> {
    toml::from_str(text).map_err(|e| anyhow::anyhow!(toml_error(text, &e)))
}

fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim();
    let Some(span) = e.span() else {
        return message.to_owned();
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let line_text = text.lines().nth(line - 1).unwrap_or_default();
    let secret = |s: &str| {
        let s = s.to_ascii_lowercase();
        ["password", "secret", "key", "token"]
            .iter()
            .any(|w| s.contains(w))
    };
    let about_a_value = message.starts_with("invalid type") || message.starts_with("invalid value");
    let message = if about_a_value && (secret(line_text) || secret(message)) {
        // Every `…` quote of the message, which holds the value.
        message
            .split('`')
            .enumerate()
            .map(|(i, part)| if i % 2 == 1 { "(not shown)" } else { part })
            .collect::<Vec<_>>()
            .join("")
    } else {
        message.to_owned()
    };
    format!("line {line}, column {column}: {message}")
}
