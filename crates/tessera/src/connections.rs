//! The HTTP/1.1 accept loop and what it guards against: clients that send
//! their headers slowly (or never), connections left idle, and more
//! connections than the process has file descriptors.
//!
//! Every connection has a small shared state, one atomic word: *reading its
//! headers* (from its first byte, or from the accept), *busy* (the service
//! has its request) or *idle* (its last response was handed to hyper), with
//! the time it entered that state. A per-connection watchdog closes it when
//! it has been reading headers longer than `header_read_timeout` (a budget
//! for the whole head, not per byte) or idle longer than `idle_timeout`.
//! hyper's own `header_read_timeout` is not used: in hyper 1 its clock also
//! runs while a keep-alive connection waits for its next request, so it
//! cannot tell a slow head from an idle connection.
//!
//! The [`Registry`] of live connections is touched once per connection (at
//! accept and at close), never per request. At the cap the accept loop makes
//! room by closing the connection that has been reading its headers the
//! longest (else the one idle the longest), so a legitimate client still
//! gets in while slow clients hold the other slots.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::Service;
use hyper_util::rt::TokioIo;
use hyper_util::service::{TowerToHyperService, TowerToHyperServiceFuture};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;

/// File descriptors kept back from the connection cap for the store, the
/// runtime, logging and the listener itself.
pub const FD_RESERVE: u64 = 128;

/// The largest request head a connection reads (hyper sets no limit of its
/// own but its ~400 KiB buffer): with thousands of slow connections each
/// filling its buffer, the bound is what keeps memory in check. A larger
/// head gets 431. Elasticsearch's own limit is 16 KiB.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The limits the accept loop enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    /// The configured `max_connections`.
    pub max_connections: usize,
}

/// The connection cap actually enforced: `max_connections`, but no more
/// than the file-descriptor limit leaves after [`FD_RESERVE`]. The soft
/// limit is first raised towards the hard limit as far as the cap needs.
pub fn effective_cap(max_connections: usize) -> (usize, Option<u64>) {
    let wanted = max_connections as u64 + FD_RESERVE;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) => {
            let by_fds = limit.saturating_sub(FD_RESERVE).max(limit / 2).max(1);
            let cap = (max_connections as u64).min(by_fds);
            (usize::try_from(cap).unwrap_or(max_connections), Some(limit))
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the file-descriptor limit; capping connections at max_connections only");
            (max_connections, None)
        }
    }
}

const READING: u64 = 0;
const BUSY: u64 = 1;
const IDLE: u64 = 2;
const STATE_BITS: u32 = 2;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;

/// One connection's state: `since << 2 | state`, `since` in milliseconds
/// from the registry's epoch.
struct Shared {
    word: AtomicU64,
    epoch: Instant,
    /// Woken when the accept loop wants the connection gone.
    evict: Notify,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        Instant::now().duration_since(self.epoch).as_millis() as u64
    }

    fn set(&self, state: u64) {
        self.word
            .store(self.now_ms() << STATE_BITS | state, Ordering::Relaxed);
    }

    /// Busy has no deadline, so no clock is read.
    fn set_busy(&self) {
        self.word.store(BUSY, Ordering::Relaxed);
    }

    fn load(&self) -> (u64, u64) {
        let w = self.word.load(Ordering::Relaxed);
        (w & STATE_MASK, w >> STATE_BITS)
    }

    /// Bytes arrived: an idle connection starts reading its next head.
    fn on_bytes(&self) {
        if self.word.load(Ordering::Relaxed) & STATE_MASK == IDLE {
            self.set(READING);
        }
    }
}

struct Entry {
    shared: Arc<Shared>,
    evicted: bool,
}

#[derive(Default)]
struct Slots {
    next_id: u64,
    open: HashMap<u64, Entry>,
    /// How many of `open` were told to close and have not yet.
    evicted: usize,
}

/// The live connections.
pub struct Registry {
    epoch: Instant,
    cap: usize,
    slots: Mutex<Slots>,
    /// Woken whenever a connection ends.
    freed: Notify,
}

/// Why the watchdog closed a connection.
#[derive(Debug, Clone, Copy)]
enum Closed {
    HeaderTimeout,
    IdleTimeout,
    Evicted,
}

impl Closed {
    fn label(self) -> &'static str {
        match self {
            Closed::HeaderTimeout => "header_timeout",
            Closed::IdleTimeout => "idle_timeout",
            Closed::Evicted => "evicted",
        }
    }
}

