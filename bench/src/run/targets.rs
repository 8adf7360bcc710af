//! The performance targets and the verdict on each.

use super::*;

/// The table's line for pgbench: transactions per second, not HTTP requests.
pub(crate) fn pgbench_row(p: &PgbenchReport) -> Row {
    let name = format!("pgbench -N, {} clients (tx/s, not HTTP)", p.clients);
    match p.tps {
        Some(tps) => {
            let mut notes = vec![format!("-j {}, scale {}", p.threads, p.scale)];
            if let Some(l) = p.latency_avg_ms {
                notes.push(format!("latency avg {l:.2} ms"));
            }
            if let Some(f) = p.failed_transactions.filter(|&f| f > 0) {
                notes.push(format!("{f} failed transactions"));
            }
            Row {
                scenario: name,
                req_per_s: Some(tps),
                requests: p.transactions.unwrap_or(0),
                window_s: p.duration_s as f64,
                notes,
                ..Default::default()
            }
        }
        None => Row::skipped(
            "pgbench -N",
            &format!(
                "{}: {}",
                p.status,
                p.reason.as_deref().unwrap_or("no figure")
            ),
        ),
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn targets(
    bearer: &Row,
    basic: &Row,
    api_key: &Row,
    cc: &Row,
    password: &Row,
    refresh: &Row,
    storm: &StormReport,
    scale: Option<&ScaleReport>,
    pgbench: Option<&PgbenchReport>,
) -> Vec<Target> {
    let ratio_target = |name: &str, row: &Row, min: f64| match (row.skipped, row.ratio_to_ceiling) {
        (false, Some(x)) => Target::new(
            name,
            format!("{x:.2}× ceiling"),
            Some(x >= min && row.errors == 0),
        ),
        _ => Target::new(name, "not measured".into(), None),
    };
    let rate_target = |name: &str, row: &Row, min: f64| match row.req_per_s {
        Some(r) => Target::new(
            name,
            format!("{} req/s", report::group_thousands(r.round() as u64)),
            Some(r >= min && row.errors == 0),
        ),
        None => Target::new(name, "not measured".into(), None),
    };
    let mut t = vec![
        ratio_target("Bearer _authenticate >= 0.6x ceiling", bearer, 0.6),
        ratio_target("Basic _authenticate >= 0.5x ceiling", basic, 0.5),
        ratio_target("ApiKey _authenticate >= 0.5x ceiling", api_key, 0.5),
        rate_target("token creation (client_credentials) >= 5,000/s", cc, 5000.0),
        rate_target("token creation (password) >= 5,000/s", password, 5000.0),
        rate_target("refresh >= 5,000/s", refresh, 5000.0),
        pgbench_target(refresh, pgbench),
        Target::new(
            "storm of 256 writes once",
            format!(
                "{}/{} rounds identical, rotated once in {}",
                storm.rounds_identical,
                storm.rounds,
                storm
                    .rounds_rotated_once
                    .map(|n| format!("{n}/{}", storm.rounds))
                    .unwrap_or_else(|| "? (no metrics)".into())
            ),
            Some(storm.wrote_once),
        ),
        Target::new(
            "storm p99 <= 50 ms",
            format!("p99 {:.1} ms", storm.latency.p99_ms),
            Some(storm.latency.p99_ms <= 50.0),
        ),
    ];
    match scale {
        Some(s) => t.extend([
            Target::new(
                "Bearer at 1M tokens >= 0.9x at 1k",
                format!(
                    "{:.2}x ({} vs {} req/s)",
                    s.large_to_small,
                    report::group_thousands(s.bearer_large_req_per_s.round() as u64),
                    report::group_thousands(s.bearer_small_req_per_s.round() as u64)
                ),
                Some(s.large_to_small >= 0.9),
            ),
            {
                let worst = s.rss_kb_at_start.max(s.rss_kb_after_load);
                Target::new(
                    "RSS after seeding 1M <= 200 MB",
                    format!(
                        "{} MB at start, {} MB after load",
                        mb(s.rss_kb_at_start),
                        mb(s.rss_kb_after_load)
                    ),
                    worst.map(|kb| kb <= 200 * 1024),
                )
            },
            Target::new(
                "<= 300 bytes on disk per token",
                format!("{:.0} bytes/token", s.bytes_per_token),
                Some(s.bytes_per_token <= 300.0),
            ),
        ]),
        None => t.extend(
            [
                "Bearer at 1M tokens >= 0.9x at 1k",
                "RSS after seeding 1M <= 200 MB",
                "<= 300 bytes on disk per token",
            ]
            .map(|name| Target::new(name, "not measured (run with --scale)".into(), None)),
        ),
    }
    t
}

/// Refresh on PostgreSQL against what pgbench -N sustains on the same server.
pub(crate) fn pgbench_target(refresh: &Row, pgbench: Option<&PgbenchReport>) -> Target {
    const NAME: &str = "refresh on PostgreSQL >= 0.5x pgbench -N";
    match (pgbench, refresh.req_per_s) {
        (Some(p), Some(rate)) if p.tps.is_some_and(|t| t > 0.0) => {
            let tps = p.tps.unwrap_or(1.0);
            let x = rate / tps;
            Target::new(
                NAME,
                format!(
                    "{x:.3}× ({} refreshes/s vs {} tx/s)",
                    report::group_thousands(rate.round() as u64),
                    report::group_thousands(tps.round() as u64)
                ),
                Some(x >= 0.5 && refresh.errors == 0),
            )
        }
        (Some(p), _) => Target::new(
            NAME,
            format!(
                "not measured (pgbench {}: {})",
                p.status,
                p.reason.as_deref().unwrap_or("no figure")
            ),
            None,
        ),
        (None, _) => Target::new(
            NAME,
            "not measured (needs --store postgres://…)".into(),
            None,
        ),
    }
}
