//! The performance targets and the verdict on each.

use crate::pgbench::PgbenchReport;
use crate::process;
use crate::profile;
use crate::report::{self, mb, Row, Target};

use super::authn::Authentication;
use super::grants::Grants;
use super::scale::ScaleReport;
use super::storm::{StormReport, CLUSTER_NODES, STORM_WIDTH};

/// Each target, met or missed, from what the run measured.
pub(super) fn targets(
    authn: &Authentication,
    grants: &Grants,
    storm: &StormReport,
    cluster_storm: Option<&StormReport>,
    scale: Option<&ScaleReport>,
    pgbench: Option<&PgbenchReport>,
) -> Vec<Target> {
    let (cc, password, refresh) = (
        &grants.client_credentials,
        &grants.password,
        &grants.refresh,
    );
    let mut t = vec![
        ratio_target("Bearer _authenticate >= 0.6x ceiling", &authn.bearer, 0.6),
        ratio_target("Basic _authenticate >= 0.5x ceiling", &authn.basic, 0.5),
        ratio_target("ApiKey _authenticate >= 0.5x ceiling", &authn.api_key, 0.5),
        rate_target("token creation (client_credentials) >= 5,000/s", cc, 5000.0),
        rate_target("token creation (password) >= 5,000/s", password, 5000.0),
        rate_target("refresh >= 5,000/s", refresh, 5000.0),
        pgbench_target(refresh, pgbench),
    ];
    if pgbench.is_none() {
        // The embedded store's write path (a PostgreSQL node's is measured
        // against pgbench instead).
        t.extend([
            with_cpu_split(
                ratio_target(
                    "embedded creation (client_credentials) >= 0.5x ceiling",
                    cc,
                    0.5,
                ),
                cc,
            ),
            with_cpu_split(
                ratio_target("embedded refresh >= 0.3x ceiling", refresh, 0.3),
                refresh,
            ),
            p99_target("embedded sustained refresh p99 <= 10 ms", refresh, 10.0),
        ]);
    }
    t.extend(storm_targets(storm));
    t.extend(match cluster_storm {
        Some(storm) => storm_targets(storm),
        None => [
            format!("storm of {STORM_WIDTH} across {CLUSTER_NODES} nodes writes once"),
            format!("storm across {CLUSTER_NODES} nodes p99 <= 30 ms"),
        ]
        .map(|name| {
            Target::new(
                &name,
                "not measured (needs --store postgres://…)".into(),
                None,
            )
        }),
    });
    t.extend(scale_targets(scale));
    t
}

/// At least `min` times the ceiling, without errors.
fn ratio_target(name: &str, row: &Row, min: f64) -> Target {
    match (row.skipped, row.ratio_to_ceiling) {
        (false, Some(x)) => Target::new(
            name,
            format!("{x:.2}× ceiling"),
            Some(x >= min && row.errors == 0),
        ),
        _ => Target::new(name, "not measured".into(), None),
    }
}

/// Adds where the row's server CPU went, by thread, to a measured target's
/// figure: what a write row's ratio is made of.
fn with_cpu_split(mut target: Target, row: &Row) -> Target {
    if let (Some(_), Some(total), false) = (
        target.met,
        row.server_cpu_us_per_req,
        row.server_cpu_by_thread.is_empty(),
    ) {
        target.figure = format!(
            "{}; server CPU {total:.0} µs/req: {}",
            target.figure,
            process::cpu_split_line(&row.server_cpu_by_thread)
        );
        if let Some(p) = &row.server_profile {
            target.figure = format!(
                "{}; by area (perf): {}",
                target.figure,
                profile::areas_line(p, total, 1.0)
            );
        }
    }
    target
}

/// A p99 latency of at most `max_ms`, without errors.
fn p99_target(name: &str, row: &Row, max_ms: f64) -> Target {
    match (row.skipped, row.latency) {
        (false, Some(l)) => Target::new(
            name,
            format!("p99 {:.1} ms", l.p99_ms),
            Some(l.p99_ms <= max_ms && row.errors == 0),
        ),
        _ => Target::new(name, "not measured".into(), None),
    }
}

/// At least `min` requests per second, without errors.
fn rate_target(name: &str, row: &Row, min: f64) -> Target {
    match row.req_per_s {
        Some(r) => Target::new(
            name,
            format!("{} req/s", report::group_thousands(r.round() as u64)),
            Some(r >= min && row.errors == 0),
        ),
        None => Target::new(name, "not measured".into(), None),
    }
}

/// The storm wrote once in every round (across its nodes), and its p99.
fn storm_targets(storm: &StormReport) -> [Target; 2] {
    let across = if storm.nodes > 1 {
        format!(" across {} nodes", storm.nodes)
    } else {
        String::new()
    };
    [
        Target::new(
            &format!("storm of {}{across} writes once", storm.width),
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
            &format!("storm{across} p99 <= 30 ms"),
            format!("p99 {:.1} ms", storm.latency.p99_ms),
            Some(storm.latency.p99_ms <= 30.0),
        ),
    ]
}

