//! The first rotation's conditional statement (`rotate.rs`) racing what
//! can change its pair between the unlocked read and the write: another
//! refresh of the same token on another node, and invalidations of the
//! token, its family or its user. Each node is a store with its own pool,
//! so nothing is shared in process; the races run on real connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_domain::refresh::{Denied, RefreshError};
use tessera_domain::token::TokenString;
use tessera_domain::TokenRecord;
use tessera_store::engine::Half;
use tessera_store::{InvalidateOne, RefreshOutcome, RefreshRequest, Store, StoreResult};
use tessera_store_postgres::{PostgresConfig, PostgresStore};
use tessera_testkit::postgres::{connect_admin, random_hex, with_param, TestDb};

use super::{hold_row, issued, NOW, POLICY};

const TRIALS: usize = 120;

/// A node: a store of its own whose sessions carry `name`, without the
/// read cache (so invalidations answer without the grace).
async fn node(url: &str, name: &str) -> Arc<PostgresStore> {
    let config = PostgresConfig {
        cache_ttl: Duration::ZERO,
        ..PostgresConfig::new(with_param(url, "application_name", name))
    };
    let store = PostgresStore::connect(config).await.expect("connecting");
    store.ping().await.expect("a first connection");
    Arc::new(store)
}

pub(super) fn refresh(
    store: &Arc<PostgresStore>,
    record: &TokenRecord,
    token: &TokenString,
) -> tokio::task::JoinHandle<StoreResult<RefreshOutcome>> {
    let store = Arc::clone(store);
    let request = RefreshRequest::new(token.clone(), record.client.clone(), NOW, POLICY);
    tokio::spawn(async move { store.refresh(request).await })
}

/// How a trial takes the pair back while it is refreshed.
#[derive(Debug, Clone, Copy)]
enum Revoke {
    Nothing,
    FamilyByRefresh,
    FamilyByAccess,
    User,
}

/// `(rows of the family, rows of the family still live in either half)`.
async fn family_rows(admin: &tokio_postgres::Client, family: &str) -> (i64, i64) {
    let row = admin
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE NOT (access_invalidated AND refresh_invalidated))
               FROM tokens WHERE family_id = $1",
            &[&family],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// Many trials, each racing two refreshes of one fresh pair on two nodes
