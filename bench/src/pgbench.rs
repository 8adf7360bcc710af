//! With `--store postgres://…`: `pgbench -N` against the same server, as a
//! yardstick for what that PostgreSQL sustains in small durable write
//! transactions.
//!
//! pgbench's tables go into a database of their own created on the same
//! server (or, without the right to create databases, a schema of their own
//! in Tessera's database), so Tessera's tables are never touched; both are
//! dropped afterwards. The tables are made once ([`prepare`]) and pgbench
//! runs against them as often as the run asks ([`Yardstick::run`]): right
//! before and right after the scenario it judges, while Tessera is idle,
//! because what one PostgreSQL server sustains moves by a factor of two
//! over a few minutes (checkpoints, autovacuum, the disk's own state), as
//! the ceiling does around the authentication scenarios. Nothing here
//! fails the run: a missing pgbench or psql, or a failure on the way,
//! leaves a reason in the report.

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
    /// The length of each measured run.
    pub duration_s: u64,
    pub init_s: Option<f64>,
    /// The mean of the runs' transactions per second (each excluding the
    /// time to open connections): the yardstick.
    pub tps: Option<f64>,
    /// The mean of the runs' average latencies.
    pub latency_avg_ms: Option<f64>,
    /// Over all runs.
    pub transactions: Option<u64>,
    pub failed_transactions: Option<u64>,
    /// Each measured run, in order.
    pub runs: Vec<PgbenchRun>,
    pub cleaned_up: bool,
    /// Tessera's write scenarios as a share of `tps`.
    pub ratios: Vec<PgbenchRatio>,
}

/// One measured pgbench run.
#[derive(Debug, Serialize)]
pub struct PgbenchRun {
    /// When it ran, e.g. "before refresh".
    pub when: &'static str,
    pub tps: f64,
    pub latency_avg_ms: Option<f64>,
    pub transactions: Option<u64>,
    pub failed_transactions: Option<u64>,
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

/// pgbench's tables, initialised on the server of a PostgreSQL store, to
/// run against; [`Yardstick::finish`] drops them and gives the report.
pub struct Yardstick {
    url: String,
    place: Place,
    target: String,
    report: PgbenchReport,
    warmed_up: bool,
}

/// Makes pgbench's tables on the server of `url` (`pgbench -i`). Call it
/// while Tessera is idle: its connections count against the server's
/// slots, and pgbench gets as many clients as the load generator has
/// connections, but no more than the server has free. `Err`: the report
/// saying why nothing can be measured.
pub async fn prepare(
    url: &str,
    settings: &Settings,
    work: &Path,
) -> Result<Yardstick, PgbenchReport> {
    let version = match process::tool_version("pgbench") {
        Ok(v) => v,
        Err(why) => {
            return Err(skipped(format!(
                "{why}; pgbench comes with Debian's postgresql-client package"
            )))
        }
    };
    if let Err(why) = process::tool_version("psql") {
        return Err(skipped(format!(
            "{why}; psql (postgresql-client) is needed to create pgbench's database"
        )));
    }
    let mut report = PgbenchReport {
        status: "failed",
        version: Some(version),
        scale: if settings.mode == "smoke" { 1 } else { 10 },
        warmup_s: settings.warmup_s.ceil() as u64,
        duration_s: settings.duration_s.ceil().max(1.0) as u64,
        ..Default::default()
    };

    let free = match psql(
        url,
        "SELECT current_setting('max_connections')::int, \
                current_setting('superuser_reserved_connections')::int, \
                (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')",
    ) {
        Ok(out) => parse_slots(&out),
        Err(why) => return Err(skipped(format!("cannot query the server: {why}"))),
    };
    let Some((max, reserved, in_use)) = free else {
        return Err(skipped(
            "cannot read max_connections from the server".into(),
        ));
    };
    report.max_connections = Some(max);
    let available = max - reserved - in_use - SPARE_SLOTS;
    if available < 1 {
        return Err(skipped(format!(
            "no free connection slots (max_connections {max}, {reserved} reserved, {in_use} in use)"
        )));
    }
    report.clients = settings
        .connections
        .min(usize::try_from(available).unwrap_or(1));
    report.threads = report.clients.min(THREADS);

    let Some(place) = Place::create(url) else {
        return Err(skipped(
            "could neither create a database nor a schema for pgbench's tables (see above)".into(),
        ));
    };
    report.isolation = Some(place.describe());
    let target = place.url(url);
    eprintln!(
        "==> pgbench -i: scale {}, tables in {}",
        report.scale,
        place.describe()
    );
    let mut yardstick = Yardstick {
        url: url.to_owned(),
        place,
        target,
        report,
        warmed_up: false,
    };
    let log = work.join("pgbench-init.log");
    let started = Instant::now();
    let mut init = Command::new("pgbench");
    init.args([
        "-i",
        "-q",
        "-s",
        &yardstick.report.scale.to_string(),
        &yardstick.target,
    ]);
    match process::run_logged(init, &log, Duration::from_secs(900)).await {
        Ok(status) if status.success() => {}
        Ok(status) => {
            return Err(yardstick.failed(format!("pgbench -i failed ({status}): {}", tail(&log))))
        }
        Err(why) => return Err(yardstick.failed(why)),
    }
    yardstick.report.init_s = Some(started.elapsed().as_secs_f64());
    Ok(yardstick)
}

impl Yardstick {
    /// One measured run of `-N -c N -j T -T SECS` (after a warm-up run the
    /// first time), recorded as `when`. Its transactions per second, or
    /// `None` if it failed (the reason is kept; later runs are skipped).
    pub async fn run(&mut self, when: &'static str, work: &Path) -> Option<f64> {
        if self.report.reason.is_some() {
            return None;
        }
        match self.try_run(when, work).await {
            Ok(tps) => Some(tps),
            Err(why) => {
                eprintln!("!!! pgbench -N failed: {why}");
                self.report.reason = Some(why);
                None
            }
        }
    }

