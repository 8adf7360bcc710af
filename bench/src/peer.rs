//! `--peer oidc-provider`: the same load against another token service.
//!
//! The peer is [oidc-provider](https://github.com/panva/node-oidc-provider)
//! 8.x, installed with npm into the run's temporary folder and started with
//! `bench/peer/oidc-provider.mjs` as a child process. Its client_credentials
//! grant, token introspection and refresh (with rotation) are measured with
//! the load generator and settings used for Tessera. Nothing here fails the
//! run: when the peer cannot be installed or started, its rows say why and
//! are marked skipped.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hyper::header::HeaderValue;
use hyper::{Method, Uri};
use rand::Rng;
use serde::Serialize;
use serde_json::Value;

use crate::client::{basic, Check, Conn, LoadResult, LoadSettings, Req};
use crate::measure::{self, Settings};
use crate::process::{self, ChildServer};
use crate::report::{self, Row};

/// The peers `--peer` knows.
pub const KNOWN: &[&str] = &["oidc-provider"];

/// The server script, written next to the npm installation.
const SCRIPT: &str = include_str!("../peer/oidc-provider.mjs");
const PACKAGE: &str = "oidc-provider@8";
const CLIENT_ID: &str = "tessera-bench";
const CLIENT_SECRET: &str = "tessera-bench-peer-secret";
const TOKEN_PATH: &str = "/token";
const INTROSPECTION_PATH: &str = "/token/introspection";
const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
/// `npm install` gets this long before it is killed.
const INSTALL_LIMIT: Duration = Duration::from_secs(300);
/// Access tokens the introspection scenario cycles through, as many as
/// Tessera's Bearer scenario uses.
const INTROSPECTION_POOL: usize = 1_000;
/// Refresh tokens asked of the peer's minting endpoint per request.
const MINT_CHUNK: usize = 20_000;

pub const CC_ROW: &str = "peer oidc-provider: client_credentials";
pub const INTROSPECTION_ROW: &str = "peer oidc-provider: introspection";
pub const REFRESH_ROW: &str = "peer oidc-provider: refresh, distinct tokens";

/// What the JSON report says about the peer.
#[derive(Debug, Serialize)]
pub struct PeerReport {
    pub name: String,
    /// `measured` or `skipped`.
    pub status: &'static str,
    pub reason: Option<String>,
    pub package: &'static str,
    pub package_version: Option<String>,
    pub node_version: Option<String>,
    pub install_s: Option<f64>,
    pub processes: usize,
    pub storage: &'static str,
    pub refresh_pool: Option<usize>,
    /// VmRSS and VmHWM (kB) of the peer just before it stopped.
    pub rss_kb_after_scenarios: Option<u64>,
    pub peak_rss_kb_after_scenarios: Option<u64>,
    /// Tessera's figure against the peer's, per comparable pair of scenarios.
    pub comparisons: Vec<Comparison>,
}

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub tessera: String,
    pub peer: String,
    pub tessera_req_per_s: f64,
    pub peer_req_per_s: f64,
    pub tessera_to_peer: f64,
}

impl PeerReport {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            status: "skipped",
            reason: None,
            package: PACKAGE,
            package_version: None,
            node_version: None,
            install_s: None,
            processes: 1,
            storage:
                "oidc-provider's memory adapter, its 1,000-entry LRU replaced by an unbounded map",
            refresh_pool: None,
            rss_kb_after_scenarios: None,
            peak_rss_kb_after_scenarios: None,
            comparisons: Vec::new(),
        }
    }

    /// Fills `comparisons` from pairs of (Tessera row, peer row); pairs where
    /// either side has no rate are left out.
    pub fn compare(&mut self, pairs: &[(&Row, &Row)]) {
        for (tessera, peer) in pairs {
            if let (Some(t), Some(p)) = (tessera.req_per_s, peer.req_per_s) {
                if p > 0.0 && !tessera.skipped && !peer.skipped {
                    self.comparisons.push(Comparison {
                        tessera: tessera.scenario.clone(),
                        peer: peer.scenario.clone(),
                        tessera_req_per_s: t,
                        peer_req_per_s: p,
                        tessera_to_peer: t / p,
                    });
                }
            }
        }
    }
}

/// The three rows, all skipped for `why`.
fn skipped_rows(why: &str) -> Vec<Row> {
    [CC_ROW, INTROSPECTION_ROW, REFRESH_ROW]
        .map(|name| Row::skipped(name, &format!("skipped: {why}")))
        .into()
}

