//! Connections shared by single statements (`src/shared.rs`): the two
//! statements of an unlocked refresh and the insert of a pair without
//! sources run on connections other callers use at the same time. Each
//! caller still gets its own answer, a statement waiting for a lock holds
//! up only the callers of its own connection (never a transaction), and a
//! shared connection that dies is replaced.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_store::Store;
use tessera_store_postgres::{PostgresConfig, PostgresStore};
use tessera_testkit::postgres::{connect_admin, random_hex, with_param, TestDb};

use super::rotation::{blocked, refresh};
use super::{hold_row, issued, user};

/// How many callers run at once in the first test.
const CALLERS: usize = 200;

/// A store of `pool_size` connections whose sessions carry `name`.
async fn store_named(url: &str, name: &str, pool_size: usize) -> Arc<PostgresStore> {
    let config = PostgresConfig {
        pool_size,
        cache_ttl: Duration::ZERO,
        ..PostgresConfig::new(with_param(url, "application_name", name))
    };
    Arc::new(PostgresStore::connect(config).await.expect("connecting"))
}

/// How many sessions named `name` the server has.
async fn sessions(admin: &tokio_postgres::Client, name: &str) -> i64 {
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .await
        .unwrap()
        .get(0)
}

/// With a pool of two (one connection shared), 200 inserts, then 200 first
/// refreshes, then 200 repeats run at once. Every insert is stored, every
/// first refresh rotates its own pair into a successor of its own family,
/// and every repeat answers the very pair its first refresh did; the server
/// saw at most the pool's two sessions.
pub async fn many_callers_share_a_connection_and_each_gets_its_own_answer(base: String) {
    let schema = TestDb::schema(&base);
    let name = format!("shared_{}", random_hex());
    let store = store_named(&schema.url, &name, 2).await;
    let admin = connect_admin(&schema.url).await;

    let inserts: Vec<_> = (0..CALLERS)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { issued(&store, &format!("caller{i}")).await })
        })
        .collect();
    let mut pairs = Vec::with_capacity(CALLERS);
    for insert in inserts {
        pairs.push(insert.await.expect("an insert task"));
    }

    let firsts: Vec<_> = pairs
        .iter()
        .map(|(record, token)| refresh(&store, record, token))
        .collect();
    let mut granted = Vec::with_capacity(CALLERS);
    for (first, (record, _)) in firsts.into_iter().zip(&pairs) {
        let g = first
            .await
            .unwrap()
            .expect("no store error")
            .expect("a first refresh is granted");
        assert!(g.rotated, "{}: rotated", record.subject.username);
        assert_eq!(
            g.subject, record.subject,
            "{}'s own subject",
            record.subject.username
        );
        let successor = store
            .find_by_access(&g.pair.access.hash())
            .await
            .unwrap()
            .expect("the successor is stored");
        assert_eq!(
            successor.family_id, record.family_id,
            "{}",
            record.subject.username
        );
        assert_eq!(successor.generation, record.generation + 1);
        granted.push(g.pair);
    }

    let repeats: Vec<_> = pairs
        .iter()
        .map(|(record, token)| refresh(&store, record, token))
        .collect();
    for ((repeat, first), (record, _)) in repeats.into_iter().zip(&granted).zip(&pairs) {
        let g = repeat
            .await
            .unwrap()
            .expect("no store error")
            .expect("a repeat within the window is granted");
        assert!(
            !g.rotated,
            "{}: a repeat writes nothing",
            record.subject.username
        );
        assert!(
            g.pair == *first,
            "{}: the repeat answers the first refresh's pair",
            record.subject.username
        );
    }
    let rows: i64 = admin
        .query_one("SELECT count(*) FROM tokens", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 2 * CALLERS as i64, "one successor per pair, no more");
    assert!(sessions(&admin, &name).await <= 2);
}

/// A refresh whose conditional statement waits for a row lock (held here
/// by a transaction of another session) holds up the refresh queued
/// behind it on the one shared connection of a pool of two, but not the
/// transactions, which lease the other connection: a user is stored
/// meanwhile. Once the lock goes, both refreshes rotate.
pub async fn a_statement_waiting_for_a_lock_holds_up_only_its_connection(base: String) {
    let schema = TestDb::schema(&base);
    let name = format!("held_{}", random_hex());
    let store = store_named(&schema.url, &name, 2).await;
    let mut admin = connect_admin(&schema.url).await;
    let watch = connect_admin(&schema.url).await;
    let (held_record, held_token) = issued(&store, "held").await;
    let (other_record, other_token) = issued(&store, "other").await;

    let holder = hold_row(&mut admin, &held_token).await;
    let held = refresh(&store, &held_record, &held_token);
    blocked(&watch, &name).await;
    let behind = refresh(&store, &other_record, &other_token);
    // A transaction (`put_user` bumps the revocation epoch in one) runs on
    // the other connection while the shared one waits.
    assert!(
        tokio::time::timeout(Duration::from_secs(10), store.put_user(user("meanwhile")))
            .await
            .expect("a transaction is not held up by a shared connection's wait")
            .unwrap()
    );
    assert!(!held.is_finished(), "the held refresh still waits");
    assert!(
        !behind.is_finished(),
        "the refresh behind it on the same connection waits too"
    );
    holder.rollback().await.unwrap();

    for (outcome, who) in [(held, "held"), (behind, "other")] {
        let g = tokio::time::timeout(Duration::from_secs(10), outcome)
            .await
            .unwrap_or_else(|_| panic!("{who} never answered"))
            .unwrap()
            .expect("no store error")
            .expect("granted");
        assert!(g.rotated, "{who} rotated");
    }
}

