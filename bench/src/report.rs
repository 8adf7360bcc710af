//! Figures, the printed table, the targets and the JSON report.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::profile::Profile;

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    /// From a histogram of microseconds.
    pub fn of(hist: &Histogram<u64>) -> Self {
        if hist.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            p50_ms: ms(hist.value_at_quantile(0.50)),
            p90_ms: ms(hist.value_at_quantile(0.90)),
            p99_ms: ms(hist.value_at_quantile(0.99)),
            max_ms: ms(hist.max()),
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Row {
    pub scenario: String,
    /// `None` for a skipped scenario or one that has no rate (the storm).
    pub req_per_s: Option<f64>,
    pub latency: Option<Latency>,
    pub requests: u64,
    pub window_s: f64,
    pub ratio_to_ceiling: Option<f64>,
    pub errors: u64,
    pub error_kinds: BTreeMap<String, u64>,
    /// Share of the machine's CPU that other processes used meanwhile.
    pub others_cpu_share: Option<f64>,
    /// CPU time (user + system) the server spent per request: a steadier
    /// figure than throughput on a shared machine.
    pub server_cpu_us_per_req: Option<f64>,
    /// The same by the server's thread names (Linux keeps 15 bytes of a
    /// name): where a row's CPU goes, without a profiler.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub server_cpu_by_thread: BTreeMap<String, f64>,
    /// Where that CPU went by thread, area and function, from `perf`
    /// (`--profile`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_profile: Option<Profile>,
    pub skipped: bool,
    pub notes: Vec<String>,
}

impl Row {
    pub fn skipped(scenario: &str, why: &str) -> Self {
        Self {
            scenario: scenario.into(),
            skipped: true,
            notes: vec![why.into()],
            ..Default::default()
        }
    }
}

fn fmt_rate(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 100.0 => group_thousands(r.round() as u64),
        Some(r) => format!("{r:.1}"),
        None => "-".into(),
    }
}

pub fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Kilobytes as whole megabytes, `?` when unknown.
pub fn mb(kb: Option<u64>) -> String {
    kb.map(|k| format!("{:.0}", k as f64 / 1024.0))
        .unwrap_or_else(|| "?".into())
}

fn fmt_ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) if v >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.2}"),
        None => "-".into(),
    }
}

/// The table as Markdown (readable as plain text too).
pub fn render_table(rows: &[Row]) -> String {
    let header = [
        "scenario",
        "req/s",
        "p50 ms",
        "p99 ms",
        "× ceiling",
        "server CPU µs/req",
        "errors",
        "notes",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.scenario.clone(),
                fmt_rate(r.req_per_s),
                fmt_ms(r.latency.map(|l| l.p50_ms)),
                fmt_ms(r.latency.map(|l| l.p99_ms)),
                r.ratio_to_ceiling
                    .map(|x| format!("{x:.2}"))
                    .unwrap_or_else(|| "-".into()),
                r.server_cpu_us_per_req
                    .map(|us| format!("{us:.0}"))
                    .unwrap_or_else(|| "-".into()),
                if r.skipped {
                    "-".into()
                } else if r.errors > 0 {
                    format!("**{}**", r.errors)
                } else {
                    "0".into()
                },
                r.notes.join("; "),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let right = [false, true, true, true, true, true, true, false];
    let line = |cols: &[String]| {
        let parts: Vec<String> = cols
            .iter()
            .zip(widths)
            .zip(right)
            .map(|((c, w), r)| {
                let pad = " ".repeat(w - c.chars().count());
                if r {
                    format!("{pad}{c}")
                } else {
                    format!("{c}{pad}")
                }
            })
            .collect();
        format!("| {} |", parts.join(" | "))
    };
    let mut out = line(&header.map(String::from));
    out.push('\n');
    let rule: Vec<String> = widths
        .iter()
        .zip(right)
        .map(|(w, r)| {
            if r {
                format!("{}:", "-".repeat(w + 1))
            } else {
                "-".repeat(w + 2)
            }
        })
        .collect();
    out.push_str(&format!("|{}|\n", rule.join("|")));
    for row in &cells {
        out.push_str(&line(row));
        out.push('\n');
    }
    out
}

/// A performance target and whether the run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub target: String,
    pub figure: String,
    /// `None`: not measured in this run.
    pub met: Option<bool>,
}

impl Target {
    pub fn new(target: &str, figure: String, met: Option<bool>) -> Self {
        Self {
            target: target.into(),
            figure,
            met,
        }
    }
}

