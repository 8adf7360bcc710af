//! The embedded store's own tests: upgrades of older files, the read
//! cache against other processes, and the conformance suite.

use super::*;
use tessera_store::conformance::{assert_upgraded_for_oauth, bare_user, StoreExt};

/// The first released schema: one `tokens` table with every column of
/// a pair inline, before tokens had a scope and before OAuth clients.
const FIRST_SCHEMA: &str = "
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE users (username TEXT PRIMARY KEY, password_hash TEXT NOT NULL,
        roles TEXT NOT NULL, full_name TEXT, email TEXT, metadata TEXT NOT NULL,
        enabled INTEGER NOT NULL);
    CREATE TABLE roles (name TEXT PRIMARY KEY, descriptor TEXT NOT NULL);
    CREATE TABLE tokens (id TEXT PRIMARY KEY, access_hash BLOB NOT NULL UNIQUE,
        refresh_hash BLOB UNIQUE, family_id TEXT NOT NULL, generation INTEGER NOT NULL,
        username TEXT NOT NULL, realm TEXT NOT NULL, subject TEXT NOT NULL,
        client TEXT NOT NULL, created_at INTEGER NOT NULL,
        access_expires_at INTEGER NOT NULL, refresh_expires_at INTEGER,
        access_invalidated INTEGER NOT NULL, refresh_invalidated INTEGER NOT NULL,
        refreshed_at INTEGER, successor_id TEXT, sealed_successor BLOB,
        purge_after INTEGER NOT NULL);
    CREATE INDEX tokens_by_username ON tokens (username);
    CREATE INDEX tokens_by_family ON tokens (family_id);";

/// A database of the first release (one `tokens` table, no scope, no
/// OAuth clients) is upgraded at open: its pairs move to the current
/// layout unchanged (a refreshed one included), still refresh and
/// replay, and read as unrestricted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn databases_from_the_first_release_are_upgraded_in_place() {
    use tessera_domain::refresh::RefreshPolicy;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let s = tessera_store::conformance::subject("old");
    let (old, old_pair) = TokenRecord::issue(&s, s.client_ref(), true, 1_000, 60_000);
    let (mut refreshed, refreshed_pair) =
        TokenRecord::issue(&s, s.client_ref(), true, 1_000, 60_000);
    let policy = RefreshPolicy {
        access_ttl_ms: 60_000,
        window_ms: 30_000,
        reuse_revokes_family: true,
    };
    let rt = refreshed_pair.refresh.clone().unwrap();
    let tessera_domain::refresh::Decision::Rotate {
        successor,
        refreshed: done,
        pair: successor_pair,
    } = tessera_domain::refresh::decide(
        &refreshed,
        &RefreshRequest::new(rt.clone(), refreshed.client.clone(), 2_000, policy),
    )
    else {
        panic!("a fresh pair rotates");
    };
    refreshed.refreshed = Some(done);
    {
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(FIRST_SCHEMA).unwrap();
        for record in [&old, &refreshed, &*successor] {
            let r = tessera_store::codec::TokenRow::from_record(record).unwrap();
            conn.execute(
                "INSERT INTO tokens VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
                params![
                    r.id, r.access_hash, r.refresh_hash, r.family_id, r.generation, r.username,
                    r.realm, r.subject, r.client, r.created_at, r.access_expires_at,
                    r.refresh_expires_at, r.access_invalidated, r.refresh_invalidated,
                    r.refreshed_at, r.successor_id, r.sealed_successor, r.purge_after
                ],
            )
            .unwrap();
        }
    }
    {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.count_tokens().await.unwrap(), 3);
        for (record, pair) in [(&old, &old_pair), (&refreshed, &refreshed_pair)] {
            let found = store.stored(&pair.access).await;
            assert_eq!(&found, record);
        }
        assert_eq!(store.stored(&successor_pair.access).await, *successor);
        // The refreshed pair replays its successor, byte for byte.
        let replay = store
            .refresh(RefreshRequest::new(
                rt.clone(),
                refreshed.client.clone(),
                3_000,
                policy,
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(replay.pair, successor_pair);
        assert!(!replay.rotated);
        // The moved pairs are still one family: invalidating the first
        // invalidates its successor.
        store.invalidate_refresh(&rt.hash()).await.unwrap();
        let successor_now = store.stored(&successor_pair.access).await;
        assert!(successor_now.access_invalidated && successor_now.refresh_invalidated);
        let unrelated = store.stored(&old_pair.access).await;
        assert!(!unrelated.access_invalidated);
    }
    for _ in 0..2 {
        // Twice: the upgrade is idempotent.
        let store = SqliteStore::open(&path).unwrap();
        assert_upgraded_for_oauth(&store, &s, &old, &old_pair).await;
    }
}

