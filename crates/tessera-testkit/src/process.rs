//! A real `tessera` process: started on `127.0.0.1:0`, its address taken
//! from the line it logs once it has bound its listener ("tessera is
//! listening addr=…"), its output (stdout and stderr) collected in a log
//! file; killed when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::ports::address_in_log;

/// How long a process may take from spawn to ready (a debug build hashes
/// the bootstrap password and may apply a schema).
pub const READY_DEADLINE: Duration = Duration::from_secs(60);

/// The binary at `bin` with no `TESSERA_*` variable inherited from the
/// test's environment.
pub fn tessera_command(bin: &Path) -> Command {
    without_tessera_env(Command::new(bin))
}

/// `cmd` with every `TESSERA_*` variable of the test's environment removed,
/// except that the run's invalidation mode
/// ([`crate::server::TOKEN_INVALIDATION_ENV`]) becomes the process's
/// `TESSERA_TOKEN_INVALIDATION`.
pub fn without_tessera_env(mut cmd: Command) -> Command {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TESSERA_") {
            cmd.env_remove(key);
        }
    }
    if let Some(mode) = crate::server::token_invalidation_from_env() {
        cmd.env("TESSERA_TOKEN_INVALIDATION", mode);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// One child process with its output in a log file.
pub struct Process {
    pub name: String,
    /// `http://` and the address the process bound (known once
    /// [`Process::wait_listening`] or [`Process::wait_ready`] returned).
    pub base: String,
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Process {
    /// Spawns `cmd serve --listen 127.0.0.1:0 --data-dir DIR …flags`, with
    /// its output in a log file of its own; DIR is `data_dir`, or a fresh
    /// directory that lives as long as the process. `cmd` brings the
    /// environment (and, through a shell, limits or a umask).
    pub fn serve(name: &str, mut cmd: Command, data_dir: Option<&Path>, flags: &[&str]) -> Process {
        let dir = tempfile::tempdir().expect("a temporary directory for the process");
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir.map_or_else(|| dir.path().join("data"), Path::to_owned))
            .args(flags);
        Self::spawn_in(name, cmd, dir)
    }

    /// Spawns `cmd` as it is, with its output in a log file of its own.
    pub fn spawn(name: &str, cmd: Command) -> Process {
        let dir = tempfile::tempdir().expect("a temporary directory for the log");
        Self::spawn_in(name, cmd, dir)
    }

    fn spawn_in(name: &str, mut cmd: Command, dir: tempfile::TempDir) -> Process {
        let log = dir.path().join("output.log");
        let file = File::create(&log).expect("the process's log file");
        cmd.stdout(file.try_clone().expect("the process's log file"))
            .stderr(file);
        let child = cmd.spawn().expect("starting the process");
        Process {
            name: name.to_owned(),
            base: String::new(),
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    /// Every line the process has printed so far.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Everything the process has printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines the process printed.
    pub fn log_tail(&self, n: usize) -> String {
        let lines = self.lines();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Polls the output until `done` holds for it; `Err` with the output
    /// if the process ended or `within` passed first.
    pub fn wait_for_output(
        &mut self,
        within: Duration,
        done: impl Fn(&[String]) -> bool,
    ) -> Result<Vec<String>, String> {
        let deadline = Instant::now() + within;
        loop {
            let lines = self.lines();
            if done(&lines) {
                return Ok(lines);
            }
            if let Some(status) = self.exited() {
                return Err(format!(
                    "(exited with {status})\n{}",
                    self.lines().join("\n")
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "(not seen within {within:?})\n{}",
                    lines.join("\n")
                ));
            }
            // Between two reads of the log.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Like [`Process::wait_for_output`], failing the test on `Err`.
    pub fn expect_output(&mut self, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let name = self.name.clone();
        self.wait_for_output(READY_DEADLINE, done)
            .unwrap_or_else(|log| panic!("{name} did not print {what}; its output:\n{log}"))
    }

    /// Waits for the line saying where the process listens and sets
    /// [`Process::base`].
    pub fn wait_listening(&mut self) -> Result<(), String> {
        let lines = self.wait_for_output(READY_DEADLINE, |lines| {
            address_in_log(lines, "tessera is listening").is_some()
        })?;
        let addr = address_in_log(&lines, "tessera is listening").expect("the address just seen");
        self.base = format!("http://{addr}");
        Ok(())
    }

    /// Waits until `/_tessera/ready` answers 200; `Err(output)` if the
    /// process ended or the deadline passed.
    pub fn wait_ready(&mut self) -> Result<(), String> {
        if self.base.is_empty() {
            self.wait_listening()?;
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("an HTTP client");
        let url = format!("{}/_tessera/ready", self.base);
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(r) = http.get(&url).send() {
                if r.status().as_u16() == 200 {
                    return Ok(());
                }
            }
            if let Some(status) = self.exited() {
                return Err(format!("(exited with {status})\n{}", self.log_tail(40)));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "(not ready after {READY_DEADLINE:?})\n{}",
                    self.log_tail(40)
                ));
            }
            // Between two polls of readiness.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Like [`Process::wait_ready`], failing the test on `Err`.
    pub fn expect_ready(&mut self) {
        if let Err(log) = self.wait_ready() {
            panic!("{} did not become ready; its output:\n{log}", self.name);
        }
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running process").id()
    }

    /// `kill -9`, as a crashing machine would, and reaps the process.
    pub fn kill9(&mut self) {
        self.signal("-KILL");
        let exit = self
            .child
            .take()
            .expect("a running process")
            .wait()
            .expect("reaping the killed process");
        assert!(!exit.success(), "{} exited normally: {exit}", self.name);
    }

    /// SIGTERM, as an orchestrator stopping the process would; waits (at
    /// most `within`) for it to end and returns how it ended.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        self.signal("-TERM");
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().expect("a running process");
        loop {
            if let Some(exit) = child.try_wait().expect("waiting for the process") {
                self.child = None;
                return exit;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop within {within:?} of SIGTERM; its output:\n{}",
                self.name,
                self.log_tail(20)
            );
            // Between two polls of the exit status.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, signal: &str) {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill {signal} {pid} failed: {status}");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- last lines printed by {} ----\n{}",
                self.name,
                self.log_tail(20)
            );
        }
    }
}
