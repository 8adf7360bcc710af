//! Every statement the store runs finds its tokens through an index, even
//! on a table PostgreSQL has never analysed.
//!
//! A new database, or one just restored or upgraded, has no statistics
//! until autovacuum first analyses it, and a statement planned without
//! them may scan every token. One did: the recursive family-tree query of
//! a revocation, and invalidations fell to a few a second; another, the
//! purge, scanned every token once per batch. Here each case of the
//! conformance suite (but those [`left_out`]) runs on a store whose
//! `tokens` table already
//! holds 4,000 pairs of a user and realm no case touches, in a table
//! autovacuum leaves alone, with every prepared statement planned
//! generically (what PostgreSQL settles on after five executions).
//! PostgreSQL's own counter of sequential scans on `tokens`
//! (`pg_stat_user_tables.seq_scan`) must not move while the case runs.

use std::time::{Duration, Instant};

use tessera_store::conformance::{self, DynStore};

use super::{connect, issued};
use tessera_store::Store;
use tessera_store_postgres::PostgresStore;
use tessera_testkit::postgres::{connect_admin, random_hex, with_param, TestDb};
use tessera_testkit::trials::{needs_postgres_async, Trial};

/// Pairs already stored when a case begins.
const FILLER: u32 = 4_000;

/// Cases left out: those that count every stored token (`count_tokens`,
/// which only tests call, reads them all by design; the purge has a trial
/// of its own below), and the races, whose statements are those of the
/// cases that run them one at a time, and which take long.
fn left_out(case: &str) -> bool {
    const COUNT_EVERY_TOKEN: &[&str] = &[
        "issue_and_find",
        "purge",
        "a_backlog_is_purged_in_one_pass",
        "proofs_mint_once_per_realm",
    ];
    COUNT_EVERY_TOKEN.contains(&case) || case.contains("race")
}

pub fn trials() -> Vec<Trial> {
    let mut trials = vec![needs_postgres_async(
        "plans::revocation_statements_use_the_indexes_on_a_table_never_analysed",
        2,
        revocation_statements_use_the_indexes_on_a_table_never_analysed,
    )];
    trials.extend(
        conformance::cases()
            .into_iter()
            .filter(|case| !left_out(case.name))
            .map(|case| {
                needs_postgres_async(format!("plans::{}", case.name), 2, move |base| {
                    scans_no_tokens(base, case.run)
                })
            }),
    );
    trials.push(needs_postgres_async(
        "plans::the_purge_finds_its_batches_through_indexes",
        2,
        the_purge_finds_its_batches_through_indexes,
    ));
    trials.push(needs_postgres_async(
        "plans::every_session_plans_for_point_lookups",
        2,
        every_session_plans_for_point_lookups,
    ));
    trials.push(needs_postgres_async(
        "plans::a_sequential_scan_is_counted",
        2,
        a_sequential_scan_is_counted,
    ));
    trials
}

