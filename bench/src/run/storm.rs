//! The refresh storm: many connections refresh one refresh token at once.

use std::net::SocketAddr;
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

use super::fixture::{Tessera, AUTHENTICATE_PATH, METRICS_PATH, TOKEN_PATH};

/// Concurrent refreshes of one refresh token in the storm.
pub(super) const STORM_WIDTH: usize = 256;

#[derive(Debug, Serialize)]
pub(super) struct StormReport {
    pub(super) width: usize,
    pub(super) rounds: usize,
    pub(super) rounds_identical: usize,
    pub(super) rounds_access_authenticates: usize,
    /// Rounds in which the server's `rotated` refresh counter moved by exactly one.
    pub(super) rounds_rotated_once: Option<usize>,
    pub(super) wrote_once: bool,
    pub(super) latency: Latency,
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

/// The storm of the run: `rounds` rounds against `tessera`, announced.
pub(super) async fn run_storm(tessera: &Tessera, rounds: usize) -> anyhow::Result<StormReport> {
    eprintln!(
        "==> refresh storm: {STORM_WIDTH} concurrent refreshes of one refresh token, {rounds} rounds"
    );
    storm(
        tessera.addr(),
        rounds,
        &tessera.bench,
        &tessera.password_grant,
    )
    .await
}

impl StormReport {
    /// The table's line for the storm.
    pub(super) fn row(&self) -> Row {
        Row {
            scenario: format!("refresh storm, {} × 1 token", self.width),
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
            ],
            ..Default::default()
        }
    }
}

/// `rounds` times: mint a pair, then refresh its refresh token from
/// `STORM_WIDTH` connections at once. Every answer must be the byte-identical
/// pair, its access token must authenticate, and the server must have
/// rotated (written) once.
async fn storm(
    addr: SocketAddr,
    rounds: usize,
    auth: &HeaderValue,
    password_grant: &Req,
) -> anyhow::Result<StormReport> {
    let mut storm = Storm {
        conns: client::open_many(addr, STORM_WIDTH).await?,
        control: Conn::open(addr).await?,
        hist: new_histogram(),
        failures: Vec::new(),
        identical: 0,
        authenticates: 0,
        rotated_once: Some(0),
    };
    for round in 1..=rounds {
        storm.round(round, auth, password_grant).await?;
    }
    Ok(storm.report(rounds))
}

/// The connections of a storm and what its rounds found so far.
struct Storm {
    conns: Vec<Conn>,
    control: Conn,
    hist: Histogram<u64>,
    failures: Vec<String>,
    /// Rounds whose answers were all the same pair.
    identical: usize,
    /// Rounds whose pair's access token authenticated.
    authenticates: usize,
    /// Rounds in which the `rotated` counter moved by one; `None` without metrics.
    rotated_once: Option<usize>,
}

impl Storm {
    /// Mints a pair and refreshes it from every connection at once.
    async fn round(
        &mut self,
        round: usize,
        auth: &HeaderValue,
        password_grant: &Req,
    ) -> anyhow::Result<()> {
        let (status, body) = self.control.send(password_grant).await?;
        let (_, refresh_token) = pair_of(&body)
            .with_context(|| format!("minting the storm's pair failed: HTTP {status}"))?;
        let before = rotated_count(&mut self.control).await;
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
            let (status, _) = self
                .control
                .send(&Req::get(AUTHENTICATE_PATH, Some(bearer(&access))))
                .await?;
            if status.is_success() {
                self.authenticates += 1;
            } else {
                self.failures.push(format!(
                    "round {round}: the storm's access token got HTTP {status} from _authenticate"
                ));
            }
        } else if round_failures == 0 {
            let distinct: std::collections::HashSet<_> = pairs.iter().collect();
            self.failures.push(format!(
                "round {round}: {} distinct answers to one refresh token",
                distinct.len()
            ));
        }
        let after = rotated_count(&mut self.control).await;
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
        for task in tasks {
            let (conn, took, result) = task.await?;
            self.conns.push(conn);
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
        Ok((pairs, round_failures))
    }

    /// The verdict on `rounds` rounds, also on stderr.
    fn report(mut self, rounds: usize) -> StormReport {
        let (identical, authenticates, rotated_once) =
            (self.identical, self.authenticates, self.rotated_once);
        let wrote_once = identical == rounds
            && authenticates == rounds
            && rotated_once.is_none_or(|n| n == rounds);
        if let Some(n) = rotated_once.filter(|&n| n != rounds) {
            self.failures.push(format!(
                "the server's rotated-refresh counter moved by one in only {n} of {rounds} rounds"
            ));
        }
        let latency = Latency::of(&self.hist);
        eprintln!(
            "    {identical}/{rounds} rounds byte-identical, {authenticates}/{rounds} access tokens authenticate, rotated once: {}, p99 {:.2} ms",
            rotated_once.map(|n| format!("{n}/{rounds}")).unwrap_or_else(|| "unknown (no metrics)".into()),
            latency.p99_ms
        );
        StormReport {
            width: STORM_WIDTH,
            rounds,
            rounds_identical: identical,
            rounds_access_authenticates: authenticates,
            rounds_rotated_once: rotated_once,
            wrote_once,
            latency,
            failures: self.failures,
        }
    }
}
