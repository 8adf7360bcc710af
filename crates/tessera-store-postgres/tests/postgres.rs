//! Tests against a real PostgreSQL server, named by the environment
//! variable `TESSERA_TEST_POSTGRES_URL` (`.ci/postgres.sh start` runs one
//! and prints the line that sets it). This binary has its own harness
//! (`tessera_testkit::trials`): when the server cannot be reached the tests
//! are reported as ignored, saying why, except under CI, where they fail.
//! Each test works in a schema (or database) of its own, dropped after it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_store::conformance::{self, DynStore, StoreExt};
use tessera_store::{Store, StoreError, UserUpsert};
use tessera_store_postgres::{PostgresConfig, PostgresStore};
use tessera_testkit::postgres::{connect_admin, server_address, with_address, TestDb};
use tessera_testkit::proxy::{Mode, Proxy};
use tessera_testkit::trials::{self, needs_postgres_async, Trial};

/// The time and refresh policy of the refresh tests (`rotation`, `storms`).
const NOW: tessera_domain::Millis = 1_700_000_000_000;
const POLICY: tessera_domain::refresh::RefreshPolicy =
    tessera_domain::refresh::RefreshPolicy::elasticsearch(true);

/// A stored pair of `username` with a refresh token.
async fn issued(
    store: &PostgresStore,
    username: &str,
) -> (
    tessera_domain::TokenRecord,
    tessera_domain::token::TokenString,
) {
    let s = conformance::subject(username);
    let (record, pair) =
        tessera_domain::TokenRecord::issue(&s, s.client_ref(), true, NOW, POLICY.access_ttl_ms);
    store.insert_token(&record).await.expect("insert");
    (record, pair.refresh.expect("a refresh token"))
}

/// A transaction of another session holding the row of `token` locked
/// until it ends.
async fn hold_row<'a>(
    admin: &'a mut tokio_postgres::Client,
    token: &tessera_domain::token::TokenString,
) -> tokio_postgres::Transaction<'a> {
    let holder = admin.transaction().await.unwrap();
    holder
        .execute(
            "SELECT 1 FROM tokens WHERE refresh_hash = $1 FOR UPDATE",
            &[&token.hash().0.as_slice()],
        )
        .await
        .unwrap();
    holder
}

#[path = "postgres/plans.rs"]
mod plans;
#[path = "postgres/rotation.rs"]
mod rotation;
#[path = "postgres/shared.rs"]
mod shared;
#[path = "postgres/storms.rs"]
mod storms;
#[path = "postgres/tls.rs"]
mod tls;