/// A schema whose `tokens` table holds `FILLER` pairs and has never been
/// analysed, with the sequential scans counted on it so far (every
/// session that filled it has ended, so the count is settled).
async fn filled(base: &str) -> (TestDb, i64) {
    let schema = TestDb::schema(base);
    let filler = format!("tessera_fill_{}", random_hex());
    {
        let url = with_param(&schema.url, "application_name", &filler);
        let store = connect(&url).await;
        let (template, _) = issued(&store, "plan_filler").await;
        let admin = connect_admin(&with_param(base, "application_name", &filler)).await;
        let far = 4_000_000_000_000_000_i64;
        let lasting = format!(
            ", 'realm', 'plan_filler_realm', 'access_expires_at', {far},
             'refresh_expires_at', {far}, 'purge_after', {far}"
        );
        admin
            .batch_execute(&format!(
                "{} DELETE FROM tokens WHERE id = '{}';",
                copies_of_the_pair(&schema.name, FILLER, &lasting),
                template.id
            ))
            .await
            .unwrap();
    }
    let admin = connect_admin(base).await;
    sessions_ended(&admin, &filler).await;
    let analysed: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stats WHERE schemaname = $1 AND tablename = 'tokens'",
            &[&schema.name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(analysed, 0, "the table must have no statistics");
    let scans = seq_scans(&admin, &schema.name).await;
    (schema, scans)
}

/// SQL that stops autovacuum on `schema.tokens`, whose one pair it then
/// copies `n` times, a third of the copies derived from another copy's
/// family; `overrides` (`, 'column', value` …) set more columns of each.
fn copies_of_the_pair(schema: &str, n: u32, overrides: &str) -> String {
    format!(
        "SET search_path TO {schema};
         ALTER TABLE tokens SET (autovacuum_enabled = false);
         INSERT INTO tokens
         SELECT (jsonb_populate_record(t, jsonb_build_object(
                 'id', t.id || '-' || g,
                 'access_hash', '\\x' || encode(sha256(convert_to('a' || g, 'UTF8')), 'hex'),
                 'refresh_hash', '\\x' || encode(sha256(convert_to('r' || g, 'UTF8')), 'hex'),
                 'family_id', 'family-' || g,
                 'parent_family', CASE WHEN g % 3 = 0 THEN 'family-' || (g / 3) END
                 {overrides}))).*
           FROM tokens t, generate_series(1, {n}) g;"
    )
}

/// Waits until no session named `application_name` is left. A session
/// reports its statistics when it ends, so after this they are counted.
async fn sessions_ended(admin: &tokio_postgres::Client, application_name: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&application_name],
            )
            .await
            .unwrap()
            .get(0);
        if left == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{left} sessions of {application_name} did not end"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sequential scans of `schema.tokens` counted so far.
async fn seq_scans(admin: &tokio_postgres::Client, schema: &str) -> i64 {
    table_scans(admin, schema, "tokens").await
}

/// Sequential scans of `schema.table` counted so far.
async fn table_scans(admin: &tokio_postgres::Client, schema: &str, table: &str) -> i64 {
    admin
        .query_one(
            "SELECT seq_scan FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = $2",
            &[&schema, &table],
        )
        .await
        .unwrap()
        .get(0)
}

/// The store on `schema` whose sessions are named `application_name`,
/// with every prepared statement planned generically.
async fn generic_store(schema: &TestDb, application_name: &str) -> PostgresStore {
    // `TestDb::schema` puts the search path in `options`, the URL's last
    // parameter; the plan setting joins it there.
    assert!(schema.url.contains("options=") && !schema.url.contains("plan_cache_mode"));
    let url = with_param(
        &format!("{}%20-c%20plan_cache_mode%3Dforce_generic_plan", schema.url),
        "application_name",
        application_name,
    );
    connect(&url).await
}

async fn scans_no_tokens(
    base: String,
    run: fn(DynStore) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
) {
    let (schema, before) = filled(&base).await;
    let name = format!("tessera_plans_{}", random_hex());
    let store = generic_store(&schema, &name).await;
    run(std::sync::Arc::new(store)).await;
    let admin = connect_admin(&base).await;
    sessions_ended(&admin, &name).await;
    let scans = seq_scans(&admin, &schema.name).await - before;
    assert_eq!(
        scans, 0,
        "the case scanned the whole tokens table {scans} times"
    );
}

