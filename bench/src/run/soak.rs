//! `tessera-bench run --soak SECS`: sustained `client_credentials`
//! creation with a short access-token lifetime, sampled every few seconds:
//! the creation rate, the rows stored, the store's size on disk, the
//! server's RSS and the window's p99. Storage is bounded when the live set
//! tracks `rate × (lifetime + cleanup interval)`; the soak fails when it
//! stops doing so, or when the database file keeps growing once the live
//! set is steady.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::client::{micros, new_histogram, open_many};
use crate::pgbench;
use crate::process;

use super::fixture::Tessera;
use super::prelude::Prelude;

/// The soak's settings (`--soak`, `--soak-ttl`, `--soak-cleanup-interval`,
/// `--soak-every`).
pub(super) struct SoakSettings {
    pub(super) secs: f64,
    pub(super) ttl_s: u64,
    pub(super) cleanup_interval_s: u64,
    pub(super) every_s: u64,
}

/// One sample of the soak.
struct Sample {
    at_s: f64,
    rate: f64,
    rows: Option<u64>,
    db_bytes: Option<u64>,
    wal_bytes: Option<u64>,
    rss_kb: Option<u64>,
    p99_ms: f64,
}

/// Runs the soak; `Ok(false)` when storage stopped tracking the load (or
/// a request failed).
pub(super) async fn soak(
    prelude: &Prelude,
    work: &Path,
    store: Option<&str>,
    settings: &SoakSettings,
) -> anyhow::Result<bool> {
    let ttl = format!("{}s", settings.ttl_s);
    let interval = format!("{}s", settings.cleanup_interval_s);
    let flags = ["--access-token-ttl", &ttl, "--cleanup-interval", &interval];
    let tessera = Tessera::start(&prelude.bin, work, store, &flags).await?;
    let db = work.join("data").join("tessera.db");
    let connections = prelude.settings.connections;
    eprintln!(
        "==> soak: {} s of client_credentials on {connections} connections, access tokens live {ttl}, cleanup every {interval}",
        settings.secs
    );

    let ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let window = Arc::new(Mutex::new(new_histogram()));
    let done = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for mut conn in open_many(tessera.addr(), connections).await? {
        let (ok, failed, window, done) = (ok.clone(), failed.clone(), window.clone(), done.clone());
        let req = tessera.client_credentials.clone();
        tasks.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let answer = conn.send(&req).await;
                let took = micros(t0.elapsed());
                match answer {
                    Ok((status, _)) if status.is_success() => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        window.lock().expect("window").saturating_record(took);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }));
    }

    let start = Instant::now();
    let every = Duration::from_secs(settings.every_s.max(1));
    let end = start + Duration::from_secs_f64(settings.secs);
    let mut samples: Vec<Sample> = Vec::new();
    let mut last_ok = 0;
    let mut last_at = start;
    eprintln!(
        "    {:>6} {:>9} {:>10} {:>10} {:>9} {:>8} {:>8}",
        "t (s)", "rate/s", "rows", "db MB", "wal MB", "RSS MB", "p99 ms"
    );
    while Instant::now() < end {
        tokio::time::sleep(every.min(end.saturating_duration_since(Instant::now()))).await;
        let now = Instant::now();
        let total = ok.load(Ordering::Relaxed);
        let hist = std::mem::replace(&mut *window.lock().expect("window"), new_histogram());
        let sample = Sample {
            at_s: (now - start).as_secs_f64(),
            rate: (total - last_ok) as f64 / (now - last_at).as_secs_f64(),
            rows: rows(&db, store),
            db_bytes: size(&db, store),
            wal_bytes: store.is_none().then(|| file_len(&wal(&db))).flatten(),
            rss_kb: process::memory_kb(tessera.server.pid()).map(|(rss, _)| rss),
            p99_ms: p99_ms(&hist),
        };
        (last_ok, last_at) = (total, now);
        eprintln!(
            "    {:>6.0} {:>9.0} {:>10} {:>10} {:>9} {:>8} {:>8.1}",
            sample.at_s,
            sample.rate,
            shown(sample.rows),
            mb(sample.db_bytes),
            mb(sample.wal_bytes),
            shown(sample.rss_kb.map(|kb| kb / 1024)),
            sample.p99_ms
        );
        samples.push(sample);
    }
    done.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?;
    }
    tessera.stop();
    let failures = failed.load(Ordering::Relaxed);
    let size_settles_s = store.map_or(0.0, first_vacuum_s);
    Ok(judge(&samples, settings, size_settles_s, failures))
}