fn main() {
    let mut tests: Vec<Trial> = conformance::cases()
        .into_iter()
        .map(|case| {
            needs_postgres_async(format!("conformance::{}", case.name), 4, move |base| {
                conformance_case(base, case.run)
            })
        })
        .collect();
    tests.extend([
        needs_postgres_async(
            "concurrent_connects_migrate_once",
            4,
            concurrent_connects_migrate_once,
        ),
        needs_postgres_async(
            "migration_4_finds_the_sources_of_older_pairs",
            2,
            migration_4_finds_the_sources_of_older_pairs,
        ),
        needs_postgres_async(
            "migration_3_upgrades_a_version_2_database",
            2,
            migration_3_upgrades_a_version_2_database,
        ),
        needs_postgres_async(
            "a_newer_schema_is_reported_and_refused",
            2,
            a_newer_schema_is_reported_and_refused,
        ),
        needs_postgres_async(
            "concurrent_bootstraps_create_one_user",
            4,
            concurrent_bootstraps_create_one_user,
        ),
        needs_postgres_async(
            "outage_is_unavailable_and_recovers",
            4,
            outage_is_unavailable_and_recovers,
        ),
        needs_postgres_async(
            "statement_timeout_cancels_a_blocked_call",
            4,
            statement_timeout_cancels_a_blocked_call,
        ),
        needs_postgres_async(
            "storms::a_storm_on_one_node_writes_once_and_answers_one_pair",
            4,
            storms::a_storm_on_one_node_writes_once_and_answers_one_pair,
        ),
        needs_postgres_async(
            "storms::followers_get_the_pair_when_the_leader_goes_away",
            4,
            storms::followers_get_the_pair_when_the_leader_goes_away,
        ),
        needs_postgres_async(
            "rotation::rotations_race_refreshes_and_invalidations_across_nodes",
            4,
            rotation::rotations_race_refreshes_and_invalidations_across_nodes,
        ),
        needs_postgres_async(
            "rotation::a_pair_changed_between_the_read_and_the_write_gets_the_locked_answer",
            4,
            rotation::a_pair_changed_between_the_read_and_the_write_gets_the_locked_answer,
        ),
        needs_postgres_async(
            "rotation::a_rotation_marks_its_pair_on_its_own_page",
            2,
            rotation::a_rotation_marks_its_pair_on_its_own_page,
        ),
        needs_postgres_async(
            "rotation::the_fill_factor_is_set_once_and_an_operators_is_kept",
            2,
            rotation::the_fill_factor_is_set_once_and_an_operators_is_kept,
        ),
        needs_postgres_async(
            "shared::many_callers_share_a_connection_and_each_gets_its_own_answer",
            4,
            shared::many_callers_share_a_connection_and_each_gets_its_own_answer,
        ),
        needs_postgres_async(
            "shared::a_statement_waiting_for_a_lock_holds_up_only_its_connection",
            2,
            shared::a_statement_waiting_for_a_lock_holds_up_only_its_connection,
        ),
        needs_postgres_async(
            "shared::a_caller_that_goes_away_leaves_the_connection_in_use",
            2,
            shared::a_caller_that_goes_away_leaves_the_connection_in_use,
        ),
        needs_postgres_async(
            "shared::a_light_load_keeps_to_one_connection_and_a_heavy_one_spreads",
            4,
            shared::a_light_load_keeps_to_one_connection_and_a_heavy_one_spreads,
        ),
        needs_postgres_async(
            "shared::a_dead_shared_connection_is_replaced",
            2,
            shared::a_dead_shared_connection_is_replaced,
        ),
        needs_postgres_async(
            "the_purge_waits_no_grace_and_caches_follow_it",
            2,
            the_purge_waits_no_grace_and_caches_follow_it,
        ),
    ]);
    tests.extend(tls::trials());
    tests.extend(plans::trials());
    trials::run(tests);
}

/// A store on `url` (which must be reachable).
async fn connect(url: &str) -> PostgresStore {
    PostgresStore::connect(PostgresConfig::new(url))
        .await
        .expect("connecting the store")
}

/// One case of the shared conformance suite, on a fresh schema.
async fn conformance_case(
    base: String,
    run: fn(DynStore) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) {
    let schema = TestDb::schema(&base);
    let store = connect(&schema.url).await;
    run(Arc::new(store) as DynStore).await;
}

fn user(name: &str) -> UserUpsert {
    conformance::bare_user(name, "hash", &["superuser"])
}

/// The schema versions recorded in `table` (`tessera_schema_migrations`,
/// qualified with a schema where needed).
async fn migrations(client: &tokio_postgres::Client, table: &str) -> Vec<i32> {
    client
        .query(
            &format!("SELECT version FROM {table} ORDER BY version"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Nodes starting at once on an empty database all come up, and the
/// schema is applied exactly once.
async fn concurrent_connects_migrate_once(base: String) {
    let db = TestDb::database(&base);
    let url = db.url.clone();
    {
        let connects: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { PostgresStore::connect(PostgresConfig::new(url)).await })
            })
            .collect();
        let mut stores = Vec::new();
        for c in connects {
            stores.push(c.await.unwrap().expect("every concurrent connect succeeds"));
        }
        let check = connect_admin(&url).await;
        let versions = migrations(&check, "tessera_schema_migrations").await;
        assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert!(stores[0].put_user(user("a")).await.unwrap());
        assert_eq!(
            stores[3].get_user("a").await.unwrap().unwrap().username,
            "a"
        );
        // A later start finds the schema in place.
        let again = connect(&url).await;
        assert_eq!(again.list_users().await.unwrap().len(), 1);
    }
}

