//! The load generator: one keep-alive HTTP/1.1 connection per task (hyper 1),
//! closed loop, latencies in an HDR histogram.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::TcpStream;

use crate::profile::Profile;

/// One request to send: everything pre-built so that building it is cheap.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: Method,
    pub uri: Uri,
    pub auth: Option<HeaderValue>,
    pub body: Option<Bytes>,
    /// Sent as `Content-Type` when there is a body.
    pub content_type: HeaderValue,
    /// Sent as `X-Forwarded-For` (the guessing benchmark poses as many
    /// clients behind a trusted proxy).
    pub forwarded_for: Option<HeaderValue>,
}

fn json_type() -> HeaderValue {
    HeaderValue::from_static("application/json")
}

fn form_type() -> HeaderValue {
    HeaderValue::from_static("application/x-www-form-urlencoded")
}

impl Req {
    pub fn get(path: &'static str, auth: Option<HeaderValue>) -> Self {
        Self {
            method: Method::GET,
            uri: Uri::from_static(path),
            auth,
            body: None,
            content_type: json_type(),
            forwarded_for: None,
        }
    }

    /// A request without a body to any URI (path and query).
    pub fn bare(method: Method, uri: Uri) -> Self {
        Self {
            method,
            uri,
            auth: None,
            body: None,
            content_type: json_type(),
            forwarded_for: None,
        }
    }

    pub fn json(
        method: Method,
        path: &'static str,
        auth: Option<HeaderValue>,
        body: &serde_json::Value,
    ) -> Self {
        Self {
            method,
            uri: Uri::from_static(path),
            auth,
            body: Some(Bytes::from(body.to_string())),
            content_type: json_type(),
            forwarded_for: None,
        }
    }