/// PostgreSQL plans a statement from the table's statistics, and a new
/// database (or one just restored or upgraded) has none until autovacuum
/// first analyses it. The statements a revocation runs must be planned on
/// the indexes even then: a plan of sequential scans costs a scan of every
/// token per invalidation, and under load invalidations fell to a few a
/// second, some failing with 503. The pairs of an OAuth client being
/// deleted are found through a partial index of their `client` column.
async fn revocation_statements_use_the_indexes_on_a_table_never_analysed(base: String) {
    let admin = connect_admin(&base).await;
    let test_schema = TestDb::schema(&base);
    let (schema, url) = (&test_schema.name, test_schema.url.clone());
    let store = connect(&url).await;
    issued(&store, "someone").await;
    // 60,000 more pairs, a third of them derived from another family, in a
    // table autovacuum leaves alone.
    admin
        .batch_execute(&copies_of_the_pair(schema, 60_000, ""))
        .await
        .unwrap();
    let analysed: i64 = admin
        .query_one(
            &format!(
                "SELECT count(*) FROM pg_stats WHERE schemaname = '{schema}' AND tablename = 'tokens'"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(analysed, 0, "the table must have no statistics yet");

    // Generic plans: what a prepared statement settles on.
    let plan = |name: &str, param: &str, sql: &str| {
        format!(
            "SET search_path TO {schema};
             SET plan_cache_mode = force_generic_plan;
             PREPARE {name} ({param}) AS {sql};"
        )
    };
    let explain = |name: &'static str, param: &'static str| {
        let admin = &admin;
        let arg = if param == "text" {
            "'family-1'"
        } else {
            "ARRAY['family-1']"
        };
        async move {
            let rows = admin
                .simple_query(&format!("EXPLAIN EXECUTE {name}({arg})"))
                .await
                .unwrap();
            rows.iter()
                .filter_map(|m| match m {
                    tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_owned),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    // The setup reproduces the hazard: one recursive statement over the
    // same indexes is planned as sequential scans.
    admin
        .batch_execute(&plan(
            "recursive",
            "text[]",
            "WITH RECURSIVE tree(family) AS (
                 SELECT unnest($1::text[])
                 UNION
                 SELECT t.family_id FROM tokens t JOIN tree ON t.parent_family = tree.family)
             SELECT id FROM tokens WHERE family_id IN (SELECT family FROM tree)
              ORDER BY id FOR UPDATE",
        ))
        .await
        .unwrap();
    let recursive = explain("recursive", "text[]").await;
    assert!(recursive.contains("Seq Scan on tokens"), "{recursive}");

    for (i, (sql, param)) in tessera_store_postgres::REVOCATION_STATEMENTS
        .iter()
        .enumerate()
    {
        let name = ["children", "live_pairs", "client"][i];
        admin.batch_execute(&plan(name, param, sql)).await.unwrap();
        let plan = explain(name, param).await;
        assert!(
            !plan.contains("Seq Scan") && !plan.contains("JIT"),
            "{sql}\nis planned as\n{plan}"
        );
    }
}

/// Batches of expired pairs, API keys and one-time proofs are purged
/// without reading the others (a purge written as `id IN (subquery)` was
/// planned, without statistics, as a hash join over every token, once per
/// batch; and no index found the keys by when they stopped working).
async fn the_purge_finds_its_batches_through_indexes(base: String) {
    const NOW: tessera_domain::Millis = 1_000_000_000_000;
    let (schema, before) = filled(&base).await;
    // 4,000 lasting keys beside one expired long ago, without statistics.
    let filler = format!("tessera_fill_{}", random_hex());
    {
        let url = with_param(&schema.url, "application_name", &filler);
        let store = connect(&url).await;
        let key = tessera_domain::api_key::mint(
            &conformance::subject("expiring"),
            tessera_domain::api_key::NewKey {
                name: "k".into(),
                expires_at: Some(2_000),
                role_descriptors: Default::default(),
                metadata: Default::default(),
            },
            1_000,
        );
        store.insert_api_key(&key.record).await.unwrap();
        let admin = connect_admin(&url).await;
        admin
            .batch_execute(&format!(
                "ALTER TABLE api_keys SET (autovacuum_enabled = false);
                 INSERT INTO api_keys
                 SELECT (jsonb_populate_record(k, jsonb_build_object(
                         'id', k.id || '-' || g, 'expires_at', {}))).*
                   FROM api_keys k, generate_series(1, {FILLER}) g;
                 ALTER TABLE one_time_proofs SET (autovacuum_enabled = false);
                 INSERT INTO one_time_proofs (realm, id, keep_until)
                 SELECT 'saml' || (g % 3), 'proof-' || g, CASE WHEN g <= 12 THEN 1 ELSE {} END
                   FROM generate_series(1, {FILLER}) g;",
                NOW * 4,
                NOW * 4
            ))
            .await
            .unwrap();
    }
    let admin = connect_admin(&base).await;
    sessions_ended(&admin, &filler).await;
    let keys_before = table_scans(&admin, &schema.name, "api_keys").await;
    let proofs_before = table_scans(&admin, &schema.name, "one_time_proofs").await;
    let name = format!("tessera_plans_{}", random_hex());
    {
        let store = generic_store(&schema, &name).await;
        let s = conformance::subject("expiring");
        for i in 0..30 {
            let (record, _) =
                tessera_domain::TokenRecord::issue(&s, s.client_ref(), false, 1_000 + i, 1_000);
            store.insert_token(&record).await.unwrap();
        }
        let mut purged = 0;
        for _ in 0..4 {
            purged += store.purge_expired(NOW, 10).await.unwrap();
        }
        assert_eq!(
            purged, 43,
            "every expired pair, the key and 12 proofs, in batches of 10"
        );
    }
    sessions_ended(&admin, &name).await;
    let scans = seq_scans(&admin, &schema.name).await - before;
    assert_eq!(
        scans, 0,
        "the purge scanned the whole tokens table {scans} times"
    );
    let scans = table_scans(&admin, &schema.name, "api_keys").await - keys_before;
    assert_eq!(scans, 0, "the purge scanned every API key {scans} times");
    let scans = table_scans(&admin, &schema.name, "one_time_proofs").await - proofs_before;
    assert_eq!(scans, 0, "the purge scanned every proof {scans} times");
}

/// The check above can fail: one statement on a column no index covers
/// is counted.
async fn a_sequential_scan_is_counted(base: String) {
    let (schema, before) = filled(&base).await;
    let name = format!("tessera_plans_{}", random_hex());
    {
        let store = generic_store(&schema, &name).await;
        store.ping().await.unwrap();
        let scanner = connect_admin(&with_param(&schema.url, "application_name", &name)).await;
        let n: i64 = scanner
            .query_one("SELECT count(*) FROM tokens WHERE scope = 'none'", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(n, 0);
    }
    let admin = connect_admin(&base).await;
    sessions_ended(&admin, &name).await;
    // A parallel scan counts once per process that took part.
    assert!(seq_scans(&admin, &schema.name).await - before >= 1);
}

/// Every session of the store, leased or shared, runs without parallel
/// workers and without JIT: its statements are point lookups, which a
/// parallel worker slowed from 0.1 ms to 4–12 ms when a large table had no
/// statistics yet. Triggers record the settings of the sessions that write
/// a user (a transaction on a leased connection) and a pair (an insert on a
/// shared connection, after the store's first, which is a transaction).
pub async fn every_session_plans_for_point_lookups(base: String) {
    let schema = TestDb::schema(&base);
    let store = connect(&schema.url).await;
    let admin = connect_admin(&schema.url).await;
    admin
        .batch_execute(
            "CREATE TABLE seen (tbl TEXT, parallel TEXT, jit TEXT);
             CREATE FUNCTION record_settings() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 INSERT INTO seen VALUES (TG_TABLE_NAME,
                     current_setting('max_parallel_workers_per_gather'),
                     current_setting('jit'));
                 RETURN NEW;
             END $$;
             CREATE TRIGGER users_seen BEFORE INSERT ON users
                 FOR EACH ROW EXECUTE FUNCTION record_settings();
             CREATE TRIGGER tokens_seen BEFORE INSERT ON tokens
                 FOR EACH ROW EXECUTE FUNCTION record_settings();",
        )
        .await
        .unwrap();
    assert!(store.put_user(super::user("settings")).await.unwrap());
    for i in 0..3 {
        issued(&store, &format!("settings{i}")).await;
    }
    let seen: Vec<(String, String, String)> = admin
        .query("SELECT tbl, parallel, jit FROM seen", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(seen.len(), 4, "{seen:?}");
    for (table, parallel, jit) in &seen {
        assert_eq!((parallel.as_str(), jit.as_str()), ("0", "off"), "{table}");
    }
}
