//! The refresh storm: many connections refresh one refresh token at once,
//! through one node, or (on PostgreSQL) spread over several nodes on one
//! store.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::header::HeaderValue;
use hyper::Method;
use serde::Serialize;
use serde_json::{json, Value};

use crate::client::{self, basic, bearer, new_histogram, Conn, Req};
use crate::process::BOOTSTRAP_PASSWORD;
use crate::report::{self, Latency, Row};

use super::fixture::{self, Tessera, AUTHENTICATE_PATH, BENCH_USER, METRICS_PATH, TOKEN_PATH};

/// Concurrent refreshes of one refresh token in the storm.
pub(super) const STORM_WIDTH: usize = 256;
/// Nodes of the storm across nodes: the main server and two more.
pub(super) const CLUSTER_NODES: usize = 3;

#[derive(Debug, Serialize)]
pub(super) struct StormReport {
    pub(super) width: usize,
    /// Nodes the storm's connections were spread over, round-robin.
    pub(super) nodes: usize,
    pub(super) rounds: usize,
    pub(super) rounds_identical: usize,
    /// Rounds whose access token authenticated on every node.
    pub(super) rounds_access_authenticates: usize,
    /// Rounds in which the `rotated` refresh counter, summed over the
    /// nodes, moved by exactly one.
    pub(super) rounds_rotated_once: Option<usize>,
    pub(super) wrote_once: bool,
    pub(super) latency: Latency,
    /// The slowest answer of the unmeasured warm-up round, in ms: what a
    /// storm costs nodes that have not refreshed yet.
    pub(super) warm_up_slowest_ms: f64,
    /// The slowest answer of each measured round, in ms.
    pub(super) slowest_per_round_ms: Vec<f64>,
    pub(super) failures: Vec<String>,
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

/// The `rotated` refresh counter summed over the nodes behind `controls`;
/// `None` if one of them does not say.
async fn rotated_total(controls: &mut [Conn]) -> Option<f64> {
    let mut total = 0.0;
    for control in controls {
        total += rotated_count(control).await?;
    }
    Some(total)
}

/// Authenticates `bench_user` once on the node behind `control`, so that
/// the storm's first round does not also time the node's first
/// verification of its password.
async fn warm_credentials(control: &mut Conn, auth: &HeaderValue) -> anyhow::Result<()> {
    let (status, body) = control
        .send(&Req::get(AUTHENTICATE_PATH, Some(auth.clone())))
        .await?;
    if !status.is_success() {
        anyhow::bail!(
            "{BENCH_USER} does not authenticate on a storm node: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

/// The storm of the run: `rounds` rounds against `tessera`, announced.
pub(super) async fn run_storm(tessera: &Tessera, rounds: usize) -> anyhow::Result<StormReport> {
    eprintln!(
        "==> refresh storm: {STORM_WIDTH} concurrent refreshes of one refresh token, {rounds} rounds"
    );
    storm(
        &[tessera.addr()],
        rounds,
        &tessera.bench,
        &tessera.password_grant,
    )
    .await
}

/// How to start more nodes like the main server, on its store.
pub(super) struct Nodes<'a> {
    pub(super) bin: &'a Path,
    /// Each node's files go into a folder of its own in here.
    pub(super) work: &'a Path,
    pub(super) store: &'a str,
    pub(super) audit_log: bool,
}

/// The storm across nodes: starts `CLUSTER_NODES - 1` more servers on the
/// main one's store (which already holds `bench_user`), storms `rounds`
/// rounds over all of them, and stops the extra ones.
pub(super) async fn run_cluster_storm(
    tessera: &Tessera,
    nodes: &Nodes<'_>,
    rounds: usize,
) -> anyhow::Result<StormReport> {
    eprintln!(
        "==> refresh storm across {CLUSTER_NODES} nodes: starting {} more tessera processes on the same store",
        CLUSTER_NODES - 1
    );
    let mut extra = Vec::with_capacity(CLUSTER_NODES - 1);
    for k in 2..=CLUSTER_NODES {
        let dir = nodes.work.join(format!("node{k}"));
        let flags = fixture::serve_flags(nodes.audit_log, &dir);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        extra.push(fixture::start_server(nodes.bin, &dir, Some(nodes.store), &flags).await?);
    }
    let mut addrs = vec![tessera.addr()];
    addrs.extend(extra.iter().map(|node| node.addr));
    eprintln!(
        "==> refresh storm: {STORM_WIDTH} concurrent refreshes of one refresh token over {CLUSTER_NODES} nodes, {rounds} rounds"
    );
    let report = storm(&addrs, rounds, &tessera.bench, &tessera.password_grant).await;
    for mut node in extra {
        node.stop();
    }
    report
}

/// Where each of `n` connections goes: the addresses in turn.
fn round_robin(addrs: &[SocketAddr], n: usize) -> Vec<SocketAddr> {
    addrs.iter().copied().cycle().take(n).collect()
}

impl StormReport {
    /// The table's line for the storm.
    pub(super) fn row(&self) -> Row {
        let across = if self.nodes > 1 {
            format!(", {} nodes", self.nodes)
        } else {
            String::new()
        };
        Row {
            scenario: format!("refresh storm, {} × 1 token{across}", self.width),
            req_per_s: None,
            latency: Some(self.latency),
            requests: (self.width * self.rounds) as u64,
            errors: self.failures.len() as u64,
            notes: vec![
                format!(
                    "{}/{} rounds byte-identical",
                    self.rounds_identical, self.rounds
                ),
                format!("wrote once: {}", if self.wrote_once { "yes" } else { "NO" }),
                format!(
                    "after a warm-up round (slowest {:.1} ms)",
                    self.warm_up_slowest_ms
                ),
            ],
            ..Default::default()
        }
    }
}

/// `rounds` times: mint a pair on the first node, then refresh its refresh
/// token from `STORM_WIDTH` connections at once, spread round-robin over
/// `addrs`. Every answer must be the byte-identical pair, its access token
/// must authenticate on every node, and the nodes together must have
/// rotated (written) once.
async fn storm(
    addrs: &[SocketAddr],
    rounds: usize,
    auth: &HeaderValue,
    password_grant: &Req,
) -> anyhow::Result<StormReport> {
    let mut conns = Vec::with_capacity(STORM_WIDTH);
    for addr in round_robin(addrs, STORM_WIDTH) {
        conns.push(Conn::open(addr).await?);
    }
    let mut controls = Vec::with_capacity(addrs.len());
    for &addr in addrs {
        let mut control = Conn::open(addr).await?;
        warm_credentials(&mut control, auth).await?;
        controls.push(control);
    }
    let mut storm = Storm {
        conns,
        controls,
        hist: new_histogram(),
        failures: Vec::new(),
        identical: 0,
        authenticates: 0,
        rotated_once: Some(0),
        slowest: Vec::with_capacity(rounds),
    };
    // Like every scenario, the storm is measured after a warm-up: the
    // first refresh a node runs also prepares its statements and fills its
    // connection pool. The warm-up round is checked like the others; its
    // slowest answer is reported apart.
    storm.round(0, auth, password_grant).await?;
    let warm_up_slowest_ms = storm.measured_from_here();
    for round in 1..=rounds {
        storm.round(round, auth, password_grant).await?;
    }
    Ok(storm.report(rounds, warm_up_slowest_ms))
}

/// The connections of a storm and what its rounds found so far.
struct Storm {
    conns: Vec<Conn>,
    /// One connection to each node; pairs are minted through the first.
    controls: Vec<Conn>,
    hist: Histogram<u64>,
    failures: Vec<String>,
    /// Rounds whose answers were all the same pair.
    identical: usize,
    /// Rounds whose pair's access token authenticated.
    authenticates: usize,
    /// Rounds in which the `rotated` counter moved by one; `None` without metrics.
    rotated_once: Option<usize>,
    /// The slowest answer of each round so far, in ms.
    slowest: Vec<f64>,
}

impl Storm {
    /// Mints a pair and refreshes it from every connection at once.
    async fn round(
        &mut self,
        round: usize,
        auth: &HeaderValue,
        password_grant: &Req,
    ) -> anyhow::Result<()> {
        let (status, body) = self.controls[0].send(password_grant).await?;
        let (_, refresh_token) = pair_of(&body)
            .with_context(|| format!("minting the storm's pair failed: HTTP {status}"))?;
        let before = rotated_total(&mut self.controls).await;
        let req = Req::json(
            Method::POST,
            TOKEN_PATH,
            Some(auth.clone()),
            &json!({ "grant_type": "refresh_token", "refresh_token": refresh_token }),
        );
        let (pairs, round_failures) = self.fire(round, &req).await?;
        let all_same = round_failures == 0 && pairs.iter().all(|p| p.is_some() && *p == pairs[0]);
        if all_same {
            self.identical += 1;
            let (access, _) = pairs[0].clone().expect("checked above");
            let authenticate = Req::get(AUTHENTICATE_PATH, Some(bearer(&access)));
            let mut everywhere = true;
            for (k, control) in self.controls.iter_mut().enumerate() {
                let (status, _) = control.send(&authenticate).await?;
                if !status.is_success() {
                    everywhere = false;
                    self.failures.push(format!(
                        "round {round}: the storm's access token got HTTP {status} from _authenticate on node {}",
                        k + 1
                    ));
                }
            }
            self.authenticates += usize::from(everywhere);
        } else if round_failures == 0 {
            let distinct: std::collections::HashSet<_> = pairs.iter().collect();
            self.failures.push(format!(
                "round {round}: {} distinct answers to one refresh token",
                distinct.len()
            ));
        }
        let after = rotated_total(&mut self.controls).await;
        self.rotated_once = match (self.rotated_once, before, after) {
            (Some(n), Some(b), Some(a)) => Some(n + usize::from((a - b - 1.0).abs() < 0.5)),
            _ => None,
        };
        Ok(())
    }

    /// Sends `req` from every connection at once: the pair of each 2xx
    /// answer, and how many failed (the first failure is recorded).
    async fn fire(
        &mut self,
        round: usize,
        req: &Req,
    ) -> anyhow::Result<(Vec<Option<(String, String)>>, usize)> {
        let barrier = Arc::new(tokio::sync::Barrier::new(self.conns.len()));
        let mut tasks = Vec::with_capacity(self.conns.len());
        for mut conn in self.conns.drain(..) {
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
        let mut slowest = std::time::Duration::ZERO;
        for task in tasks {
            let (conn, took, result) = task.await?;
            self.conns.push(conn);
            slowest = slowest.max(took);
            self.hist.saturating_record(client::micros(took));
            match result {
                Ok((status, body)) if status.is_success() => pairs.push(pair_of(&body)),
                Ok((status, body)) => {
                    round_failures += 1;
                    if round_failures == 1 {
                        self.failures.push(format!(
                            "round {round}: HTTP {status}: {}",
                            String::from_utf8_lossy(&body)
                        ));
                    }
                }
                Err(e) => {
                    round_failures += 1;
                    if round_failures == 1 {
                        self.failures.push(format!("round {round}: {e:#}"));
                    }
                }
            }
        }
        self.slowest.push(slowest.as_secs_f64() * 1e3);
        Ok((pairs, round_failures))
    }

    /// Forgets the rounds so far (a warm-up) but their failures; the
    /// slowest answer they had, in ms.
    fn measured_from_here(&mut self) -> f64 {
        let slowest = self.slowest.drain(..).fold(0.0, f64::max);
        self.hist.reset();
        self.identical = 0;
        self.authenticates = 0;
        self.rotated_once = self.rotated_once.map(|_| 0);
        slowest
    }

    /// The verdict on `rounds` rounds, also on stderr.
    fn report(mut self, rounds: usize, warm_up_slowest_ms: f64) -> StormReport {
        let (identical, authenticates, rotated_once) =
            (self.identical, self.authenticates, self.rotated_once);
        let wrote_once = identical == rounds
            && authenticates == rounds
            && rotated_once.is_none_or(|n| n == rounds);
        if let Some(n) = rotated_once.filter(|&n| n != rounds) {
            self.failures.push(format!(
                "the rotated-refresh counter (summed over the nodes) moved by one in only {n} of {rounds} rounds"
            ));
        }
        let latency = Latency::of(&self.hist);
        eprintln!(
            "    {identical}/{rounds} rounds byte-identical, {authenticates}/{rounds} access tokens authenticate, rotated once: {}, p99 {:.2} ms",
            rotated_once.map(|n| format!("{n}/{rounds}")).unwrap_or_else(|| "unknown (no metrics)".into()),
            latency.p99_ms
        );
        let slowest: Vec<String> = self.slowest.iter().map(|ms| format!("{ms:.1}")).collect();
        eprintln!(
            "    slowest answer of each round (ms): {}; of the warm-up round: {warm_up_slowest_ms:.1}",
            slowest.join(", ")
        );
        StormReport {
            width: STORM_WIDTH,
            nodes: self.controls.len(),
            rounds,
            rounds_identical: identical,
            rounds_access_authenticates: authenticates,
            rounds_rotated_once: rotated_once,
            wrote_once,
            latency,
            warm_up_slowest_ms,
            slowest_per_round_ms: self.slowest,
            failures: self.failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    #[test]
    fn connections_go_to_the_nodes_in_turn() {
        let addrs: Vec<SocketAddr> = ["127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let spread = super::round_robin(&addrs, super::STORM_WIDTH);
        assert_eq!(spread.len(), 256);
        assert_eq!(&spread[..4], &[addrs[0], addrs[1], addrs[2], addrs[0]]);
        for addr in &addrs {
            let n = spread.iter().filter(|a| *a == addr).count();
            assert!((85..=86).contains(&n), "{addr}: {n} connections");
        }
        assert_eq!(super::round_robin(&addrs[..1], 3), vec![addrs[0]; 3]);
    }
}
