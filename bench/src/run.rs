//! `tessera-bench run`: the scenarios, in order, and the report.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::Method;
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};

use crate::args::RunArgs;
use crate::client::{self, basic, bearer, new_histogram, Conn, LoadResult, LoadSettings, Req};
use crate::peer::{self, PeerReport};
use crate::pgbench::{self, PgbenchReport};
use crate::process::{self, ChildServer, CpuSnapshot, BOOTSTRAP_PASSWORD};
use crate::report::{self, Latency, Machine, Row, Target};
use crate::seed;

mod scale;
mod storm;
mod targets;

pub(crate) use crate::measure::*;
use scale::*;
use storm::*;
use targets::*;

const BENCH_USER: &str = "bench_user";
const BENCH_PASSWORD: &str = "bench-user-password";
const TOKEN_PATH: &str = "/_security/oauth2/token";
const AUTHENTICATE_PATH: &str = "/_security/_authenticate";
const METRICS_PATH: &str = "/_tessera/metrics";
/// Concurrent refreshes of one refresh token in the storm.
const STORM_WIDTH: usize = 256;
/// Access tokens the Bearer scenario cycles through.
const BEARER_POOL: usize = 1_000;

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
    scale: Option<&'a ScaleReport>,
    /// `pgbench -N` on the PostgreSQL server of `--store`.
    pgbench: Option<&'a PgbenchReport>,
    /// The peer of `--peer`.
    peer: Option<&'a PeerReport>,
    targets: &'a [Target],
    notes: &'a [String],
    clean: bool,
}

fn secs(v: f64) -> Duration {
    Duration::from_secs_f64(v.max(0.0))
}

