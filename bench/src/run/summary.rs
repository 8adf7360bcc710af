//! The end of a run: the table and the verdicts on the console, the JSON
//! report on disk.

use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use tempfile::TempDir;

use crate::measure::{Memory, Settings, BUSY_SHARE};
use crate::peer::PeerReport;
use crate::pgbench::PgbenchReport;
use crate::report::{self, mb, Machine, Row, Target};

use super::prelude::Prelude;
use super::scale::ScaleReport;
use super::storm::StormReport;

/// The table's rows and the run's notes, as the phases add them.
pub(super) struct Findings {
    pub(super) rows: Vec<Row>,
    pub(super) notes: Vec<String>,
}

/// Everything a run measured.
pub(super) struct Results {
    pub(super) findings: Findings,
    pub(super) ceiling_rate: f64,
    pub(super) authenticate_body_bytes: usize,
    /// VmRSS and VmHWM of the server that ran the scenarios, just before it stopped.
    pub(super) main_memory: Memory,
    pub(super) storm: StormReport,
    /// The storm across nodes (`--store postgres://…` only).
    pub(super) cluster_storm: Option<StormReport>,
    pub(super) scale: Option<ScaleReport>,
    pub(super) pgbench: Option<PgbenchReport>,
    pub(super) peer: Option<PeerReport>,
    pub(super) targets: Vec<Target>,
}

#[derive(Serialize)]
struct Report<'a> {
    tool: &'static str,
    started_at_unix: u64,
    machine: &'a Machine,
    git_commit: Option<String>,
    settings: &'a Settings,
    /// 1-minute load average before and after the run: other work on the
    /// machine competes with the server and the load generator.
    load_average_before: Option<f64>,
    load_average_after: Option<f64>,
    ceiling_req_per_s: f64,
    authenticate_body_bytes: usize,
    /// VmRSS and VmHWM (kB) of the server that ran the scenarios, just before it stopped.
    server_rss_kb_after_scenarios: Option<u64>,
    server_peak_rss_kb_after_scenarios: Option<u64>,
    scenarios: &'a [Row],
    storm: Option<&'a StormReport>,
    /// The same storm spread over several nodes on the store.
    cluster_storm: Option<&'a StormReport>,
    scale: Option<&'a ScaleReport>,
    /// `pgbench -N` on the PostgreSQL server of `--store`.
    pgbench: Option<&'a PgbenchReport>,
    /// The peer of `--peer`.
    peer: Option<&'a PeerReport>,
    targets: &'a [Target],
    notes: &'a [String],
    clean: bool,
}

/// Prints the results, writes the JSON report, keeps or removes `work`.
/// `Ok(false)`: some request failed or a storm did not write once.
pub(super) fn finish(
    prelude: Prelude,
    mut results: Results,
    work: TempDir,
    keep_data: bool,
) -> anyhow::Result<bool> {
    let clean = results.findings.rows.iter().all(|r| r.errors == 0)
        && results.storm.wrote_once
        && results.cluster_storm.as_ref().is_none_or(|s| s.wrote_once);
    let load_after = report::load_average();
    note_busy_scenarios(&mut results.findings);
    print_results(&prelude, &results);

    let Results {
        findings: Findings { rows, notes },
        main_memory,
        ..
    } = &results;
    let report = Report {
        tool: "tessera-bench",
        started_at_unix: prelude.started_at_unix,
        machine: &prelude.machine,
        git_commit: prelude.git_commit.clone(),
        settings: &prelude.settings,
        load_average_before: prelude.load_before,
        load_average_after: load_after,
        ceiling_req_per_s: results.ceiling_rate,
        authenticate_body_bytes: results.authenticate_body_bytes,
        server_rss_kb_after_scenarios: main_memory.map(|m| m.0),
        server_peak_rss_kb_after_scenarios: main_memory.map(|m| m.1),
        scenarios: rows,
        storm: Some(&results.storm),
        cluster_storm: results.cluster_storm.as_ref(),
        scale: results.scale.as_ref(),
        pgbench: results.pgbench.as_ref(),
        peer: results.peer.as_ref(),
        targets: &results.targets,
        notes,
        clean,
    };
    write_json(&prelude.json_path, &report)?;
    println!("\nJSON report: {}", prelude.json_path.display());
    if keep_data {
        println!(
            "Data directories and server logs kept in {}",
            work.keep().display()
        );
    }
    if !clean {
        print_errors(&results);
    }
    Ok(clean)
}

