//! The processes under test: Tessera itself and the ceiling server, each a
//! child of the bench process, stopped with SIGTERM when done.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::client::{Conn, Req};

/// The password of `elastic`, created by the server's bootstrap.
pub const BOOTSTRAP_PASSWORD: &str = "bench-elastic-password";

/// A port that was free a moment ago: bind port 0, read it, let it go.
/// Racy (another process may take the port before the child binds it), so
/// only for the peer, whose issuer URL must name its port before it
/// listens; Tessera and the ceiling bind port 0 themselves and say where.
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot reserve a local port")?;
    Ok(listener.local_addr()?)
}

/// What Tessera logs once its listener is bound: `… addr=127.0.0.1:PORT`.
const TESSERA_LISTENING: &str = "tessera is listening";

pub struct ChildServer {
    pub name: &'static str,
    /// Where the server listens. A server started on port 0 reports it in
    /// its output: known once [`ChildServer::wait_ready`] has returned.
    pub addr: SocketAddr,
    /// The line the server prints with `addr=` once it has bound port 0;
    /// `None` when `addr` was chosen before it started.
    announces: Option<&'static str>,
    child: Option<Child>,
    log: PathBuf,
}

/// The port-0 address a server binds before it says which port it got.
fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// The address in the first line of `text` containing `marker`, from its
/// `addr=…` field.
pub fn announced_address(text: &str, marker: &str) -> Option<SocketAddr> {
    text.lines()
        .filter(|line| line.contains(marker))
        .find_map(|line| line.split("addr=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
}

impl ChildServer {
    /// Starts `tessera serve` on `data_dir` (embedded SQLite unless `store`).
    pub fn tessera(
        bin: &Path,
        data_dir: &Path,
        store: Option<&str>,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        Self::tessera_with(bin, data_dir, store, log, &[])
    }

    /// [`ChildServer::tessera`] with more flags of `tessera serve`.
    pub fn tessera_with(
        bin: &Path,
        data_dir: &Path,
        store: Option<&str>,
        log: PathBuf,
        flags: &[&str],
    ) -> anyhow::Result<Self> {
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .args(flags)
            .arg("--listen")
            .arg(any_port().to_string())
            .arg("--data-dir")
            .arg(data_dir);
        if let Some(store) = store {
            cmd.arg("--store").arg(store);
        }
        cmd.env("TESSERA_BOOTSTRAP_PASSWORD", BOOTSTRAP_PASSWORD)
            .env_remove("TESSERA_CONFIG")
            .env_remove("TESSERA_LISTEN")
            .env_remove("TESSERA_DATA_DIR")
            .env_remove("TESSERA_STORE")
            // Whatever the caller's log filter, the line saying where it
            // listens is printed.
            .env(
                "TESSERA_LOG",
                format!(
                    "{},tessera::server=info",
                    std::env::var("TESSERA_LOG").unwrap_or_else(|_| "info".into())
                ),
            );
        Self::spawn("tessera", cmd, any_port(), Some(TESSERA_LISTENING), log)
    }

    /// Starts the ceiling server: this same binary, `ceiling` subcommand.
    pub fn ceiling(body_bytes: usize, log: PathBuf) -> anyhow::Result<Self> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg("ceiling")
            .arg("--listen")
            .arg(any_port().to_string())
            .arg("--body-bytes")
            .arg(body_bytes.to_string());
        Self::spawn(
            "ceiling",
            cmd,
            any_port(),
            Some(crate::ceiling::LISTENING),
            log,
        )
    }

    /// Starts a peer implementation under test; `cmd` must make it listen on `addr`.
    pub fn peer(
        name: &'static str,
        cmd: Command,
        addr: SocketAddr,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        Self::spawn(name, cmd, addr, None, log)
    }

    fn spawn(
        name: &'static str,
        mut cmd: Command,
        addr: SocketAddr,
        announces: Option<&'static str>,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", cmd.get_program().to_string_lossy()))?;
        Ok(Self {
            name,
            addr,
            announces,
            child: Some(child),
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or_default()
    }

    /// Waits (at most `limit`) until the server has said where it listens
    /// (if it picks its port) and `GET path` answers 200.
    pub async fn wait_ready(&mut self, path: &'static str, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "{} exited during start-up ({status}); its output:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if let Some(marker) = self.announces.filter(|_| self.addr.port() == 0) {
                let text = std::fs::read_to_string(&self.log).unwrap_or_default();
                if let Some(addr) = announced_address(&text, marker) {
                    self.addr = addr;
                }
            }
            if self.addr.port() == 0 {
                // Not listening yet.
            } else if let Ok(mut conn) = Conn::open(self.addr).await {
                if let Ok((status, _)) = conn.send(&Req::get(path, None)).await {
                    if status.is_success() {
                        return Ok(());
                    }
                }
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not become ready on {} within {limit:?}; its output:\n{}",
                    self.name,
                    self.addr,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of the process's output.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGTERM, then wait; SIGKILL if it does not end in 30 s.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        signal_and_wait(&mut child, "-TERM").ok()
    }
}

/// Sends `signal` (`-TERM`, `-INT`) to `child` through `kill`, then waits
/// up to 30 s for it to end; past that it is killed, and `Err` carries its
/// status.
pub fn signal_and_wait(child: &mut Child, signal: &str) -> Result<ExitStatus, Option<ExitStatus>> {
    let _ = Command::new("kill")
        .arg(signal)
        .arg(child.id().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                return Err(child.wait().ok());
            }
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs a helper program (npm, pgbench) to completion, its output appended
/// to `log`, in a process group of its own so that everything it started can
/// be killed if it overruns `limit`. `Err` says why it did not finish.
pub async fn run_logged(
    mut cmd: Command,
    log: &Path,
    limit: Duration,
) -> Result<ExitStatus, String> {
    use std::os::unix::process::CommandExt;
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(None) => {
                // The group id is the child's pid (process_group(0)).
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg("--")
                    .arg(format!("-{}", child.id()))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{program} did not finish within {limit:?} and was killed"
                ));
            }
            Err(e) => return Err(format!("cannot wait for {program}: {e}")),
        }
    }
}