/// Migration 4 fills in where the pairs stored before it came from: a pair
/// an API key minted under version 3 dies when the key is invalidated.
async fn migration_4_finds_the_sources_of_older_pairs(base: String) {
    let admin = connect_admin(&base).await;
    let test_schema = TestDb::schema(&base);
    let (schema, url) = (&test_schema.name, test_schema.url.clone());
    let mut key = tessera_domain::api_key::mint(
        &conformance::subject("owner"),
        tessera_domain::api_key::NewKey {
            name: "k".into(),
            expires_at: None,
            role_descriptors: Default::default(),
            metadata: Default::default(),
        },
        1_000,
    )
    .record;
    key.created_at = 1_000;
    let by_key = key.authentication();
    let (old, old_pair) =
        tessera_domain::TokenRecord::issue(&by_key, by_key.client_ref(), true, 1_000, 60_000);
    {
        let store = connect(&url).await;
        store.insert_api_key(&key).await.unwrap();
        store.insert_token(&old).await.unwrap();
    }
    // Back to what version 3 left behind.
    admin
        .batch_execute(&format!(
            "ALTER TABLE {schema}.tokens DROP COLUMN not_after, DROP COLUMN parent_family,
               DROP COLUMN api_key_id, DROP COLUMN client_username;
             DELETE FROM {schema}.tessera_schema_migrations WHERE version = 4;"
        ))
        .await
        .unwrap();
    let store = connect(&url).await;
    let found = store.stored(&old_pair.access).await;
    assert_eq!(found, old);
    let filter = tessera_store::ApiKeyFilter {
        ids: Some(vec![key.id.clone()]),
        ..Default::default()
    };
    store.invalidate_api_keys(&filter, 2_000).await.unwrap();
    let found = store.stored(&old_pair.access).await;
    assert!(found.access_invalidated && found.refresh_invalidated);
}

/// A database at schema version 2 (before OAuth) is brought to version 3
/// at connect: its tokens keep working, unrestricted, and scoped tokens and
/// OAuth clients can be stored.
async fn migration_3_upgrades_a_version_2_database(base: String) {
    let admin = connect_admin(&base).await;
    let test_schema = TestDb::schema(&base);
    let (schema, url) = (&test_schema.name, test_schema.url.clone());
    let subject = conformance::subject("old");
    let (old, old_pair) =
        tessera_domain::TokenRecord::issue(&subject, subject.client_ref(), true, 1_000, 60_000);
    {
        let store = connect(&url).await;
        store.insert_token(&old).await.unwrap();
    }
    // Back to what version 2 left behind.
    admin
        .batch_execute(&format!(
            "ALTER TABLE {schema}.tokens DROP COLUMN scope;
             DROP TABLE {schema}.oauth_clients;
             DELETE FROM {schema}.tessera_schema_migrations WHERE version = 3;"
        ))
        .await
        .unwrap();
    let store = connect(&url).await;
    let versions = migrations(&admin, &format!("{schema}.tessera_schema_migrations")).await;
    assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    conformance::assert_upgraded_for_oauth(&store, &subject, &old, &old_pair).await;
}

/// `check_schema` tells an empty, a current and a newer database apart,
/// changing nothing; connecting to a newer one fails naming both versions.
async fn a_newer_schema_is_reported_and_refused(base: String) {
    let admin = connect_admin(&base).await;
    let test_schema = TestDb::schema(&base);
    let (schema, url) = (&test_schema.name, test_schema.url.clone());
    let (empty, current) = PostgresStore::check_schema(PostgresConfig::new(url.clone()))
        .await
        .unwrap();
    assert_eq!(empty, None);
    drop(connect(&url).await);
    let (stored, _) = PostgresStore::check_schema(PostgresConfig::new(url.clone()))
        .await
        .unwrap();
    assert_eq!(stored, Some(current));
    let newer = current + 1;
    admin
        .batch_execute(&format!(
            "INSERT INTO {schema}.tessera_schema_migrations (version) VALUES ({newer})"
        ))
        .await
        .unwrap();
    let (stored, _) = PostgresStore::check_schema(PostgresConfig::new(url.clone()))
        .await
        .unwrap();
    assert_eq!(stored, Some(newer));
    let refused = PostgresStore::connect(PostgresConfig::new(url.clone())).await;
    let message = match refused {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a newer schema was accepted"),
    };
    assert!(
        message.contains(&format!("version {newer}"))
            && message.contains(&format!("version {current}")),
        "{message}"
    );
}