/// The serving process caches; another process (here another store on
/// the same file) invalidates: once that returned, the serving process
/// never answers from its old entry. Many trials, with readers racing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_by_other_processes_reach_the_serving_cache() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let server = Arc::new(SqliteStore::open_serving(&path).unwrap());
    let cli = SqliteStore::open(&path).unwrap();
    let s = tessera_store::conformance::subject("shared");
    for trial in 0..100 {
        let (record, pair) = TokenRecord::issue(&s, s.client_ref(), true, 1_000, 60_000);
        // Inserted by either side; both are plain inserts.
        if trial % 2 == 0 {
            cli.insert_token(&record).await.unwrap();
        } else {
            server.insert_token(&record).await.unwrap();
        }
        let hash = pair.access.hash();
        for _ in 0..2 {
            let found = server.find_by_access(&hash).await.unwrap().unwrap();
            assert!(!found.access_invalidated);
        }
        let returned = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (server, returned) = (Arc::clone(&server), Arc::clone(&returned));
                tokio::spawn(async move {
                    let mut after = 0;
                    while after < 3 {
                        let started_after = returned.load(Ordering::SeqCst);
                        let found = server.find_by_access(&hash).await.unwrap().unwrap();
                        if started_after {
                            assert!(found.access_invalidated, "trial {trial}: stale read");
                            after += 1;
                        }
                    }
                })
            })
            .collect();
        assert_eq!(
            cli.invalidate_access(&hash).await.unwrap(),
            InvalidateOne::Invalidated
        );
        returned.store(true, Ordering::SeqCst);
        for r in readers {
            r.await.unwrap();
        }
    }
    // Users too: a password changed elsewhere is what the server reads.
    let upsert = |hash: &str| bare_user("u", hash, &[]);
    server.put_user(upsert("h1")).await.unwrap();
    for _ in 0..2 {
        assert_eq!(
            server.get_user("u").await.unwrap().unwrap().password_hash,
            "h1"
        );
    }
    cli.set_password("u", "h2", false).await.unwrap();
    assert_eq!(
        server.get_user("u").await.unwrap().unwrap().password_hash,
        "h2"
    );
}