    async fn try_run(&mut self, when: &'static str, work: &Path) -> Result<f64, String> {
        let report = &self.report;
        let command = |secs: u64| {
            let mut cmd = Command::new("pgbench");
            cmd.args([
                "-N",
                "-c",
                &report.clients.to_string(),
                "-j",
                &report.threads.to_string(),
                "-T",
                &secs.to_string(),
                &self.target,
            ]);
            cmd
        };
        let limit = |secs: u64| Duration::from_secs(secs + 300);
        if !self.warmed_up && report.warmup_s > 0 {
            eprintln!("==> pgbench -N warm-up: {} s", report.warmup_s);
            let log = work.join("pgbench-warmup.log");
            let status =
                process::run_logged(command(report.warmup_s), &log, limit(report.warmup_s)).await?;
            if !status.success() {
                return Err(format!("the warm-up run failed ({status}): {}", tail(&log)));
            }
        }
        self.warmed_up = true;
        eprintln!(
            "==> pgbench -N {when}: {} clients, -j {}, {} s",
            report.clients, report.threads, report.duration_s
        );
        let log = work.join(format!("pgbench-run-{}.log", self.report.runs.len() + 1));
        let status =
            process::run_logged(command(report.duration_s), &log, limit(report.duration_s)).await?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let figures = parse_output(&text);
        if !status.success() {
            return Err(format!("pgbench -N failed ({status}): {}", tail(&log)));
        }
        let Some(tps) = figures.tps else {
            return Err(format!("no tps line in pgbench's output: {}", tail(&log)));
        };
        eprintln!(
            "    {tps:.0} tx/s, latency average {} ms, {} failed",
            figures
                .latency_avg_ms
                .map(|l| format!("{l:.2}"))
                .unwrap_or_else(|| "?".into()),
            figures.failed.unwrap_or(0)
        );
        self.report.runs.push(PgbenchRun {
            when,
            tps,
            latency_avg_ms: figures.latency_avg_ms,
            transactions: figures.transactions,
            failed_transactions: figures.failed,
        });
        Ok(tps)
    }

    /// Drops pgbench's tables; the report, its figures the means (and
    /// sums) over the runs, `measured` if every run was.
    pub fn finish(mut self) -> PgbenchReport {
        self.report.cleaned_up = self.place.drop_it(&self.url);
        if !self.report.cleaned_up {
            eprintln!(
                "!!! could not drop pgbench's {}; drop it by hand",
                self.place.describe()
            );
        }
        let runs = &self.report.runs;
        if self.report.reason.is_none() && !runs.is_empty() {
            self.report.status = "measured";
            self.report.tps = Some(runs.iter().map(|r| r.tps).sum::<f64>() / runs.len() as f64);
            self.report.latency_avg_ms = mean(runs.iter().map(|r| r.latency_avg_ms));
            self.report.transactions = runs.iter().map(|r| r.transactions).sum();
            self.report.failed_transactions = runs.iter().map(|r| r.failed_transactions).sum();
        }
        self.report
    }

    /// Drops the tables after a failure before any run.
    fn failed(mut self, why: String) -> PgbenchReport {
        eprintln!("!!! pgbench: {why}");
        self.report.reason = Some(why);
        self.finish()
    }
}

/// The mean of `values`, if every one is known.
fn mean(values: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let values: Option<Vec<f64>> = values.collect();
    let values = values.filter(|v| !v.is_empty())?;
    Some(values.iter().sum::<f64>() / values.len() as f64)
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