/// Nodes bootstrapping at once (each with its own pool) create exactly one user.
async fn concurrent_bootstraps_create_one_user(base: String) {
    for round in 0..10 {
        let schema = TestDb::schema(&base);
        let url = schema.url.clone();
        let mut nodes = Vec::new();
        for _ in 0..4 {
            let mut config = PostgresConfig::new(url.clone());
            config.pool_size = 2;
            nodes.push(Arc::new(PostgresStore::connect(config).await.unwrap()));
        }
        let tasks: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let node = Arc::clone(node);
                // Half the nodes use the same name, half different ones.
                let name = if i % 2 == 0 {
                    "elastic".to_string()
                } else {
                    format!("node{i}")
                };
                tokio::spawn(async move { node.bootstrap_user(user(&name)).await })
            })
            .collect();
        let mut created = 0;
        for t in tasks {
            created += usize::from(t.await.unwrap().expect("bootstrap"));
        }
        assert_eq!(
            created, 1,
            "round {round}: exactly one bootstrap creates a user"
        );
        assert_eq!(
            nodes[0].list_users().await.unwrap().len(),
            1,
            "round {round}"
        );
        drop(nodes);
    }
}

/// Switches the proxy's mode; then the clients get a moment to notice
/// closed sockets.
async fn set(proxy: &Proxy, mode: Mode) {
    tokio::task::block_in_place(|| proxy.set(mode));
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn assert_unavailable<T: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) {
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"));
    let took = started.elapsed();
    eprintln!("{what}: {took:?}");
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{what}: expected Unavailable, got {result:?}"
    );
    assert!(took < Duration::from_secs(5), "{what} took {took:?}");
}

/// A database that goes away, or stops answering, makes calls fail fast
/// with `Unavailable`; once it is back the same store works again.
///
/// While stalled, a call on a pooled connection ends at the client-side
/// attempt limit (twice the statement timeout) and a call that needs a new
/// connection ends at the connect timeout; both paths are taken below.
async fn outage_is_unavailable_and_recovers(base: String) {
    let schema = TestDb::schema(&base);
    let proxy = Proxy::start(server_address(&base));
    let url = with_address(&schema.url, proxy.addr);
    let config = PostgresConfig {
        pool_size: 4,
        connect_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_secs(1),
        acquire_timeout: Duration::from_secs(1),
        // Reads of the database itself: a cached user would answer for up
        // to the cache's lifetime without asking it.
        cache_ttl: Duration::ZERO,
        ..PostgresConfig::new(url)
    };
    let store = PostgresStore::connect(config.clone()).await.unwrap();
    assert!(store.put_user(user("joe")).await.unwrap());
    // Open a few pooled connections for the outage to break.
    let (a, b, c) = tokio::join!(store.get_user("joe"), store.get_user("joe"), store.ping());
    a.unwrap();
    b.unwrap();
    c.unwrap();
    // Pairs to refresh during and after each outage; the refreshes and the
    // inserts run on the shared connections (`src/shared.rs`).
    let mut pairs = Vec::new();
    for i in 0..6 {
        pairs.push(issued(&store, &format!("outage{i}")).await);
    }
    let refresh = |(record, token): &(
        tessera_domain::TokenRecord,
        tessera_domain::token::TokenString,
    )| {
        store.refresh(tessera_store::RefreshRequest::new(
            token.clone(),
            record.client.clone(),
            NOW,
            POLICY,
        ))
    };

    for (round, outage) in [Mode::Cut, Mode::Stall, Mode::Cut].into_iter().enumerate() {
        set(&proxy, outage).await;
        assert_unavailable(
            &format!("connect during {outage:?}"),
            PostgresStore::connect(config.clone()),
        )
        .await;
        assert_unavailable(&format!("ping during {outage:?}"), store.ping()).await;
        assert_unavailable(
            &format!("get_user during {outage:?}"),
            store.get_user("joe"),
        )
        .await;
        assert_unavailable(
            &format!("put_user during {outage:?}"),
            store.put_user(user("amy")),
        )
        .await;
        assert_unavailable(
            &format!("refresh during {outage:?}"),
            refresh(&pairs[2 * round]),
        )
        .await;
        let (record, _) = &pairs[2 * round + 1];
        assert_unavailable(
            &format!("insert_token during {outage:?}"),
            store.insert_token(record),
        )
        .await;
        set(&proxy, Mode::Open).await;
        store.ping().await.expect("ping after the outage");
        let granted = refresh(&pairs[2 * round + 1])
            .await
            .expect("refresh after the outage")
            .expect("granted");
        assert!(granted.rotated);
        issued(&store, &format!("after{round}")).await;
        let joe = store
            .get_user("joe")
            .await
            .expect("get_user after the outage");
        assert_eq!(joe.unwrap().username, "joe");
        store
            .put_user(user("amy"))
            .await
            .expect("put_user after the outage");
    }
}

