//! The database fails over under load: three nodes on a PostgreSQL primary
//! with one synchronous streaming standby (`.ci/pg-replication.sh`), named
//! by a multi-host URL with `target_session_attrs=read-write`. Clients
//! create and refresh pairs and invalidate some; the primary is killed
//! with SIGKILL (the postmaster and every backend) and the standby
//! promoted. While there is no primary, every request is answered quickly
//! (503 from the store, never a hang); afterwards every node reconnects to
//! the new primary by itself, every pair a node acknowledged
//! authenticates on every node, every acknowledged invalidation holds, and
//! no refresh token ever yielded two different successors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use tessera_testkit::server::token_mode;

use crate::support::*;

const NODES: usize = 3;
const CLIENTS: usize = 6;
/// Every how many refreshes a client invalidates its chain and starts a
/// new one.
const INVALIDATE_EVERY: usize = 7;
/// The store's timeouts given to the nodes: without a primary a request
/// is answered within a few of these.
const STORE_TIMEOUT: &str = "2s";
/// Far above the timeouts: a request slower than this hung.
const NO_HANG: Duration = Duration::from_secs(20);
/// How long a client waits after a refused request before trying again.
const BACK_OFF: Duration = Duration::from_millis(50);

/// The primary and standby of `.ci/pg-replication.sh`, stopped and
/// deleted when dropped.
struct Replication {
    state: PathBuf,
    _dir: tempfile::TempDir,
    primary: u16,
    standby: u16,
}

impl Replication {
    fn script(state: &Path, command: &str) -> std::process::Output {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/pg-replication.sh");
        // Below Linux's ephemeral range (32768 and up), so that the ports
        // the script finds free are not handed to some test's outgoing
        // connection before the servers bind them.
        let first_port = 20000 + u16::from_le_bytes(rand_bytes()) % 12000;
        Command::new("bash")
            .arg(script)
            .arg(command)
            .env("TESSERA_PGREP_STATE", state)
            .env("TESSERA_PG_PORT", first_port.to_string())
            .output()
            .expect("running .ci/pg-replication.sh")
    }

    fn run(&self, command: &str) {
        let out = Self::script(&self.state, command);
        assert!(
            out.status.success(),
            "pg-replication.sh {command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start() -> Replication {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("replication.state");
        let out = Self::script(&state, "start");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "pg-replication.sh start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = |name: &str| -> u16 {
            stdout
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {stdout}"))
        };
        Replication {
            primary: port("TESSERA_FAILOVER_PRIMARY_PORT"),
            standby: port("TESSERA_FAILOVER_STANDBY_PORT"),
            state,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
            self.primary, self.standby
        )
    }
}

impl Drop for Replication {
    fn drop(&mut self) {
        let _ = Self::script(&self.state, "stop");
    }
}

fn rand_bytes() -> [u8; 2] {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        ^ std::process::id();
    [n as u8, (n >> 8) as u8]
}

/// What all clients have seen so far, for the test to wait on.
#[derive(Default)]
struct Progress {
    stop: AtomicBool,
    /// Requests answered 200.
    acknowledged: AtomicUsize,
    /// Requests answered 503.
    refused: AtomicUsize,
}

