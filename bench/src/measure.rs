//! Measuring one scenario (and the ceiling) with the load generator, and
//! the requests they need set up first: what the scenarios of `run` and of
//! the peer share.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::Method;
use serde_json::{json, Value};

use crate::client::{self, collect, Conn, LoadResult, LoadSettings, Req};
use crate::process::{self, ChildServer, CpuSnapshot, BOOTSTRAP_PASSWORD};
use crate::profile;
use crate::report::{Latency, Row};

pub(crate) const READY_PATH: &str = "/_tessera/ready";
/// Above this share of the machine's CPU used by other processes during a
/// scenario, its figures are flagged as depressed.
pub(crate) const BUSY_SHARE: f64 = 0.05;

/// How a run is set up (also reported in its JSON).
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Settings {
    pub mode: &'static str,
    pub duration_s: f64,
    pub warmup_s: f64,
    pub connections: usize,
    pub client_threads: usize,
    pub storm_width: usize,
    pub storm_rounds: usize,
    /// Tokens stored for the scale measurements (`--scale`), if any.
    pub scale: Option<u64>,
    pub store: String,
}

/// Whether the server accepts the store URL (`tessera check-config`).
pub(crate) fn check_store(bin: &Path, work: &Path, store: &str) -> Result<(), String> {
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
pub(crate) async fn measure_ceiling(
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
    let result = measure(name, &ceiling, load, repeat(req.clone())).await;
    ceiling.stop();
    result
}

pub(crate) async fn measure(
    name: &str,
    server: &ChildServer,
    load: LoadSettings,
    next: client::NextReq,
) -> anyhow::Result<LoadResult> {
    measure_checked(name, server, load, next, None).await
}

pub(crate) fn prebuilt(
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

pub(crate) async fn create_api_key(
    control: &mut Conn,
    auth: &HeaderValue,
) -> anyhow::Result<ApiKey> {
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
    let threads_before = process::thread_cpu_ticks(server.pid());
    let recording = load
        .profile
        .then(|| profile::Recording::start(server.pid()));
    let mut r = client::run_load(server.addr, load, next, check).await?;
    let after = CpuSnapshot::take(&[server.pid()]);
    let profiled = match recording {
        Some(Ok(recording)) => Some(
            tokio::task::spawn_blocking(move || recording.finish())
                .await
                .unwrap_or_else(|e| Err(format!("the profile's summary panicked: {e}"))),
        ),
        Some(Err(e)) => Some(Err(e)),
        None => None,
    };
    r.server_cpu_us_per_req = server_before
        .zip(process::process_cpu_ticks(server.pid()))
        .and_then(|(b, a)| process::cpu_us_per_request(a.saturating_sub(b), r.answered));
    r.server_cpu_by_thread = threads_before
        .zip(process::thread_cpu_ticks(server.pid()))
        .map(|(b, a)| process::cpu_us_per_request_by_thread(&b, &a, r.answered))
        .unwrap_or_default();
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
    if !r.server_cpu_by_thread.is_empty() {
        eprintln!(
            "    server CPU µs/req by thread: {}",
            process::cpu_split_line(&r.server_cpu_by_thread)
        );
    }
    match (profiled, r.server_cpu_us_per_req) {
        (Some(Ok(p)), Some(cpu)) => {
            eprintln!(
                "    server CPU µs/req by area (perf, {} samples): {}",
                p.samples,
                profile::areas_line(&p, cpu, 0.3)
            );
            eprintln!(
                "    hottest functions, µs/req: {}",
                profile::functions_line(&p, cpu, 8)
            );
            r.server_profile = Some(p);
        }
        (Some(Ok(p)), None) => r.server_profile = Some(p),
        (Some(Err(e)), _) => eprintln!("!!! no profile: {e}"),
        (None, _) => {}
    }
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
        server_cpu_by_thread: r.server_cpu_by_thread.clone(),
        server_profile: r.server_profile.clone(),
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

/// Hands out the same request every time.
pub(crate) fn repeat(req: Req) -> client::NextReq {
    Arc::new(move |_| Some(req.clone()))
}

/// Hands out each request exactly once, then reports the pool used up.
pub(crate) fn take_each_once(reqs: Arc<Vec<Req>>) -> client::NextReq {
    let next = Arc::new(AtomicUsize::new(0));
    Arc::new(move |_| reqs.get(next.fetch_add(1, Ordering::Relaxed)).cloned())
}

pub(crate) enum ApiKey {
    Unavailable,
    Failed(String),
    Header(HeaderValue),
}

pub(crate) type Memory = Option<(u64, u64)>;