/// The statement timeout is set on the store's sessions: a statement
/// stuck behind a lock is cancelled by the server, the call answers
/// `Unavailable`, and the connection stays usable.
async fn statement_timeout_cancels_a_blocked_call(base: String) {
    let mut admin = connect_admin(&base).await;
    let test_schema = TestDb::schema(&base);
    let schema = &test_schema.name;
    let store = PostgresStore::connect(PostgresConfig {
        pool_size: 1,
        statement_timeout: Duration::from_millis(800),
        ..PostgresConfig::new(test_schema.url.clone())
    })
    .await
    .unwrap();
    assert!(store.put_user(user("joe")).await.unwrap());

    let locker = admin.transaction().await.unwrap();
    locker
        .batch_execute(&format!(
            "LOCK TABLE {schema}.users IN ACCESS EXCLUSIVE MODE"
        ))
        .await
        .unwrap();
    let started = Instant::now();
    let blocked = store.get_user("joe").await;
    let took = started.elapsed();
    // Cancelled by the server (query_canceled), not by the client-side limit.
    assert!(
        matches!(&blocked, Err(StoreError::Unavailable(m)) if m.contains("57014")),
        "{blocked:?}"
    );
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(5),
        "{took:?}"
    );
    locker.rollback().await.unwrap();

    assert_eq!(
        store.get_user("joe").await.unwrap().unwrap().username,
        "joe"
    );
}

/// The purge takes nothing back: what it deletes can no longer be used
/// (a pair past its last usable instant), so it answers without the
/// grace, which would hold each batch `T` and a pass to a few thousand
/// rows a second. Caches still follow it: the node that purged forgets
/// its entries of what it deleted at once, and a batch that deleted
/// anything moves the revocation epoch, so other nodes stop serving theirs
/// within `T`; a batch that deleted nothing moves nothing.
async fn the_purge_waits_no_grace_and_caches_follow_it(base: String) {
    let schema = TestDb::schema(&base);
    let store = connect(&schema.url).await;
    let admin = connect_admin(&schema.url).await;
    let epoch = || async {
        let n: i64 = admin
            .query_one("SELECT CAST(SUM(n) AS BIGINT) FROM cache_epoch", &[])
            .await
            .unwrap()
            .get(0);
        n
    };
    let waits = || store.pool_status().expect("a pool").grace_waits;
    let s = conformance::subject("expiring");
    let (record, pair) = tessera_domain::TokenRecord::issue(&s, s.client_ref(), false, NOW, 1_000);
    store.insert_token(&record).await.unwrap();
    let hash = pair.access.hash();
    assert!(store.find_by_access(&hash).await.unwrap().is_some());
    let (epoch_before, waits_before) = (epoch().await, waits());

    assert_eq!(store.purge_expired(NOW, 10).await.unwrap(), 0);
    assert_eq!(
        epoch().await,
        epoch_before,
        "an empty purge moved the epoch"
    );
    assert_eq!(
        store
            .purge_expired(record.purgeable_after(), 10)
            .await
            .unwrap(),
        1
    );
    assert_eq!(waits(), waits_before, "the purge waited the grace");
    assert!(
        epoch().await > epoch_before,
        "the purge did not move the epoch"
    );
    // Served from this node's cache a moment ago, gone now.
    assert!(store.find_by_access(&hash).await.unwrap().is_none());
}
