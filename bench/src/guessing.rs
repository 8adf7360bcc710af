//! `tessera-bench guessing`: password guessing and user enumeration.
//!
//! Starts Tessera with `--trusted-proxies 127.0.0.1/32` so that each
//! request can pose as its own client through `X-Forwarded-For`, then
//! measures:
//!
//! 1. the median time of a Basic `_authenticate` for an unknown user, a
//!    disabled user, a wrong password and the right password, with the
//!    verified-credentials cache cold (each right password is a user's
//!    first success);
//! 2. a legitimate password grant's latency (a fresh user each time, so
//!    its password is really verified) unloaded and while a flood of wrong
//!    guesses runs: from one source over many accounts, with the default
//!    budget and with the budget lifted, and from many sources;
//! 3. how many guesses per second one source and one account actually get
//!    verified, from the answers and `tessera_authentications_total`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use hyper::header::HeaderValue;
use hyper::{Method, StatusCode};
use serde_json::json;

use crate::args::GuessArgs;
use crate::client::{basic, Conn, Req};
use crate::process::{self, ChildServer, BOOTSTRAP_PASSWORD};

const PASSWORD: &str = "guessing-bench-password";
const LEGIT_SOURCE: &str = "10.200.0.1";
const ATTACKER: &str = "192.0.2.66";

struct Server {
    child: ChildServer,
    elastic: HeaderValue,
}

impl Server {
    async fn start(
        bin: &std::path::Path,
        dir: &std::path::Path,
        name: &str,
        flags: &[&str],
    ) -> anyhow::Result<Self> {
        let data = dir.join(name);
        let mut all = vec!["--trusted-proxies", "127.0.0.1/32"];
        all.extend_from_slice(flags);
        let mut child =
            ChildServer::tessera_with(bin, &data, None, dir.join(format!("{name}.log")), &all)?;
        child
            .wait_ready("/_tessera/ready", Duration::from_secs(60))
            .await?;
        Ok(Self {
            child,
            elastic: basic("elastic", BOOTSTRAP_PASSWORD),
        })
    }

