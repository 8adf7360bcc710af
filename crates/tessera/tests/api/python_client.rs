//! The official Python Elasticsearch client against a real node: runs
//! `tests/python/es_client.py` (the client pinned in
//! `tests/python/requirements.txt`, installed without dependency
//! resolution in a virtual environment under `target/`, made when missing
//! as `.ci/schemathesis.sh` makes its own). Without python3, its `venv`
//! module or the package index the test says why and passes, except under
//! CI (`CI=true`), where it must run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::*;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Under CI a missing prerequisite fails the test; elsewhere it is named
/// and the test stops there.
fn unavailable(why: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    assert!(!ci, "the Python client test cannot run under CI: {why}");
    eprintln!("skipping the Python client test: {why}");
}

fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The virtual environment with the pinned client, made (beside, then
/// renamed into place, so that a concurrent run never sees half of one)
/// when it is missing or its requirements changed.
fn venv() -> Result<PathBuf, String> {
    let root = repo_root();
    let requirements = root.join("tests/python/requirements.txt");
    let wanted = std::fs::read(&requirements).map_err(|e| format!("{requirements:?}: {e}"))?;
    let venv = root.join("target/python-client-venv");
    let stamp = venv.join(".installed");
    if std::fs::read(&stamp).is_ok_and(|have| have == wanted) {
        return Ok(venv);
    }
    run(Command::new("python3").args(["-c", "import ensurepip, venv"]))
        .map_err(|e| format!("python3 with its venv module is needed: {e}"))?;
    let partial = root.join(format!("target/python-client-venv.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    run(Command::new("python3").arg("-m").arg("venv").arg(&partial))?;
    run(Command::new(partial.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "-r",
        ])
        .arg(&requirements))
    .map_err(|e| format!("the pinned client could not be installed: {e}"))?;
    std::fs::write(partial.join(".installed"), &wanted).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&venv);
    if std::fs::rename(&partial, &venv).is_err() {
        // Another run put its own in place first.
        let _ = std::fs::remove_dir_all(&partial);
    }
    Ok(venv)
}

#[test]
fn the_official_python_client_works_against_tessera() {
    let venv = match venv() {
        Ok(v) => v,
        Err(why) => return unavailable(&why),
    };
    let srv = TestServer::start();
    let script = repo_root().join("tests/python/es_client.py");
    let out = Command::new(venv.join("bin/python"))
        .arg(&script)
        .env("TESSERA_TEST_URL", srv.base_url())
        .env("TESSERA_TEST_USER", ADMIN)
        .env("TESSERA_TEST_PASSWORD", ADMIN_PW)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("running the Python client script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // What it skipped is shown with the test's output.
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the Python client failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(" passed, 0 failed"),
        "no summary from the script:\n{stdout}"
    );
}
