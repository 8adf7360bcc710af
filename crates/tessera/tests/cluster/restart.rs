//! A rolling restart under load: each node in turn gets SIGTERM, as an
//! orchestrator would send it, and is replaced by a new node on the same
//! database. Requests in flight on a stopping node complete; clients whose
//! connection closed under them retry on another node; no request gets an
//! error status, and no refresh token rotates twice.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::crash::{assert_one_successor_each, causes};
use crate::support::*;

const NODES: usize = 3;
const CLIENTS: usize = 4;
/// Refreshes (in all) between two restarts, and after the last.
const BETWEEN: usize = 150;
/// Every how many steps a client repeats its refresh on another node.
const REPEAT_EVERY: usize = 4;

#[derive(Default)]
struct Log {
    by_presented: Vec<(String, Pair)>,
    access_tokens: Vec<String>,
    /// Transport-level failures (a connection closed by a stopping node,
    /// or refused by a stopped one), each followed by a retry elsewhere.
    failures: Vec<String>,
}

/// Sends `request` to `node`, moving on to the next node on a transport
/// failure or when `node` is being replaced (`None`). Every answer must be
/// a 200.
fn call(
    bases: &RwLock<Vec<Option<String>>>,
    log: &mut Log,
    mut node: usize,
    what: &str,
    request: impl Fn(&str) -> reqwest::Result<Resp>,
) -> (usize, Resp) {
    for _ in 0..20 {
        let Some(base) = bases.read().unwrap()[node].clone() else {
            node = (node + 1) % NODES;
            continue;
        };
        match request(&base) {
            Ok(r) => {
                assert_eq!(r.status, 200, "{what} on node{node}: {}", r.text);
                return (node, r);
            }
            Err(e) => {
                log.failures.push(causes(&e));
                node = (node + 1) % NODES;
            }
        }
    }
    panic!("{what}: no node answered; failures: {:?}", log.failures);
}

pub fn rolling_restart_under_load_fails_no_request(pg: &str) {
    let started = Instant::now();
    let mut cluster = Cluster::start(pg, NODES, &[]);
    let store = cluster.store_url().to_owned();
    let bases = Arc::new(RwLock::new(
        cluster.bases().into_iter().map(Some).collect::<Vec<_>>(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));

    let handles: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (bases, stop, done) = (Arc::clone(&bases), Arc::clone(&stop), Arc::clone(&done));
            thread::spawn(move || {
                let http = Http::new();
                let mut log = Log::default();
                let (_, r) = call(&bases, &mut log, id % NODES, "password grant", |b| {
                    http.password_grant(b)
                });
                let mut current = Pair::from(&r);
                log.access_tokens.push(current.access.clone());
                let mut step = 0;
                while !stop.load(Ordering::SeqCst) {
                    let refresh = |b: &str| http.refresh(b, &current.refresh);
                    let (node, r) = call(&bases, &mut log, (id + step) % NODES, "refresh", refresh);
                    let next = Pair::from(&r);
                    log.by_presented
                        .push((current.refresh.clone(), next.clone()));
                    log.access_tokens.push(next.access.clone());
                    if step % REPEAT_EVERY == REPEAT_EVERY - 1 {
                        let (_, r) = call(&bases, &mut log, (node + 1) % NODES, "repeat", refresh);
                        log.by_presented
                            .push((current.refresh.clone(), Pair::from(&r)));
                    }
                    current = next;
                    step += 1;
                    done.fetch_add(1, Ordering::SeqCst);
                }
                log
            })
        })
        .collect();

    let progress = |target: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while done.load(Ordering::SeqCst) < target {
            assert!(
                !handles.iter().any(|h| h.is_finished()),
                "a client stopped early"
            );
            assert!(
                Instant::now() < deadline,
                "the clients made only {} refreshes",
                done.load(Ordering::SeqCst)
            );
            thread::sleep(Duration::from_millis(5));
        }
    };
    let mut stopping = Vec::new();
    for victim in 0..NODES {
        progress(done.load(Ordering::SeqCst) + BETWEEN);
        let t = Instant::now();
        let exit = cluster.nodes[victim].terminate(Duration::from_secs(15));
        stopping.push(t.elapsed());
        // Until its replacement is ready, clients leave it out (its port
        // may be taken by a node of another test meanwhile).
        bases.write().unwrap()[victim] = None;
        assert!(exit.success(), "node{victim} ended with {exit} on SIGTERM");
        let replacement = start_node(&format!("node{victim}-new"), &store, &[]);
        bases.write().unwrap()[victim] = Some(replacement.base.clone());
        cluster.nodes[victim] = replacement;
    }
    progress(done.load(Ordering::SeqCst) + BETWEEN);
    stop.store(true, Ordering::SeqCst);
    let logs: Vec<Log> = join_all(handles, "a client thread");

    let presented = assert_one_successor_each(logs.iter().flat_map(|l| l.by_presented.iter()));
    // Everything handed out before, during and after the restarts works
    // on the replacements (each token on one of them, in turn).
    let http = Http::new();
    let bases: Vec<String> = bases.read().unwrap().iter().flatten().cloned().collect();
    let mut checked = 0;
    for access in logs.iter().flat_map(|l| l.access_tokens.iter()) {
        let base = &bases[checked % NODES];
        let r = arrived("bearer", http.authenticate_bearer(base, access));
        assert_eq!(r.status, 200, "{base}: {}", r.text);
        checked += 1;
    }
    let failures: Vec<&String> = logs.iter().flat_map(|l| l.failures.iter()).collect();
    eprintln!(
        "restart: {CLIENTS} clients, {} refreshes, {presented} refresh tokens, {checked} access tokens checked; \
         SIGTERM to exit {stopping:?}; {} retried transport failures {:?}; {:?} in all",
        done.load(Ordering::SeqCst),
        failures.len(),
        failures.iter().collect::<std::collections::BTreeSet<_>>(),
        started.elapsed()
    );
}
