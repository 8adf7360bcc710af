//! Invalidation by user racing refreshes of that user's families, on three
//! nodes: whichever way each race goes, once the invalidation has
//! answered, no token of the user (the originals, or any successor a
//! racing refresh handed out) authenticates or refreshes on any node.
//! Refreshes and invalidations conflict by waiting, not by aborting: the
//! transactions PostgreSQL rolled back and the deadlocks it found during
//! the races, read from `pg_stat_database`, stay under one per hundred
//! refreshes.

use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Instant;

use reqwest::Method;
use serde_json::json;

use crate::support::*;

const NODES: usize = 3;
const TRIALS: usize = 120;
/// Live families of the user in each trial.
const FAMILIES: usize = 3;
/// Refreshing threads: two race for each family's refresh token.
const REFRESHERS: usize = 2 * FAMILIES;
const USER: &str = "racer";
const PASSWORD: &str = "racer-password";

pub fn invalidation_by_user_races_refreshes_of_its_families_on_three_nodes(pg: &str) {
    let started = Instant::now();
    let mut cluster = Cluster::start(pg, NODES, &[]);
    let bases = Arc::new(cluster.bases());
    let http = Http::new();
    let r = arrived(
        "put user",
        http.send(
            Method::PUT,
            &bases[0],
            &format!("/_security/user/{USER}"),
            Auth::Basic(ADMIN, ADMIN_PW),
            Some(&json!({ "password": PASSWORD, "roles": ["superuser"] })),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let before = transaction_stats(cluster.store_url());

    // Per trial: the originals, then every pair a refresh handed out.
    let originals: Arc<Mutex<Vec<Vec<Pair>>>> = Arc::new(Mutex::new(Vec::new()));
    let handed_out: Arc<Mutex<Vec<Vec<Pair>>>> = Arc::new(Mutex::new(vec![Vec::new(); TRIALS]));
    let refreshes = Arc::new(Mutex::new(0usize));
    // What went wrong, kept rather than panicked on, so that no thread
    // leaves the others waiting at the barrier.
    let failures: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let barrier = Arc::new(Barrier::new(REFRESHERS + 1));
    let handles: Vec<_> = (0..=REFRESHERS)
        .map(|t| {
            let (bases, originals, handed_out, refreshes, failures, barrier) = (
                Arc::clone(&bases),
                Arc::clone(&originals),
                Arc::clone(&handed_out),
                Arc::clone(&refreshes),
                Arc::clone(&failures),
                Arc::clone(&barrier),
            );
            thread::spawn(move || {
                let http = Http::new();
                let fail = |why: String| failures.lock().unwrap().push(why);
                for trial in 0..TRIALS {
                    if t == REFRESHERS {
                        let pairs = (0..FAMILIES)
                            .map(|f| {
                                let r = arrived(
                                    "password grant",
                                    http.send(
                                        Method::POST,
                                        &bases[(trial + f) % NODES],
                                        TOKEN,
                                        Auth::Basic(ADMIN, ADMIN_PW),
                                        Some(&json!({
                                            "grant_type": "password",
                                            "username": USER,
                                            "password": PASSWORD
                                        })),
                                    ),
                                );
                                assert_eq!(r.status, 200, "trial {trial}: grant: {}", r.text);
                                Pair::from(&r)
                            })
                            .collect();
                        originals.lock().unwrap().push(pairs);
                    }
                    barrier.wait();
                    let node = (t + trial) % NODES;
                    if t == REFRESHERS {
                        let r = arrived(
                            "invalidate by user",
                            http.invalidate(&bases[node], &json!({ "username": USER })),
                        );
                        let n = r.body["invalidated_tokens"].as_u64().unwrap_or(0);
                        if r.status != 200 || n < FAMILIES as u64 {
                            fail(format!("trial {trial}: invalidate by user on node{node} (every family had a live pair): {}", r.text));
                        }
                    } else {
                        let token = originals.lock().unwrap()[trial][t % FAMILIES]
                            .refresh
                            .clone();
                        let r = arrived("refresh", http.refresh(&bases[node], &token));
                        *refreshes.lock().unwrap() += 1;
                        match r.status {
                            200 => handed_out.lock().unwrap()[trial].push(Pair::from(&r)),
                            400 if r.body["error"] == "invalid_grant" => {}
                            _ => fail(format!("trial {trial}: a refresh on node{node} failed: {}", r.text)),
                        }
                    }
                    // Everything of this trial has answered before it is checked.
                    barrier.wait();
                    if t == REFRESHERS {
                        let check = &bases[(trial + 1) % NODES];
                        let originals = originals.lock().unwrap()[trial].clone();
                        let handed = handed_out.lock().unwrap()[trial].clone();
                        for (which, pair) in originals
                            .iter()
                            .map(|p| ("original", p))
                            .chain(handed.iter().map(|p| ("refreshed", p)))
                        {
                            let a = arrived("bearer", http.authenticate_bearer(check, &pair.access));
                            if a.status != 401 {
                                fail(format!("trial {trial}: a {which} access token of {USER} outlived the invalidation by user: {}", a.text));
                            }
                            let r = arrived("refresh", http.refresh(check, &pair.refresh));
                            if r.status != 400 {
                                fail(format!("trial {trial}: a {which} refresh token of {USER} outlived the invalidation by user: {}", r.text));
                            }
                        }
                    }
                }
            })
        })
        .collect();
    join_all(handles, "a racing thread");
    let failures = failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let raced = started.elapsed();
    let refreshes = *refreshes.lock().unwrap();
    let handed = handed_out
        .lock()
        .unwrap()
        .iter()
        .map(Vec::len)
        .sum::<usize>();

    // The nodes' sessions report their statistics when they end.
    cluster.nodes.clear();
    let after = settled_transaction_stats(cluster.store_url());
    let (rollbacks, deadlocks) = (after.0 - before.0, after.1 - before.1);
    let per_100 = 100.0 * (rollbacks + deadlocks) as f64 / refreshes as f64;
    eprintln!(
        "user_races: {TRIALS} trials, {refreshes} refreshes ({handed} granted) racing invalidation by user over {NODES} nodes in {raced:?}; \
         {rollbacks} transactions rolled back and {deadlocks} deadlocks: {per_100:.2} per 100 refreshes"
    );
    assert!(
        per_100 < 1.0,
        "{rollbacks} rollbacks and {deadlocks} deadlocks for {refreshes} refreshes"
    );
}