impl Registry {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            cap: cap.max(1),
            slots: Mutex::new(Slots::default()),
            freed: Notify::new(),
        })
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// (connections not told to close, connections still open).
    fn counts(&self) -> (usize, usize) {
        let s = self.slots();
        (s.open.len() - s.evicted, s.open.len())
    }

    /// A new connection, reading its headers from now.
    fn register(self: &Arc<Self>) -> Registration {
        let shared = Arc::new(Shared {
            word: AtomicU64::new(0),
            epoch: self.epoch,
            evict: Notify::new(),
        });
        shared.set(READING);
        let mut s = self.slots();
        let id = s.next_id;
        s.next_id += 1;
        s.open.insert(
            id,
            Entry {
                shared: Arc::clone(&shared),
                evicted: false,
            },
        );
        metrics::gauge!("tessera_connections_open").set(s.open.len() as f64);
        Registration {
            id,
            shared,
            registry: Arc::clone(self),
        }
    }

    /// The connection to close to make room: the one reading its headers
    /// the longest, else the one idle the longest. Busy ones are spared.
    fn oldest_waiting(slots: &Slots) -> Option<u64> {
        slots
            .open
            .iter()
            .filter(|(_, e)| !e.evicted)
            .filter_map(|(id, e)| {
                let (state, since) = e.shared.load();
                (state != BUSY).then_some((state == IDLE, since, *id))
            })
            .min()
            .map(|(_, _, id)| id)
    }

    fn has_evictable(&self) -> bool {
        Self::oldest_waiting(&self.slots()).is_some()
    }

    /// Tells the oldest waiting connection to close; false if none waits.
    fn evict_oldest(&self) -> bool {
        let mut s = self.slots();
        let Some(id) = Self::oldest_waiting(&s) else {
            return false;
        };
        s.evicted += 1;
        let entry = s.open.get_mut(&id).expect("the id was just found");
        entry.evicted = true;
        entry.shared.evict.notify_one();
        true
    }
}

/// A connection's place in the registry, given up when dropped.
struct Registration {
    id: u64,
    shared: Arc<Shared>,
    registry: Arc<Registry>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut s = self.registry.slots();
        if let Some(entry) = s.open.remove(&self.id) {
            if entry.evicted {
                s.evicted -= 1;
            }
        }
        metrics::gauge!("tessera_connections_open").set(s.open.len() as f64);
        drop(s);
        self.registry.freed.notify_one();
    }
}

/// The socket, noting the first bytes of each request.
struct Watched {
    stream: TcpStream,
    shared: Arc<Shared>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.shared.on_bytes();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The router, marking the connection busy while it has a request and idle
/// once the response is handed back. Every request carries its
/// connection's peer address (`ConnectInfo<SocketAddr>`), on which the
/// per-source budget of failed authentications is kept
/// (`tessera_http::throttle::ClientIp`).
struct Tracked {
    inner: TowerToHyperService<Router>,
    shared: Arc<Shared>,
    peer: ConnectInfo<SocketAddr>,
}

impl Service<hyper::Request<Incoming>> for Tracked {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    type Future = Answer;

    fn call(&self, mut req: hyper::Request<Incoming>) -> Answer {
        self.shared.set_busy();
        req.extensions_mut().insert(self.peer);
        Answer {
            inner: self.inner.call(req),
            shared: Arc::clone(&self.shared),
        }
    }
}

pin_project_lite::pin_project! {
    /// The router's answer; the connection turns idle when it is ready.
    struct Answer {
        #[pin]
        inner: TowerToHyperServiceFuture<Router, hyper::Request<Incoming>>,
        shared: Arc<Shared>,
    }
}

impl Future for Answer {
    type Output = Result<axum::response::Response, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = std::task::ready!(this.inner.poll(cx));
        this.shared.set(IDLE);
        Poll::Ready(response)
    }
}

/// Resolves when the connection must close: its head took too long, it
/// sat idle too long, or the accept loop needs its slot.
async fn watchdog(shared: &Shared, limits: Limits) -> Closed {
    loop {
        let (state, since) = shared.load();
        let since = shared.epoch + Duration::from_millis(since);
        let deadline = match state {
            READING => since + limits.header_read_timeout,
            IDLE => since + limits.idle_timeout,
            // The request timeout bounds a busy connection; look again
            // later, when it may have gone idle.
            _ => Instant::now() + limits.header_read_timeout,
        };
        if state != BUSY && Instant::now() >= deadline {
            return if state == READING {
                Closed::HeaderTimeout
            } else {
                Closed::IdleTimeout
            };
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            _ = shared.evict.notified() => return Closed::Evicted,
        }
    }
}

