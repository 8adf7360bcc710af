//! With `--store postgres://…`: `pgbench -N` against the same server, as a
//! yardstick for what that PostgreSQL sustains in small durable write
//! transactions.
//!
//! pgbench's tables go into a database of their own created on the same
//! server (or, without the right to create databases, a schema of their own
//! in Tessera's database), so Tessera's tables are never touched; both are
//! dropped afterwards. Nothing here fails the run: a missing pgbench or psql,
//! or a failure on the way, leaves a reason in the report.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::measure::Settings;
use crate::process;

/// pgbench's threads (`-j`), at most.
const THREADS: usize = 2;
/// Slots left free beyond those already in use and the reserved ones.
const SPARE_SLOTS: i64 = 2;

#[derive(Debug, Default, Serialize)]
pub struct PgbenchReport {
    /// `measured`, `skipped` or `failed`.
    pub status: &'static str,
    pub reason: Option<String>,
    pub version: Option<String>,
    /// Where its tables lived.
    pub isolation: Option<String>,
    pub scale: u32,
    pub clients: usize,
    pub threads: usize,
    pub max_connections: Option<i64>,
    pub warmup_s: u64,
    pub duration_s: u64,
    pub init_s: Option<f64>,
    /// Transactions per second, excluding the time to open connections.
    pub tps: Option<f64>,
    pub latency_avg_ms: Option<f64>,
    pub transactions: Option<u64>,
    pub failed_transactions: Option<u64>,
    pub cleaned_up: bool,
    /// Tessera's write scenarios as a share of `tps`.
    pub ratios: Vec<PgbenchRatio>,
}

#[derive(Debug, Serialize)]
pub struct PgbenchRatio {
    pub scenario: String,
    pub req_per_s: f64,
    pub to_pgbench: f64,
}

/// Whether `url` selects Tessera's PostgreSQL store.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

fn skipped(reason: String) -> PgbenchReport {
    eprintln!("==> NOTE: pgbench -N skipped: {reason}");
    PgbenchReport {
        status: "skipped",
        reason: Some(reason),
        ..Default::default()
    }
}

/// Runs `pgbench -N` against the server of `url`. Call it while Tessera is
/// stopped, so that the two do not compete.
pub async fn measure(url: &str, settings: &Settings, work: &Path) -> PgbenchReport {
    let version = match process::tool_version("pgbench") {
        Ok(v) => v,
        Err(why) => {
            return skipped(format!(
                "{why}; pgbench comes with Debian's postgresql-client package"
            ))
        }
    };
    if let Err(why) = process::tool_version("psql") {
        return skipped(format!(
            "{why}; psql (postgresql-client) is needed to create pgbench's database"
        ));
    }
    let mut report = PgbenchReport {
        status: "failed",
        version: Some(version),
        scale: if settings.mode == "smoke" { 1 } else { 10 },
        warmup_s: settings.warmup_s.ceil() as u64,
        duration_s: settings.duration_s.ceil().max(1.0) as u64,
        ..Default::default()
    };

    // Connection slots: as many clients as the load generator's connections,
    // but no more than the server has free.
    let free = match psql(
        url,
        "SELECT current_setting('max_connections')::int, \
                current_setting('superuser_reserved_connections')::int, \
                (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')",
    ) {
        Ok(out) => parse_slots(&out),
        Err(why) => return skipped(format!("cannot query the server: {why}")),
    };
    let Some((max, reserved, in_use)) = free else {
        return skipped("cannot read max_connections from the server".into());
    };
    report.max_connections = Some(max);
    let available = max - reserved - in_use - SPARE_SLOTS;
    if available < 1 {
        return skipped(format!(
            "no free connection slots (max_connections {max}, {reserved} reserved, {in_use} in use)"
        ));
    }
    report.clients = settings
        .connections
        .min(usize::try_from(available).unwrap_or(1));
    report.threads = report.clients.min(THREADS);

    let Some(place) = Place::create(url) else {
        return skipped(
            "could neither create a database nor a schema for pgbench's tables (see above)".into(),
        );
    };
    report.isolation = Some(place.describe());
    let target = place.url(url);
    eprintln!(
        "==> pgbench -N: {} clients, -j {}, scale {}, tables in {}",
        report.clients,
        report.threads,
        report.scale,
        place.describe()
    );

    let outcome = run_pgbench(&target, &mut report, work).await;
    report.cleaned_up = place.drop_it(url);
    match outcome {
        Ok(()) => report.status = "measured",
        Err(why) => {
            eprintln!("!!! pgbench -N failed: {why}");
            report.reason = Some(why);
        }
    }
    if !report.cleaned_up {
        eprintln!(
            "!!! could not drop pgbench's {}; drop it by hand",
            place.describe()
        );
    }
    report
}

