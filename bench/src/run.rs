//! `tessera-bench run`: the scenarios, in order, and the report.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::Method;
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};

use crate::client::{
    self, basic, bearer, collect, new_histogram, Conn, LoadResult, LoadSettings, Req,
};
use crate::peer::{self, PeerReport};
use crate::pgbench::{self, PgbenchReport};
use crate::process::{self, ChildServer, CpuSnapshot, BOOTSTRAP_PASSWORD};
use crate::report::{self, Latency, Machine, Row, Target};
use crate::seed;
use crate::RunArgs;

const BENCH_USER: &str = "bench_user";
const BENCH_PASSWORD: &str = "bench-user-password";
const TOKEN_PATH: &str = "/_security/oauth2/token";
const AUTHENTICATE_PATH: &str = "/_security/_authenticate";
const READY_PATH: &str = "/_tessera/ready";
const METRICS_PATH: &str = "/_tessera/metrics";
/// Above this share of the machine's CPU used by other processes during a
/// scenario, its figures are flagged as depressed.
const BUSY_SHARE: f64 = 0.05;
/// Concurrent refreshes of one refresh token in the storm.
const STORM_WIDTH: usize = 256;
/// Access tokens the Bearer scenario cycles through.
const BEARER_POOL: usize = 1_000;
/// Tokens stored for the scale measurements.
const SCALE_SMALL: u64 = 1_000;
const SCALE_LARGE: u64 = 1_000_000;
/// Seeded access tokens kept in memory to authenticate with at scale.
const SCALE_SAMPLE: usize = 10_000;
/// Both scale measurements authenticate with this many distinct tokens,
/// drawn at random from what is stored, so that they differ only in how
/// many tokens are stored, not in how many are in use.
const SCALE_WORKING_SET: usize = 1_000;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Settings {
    pub mode: &'static str,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub connections: usize,
    pub client_threads: usize,
    pub storm_width: usize,
    pub storm_rounds: usize,
    pub scale: bool,
    pub store: String,
}

