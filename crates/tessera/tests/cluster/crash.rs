//! A node dies (SIGKILL) in the middle of a stream of refreshes. Clients
//! fail over to the surviving nodes, retrying the refresh token whose
//! answer they lost. Nothing a client received is lost, and no refresh
//! token ever yields two different successor pairs.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::support::*;

const NODES: usize = 3;
const CLIENTS: usize = 6;
/// Refreshes each client makes along its chain.
const STEPS: usize = 300;
/// Every how many steps a client repeats the refresh it just made, on
/// another node, to take the replay path.
const REPEAT_EVERY: usize = 4;
/// The node that is killed, once this many steps are done in all.
const VICTIM: usize = 1;
const KILL_AFTER: usize = CLIENTS * STEPS / 3;

/// What one client saw.
#[derive(Default)]
struct Log {
    /// Every pair received for each presented refresh token.
    by_presented: Vec<(String, Pair)>,
    /// Every access token received (from grants and refreshes).
    access_tokens: Vec<String>,
    /// Requests that failed at the transport level (the node was gone).
    failovers: Vec<(usize, String)>,
    /// Refreshes answered by a surviving node after a failure.
    retried: usize,
}

/// A client's view of the cluster: the nodes it still believes alive, and
/// a round-robin position over them.
struct Client {
    id: usize,
    http: Http,
    bases: Arc<Vec<String>>,
    live: Vec<usize>,
    next: usize,
    log: Log,
}

impl Client {
    fn pick(&mut self, avoid: Option<usize>) -> usize {
        assert!(!self.live.is_empty(), "client {}: no node left", self.id);
        let mut node = self.live[self.next % self.live.len()];
        self.next += 1;
        if Some(node) == avoid && self.live.len() > 1 {
            node = self.live[self.next % self.live.len()];
            self.next += 1;
        }
        node
    }

    /// Sends `request` to a live node, failing over on transport errors.
    /// Returns the answering node and the response.
    fn call(
        &mut self,
        what: &str,
        avoid: Option<usize>,
        request: impl Fn(&Http, &str) -> reqwest::Result<Resp>,
    ) -> (usize, Resp, bool) {
        let mut failed = false;
        loop {
            let node = self.pick(avoid);
            match request(&self.http, &self.bases[node]) {
                Ok(r) => return (node, r, failed),
                Err(e) => {
                    // Only the killed node may fail; anything else is a
                    // real error.
                    assert_eq!(
                        node, VICTIM,
                        "client {}: {what} on surviving node{node} failed: {e}",
                        self.id
                    );
                    self.log.failovers.push((node, causes(&e)));
                    self.live.retain(|&n| n != node);
                    failed = true;
                }
            }
        }
    }

    fn grant(&mut self) -> Pair {
        let (node, r, _) = self.call("password grant", None, |h, b| h.password_grant(b));
        assert_eq!(
            r.status, 200,
            "client {}: password grant on node{node}: {}",
            self.id, r.text
        );
        let pair = Pair::from(&r);
        self.log.access_tokens.push(pair.access.clone());
        pair
    }

    /// Refreshes `token` (on a node other than `avoid` if possible) and
    /// records what came back.
    fn refresh(&mut self, step: usize, token: &str, avoid: Option<usize>) -> (usize, Pair) {
        let (node, r, retried) = self.call("refresh", avoid, |h, b| h.refresh(b, token));
        assert_eq!(
            r.status, 200,
            "client {} step {step}: refresh on node{node} (retried after a failure: {retried}): {}",
            self.id, r.text
        );
        let pair = Pair::from(&r);
        self.log.retried += usize::from(retried);
        self.log.by_presented.push((token.to_owned(), pair.clone()));
        self.log.access_tokens.push(pair.access.clone());
        (node, pair)
    }
}

/// Asserts that each presented refresh token got one pair, however often
/// it was presented, and that no pair succeeded two tokens. Returns how
/// many refresh tokens were presented.
pub fn assert_one_successor_each<'a>(records: impl Iterator<Item = &'a (String, Pair)>) -> usize {
    let mut successors: HashMap<&str, HashSet<&Pair>> = HashMap::new();
    let mut predecessors: HashMap<&Pair, HashSet<&str>> = HashMap::new();
    for (presented, pair) in records {
        successors
            .entry(presented.as_str())
            .or_default()
            .insert(pair);
        predecessors
            .entry(pair)
            .or_default()
            .insert(presented.as_str());
    }
    for pairs in successors.values() {
        assert_eq!(
            pairs.len(),
            1,
            "a refresh token produced {} different successor pairs: {pairs:?}",
            pairs.len()
        );
    }
    for presented in predecessors.values() {
        assert_eq!(
            presented.len(),
            1,
            "one pair succeeded several refresh tokens"
        );
    }
    successors.len()
}