/// One serving process per database file; the next may start once it
/// has gone, and a process that dies mid-lease ends its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_serving_process_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.db");
    let first = SqliteStore::open_serving(&path).unwrap();
    let Err(e) = SqliteStore::open_serving(&path) else {
        panic!("a second serving store opened the same file");
    };
    assert!(e.to_string().contains("another tessera server"), "{e}");
    drop(first);
    let second = SqliteStore::open_serving(&path).unwrap();

    // A guest that takes a lease and vanishes (its socket closes).
    let cache = second.cache.clone().unwrap();
    let lease = cache::lease_address(&path).unwrap();
    let before = generations(&cache);
    let mut stream = std::os::unix::net::UnixStream::connect_addr(&lease).unwrap();
    let mut granted = [0u8; 1];
    std::io::Read::read_exact(&mut stream, &mut granted).unwrap();
    assert_eq!(
        generations(&cache),
        [None; 4],
        "nothing is served from the cache during a lease"
    );
    drop(stream);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while generations(&cache).contains(&None) {
        assert!(
            std::time::Instant::now() < deadline,
            "the lease never ended"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    for (after, before) in generations(&cache).iter().zip(before) {
        assert!(after > &before, "the ended lease moved every generation");
    }
}

/// Every table's generation, `None` while a write on it is in flight.
fn generations(cache: &ReadCache) -> [Option<u64>; 4] {
    [
        cache.tokens.stable(),
        cache.users.stable(),
        cache.roles.stable(),
        cache.api_keys.stable(),
    ]
}

/// A write moves the generations of the tables it names and no other:
/// a refresh leaves the users, roles and keys cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_move_only_the_tables_they_name() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_serving(&dir.path().join("tables.db")).unwrap();
    let cache = store.cache.clone().unwrap();
    store.put_user(bare_user("carol", "h", &[])).await.unwrap();
    let s = tessera_store::conformance::subject("carol");
    let (record, pair) = TokenRecord::issue(&s, s.client_ref(), true, 1_000, 60_000);
    store.insert_token(&record).await.unwrap();

    let before = generations(&cache);
    let refreshed = store
        .refresh(RefreshRequest::new(
            pair.refresh.unwrap(),
            s.client_ref(),
            2_000,
            tessera_domain::refresh::RefreshPolicy {
                access_ttl_ms: 60_000,
                window_ms: 30_000,
                reuse_revokes_family: true,
            },
        ))
        .await
        .unwrap();
    assert!(refreshed.is_ok());
    let after = generations(&cache);
    assert!(
        after[0] > before[0],
        "a refresh moves the tokens' generation"
    );
    assert_eq!(after[1..], before[1..], "and no other");

    store.set_enabled("carol", false, false).await.unwrap();
    let last = generations(&cache);
    assert!(
        last[1] > after[1],
        "a user change moves the users' generation"
    );
    assert_eq!(
        (last[0], &last[2..]),
        (after[0], &after[2..]),
        "and no other"
    );
}

/// The one conformance suite, run against real SQLite files, as the serving
/// process opens them (with the read cache) and as any other process does.
mod conformance {
    use std::sync::Arc;

    use tessera_store::conformance::DynStore;

    use crate::SqliteStore;

    /// A store on a fresh file in a temporary directory that lives as long
    /// as the returned guard.
    fn fresh_file(
        open: fn(&std::path::Path) -> tessera_store::StoreResult<SqliteStore>,
    ) -> Option<(DynStore, tempfile::TempDir)> {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("store.db")).unwrap();
        Some((Arc::new(store) as DynStore, dir))
    }

    mod serving {
        async fn fresh() -> Option<(super::DynStore, tempfile::TempDir)> {
            super::fresh_file(super::SqliteStore::open_serving)
        }
        tessera_store::conformance_tests!(fresh);
    }

    mod not_serving {
        async fn fresh() -> Option<(super::DynStore, tempfile::TempDir)> {
            super::fresh_file(super::SqliteStore::open)
        }
        tessera_store::conformance_tests!(fresh);
    }
}