async fn run_pgbench(target: &str, report: &mut PgbenchReport, work: &Path) -> Result<(), String> {
    let init_log = work.join("pgbench-init.log");
    let started = Instant::now();
    let mut init = Command::new("pgbench");
    init.args(["-i", "-q", "-s", &report.scale.to_string(), target]);
    let status = process::run_logged(init, &init_log, Duration::from_secs(900)).await?;
    if !status.success() {
        return Err(format!("pgbench -i failed ({status}): {}", tail(&init_log)));
    }
    report.init_s = Some(started.elapsed().as_secs_f64());

    let run = |secs: u64| {
        let mut cmd = Command::new("pgbench");
        cmd.args([
            "-N",
            "-c",
            &report.clients.to_string(),
            "-j",
            &report.threads.to_string(),
            "-T",
            &secs.to_string(),
            target,
        ]);
        cmd
    };
    let limit = |secs: u64| Duration::from_secs(secs + 300);
    if report.warmup_s > 0 {
        eprintln!("    warm-up: {} s", report.warmup_s);
        let log = work.join("pgbench-warmup.log");
        let status =
            process::run_logged(run(report.warmup_s), &log, limit(report.warmup_s)).await?;
        if !status.success() {
            return Err(format!("the warm-up run failed ({status}): {}", tail(&log)));
        }
    }
    let log = work.join("pgbench-run.log");
    let status =
        process::run_logged(run(report.duration_s), &log, limit(report.duration_s)).await?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let figures = parse_output(&text);
    report.latency_avg_ms = figures.latency_avg_ms;
    report.transactions = figures.transactions;
    report.failed_transactions = figures.failed;
    if !status.success() {
        return Err(format!("pgbench -N failed ({status}): {}", tail(&log)));
    }
    let Some(tps) = figures.tps else {
        return Err(format!("no tps line in pgbench's output: {}", tail(&log)));
    };
    report.tps = Some(tps);
    eprintln!(
        "    {tps:.0} tx/s, latency average {} ms, {} failed",
        figures
            .latency_avg_ms
            .map(|l| format!("{l:.2}"))
            .unwrap_or_else(|| "?".into()),
        figures.failed.unwrap_or(0)
    );
    Ok(())
}