    async fn put_user(&self, conn: &mut Conn, name: &str, enabled: bool) -> anyhow::Result<()> {
        let path: &'static str = Box::leak(format!("/_security/user/{name}").into_boxed_str());
        let (status, body) = conn
            .send(&Req::json(
                Method::PUT,
                path,
                Some(self.elastic.clone()),
                &json!({ "password": PASSWORD, "roles": ["superuser"], "enabled": enabled }),
            ))
            .await?;
        if !status.is_success() {
            bail!(
                "creating {name}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(())
    }

    /// Creates `n` enabled users for legitimate logins; returns their
    /// names, each to be used once (its first login is really verified).
    async fn legit_users(
        &self,
        conn: &mut Conn,
        n: usize,
    ) -> anyhow::Result<std::vec::IntoIter<String>> {
        let names: Vec<String> = (0..n).map(|i| format!("legit-{i}")).collect();
        for name in &names {
            self.put_user(conn, name, true).await?;
        }
        Ok(names.into_iter())
    }

    fn login(&self, user: &str) -> Req {
        Req::json(
            Method::POST,
            "/_security/oauth2/token",
            Some(self.elastic.clone()),
            &json!({ "grant_type": "password", "username": user, "password": PASSWORD }),
        )
        .forwarded_for(LEGIT_SOURCE)
    }

    /// `tessera_authentications_total` of the native realm by outcome.
    async fn counts(&self, conn: &mut Conn) -> anyhow::Result<Vec<(String, f64)>> {
        // The metrics on the API port need the `monitor` privilege.
        let (_, body) = conn
            .send(&Req::get("/_tessera/metrics", Some(self.elastic.clone())))
            .await?;
        let text = String::from_utf8_lossy(&body);
        Ok(text
            .lines()
            .filter(|l| l.starts_with("tessera_authentications_total{realm_type=\"native\""))
            .filter_map(|l| {
                let outcome = l.split("outcome=\"").nth(1)?.split('"').next()?;
                let value = l.rsplit(' ').next()?.parse().ok()?;
                Some((outcome.to_owned(), value))
            })
            .collect())
    }
}

fn authenticate(user: &str, password: &str, source: &str) -> Req {
    Req::get("/_security/_authenticate", Some(basic(user, password))).forwarded_for(source)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn timed(conn: &mut Conn, req: &Req, want: StatusCode) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let (status, body) = conn.send(req).await?;
    let took = started.elapsed();
    if status != want {
        bail!(
            "{} {}: expected {want}, got {status}: {}",
            req.method,
            req.uri,
            String::from_utf8_lossy(&body)
        );
    }
    Ok(took)
}

/// Names the n-th guess's source address or account.
type Namer = fn(u64) -> String;

/// What a flood got back.
#[derive(Default)]
struct FloodCounts {
    sent: AtomicU64,
    refused: AtomicU64,
    throttled: AtomicU64,
}

/// Floods wrong guesses on `conns` connections until `stop`; `source(n)`
/// and `account(n)` name the n-th guess's source and account.
fn flood(
    addr: std::net::SocketAddr,
    conns: usize,
    stop: Arc<AtomicBool>,
    counts: Arc<FloodCounts>,
    source: Namer,
    account: Namer,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..conns)
        .map(|c| {
            let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
            tokio::spawn(async move {
                let Ok(mut conn) = Conn::open(addr).await else {
                    return;
                };
                let mut n = c as u64;
                while !stop.load(Ordering::Relaxed) {
                    let req = authenticate(&account(n), &format!("guess-{n}"), &source(n));
                    n += conns as u64;
                    counts.sent.fetch_add(1, Ordering::Relaxed);
                    match conn.send(&req).await {
                        Ok((StatusCode::UNAUTHORIZED, _)) => {
                            counts.refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok((StatusCode::TOO_MANY_REQUESTS, _)) => {
                            counts.throttled.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
            })
        })
        .collect()
}

/// Median legitimate login while `flood` runs (or unloaded if `None`).
async fn logins_under(
    server: &Server,
    users: &mut impl Iterator<Item = String>,
    samples: usize,
    flood_with: Option<(Namer, Namer)>,
    conns: usize,
) -> anyhow::Result<(Duration, Option<(f64, u64, u64)>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(FloodCounts::default());
    let tasks = match flood_with {
        Some((source, account)) => flood(
            server.child.addr,
            conns,
            Arc::clone(&stop),
            Arc::clone(&counts),
            source,
            account,
        ),
        None => Vec::new(),
    };
    let started = Instant::now();
    if !tasks.is_empty() {
        // Let the flood reach its steady state (the budget's burst spent).
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let mut conn = Conn::open(server.child.addr).await?;
    let mut took = Vec::new();
    for _ in 0..samples {
        let user = users.next().expect("enough users");
        took.push(timed(&mut conn, &server.login(&user), StatusCode::OK).await?);
    }
    stop.store(true, Ordering::Relaxed);
    let secs = started.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    let flood_stats = flood_with.map(|_| {
        (
            counts.sent.load(Ordering::Relaxed) as f64 / secs,
            counts.refused.load(Ordering::Relaxed),
            counts.throttled.load(Ordering::Relaxed),
        )
    });
    Ok((median(took), flood_stats))
}

fn report(label: &str, d: Duration, unloaded: Duration, stats: Option<(f64, u64, u64)>) {
    let (rate, refused, throttled) = stats.unwrap_or_default();
    println!(
        "  {label:<48}  {} ({:.2}x unloaded); flood {rate:.0} req/s: {refused} answered 401, {throttled} answered 429",
        ms(d),
        d.as_secs_f64() / unloaded.as_secs_f64()
    );
}

pub async fn run(args: GuessArgs) -> anyhow::Result<bool> {
    let bin = process::tessera_binary(!args.no_build)?;
    let work = tempfile::Builder::new()
        .prefix("tessera-guessing-")
        .tempdir()?;
    let samples = args.samples.max(3);
    eprintln!(
        "==> tessera-bench guessing: {samples} samples per figure, {} flood connections",
        args.connections
    );

    // 1. Enumeration medians.
    let server = Server::start(&bin, work.path(), "default", &[]).await?;
    let mut control = Conn::open(server.child.addr).await?;
    for i in 0..samples {
        server
            .put_user(&mut control, &format!("enum-{i}"), true)
            .await?;
    }
    server
        .put_user(&mut control, "enum-disabled", false)
        .await?;
    let (mut unknown, mut disabled, mut wrong, mut right) = (vec![], vec![], vec![], vec![]);
    let refused = StatusCode::UNAUTHORIZED;
    for i in 0..samples {
        // Each request poses as its own source: the budget never interferes.
        let src = |k: usize| format!("10.{k}.{}.{}", i / 250, i % 250 + 1);
        let r = authenticate(&format!("nobody-{i}"), &format!("pw-{i}"), &src(1));
        unknown.push(timed(&mut control, &r, refused).await?);
        let r = authenticate("enum-disabled", &format!("pw-{i}"), &src(2));
        disabled.push(timed(&mut control, &r, refused).await?);
        let r = authenticate(&format!("enum-{i}"), &format!("wrong-{i}"), &src(3));
        wrong.push(timed(&mut control, &r, refused).await?);
        let r = authenticate(&format!("enum-{i}"), PASSWORD, &src(4));
        right.push(timed(&mut control, &r, StatusCode::OK).await?);
    }
    println!("\nBasic _authenticate, credential cache cold, medians of {samples}:");
    println!("  unknown user     {}", ms(median(unknown)));
    println!("  disabled user    {}", ms(median(disabled)));
    println!("  wrong password   {}", ms(median(wrong)));
    println!("  right password   {}", ms(median(right)));

    // 2. Legitimate logins, unloaded and under floods.
    let legit_count = samples * 4;
    let mut users = server.legit_users(&mut control, legit_count).await?;
    let conns = args.connections;
    let (unloaded, _) = logins_under(&server, &mut users, samples, None, conns).await?;
    println!("\nLegitimate password grant (fresh user each time), median of {samples}:");
    println!(
        "  unloaded                                          {}",
        ms(unloaded)
    );
    let one_source: Namer = |_| ATTACKER.to_owned();
    let many_sources: Namer =
        |n| format!("172.{}.{}.{}", 16 + (n >> 16) % 16, (n >> 8) % 256, n % 256);
    let many_accounts: Namer = |n| format!("victim-{n}");
    let (d, s) = logins_under(
        &server,
        &mut users,
        samples,
        Some((one_source, many_accounts)),
        conns,
    )
    .await?;
    report(
        "flood, one source, many accounts, default budget",
        d,
        unloaded,
        s,
    );
    drop(server);

    let lifted = Server::start(
        &bin,
        work.path(),
        "lifted",
        &[
            "--source-failure-burst",
            "10000000",
            "--source-failure-rate",
            "1000000",
        ],
    )
    .await?;
    let mut control = Conn::open(lifted.child.addr).await?;
    let mut users = lifted.legit_users(&mut control, legit_count).await?;
    let (base, _) = logins_under(&lifted, &mut users, samples, None, conns).await?;
    println!(
        "  unloaded (budget lifted)                          {}",
        ms(base)
    );
    let (d, s) = logins_under(
        &lifted,
        &mut users,
        samples,
        Some((one_source, many_accounts)),
        conns,
    )
    .await?;
    report(
        "flood, one source, many accounts, budget lifted",
        d,
        base,
        s,
    );
    let fresh_accounts: Namer = |n| format!("botnet-victim-{n}");
    let (d, s) = logins_under(
        &lifted,
        &mut users,
        samples,
        Some((many_sources, fresh_accounts)),
        conns,
    )
    .await?;
    report("flood, many sources, many accounts (botnet)", d, base, s);
    drop(lifted);

    // 3. Verified guesses per second: per source (default budget) and per
    // account (many sources, so the budget never interferes).
    let server = Server::start(&bin, work.path(), "rates", &[]).await?;
    let mut control = Conn::open(server.child.addr).await?;
    server.put_user(&mut control, "target", true).await?;
    let secs = args.flood_secs.max(1.0);
    let run_flood = |source: Namer, account: Namer| {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(FloodCounts::default());
        let tasks = flood(
            server.child.addr,
            conns,
            Arc::clone(&stop),
            Arc::clone(&counts),
            source,
            account,
        );
        (stop, counts, tasks)
    };
    let (stop, counts, tasks) = run_flood(one_source, many_accounts);
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let answered = counts.refused.load(Ordering::Relaxed);
    println!("\nOne source, {secs:.0} s of guesses over many accounts (default budget: burst 100, 10/s):");
    println!(
        "  {} requests, {answered} verified (401), {} refused with 429: {:.1} verified/s overall, {:.1}/s after the burst",
        counts.sent.load(Ordering::Relaxed),
        counts.throttled.load(Ordering::Relaxed),
        answered as f64 / secs,
        (answered.saturating_sub(100)) as f64 / secs
    );
    let before = server.counts(&mut control).await?;
    let (stop, counts, tasks) = run_flood(many_sources, |_| "target".to_owned());
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let after = server.counts(&mut control).await?;
    let delta = |outcome: &str| {
        let get = |v: &[(String, f64)]| {
            v.iter()
                .find(|(o, _)| o == outcome)
                .map_or(0.0, |(_, n)| *n)
        };
        get(&after) - get(&before)
    };
    println!("One account, {secs:.0} s of guesses from many sources:");
    println!(
        "  {} requests, {} verified (wrong password), {} refused unverified while locked: {:.2} verified/s",
        counts.sent.load(Ordering::Relaxed),
        delta("invalid_credentials"),
        delta("locked"),
        delta("invalid_credentials") / secs
    );
    Ok(true)
}