#[derive(Debug, Serialize)]
struct StormReport {
    width: usize,
    rounds: usize,
    rounds_identical: usize,
    rounds_access_authenticates: usize,
    /// Rounds in which the server's `rotated` refresh counter moved by exactly one.
    rounds_rotated_once: Option<usize>,
    wrote_once: bool,
    latency: Latency,
    failures: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ScaleReport {
    seeded_small: u64,
    seeded_large: u64,
    seeding: &'static str,
    seed_rate_per_s: f64,
    tokens_stored: u64,
    data_dir_bytes: u64,
    bytes_per_token: f64,
    rss_kb_at_start: Option<u64>,
    rss_kb_after_load: Option<u64>,
    peak_rss_kb: Option<u64>,
    bearer_small_req_per_s: f64,
    bearer_large_req_per_s: f64,
    large_to_small: f64,
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

/// The table's line for pgbench: transactions per second, not HTTP requests.
fn pgbench_row(p: &PgbenchReport) -> Row {
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

/// Whether the server accepts the store URL (`tessera check-config`).
fn check_store(bin: &Path, work: &Path, store: &str) -> Result<(), String> {
    let out = std::process::Command::new(bin)
        .args(["check-config", "--store", store, "--data-dir"])
        .arg(work.join("check"))
        .env("TESSERA_BOOTSTRAP_PASSWORD", BOOTSTRAP_PASSWORD)
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&out.stderr);
        let message: Vec<&str> = text
            .lines()
            .take_while(|l| !l.starts_with("Stack backtrace"))
            .filter(|l| !l.trim().is_empty())
            .collect();
        Err(if message.is_empty() {
            "check-config failed".to_owned()
        } else {
            message.join(" ")
        })
    }
}

/// Runs one timed scenario, with progress and loud errors on stderr.
/// Starts the bare axum server, measures it with `req` and stops it.
async fn measure_ceiling(
    body_bytes: usize,
    log: &Path,
    name: &str,
    req: &Req,
    load: LoadSettings,
) -> anyhow::Result<LoadResult> {
    let mut ceiling = ChildServer::ceiling(body_bytes, log.to_path_buf())?;
    ceiling
        .wait_ready(READY_PATH, Duration::from_secs(30))
        .await?;
    let fixed = req.clone();
    let result = measure(name, &ceiling, load, Arc::new(move |_| Some(fixed.clone()))).await;
    ceiling.stop();
    result
}

async fn measure(
    name: &str,
    server: &ChildServer,
    load: LoadSettings,
    next: client::NextReq,
) -> anyhow::Result<LoadResult> {
    measure_checked(name, server, load, next, None).await
}

/// [`measure`], with every 2xx body checked by `check`.
pub(crate) async fn measure_checked(
    name: &str,
    server: &ChildServer,
    load: LoadSettings,
    next: client::NextReq,
    check: Option<client::Check>,
) -> anyhow::Result<LoadResult> {
    eprintln!(
        "==> {name}: {:?} warm-up + {:?}",
        load.warmup, load.duration
    );
    let before = CpuSnapshot::take(&[server.pid()]);
    let server_before = process::process_cpu_ticks(server.pid());
    let mut r = client::run_load(server.addr, load, next, check).await?;
    let after = CpuSnapshot::take(&[server.pid()]);
    r.server_cpu_us_per_req = server_before
        .zip(process::process_cpu_ticks(server.pid()))
        .and_then(|(b, a)| process::cpu_us_per_request(a.saturating_sub(b), r.answered));
    r.others_cpu_share = before
        .zip(after)
        .and_then(|(b, a)| a.others_share_since(&b));
    if let Some(share) = r.others_cpu_share.filter(|&s| s > BUSY_SHARE) {
        eprintln!(
            "!!! other processes used {:.0}% of the machine's CPU meanwhile",
            share * 100.0
        );
    }
    let l = Latency::of(&r.hist);
    eprintln!(
        "    {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, {} errors, server CPU {} µs/req",
        r.throughput(),
        l.p50_ms,
        l.p99_ms,
        r.error_count(),
        r.server_cpu_us_per_req
            .map_or_else(|| "?".to_owned(), |us| format!("{us:.0}"))
    );
    if r.error_count() > 0 {
        eprintln!(
            "!!! {name}: {} REQUESTS FAILED: {:?}",
            r.error_count(),
            r.errors
        );
    }
    if let Some(after) = r.exhausted_after {
        eprintln!("    (the input pool ran out {after:?} into the measured window)");
    }
    Ok(r)
}

pub(crate) fn row(scenario: &str, r: &LoadResult, ratio: Option<f64>) -> Row {
    let mut notes = Vec::new();
    if r.error_count() > 0 {
        notes.push("ERRORS".to_owned());
    }
    if let Some(after) = r.exhausted_after {
        notes.push(format!("pool ran out after {:.1} s", after.as_secs_f64()));
    }
    if let Some(share) = r.others_cpu_share.filter(|&s| s > BUSY_SHARE) {
        notes.push(format!("others used {:.0}% CPU", share * 100.0));
    }
    Row {
        scenario: scenario.into(),
        req_per_s: Some(r.throughput()),
        latency: Some(Latency::of(&r.hist)),
        requests: r.hist.len(),
        window_s: r.window.as_secs_f64(),
        ratio_to_ceiling: ratio,
        errors: r.error_count(),
        error_kinds: r.errors.clone(),
        others_cpu_share: r.others_cpu_share,
        server_cpu_us_per_req: r.server_cpu_us_per_req,
        skipped: false,
        notes,
    }
}

/// How many single-use inputs a scenario needs: what the comparable write
/// scenario sustained, over warm-up and measured time, times `margin`.
pub(crate) fn pool_size(comparable_rate: Option<f64>, margin: f64, settings: &Settings) -> usize {
    let rate = comparable_rate.unwrap_or(0.0).max(100.0);
    let need = rate * (settings.warmup_s + settings.duration_s) * margin
        + (settings.connections * 4) as f64;
    (need.ceil() as usize).clamp(1_000, 3_000_000)
}

pub(crate) async fn mint(
    addr: std::net::SocketAddr,
    connections: usize,
    n: usize,
    req: &Req,
    field: &'static str,
) -> anyhow::Result<Vec<String>> {
    let req = req.clone();
    collect(
        addr,
        connections,
        n,
        Arc::new(move |_| req.clone()),
        Arc::new(move |body: &Bytes| {
            let v: Value = serde_json::from_slice(body).ok()?;
            v.get(field)?.as_str().map(str::to_owned)
        }),
    )
    .await
    .with_context(|| format!("minting {n} tokens failed"))
}

fn prebuilt(
    pool: &[String],
    auth: &HeaderValue,
    method: Method,
    path: &'static str,
    body: impl Fn(&str) -> Value,
) -> Arc<Vec<Req>> {
    Arc::new(
        pool.iter()
            .map(|t| Req::json(method.clone(), path, Some(auth.clone()), &body(t)))
            .collect(),
    )
}

/// Hands out each request exactly once, then reports the pool used up.
pub(crate) fn take_each_once(reqs: Arc<Vec<Req>>) -> client::NextReq {
    let next = Arc::new(AtomicUsize::new(0));
    Arc::new(move |_| reqs.get(next.fetch_add(1, Ordering::Relaxed)).cloned())
}

enum ApiKey {
    Unavailable,
    Failed(String),
    Header(HeaderValue),
}

async fn create_api_key(control: &mut Conn, auth: &HeaderValue) -> anyhow::Result<ApiKey> {
    let (status, body) = control
        .send(&Req::json(
            Method::POST,
            "/_security/api_key",
            Some(auth.clone()),
            &json!({ "name": "tessera-bench" }),
        ))
        .await?;
    if status.as_u16() == 404 || status.as_u16() == 405 {
        return Ok(ApiKey::Unavailable);
    }
    if !status.is_success() {
        return Ok(ApiKey::Failed(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        )));
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let encoded = v
        .get("encoded")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            use base64::Engine;
            let (id, key) = (v.get("id")?.as_str()?, v.get("api_key")?.as_str()?);
            Some(base64::engine::general_purpose::STANDARD.encode(format!("{id}:{key}")))
        });
    Ok(
        match encoded.and_then(|e| HeaderValue::from_str(&format!("ApiKey {e}")).ok()) {
            Some(h) => ApiKey::Header(h),
            None => ApiKey::Failed(format!(
                "the response has no `encoded` nor `id`/`api_key`: {v}"
            )),
        },
    )
}