/// Runs one SQL command with psql; its unaligned, tuples-only output.
pub(crate) fn psql(url: &str, sql: &str) -> Result<String, String> {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

fn parse_slots(out: &str) -> Option<(i64, i64, i64)> {
    let mut fields = out.trim().split('|').map(|f| f.trim().parse::<i64>().ok());
    Some((fields.next()??, fields.next()??, fields.next()??))
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

/// Where pgbench's tables go.
enum Place {
    Database(String),
    /// A schema in Tessera's database, when a database cannot be created.
    Schema(String),
}

impl Place {
    fn create(url: &str) -> Option<Self> {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let name = format!("tessera_bench_pgbench_{}_{stamp}", std::process::id());
        let db_error = match psql(url, &format!("CREATE DATABASE {name}")) {
            Ok(_) => return Some(Self::Database(name)),
            Err(e) => e,
        };
        match psql(url, &format!("CREATE SCHEMA {name}")) {
            Ok(_) => {
                eprintln!("    (cannot create a database: {db_error}; using a schema instead)");
                Some(Self::Schema(name))
            }
            Err(schema_error) => {
                eprintln!(
                    "!!! pgbench: CREATE DATABASE failed: {db_error}; CREATE SCHEMA failed: {schema_error}"
                );
                None
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Database(name) => format!("database {name} (same server)"),
            Self::Schema(name) => format!("schema {name} of Tessera's database"),
        }
    }

    /// The URL pgbench connects to.
    fn url(&self, url: &str) -> String {
        match self {
            Self::Database(name) => target_url(url, Some(name), "public"),
            Self::Schema(name) => target_url(url, None, name),
        }
    }

    /// Drops the database or schema; whether that worked.
    fn drop_it(&self, url: &str) -> bool {
        match self {
            Self::Database(name) => {
                // WITH (FORCE) needs PostgreSQL 13; older servers get the plain form.
                psql(url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).is_ok()
                    || psql(url, &format!("DROP DATABASE IF EXISTS {name}")).is_ok()
            }
            Self::Schema(name) => {
                psql(url, &format!("DROP SCHEMA IF EXISTS {name} CASCADE")).is_ok()
            }
        }
    }
}

/// `url` with its database replaced by `database` (when given) and its
/// `options` parameter replaced by one that sets `search_path`, so that
/// pgbench creates and finds its tables there and only there.
fn target_url(url: &str, database: Option<&str>, search_path: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = location.split_once('/').unwrap_or((location, ""));
    let database = database.unwrap_or(path);
    let mut params: Vec<String> = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("options="))
        .map(str::to_owned)
        .collect();
    params.push(format!("options=-c%20search_path%3D{search_path}"));
    format!("{scheme}://{authority}/{database}?{}", params.join("&"))
}

#[derive(Debug, Default, PartialEq)]
struct Figures {
    tps: Option<f64>,
    latency_avg_ms: Option<f64>,
    transactions: Option<u64>,
    failed: Option<u64>,
}

/// Reads pgbench's summary: the tps without connection time (PostgreSQL 14
/// and later say "without initial connection time", older versions
/// "excluding connections establishing").
fn parse_output(text: &str) -> Figures {
    let number = |s: &str| {
        s.split_whitespace()
            .next()
            .and_then(|n| n.parse::<f64>().ok())
    };
    let mut figures = Figures::default();
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("tps = ") {
            if rest.contains("without initial connection time")
                || rest.contains("excluding connections establishing")
            {
                figures.tps = number(rest);
            }
        } else if let Some(rest) = line.strip_prefix("latency average = ") {
            figures.latency_avg_ms = number(rest);
        } else if let Some(rest) = line.strip_prefix("number of transactions actually processed: ")
        {
            figures.transactions = rest.split('/').next().and_then(|n| n.trim().parse().ok());
        } else if let Some(rest) = line.strip_prefix("number of failed transactions: ") {
            figures.failed = number(rest).map(|n| n as u64);
        }
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pgbench_15_output() {
        let text = "pgbench (15.18 (Debian 15.18-0+deb12u1))\n\
            transaction type: <builtin: simple update>\n\
            scaling factor: 10\n\
            query mode: simple\n\
            number of clients: 64\n\
            number of threads: 2\n\
            maximum number of tries: 1\n\
            duration: 10 s\n\
            number of transactions actually processed: 23456\n\
            number of failed transactions: 0 (0.000%)\n\
            latency average = 27.321 ms\n\
            initial connection time = 85.123 ms\n\
            tps = 2342.512345 (without initial connection time)\n";
        assert_eq!(
            parse_output(text),
            Figures {
                tps: Some(2342.512345),
                latency_avg_ms: Some(27.321),
                transactions: Some(23456),
                failed: Some(0),
            }
        );
    }

    #[test]
    fn reads_older_pgbench_output() {
        let text = "number of transactions actually processed: 1000/1000\n\
            latency average = 4.000 ms\n\
            tps = 250.100000 (including connections establishing)\n\
            tps = 260.200000 (excluding connections establishing)\n";
        let f = parse_output(text);
        assert_eq!(f.tps, Some(260.2));
        assert_eq!(f.transactions, Some(1000));
        assert_eq!(f.failed, None);
    }

    #[test]
    fn target_urls_swap_the_database_and_set_the_search_path() {
        assert_eq!(
            target_url(
                "postgres://u:p@127.0.0.1:5432/tessera",
                Some("bench"),
                "public"
            ),
            "postgres://u:p@127.0.0.1:5432/bench?options=-c%20search_path%3Dpublic"
        );
        assert_eq!(
            target_url(
                "postgresql://u@h/tessera?sslmode=disable&options=-c%20search_path%3Dtessera",
                None,
                "pgb"
            ),
            "postgresql://u@h/tessera?sslmode=disable&options=-c%20search_path%3Dpgb"
        );
        assert_eq!(
            target_url("postgres://h:1", Some("bench"), "public"),
            "postgres://h:1/bench?options=-c%20search_path%3Dpublic"
        );
    }

    #[test]
    fn reads_connection_slots() {
        assert_eq!(parse_slots("200|3|1\n"), Some((200, 3, 1)));
        assert_eq!(parse_slots("200|3"), None);
        assert_eq!(parse_slots(""), None);
    }

    #[test]
    fn knows_postgres_urls() {
        assert!(is_postgres("postgres://u@h/db"));
        assert!(is_postgres("postgresql://u@h/db"));
        assert!(!is_postgres("sqlite:/tmp/x.db"));
    }
}