/// Notes how many scenarios ran while other processes kept the machine busy.
fn note_busy_scenarios(findings: &mut Findings) {
    let flagged = findings
        .rows
        .iter()
        .filter(|r| r.others_cpu_share.is_some_and(|s| s > BUSY_SHARE))
        .count();
    if flagged > 0 {
        findings.notes.push(format!(
            "{flagged} scenario(s) ran while other processes used more than {:.0}% of the CPU (see their notes): their figures are depressed",
            BUSY_SHARE * 100.0
        ));
    }
}

/// The table, the yardsticks, the targets and the notes, on stdout.
fn print_results(prelude: &Prelude, results: &Results) {
    let settings = &prelude.settings;
    println!();
    println!(
        "Tessera benchmark, {} mode — {} — commit {}",
        settings.mode,
        prelude.machine.describe(),
        prelude.git_commit.as_deref().unwrap_or("unknown")
    );
    println!(
        "{} s measured after {} s warm-up per scenario, {} keep-alive connections, closed loop; ceiling {} req/s\n",
        settings.duration_s,
        settings.warmup_s,
        settings.connections,
        report::group_thousands(results.ceiling_rate.round() as u64)
    );
    print!("{}", report::render_table(&results.findings.rows));
    println!(
        "\nServer memory after the scenarios above: RSS {} MB (peak {} MB)",
        mb(results.main_memory.map(|m| m.0)),
        mb(results.main_memory.map(|m| m.1))
    );
    if let Some(s) = &results.scale {
        print_scale(s);
    }
    if let Some(p) = &results.pgbench {
        print_pgbench(p);
    }
    if let Some(p) = results.peer.as_ref().filter(|p| !p.comparisons.is_empty()) {
        print_peer(p);
    }
    println!(
        "\nTargets{}:",
        if prelude.smoke {
            " (smoke run: figures are not meaningful)"
        } else {
            ""
        }
    );
    print!("{}", report::render_targets(&results.targets));
    for note in &results.findings.notes {
        println!("Note: {note}");
    }
}

fn print_scale(s: &ScaleReport) {
    println!(
        "\nScale: {} tokens stored; {:.0} bytes on disk per token ({} bytes in the data directory); server RSS {} MB at start, {} MB after load (peak {} MB); seeding ({}) ran at {} tokens/s",
        report::group_thousands(s.tokens_stored),
        s.bytes_per_token,
        report::group_thousands(s.data_dir_bytes),
        mb(s.rss_kb_at_start),
        mb(s.rss_kb_after_load),
        mb(s.peak_rss_kb),
        s.seeding,
        report::group_thousands(s.seed_rate_per_s.round() as u64)
    );
}

fn print_pgbench(p: &PgbenchReport) {
    if let Some(tps) = p.tps {
        let ratios: Vec<String> = p
            .ratios
            .iter()
            .map(|r| format!("{} {:.2}×", r.scenario, r.to_pgbench))
            .collect();
        let runs: Vec<String> = p
            .runs
            .iter()
            .map(|r| {
                format!(
                    "{} {}",
                    report::group_thousands(r.tps.round() as u64),
                    r.when
                )
            })
            .collect();
        println!(
            "\nPostgreSQL yardstick: pgbench -N {} tx/s, the mean of {} ({} clients, -j {}, scale {}, {} s each); against it: {}",
            report::group_thousands(tps.round() as u64),
            runs.join(" and "),
            p.clients,
            p.threads,
            p.scale,
            p.duration_s,
            ratios.join(", ")
        );
    }
}

fn print_peer(p: &PeerReport) {
    println!(
        "\nTessera against oidc-provider {} (node {}, one process):",
        p.package_version.as_deref().unwrap_or("?"),
        p.node_version.as_deref().unwrap_or("?")
    );
    for c in &p.comparisons {
        println!(
            "  {} {} req/s vs {} {} req/s: {:.2}×",
            c.tessera,
            report::group_thousands(c.tessera_req_per_s.round() as u64),
            c.peer,
            report::group_thousands(c.peer_req_per_s.round() as u64),
            c.tessera_to_peer
        );
    }
}

/// The failed rows and the storm's failures, loudly.
fn print_errors(results: &Results) {
    println!("\n!!! THE RUN HAD ERRORS: see the `errors` column and the storm line above.");
    for r in results.findings.rows.iter().filter(|r| r.errors > 0) {
        println!("!!!   {}: {:?}", r.scenario, r.error_kinds);
    }
    for f in &results.storm.failures {
        println!("!!!   storm: {f}");
    }
    for f in results.cluster_storm.iter().flat_map(|s| &s.failures) {
        println!("!!!   storm across nodes: {f}");
    }
}

fn write_json(path: &Path, report: &Report<'_>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}
