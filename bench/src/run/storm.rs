//! The refresh storm: many connections refresh one refresh token at once.

use super::*;

#[derive(Debug, Serialize)]
pub(crate) struct StormReport {
    pub(crate) width: usize,
    pub(crate) rounds: usize,
    pub(crate) rounds_identical: usize,
    pub(crate) rounds_access_authenticates: usize,
    /// Rounds in which the server's `rotated` refresh counter moved by exactly one.
    pub(crate) rounds_rotated_once: Option<usize>,
    pub(crate) wrote_once: bool,
    pub(crate) latency: Latency,
    pub(crate) failures: Vec<String>,
}

pub(crate) fn pair_of(body: &Bytes) -> Option<(String, String)> {
    let v: Value = serde_json::from_slice(body).ok()?;
    Some((
        v.get("access_token")?.as_str()?.to_owned(),
        v.get("refresh_token")?.as_str()?.to_owned(),
    ))
}

pub(crate) async fn rotated_count(control: &mut Conn) -> Option<f64> {
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
pub(crate) async fn storm(
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