pub fn render_targets(targets: &[Target]) -> String {
    let mut out = String::new();
    for t in targets {
        let verdict = match t.met {
            Some(true) => "met   ",
            Some(false) => "MISSED",
            None => "n/a   ",
        };
        out.push_str(&format!("  [{verdict}] {}: {}\n", t.target, t.figure));
    }
    out
}

/// Parses a counter's value from Prometheus exposition text: the sum over
/// the series of `name` whose labels contain `label`.
pub fn prometheus_counter(text: &str, name: &str, label: &str) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !(rest.starts_with('{') || rest.starts_with(' ')) || !rest.contains(label) {
            continue;
        }
        let value: f64 = rest.rsplit(' ').next()?.parse().ok()?;
        *found.get_or_insert(0.0) += value;
    }
    found
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub nproc: usize,
    pub cpu_model: Option<String>,
    pub mem_total_kb: Option<u64>,
    pub kernel: Option<String>,
}

/// The 1-minute load average (/proc/loadavg).
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

impl Machine {
    pub fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Self {
            nproc: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            cpu_model: cpuinfo.lines().find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_owned())
            }),
            mem_total_kb: crate::process::status_field(&meminfo, "MemTotal"),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
                .ok()
                .map(|s| s.trim().to_owned()),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "{} × {}, {:.1} GiB RAM, Linux {}",
            self.nproc,
            self.cpu_model.as_deref().unwrap_or("unknown CPU"),
            self.mem_total_kb.unwrap_or(0) as f64 / 1024.0 / 1024.0,
            self.kernel.as_deref().unwrap_or("?")
        )
    }
}

/// `git rev-parse --short HEAD`, with `-dirty` when the tree has changes.
pub fn git_commit() -> Option<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(dir)
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    Some(if dirty {
        format!("{commit}-dirty")
    } else {
        commit
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_come_from_the_histogram_in_ms() {
        let mut h = crate::client::new_histogram();
        for us in 1..=1000u64 {
            h.record(us * 10).unwrap(); // 10 µs .. 10 ms
        }
        let l = Latency::of(&h);
        assert!((l.p50_ms - 5.0).abs() < 0.01, "{l:?}");
        assert!((l.p99_ms - 9.9).abs() < 0.02, "{l:?}");
        assert!((l.max_ms - 10.0).abs() < 0.01, "{l:?}");
        assert_eq!(
            Latency::of(&crate::client::new_histogram()),
            Latency::default()
        );
    }

    #[test]
    fn table_aligns_and_marks_errors() {
        let rows = vec![
            Row {
                scenario: "bearer".into(),
                req_per_s: Some(12345.6),
                latency: Some(Latency {
                    p50_ms: 1.234,
                    p99_ms: 12.5,
                    ..Default::default()
                }),
                ratio_to_ceiling: Some(0.61),
                ..Default::default()
            },
            Row {
                scenario: "basic".into(),
                req_per_s: Some(50.0),
                errors: 3,
                ..Default::default()
            },
            Row::skipped("api key", "skipped: API keys not available"),
        ];
        let table = render_table(&rows);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(
            lines
                .iter()
                .all(|l| l.chars().count() == lines[0].chars().count()),
            "{table}"
        );
        assert!(
            lines[2].contains("12,346") && lines[2].contains("1.23") && lines[2].contains("12.5")
        );
        assert!(lines[2].contains("0.61"));
        assert!(lines[3].contains("**3**"));
        assert!(lines[4].contains("skipped: API keys not available"));
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(group_thousands(0), "0");
        assert_eq!(group_thousands(999), "999");
        assert_eq!(group_thousands(1000), "1,000");
        assert_eq!(group_thousands(1234567), "1,234,567");
    }

    #[test]
    fn reads_prometheus_counters() {
        let text = "# TYPE tessera_refresh_total counter\n\
                    tessera_refresh_total{outcome=\"rotated\"} 3\n\
                    tessera_refresh_total{outcome=\"replayed_in_window\"} 765\n\
                    tessera_refresh_total_other{outcome=\"rotated\"} 99\n";
        assert_eq!(
            prometheus_counter(text, "tessera_refresh_total", "\"rotated\""),
            Some(3.0)
        );
        assert_eq!(
            prometheus_counter(text, "tessera_refresh_total", "replayed"),
            Some(765.0)
        );
        assert_eq!(
            prometheus_counter(text, "tessera_tokens_issued_total", ""),
            None
        );
    }
}