/// Asserts that SQLite plans `sql` (with `params`) on a fresh store's file
/// through `index`, with no step that scans `table` (as the query names it).
fn assert_planned_on(sql: &str, params: impl rusqlite::Params, index: &str, table: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plan.sqlite");
    drop(SqliteStore::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap()
        .query_map(params, |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(plan.iter().any(|step| step.contains(index)), "{plan:?}");
    let scan = format!("SCAN {table}");
    assert!(
        !plan
            .iter()
            .any(|step| step == &scan || step.starts_with(&format!("{scan} "))),
        "{plan:?}"
    );
}

/// SAML logout finds a NameID's pairs through its index, never by reading
/// every grant.
#[test]
fn logout_by_nameid_uses_its_index() {
    let (sql, _) = pairs::live_pairs_query(pairs::Whose::NameId {
        realm: "saml1",
        nameid: "n",
        session: None,
    });
    assert_planned_on(
        &sql,
        params![0, "saml1", "n", None::<String>],
        "grants_by_saml_nameid",
        "g",
    );
}

/// The purge finds API keys past their retention through their index,
/// never by reading every key.
#[test]
fn the_api_key_purge_uses_its_index() {
    assert_planned_on(
        crate::records::PURGE_API_KEYS,
        params![0, 10],
        "api_keys_by_retention",
        "api_keys",
    );
}

/// The purge finds expired one-time proofs through their index and
/// deletes them by key, never by reading every proof.
#[test]
fn the_proof_purge_uses_its_index() {
    assert_planned_on(
        crate::records::PURGE_PROOFS,
        params![0, 10],
        "one_time_proofs_by_age",
        "one_time_proofs",
    );
}

/// A pair's read finds its refresh record, in the successor's row,
/// through the family index: the next pair of the family, never a scan.
#[test]
fn a_refresh_record_is_found_through_the_family_index() {
    assert_planned_on(
        &format!("{} WHERE p.refresh_key = ?1", pairs::SELECT_PAIR),
        params![1],
        "token_pairs_by_family",
        "x",
    );
}

/// A process that does not serve a file never upgrades its schema while a
/// server holds the file: that server runs an older tessera (a current one
/// would have upgraded it at start), which the upgrade would break. A
/// server takes the lock before it upgrades, and the first opener after
/// the old server has gone upgrades the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_served_file_is_never_upgraded_from_under_its_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("served.db");
    drop(SqliteStore::open(&path).unwrap());
    // Back to version 1's layout (its `refreshes` table, empty).
    Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TABLE refreshes (seq INTEGER PRIMARY KEY, refreshed_at INTEGER NOT NULL,
                 successor_id BLOB NOT NULL, sealed_successor BLOB NOT NULL);
             UPDATE meta SET value = '1' WHERE key = 'schema_version';",
        )
        .unwrap();
    let layout = || -> (String, i64) {
        Connection::open(&path)
            .unwrap()
            .query_row(
                "SELECT (SELECT value FROM meta WHERE key = 'schema_version'),
                        (SELECT COUNT(*) FROM sqlite_master WHERE name = 'refreshes')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    // A server of version 1 serves the file: it holds the lock.
    let old_server = std::fs::File::create(cache::lock_path(&path)).unwrap();
    old_server.lock().unwrap();

    let Err(guest) = SqliteStore::open(&path) else {
        panic!("a guest upgraded a file that a server serves");
    };
    let guest = guest.to_string();
    assert!(
        guest.contains("is serving") && guest.contains("schema version 1, older than version 2"),
        "{guest}"
    );
    assert_eq!(layout(), ("1".to_owned(), 1));
    let Err(server) = SqliteStore::open_serving(&path) else {
        panic!("a second server opened a served file");
    };
    assert!(
        server.to_string().contains("another tessera server"),
        "{server}"
    );
    assert_eq!(
        layout(),
        ("1".to_owned(), 1),
        "the second server upgraded first"
    );

    drop(old_server);
    drop(SqliteStore::open(&path).unwrap());
    assert_eq!(layout(), ("2".to_owned(), 0));
}

/// A file of schema version 1 kept refresh records in a `refreshes` table
/// keyed by the refreshed pair. At open they move into the successors'
/// rows: a refreshed pair reads as before and replays its successor byte
/// for byte; one whose successor is gone can never rotate again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_records_of_version_1_move_into_the_successors() {
    use tessera_domain::refresh::{RefreshError, RefreshPolicy};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let policy = RefreshPolicy {
        access_ttl_ms: 60_000,
        window_ms: 30_000,
        reuse_revokes_family: true,
    };
    let s = tessera_store::conformance::subject("v1");
    let (kept, kept_pair) = TokenRecord::issue(&s, s.client_ref(), true, 1_000, 60_000);
    let (orphan, orphan_pair) = TokenRecord::issue(&s, s.client_ref(), true, 1_000, 60_000);
    let refresh = |pair: &tessera_domain::token::TokenPair, now| {
        RefreshRequest::new(
            pair.refresh.clone().unwrap(),
            kept.client.clone(),
            now,
            policy,
        )
    };
    let (before, successor_pair, lost_successor) = {
        let store = SqliteStore::open(&path).unwrap();
        store.insert_token(&kept).await.unwrap();
        store.insert_token(&orphan).await.unwrap();
        let successor = store.granted(refresh(&kept_pair, 2_000)).await;
        let lost = store.granted(refresh(&orphan_pair, 2_000)).await;
        let before = store.stored(&kept_pair.access).await;
        assert!(before.refreshed.is_some());
        (
            before,
            successor.pair,
            store.stored(&lost.pair.access).await,
        )
    };
    {
        // Back to version 1's layout, and the orphan's successor gone.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE refreshes (seq INTEGER PRIMARY KEY, refreshed_at INTEGER NOT NULL,
                 successor_id BLOB NOT NULL, sealed_successor BLOB NOT NULL);
             INSERT INTO refreshes
               SELECT p.seq, s.created_at, s.id, s.sealed FROM token_pairs p JOIN token_pairs s
                 ON IFNULL(s.family_seq, s.seq) = IFNULL(p.family_seq, p.seq)
                AND s.generation = p.generation + 1;
             UPDATE token_pairs SET sealed = NULL;
             ALTER TABLE token_pairs DROP COLUMN sealed;
             UPDATE meta SET value = '1' WHERE key = 'schema_version';",
        )
        .unwrap();
        let lost_id = hex_bytes(&lost_successor.id);
        assert_eq!(
            conn.execute("DELETE FROM token_pairs WHERE id = ?1", [lost_id])
                .unwrap(),
            1
        );
        let records: i64 = conn
            .query_row("SELECT COUNT(*) FROM refreshes", [], |r| r.get(0))
            .unwrap();
        assert_eq!(records, 2);
    }
    for _ in 0..2 {
        // Twice: the upgrade is idempotent.
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.stored(&kept_pair.access).await, before);
        let replay = store.granted(refresh(&kept_pair, 3_000)).await;
        assert!(!replay.rotated);
        assert_eq!(replay.pair, successor_pair);
        assert_eq!(
            store.refusal(refresh(&orphan_pair, 3_000)).await,
            RefreshError::Invalidated,
            "a used refresh token whose successor is gone never rotates again"
        );
        let conn = Connection::open(&path).unwrap();
        let (version, tables): (String, i64) = conn
            .query_row(
                "SELECT (SELECT value FROM meta WHERE key = 'schema_version'),
                        (SELECT COUNT(*) FROM sqlite_master WHERE name = 'refreshes')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((version.as_str(), tables), ("2", 0));
    }
}