/// against an invalidation on a third (or nothing): at most one rotation
/// commits and it is the one successor row of the family (no fork), every
/// grant is that one pair, every refusal says the token was invalidated,
/// and once a family or user invalidation has answered nothing of the
/// family is live, including a successor the race minted.
pub async fn rotations_race_refreshes_and_invalidations_across_nodes(base: String) {
    let schema = TestDb::schema(&base);
    let tag = random_hex();
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(node(&schema.url, &format!("race{i}_{tag}")).await);
    }
    let admin = connect_admin(&schema.url).await;
    let kinds = [
        Revoke::Nothing,
        Revoke::FamilyByRefresh,
        Revoke::FamilyByAccess,
        Revoke::User,
    ];
    let mut rotated_before_revocation = 0;
    for trial in 0..TRIALS {
        let how = kinds[trial % kinds.len()];
        let username = format!("racer{trial}");
        let (record, token) = issued(&nodes[0], &username).await;
        let refreshes = [
            refresh(&nodes[0], &record, &token),
            refresh(&nodes[1], &record, &token),
        ];
        let revoker = {
            let (store, refresh_hash, access_hash) =
                (Arc::clone(&nodes[2]), token.hash(), record.access_hash);
            tokio::spawn(async move {
                match how {
                    Revoke::Nothing => None,
                    Revoke::FamilyByRefresh => Some(store.invalidate_refresh(&refresh_hash).await),
                    Revoke::FamilyByAccess => Some(store.invalidate_access(&access_hash).await),
                    Revoke::User => Some(
                        store
                            .invalidate_matching(Some(&username), None, NOW)
                            .await
                            .map(|_| InvalidateOne::Invalidated),
                    ),
                }
            })
        };
        let mut grants = Vec::new();
        for r in refreshes {
            match r.await.unwrap().expect("no store error") {
                Ok(granted) => grants.push(granted),
                Err(denied) => assert_eq!(
                    denied,
                    Denied::reject(RefreshError::Invalidated),
                    "trial {trial} ({how:?}): only an invalidation refuses"
                ),
            }
        }
        let revoked = revoker.await.unwrap();
        if let Some(answer) = &revoked {
            assert_eq!(
                *answer.as_ref().expect("the invalidation answers"),
                InvalidateOne::Invalidated,
                "trial {trial} ({how:?})"
            );
        }
        let (rows, live) = family_rows(&admin, &record.family_id).await;
        let rotations = grants.iter().filter(|g| g.rotated).count();
        assert!(rows <= 2, "trial {trial} ({how:?}): the family forked");
        assert_eq!(
            rotations as i64,
            rows - 1,
            "trial {trial} ({how:?}): the one successor row is the one rotation answered"
        );
        assert!(
            grants.iter().all(|g| g.pair == grants[0].pair),
            "trial {trial} ({how:?}): every grant is the same pair"
        );
        match how {
            Revoke::Nothing => {
                assert_eq!((grants.len(), rotations, live), (2, 1, 2), "trial {trial}");
            }
            _ => {
                assert_eq!(
                    live, 0,
                    "trial {trial} ({how:?}): a successor outlived the invalidation"
                );
                for g in &grants {
                    let s = nodes[1]
                        .find_by_access(&g.pair.access.hash())
                        .await
                        .unwrap()
                        .expect("a granted successor is stored");
                    assert!(s.access_invalidated && s.refresh_invalidated);
                }
                let again = refresh(&nodes[1], &record, &token).await.unwrap().unwrap();
                assert_eq!(
                    again.unwrap_err(),
                    Denied::reject(RefreshError::Invalidated)
                );
                rotated_before_revocation += rotations;
            }
        }
    }
    eprintln!(
        "rotation: {TRIALS} races, a rotation committed before the invalidation in {rotated_before_revocation} of {}",
        TRIALS * 3 / 4
    );
}

