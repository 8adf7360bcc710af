//! `--profile`: where a row's server CPU went, by thread and by code, from
//! `perf` sampling the server while the row runs.
//!
//! The per-thread split (`process`) says which thread a write row's CPU
//! is spent on; this says on what: the kernel, SQLite, the allocator, or
//! which Rust crate. `perf record` samples every CPU at 999 Hz through the
//! warm-up and the measured window (as the CPU figures are taken), and
//! `perf report` keeps the server's samples and counts them by thread
//! name, binary and symbol. (Sampling the whole machine costs the server
//! nothing measurable; attaching to its threads instead, `perf record -p`,
//! added 6 µs to a token creation, since every context switch of a
//! sampled thread then pays for the counters.) The samples are summed by
//! *area*:
//!
//! - `kernel`: anything in the kernel (network stack, scheduler, fsync);
//! - `allocator`: mimalloc (`mi_*`);
//! - `C (SQLite)`: other C code linked into the server, which is the
//!   bundled SQLite;
//! - a Rust crate's name (`tessera_http`, `hyper`, `tokio`, `std`, …), from
//!   the first path segment of the demangled symbol;
//! - another shared object by its file name (`libc.so.6`).
//!
//! A share of the samples times the row's server CPU per request is that
//! area's cost per request.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde::Serialize;

/// How many of the hottest functions a profile keeps.
const TOP_FUNCTIONS: usize = 20;

/// Where a row's server CPU went, as shares of perf's samples.
#[derive(Debug, Clone, Serialize, Default, PartialEq)]
pub struct Profile {
    pub samples: u64,
    /// Every (thread, area) with its share, largest first.
    pub areas: Vec<Slice>,
    /// The hottest functions, largest first.
    pub functions: Vec<Slice>,
}

/// A share of the samples: a thread's area, or one function of it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Slice {
    pub thread: String,
    pub area: String,
    /// The function, for [`Profile::functions`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// Fraction of all samples, 0..=1.
    pub share: f64,
}

/// `perf record` attached to a process.
pub struct Recording {
    child: Child,
    data: PathBuf,
    /// The process whose samples count.
    pid: u32,
    _dir: tempfile::TempDir,
}

impl Recording {
    /// Starts sampling the machine, for the samples of `pid`.
    pub fn start(pid: u32) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("tessera-bench-perf")
            .tempdir()
            .map_err(|e| format!("no directory for perf's data: {e}"))?;
        let data = dir.path().join("perf.data");
        let child = Command::new("perf")
            .args(["record", "--quiet", "-a", "-F", "999", "-o"])
            .arg(&data)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "perf not found on PATH (Debian: apt install linux-perf)".to_owned()
                }
                _ => format!("cannot start perf: {e}"),
            })?;
        Ok(Self {
            child,
            data,
            pid,
            _dir: dir,
        })
    }

    /// Stops sampling and summarizes what was sampled.
    pub fn finish(mut self) -> Result<Profile, String> {
        // perf writes its data out on SIGINT.
        let status = crate::process::signal_and_wait(&mut self.child, "-INT")
            .map_err(|_| "perf record did not stop within 30 s".to_owned())?;
        // perf exits with the signal's status after a clean stop.
        if !self.data.exists() {
            return Err(format!(
                "perf record wrote nothing ({status}); is perf_event_paranoid too strict?"
            ));
        }
        let out = Command::new("perf")
            .args(["report", "--stdio", "--no-children", "-n", "-t", "|"])
            .args(["--sort", "comm,dso,sym", "--percent-limit", "0"])
            .args(["--pid", &self.pid.to_string(), "-i"])
            .arg(&self.data)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run perf report: {e}"))?;
        if !out.status.success() {
            return Err(format!("perf report failed ({})", out.status));
        }
        let profile = parse_report(&String::from_utf8_lossy(&out.stdout));
        if profile.samples == 0 {
            return Err("perf recorded no samples".into());
        }
        Ok(profile)
    }
}

