//! Refresh storms on one node: many refreshes of one refresh token at once
//! share one store call (single flight), write one successor, and all get
//! its pair, even when the call they wait for is dropped, whether that
//! call waits in its read (the table is held) or in the conditional
//! statement of its rotation (the row is held).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_domain::token::{TokenPair, TokenString};
use tessera_domain::TokenRecord;
use tessera_store::{RefreshOutcome, RefreshRequest, Store, StoreResult};
use tessera_store_postgres::PostgresStore;
use tessera_testkit::postgres::{connect_admin, TestDb};

use super::{connect, hold_row, issued, NOW, POLICY};

const STORM: usize = 256;

fn refresh(
    store: &Arc<PostgresStore>,
    record: &TokenRecord,
    token: &TokenString,
) -> tokio::task::JoinHandle<(StoreResult<RefreshOutcome>, Duration)> {
    let store = Arc::clone(store);
    let request = RefreshRequest::new(token.clone(), record.client.clone(), NOW, POLICY);
    tokio::spawn(async move {
        let started = Instant::now();
        let outcome = store.refresh(request).await;
        (outcome, started.elapsed())
    })
}

/// Waits until `done` holds.
async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Every outcome is a grant of one pair; returns the pair, how many
/// outcomes were rotations, and the latencies, sorted.
async fn one_pair(
    tasks: Vec<tokio::task::JoinHandle<(StoreResult<RefreshOutcome>, Duration)>>,
) -> (TokenPair, usize, Vec<Duration>) {
    let mut pairs = Vec::with_capacity(tasks.len());
    let mut took = Vec::with_capacity(tasks.len());
    let mut rotations = 0;
    for t in tasks {
        let (outcome, elapsed) = t.await.expect("a refresh task");
        let granted = outcome
            .expect("no store error")
            .expect("every refresh is granted");
        rotations += usize::from(granted.rotated);
        pairs.push(granted.pair);
        took.push(elapsed);
    }
    assert!(
        pairs.iter().all(|p| *p == pairs[0]),
        "every refresh got the same pair"
    );
    took.sort();
    (pairs.swap_remove(0), rotations, took)
}

/// The successor of `pair` is stored once and usable, and the database
/// holds exactly one row more than `before`.
async fn stored_once(store: &PostgresStore, pair: &TokenPair, before: u64) {
    assert_eq!(
        store.count_tokens().await.unwrap(),
        before + 1,
        "one successor was written"
    );
    let successor = store
        .find_by_access(&pair.access.hash())
        .await
        .unwrap()
        .expect("the successor is stored");
    assert!(successor.access_usable(NOW));
}

/// 256 concurrent refreshes of one token on one node: all get the same
/// pair and exactly one successor is written, first as they come; then
/// with the table held, so that the first refresh's read waits until
/// every refresh has joined its call, which answers them all; then with
/// the row held, so that the first refresh's conditional statement waits
/// while the others join: those may not take the outcome it fixes (they
/// joined after it was sent), so they run again and replay it.
pub async fn a_storm_on_one_node_writes_once_and_answers_one_pair(base: String) {
    let schema = TestDb::schema(&base);
    let store = Arc::new(connect(&schema.url).await);

    let (record, token) = issued(&store, "storm").await;
    let before = store.count_tokens().await.unwrap();
    let tasks = (0..STORM)
        .map(|_| refresh(&store, &record, &token))
        .collect();
    let (pair, rotations, took) = one_pair(tasks).await;
    assert_eq!(rotations, 1, "exactly one refresh rotates");
    stored_once(&store, &pair, before).await;
    eprintln!(
        "storms: {STORM} refreshes of one token, as they came: p50 {:?}, p99 {:?}, {} shared a call",
        took[STORM / 2],
        took[STORM * 99 / 100],
        store.shared_refreshes()
    );

    let mut admin = connect_admin(&schema.url).await;
    for hold in [Hold::Table, Hold::Row] {
        let shared_before = store.shared_refreshes();
        let (record, token) = issued(&store, "storm").await;
        let before = store.count_tokens().await.unwrap();
        let holder = hold.take(&mut admin, &token).await;
        let tasks = (0..STORM)
            .map(|_| refresh(&store, &record, &token))
            .collect();
        let joined = (STORM - 1) as u64;
        until("every refresh joined the first", || {
            store.refresh_followers(&token.hash()) == Some(joined)
        })
        .await;
        holder.rollback().await.unwrap();
        let (pair, rotations, _) = one_pair(tasks).await;
        assert_eq!(rotations, 1, "{hold:?}: exactly one refresh rotates");
        stored_once(&store, &pair, before).await;
        let shared = store.shared_refreshes() - shared_before;
        match hold {
            Hold::Table => assert_eq!(shared, joined, "one call answered them all"),
            Hold::Row => eprintln!(
                "storms: with the row held, {shared} of {joined} answered with another call's outcome"
            ),
        }
    }
}

/// The refresh whose call the others joined goes away mid-flight (its
/// client disconnected, so its future is dropped): the others still get
/// the pair, from a call one of them leads, and one successor is written.
/// Dropped while its read waits (the table held), the call wrote nothing,
/// so one of the others rotates; dropped while its conditional statement
/// waits (the row held), the server may still run and commit that
/// statement, and then the others replay its successor.
pub async fn followers_get_the_pair_when_the_leader_goes_away(base: String) {
    let schema = TestDb::schema(&base);
    let store = Arc::new(connect(&schema.url).await);
    let mut admin = connect_admin(&schema.url).await;
    for hold in [Hold::Table, Hold::Row] {
        let (record, token) = issued(&store, "storm").await;
        let before = store.count_tokens().await.unwrap();

        let holder = hold.take(&mut admin, &token).await;
        let leader = refresh(&store, &record, &token);
        until("the leader is in flight", || {
            store.refresh_followers(&token.hash()) == Some(0)
        })
        .await;
        let followers: Vec<_> = (1..STORM)
            .map(|_| refresh(&store, &record, &token))
            .collect();
        let joined = (STORM - 1) as u64;
        until("every refresh joined the leader", || {
            store.refresh_followers(&token.hash()) == Some(joined)
        })
        .await;
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        until("a follower leads a new call, the others join it", || {
            store.refresh_followers(&token.hash()) == Some(joined - 1)
        })
        .await;
        holder.rollback().await.unwrap();
        let (pair, rotations, _) = one_pair(followers).await;
        match hold {
            Hold::Table => assert_eq!(rotations, 1, "one of the followers rotates"),
            Hold::Row => assert!(rotations <= 1, "at most one refresh rotates"),
        }
        stored_once(&store, &pair, before).await;
        // The token is still refreshable as a repeat, on the new pair.
        let again = refresh(&store, &record, &token).await.unwrap().0;
        assert_eq!(again.unwrap().unwrap().pair, pair);
    }
}

/// What another session holds until it rolls back.
#[derive(Debug, Clone, Copy)]
enum Hold {
    /// The `tokens` table, against every read.
    Table,
    /// The row of the refresh token, against every write and lock.
    Row,
}

impl Hold {
    async fn take<'a>(
        self,
        admin: &'a mut tokio_postgres::Client,
        token: &TokenString,
    ) -> tokio_postgres::Transaction<'a> {
        match self {
            Hold::Row => hold_row(admin, token).await,
            Hold::Table => {
                let holder = admin.transaction().await.unwrap();
                holder
                    .batch_execute("LOCK TABLE tokens IN ACCESS EXCLUSIVE MODE")
                    .await
                    .unwrap();
                holder
            }
        }
    }
}