/// The innermost cause of a transport error ("connection refused", …).
pub fn causes(e: &reqwest::Error) -> String {
    let mut last: &dyn std::error::Error = e;
    while let Some(source) = last.source() {
        last = source;
    }
    last.to_string()
}

pub fn killing_a_node_mid_stream_loses_nothing_and_never_rotates_twice(pg: &str) {
    let started = Instant::now();
    let mut cluster = Cluster::start(pg, NODES, &[]);
    let bases = Arc::new(cluster.bases());
    let done = Arc::new(AtomicUsize::new(0));

    let handles: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (bases, done) = (Arc::clone(&bases), Arc::clone(&done));
            thread::spawn(move || {
                let mut c = Client {
                    id,
                    http: Http::new(),
                    bases,
                    live: (0..NODES).collect(),
                    next: id,
                    log: Log::default(),
                };
                let mut current = c.grant();
                for step in 0..STEPS {
                    let (node, next) = c.refresh(step, &current.refresh, None);
                    if step % REPEAT_EVERY == REPEAT_EVERY - 1 {
                        // The same refresh again, elsewhere: a replay.
                        let (_, again) = c.refresh(step, &current.refresh, Some(node));
                        assert_eq!(
                            again, next,
                            "client {id} step {step}: a repeated refresh got another pair"
                        );
                    }
                    current = next;
                    done.fetch_add(1, Ordering::SeqCst);
                }
                (c.log, current)
            })
        })
        .collect();

    // Kill the victim mid-stream.
    let deadline = Instant::now() + Duration::from_secs(120);
    while done.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(
            Instant::now() < deadline,
            "the clients made only {} refreshes",
            done.load(Ordering::SeqCst)
        );
        assert!(
            !handles.iter().any(|h| h.is_finished()),
            "a client stopped before the kill"
        );
        thread::sleep(Duration::from_millis(5));
    }
    let killed_at = done.load(Ordering::SeqCst);
    cluster.nodes[VICTIM].kill9();

    let results: Vec<(Log, Pair)> = join_all(handles, "a client thread");
    let streamed = started.elapsed();

    // No refresh token produced two different successor pairs.
    let presented =
        assert_one_successor_each(results.iter().flat_map(|(log, _)| log.by_presented.iter()));

    let failovers: usize = results.iter().map(|(l, _)| l.failovers.len()).sum();
    let retried: usize = results.iter().map(|(l, _)| l.retried).sum();
    let errors: HashSet<&str> = results
        .iter()
        .flat_map(|(l, _)| l.failovers.iter().map(|(_, e)| e.as_str()))
        .collect();
    assert!(
        failovers >= 1,
        "no client noticed the killed node (killed after {killed_at} refreshes)"
    );

    // Everything any client received still authenticates on the survivors.
    let survivors: Vec<usize> = (0..NODES).filter(|&n| n != VICTIM).collect();
    let http = Http::new();
    let mut checked = 0;
    for (log, _) in &results {
        for access in &log.access_tokens {
            for &n in &survivors {
                let r = arrived("bearer", http.authenticate_bearer(&bases[n], access));
                assert_eq!(
                    r.status, 200,
                    "an access token a client received does not authenticate on node{n}: {}",
                    r.text
                );
                checked += 1;
            }
        }
    }
    // Each chain goes on from its last refresh token.
    for (i, (_, last)) in results.iter().enumerate() {
        let n = survivors[i % survivors.len()];
        let r = arrived("refresh", http.refresh(&bases[n], &last.refresh));
        assert_eq!(r.status, 200, "chain {i} cannot go on: {}", r.text);
    }

    eprintln!(
        "crash: {CLIENTS} clients x {STEPS} refreshes, node{VICTIM} killed after {killed_at}; \
         {failovers} failed requests, {retried} refreshes retried on a survivor, \
         {} refresh tokens presented, {checked} authentications checked; \
         stream {streamed:?}, {:?} in all; failures seen: {errors:?}",
        presented,
        started.elapsed()
    );
}