/// Sums `perf report -n -t '|' --sort comm,dso,sym` lines
/// (`percent|samples|thread|binary|[k] symbol`) into a [`Profile`].
pub fn parse_report(text: &str) -> Profile {
    let mut lines = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        let fields: Vec<&str> = line.splitn(5, '|').map(str::trim).collect();
        let [_, samples, thread, dso, symbol] = fields[..] else {
            continue;
        };
        let Ok(samples) = samples.parse::<u64>() else {
            continue;
        };
        lines.push((samples, thread, area(dso, symbol), bare_symbol(symbol)));
    }
    let total: u64 = lines.iter().map(|l| l.0).sum();
    if total == 0 {
        return Profile::default();
    }
    let share = |n: u64| n as f64 / total as f64;
    let mut areas: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for (samples, thread, area, _) in &lines {
        *areas.entry((thread, area)).or_default() += samples;
    }
    let mut areas: Vec<Slice> = areas
        .into_iter()
        .map(|((thread, area), n)| Slice {
            thread: thread.to_owned(),
            area: area.to_owned(),
            symbol: None,
            share: share(n),
        })
        .collect();
    areas.sort_by(|a, b| b.share.total_cmp(&a.share));
    lines.sort_by_key(|l| std::cmp::Reverse(l.0));
    let functions = lines
        .iter()
        .take(TOP_FUNCTIONS)
        .map(|(n, thread, area, symbol)| Slice {
            thread: (*thread).to_owned(),
            area: area.to_owned(),
            symbol: Some((*symbol).to_owned()),
            share: share(*n),
        })
        .collect();
    Profile {
        samples: total,
        areas,
        functions,
    }
}

/// The symbol without perf's `[k] ` / `[.] ` mark.
fn bare_symbol(symbol: &str) -> &str {
    symbol
        .strip_prefix("[k] ")
        .or_else(|| symbol.strip_prefix("[.] "))
        .unwrap_or(symbol)
        .trim()
}

/// The area a sample's code belongs to (see the module's documentation).
fn area(dso: &str, symbol: &str) -> String {
    if symbol.starts_with("[k]") || dso.starts_with("[kernel") {
        return "kernel".into();
    }
    let name = bare_symbol(symbol);
    if name.starts_with("mi_") || name.starts_with("_mi_") {
        return "allocator".into();
    }
    if let Some((krate, _)) = rust_path(name).split_once("::") {
        return match krate {
            "core" | "alloc" | "std" => "std".into(),
            krate => krate.into(),
        };
    }
    if dso.ends_with(".so") || dso.contains(".so.") || dso.starts_with('[') {
        return dso.into();
    }
    "C (SQLite)".into()
}

