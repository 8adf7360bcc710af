//! Running `tessera` commands and reading what they print.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub use tessera_testkit::es::AUTHENTICATE;
pub use tessera_testkit::server::{Options, TestServer, ADMIN, ADMIN_PW};

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// `tessera ARGS --data-dir DIR`, with `stdin` as its input, without any
/// `TESSERA_*` variable of the test's environment.
pub fn tessera_in(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = tessera_testkit::process::tessera_command(Path::new(BIN));
    cmd.env("TESSERA_LOG", "error")
        .env("RUST_BACKTRACE", "1")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    run(cmd, stdin)
}

pub fn run(mut cmd: Command, stdin: Option<&str>) -> Output {
    let mut child = cmd.spawn().expect("running the tessera binary");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("a piped stdin")
            .write_all(text.as_bytes())
            .expect("writing stdin");
    }
    child.wait_with_output().expect("waiting for tessera")
}

/// A command that must succeed; its stdout as JSON.
pub fn ok(data_dir: &Path, args: &[&str]) -> Value {
    ok_with(data_dir, args, None)
}

pub fn ok_with(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Value {
    let out = tessera_in(data_dir, args, stdin);
    assert!(
        out.status.success(),
        "tessera {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "tessera {args:?}: no JSON on stdout ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// A command that must fail with one clear line (and no backtrace, though
/// `RUST_BACKTRACE=1`); returns that line.
pub fn fails(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = tessera_in(data_dir, args, stdin);
    one_error(&out, args)
}

pub fn one_error(out: &Output, what: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "tessera {what:?}: {stderr}");
    assert!(out.stdout.is_empty(), "tessera {what:?} printed on stdout");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "tessera {what:?}: one line expected: {stderr}"
    );
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("backtrace"), "{stderr}");
    lines[0].to_owned()
}

/// `GET /_security/_authenticate` with Basic credentials: the status.
pub fn basic_status(server: &TestServer, user: &str, password: &str) -> u16 {
    server.get(AUTHENTICATE).basic(user, password).send().status
}
