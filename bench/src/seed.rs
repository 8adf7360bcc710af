//! Seeding many tokens straight into the embedded store, before the server
//! starts: through HTTP a million tokens would take longer than the
//! benchmark itself. The records are made by the domain's own
//! `TokenRecord::issue`, so they are exactly what the server would store.
//!
//! Two ways to write them: [`seed_via_store`] calls the store's own
//! `insert_token` from many tasks (the writer groups their commits); it is
//! faithful but, as the table grows, runs at only a couple of thousand
//! tokens a second on a small machine. [`bulk_seed`] writes the same rows
//! through the embedded store's own `bulk_insert` (its row layout, on a
//! connection of its own) in a few large transactions, which takes about a
//! minute for a million tokens.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use rand::Rng;
use tessera_domain::authn::NATIVE_REALM;
use tessera_domain::{Authentication, AuthenticationType, TokenRecord};
use tessera_store::Store;
use tessera_store_sqlite::SqliteStore;

/// Seeded access tokens stay usable this long, whatever the run's length.
const SEEDED_ACCESS_TTL_MS: i64 = 6 * 3_600 * 1_000;
/// Concurrent inserters: enough to fill the writer's group commits.
const SEED_TASKS: usize = 1024;

pub struct Seeded {
    /// A uniform random sample of the seeded access tokens.
    pub sample: Vec<String>,
    pub elapsed: Duration,
}

/// The identity the bootstrap superuser authenticates as.
fn elastic() -> Authentication {
    Authentication {
        username: "elastic".into(),
        roles: vec!["superuser".into()],
        full_name: None,
        email: None,
        metadata: Default::default(),
        enabled: true,
        authentication_realm: NATIVE_REALM,
        lookup_realm: NATIVE_REALM,
        authentication_type: AuthenticationType::Realm,
        token: None,
        api_key: None,
    }
}

/// Rows per transaction of the bulk load.
const BULK_CHUNK: u64 = 250_000;

fn now_ms() -> anyhow::Result<i64> {
    Ok(i64::try_from(
        SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis(),
    )?)
}

/// Inserts `count` password-grant-like token pairs (access and refresh) for
/// `elastic` into the SQLite database at `db`, in large transactions,
/// keeping about `keep` of the access token strings.
pub fn bulk_seed(db: &Path, count: u64, keep: usize) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    // The store creates (or checks) the schema; then it is closed again.
    drop(SqliteStore::open(db).with_context(|| format!("cannot open {}", db.display()))?);
    let subject = elastic();
    let client = subject.client_ref();
    let now = now_ms()?;
    let keep_probability = (keep as f64 / count.max(1) as f64).min(1.0);
    let mut rng = rand::thread_rng();
    let mut sample = Vec::with_capacity(keep + keep / 10);
    let mut done = 0;
    while done < count {
        let n = BULK_CHUNK.min(count - done);
        let records = (0..n).map(|_| {
            let (record, pair) =
                TokenRecord::issue(&subject, client.clone(), true, now, SEEDED_ACCESS_TTL_MS);
            if rng.gen_bool(keep_probability) {
                sample.push(pair.access.expose().to_owned());
            }
            record
        });
        tessera_store_sqlite::bulk_insert(db, records, BULK_CHUNK as usize)?;
        done += n;
        if count > BULK_CHUNK {
            eprintln!(
                "    {done} / {count} tokens written ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    Ok(Seeded {
        sample,
        elapsed: started.elapsed(),
    })
}

/// Inserts `count` password-grant-like token pairs (access and refresh) for
/// `elastic` through the store's own `insert_token`, from many concurrent
/// tasks, keeping about `keep` of the access token strings.
pub async fn seed_via_store(db: &Path, count: u64, keep: usize) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    let store =
        Arc::new(SqliteStore::open(db).with_context(|| format!("cannot open {}", db.display()))?);
    let subject = elastic();
    let client = subject.client_ref();
    let now = now_ms()?;
    let keep_probability = (keep as f64 / count.max(1) as f64).min(1.0);
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(SEED_TASKS);
    for _ in 0..SEED_TASKS {
        let (store, subject, client, next) = (
            Arc::clone(&store),
            subject.clone(),
            client.clone(),
            Arc::clone(&next),
        );
        tasks.push(tokio::spawn(async move {
            let mut kept = Vec::new();
            loop {
                if next.fetch_add(1, Ordering::Relaxed) >= count {
                    return anyhow::Ok(kept);
                }
                let (record, pair) =
                    TokenRecord::issue(&subject, client.clone(), true, now, SEEDED_ACCESS_TTL_MS);
                store.insert_token(&record).await?;
                if rand::thread_rng().gen_bool(keep_probability) {
                    kept.push(pair.access.expose().to_owned());
                }
            }
        }));
    }
    let mut sample = Vec::with_capacity(keep + keep / 10);
    for task in tasks {
        sample.extend(task.await.context("a seeding task panicked")??);
    }
    drop(store);
    Ok(Seeded {
        sample,
        elapsed: started.elapsed(),
    })
}

/// Folds the WAL into the database file (so the file sizes are the stored
/// size) and counts the stored tokens.
pub fn checkpoint_and_count(db: &Path) -> anyhow::Result<u64> {
    let conn = rusqlite::Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    // The store's writer thread may still be closing its connection.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))?;
        if busy == 0 || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let n: i64 = conn.query_row("SELECT count(*) FROM token_pairs", [], |r| r.get(0))?;
    Ok(u64::try_from(n)?)
}

/// Total size of the regular files in `dir`.
pub fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}