/// Every session of a store is ended by the server (as a restart or an
/// administrator would). Once the store counts no working shared
/// connection (it has seen the sockets close), a
/// refresh and an insert, both on shared connections, work at once: the
/// dead connections were given up and new ones opened.
pub async fn a_dead_shared_connection_is_replaced(base: String) {
    let schema = TestDb::schema(&base);
    let name = format!("dead_{}", random_hex());
    let store = store_named(&schema.url, &name, 4).await;
    let admin = connect_admin(&schema.url).await;
    // Open both shared connections (a pool of four shares two).
    for i in 0..4 {
        let (record, token) = issued(&store, &format!("warm{i}")).await;
        refresh(&store, &record, &token)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    let (record, token) = issued(&store, "after").await;

    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while sessions(&admin, &name).await > 0 {
        assert!(Instant::now() < deadline, "the sessions never ended");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Until the store's connection tasks have read the closed sockets.
    while shared_open(&store) > 0 {
        assert!(
            Instant::now() < deadline,
            "the store never saw its sessions end"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let g = refresh(&store, &record, &token)
        .await
        .unwrap()
        .expect("a refresh after the sessions ended")
        .expect("granted");
    assert!(g.rotated);
    issued(&store, "inserted after").await;
    assert!(sessions(&admin, &name).await >= 1);
}

/// The store's sessions named `name`, by backend process id.
async fn session_pids(admin: &tokio_postgres::Client, name: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&name],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    pids.sort_unstable();
    pids
}

/// A refresh whose caller goes away while its conditional statement waits
/// for a row lock leaves the shared connection in step and in use: once
/// the lock goes, the statement commits the rotation nobody heard of, the
/// same refresh token then gets that rotation's pair as a repeat, another
/// refresh works on the same connection, and the store opened no session.
pub async fn a_caller_that_goes_away_leaves_the_connection_in_use(base: String) {
    let schema = TestDb::schema(&base);
    let name = format!("gone_{}", random_hex());
    let store = store_named(&schema.url, &name, 2).await;
    let mut admin = connect_admin(&schema.url).await;
    let watch = connect_admin(&schema.url).await;
    let (warm_record, warm_token) = issued(&store, "warm").await;
    refresh(&store, &warm_record, &warm_token)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let (record, token) = issued(&store, "gone").await;
    let (other_record, other_token) = issued(&store, "other").await;
    let before = session_pids(&watch, &name).await;
    assert!(!before.is_empty());

    let holder = hold_row(&mut admin, &token).await;
    let gone = refresh(&store, &record, &token);
    blocked(&watch, &name).await;
    gone.abort();
    assert!(gone.await.unwrap_err().is_cancelled());
    holder.rollback().await.unwrap();

    let other = refresh(&store, &other_record, &other_token)
        .await
        .unwrap()
        .expect("no store error")
        .expect("granted");
    assert!(other.rotated);
    let again = refresh(&store, &record, &token)
        .await
        .unwrap()
        .expect("no store error")
        .expect("granted");
    assert!(
        !again.rotated,
        "the statement of the caller that went away committed its rotation"
    );
    assert_eq!(session_pids(&watch, &name).await, before, "no new session");
}

/// How many shared connections `store` has open.
fn shared_open(store: &PostgresStore) -> usize {
    store.pool_status().expect("a pool").shared
}

/// Shared connections are opened as the load needs them: refreshes one
/// after the other (as a storm is, once single flight has made it one
/// call per node) keep to one connection, and many at once get more
/// opened (in the background, while they queue on the open one), never
/// more than half the pool.
pub async fn a_light_load_keeps_to_one_connection_and_a_heavy_one_spreads(base: String) {
    let schema = TestDb::schema(&base);
    let name = format!("load_{}", random_hex());
    let store = store_named(&schema.url, &name, 8).await;
    let mut pairs = Vec::new();
    for i in 0..110 {
        pairs.push(issued(&store, &format!("load{i}")).await);
    }
    for (record, token) in &pairs[..10] {
        refresh(&store, record, token)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        shared_open(&store),
        1,
        "one after the other: one connection"
    );

    let at_once: Vec<_> = pairs[10..]
        .iter()
        .map(|(record, token)| refresh(&store, record, token))
        .collect();
    for r in at_once {
        assert!(r.await.unwrap().unwrap().unwrap().rotated);
    }
    // The callers queued on the open connection while more were opened in
    // the background.
    let deadline = Instant::now() + Duration::from_secs(20);
    while shared_open(&store) < 2 {
        assert!(Instant::now() < deadline, "no second connection was opened");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let open = shared_open(&store);
    assert!(
        open <= 4,
        "100 at once: {open} shared connections of at most 4"
    );
}