/// Serves one connection until it ends, is closed by its watchdog, or
/// `stop` turns true (then a busy connection finishes its request first).
/// With `tls`, the handshake comes first, under the header-read budget: a
/// client that handshakes too slowly is closed like one that sends its
/// head too slowly.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    registration: Registration,
    router: Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut stop: watch::Receiver<bool>,
) {
    let shared = Arc::clone(&registration.shared);
    let watched = Watched {
        stream,
        shared: Arc::clone(&shared),
    };
    let service = Tracked {
        inner: TowerToHyperService::new(router),
        shared: Arc::clone(&shared),
        peer: ConnectInfo(peer),
    };
    match tls {
        None => drive(TokioIo::new(watched), service, &shared, limits, stop).await,
        Some(config) => {
            let handshake = tokio_rustls::TlsAcceptor::from(config).accept(watched);
            let stream = tokio::select! {
                done = handshake => match done {
                    Ok(stream) => stream,
                    Err(e) => {
                        // Scanners, plain HTTP, old clients: not our error.
                        tracing::debug!(error = %e, %peer, "TLS handshake failed");
                        metrics::counter!("tessera_tls_handshake_failures_total").increment(1);
                        return;
                    }
                },
                why = watchdog(&shared, limits) => {
                    closed(why);
                    return;
                }
                _ = stop.wait_for(|s| *s) => return,
            };
            drive(TokioIo::new(stream), service, &shared, limits, stop).await;
        }
    }
    // The socket is closed: the slot is free.
    drop(registration);
}

fn closed(why: Closed) {
    tracing::debug!(reason = why.label(), "closing a connection");
    metrics::counter!("tessera_connections_closed_total", "reason" => why.label()).increment(1);
}

/// Runs hyper on the connection until it ends or must close.
async fn drive<I>(
    io: I,
    service: Tracked,
    shared: &Shared,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let mut conn = pin!(http1::Builder::new()
        .header_read_timeout(None)
        .max_header_size(MAX_HEAD_BYTES)
        .serve_connection(io, service));
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            why = watchdog(shared, limits) => {
                closed(why);
                break;
            }
            _ = stop.wait_for(|s| *s), if !draining => {
                // A connection still reading a head (or idle) has no
                // request in flight: it closes now, not when its
                // header timeout ends. A busy one finishes its request.
                if shared.load().0 != BUSY {
                    break;
                }
                conn.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

/// Whether an accept error concerns only the one connection (the next
/// accept may well succeed at once).
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Whether a warning last given at `last` may be given again (at most one
/// every ten seconds, so an attack cannot flood the log).
fn due(last: &mut Option<Instant>) -> bool {
    let due = last.is_none_or(|at| at.elapsed() >= Duration::from_secs(10));
    if due {
        *last = Some(Instant::now());
    }
    due
}

/// How long the accept loop rests after an error such as EMFILE.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);
/// How long it waits for room before looking again (a busy connection
/// turning idle makes room without waking it).
const ROOM_RECHECK: Duration = Duration::from_millis(50);

/// Accepts and serves connections until `stop` turns true, then lets
/// in-flight requests finish. Returns once every connection has closed or
/// `grace` has passed since the stop. With `tls`, every connection speaks
/// HTTPS with the configuration current when it was accepted.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    registry: Arc<Registry>,
    tls: Option<Arc<crate::tls::Tls>>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    // Sockets told to close may linger a moment; never more than this
    // many over the cap (it stays well inside the reserve).
    let slack = (FD_RESERVE / 4) as usize;
    let mut accept_warned: Option<Instant> = None;
    let mut cap_warned: Option<Instant> = None;
    'accepting: loop {
        // Wait while at the cap with nobody to close, or while too many
        // closed sockets are still on their way out.
        loop {
            let (live, open) = registry.counts();
            if open < registry.cap + slack && (live < registry.cap || registry.has_evictable()) {
                break;
            }
            tokio::select! {
                _ = registry.freed.notified() => {}
                _ = tokio::time::sleep(ROOM_RECHECK) => {}
                _ = stop.wait_for(|s| *s) => break 'accepting,
            }
        }
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                if registry.counts().0 >= registry.cap
                    && registry.evict_oldest()
                    && due(&mut cap_warned)
                {
                    tracing::warn!(
                        cap = registry.cap,
                        "at the connection cap: closing the connections waiting longest for their headers (or idle) to make room"
                    );
                }
                let registration = registry.register();
                tokio::spawn(serve_connection(
                    stream,
                    peer,
                    registration,
                    router.clone(),
                    limits,
                    tls.as_ref().map(|t| t.current()),
                    stop.clone(),
                ));
            }
            Err(e) if is_connection_error(&e) => {}
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS…: make room and rest briefly
                // rather than spin on an accept that keeps failing.
                metrics::counter!("tessera_accept_errors_total").increment(1);
                if due(&mut accept_warned) {
                    tracing::warn!(error = %e, "accepting a connection failed; backing off");
                }
                registry.evict_oldest();
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    drop(listener);
    tracing::info!("shutting down: finishing in-flight requests");
    let drained = async {
        while registry.counts().1 > 0 {
            tokio::select! {
                _ = registry.freed.notified() => {}
                _ = tokio::time::sleep(ROOM_RECHECK) => {}
            }
        }
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!("shutdown timeout reached; abandoning in-flight requests");
    }
}
