//! Readiness follows what the store can do: a SQLite store whose files
//! can no longer be written (made immutable with `chattr +i`, which binds
//! root too, unlike file modes) answers 503 on `/_tessera/ready`, and 200
//! again once they can.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::*;

/// The store's files made immutable; made writable again when dropped.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    /// `None` where `chattr` is missing or the file system has no
    /// immutable flag.
    fn set(dir: &Path) -> Option<Immutable> {
        // Not the `-shm` file: SQLite maps it into memory, and a write to a
        // mapped page of an immutable file is a SIGBUS, not an error.
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.to_string_lossy().ends_with("-shm"))
            .collect();
        files.push(dir.to_owned());
        let mut done = Immutable(Vec::new());
        for f in files {
            let ok = Command::new("chattr")
                .arg("+i")
                .arg(&f)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return None;
            }
            done.0.push(f);
        }
        Some(done)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = Command::new("chattr").arg("-i").arg(f).status();
        }
    }
}

fn ready_becomes(srv: &TestServer, want: u16) -> Resp {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = srv.get("/_tessera/ready").send();
        if r.status == want {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "readiness never {want}: {}",
            r.text
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_store_that_cannot_take_writes_is_not_ready() {
    let srv = TestServer::start();
    assert_eq!(srv.get("/_tessera/ready").send().status, 200);
    let dir = srv.db_path().parent().unwrap().to_owned();
    let Some(frozen) = Immutable::set(&dir) else {
        eprintln!("skipped: chattr +i is not available here");
        return;
    };
    let r = ready_becomes(&srv, 503);
    assert_eq!(r.body["status"], "unavailable", "{}", r.text);
    // Liveness is not readiness: the process still answers.
    assert_eq!(srv.get("/_tessera/live").send().status, 200);
    drop(frozen);
    ready_becomes(&srv, 200);
    // And writes work again.
    let r = srv
        .put("/_security/user/joe")
        .admin()
        .json(&serde_json::json!({"password": TEST_PW, "roles": []}))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
}