fn pair_of(body: &Bytes) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    Some((
        v.get("access_token")?.as_str()?.to_owned(),
        v.get("refresh_token")?.as_str()?.to_owned(),
    ))
}

async fn rotated_count(control: &mut Conn) -> Option<f64> {
    // The metrics on the API port need the `monitor` privilege.
    let elastic = basic("elastic", BOOTSTRAP_PASSWORD);
    let (status, body) = control
        .send(&Req::get(METRICS_PATH, Some(elastic)))
        .await
        .ok()?;
    if !status.is_success() {
        return None;
    }
    Some(
        report::prometheus_counter(
            &String::from_utf8_lossy(&body),
            "tessera_refresh_total",
            "\"rotated\"",
        )
        .unwrap_or(0.0),
    )
}

/// `rounds` times: mint a pair, then refresh its refresh token from
/// `STORM_WIDTH` connections at once. Every answer must be the byte-identical
/// pair, its access token must authenticate, and the server must have
/// rotated (written) once.
async fn storm(
    addr: std::net::SocketAddr,
    rounds: usize,
    auth: &HeaderValue,
    password_grant: &Req,
) -> anyhow::Result<StormReport> {
    let mut conns = client::open_many(addr, STORM_WIDTH).await?;
    let mut control = Conn::open(addr).await?;
    let mut hist = new_histogram();
    let mut failures = Vec::new();
    let (mut identical, mut authenticates) = (0, 0);
    let mut rotated_once: Option<usize> = Some(0);
    for round in 1..=rounds {
        let (status, body) = control.send(password_grant).await?;
        let (_, refresh_token) = pair_of(&body)
            .with_context(|| format!("minting the storm's pair failed: HTTP {status}"))?;
        let before = rotated_count(&mut control).await;
        let req = Req::json(
            Method::POST,
            TOKEN_PATH,
            Some(auth.clone()),
            &json!({ "grant_type": "refresh_token", "refresh_token": refresh_token }),
        );
        let barrier = Arc::new(tokio::sync::Barrier::new(conns.len()));
        let mut tasks = Vec::with_capacity(conns.len());
        for mut conn in conns.drain(..) {
            let (req, barrier) = (req.clone(), Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let t0 = Instant::now();
                let result = conn.send(&req).await;
                (conn, t0.elapsed(), result)
            }));
        }
        let mut pairs = Vec::with_capacity(tasks.len());
        let mut round_failures = 0;
        for task in tasks {
            let (conn, took, result) = task.await?;
            conns.push(conn);
            hist.saturating_record(client::micros(took));
            match result {
                Ok((status, body)) if status.is_success() => pairs.push(pair_of(&body)),
                Ok((status, body)) => {
                    round_failures += 1;
                    if round_failures == 1 {
                        failures.push(format!(
                            "round {round}: HTTP {status}: {}",
                            String::from_utf8_lossy(&body)
                        ));
                    }
                }
                Err(e) => {
                    round_failures += 1;
                    if round_failures == 1 {
                        failures.push(format!("round {round}: {e:#}"));
                    }
                }
            }
        }
        let all_same = round_failures == 0 && pairs.iter().all(|p| p.is_some() && *p == pairs[0]);
        if all_same {
            identical += 1;
            let (access, _) = pairs[0].clone().expect("checked above");
            let (status, _) = control
                .send(&Req::get(AUTHENTICATE_PATH, Some(bearer(&access))))
                .await?;
            if status.is_success() {
                authenticates += 1;
            } else {
                failures.push(format!(
                    "round {round}: the storm's access token got HTTP {status} from _authenticate"
                ));
            }
        } else if round_failures == 0 {
            let distinct: std::collections::HashSet<_> = pairs.iter().collect();
            failures.push(format!(
                "round {round}: {} distinct answers to one refresh token",
                distinct.len()
            ));
        }
        let after = rotated_count(&mut control).await;
        rotated_once = match (rotated_once, before, after) {
            (Some(n), Some(b), Some(a)) => Some(n + usize::from((a - b - 1.0).abs() < 0.5)),
            _ => None,
        };
    }
    let wrote_once =
        identical == rounds && authenticates == rounds && rotated_once.is_none_or(|n| n == rounds);
    if let Some(n) = rotated_once.filter(|&n| n != rounds) {
        failures.push(format!(
            "the server's rotated-refresh counter moved by one in only {n} of {rounds} rounds"
        ));
    }
    let latency = Latency::of(&hist);
    eprintln!(
        "    {identical}/{rounds} rounds byte-identical, {authenticates}/{rounds} access tokens authenticate, rotated once: {}, p99 {:.2} ms",
        rotated_once.map(|n| format!("{n}/{rounds}")).unwrap_or_else(|| "unknown (no metrics)".into()),
        latency.p99_ms
    );
    Ok(StormReport {
        width: STORM_WIDTH,
        rounds,
        rounds_identical: identical,
        rounds_access_authenticates: authenticates,
        rounds_rotated_once: rotated_once,
        wrote_once,
        latency,
        failures,
    })
}