/// The areas costing at least `min_us` per request, `µs/req` each, by
/// thread: `"tokio-rt-worker: kernel 8.1, hyper 1.2; sqlite-writer: …"`.
pub fn areas_line(profile: &Profile, cpu_us_per_req: f64, min_us: f64) -> String {
    let mut by_thread: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for slice in &profile.areas {
        let us = slice.share * cpu_us_per_req;
        if us >= min_us {
            by_thread
                .entry(&slice.thread)
                .or_default()
                .push(format!("{} {us:.1}", slice.area));
        }
    }
    by_thread
        .into_iter()
        .map(|(thread, areas)| format!("{thread}: {}", areas.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The path a Rust symbol is named by: for a trait method
/// `<Type as Trait>::f`, the type's path, or the trait's when the type is a
/// bare generic (`<F as axum::handler::Handler>::call`).
fn rust_path(symbol: &str) -> &str {
    let Some(inner) = symbol.strip_prefix('<') else {
        return symbol;
    };
    let inner = &inner[..matching_close(inner).unwrap_or(inner.len())];
    match inner.split_once(" as ") {
        Some((own, tr)) if !own.contains("::") => tr,
        Some((own, _)) => own.trim_start_matches(['<', '&', '*']),
        None => inner,
    }
}

/// The `n` hottest functions with their cost per request:
/// `"sqlite-writer sqlite3VdbeExec 1.3, …"`.
pub fn functions_line(profile: &Profile, cpu_us_per_req: f64, n: usize) -> String {
    profile
        .functions
        .iter()
        .take(n)
        .map(|f| {
            format!(
                "{} {} {:.1}",
                f.thread,
                short(f.symbol.as_deref().unwrap_or("?")),
                f.share * cpu_us_per_req
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A demangled Rust path without its generic arguments and without every
/// module but the last two: `tessera_http::middleware::around::{{closure}}`
/// becomes `middleware::around::{{closure}}`, and a trait method
/// `<hyper::proto::h1::role::Server as Http1Transaction>::encode` becomes
/// `role::Server::encode`.
fn short(symbol: &str) -> String {
    let named = symbol
        .strip_prefix('<')
        .and_then(|inner| {
            let close = matching_close(inner)?;
            let self_type = inner[..close].split(" as ").next()?;
            Some(format!("{self_type}{}", &inner[close + 1..]))
        })
        .unwrap_or_else(|| symbol.to_owned());
    let mut depth = 0usize;
    let mut plain = String::with_capacity(named.len());
    for c in named.chars() {
        match c {
            '<' => depth += 1,
            '>' => depth = depth.saturating_sub(1),
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let parts: Vec<&str> = plain.split("::").filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return symbol.to_owned();
    }
    parts[parts.len().saturating_sub(3)..].join("::")
}

/// Where the `>` closing an opening `<` (already taken off `s`) is.
fn matching_close(s: &str) -> Option<usize> {
    let mut depth = 1usize;
    for (i, c) in s.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "\
# Samples: 1K of event 'cpu-clock:pppH'
#
# Overhead  Samples  Command  Shared Object  Symbol
#
    40.00%  | 400        |tokio-rt-worker|[kernel.kallsyms]   |[k] finish_task_switch.isra.0
    20.00%  | 200        |sqlite-writer  |tessera             |[.] sqlite3VdbeExec
    10.00%  | 100        |tokio-rt-worker|tessera             |[.] _mi_page_malloc_zero
    10.00%  | 100        |tokio-rt-worker|tessera             |[.] <hyper::proto::h1::role::Server as hyper::proto::h1::Http1Transaction>::encode
     3.00%  | 30         |tokio-rt-worker|tessera             |[.] tessera_http::middleware::around::{{closure}}
     2.00%  | 20         |tokio-rt-worker|tessera             |[.] <F as axum::handler::Handler<(M,T1),S>>::call
     5.00%  | 50         |tokio-rt-worker|tessera             |[.] core::ptr::drop_in_place<hyper::Request>
     5.00%  | 50         |tokio-rt-worker|libc.so.6           |[.] __memmove_avx512_unaligned_erms
     5.00%  | 50         |sqlite-sync    |[kernel.kallsyms]   |[k] iowrite16
";

    #[test]
    fn sums_samples_by_thread_and_area() {
        let p = parse_report(REPORT);
        assert_eq!(p.samples, 1000);
        let share = |thread: &str, area: &str| {
            p.areas
                .iter()
                .find(|s| s.thread == thread && s.area == area)
                .map(|s| s.share)
        };
        assert_eq!(share("tokio-rt-worker", "kernel"), Some(0.4));
        assert_eq!(share("sqlite-writer", "C (SQLite)"), Some(0.2));
        assert_eq!(share("tokio-rt-worker", "allocator"), Some(0.1));
        assert_eq!(share("tokio-rt-worker", "hyper"), Some(0.1));
        assert_eq!(share("tokio-rt-worker", "tessera_http"), Some(0.03));
        assert_eq!(share("tokio-rt-worker", "axum"), Some(0.02));
        assert_eq!(share("tokio-rt-worker", "std"), Some(0.05));
        assert_eq!(share("tokio-rt-worker", "libc.so.6"), Some(0.05));
        assert_eq!(share("sqlite-sync", "kernel"), Some(0.05));
        assert_eq!(p.areas.len(), 9);
        assert_eq!(p.areas[0].area, "kernel");
        assert_eq!(p.functions.len(), 9);
        assert_eq!(
            p.functions[1].symbol.as_deref(),
            Some("sqlite3VdbeExec"),
            "functions are ordered by samples, without perf's mark"
        );
    }

    #[test]
    fn prices_areas_and_functions_per_request() {
        let p = parse_report(REPORT);
        assert_eq!(
            areas_line(&p, 50.0, 2.0),
            "sqlite-sync: kernel 2.5; sqlite-writer: C (SQLite) 10.0; \
             tokio-rt-worker: kernel 20.0, allocator 5.0, hyper 5.0, libc.so.6 2.5, std 2.5"
        );
        assert_eq!(
            functions_line(&p, 50.0, 4),
            "tokio-rt-worker finish_task_switch.isra.0 20.0, sqlite-writer sqlite3VdbeExec 10.0, \
             tokio-rt-worker _mi_page_malloc_zero 5.0, tokio-rt-worker role::Server::encode 5.0"
        );
    }

    #[test]
    fn shortens_rust_paths() {
        assert_eq!(
            short("tessera_http::middleware::around::{{closure}}"),
            "middleware::around::{{closure}}"
        );
        assert_eq!(
            short("core::ptr::drop_in_place<hyper::Request>"),
            "core::ptr::drop_in_place"
        );
        assert_eq!(short("sqlite3VdbeExec"), "sqlite3VdbeExec");
        assert_eq!(
            short("<hyper::proto::h1::role::Server as hyper::proto::h1::Http1Transaction>::encode"),
            "role::Server::encode"
        );
        assert_eq!(
            short("<alloc::vec::Vec<T> as Clone>::clone"),
            "vec::Vec::clone"
        );
    }

    #[test]
    fn an_empty_report_has_no_samples() {
        assert_eq!(parse_report("# nothing\n\n").samples, 0);
    }
}