/// Waits until a session named `name` waits for a lock.
pub(super) async fn blocked(watch: &tokio_postgres::Client, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let waiting: i64 = watch
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE application_name = $1 AND wait_event_type = 'Lock'",
                &[&name],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{name} never waited for a lock");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The pair changes after a refresh's unlocked read, before its
/// conditional statement runs, in each way it can, with the order forced:
/// the test holds the presented row in a transaction of its own, starts
/// the racers one after the other, waits until each waits for the row (a
/// refresh waits only in its conditional statement: reads take no lock,
/// so its read is done), then lets go. The refresh answers exactly what
/// it answers without the fast path: refused after an invalidation that
/// committed first (of the family, or of the refresh token alone); a
/// repeat of a racing rotation that committed first; rotated by the
/// locked transaction after only the access half was invalidated; and
/// rotated, then revoked with its successor, when the statement took the
/// row before an invalidation.
pub async fn a_pair_changed_between_the_read_and_the_write_gets_the_locked_answer(base: String) {
    let schema = TestDb::schema(&base);
    let tag = random_hex();
    let (a_name, b_name) = (format!("cas_a_{tag}"), format!("cas_b_{tag}"));
    let (a, b) = (
        node(&schema.url, &a_name).await,
        node(&schema.url, &b_name).await,
    );
    let mut holder_conn = connect_admin(&schema.url).await;
    let watch = connect_admin(&schema.url).await;

    // Each case: what `b` does, whether it goes before `a`'s refresh.
    for case in [
        "invalidated first",
        "refresh half first",
        "refreshed first",
        "access half first",
        "statement first",
    ] {
        let (record, token) = issued(&a, &format!("changed-{}", case.replace(' ', "-"))).await;
        let holder = hold_row(&mut holder_conn, &token).await;
        let b_call = |store: Arc<PostgresStore>| {
            let (refresh_hash, access_hash) = (token.hash(), record.access_hash);
            let request = RefreshRequest::new(token.clone(), record.client.clone(), NOW, POLICY);
            tokio::spawn(async move {
                match case {
                    "refreshed first" => Other::Refreshed(Box::new(store.refresh(request).await)),
                    "access half first" => {
                        Other::Invalidated(store.invalidate_token(Half::Access, &access_hash).await)
                    }
                    "refresh half first" => Other::Invalidated(
                        store.invalidate_token(Half::Refresh, &refresh_hash).await,
                    ),
                    _ => Other::Invalidated(store.invalidate_refresh(&refresh_hash).await),
                }
            })
        };
        let (refreshing, other) = if case == "statement first" {
            let refreshing = refresh(&a, &record, &token);
            blocked(&watch, &a_name).await;
            let other = b_call(Arc::clone(&b));
            blocked(&watch, &b_name).await;
            (refreshing, other)
        } else {
            let other = b_call(Arc::clone(&b));
            blocked(&watch, &b_name).await;
            let refreshing = refresh(&a, &record, &token);
            blocked(&watch, &a_name).await;
            (refreshing, other)
        };
        holder.rollback().await.unwrap();
        let outcome = refreshing.await.unwrap().expect("no store error");
        let other = other.await.unwrap();
        if let Other::Invalidated(answer) = &other {
            assert_eq!(
                *answer.as_ref().unwrap(),
                InvalidateOne::Invalidated,
                "{case}"
            );
        }
        let (rows, live) = family_rows(&watch, &record.family_id).await;
        match case {
            "invalidated first" => {
                assert_eq!(
                    outcome.unwrap_err(),
                    Denied::reject(RefreshError::Invalidated)
                );
                assert_eq!((rows, live), (1, 0), "{case}: no successor was written");
            }
            "refresh half first" => {
                assert_eq!(
                    outcome.unwrap_err(),
                    Denied::reject(RefreshError::Invalidated)
                );
                assert_eq!((rows, live), (1, 1), "{case}: no successor was written");
            }
            "refreshed first" => {
                let Other::Refreshed(first) = other else {
                    unreachable!()
                };
                let first = (*first).unwrap().expect("the racing refresh rotates");
                let granted = outcome.expect("a repeat of the racing rotation");
                assert!(first.rotated && !granted.rotated, "{case}");
                assert_eq!(granted.pair, first.pair, "{case}");
                assert_eq!((rows, live), (2, 2), "{case}: one successor");
            }
            "access half first" => {
                let granted = outcome.expect("the locked transaction rotates");
                assert!(granted.rotated, "{case}");
                assert_eq!((rows, live), (2, 2), "{case}: one successor");
                let s = a
                    .find_by_access(&granted.pair.access.hash())
                    .await
                    .unwrap()
                    .expect("the successor is stored");
                assert!(s.access_usable(NOW), "{case}");
            }
            _ => {
                let granted = outcome.expect("the statement rotated first");
                assert!(granted.rotated, "{case}");
                assert_eq!(
                    (rows, live),
                    (2, 0),
                    "{case}: the invalidation revoked the successor too"
                );
            }
        }
    }
}

/// What the other racer of a case answered.
enum Other {
    Refreshed(Box<StoreResult<RefreshOutcome>>),
    Invalidated(StoreResult<InvalidateOne>),
}

/// The heap page holding the row of pair `id`.
async fn page_of(admin: &tokio_postgres::Client, id: &str) -> i64 {
    admin
        .query_one(
            "SELECT (ctid::text::point)[0]::bigint FROM tokens WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

/// How many of 300 pairs, stored back to back and then rotated one by
/// one, had their row moved to another page by the mark; `packed`: with
/// `tokens` set to fill its pages full, as an operator may.
async fn marks_that_moved(base: &str, packed: bool) -> usize {
    const PAIRS: usize = 300;
    let schema = TestDb::database(base);
    let store = node(&schema.url, &format!("pages_{}", random_hex())).await;
    let admin = connect_admin(&schema.url).await;
    if packed {
        admin
            .batch_execute("ALTER TABLE tokens SET (fillfactor = 100)")
            .await
            .unwrap();
    }
    let mut pairs = Vec::with_capacity(PAIRS);
    for i in 0..PAIRS {
        pairs.push(issued(&store, &format!("u{i}")).await);
    }
    let mut pages = Vec::with_capacity(PAIRS);
    for (record, _) in &pairs {
        pages.push(page_of(&admin, &record.id).await);
    }
    let distinct: std::collections::HashSet<_> = pages.iter().collect();
    assert!(
        distinct.len() > 10,
        "{PAIRS} pairs on {} pages",
        distinct.len()
    );
    let mut moved = 0;
    for ((record, token), page) in pairs.iter().zip(&pages) {
        let outcome = refresh(&store, record, token).await.unwrap().unwrap();
        assert!(outcome.unwrap().rotated);
        if page_of(&admin, &record.id).await != *page {
            moved += 1;
        }
    }
    moved
}

/// Marking a pair refreshed changes no indexed column, and `tokens` keeps
/// room on each page (`TOKENS_FILLFACTOR`), so the new row version stays
/// on its page: a heap-only update, which writes no index entry. With
/// pages filled full, a third or more of the marks move their row to
/// another page and add an entry to each of its indexes. (A few may move
/// anyway while other sessions' snapshots keep PostgreSQL from pruning
/// the old versions that make room: none do when this test runs alone,
/// up to 21 of 300 were seen with other tests running.)
pub async fn a_rotation_marks_its_pair_on_its_own_page(base: String) {
    let with_room = marks_that_moved(&base, false).await;
    let packed = marks_that_moved(&base, true).await;
    assert!(
        packed >= 60 && with_room * 2 <= packed,
        "marks that moved their row: {with_room} of 300 with room left, {packed} on full pages"
    );
}

/// The storage options of `tokens` (`fillfactor=…`).
async fn token_options(admin: &tokio_postgres::Client) -> Vec<String> {
    admin
        .query_one(
            "SELECT COALESCE(reloptions, '{}') FROM pg_class WHERE oid = 'tokens'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// A new store leaves room on the pages of `tokens`; a fill factor its
/// owner set afterwards outlives the next start, a node whose role does
/// not own the table starts without changing it, and the room is not part
/// of the schema's version (an older binary still serves the store).
pub async fn the_fill_factor_is_set_once_and_an_operators_is_kept(base: String) {
    let schema = TestDb::schema(&base);
    let admin = connect_admin(&schema.url).await;
    let store = node(&schema.url, &format!("ff_{}", random_hex())).await;
    assert_eq!(
        token_options(&admin).await,
        [format!(
            "fillfactor={}",
            tessera_store_postgres::TOKENS_FILLFACTOR
        )]
    );
    drop(store);
    admin
        .batch_execute("ALTER TABLE tokens SET (fillfactor = 100)")
        .await
        .unwrap();
    let again = node(&schema.url, &format!("ff_{}", random_hex())).await;
    assert_eq!(token_options(&admin).await, ["fillfactor=100"]);
    drop(again);
    // A node whose role may use the tables but does not own them starts,
    // and leaves the table as it is.
    let role = format!("tessera_guest_{}", random_hex());
    let name = &schema.name;
    admin
        .batch_execute(&format!(
            "ALTER TABLE tokens RESET (fillfactor);
             CREATE ROLE {role} LOGIN;
             GRANT ALL ON SCHEMA {name} TO {role};
             GRANT ALL ON ALL TABLES IN SCHEMA {name} TO {role};"
        ))
        .await
        .unwrap();
    let guest = node(&with_param(&schema.url, "user", &role), "ff_guest").await;
    assert!(guest.get_user("nobody").await.unwrap().is_none());
    let users: Vec<String> = admin
        .query(
            "SELECT DISTINCT usename::text FROM pg_stat_activity WHERE application_name = 'ff_guest'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(users, std::slice::from_ref(&role));
    assert!(token_options(&admin).await.is_empty());
    drop(guest);
    admin
        .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .await
        .unwrap();
    let newest: i32 = admin
        .query_one("SELECT max(version) FROM tessera_schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(newest, 12);
}
