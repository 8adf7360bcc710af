//! The settings of password and client-secret guessing: the per-account
//! soft lock, the per-source failure budget and the trusted proxies.

use std::time::Duration;

use clap::Args;
use tessera_domain::throttle::{BudgetPolicy, LockPolicy};
use tessera_domain::time::millis;
use tessera_http::throttle::ThrottleSettings;

use super::{duration, integer, setting_error, toml_text};

/// Flags (and `TESSERA_*` variables) of the throttle.
#[derive(Debug, Clone, Default, Args)]
pub struct ThrottleArgs {
    /// Consecutive failed password or client-secret verifications of one
    /// account before it is soft-locked [default: 5].
    #[arg(long, env = "TESSERA_LOCKOUT_THRESHOLD")]
    pub lockout_threshold: Option<String>,
    /// The successive lock durations, comma-separated; the last repeats
    /// [default: 1s,3s,5s,10s,30s,1m,5m].
    #[arg(long, env = "TESSERA_LOCKOUT_DELAYS")]
    pub lockout_delays: Option<String>,
    /// An account without a failure for this long starts afresh [default: 10m].
    #[arg(long, env = "TESSERA_LOCKOUT_RESET_AFTER")]
    pub lockout_reset_after: Option<String>,
    /// Failed verifications one source address may make at once [default: 100].
    #[arg(long, env = "TESSERA_SOURCE_FAILURE_BURST")]
    pub source_failure_burst: Option<String>,
    /// Failed verifications per second a source's budget refills with
    /// [default: 10].
    #[arg(long, env = "TESSERA_SOURCE_FAILURE_RATE")]
    pub source_failure_rate: Option<String>,
    /// Proxies whose X-Forwarded-For is believed: comma-separated
    /// addresses or CIDR blocks [default: none].
    #[arg(long, env = "TESSERA_TRUSTED_PROXIES")]
    pub trusted_proxies: Option<String>,
}

/// The same settings from the TOML file.
#[derive(Debug, Default)]
pub struct ThrottleFile {
    pub lockout_threshold: Option<toml::Value>,
    pub lockout_delays: Option<toml::Value>,
    pub lockout_reset_after: Option<String>,
    pub source_failure_burst: Option<toml::Value>,
    pub source_failure_rate: Option<toml::Value>,
    pub trusted_proxies: Option<toml::Value>,
}

/// A TOML array of strings as one comma-separated list.
fn list_text(v: Option<toml::Value>) -> Option<String> {
    match v {
        Some(toml::Value::Array(items)) => Some(
            items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
        ),
        other => toml_text(other),
    }
}

pub fn resolve(args: ThrottleArgs, file: ThrottleFile) -> anyhow::Result<ThrottleSettings> {
    let threshold = integer(
        "lockout_threshold",
        args.lockout_threshold.or(toml_text(file.lockout_threshold)),
        5,
        1,
        1000,
    )?;
    let delays_text = args
        .lockout_delays
        .or(list_text(file.lockout_delays))
        .unwrap_or_else(|| "1s,3s,5s,10s,30s,1m,5m".into());
    let schedule = delays_text
        .split(',')
        .map(|d| {
            duration(
                "lockout_delays",
                Some(d.trim().to_owned()),
                "",
                Duration::from_millis(1),
                Duration::from_secs(86_400),
            )
            .map(millis)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if schedule.len() > 64 {
        return Err(setting_error("lockout_delays", "at most 64 durations"));
    }
    let reset_after = duration(
        "lockout_reset_after",
        args.lockout_reset_after.or(file.lockout_reset_after),
        "10m",
        Duration::from_secs(1),
        Duration::from_secs(7 * 86_400),
    )?;
    let burst: u32 = integer(
        "source_failure_burst",
        args.source_failure_burst
            .or(toml_text(file.source_failure_burst)),
        100,
        1,
        10_000_000,
    )?;
    let rate_text = args
        .source_failure_rate
        .or(toml_text(file.source_failure_rate))
        .unwrap_or_else(|| "10".into());
    let per_second = rate_text
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|r| r.is_finite() && *r >= 0.001 && *r <= 1_000_000.0)
        .ok_or_else(|| {
            setting_error(
                "source_failure_rate",
                format!("expected a number of failures per second between 0.001 and 1000000, got [{rate_text}]"),
            )
        })?;
    let trusted_proxies = match args.trusted_proxies.or(list_text(file.trusted_proxies)) {
        None => Vec::new(),
        Some(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        setting_error(
                            "trusted_proxies",
                            format!(
                                "expected addresses or CIDR blocks such as 10.0.0.0/8, got [{s}]"
                            ),
                        )
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
    };
    Ok(ThrottleSettings {
        lock: LockPolicy {
            threshold,
            schedule,
            reset_after: millis(reset_after),
        },
        budget: BudgetPolicy {
            burst: f64::from(burst),
            per_second,
        },
        trusted_proxies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_validation() {
        let t = resolve(ThrottleArgs::default(), ThrottleFile::default()).unwrap();
        assert_eq!(t.lock, LockPolicy::default());
        assert_eq!(t.budget, BudgetPolicy::default());
        assert!(t.trusted_proxies.is_empty());
        let t = resolve(
            ThrottleArgs {
                lockout_delays: Some("2s, 1m".into()),
                trusted_proxies: Some("10.0.0.0/8, 192.0.2.7,::1".into()),
                source_failure_rate: Some("0.5".into()),
                ..Default::default()
            },
            ThrottleFile::default(),
        )
        .unwrap();
        assert_eq!(t.lock.schedule, vec![2_000, 60_000]);
        assert_eq!(t.trusted_proxies.len(), 3);
        assert!(t.trusted_proxies[1].contains(&"192.0.2.7".parse::<std::net::IpAddr>().unwrap()));
        assert_eq!(t.budget.per_second, 0.5);
        for (args, name) in [
            (
                ThrottleArgs {
                    lockout_threshold: Some("0".into()),
                    ..Default::default()
                },
                "lockout_threshold",
            ),
            (
                ThrottleArgs {
                    lockout_delays: Some("1s,,3s".into()),
                    ..Default::default()
                },
                "lockout_delays",
            ),
            (
                ThrottleArgs {
                    source_failure_rate: Some("0".into()),
                    ..Default::default()
                },
                "source_failure_rate",
            ),
            (
                ThrottleArgs {
                    source_failure_burst: Some("lots".into()),
                    ..Default::default()
                },
                "source_failure_burst",
            ),
            (
                ThrottleArgs {
                    trusted_proxies: Some("10.0.0.0/33".into()),
                    ..Default::default()
                },
                "trusted_proxies",
            ),
        ] {
            let err = resolve(args, ThrottleFile::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("`{name}`")), "{err}");
        }
    }
}