impl Progress {
    /// Waits (polling) until `counter` reaches `at_least`.
    fn wait(&self, what: &str, counter: &AtomicUsize, at_least: usize) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while counter.load(Ordering::Relaxed) < at_least {
            assert!(Instant::now() < deadline, "waited in vain for {what}");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What one client saw acknowledged.
#[derive(Default)]
struct Seen {
    /// The last pair of each chain still alive.
    live: Vec<Pair>,
    /// Pairs whose invalidation was acknowledged.
    invalidated: Vec<Pair>,
    /// Each refresh token presented, with the successor received for it.
    successors: HashMap<String, Pair>,
    /// Requests answered with something other than success, by status.
    refused: HashMap<u16, usize>,
    /// The slowest answer.
    slowest: Duration,
}

/// One client: a chain of refreshes over the nodes in turn, a new chain
/// after each invalidation; a failed request is tried again (the same
/// refresh token) until it is answered.
fn client(bases: Arc<Vec<String>>, id: usize, progress: Arc<Progress>) -> Seen {
    let http = Http::with_timeout(NO_HANG);
    let mut seen = Seen::default();
    let mut turn = id;
    let mut current: Option<Pair> = None;
    let mut steps = 0;
    while !progress.stop.load(Ordering::Relaxed) {
        turn += 1;
        let base = &bases[turn % bases.len()];
        let started = Instant::now();
        let answer = match &current {
            None => http.password_grant(base),
            Some(pair) if steps % INVALIDATE_EVERY == INVALIDATE_EVERY - 1 => {
                http.invalidate(base, &json!({ "refresh_token": pair.refresh }))
            }
            Some(pair) => http.refresh(base, &pair.refresh),
        };
        let elapsed = started.elapsed();
        seen.slowest = seen.slowest.max(elapsed);
        let Ok(r) = answer else {
            assert!(elapsed < NO_HANG, "client {id}: a request hung");
            thread::sleep(BACK_OFF);
            continue;
        };
        if r.status != 200 {
            *seen.refused.entry(r.status).or_default() += 1;
            progress.refused.fetch_add(1, Ordering::Relaxed);
            assert!(
                r.status == 503,
                "client {id}: unexpected ({}) {}",
                r.status,
                r.text
            );
            thread::sleep(BACK_OFF);
            continue;
        }
        steps += 1;
        progress.acknowledged.fetch_add(1, Ordering::Relaxed);
        current = match current.take() {
            None => Some(Pair::from(&r)),
            Some(pair) if r.body.get("invalidated_tokens").is_some() => {
                seen.invalidated.push(pair);
                None
            }
            Some(pair) => {
                let next = Pair::from(&r);
                seen.successors.insert(pair.refresh, next.clone());
                Some(next)
            }
        };
    }
    seen.live.extend(current);
    seen
}

/// Waits until `base` answers a Basic `_authenticate` with 200.
fn wait_serving(http: &Http, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if matches!(http.authenticate_basic(base), Ok(r) if r.status == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "{base} did not recover");
        thread::sleep(Duration::from_millis(100));
    }
}

pub fn a_killed_primary_fails_over_to_its_synchronous_standby_and_loses_nothing(_pg: &str) {
    let replication = Replication::start();
    let url = replication.url();
    let specs: Vec<(String, &str)> = (0..NODES)
        .map(|i| (format!("node{i}"), url.as_str()))
        .collect();
    let specs: Vec<(&str, &str)> = specs.iter().map(|(n, u)| (n.as_str(), *u)).collect();
    let nodes = start_nodes(
        &specs,
        &["--store-timeout", STORE_TIMEOUT, "--store-wait", "30s"],
    );
    let bases = Arc::new(nodes.iter().map(|n| n.base.clone()).collect::<Vec<_>>());
    let progress = Arc::new(Progress::default());
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (bases, progress) = (Arc::clone(&bases), Arc::clone(&progress));
            thread::spawn(move || client(bases, id, progress))
        })
        .collect();

    // Load, then the primary dies; once the nodes have answered 503 for
    // want of a primary, the standby is promoted; the load goes on until
    // the nodes have acknowledged more work on the new primary.
    let (acknowledged, refused) = (&progress.acknowledged, &progress.refused);
    progress.wait("load before the failure", acknowledged, 20 * CLIENTS);
    replication.run("kill-primary");
    progress.wait("a 503 without a primary", refused, CLIENTS);
    replication.run("promote");
    let http = Http::new();
    for base in bases.iter() {
        wait_serving(&http, base);
    }
    let promoted_at = acknowledged.load(Ordering::Relaxed);
    progress.wait(
        "load on the new primary",
        acknowledged,
        promoted_at + 20 * CLIENTS,
    );
    progress.stop.store(true, Ordering::Relaxed);
    let seen: Vec<Seen> = join_all(clients, "a client");

    let refused: usize = seen.iter().flat_map(|s| s.refused.values()).sum();
    let slowest = seen.iter().map(|s| s.slowest).max().unwrap_or_default();
    let refreshes: usize = seen.iter().map(|s| s.successors.len()).sum();
    eprintln!(
        "failover: {refreshes} refreshes acknowledged, {refused} requests answered 503, slowest answer {slowest:?}"
    );
    assert!(refreshes > 0, "no refresh was acknowledged");

    // Every acknowledged pair authenticates on every node, and every
    // acknowledged invalidation holds on every node.
    for base in bases.iter() {
        for s in &seen {
            for pair in &s.live {
                let r = arrived("authenticate", http.authenticate_bearer(base, &pair.access));
                assert_eq!(r.status, 200, "{base}: an acknowledged pair: {}", r.text);
            }
            for pair in &s.invalidated {
                // Invalidated by its refresh token: in Elasticsearch's
                // `token` mode that leaves the access token alive.
                let r = arrived("authenticate", http.authenticate_bearer(base, &pair.access));
                let expected = if token_mode() { 200 } else { 401 };
                assert_eq!(
                    r.status, expected,
                    "{base}: an invalidated pair: {}",
                    r.text
                );
                let r = arrived("refresh", http.refresh(base, &pair.refresh));
                assert_eq!(r.status, 400, "{base}: an invalidated pair: {}", r.text);
            }
        }
    }
    // No refresh token yields a successor other than the one acknowledged:
    // presented again, it answers that pair (the replay window) or is
    // refused (reuse), on any node.
    let mut forks = Vec::new();
    for (i, s) in seen.iter().enumerate() {
        for (presented, successor) in &s.successors {
            let base = &bases[i % bases.len()];
            let r = arrived("refresh again", http.refresh(base, presented));
            match r.status {
                200 if &Pair::from(&r) == successor => {}
                400 => {}
                _ => forks.push(format!("({}) {}", r.status, r.text)),
            }
        }
    }
    assert!(forks.is_empty(), "refresh families forked: {forks:?}");
    drop(nodes);
}
