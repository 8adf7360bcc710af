//! A refresh storm on one node: 256 concurrent refreshes of one refresh
//! token through one process all get the same pair, one rotation and 255
//! replays are counted, and the database holds exactly one successor.

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use crate::support::*;

const STORM: usize = 256;

/// Rows in the `tokens` table of the database `url` names.
fn stored_pairs(url: &str) -> i64 {
    query_row(url, "SELECT count(*) FROM tokens", |row| row.get(0))
}

pub fn a_storm_on_one_node_writes_one_successor_and_answers_one_pair(pg: &str) {
    let cluster = Cluster::start(pg, 1, &[]);
    let base = cluster.bases().remove(0);
    let http = Http::new();
    let r = arrived("password grant", http.password_grant(&base));
    assert_eq!(r.status, 200, "{}", r.text);
    let original = Pair::from(&r);
    let before = stored_pairs(cluster.store_url());
    let rotated_series = "tessera_refresh_total{outcome=\"rotated\"}";
    let replayed_series = "tessera_refresh_total{outcome=\"replayed_in_window\"}";
    let (rotated, replayed) = (
        http.counter(&base, rotated_series),
        http.counter(&base, replayed_series),
    );

    let barrier = Arc::new(Barrier::new(STORM));
    let handles: Vec<_> = (0..STORM)
        .map(|_| {
            let (base, token, barrier) =
                (base.clone(), original.refresh.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                // Connected beforehand, so the storm times refreshes
                // rather than 256 connects at once.
                let http = Http::new();
                let r = arrived("basic auth", http.authenticate_basic(&base));
                assert_eq!(r.status, 200, "{}", r.text);
                barrier.wait();
                arrived("refresh", http.refresh(&base, &token))
            })
        })
        .collect();
    let answers = join_all(handles, "a storm thread");
    for r in &answers {
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let pair = Pair::from(&answers[0]);
    assert!(
        answers.iter().all(|r| Pair::from(r) == pair),
        "every refresh of the storm got the same pair"
    );
    assert_ne!(pair.refresh, original.refresh);
    assert_eq!(
        stored_pairs(cluster.store_url()),
        before + 1,
        "the storm wrote one successor"
    );
    assert_eq!(http.counter(&base, rotated_series) - rotated, 1.0);
    assert_eq!(
        http.counter(&base, replayed_series) - replayed,
        (STORM - 1) as f64
    );
    let a = arrived("bearer", http.authenticate_bearer(&base, &pair.access));
    assert_eq!(a.status, 200, "{}", a.text);

    let mut took: Vec<Duration> = answers.iter().map(|r| r.elapsed).collect();
    took.sort();
    eprintln!(
        "storm: {STORM} refreshes of one token on one node: p50 {:?}, p99 {:?}",
        took[STORM / 2],
        took[STORM * 99 / 100]
    );
}