/// Installs, starts and measures the peer `name`. Never fails: problems end
/// up in the rows and the report.
pub async fn measure(
    name: &str,
    work: &Path,
    settings: &Settings,
    load: LoadSettings,
    ceiling_rate: f64,
) -> (Vec<Row>, PeerReport) {
    let mut report = PeerReport::new(name);
    if name != "oidc-provider" {
        let why = format!("unknown peer `{name}` (known: {})", KNOWN.join(", "));
        eprintln!("==> NOTE: {why}; no peer was measured");
        report.reason = Some(why);
        return (Vec::new(), report);
    }
    let dir = work.join("peer-oidc-provider");
    let server = match install_and_start(&dir, work, &mut report).await {
        Ok(server) => server,
        Err(why) => {
            // The table and the JSON get the first line; a start-up failure
            // also carries the peer's output, which goes to stderr only.
            eprintln!("==> NOTE: peer oidc-provider skipped: {why}");
            let first = why
                .lines()
                .next()
                .unwrap_or_default()
                .trim_end_matches("; its output:")
                .to_owned();
            report.reason = Some(first.clone());
            return (skipped_rows(&first), report);
        }
    };
    report.status = "measured";
    let rows = scenarios(server, settings, load, ceiling_rate, &mut report).await;
    (rows, report)
}

struct Peer {
    server: ChildServer,
    admin: SocketAddr,
}

async fn install_and_start(
    dir: &Path,
    work: &Path,
    report: &mut PeerReport,
) -> Result<Peer, String> {
    let node = process::tool_version("node")?;
    report.node_version = Some(node.clone());
    let npm = process::tool_version("npm")?;
    eprintln!("==> peer oidc-provider: npm install {PACKAGE} (node {node}, npm {npm})");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let files = [
        (
            "package.json",
            "{ \"name\": \"tessera-bench-peer\", \"private\": true, \"type\": \"module\" }\n",
        ),
        ("server.mjs", SCRIPT),
    ];
    for (file, text) in files {
        std::fs::write(dir.join(file), text)
            .map_err(|e| format!("cannot write {}: {e}", dir.join(file).display()))?;
    }
    let log = work.join("peer-npm-install.log");
    let mut cmd = Command::new("npm");
    cmd.current_dir(dir).args([
        "install",
        "--no-audit",
        "--no-fund",
        "--no-progress",
        "--prefer-offline",
        "--loglevel=error",
        PACKAGE,
    ]);
    let started = Instant::now();
    let status = process::run_logged(cmd, &log, INSTALL_LIMIT).await?;
    if !status.success() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        eprintln!(
            "!!! npm install failed ({status}); its output ends with:\n{}",
            lines[lines.len().saturating_sub(6)..].join("\n")
        );
        return Err(npm_failure(&text, &npm_registry()));
    }
    report.install_s = Some(started.elapsed().as_secs_f64());
    report.package_version = std::fs::read_to_string(
        dir.join("node_modules")
            .join("oidc-provider")
            .join("package.json"),
    )
    .ok()
    .and_then(|text| serde_json::from_str::<Value>(&text).ok())
    .and_then(|v| v.get("version")?.as_str().map(str::to_owned));
    let Some(version) = report.package_version.clone() else {
        return Err("npm install succeeded but node_modules/oidc-provider is missing".into());
    };

    let addr = process::free_port().map_err(|e| format!("{e:#}"))?;
    let admin = loop {
        let a = process::free_port().map_err(|e| format!("{e:#}"))?;
        if a != addr {
            break a;
        }
    };
    let mut cmd = Command::new("node");
    cmd.current_dir(dir)
        .arg("server.mjs")
        .env("NODE_ENV", "production")
        .env("PEER_PORT", addr.port().to_string())
        .env("PEER_ADMIN_PORT", admin.port().to_string())
        .env("PEER_CLIENT_ID", CLIENT_ID)
        .env("PEER_CLIENT_SECRET", CLIENT_SECRET);
    let mut server = ChildServer::peer("oidc-provider", cmd, addr, work.join("peer.log"))
        .map_err(|e| format!("{e:#}"))?;
    server
        .wait_ready(DISCOVERY_PATH, Duration::from_secs(60))
        .await
        .map_err(|e| format!("it did not start: {e:#}"))?;
    eprintln!(
        "==> oidc-provider {version} is ready on {addr} (pid {})",
        server.pid()
    );
    Ok(Peer { server, admin })
}