    /// An `application/x-www-form-urlencoded` request, as OAuth 2.0's token
    /// and introspection endpoints expect.
    pub fn form(
        method: Method,
        path: &'static str,
        auth: Option<HeaderValue>,
        fields: &[(&str, &str)],
    ) -> Self {
        let body = fields
            .iter()
            .map(|(name, value)| format!("{}={}", form_encode(name), form_encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        Self {
            method,
            uri: Uri::from_static(path),
            auth,
            body: Some(Bytes::from(body)),
            content_type: form_type(),
            forwarded_for: None,
        }
    }
}

/// Encodes one name or value of an `application/x-www-form-urlencoded`
/// body: letters, digits and `*-._` stay, a space becomes `+`, every other
/// byte of the UTF-8 text becomes `%XX`.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

impl Req {
    /// The same request, as from `ip` behind a trusted proxy.
    pub fn forwarded_for(mut self, ip: &str) -> Self {
        self.forwarded_for = Some(HeaderValue::from_str(ip).expect("an address is a valid header"));
        self
    }
}

/// A keep-alive connection that reconnects after a failure.
pub struct Conn {
    addr: SocketAddr,
    host: HeaderValue,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let mut conn = Self {
            addr,
            host: HeaderValue::from_str(&addr.to_string()).expect("an address is a valid header"),
            sender: None,
        };
        conn.connect().await?;
        Ok(conn)
    }

    async fn connect(&mut self) -> anyhow::Result<()> {
        let stream = TcpStream::connect(self.addr)
            .await
            .with_context(|| format!("cannot connect to {}", self.addr))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        self.sender = Some(sender);
        Ok(())
    }

    /// Sends `req` and reads the whole response.
    pub async fn send(&mut self, req: &Req) -> anyhow::Result<(StatusCode, Bytes)> {
        let result = self.try_send(req).await;
        if result.is_err() {
            // Start from a fresh connection next time.
            self.sender = None;
        }
        result
    }

    async fn try_send(&mut self, req: &Req) -> anyhow::Result<(StatusCode, Bytes)> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.connect().await?;
        }
        let sender = self.sender.as_mut().expect("connected above");
        sender.ready().await?;
        let mut builder = Request::builder()
            .method(req.method.clone())
            .uri(req.uri.clone())
            .header(HOST, self.host.clone());
        if let Some(auth) = &req.auth {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        if let Some(ip) = &req.forwarded_for {
            builder = builder.header("x-forwarded-for", ip.clone());
        }
        let body = match &req.body {
            Some(b) => {
                builder = builder.header(CONTENT_TYPE, req.content_type.clone());
                Full::new(b.clone())
            }
            None => Full::new(Bytes::new()),
        };
        let response = sender.send_request(builder.body(body)?).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// Opens `n` connections to `addr`.
pub async fn open_many(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<Conn>> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(Conn::open(addr).await?);
    }
    Ok(conns)
}

/// Produces the next request of a scenario, or `None` when a finite pool of
/// inputs is used up.
pub type NextReq = Arc<dyn Fn(&mut StdRng) -> Option<Req> + Send + Sync>;

#[derive(Clone, Copy, Debug)]
pub struct LoadSettings {
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Sample the server with `perf` while the load runs (`--profile`).
    pub profile: bool,
}

pub fn new_histogram() -> Histogram<u64> {
    // Microseconds, from 1 µs to 10 minutes, 3 significant figures.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// What one timed run measured.
pub struct LoadResult {
    /// Latency (µs) of every request completed inside the measured window.
    pub hist: Histogram<u64>,
    /// 2xx responses completed inside the window.
    pub ok: u64,
    /// Every answer received, warm-up included.
    pub answered: u64,
    /// Length of the measured window.
    pub window: Duration,
    /// Non-2xx answers and transport failures over the whole run (warm-up
    /// included), by kind.
    pub errors: BTreeMap<String, u64>,
    /// Set when the input pool ran out: how long into the measured window.
    pub exhausted_after: Option<Duration>,
    /// Share of the machine's CPU that other processes used meanwhile.
    pub others_cpu_share: Option<f64>,
    /// CPU time the server spent per answered request, warm-up included.
    pub server_cpu_us_per_req: Option<f64>,
    /// The same by the server's thread names.
    pub server_cpu_by_thread: BTreeMap<String, f64>,
    /// Where that CPU went, from `perf` (`--profile`).
    pub server_profile: Option<Profile>,
}

impl LoadResult {
    pub fn throughput(&self) -> f64 {
        let secs = self.window.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

struct TaskOutcome {
    hist: Histogram<u64>,
    ok: u64,
    answered: u64,
    errors: BTreeMap<String, u64>,
    exhausted: bool,
    last_done: Option<Instant>,
}

/// Looks at the body of a 2xx answer: `Err(kind)` turns it into a failure
/// counted under `kind`. For servers whose 2xx alone does not prove success
/// (an introspection endpoint answers 200 `{"active":false}` for an unknown
/// token).
pub type Check = Arc<dyn Fn(&Bytes) -> Result<(), &'static str> + Send + Sync>;

/// Runs a closed loop on `settings.connections` connections: warm-up, then
/// the measured window. Only requests that complete inside the window count;
/// with `check`, a 2xx answer counts only if its body passes.
pub async fn run_load(
    addr: SocketAddr,
    settings: LoadSettings,
    next: NextReq,
    check: Option<Check>,
) -> anyhow::Result<LoadResult> {
    let conns = open_many(addr, settings.connections).await?;
    let start = Instant::now();
    let warm_end = start + settings.warmup;
    let end = warm_end + settings.duration;
    let mut tasks = Vec::with_capacity(conns.len());
    for mut conn in conns {
        let next = Arc::clone(&next);
        let check = check.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::from_entropy();
            let mut out = TaskOutcome {
                hist: new_histogram(),
                ok: 0,
                answered: 0,
                errors: BTreeMap::new(),
                exhausted: false,
                last_done: None,
            };
            loop {
                if Instant::now() >= end {
                    break;
                }
                let Some(req) = next(&mut rng) else {
                    out.exhausted = true;
                    break;
                };
                let t0 = Instant::now();
                let result = conn.send(&req).await;
                let t1 = Instant::now();
                out.answered += u64::from(result.is_ok());
                let in_window = t1 >= warm_end && t1 <= end;
                let success = match &result {
                    Ok((status, body)) if status.is_success() => match &check {
                        None => true,
                        Some(check) => match check(body) {
                            Ok(()) => true,
                            Err(kind) => {
                                *out.errors
                                    .entry(format!("HTTP {} but {kind}", status.as_u16()))
                                    .or_default() += 1;
                                false
                            }
                        },
                    },
                    Ok((status, _)) => {
                        *out.errors
                            .entry(format!("HTTP {}", status.as_u16()))
                            .or_default() += 1;
                        false
                    }
                    Err(e) => {
                        *out.errors
                            .entry(format!("transport: {}", short_error(e)))
                            .or_default() += 1;
                        false
                    }
                };
                if in_window {
                    out.hist.saturating_record(micros(t1 - t0));
                    if success {
                        out.ok += 1;
                    }
                    out.last_done = Some(t1);
                }
                if result.is_err() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            out
        }));
    }
    let mut hist = new_histogram();
    let mut ok = 0;
    let mut answered = 0;
    let mut errors = BTreeMap::new();
    let mut exhausted = false;
    let mut last_done: Option<Instant> = None;
    for task in tasks {
        let out = task.await.context("a load task panicked")?;
        hist.add(&out.hist).expect("same bounds");
        ok += out.ok;
        answered += out.answered;
        for (k, v) in out.errors {
            *errors.entry(k).or_default() += v;
        }
        exhausted |= out.exhausted;
        last_done = last_done.max(out.last_done);
    }
    let window_end = if exhausted {
        last_done.unwrap_or(warm_end).min(end)
    } else {
        end
    };
    let window = window_end.saturating_duration_since(warm_end);
    Ok(LoadResult {
        hist,
        ok,
        answered,
        window,
        errors,
        exhausted_after: exhausted.then_some(window),
        others_cpu_share: None,
        server_cpu_us_per_req: None,
        server_cpu_by_thread: BTreeMap::new(),
        server_profile: None,
    })
}

pub type MakeReq = Arc<dyn Fn(usize) -> Req + Send + Sync>;
pub type Extract = Arc<dyn Fn(&Bytes) -> Option<String> + Send + Sync>;

/// Sends `count` requests made by `make(i)` over `connections` connections
/// and returns what `extract` takes from each 2xx body. Fails if any request
/// fails. Used to pre-mint pools of tokens before a timed phase.
pub async fn collect(
    addr: SocketAddr,
    connections: usize,
    count: usize,
    make: MakeReq,
    extract: Extract,
) -> anyhow::Result<Vec<String>> {
    let conns = open_many(addr, connections.min(count.max(1))).await?;
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for mut conn in conns {
        let (next, make, extract) = (Arc::clone(&next), Arc::clone(&make), Arc::clone(&extract));
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok(got);
                }
                let (status, body) = conn.send(&make(i)).await?;
                if !status.is_success() {
                    anyhow::bail!("HTTP {status}: {}", String::from_utf8_lossy(&body));
                }
                got.push(extract(&body).context("the response lacks the expected field")?);
            }
        }));
    }
    let mut all = Vec::with_capacity(count);
    for task in tasks {
        all.extend(task.await.context("a mint task panicked")??);
    }
    Ok(all)
}

pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn short_error(e: &anyhow::Error) -> String {
    let text = format!("{e:#}");
    text.chars().take(80).collect()
}

/// A `Basic` authorization header value.
pub fn basic(username: &str, password: &str) -> HeaderValue {
    use base64::Engine;
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
    HeaderValue::from_str(&format!("Basic {encoded}")).expect("base64 is a valid header")
}

pub fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).expect("a token is a valid header")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_are_url_encoded() {
        let req = Req::form(
            Method::POST,
            "/token",
            None,
            &[("grant_type", "refresh_token"), ("token", "a b+c/d=é_-.*~")],
        );
        assert_eq!(
            req.body.as_deref(),
            Some(&b"grant_type=refresh_token&token=a+b%2Bc%2Fd%3D%C3%A9_-.*%7E"[..])
        );
        assert_eq!(req.content_type, "application/x-www-form-urlencoded");
    }
}