/// Bearer `_authenticate` with 1,000 and with 1,000,000 stored tokens, the
/// server's memory and the bytes on disk per token.
async fn seed_tokens(db: &Path, count: u64, via_store: bool) -> anyhow::Result<seed::Seeded> {
    if via_store {
        seed::seed_via_store(db, count, SCALE_SAMPLE).await
    } else {
        let db = db.to_owned();
        tokio::task::spawn_blocking(move || seed::bulk_seed(&db, count, SCALE_SAMPLE)).await?
    }
}

async fn scale(
    bin: &Path,
    work: &Path,
    load: LoadSettings,
    ceiling_rate: f64,
    via_store: bool,
) -> anyhow::Result<(Row, Row, ScaleReport)> {
    let dir = work.join("scale");
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("tessera.db");

    let how = if via_store {
        "through Store::insert_token"
    } else {
        "in bulk transactions"
    };
    eprintln!(
        "==> scale: seeding {SCALE_SMALL} tokens {how} into {}",
        db.display()
    );
    let small = seed_tokens(&db, SCALE_SMALL, via_store).await?;
    let small_sample = working_set(small.sample);
    seed::checkpoint_and_count(&db)?;
    let small_row = scale_bearer(
        bin,
        &dir,
        work.join("tessera-scale-small.log"),
        load,
        ceiling_rate,
        small_sample,
        "1,000",
    )
    .await?
    .0;

    let more = SCALE_LARGE - SCALE_SMALL;
    eprintln!("==> scale: seeding {more} more tokens {how}, directly into the store");
    let large = seed_tokens(&db, more, via_store).await?;
    let seed_rate = more as f64 / large.elapsed.as_secs_f64();
    eprintln!(
        "    {:.0} tokens/s ({:.1} s)",
        seed_rate,
        large.elapsed.as_secs_f64()
    );
    let tokens_stored = seed::checkpoint_and_count(&db)?;
    let large_sample = working_set(large.sample);
    let data_dir_bytes = seed::dir_bytes(&dir)?;
    let (large_row, rss_start, rss_after) = scale_bearer(
        bin,
        &dir,
        work.join("tessera-scale-large.log"),
        load,
        ceiling_rate,
        large_sample,
        "1,000,000",
    )
    .await?;
    let (small_rate, large_rate) = (
        small_row.req_per_s.unwrap_or(0.0),
        large_row.req_per_s.unwrap_or(0.0),
    );
    let report = ScaleReport {
        seeded_small: SCALE_SMALL,
        seeded_large: SCALE_LARGE,
        seeding: if via_store {
            "Store::insert_token, concurrent tasks"
        } else {
            "bulk transactions"
        },
        seed_rate_per_s: seed_rate,
        tokens_stored,
        data_dir_bytes,
        bytes_per_token: data_dir_bytes as f64 / tokens_stored.max(1) as f64,
        rss_kb_at_start: rss_start.map(|m| m.0),
        rss_kb_after_load: rss_after.map(|m| m.0),
        peak_rss_kb: rss_after.map(|m| m.1),
        bearer_small_req_per_s: small_rate,
        bearer_large_req_per_s: large_rate,
        large_to_small: if small_rate > 0.0 {
            large_rate / small_rate
        } else {
            0.0
        },
    };
    Ok((small_row, large_row, report))
}