fn npm_registry() -> String {
    Command::new("npm")
        .args(["config", "get", "registry"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "its registry".into())
}

/// Why `npm install` failed, from its output: whether it could not reach
/// the registry, and npm's error code (or its first error line).
fn npm_failure(log: &str, registry: &str) -> String {
    const NETWORK: [&str; 8] = [
        "ENOTFOUND",
        "EAI_AGAIN",
        "ECONNREFUSED",
        "ECONNRESET",
        "ETIMEDOUT",
        "ENETUNREACH",
        "EHOSTUNREACH",
        "network",
    ];
    let errors: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter_map(|l| {
            l.strip_prefix("npm error")
                .or_else(|| l.strip_prefix("npm ERR!"))
        })
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let detail = errors
        .iter()
        .find(|l| l.starts_with("code "))
        .or(errors.first())
        .map(|l| l.to_string())
        .or_else(|| {
            log.lines()
                .rev()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "no output".into());
    if NETWORK.iter().any(|m| log.contains(m)) {
        format!("npm cannot reach {registry} to install {PACKAGE} ({detail})")
    } else {
        format!("npm install {PACKAGE} failed ({detail})")
    }
}

/// A check that the body contains `needle`, failing as `kind`.
fn contains(needle: &'static str, kind: &'static str) -> Check {
    Arc::new(move |body: &Bytes| {
        if body.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            Ok(())
        } else {
            Err(kind)
        }
    })
}

/// Sends `req` once and applies `check`: a misconfiguration shows here with
/// the peer's own words, instead of as a count of failed requests.
async fn preflight(addr: SocketAddr, req: &Req, check: &Check) -> Result<(), String> {
    let mut conn = Conn::open(addr).await.map_err(|e| format!("{e:#}"))?;
    let (status, body) = conn.send(req).await.map_err(|e| format!("{e:#}"))?;
    let text: String = String::from_utf8_lossy(&body).chars().take(300).collect();
    if !status.is_success() {
        return Err(format!("HTTP {status}: {text}"));
    }
    check(&body).map_err(|kind| format!("HTTP {status} but {kind}: {text}"))
}

fn failed_row(name: &str, why: &str) -> Row {
    eprintln!("!!! {name}: {why}");
    Row {
        errors: 1,
        ..Row::skipped(name, &format!("ERROR: {why}"))
    }
}

async fn scenarios(
    peer: Peer,
    settings: &Settings,
    load: LoadSettings,
    ceiling_rate: f64,
    report: &mut PeerReport,
) -> Vec<Row> {
    let Peer { mut server, admin } = peer;
    let addr = server.addr;
    let auth = basic(CLIENT_ID, CLIENT_SECRET);
    let ratio = |r: &LoadResult| (ceiling_rate > 0.0).then(|| r.throughput() / ceiling_rate);
    let mut rows = Vec::new();

    // client_credentials: POST /token.
    let cc_req = Req::form(
        Method::POST,
        TOKEN_PATH,
        Some(auth.clone()),
        &[("grant_type", "client_credentials")],
    );
    let issued = contains("\"access_token\"", "no access_token");
    let cc_row = match preflight(addr, &cc_req, &issued).await {
        Err(why) => failed_row(CC_ROW, &why),
        Ok(()) => {
            let req = cc_req.clone();
            match measure::measure_checked(
                CC_ROW,
                &server,
                load,
                Arc::new(move |_| Some(req.clone())),
                Some(Arc::clone(&issued)),
            )
            .await
            {
                Ok(r) => measure::row(CC_ROW, &r, ratio(&r)),
                Err(e) => failed_row(CC_ROW, &format!("{e:#}")),
            }
        }
    };
    let cc_rate = cc_row.req_per_s;
    rows.push(cc_row);

    // Introspection of client_credentials access tokens: POST /token/introspection.
    let row = async {
        eprintln!("==> minting {INTROSPECTION_POOL} access tokens of the peer for introspection");
        let pool = measure::mint(
            addr,
            settings.connections,
            INTROSPECTION_POOL,
            &cc_req,
            "access_token",
        )
        .await
        .map_err(|e| format!("{e:#}"))?;
        let reqs: Arc<Vec<Req>> =
            Arc::new(pool.iter().map(|t| introspection_req(&auth, t)).collect());
        let active = contains("\"active\":true", "the token is not active");
        preflight(addr, &reqs[0], &active).await?;
        let r = measure::measure_checked(
            INTROSPECTION_ROW,
            &server,
            load,
            Arc::new(move |rng| Some(reqs[rng.gen_range(0..reqs.len())].clone())),
            Some(active),
        )
        .await
        .map_err(|e| format!("{e:#}"))?;
        let mut row = measure::row(INTROSPECTION_ROW, &r, ratio(&r));
        row.notes.push(format!(
            "random one of {} tokens, hint client_credentials",
            report::group_thousands(INTROSPECTION_POOL as u64)
        ));
        Ok::<Row, String>(row)
    }
    .await
    .unwrap_or_else(|why| failed_row(INTROSPECTION_ROW, &why));
    rows.push(row);

    // Refresh: each of a pool of refresh tokens used once; rotation is on.
    let row = async {
        // The peer refreshes in memory and may well outrun its own token
        // creation; minting is cheap, so the margin is wide.
        let n = measure::pool_size(cc_rate, 4.0, settings);
        eprintln!("==> asking the peer for {n} refresh tokens for the refresh scenario");
        let mut pool = mint_refresh_tokens(admin, n + 1)
            .await
            .map_err(|e| format!("minting refresh tokens failed: {e:#}"))?;
        let first = pool
            .pop()
            .context("no refresh token")
            .map_err(|e| e.to_string())?;
        let rotated = contains("\"refresh_token\"", "no refresh_token");
        preflight(addr, &refresh_req(&auth, &first), &rotated).await?;
        let reqs = Arc::new(pool.iter().map(|t| refresh_req(&auth, t)).collect());
        let r = measure::measure_checked(
            REFRESH_ROW,
            &server,
            load,
            measure::take_each_once(reqs),
            Some(rotated),
        )
        .await
        .map_err(|e| format!("{e:#}"))?;
        report.refresh_pool = Some(n);
        let mut row = measure::row(REFRESH_ROW, &r, ratio(&r));
        row.notes
            .push(format!("pool of {}", report::group_thousands(n as u64)));
        Ok::<Row, String>(row)
    }
    .await
    .unwrap_or_else(|why| failed_row(REFRESH_ROW, &why));
    rows.push(row);

    let memory = process::memory_kb(server.pid());
    report.rss_kb_after_scenarios = memory.map(|m| m.0);
    report.peak_rss_kb_after_scenarios = memory.map(|m| m.1);
    server.stop();
    rows
}

fn introspection_req(auth: &HeaderValue, token: &str) -> Req {
    Req::form(
        Method::POST,
        INTROSPECTION_PATH,
        Some(auth.clone()),
        &[("token", token), ("token_type_hint", "client_credentials")],
    )
}

fn refresh_req(auth: &HeaderValue, token: &str) -> Req {
    Req::form(
        Method::POST,
        TOKEN_PATH,
        Some(auth.clone()),
        &[("grant_type", "refresh_token"), ("refresh_token", token)],
    )
}

/// Asks the peer's harness-only endpoint for `n` refresh tokens.
async fn mint_refresh_tokens(admin: SocketAddr, n: usize) -> anyhow::Result<Vec<String>> {
    let mut conn = Conn::open(admin).await?;
    let mut tokens = Vec::with_capacity(n);
    while tokens.len() < n {
        let count = (n - tokens.len()).min(MINT_CHUNK);
        let uri = Uri::try_from(format!("/refresh-tokens?count={count}"))?;
        let (status, body) = conn.send(&Req::bare(Method::POST, uri)).await?;
        if !status.is_success() {
            anyhow::bail!("HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        let chunk: Vec<String> =
            serde_json::from_slice(&body).context("the minting endpoint's answer")?;
        anyhow::ensure!(
            chunk.len() == count,
            "asked for {count} refresh tokens, got {}",
            chunk.len()
        );
        tokens.extend(chunk);
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_an_unreachable_registry_from_other_npm_failures() {
        let offline = "npm error code ENOTFOUND\nnpm error syscall getaddrinfo\nnpm error network request to https://registry.npmjs.org/oidc-provider failed\n";
        assert_eq!(
            npm_failure(offline, "https://registry.npmjs.org/"),
            "npm cannot reach https://registry.npmjs.org/ to install oidc-provider@8 (code ENOTFOUND)"
        );
        let other = "npm ERR! notarget No matching version found for oidc-provider@8\nnpm ERR! code ETARGET\n";
        assert_eq!(
            npm_failure(other, "r"),
            "npm install oidc-provider@8 failed (code ETARGET)"
        );
        assert_eq!(
            npm_failure("sh: 1: npm: Permission denied\n", "r"),
            "npm install oidc-provider@8 failed (sh: 1: npm: Permission denied)"
        );
        assert_eq!(
            npm_failure("", "r"),
            "npm install oidc-provider@8 failed (no output)"
        );
    }

    #[test]
    fn body_checks_look_for_the_needle() {
        let active = contains("\"active\":true", "inactive");
        assert_eq!(
            active(&Bytes::from_static(
                b"{\"active\":true,\"client_id\":\"x\"}"
            )),
            Ok(())
        );
        assert_eq!(
            active(&Bytes::from_static(b"{\"active\":false}")),
            Err("inactive")
        );
        assert_eq!(active(&Bytes::new()), Err("inactive"));
    }

    #[test]
    fn comparisons_skip_rows_without_rates() {
        let t = Row {
            scenario: "tessera".into(),
            req_per_s: Some(300.0),
            ..Default::default()
        };
        let p = Row {
            scenario: "peer".into(),
            req_per_s: Some(100.0),
            ..Default::default()
        };
        let s = Row::skipped("peer skipped", "skipped: npm");
        let mut report = PeerReport::new("oidc-provider");
        report.compare(&[(&t, &p), (&t, &s)]);
        assert_eq!(report.comparisons.len(), 1);
        assert!((report.comparisons[0].tessera_to_peer - 3.0).abs() < 1e-9);
    }
}
