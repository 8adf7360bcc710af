//! Yardsticks beyond the ceiling: `pgbench -N` on the PostgreSQL server of
//! `--store` (measured around the refresh row, `grants.rs`), and the peer
//! of `--peer` under the same load, run after Tessera stopped.

use std::path::Path;

use crate::peer::{self, PeerReport};
use crate::pgbench::{self, PgbenchReport};
use crate::report::Row;

use super::authn::Authentication;
use super::grants::Grants;
use super::prelude::Prelude;
use super::summary::Findings;

/// The write scenarios' rates against `pgbench -N`, if it ran (a
/// PostgreSQL store).
pub(super) fn pgbench(
    report: Option<PgbenchReport>,
    grants: &Grants,
    findings: &mut Findings,
) -> Option<PgbenchReport> {
    let mut report = report?;
    if let Some(tps) = report.tps.filter(|&t| t > 0.0) {
        for r in [
            &grants.client_credentials,
            &grants.password,
            &grants.refresh,
        ] {
            if let Some(rate) = r.req_per_s {
                report.ratios.push(pgbench::PgbenchRatio {
                    scenario: r.scenario.clone(),
                    req_per_s: rate,
                    to_pgbench: rate / tps,
                });
            }
        }
    }
    findings.rows.push(pgbench_row(&report));
    if let Some(why) = &report.reason {
        findings
            .notes
            .push(format!("pgbench -N {}: {why}", report.status));
    }
    Some(report)
}

/// The peer `name`, if any, with its rows next to Tessera's.
pub(super) async fn peer(
    name: Option<&str>,
    prelude: &Prelude,
    work: &Path,
    authn: &Authentication,
    grants: &Grants,
    findings: &mut Findings,
) -> Option<PeerReport> {
    let name = name?;
    let (peer_rows, mut report) = peer::measure(
        name,
        work,
        &prelude.settings,
        prelude.load,
        authn.ceiling_rate,
    )
    .await;
    let find = |name: &str| peer_rows.iter().find(|r| r.scenario == name);
    if let (Some(cc), Some(introspection), Some(refresh)) = (
        find(peer::CC_ROW),
        find(peer::INTROSPECTION_ROW),
        find(peer::REFRESH_ROW),
    ) {
        report.compare(&[
            (&grants.client_credentials, cc),
            (&authn.bearer, introspection),
            (&grants.refresh, refresh),
        ]);
    }
    if let Some(why) = &report.reason {
        findings
            .notes
            .push(format!("peer {name} {}: {why}", report.status));
    }
    findings.rows.extend(peer_rows);
    Some(report)
}

/// The table's line for pgbench: transactions per second, not HTTP requests.
fn pgbench_row(p: &PgbenchReport) -> Row {
    let name = format!("pgbench -N, {} clients (tx/s, not HTTP)", p.clients);
    match p.tps {
        Some(tps) => {
            let mut notes = vec![format!("-j {}, scale {}", p.threads, p.scale)];
            if p.runs.len() > 1 {
                let runs: Vec<String> = p
                    .runs
                    .iter()
                    .map(|r| format!("{:.0} {}", r.tps, r.when))
                    .collect();
                notes.push(format!("mean of {}", runs.join(", ")));
            }
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
                window_s: (p.duration_s as usize * p.runs.len().max(1)) as f64,
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