/// The first line of `program --version`, or why it could not be run.
pub fn tool_version(program: &str) -> Result<String, String> {
    let out = match Command::new(program).arg("--version").output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("{program} not found on PATH"))
        }
        Err(e) => return Err(format!("cannot run {program}: {e}")),
    };
    if !out.status.success() {
        return Err(format!("`{program} --version` failed ({})", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.lines().next().unwrap_or_default().trim().to_owned())
}

/// Resident and peak memory of a process, in kB, from /proc/PID/status.
pub fn memory_kb(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((
        status_field(&status, "VmRSS")?,
        status_field(&status, "VmHWM")?,
    ))
}

pub fn status_field(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Locates the `tessera` binary next to this executable. When launched by
/// `cargo run`, first has cargo build it with the same profile and target
/// directory: `cargo run -p tessera-bench` builds only this package's binary,
/// and measuring a stale server would be worse than a short no-op build.
pub fn tessera_binary(build: bool) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot locate this executable")?;
    let dir = exe
        .parent()
        .context("this executable has no directory")?
        .to_owned();
    let bin = dir.join("tessera");
    let profile = dir
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_owned();
    if profile != "release" {
        eprintln!("!!! WARNING: tessera-bench runs from a `{profile}` build; figures are meaningless unless built with --release");
    }
    if build {
        if let Ok(cargo) = std::env::var("CARGO") {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .context("no workspace")?;
            let target_dir = dir.parent().context("no target directory")?;
            let mut cmd = Command::new(cargo);
            cmd.current_dir(workspace)
                .args(["build", "--quiet", "-p", "tessera", "--target-dir"])
                .arg(target_dir);
            match profile.as_str() {
                "debug" => {}
                "release" => {
                    cmd.arg("--release");
                }
                other => {
                    cmd.args(["--profile", other]);
                }
            }
            eprintln!("==> making sure the tessera binary is up to date (cargo build -p tessera, {profile})");
            let status = cmd.status().context("cannot run cargo")?;
            if !status.success() {
                bail!("building the tessera binary failed ({status})");
            }
        }
    }
    if !bin.is_file() {
        bail!(
            "no tessera binary at {}; build it with `cargo build --release -p tessera -p tessera-bench`",
            bin.display()
        );
    }
    Ok(bin)
}

/// CPU time of the whole machine and of the processes under measurement,
/// in clock ticks: to tell how much of the machine *other* work took.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSnapshot {
    machine_busy: u64,
    machine_total: u64,
    ours: u64,
}