/// The 16 bytes a random hex id is stored as.
fn hex_bytes(id: &str) -> Vec<u8> {
    (0..id.len() / 2)
        .map(|i| u8::from_str_radix(&id[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// The store itself refuses a second successor of one pair, whatever its
/// caller decided: a family stays a chain.
#[test]
fn a_pair_never_gets_a_second_successor() {
    use tessera_domain::refresh::{decide, Decision, RefreshPolicy};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    let s = tessera_store::conformance::subject("chain");
    let (record, pair) = TokenRecord::issue(&s, s.client_ref(), true, 1_000, 60_000);
    let seq = pairs::insert(&conn, &record, None).unwrap();
    let (at, _) = pairs::find(&conn, pairs::Half::Access, &pair.access.hash())
        .unwrap()
        .unwrap();
    assert_eq!(at.seq, seq);
    let policy = RefreshPolicy::elasticsearch(true);
    let rotate = |now| {
        let request = RefreshRequest::new(
            pair.refresh.clone().unwrap(),
            record.client.clone(),
            now,
            policy,
        );
        let Decision::Rotate {
            successor,
            refreshed,
            ..
        } = decide(&record, &request)
        else {
            panic!("an unused pair rotates");
        };
        pairs::insert_successor(&conn, &successor, at, &refreshed)
    };
    rotate(2_000).unwrap();
    let second = rotate(3_000).unwrap_err();
    assert!(second.to_string().contains("fork"), "{second}");
    let stored: i64 = conn
        .query_row("SELECT COUNT(*) FROM token_pairs", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 2);
}