/// Throughput, memory and disk at scale (`--scale`): at 1,000,000 stored
/// tokens RSS ≤ 200 MB and ≤ 300 bytes per token; from 10,000,000 on
/// RSS ≤ 300 MB and ≤ 250 bytes per token.
fn scale_targets(scale: Option<&ScaleReport>) -> [Target; 3] {
    match scale {
        Some(s) => {
            let size = short_count(s.seeded_large);
            let (rss_mb, bytes) = if s.seeded_large >= 10_000_000 {
                (300, 250.0)
            } else {
                (200, 300.0)
            };
            [
                Target::new(
                    &format!("Bearer at {size} tokens >= 0.9x at 1k"),
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
                        &format!("RSS after seeding {size} <= {rss_mb} MB"),
                        format!(
                            "{} MB at start, {} MB after load",
                            mb(s.rss_kb_at_start),
                            mb(s.rss_kb_after_load)
                        ),
                        worst.map(|kb| kb <= rss_mb * 1024),
                    )
                },
                Target::new(
                    &format!("<= {bytes:.0} bytes on disk per token"),
                    format!("{:.0} bytes/token", s.bytes_per_token),
                    Some(s.bytes_per_token <= bytes),
                ),
            ]
        }
        None => [
            "Bearer at 1M tokens >= 0.9x at 1k",
            "RSS after seeding 1M <= 200 MB",
            "<= 300 bytes on disk per token",
        ]
        .map(|name| Target::new(name, "not measured (run with --scale)".into(), None)),
    }
}

/// Refresh on PostgreSQL against what pgbench -N sustains on the same server.
fn pgbench_target(refresh: &Row, pgbench: Option<&PgbenchReport>) -> Target {
    const NAME: &str = "refresh on PostgreSQL >= 0.8x pgbench -N";
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
                Some(x >= 0.8 && refresh.errors == 0),
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

/// `1M`, `10M`, `500k`: a count of tokens as the options spell it.
fn short_count(n: u64) -> String {
    if n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        report::group_thousands(n)
    }
}

#[cfg(test)]
mod tests {
    use crate::report::Latency;

    use super::super::storm::StormReport;

    fn storm(nodes: usize, p99_ms: f64, wrote_once: bool) -> StormReport {
        StormReport {
            width: 256,
            nodes,
            rounds: 10,
            rounds_identical: 10,
            rounds_access_authenticates: 10,
            rounds_rotated_once: Some(if wrote_once { 10 } else { 9 }),
            wrote_once,
            latency: Latency {
                p99_ms,
                ..Default::default()
            },
            warm_up_slowest_ms: 0.0,
            slowest_per_round_ms: Vec::new(),
            failures: Vec::new(),
        }
    }

    #[test]
    fn a_storm_across_nodes_has_targets_of_its_own() {
        let [once, p99] = super::storm_targets(&storm(3, 31.0, true));
        assert_eq!(once.target, "storm of 256 across 3 nodes writes once");
        assert_eq!(once.met, Some(true));
        assert_eq!(once.figure, "10/10 rounds identical, rotated once in 10/10");
        assert_eq!(p99.target, "storm across 3 nodes p99 <= 30 ms");
        assert_eq!(p99.met, Some(false));

        let [once, p99] = super::storm_targets(&storm(1, 12.0, false));
        assert_eq!(once.target, "storm of 256 writes once");
        assert_eq!(once.met, Some(false));
        assert_eq!(p99.target, "storm p99 <= 30 ms");
        assert_eq!(p99.met, Some(true));
    }

    #[test]
    fn a_storm_row_names_its_nodes() {
        assert_eq!(
            storm(3, 1.0, true).row().scenario,
            "refresh storm, 256 × 1 token, 3 nodes"
        );
        assert_eq!(
            storm(1, 1.0, true).row().scenario,
            "refresh storm, 256 × 1 token"
        );
    }

    #[test]
    fn a_write_ratio_says_where_the_cpu_went() {
        let row = super::Row {
            scenario: "refresh".into(),
            req_per_s: Some(26_000.0),
            ratio_to_ceiling: Some(0.15),
            server_cpu_us_per_req: Some(44.2),
            server_cpu_by_thread: [
                ("sqlite-writer", 20.04),
                ("tokio-rt-worker", 16.5),
                ("idle", 0.01),
            ]
            .into_iter()
            .map(|(n, us)| (n.to_owned(), us))
            .collect(),
            ..Default::default()
        };
        let t = super::with_cpu_split(super::ratio_target("refresh >= 0.3x", &row, 0.3), &row);
        assert_eq!(t.met, Some(false));
        assert_eq!(
            t.figure,
            "0.15× ceiling; server CPU 44 µs/req: sqlite-writer 20.0, tokio-rt-worker 16.5"
        );
        let profiled = super::Row {
            server_profile: Some(crate::profile::parse_report(
                "50.00% | 500 |sqlite-writer|tessera|[.] sqlite3VdbeExec\n\
                 50.00% | 500 |tokio-rt-worker|[kernel.kallsyms]|[k] tcp_sendmsg\n",
            )),
            ..row
        };
        let t = super::with_cpu_split(
            super::ratio_target("refresh >= 0.3x", &profiled, 0.3),
            &profiled,
        );
        assert_eq!(
            t.figure,
            "0.15× ceiling; server CPU 44 µs/req: sqlite-writer 20.0, tokio-rt-worker 16.5; \
             by area (perf): sqlite-writer: C (SQLite) 22.1; tokio-rt-worker: kernel 22.1"
        );
        let skipped = super::Row::skipped("refresh", "skipped");
        let t = super::with_cpu_split(
            super::ratio_target("refresh >= 0.3x", &skipped, 0.3),
            &skipped,
        );
        assert_eq!(t.figure, "not measured");
    }
}