impl CpuSnapshot {
    /// `pids`: the processes under measurement (this one is always counted).
    pub fn take(pids: &[u32]) -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let (machine_busy, machine_total) = machine_ticks(stat.lines().next()?)?;
        let mut ours = process_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?)?;
        for pid in pids {
            ours += process_cpu_ticks(*pid).unwrap_or(0);
        }
        Some(Self {
            machine_busy,
            machine_total,
            ours,
        })
    }

    /// Share of the machine's CPU capacity used by other processes since `earlier`.
    pub fn others_share_since(&self, earlier: &Self) -> Option<f64> {
        let total = self.machine_total.checked_sub(earlier.machine_total)?;
        let busy = self.machine_busy.checked_sub(earlier.machine_busy)?;
        let ours = self.ours.checked_sub(earlier.ours)?;
        (total > 0).then(|| busy.saturating_sub(ours) as f64 / total as f64)
    }
}

/// User and system CPU ticks a process has used so far.
pub fn process_cpu_ticks(pid: u32) -> Option<u64> {
    process_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// User and system CPU ticks each thread name of a process has used so
/// far (threads of one name summed: the runtime's workers, say). Linux
/// keeps the first 15 bytes of a thread's name.
pub fn thread_cpu_ticks(pid: u32) -> Option<BTreeMap<String, u64>> {
    let mut by_name = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        // A thread may end between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        if let Some((name, ticks)) = thread_ticks(&stat) {
            *by_name.entry(name).or_insert(0) += ticks;
        }
    }
    Some(by_name)
}

/// A thread's name and utime + stime from its /proc/PID/task/TID/stat line.
pub fn thread_ticks(stat: &str) -> Option<(String, u64)> {
    let name = &stat[stat.find('(')? + 1..stat.rfind(')')?];
    Some((name.to_owned(), process_ticks(stat)?))
}

/// Microseconds of CPU per request by thread name, between two readings of
/// [`thread_cpu_ticks`]. A thread that ended in between takes its ticks
/// with it (the runtime's blocking threads end when idle for a while), so
/// the parts may add up to a little less than the process's figure.
pub fn cpu_us_per_request_by_thread(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    requests: u64,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter_map(|(name, &ticks)| {
            let used = ticks.saturating_sub(before.get(name).copied().unwrap_or(0));
            let us = cpu_us_per_request(used, requests)?;
            (used > 0).then(|| (name.clone(), us))
        })
        .collect()
}

