//! Entries that outlive `cluster_cache_ttl` through the revocation epoch
//! still die on every node once the call that revoked them answers.
//!
//! With a short `T`, credentials are kept hot on three nodes until every
//! node has served them *past* `T` (its
//! `tessera_store_cache_extended_hits_total` moved: the entries were read
//! from the database longer than `T` ago and are served only because no
//! revoking write has committed since). Then one node takes them back: a
//! token invalidated, an API key invalidated, or their user disabled. From
//! the moment that call answers, every request with them on every node is
//! refused. Each revoking call also moved the epoch in the database, and
//! the calls that only add did not.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::cache::{admin, authenticate, call, grant, keep_hot, put_superuser, warm, Cred};
use crate::support::*;

const NODES: usize = 3;
const ROUNDS: usize = 12;
/// Requests per credential per node after each revoking call.
const CHECKS: usize = 30;
const EXTENDED: &str = "tessera_store_cache_extended_hits_total";

/// Waits (at most a minute) until every node has served an entry past `T`
/// since `before`.
fn until_served_past_ttl(http: &Http, bases: &[String], before: &[f64], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let moved = bases
            .iter()
            .zip(before)
            .all(|(base, b)| http.counter(base, EXTENDED) > *b);
        if moved {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not every node served an entry past cluster_cache_ttl within a minute"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn entries_kept_past_the_ttl_die_on_every_node_once_the_revoking_call_answers(pg: &str) {
    let cluster = Cluster::start(pg, NODES, &["--cluster-cache-ttl", "100ms"]);
    let bases = cluster.bases();
    let http = Http::new();
    let password = "epoch-password";
    let mut checked = 0;
    for round in 0..ROUNDS {
        let on = |k: usize| &bases[(round + k) % NODES];
        let user = format!("epoch{round}");
        put_superuser(&http, on(0), &user, password);
        let pair = grant(&http, on(1), &user, password);
        let r = call(
            &http,
            on(2),
            Method::POST,
            "/_security/api_key",
            Auth::Basic(&user, password),
            &json!({ "name": format!("key-{user}") }),
        );
        assert_eq!(r.status, 200, "create key: {}", r.text);
        let (key, key_id) = (r.str("encoded"), r.str("id"));
        let bearer = Cred::Bearer(pair.access.clone());
        let api_key = Cred::ApiKey(key);
        let basic = Cred::Basic(user.clone(), password.to_owned());
        let creds = vec![bearer.clone(), api_key.clone(), basic.clone()];

        let (what, dead, path, method, body) = match round % 3 {
            0 => (
                "token invalidation",
                vec![bearer],
                TOKEN.to_owned(),
                Method::DELETE,
                json!({ "token": pair.access }),
            ),
            1 => (
                "API key invalidation",
                vec![api_key],
                "/_security/api_key".to_owned(),
                Method::DELETE,
                json!({ "ids": [key_id] }),
            ),
            _ => (
                "user disabled",
                creds.clone(),
                format!("/_security/user/{user}/_disable"),
                Method::PUT,
                Value::Null,
            ),
        };

        let before: Vec<f64> = bases.iter().map(|b| http.counter(b, EXTENDED)).collect();
        warm(&http, &bases, &creds, 1, what);
        let stop = Arc::new(AtomicBool::new(false));
        let hot: Vec<_> = (0..2).map(|_| keep_hot(&bases, &creds, &stop)).collect();
        until_served_past_ttl(&http, &bases, &before, what);
        let epoch = cache_epoch(cluster.store_url());
        let r = call(&http, on(1), method, &path, admin(), &body);
        stop.store(true, Ordering::SeqCst);
        for h in hot {
            h.join().expect("a warming thread panicked");
        }
        assert_eq!(r.status, 200, "{what}: {}", r.text);
        assert!(
            cache_epoch(cluster.store_url()) > epoch,
            "{what} did not move the revocation epoch"
        );
        for _ in 0..CHECKS {
            for base in &bases {
                for cred in &dead {
                    let r = authenticate(&http, base, cred);
                    assert_eq!(
                        r.status, 401,
                        "{what}: {cred:?}, served past the TTL, still authenticates on {base} \
                         after the call answered: {}",
                        r.text
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 1500, "only {checked} requests checked");

    // Calls that only add leave the epoch alone.
    let epoch = cache_epoch(cluster.store_url());
    let pair = grant(&http, &bases[0], ADMIN, ADMIN_PW);
    let r = call(
        &http,
        &bases[1],
        Method::POST,
        TOKEN,
        admin(),
        &json!({ "grant_type": "refresh_token", "refresh_token": pair.refresh }),
    );
    assert_eq!(r.status, 200, "refresh: {}", r.text);
    let r = call(
        &http,
        &bases[2],
        Method::POST,
        "/_security/api_key",
        admin(),
        &json!({ "name": "adds-only" }),
    );
    assert_eq!(r.status, 200, "create key: {}", r.text);
    assert_eq!(
        cache_epoch(cluster.store_url()),
        epoch,
        "a grant, a refresh or a new API key moved the revocation epoch"
    );
}
