//! `tessera-bench run`: the scenarios, in order, and the report.
//!
//! Each phase lives in a module of its own, and what phases share travels
//! in small structs: the settings ([`prelude`]), the server with its user
//! and token pools ([`fixture`]), the ceiling and `_authenticate`
//! ([`authn`]), token creation, refresh and invalidation ([`grants`]), the
//! refresh storm on one node and across nodes ([`storm`]), pgbench and the peer ([`compare`]), the scale
//! measurements ([`scale`]), the targets ([`targets`]) and the console and
//! JSON report ([`summary`]); `--soak` runs [`soak`] alone. This module only puts them in order; none of
//! them imports it.

mod authn;
mod compare;
mod fixture;
mod grants;
mod prelude;
mod scale;
mod soak;
mod storm;
mod summary;
mod targets;

use std::path::Path;

use crate::args::RunArgs;
use crate::measure::{check_store, Memory};
use crate::pgbench::is_postgres;

use authn::{authentication, Authentication};
use fixture::{BearerPool, Tessera};
use grants::{Grants, Scenarios};
use prelude::Prelude;
use scale::ScaleReport;
use storm::StormReport;
use summary::{Findings, Results};

/// Runs the benchmark. `Ok(false)`: it ran, but some request failed or the
/// storm returned differing pairs.
pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let prelude = Prelude::start(&args).await?;
    let mut findings = Findings {
        rows: Vec::new(),
        notes: prelude::ignored_options(&args),
    };
    let work = tempfile::Builder::new()
        .prefix("tessera-bench-")
        .tempdir()?;
    if let Some(store) = &args.store {
        if let Err(why) = check_store(&prelude.bin, work.path(), store) {
            eprintln!("==> NOTE: the tessera binary rejects the store URL, so it cannot be benchmarked; skipped.\n    {why}");
            return Ok(true);
        }
    }
    if let Some(secs) = args.soak {
        let settings = soak::SoakSettings {
            secs,
            ttl_s: args.soak_ttl.max(1),
            cleanup_interval_s: args.soak_cleanup_interval.max(1),
            every_s: args.soak_every.max(1),
        };
        let good = soak::soak(&prelude, work.path(), args.store.as_deref(), &settings).await?;
        if args.keep_data {
            eprintln!("==> kept {}", work.keep().display());
        }
        return Ok(good);
    }

    let Measured {
        authenticate_body_bytes,
        authn,
        mut grants,
        storm,
        cluster_storm,
        main_memory,
    } = tessera_scenarios(
        &prelude,
        work.path(),
        args.store.as_deref(),
        args.audit_log,
        &mut findings,
    )
    .await?;

    let pgbench = compare::pgbench(grants.pgbench.take(), &grants, &mut findings);
    // Tessera stopped: the peer and the scale measurements, each with a
    // server of its own.
    let peer = compare::peer(
        args.peer.as_deref(),
        &prelude,
        work.path(),
        &authn,
        &grants,
        &mut findings,
    )
    .await;
    let scale = scale_rows(
        &prelude,
        work.path(),
        authn.ceiling_rate,
        args.seed_via_store,
        &mut findings,
    )
    .await?;

    let targets = targets::targets(
        &authn,
        &grants,
        &storm,
        cluster_storm.as_ref(),
        scale.as_ref(),
        pgbench.as_ref(),
    );
    let results = Results {
        findings,
        ceiling_rate: authn.ceiling_rate,
        authenticate_body_bytes,
        main_memory,
        storm,
        cluster_storm,
        scale,
        pgbench,
        peer,
        targets,
    };
    summary::finish(prelude, results, work, args.keep_data)
}

/// What the scenarios against the main server measured.
struct Measured {
    authenticate_body_bytes: usize,
    authn: Authentication,
    grants: Grants,
    storm: StormReport,
    /// The storm across nodes (`--store postgres://…` only).
    cluster_storm: Option<StormReport>,
    /// VmRSS and VmHWM of the server, just before it stopped.
    main_memory: Memory,
}

/// Tessera on a fresh data directory in `work` (or on `store`): every
/// scenario against it, in order, with their rows; the server stopped after.
async fn tessera_scenarios(
    prelude: &Prelude,
    work: &Path,
    store: Option<&str>,
    audit_log: bool,
    findings: &mut Findings,
) -> anyhow::Result<Measured> {
    let flags = fixture::serve_flags(audit_log, work);
    if audit_log {
        findings.notes.push(format!(
            "the server's audit log is on ({})",
            work.join("audit.json").display()
        ));
    }
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut tessera = Tessera::start(&prelude.bin, work, store, &flags).await?;
    let pool = BearerPool::mint(&mut tessera, prelude.settings.connections).await?;
    let authn = authentication(&mut tessera, &pool, work, prelude.load).await?;
    findings.rows.extend(authn.rows());
    let scenarios = Scenarios {
        tessera: &tessera,
        settings: &prelude.settings,
        load: prelude.load,
        ceiling_rate: authn.ceiling_rate,
        store,
        work,
    };
    let grants = scenarios.grants().await?;
    findings.rows.extend(grants.rows());
    let storm = storm::run_storm(&tessera, prelude.settings.storm_rounds).await?;
    findings.rows.push(storm.row());
    // On PostgreSQL, the same storm spread over more nodes on the store.
    let cluster_storm = match store.filter(|url| is_postgres(url)) {
        Some(url) => {
            let nodes = storm::Nodes {
                bin: &prelude.bin,
                work,
                store: url,
                audit_log,
            };
            let report =
                storm::run_cluster_storm(&tessera, &nodes, prelude.settings.storm_rounds).await?;
            findings.rows.push(report.row());
            Some(report)
        }
        None => None,
    };
    findings
        .rows
        .push(scenarios.invalidate(&grants.client_credentials).await?);
    let main_memory = tessera.stop();

    Ok(Measured {
        authenticate_body_bytes: pool.authenticate_body_bytes,
        authn,
        grants,
        storm,
        cluster_storm,
        main_memory,
    })
}

/// The scale measurements, if the settings ask for them, with their rows.
async fn scale_rows(
    prelude: &Prelude,
    work: &Path,
    ceiling_rate: f64,
    via_store: bool,
    findings: &mut Findings,
) -> anyhow::Result<Option<ScaleReport>> {
    let Some(size) = prelude.settings.scale else {
        return Ok(None);
    };
    let (small, large, report) = scale::scale(
        &prelude.bin,
        work,
        prelude.load,
        ceiling_rate,
        size,
        via_store,
    )
    .await?;
    findings.rows.extend([small, large]);
    Ok(Some(report))
}