/// Runs the benchmark. `Ok(false)`: it ran, but some request failed or the
/// storm returned differing pairs.
pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let started_at_unix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let smoke = args.smoke;
    let settings = Settings {
        mode: if smoke { "smoke" } else { "full" },
        duration_s: args.duration.unwrap_or(if smoke { 1.0 } else { 10.0 }),
        warmup_s: args.warmup.unwrap_or(if smoke { 0.5 } else { 3.0 }),
        connections: args
            .connections
            .unwrap_or(if smoke { 8 } else { 64 })
            .max(1),
        client_threads: args.client_threads.max(1),
        storm_width: STORM_WIDTH,
        storm_rounds: args
            .storm_rounds
            .unwrap_or(if smoke { 3 } else { 20 })
            .max(1),
        scale: args.scale && !smoke && args.store.is_none(),
        store: args
            .store
            .clone()
            .unwrap_or_else(|| "embedded SQLite (fresh temporary data directory)".into()),
    };
    let load = LoadSettings {
        connections: settings.connections,
        warmup: secs(settings.warmup_s),
        duration: secs(settings.duration_s),
    };
    let json_path = args.json.clone().unwrap_or_else(|| {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("results")
            .join("latest.json")
    });
    let mut notes: Vec<String> = Vec::new();

    let bin = process::tessera_binary(!args.no_build)?;
    let machine = Machine::detect();
    let load_before = report::load_average();
    let git_commit = report::git_commit();
    eprintln!(
        "==> tessera-bench ({} mode): {} s warm-up + {} s per scenario, {} connections, {} client threads",
        settings.mode, settings.warmup_s, settings.duration_s, settings.connections, settings.client_threads
    );
    eprintln!("    machine: {}", machine.describe());
    eprintln!("    server:  {}", bin.display());
    let idle_check = CpuSnapshot::take(&[]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    if let Some(share) = idle_check
        .zip(CpuSnapshot::take(&[]))
        .and_then(|(b, a)| a.others_share_since(&b))
        .filter(|&s| s > BUSY_SHARE)
    {
        eprintln!(
            "!!! the machine is busy (other processes use {:.0}% of its CPU): figures will be depressed and noisy",
            share * 100.0
        );
    }

    if args.scale && smoke {
        notes.push("--scale is ignored in smoke mode".into());
    }
    if args.scale && args.store.is_some() {
        notes.push("--scale measures the embedded store only; skipped with --store".into());
    }

    let work = tempfile::Builder::new()
        .prefix("tessera-bench-")
        .tempdir()?;
    if let Some(store) = &args.store {
        if let Err(why) = check_store(&bin, work.path(), store) {
            eprintln!("==> NOTE: the tessera binary rejects the store URL, so it cannot be benchmarked; skipped.\n    {why}");
            return Ok(true);
        }
    }

    // --- Tessera on a fresh data directory ---------------------------------
    let data_dir = work.path().join("data");
    std::fs::create_dir_all(&data_dir)?;
    let mut server = ChildServer::tessera(
        &bin,
        &data_dir,
        args.store.as_deref(),
        work.path().join("tessera.log"),
    )?;
    server
        .wait_ready(READY_PATH, Duration::from_secs(60))
        .await?;
    let addr = server.addr;
    eprintln!("==> tessera is ready on {addr} (pid {})", server.pid());

    let elastic = basic("elastic", BOOTSTRAP_PASSWORD);
    let bench = basic(BENCH_USER, BENCH_PASSWORD);
    let mut control = Conn::open(addr).await?;
    let (status, body) = control
        .send(&Req::json(
            Method::PUT,
            "/_security/user/bench_user",
            Some(elastic.clone()),
            &json!({ "password": BENCH_PASSWORD, "roles": ["superuser"], "full_name": "Bench User" }),
        ))
        .await?;
    if !status.is_success() {
        bail!(
            "creating {BENCH_USER} as `elastic` failed: HTTP {status}: {} (with --store, the store must be fresh or have elastic's password set to {BOOTSTRAP_PASSWORD})",
            String::from_utf8_lossy(&body)
        );
    }

    let client_credentials = Req::json(
        Method::POST,
        TOKEN_PATH,
        Some(bench.clone()),
        &json!({ "grant_type": "client_credentials" }),
    );
    let password_grant = Req::json(
        Method::POST,
        TOKEN_PATH,
        Some(bench.clone()),
        &json!({ "grant_type": "password", "username": BENCH_USER, "password": BENCH_PASSWORD }),
    );

    eprintln!("==> minting {BEARER_POOL} access tokens for the Bearer scenario");
    let bearer_pool = mint(
        addr,
        settings.connections,
        BEARER_POOL,
        &client_credentials,
        "access_token",
    )
    .await?;
    let bearer_headers: Arc<Vec<HeaderValue>> =
        Arc::new(bearer_pool.iter().map(|t| bearer(t)).collect());
    let (status, auth_body) = control
        .send(&Req::get(
            AUTHENTICATE_PATH,
            Some(bearer_headers[0].clone()),
        ))
        .await?;
    if !status.is_success() {
        bail!(
            "Bearer _authenticate failed: HTTP {status}: {}",
            String::from_utf8_lossy(&auth_body)
        );
    }
    let authenticate_body_bytes = auth_body.len();

    // --- The ceiling, before and after the authentication scenarios -----------
    // On a shared machine the ceiling itself moves by ±20% within minutes, so
    // it is measured right before and right after the scenarios it is the
    // yardstick for, and their ratios use the mean.
    let ceiling_name = format!("ceiling (bare axum, {authenticate_body_bytes}-byte JSON)");
    let ceiling_req = Req::get(AUTHENTICATE_PATH, Some(bearer_headers[0].clone()));
    let mut rows = Vec::new();
    let ceiling_before = measure_ceiling(
        authenticate_body_bytes,
        &work.path().join("ceiling.log"),
        &format!("{ceiling_name}, before"),
        &ceiling_req,
        load,
    )
    .await?;

    // --- Authentication --------------------------------------------------------
    let r = {
        let headers = Arc::clone(&bearer_headers);
        measure(
            "_authenticate, Bearer",
            &server,
            load,
            Arc::new(move |rng| {
                let h = &headers[rng.gen_range(0..headers.len())];
                Some(Req::get(AUTHENTICATE_PATH, Some(h.clone())))
            }),
        )
        .await?
    };
    let mut bearer_row = row("_authenticate, Bearer", &r, None);

    let r = {
        let req = Req::get(AUTHENTICATE_PATH, Some(bench.clone()));
        measure(
            "_authenticate, Basic",
            &server,
            load,
            Arc::new(move |_| Some(req.clone())),
        )
        .await?
    };
    let mut basic_row = row("_authenticate, Basic", &r, None);

    let mut api_key_row = match create_api_key(&mut control, &bench).await? {
        ApiKey::Unavailable => {
            eprintln!("==> _authenticate, ApiKey: skipped: API keys not available");
            Row::skipped("_authenticate, ApiKey", "skipped: API keys not available")
        }
        ApiKey::Failed(why) => {
            eprintln!("!!! _authenticate, ApiKey: creating an API key failed: {why}");
            Row {
                errors: 1,
                ..Row::skipped(
                    "_authenticate, ApiKey",
                    &format!("ERROR: creating an API key failed: {why}"),
                )
            }
        }
        ApiKey::Header(h) => {
            let req = Req::get(AUTHENTICATE_PATH, Some(h));
            let r = measure(
                "_authenticate, ApiKey",
                &server,
                load,
                Arc::new(move |_| Some(req.clone())),
            )
            .await?;
            row("_authenticate, ApiKey", &r, None)
        }
    };

    let ceiling_after = measure_ceiling(
        authenticate_body_bytes,
        &work.path().join("ceiling-after.log"),
        &format!("{ceiling_name}, after"),
        &ceiling_req,
        load,
    )
    .await?;
    let (before_rate, after_rate) = (ceiling_before.throughput(), ceiling_after.throughput());
    let ceiling_rate = (before_rate + after_rate) / 2.0;
    let ratio = |r: &LoadResult| (ceiling_rate > 0.0).then(|| r.throughput() / ceiling_rate);
    let mut ceiling_row = row(
        &format!("ceiling: bare axum, {authenticate_body_bytes} B JSON"),
        &ceiling_before,
        None,
    );
    ceiling_row.req_per_s = Some(ceiling_rate);
    ceiling_row.notes.push(format!(
        "mean of {} before and {} after the _authenticate rows; latency from the first",
        report::group_thousands(before_rate.round() as u64),
        report::group_thousands(after_rate.round() as u64)
    ));
    for auth_row in [&mut bearer_row, &mut basic_row, &mut api_key_row] {
        auth_row.ratio_to_ceiling = auth_row
            .req_per_s
            .filter(|_| ceiling_rate > 0.0)
            .map(|rate| rate / ceiling_rate);
    }
    rows.extend([
        ceiling_row,
        bearer_row.clone(),
        basic_row.clone(),
        api_key_row.clone(),
    ]);

    // --- Token creation ----------------------------------------------------------
    let r = {
        let req = client_credentials.clone();
        measure(
            "create token, client_credentials",
            &server,
            load,
            Arc::new(move |_| Some(req.clone())),
        )
        .await?
    };
    let cc_row = row("create token, client_credentials", &r, ratio(&r));
    rows.push(cc_row.clone());

    let r = {
        let req = password_grant.clone();
        measure(
            "create token, password",
            &server,
            load,
            Arc::new(move |_| Some(req.clone())),
        )
        .await?
    };
    let password_row = row("create token, password", &r, ratio(&r));
    rows.push(password_row.clone());

    // --- Refresh with distinct refresh tokens --------------------------------
    let refresh_row = {
        let n = pool_size(password_row.req_per_s, 1.5, &settings);
        eprintln!("==> pre-minting {n} refresh tokens (password grant) for the refresh scenario");
        let pool = mint(
            addr,
            settings.connections,
            n,
            &password_grant,
            "refresh_token",
        )
        .await?;
        let reqs = prebuilt(
            &pool,
            &bench,
            Method::POST,
            TOKEN_PATH,
            |t| json!({ "grant_type": "refresh_token", "refresh_token": t }),
        );
        let r = measure(
            "refresh, distinct refresh tokens",
            &server,
            load,
            take_each_once(reqs),
        )
        .await?;
        let mut row = row("refresh, distinct tokens", &r, ratio(&r));
        row.notes
            .push(format!("pool of {}", report::group_thousands(n as u64)));
        row
    };
    rows.push(refresh_row.clone());

    // --- The storm -------------------------------------------------------------------
    eprintln!(
        "==> refresh storm: {STORM_WIDTH} concurrent refreshes of one refresh token, {} rounds",
        settings.storm_rounds
    );
    let storm = storm(addr, settings.storm_rounds, &bench, &password_grant).await?;
    let storm_row = Row {
        scenario: format!("refresh storm, {STORM_WIDTH} × 1 token"),
        req_per_s: None,
        latency: Some(storm.latency),
        requests: (STORM_WIDTH * settings.storm_rounds) as u64,
        errors: storm.failures.len() as u64,
        notes: vec![
            format!(
                "{}/{} rounds byte-identical",
                storm.rounds_identical, storm.rounds
            ),
            format!(
                "wrote once: {}",
                if storm.wrote_once { "yes" } else { "NO" }
            ),
        ],
        ..Default::default()
    };
    rows.push(storm_row);

    // --- Invalidation ---------------------------------------------------------------
    let r = {
        // Invalidation writes less than creation: it runs faster.
        let n = pool_size(cc_row.req_per_s, 3.0, &settings);
        eprintln!(
            "==> pre-minting {n} access tokens (client_credentials) for the invalidate scenario"
        );
        let pool = mint(
            addr,
            settings.connections,
            n,
            &client_credentials,
            "access_token",
        )
        .await?;
        let reqs = prebuilt(
            &pool,
            &bench,
            Method::DELETE,
            TOKEN_PATH,
            |t| json!({ "token": t }),
        );
        let r = measure(
            "invalidate access token",
            &server,
            load,
            take_each_once(reqs),
        )
        .await?;
        let mut row = row("invalidate, by access token", &r, ratio(&r));
        row.notes
            .push(format!("pool of {}", report::group_thousands(n as u64)));
        row
    };
    rows.push(r);
    drop(control);
    let main_memory = process::memory_kb(server.pid());
    server.stop();

    // --- pgbench -N on the same PostgreSQL server (Tessera stopped) ------------
    let pgbench = match args
        .store
        .as_deref()
        .filter(|url| pgbench::is_postgres(url))
    {
        Some(url) => {
            let mut report = pgbench::measure(url, &settings, work.path()).await;
            if let Some(tps) = report.tps.filter(|&t| t > 0.0) {
                for r in [&cc_row, &password_row, &refresh_row] {
                    if let Some(rate) = r.req_per_s {
                        report.ratios.push(pgbench::PgbenchRatio {
                            scenario: r.scenario.clone(),
                            req_per_s: rate,
                            to_pgbench: rate / tps,
                        });
                    }
                }
            }
            rows.push(pgbench_row(&report));
            if let Some(why) = &report.reason {
                notes.push(format!("pgbench -N {}: {why}", report.status));
            }
            Some(report)
        }
        None => None,
    };

    // --- A peer implementation, with the same load --------------------------------
    let peer = match args.peer.as_deref() {
        Some(name) => {
            let (peer_rows, mut report) =
                peer::measure(name, work.path(), &settings, load, ceiling_rate).await;
            let find = |name: &str| peer_rows.iter().find(|r| r.scenario == name);
            if let (Some(cc), Some(introspection), Some(refresh)) = (
                find(peer::CC_ROW),
                find(peer::INTROSPECTION_ROW),
                find(peer::REFRESH_ROW),
            ) {
                report.compare(&[
                    (&cc_row, cc),
                    (&bearer_row, introspection),
                    (&refresh_row, refresh),
                ]);
            }
            if let Some(why) = &report.reason {
                notes.push(format!("peer {name} {}: {why}", report.status));
            }
            rows.extend(peer_rows);
            Some(report)
        }
        None => None,
    };

    // --- Scale ----------------------------------------------------------------------------
    let scale = if settings.scale {
        let (small, large, report) =
            scale(&bin, work.path(), load, ceiling_rate, args.seed_via_store).await?;
        rows.push(small);
        rows.push(large);
        Some(report)
    } else {
        None
    };

    // --- Report -----------------------------------------------------------------------------
    let targets = targets(
        &bearer_row,
        &basic_row,
        &api_key_row,
        &cc_row,
        &password_row,
        &refresh_row,
        &storm,
        scale.as_ref(),
        pgbench.as_ref(),
    );
    let clean = rows.iter().all(|r| r.errors == 0) && storm.wrote_once;
    let load_after = report::load_average();
    let flagged = rows
        .iter()
        .filter(|r| r.others_cpu_share.is_some_and(|s| s > BUSY_SHARE))
        .count();
    if flagged > 0 {
        notes.push(format!(
            "{flagged} scenario(s) ran while other processes used more than {:.0}% of the CPU (see their notes): their figures are depressed",
            BUSY_SHARE * 100.0
        ));
    }
    println!();
    println!(
        "Tessera benchmark, {} mode — {} — commit {}",
        settings.mode,
        machine.describe(),
        git_commit.as_deref().unwrap_or("unknown")
    );
    println!(
        "{} s measured after {} s warm-up per scenario, {} keep-alive connections, closed loop; ceiling {} req/s\n",
        settings.duration_s,
        settings.warmup_s,
        settings.connections,
        report::group_thousands(ceiling_rate.round() as u64)
    );
    print!("{}", report::render_table(&rows));
    println!(
        "\nServer memory after the scenarios above: RSS {} MB (peak {} MB)",
        mb(main_memory.map(|m| m.0)),
        mb(main_memory.map(|m| m.1))
    );
    if let Some(s) = &scale {
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
    if let Some(p) = &pgbench {
        if let Some(tps) = p.tps {
            let ratios: Vec<String> = p
                .ratios
                .iter()
                .map(|r| format!("{} {:.2}×", r.scenario, r.to_pgbench))
                .collect();
            println!(
                "\nPostgreSQL yardstick: pgbench -N {} tx/s ({} clients, -j {}, scale {}, {} s); against it: {}",
                report::group_thousands(tps.round() as u64),
                p.clients,
                p.threads,
                p.scale,
                p.duration_s,
                ratios.join(", ")
            );
        }
    }
    if let Some(p) = peer.as_ref().filter(|p| !p.comparisons.is_empty()) {
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
    println!(
        "\nTargets{}:",
        if smoke {
            " (smoke run: figures are not meaningful)"
        } else {
            ""
        }
    );
    print!("{}", report::render_targets(&targets));
    for note in &notes {
        println!("Note: {note}");
    }

    let report = Report {
        tool: "tessera-bench",
        started_at_unix,
        machine: &machine,
        git_commit,
        settings: &settings,
        load_average_before: load_before,
        load_average_after: load_after,
        ceiling_req_per_s: ceiling_rate,
        authenticate_body_bytes,
        server_rss_kb_after_scenarios: main_memory.map(|m| m.0),
        server_peak_rss_kb_after_scenarios: main_memory.map(|m| m.1),
        scenarios: &rows,
        storm: Some(&storm),
        scale: scale.as_ref(),
        pgbench: pgbench.as_ref(),
        peer: peer.as_ref(),
        targets: &targets,
        notes: &notes,
        clean,
    };
    write_json(&json_path, &report)?;
    println!("\nJSON report: {}", json_path.display());
    if args.keep_data {
        println!(
            "Data directories and server logs kept in {}",
            work.keep().display()
        );
    }
    if !clean {
        println!("\n!!! THE RUN HAD ERRORS: see the `errors` column and the storm line above.");
        for r in rows.iter().filter(|r| r.errors > 0) {
            println!("!!!   {}: {:?}", r.scenario, r.error_kinds);
        }
        for f in &storm.failures {
            println!("!!!   storm: {f}");
        }
    }
    Ok(clean)
}

fn mb(kb: Option<u64>) -> String {
    kb.map(|k| format!("{:.0}", k as f64 / 1024.0))
        .unwrap_or_else(|| "?".into())
}

fn write_json(path: &Path, report: &Report<'_>) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}
