//! What a run starts from: its settings, the server binary, the machine,
//! and a first look at how busy the machine is.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::args::RunArgs;
use crate::client::LoadSettings;
use crate::measure::{Settings, BUSY_SHARE};
use crate::process::{self, CpuSnapshot};
use crate::report::{self, Machine};

use super::storm::STORM_WIDTH;

/// What every phase of the run reads, and the report repeats.
pub(super) struct Prelude {
    pub(super) started_at_unix: u64,
    pub(super) smoke: bool,
    pub(super) settings: Settings,
    pub(super) load: LoadSettings,
    pub(super) json_path: PathBuf,
    /// The `tessera` binary under test.
    pub(super) bin: PathBuf,
    pub(super) machine: Machine,
    /// 1-minute load average before the run.
    pub(super) load_before: Option<f64>,
    pub(super) git_commit: Option<String>,
}

impl Prelude {
    /// Settles the settings, finds (and builds) the server, says what will
    /// run, and warns if other processes keep the machine busy.
    pub(super) async fn start(args: &RunArgs) -> anyhow::Result<Self> {
        let started_at_unix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let settings = settings(args);
        let load = LoadSettings {
            connections: settings.connections,
            warmup: secs(settings.warmup_s),
            duration: secs(settings.duration_s),
            profile: args.profile,
        };
        let json_path = args
            .json
            .clone()
            .unwrap_or_else(|| default_json_path(args.smoke));
        let bin = process::tessera_binary(!args.no_build)?;
        let machine = Machine::detect();
        let load_before = report::load_average();
        let git_commit = report::git_commit();
        eprintln!(
            "==> tessera-bench ({} mode): {} s warm-up + {} s per scenario, {} connections, {} client threads",
            settings.mode, settings.warmup_s, settings.duration_s, settings.connections, settings.client_threads
        );
        eprintln!("    machine: {}", machine.describe());
        eprintln!("    server:  {}", bin.display());
        warn_if_busy().await;
        Ok(Self {
            started_at_unix,
            smoke: args.smoke,
            settings,
            load,
            json_path,
            bin,
            machine,
            load_before,
            git_commit,
        })
    }
}

/// The options, with the defaults of the mode filled in.
fn settings(args: &RunArgs) -> Settings {
    let smoke = args.smoke;
    Settings {
        mode: if smoke { "smoke" } else { "full" },
        duration_s: args.duration.unwrap_or(if smoke { 1.0 } else { 10.0 }),
        warmup_s: args.warmup.unwrap_or(if smoke { 0.5 } else { 3.0 }),
        connections: args
            .connections
            .unwrap_or(if smoke { 8 } else { 64 })
            .max(1),
        client_threads: args.client_threads.max(1),
        storm_width: STORM_WIDTH,
        storm_rounds: args
            .storm_rounds
            .unwrap_or(if smoke { 3 } else { 20 })
            .max(1),
        scale: args.scale.filter(|_| !smoke && args.store.is_none()),
        store: args
            .store
            .clone()
            .unwrap_or_else(|| "embedded SQLite (fresh temporary data directory)".into()),
    }
}

/// What the report notes about options the run ignores.
pub(super) fn ignored_options(args: &RunArgs) -> Vec<String> {
    let mut notes = Vec::new();
    if args.scale.is_some() && args.smoke {
        notes.push("--scale is ignored in smoke mode".into());
    }
    if args.scale.is_some() && args.store.is_some() {
        notes.push("--scale measures the embedded store only; skipped with --store".into());
    }
    notes
}

/// Watches the machine for a second and says so if other processes keep it busy.
async fn warn_if_busy() {
    let idle_check = CpuSnapshot::take(&[]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    if let Some(share) = idle_check
        .zip(CpuSnapshot::take(&[]))
        .and_then(|(b, a)| a.others_share_since(&b))
        .filter(|&s| s > BUSY_SHARE)
    {
        eprintln!(
            "!!! the machine is busy (other processes use {:.0}% of its CPU): figures will be depressed and noisy",
            share * 100.0
        );
    }
}

fn secs(v: f64) -> Duration {
    Duration::from_secs_f64(v.max(0.0))
}

/// Where the report goes without `--json`: a full run replaces the
/// committed `bench/results/latest.json`; a smoke run, whose figures mean
/// nothing, writes under the build's target folder instead.
fn default_json_path(smoke: bool) -> std::path::PathBuf {
    let bench = Path::new(env!("CARGO_MANIFEST_DIR"));
    if !smoke {
        return bench.join("results").join("latest.json");
    }
    std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| bench.join("..").join("target"))
        .join("bench-smoke.json")
}