/// How long PostgreSQL may take to first vacuum `tokens`: until then the
/// deleted rows' space is not reusable, and the table grows with every
/// pair created. Its autovacuum looks at each database once per
/// `autovacuum_naptime` (60 s by default); half as long again lets that
/// first vacuum finish.
fn first_vacuum_s(url: &str) -> f64 {
    let naptime = pgbench::psql(
        url,
        "SELECT setting FROM pg_settings WHERE name = 'autovacuum_naptime'",
    )
    .ok()
    .and_then(|s| s.trim().parse::<f64>().ok())
    .unwrap_or(60.0);
    1.5 * naptime
}

/// Whether storage tracked the load: once the live set can be steady
/// (after two lifetimes plus three intervals), every sample's rows stay
/// within 1.5 × `rate × (lifetime + interval)` plus 1,000 rows,
/// the rate being the highest sampled over the lifetime and interval
/// before it (the rows it counts were created then), and the database
/// file grows by at most 20 % (plus 8 MiB) from the first steady sample
/// `size_settles_s` after that (the time PostgreSQL may take to first
/// make the purged rows' space reusable; 0 on SQLite, which reuses freed
/// pages at once) to the last.
fn judge(samples: &[Sample], settings: &SoakSettings, size_settles_s: f64, failures: u64) -> bool {
    let lag = (settings.ttl_s + settings.cleanup_interval_s) as f64;
    let settle = 2.0 * lag + settings.cleanup_interval_s as f64;
    let reach = lag + settings.every_s as f64;
    let steady: Vec<&Sample> = samples.iter().filter(|s| s.at_s >= settle).collect();
    if steady.is_empty() {
        eprintln!("!!! soak: too short to judge (the live set settles after {settle:.0} s)");
        return false;
    }
    let rate = steady.iter().map(|s| s.rate).sum::<f64>() / steady.len() as f64;
    let mut good = failures == 0;
    let mut worst: f64 = 0.0;
    for s in &steady {
        let recent = samples
            .iter()
            .filter(|r| r.at_s <= s.at_s && r.at_s >= s.at_s - reach)
            .map(|r| r.rate)
            .fold(0.0, f64::max);
        let bound = 1.5 * recent * lag + 1_000.0;
        if let Some(rows) = s.rows {
            worst = worst.max(rows as f64 / bound);
            if rows as f64 > bound {
                eprintln!(
                    "!!! soak: at {:.0} s, {rows} rows where at most {bound:.0} (rate {recent:.0}/s) can be live: the stored rows stopped tracking rate × lifetime",
                    s.at_s
                );
                good = false;
            }
        }
    }
    eprintln!(
        "==> soak: mean {rate:.0} creations/s once steady; rows at most {:.0} % of 1.5 × rate × ({lag:.0} s) + 1000",
        worst * 100.0
    );
    let last = steady.last().expect("a first one");
    let Some(sized) = steady.iter().find(|s| s.at_s >= settle + size_settles_s) else {
        eprintln!(
            "!!! soak: too short to judge the size (the store's space is reused after {:.0} s)",
            settle + size_settles_s
        );
        return false;
    };
    if let (Some(a), Some(b)) = (sized.db_bytes, last.db_bytes) {
        let limit = a as f64 * 1.2 + 8.0 * 1024.0 * 1024.0;
        eprintln!(
            "==> soak: database {} MB at {:.0} s, {} MB at the end ({:.0} bytes per live row)",
            mb(Some(a)),
            sized.at_s,
            mb(Some(b)),
            b as f64 / last.rows.unwrap_or(1).max(1) as f64
        );
        if b as f64 > limit {
            eprintln!("!!! soak: the database keeps growing under steady load");
            good = false;
        }
    }
    let p99 = steady.iter().map(|s| s.p99_ms).fold(0.0, f64::max);
    eprintln!("==> soak: worst window p99 once steady: {p99:.1} ms; failed requests: {failures}");
    good
}

