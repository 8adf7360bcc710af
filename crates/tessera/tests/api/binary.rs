//! The `tessera` binary as an operator runs it: configuration errors, the
//! generated bootstrap password, SIGTERM.

use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tessera_testkit::process::{without_tessera_env, Process as Node};

use crate::support::*;

/// The binary with no `TESSERA_*` variable inherited from the test's
/// environment.
fn tessera() -> Command {
    logging(without_tessera_env(Command::new(env!(
        "CARGO_BIN_EXE_tessera"
    ))))
}

/// The binary started by a shell that first runs `setup` (`ulimit …`,
/// `umask …`), then replaces itself with the binary.
fn tessera_in_shell(setup: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        &format!("{setup} && exec \"$0\" \"$@\""),
        env!("CARGO_BIN_EXE_tessera"),
    ]);
    logging(without_tessera_env(cmd))
}

/// The binary run with its file-descriptor limit (soft and hard) set to
/// `nofile` by the shell's `ulimit` just before it starts.
fn tessera_with_fd_limit(nofile: u64) -> Command {
    tessera_in_shell(&format!("ulimit -n {nofile}"))
}

/// The binary started under `umask`, so that what it creates shows which
/// modes it asks for itself.
fn tessera_under_umask(umask: &str) -> Command {
    tessera_in_shell(&format!("umask {umask}"))
}

fn logging(mut cmd: Command) -> Command {
    cmd.env("TESSERA_LOG", "info");
    cmd
}

#[test]
fn invalid_setting_exits_non_zero_naming_it() {
    let out = tessera()
        .args(["serve", "--access-token-ttl", "2h"])
        .output()
        .expect("running tessera");
    assert!(!out.status.success(), "{:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("access_token_ttl"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let out = tessera()
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .env("TESSERA_ACCESS_TOKEN_TTL", "2h")
        .output()
        .expect("running tessera");
    assert!(!out.status.success(), "{:?}", out.status);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("access_token_ttl"), "{stderr}");
    assert!(stderr.contains("[2h]"), "{stderr}");
    // It stopped before touching the data directory.
    assert!(!dir.path().join("tessera.db").exists());
}

#[test]
fn guessing_limits_come_from_flags_environment_and_file_and_are_validated() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(
        &file,
        "lockout_delays = [\"2s\", \"1m\"]\ntrusted_proxies = [\"10.0.0.0/8\"]\nsource_failure_burst = 50\n",
    )
    .unwrap();
    let out = tessera()
        .arg("check-config")
        .arg("--config")
        .arg(&file)
        .args(["--source-failure-burst", "7"])
        .env("TESSERA_LOCKOUT_THRESHOLD", "3")
        .env("TESSERA_TRUSTED_PROXIES", "192.0.2.0/24")
        .env("TESSERA_BOOTSTRAP_PASSWORD", "never-printed-pw")
        .output()
        .expect("running tessera");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("never-printed-pw") && stdout.contains("<redacted>"),
        "check-config shows the bootstrap password only redacted: {stdout}"
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The effective configuration as TOML, each value with its source.
    let file_source = format!("# config file {}", file.display());
    for expected in [
        "lockout_threshold = 3  # environment variable TESSERA_LOCKOUT_THRESHOLD".to_owned(),
        format!("lockout_delays = \"2s,1m\"  {file_source}"),
        "source_failure_burst = 7  # flag --source-failure-burst".into(),
        "source_failure_rate = 10  # default".into(),
        "trusted_proxies = \"192.0.2.0/24\"  # environment variable TESSERA_TRUSTED_PROXIES".into(),
        "bootstrap_password = \"<redacted>\"  # environment variable TESSERA_BOOTSTRAP_PASSWORD"
            .into(),
        "access_token_ttl = \"20m\"  # default".into(),
    ] {
        assert!(
            stdout.lines().any(|l| l == expected),
            "no {expected} in {stdout}"
        );
    }
    assert!(!stdout.contains("--bootstrap-password"), "{stdout}");
    assert!(
        !stdout.contains("10.0.0.0/8"),
        "the environment wins over the file"
    );

    for (flag, value, name) in [
        ("--lockout-threshold", "0", "lockout_threshold"),
        ("--lockout-delays", "soon", "lockout_delays"),
        ("--lockout-reset-after", "0s", "lockout_reset_after"),
        ("--source-failure-burst", "0", "source_failure_burst"),
        ("--source-failure-rate", "-1", "source_failure_rate"),
        ("--trusted-proxies", "the-load-balancer", "trusted_proxies"),
    ] {
        let out = tessera()
            .arg("check-config")
            .arg(format!("{flag}={value}"))
            .output()
            .expect("running tessera");
        assert!(!out.status.success(), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("`{name}`")),
            "{flag} {value}: {stderr}"
        );
    }
}