/// A split from [`cpu_us_per_request_by_thread`] as one line:
/// `sqlite-writer 8.2, tokio-rt-worker 18.3` (threads under 0.05 µs left out).
pub fn cpu_split_line(by_thread: &BTreeMap<String, f64>) -> String {
    by_thread
        .iter()
        .filter(|(_, &us)| us >= 0.05)
        .map(|(name, us)| format!("{name} {us:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Microseconds of CPU per request, from ticks of 1/100 s (`USER_HZ` is 100
/// on Linux).
pub fn cpu_us_per_request(ticks: u64, requests: u64) -> Option<f64> {
    (requests > 0).then(|| ticks as f64 * 10_000.0 / requests as f64)
}

/// Busy and total ticks from the aggregate `cpu` line of /proc/stat.
pub fn machine_ticks(line: &str) -> Option<(u64, u64)> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let v: Vec<u64> = fields
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal. Interrupt time is left
    // out of "busy": it is not charged to any process, and much of it is the
    // loopback traffic of the benchmark itself. Steal (other virtual
    // machines) counts as someone else's work.
    let [user, nice, system, idle, iowait, irq, softirq, steal] =
        [0, 1, 2, 3, 4, 5, 6, 7].map(|i| v.get(i).copied().unwrap_or(0));
    let busy = user + nice + system + steal;
    Some((busy, busy + idle + iowait + irq + softirq))
}

/// utime + stime of a process from its /proc/PID/stat line.
pub fn process_ticks(stat: &str) -> Option<u64> {
    // The command name is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3 of the line; utime and stime are 14 and 15.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_cpu_by_thread_name() {
        let stat = "77 (sqlite-writer) S 1 70 70 0 -1 4194560 1 0 0 0 35 5 0 0 20 0 1 0 1 1 1";
        assert_eq!(thread_ticks(stat), Some(("sqlite-writer".to_owned(), 40)));
        let spaced = "78 (tokio rt) S 1 70 70 0 -1 4194560 1 0 0 0 1 2 0 0 20 0 1 0 1 1 1";
        assert_eq!(thread_ticks(spaced), Some(("tokio rt".to_owned(), 3)));
        let before = BTreeMap::from([("workers".to_owned(), 100), ("writer".to_owned(), 50)]);
        let after = BTreeMap::from([
            ("workers".to_owned(), 300),
            ("writer".to_owned(), 50),
            ("new".to_owned(), 10),
        ]);
        // 1,000 requests: 200 ticks of 10 ms are 2 s, 2,000 µs a request.
        let split = cpu_us_per_request_by_thread(&before, &after, 1_000);
        assert_eq!(
            split.len(),
            2,
            "a thread that used nothing is left out: {split:?}"
        );
        assert!((split["workers"] - 2_000.0).abs() < 1e-9);
        assert!((split["new"] - 100.0).abs() < 1e-9);
        // Ticks of a thread that ended are not counted against the others.
        let shrunk = BTreeMap::from([("workers".to_owned(), 90)]);
        assert!(cpu_us_per_request_by_thread(&before, &shrunk, 1_000).is_empty());
    }

    #[test]
    fn reads_cpu_ticks() {
        let line = "cpu  100 5 50 800 20 3 2 0 0 0";
        assert_eq!(machine_ticks(line), Some((155, 980)));
        let stat =
            "1234 (tessera serve) S 1 1234 1234 0 -1 4194560 1 0 0 0 70 30 0 0 20 0 4 0 1 1 1";
        assert_eq!(process_ticks(stat), Some(100));
        let a = CpuSnapshot {
            machine_busy: 100,
            machine_total: 1000,
            ours: 50,
        };
        let b = CpuSnapshot {
            machine_busy: 1100,
            machine_total: 3000,
            ours: 850,
        };
        assert_eq!(b.others_share_since(&a), Some(0.1));
    }

    #[test]
    fn reads_the_announced_address() {
        let text = "INFO tessera::server: opening\nINFO tessera::server: tessera is listening addr=127.0.0.1:41234\n";
        assert_eq!(
            announced_address(text, TESSERA_LISTENING),
            Some(SocketAddr::from(([127, 0, 0, 1], 41234)))
        );
        assert_eq!(announced_address(text, "ceiling is listening"), None);
    }

    #[test]
    fn reads_proc_status_fields() {
        let text = "Name:\ttessera\nVmHWM:\t   40960 kB\nVmRSS:\t   20480 kB\n";
        assert_eq!(status_field(text, "VmRSS"), Some(20480));
        assert_eq!(status_field(text, "VmHWM"), Some(40960));
        assert_eq!(status_field(text, "VmSwap"), None);
    }
}