/// Rows of stored pairs: `token_pairs` on SQLite (read-only, beside the
/// server), `tokens` on PostgreSQL (through psql).
fn rows(db: &Path, store: Option<&str>) -> Option<u64> {
    match store {
        Some(url) => pgbench::psql(url, "SELECT count(*) FROM tokens")
            .ok()?
            .parse()
            .ok(),
        None => {
            let conn = rusqlite::Connection::open_with_flags(
                db,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
            )
            .ok()?;
            conn.query_row("SELECT COUNT(*) FROM token_pairs", [], |r| r.get(0))
                .ok()
        }
    }
}

/// The database file, or PostgreSQL's `tokens` with its indexes and TOAST.
fn size(db: &Path, store: Option<&str>) -> Option<u64> {
    match store {
        Some(url) => pgbench::psql(url, "SELECT pg_total_relation_size('tokens')")
            .ok()?
            .parse()
            .ok(),
        None => file_len(db),
    }
}

fn wal(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn file_len(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

fn p99_ms(hist: &Histogram<u64>) -> f64 {
    if hist.is_empty() {
        0.0
    } else {
        hist.value_at_quantile(0.99) as f64 / 1000.0
    }
}

fn shown(v: Option<u64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn mb(bytes: Option<u64>) -> String {
    bytes.map_or_else(|| "-".into(), |b| format!("{:.1}", b as f64 / 1_048_576.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: SoakSettings = SoakSettings {
        secs: 120.0,
        ttl_s: 10,
        cleanup_interval_s: 5,
        every_s: 5,
    };

    /// Samples every 5 s at 1,000 creations a second, with `rows(t)` rows
    /// and `db(t)` bytes.
    fn run(rows: impl Fn(f64) -> u64, db: impl Fn(f64) -> u64) -> Vec<Sample> {
        (1..=24)
            .map(|i| {
                let at_s = 5.0 * f64::from(i);
                Sample {
                    at_s,
                    rate: 1_000.0,
                    rows: Some(rows(at_s)),
                    db_bytes: Some(db(at_s)),
                    wal_bytes: None,
                    rss_kb: None,
                    p99_ms: 1.0,
                }
            })
            .collect()
    }

    #[test]
    fn a_live_set_that_tracks_the_load_passes() {
        let steady = run(|_| 13_000, |_| 4 << 20);
        assert!(judge(&steady, &SETTINGS, 0.0, 0));
    }

    #[test]
    fn rows_that_keep_growing_fail() {
        // The purge removing less than expires: rows grow with time.
        let growing = run(|t| (t * 600.0) as u64, |_| 4 << 20);
        assert!(!judge(&growing, &SETTINGS, 0.0, 0));
    }

    #[test]
    fn a_file_that_keeps_growing_fails() {
        let growing = run(|_| 13_000, |t| (t * 1_000_000.0) as u64);
        assert!(!judge(&growing, &SETTINGS, 0.0, 0));
    }

    #[test]
    fn failed_requests_fail() {
        let steady = run(|_| 13_000, |_| 4 << 20);
        assert!(!judge(&steady, &SETTINGS, 0.0, 3));
    }

    #[test]
    fn on_postgresql_the_size_is_judged_once_autovacuum_has_run() {
        // The table grows until the first vacuum at 60 s, then holds.
        let vacuumed = run(|_| 13_000, |t| (t.min(60.0) * 1_000_000.0) as u64);
        assert!(!judge(&vacuumed, &SETTINGS, 0.0, 0));
        assert!(judge(&vacuumed, &SETTINGS, 40.0, 0));
        // A soak that ends before the size can settle is not judged good.
        assert!(!judge(&vacuumed, &SETTINGS, 100.0, 0));
    }
}