/// A random [`SCALE_WORKING_SET`] of the kept tokens.
fn working_set(mut sample: Vec<String>) -> Vec<String> {
    use rand::seq::SliceRandom;
    sample.shuffle(&mut rand::thread_rng());
    sample.truncate(SCALE_WORKING_SET);
    sample
}

type Memory = Option<(u64, u64)>;

async fn scale_bearer(
    bin: &Path,
    dir: &Path,
    log: PathBuf,
    load: LoadSettings,
    ceiling_rate: f64,
    sample: Vec<String>,
    label: &str,
) -> anyhow::Result<(Row, Memory, Memory)> {
    if sample.is_empty() {
        bail!("the seeded sample is empty");
    }
    let mut server = ChildServer::tessera(bin, dir, None, log)?;
    server
        .wait_ready(READY_PATH, Duration::from_secs(120))
        .await?;
    let at_start = process::memory_kb(server.pid());
    let headers: Arc<Vec<HeaderValue>> = Arc::new(sample.iter().map(|t| bearer(t)).collect());
    let name = format!("_authenticate, Bearer, {label} tokens stored");
    let r = measure(
        &name,
        &server,
        load,
        Arc::new(move |rng| {
            Some(Req::get(
                AUTHENTICATE_PATH,
                Some(headers[rng.gen_range(0..headers.len())].clone()),
            ))
        }),
    )
    .await?;
    let after = process::memory_kb(server.pid());
    server.stop();
    let mut row = row(
        &name,
        &r,
        (ceiling_rate > 0.0).then(|| r.throughput() / ceiling_rate),
    );
    row.notes.push(format!(
        "random sample of {} seeded tokens",
        report::group_thousands(sample.len() as u64)
    ));
    Ok((row, at_start, after))
}

#[allow(clippy::too_many_arguments)]
fn targets(
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
fn pgbench_target(refresh: &Row, pgbench: Option<&PgbenchReport>) -> Target {
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