/// A node on `data_dir`, started by `cmd` on `127.0.0.1:0`; its address
/// comes from the line it logs ("tessera is listening addr=…").
fn spawn_from(cmd: Command, data_dir: &Path, flags: &[&str]) -> Node {
    let mut node = Node::serve("tessera", cmd, Some(data_dir), flags);
    if let Err(output) = node.wait_listening() {
        panic!("tessera did not say where it listens; its output:\n{output}");
    }
    node
}

fn spawn(data_dir: &Path) -> Node {
    spawn_from(tessera(), data_dir, &[])
}

/// A node whose file-descriptor limit is `nofile`, with extra `serve`
/// flags and the bootstrap password [`ADMIN_PW`].
pub(crate) fn spawn_limited(data_dir: &Path, nofile: u64, flags: &[&str]) -> Node {
    let mut cmd = tessera_with_fd_limit(nofile);
    cmd.env("TESSERA_BOOTSTRAP_PASSWORD", ADMIN_PW);
    spawn_from(cmd, data_dir, flags)
}

/// SIGTERM, then the exit status and everything the node printed.
pub(crate) fn terminate(mut node: Node) -> (std::process::ExitStatus, Vec<String>) {
    let status = node.terminate(Duration::from_secs(20));
    (status, node.lines())
}

/// Waits for the password the node generated and printed.
fn await_generated_password(node: &mut Node) -> String {
    let lines = node.expect_output("the generated password", |seen| {
        generated_password(seen).is_some()
    });
    generated_password(&lines).unwrap()
}

fn generated_password(lines: &[String]) -> Option<String> {
    let at = lines
        .iter()
        .position(|l| l.contains("with the generated password"))?;
    lines[at + 1..]
        .iter()
        .map(|l| l.trim())
        .find(|l| !l.is_empty())
        .map(str::to_owned)
}

#[test]
fn generated_bootstrap_password_is_printed_once_and_sigterm_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();

    let mut node = spawn(dir.path());
    let password = await_generated_password(&mut node);
    assert!(password.len() >= 20, "{password:?}");
    node.expect_ready();
    let api = Api::new(&node.base);
    let r = api.auth_basic(ADMIN, &password);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], ADMIN);
    assert_eq!(r.body["roles"], serde_json::json!(["superuser"]));
    let r = api.auth_basic(ADMIN, "wrong-password");
    assert_eq!(r.status, 401, "{}", r.text);
    let (status, lines) = terminate(node);
    assert_eq!(status.code(), Some(0), "{status}:\n{}", lines.join("\n"));
    let shown = lines.iter().filter(|l| l.contains(&password)).count();
    assert_eq!(
        shown,
        1,
        "the password is printed exactly once:\n{}",
        lines.join("\n")
    );

    // Second start on the same data directory: no new password.
    let mut node = spawn(dir.path());
    node.expect_ready();
    let r = Api::new(&node.base).auth_basic(ADMIN, &password);
    assert_eq!(r.status, 200, "{}", r.text);
    let (status, lines) = terminate(node);
    assert_eq!(status.code(), Some(0), "{status}:\n{}", lines.join("\n"));
    assert!(generated_password(&lines).is_none(), "{}", lines.join("\n"));
    assert!(
        !lines.iter().any(|l| l.contains(&password)),
        "{}",
        lines.join("\n")
    );
}

/// Killed with SIGKILL while clients create tokens as fast as they can:
/// after a restart every token the server had answered with authenticates
/// (a write is answered only once it is committed and synced). A second
/// server on the same data directory is refused while the first runs.
#[test]
fn a_killed_server_keeps_every_token_it_answered_with() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = spawn(dir.path());
    let password = await_generated_password(&mut node);
    node.expect_ready();
    let base = node.base.clone();

    // One server per embedded store.
    let second = tessera()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .output()
        .expect("starting a second tessera");
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("another tessera server"), "{err}");

    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let creators: Vec<_> = (0..8)
        .map(|_| {
            let (base, password, stop, count) =
                (base.clone(), password.clone(), stop.clone(), count.clone());
            thread::spawn(move || {
                let client = client();
                let mut answered = Vec::new();
                while !stop.load(SeqCst) {
                    let sent = client
                        .post(format!("{base}{TOKEN}"))
                        .basic_auth(ADMIN, Some(&password))
                        .json(&serde_json::json!({ "grant_type": "client_credentials" }))
                        .send();
                    // Requests cut off by the kill have no answer: skipped.
                    let Ok(r) = sent else { continue };
                    if r.status().as_u16() != 200 {
                        continue;
                    }
                    if let Ok(body) = r.json::<serde_json::Value>() {
                        answered.push(body["access_token"].as_str().unwrap().to_owned());
                        count.fetch_add(1, SeqCst);
                    }
                }
                answered
            })
        })
        .collect();
    // Kill once a good number of tokens were answered, with the creators
    // still sending (so some requests are cut off in the middle).
    let deadline = Instant::now() + Duration::from_secs(60);
    while count.load(SeqCst) < 300 {
        assert!(Instant::now() < deadline, "tokens were not being created");
        // Between two polls of the condition.
        thread::sleep(Duration::from_millis(10));
    }
    node.kill9();
    // Requests sent from here on fail to connect; the creators stop.
    stop.store(true, SeqCst);
    let answered: Vec<String> = creators
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert!(
        answered.len() > 50,
        "only {} tokens answered",
        answered.len()
    );

    let mut node = spawn(dir.path());
    node.expect_ready();
    let api = Api::new(&node.base);
    for token in &answered {
        let r = api.auth_bearer(token);
        assert_eq!(r.status, 200, "an answered token was lost: {}", r.text);
    }
    let (status, lines) = terminate(node);
    assert_eq!(status.code(), Some(0), "{status}:\n{}", lines.join("\n"));
}

/// The mode bits of `path`.
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file in `dir` with its mode.
fn file_modes(dir: &Path) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                mode(&p),
            )
        })
        .collect();
    out.sort();
    out
}

/// Started under `umask 000`, the server still creates its data directory
/// 0700 and every file in it (database, WAL, shared memory, lock) 0600, and
/// narrows a database file that was left readable. A data directory open
/// to others is warned about on stderr.
#[test]
fn files_on_disk_are_private_whatever_the_umask() {
    let parent = tempfile::tempdir().unwrap();
    let data = parent.path().join("data");
    let mut node = spawn_from(tessera_under_umask("000"), &data, &[]);
    let password = await_generated_password(&mut node);
    node.expect_ready();
    // A write, so that the WAL and the shared memory are in use.
    let r = Api::new(&node.base).request_client_credentials(ADMIN, &password);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(mode(&data), 0o700, "the data directory");
    let files = file_modes(&data);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for expected in [
        "tessera.db",
        "tessera.db-wal",
        "tessera.db-shm",
        "tessera.db.lock",
    ] {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }
    for (name, mode) in &files {
        assert_eq!(*mode, 0o600, "{name} is {mode:o}: {files:?}");
    }
    let (status, lines) = terminate(node);
    assert_eq!(status.code(), Some(0), "{status}:\n{}", lines.join("\n"));
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("data directory is accessible")),
        "no warning for a private directory:\n{}",
        lines.join("\n")
    );

    // Someone opened the directory and the database to everyone.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = data.join("tessera.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut node = spawn_from(tessera_under_umask("000"), &data, &[]);
    node.expect_output("the warning", |seen| {
        seen.iter()
            .any(|l| l.contains("WARN") && l.contains("data directory is accessible"))
    });
    node.expect_ready();
    for (name, mode) in file_modes(&data) {
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
    }
    let (status, lines) = terminate(node);
    assert_eq!(status.code(), Some(0), "{status}:\n{}", lines.join("\n"));
    let warning = lines
        .iter()
        .find(|l| l.contains("data directory is accessible"))
        .unwrap();
    assert!(warning.contains("0755"), "{warning}");
}
