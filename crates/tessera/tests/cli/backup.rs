//! `tessera backup` under load, `tessera restore`, `tessera migrate`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;

use crate::support::*;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_backup_under_load_keeps_every_token_acknowledged_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(TestServer::start_in(dir.path(), Options::default()));
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (server, acknowledged, stop) = (
                Arc::clone(&server),
                Arc::clone(&acknowledged),
                Arc::clone(&stop),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = server
                        .post(tessera_testkit::es::TOKEN)
                        .admin()
                        .json(&json!({ "grant_type": "client_credentials" }))
                        .send();
                    assert_eq!(r.status, 200, "{}", r.text);
                    acknowledged.lock().unwrap().push(r.str("access_token"));
                }
            })
        })
        .collect();
    while acknowledged.lock().unwrap().len() < 50 {
        std::thread::yield_now();
    }
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("tessera.backup");
    let before: Vec<String> = acknowledged.lock().unwrap().clone();
    let out = ok(dir.path(), &["backup", file.to_str().unwrap()]);
    assert_eq!(out["backup"], file.display().to_string());
    let during = acknowledged.lock().unwrap().len();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert!(during > before.len() || before.len() >= 50);
    assert_eq!(mode(&file), 0o600);

    // Never over an existing file, unless --force.
    let e = fails(dir.path(), &["backup", file.to_str().unwrap()], None);
    assert!(e.contains("--force"), "{e}");
    ok(dir.path(), &["backup", file.to_str().unwrap(), "--force"]);
    ok(dir.path(), &["backup", file.to_str().unwrap(), "--force"]);

    // Restore: never into the running server's directory nor a non-empty
    // one; a new directory is created private.
    let e = fails(dir.path(), &["restore", file.to_str().unwrap()], None);
    assert!(e.contains("is not empty"), "{e}");
    let target = backups.path().join("restored");
    ok(&target, &["restore", file.to_str().unwrap()]);
    assert_eq!(mode(&target), 0o700);
    assert_eq!(mode(&target.join("tessera.db")), 0o600);
    let other = backups.path().join("other");
    let e = fails(&other, &["restore", "/nonexistent/backup"], None);
    assert!(e.contains("/nonexistent/backup"), "{e}");

    let restored = TestServer::start_in(&target, Options::default());
    for token in &before {
        assert_eq!(restored.auth_bearer(token).status, 200, "a token lost");
    }
    assert_eq!(basic_status(&restored, ADMIN, ADMIN_PW), 200);
}

/// `--force` never overwrites the store itself or one of its files, by
/// whatever path, nor a destination that is not a regular file; and a
/// restore from a live store's file keeps what its write-ahead log holds.
#[test]
fn backup_never_overwrites_the_store_and_restore_keeps_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), Options::default());
    let mint = || {
        let r = server
            .post(tessera_testkit::es::TOKEN)
            .admin()
            .json(&json!({ "grant_type": "client_credentials" }))
            .send();
        assert_eq!(r.status, 200, "{}", r.text);
        r.str("access_token")
    };
    let before = mint();
    let db = dir.path().join("tessera.db");
    let roundabout = dir.path().join(".").join("tessera.db-wal");
    for dest in [&db, &dir.path().join("tessera.db-wal"), &roundabout] {
        let e = fails(
            dir.path(),
            &["backup", dest.to_str().unwrap(), "--force"],
            None,
        );
        assert!(e.contains("the store itself"), "{}: {e}", dest.display());
    }
    let others = tempfile::tempdir().unwrap();
    let target = others.path().join("kept.db");
    std::fs::write(&target, "not to be replaced").unwrap();
    let link = others.path().join("link.db");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let e = fails(
        dir.path(),
        &["backup", link.to_str().unwrap(), "--force"],
        None,
    );
    assert!(e.contains("not a regular file"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "not to be replaced"
    );
    // The server kept its store.
    let after = mint();
    for token in [&before, &after] {
        assert_eq!(server.auth_bearer(token).status, 200);
    }

    // Restored from the live file itself: the log's transactions too.
    let restored_dir = others.path().join("restored");
    ok(&restored_dir, &["restore", db.to_str().unwrap()]);
    drop(server);
    let restored = TestServer::start_in(&restored_dir, Options::default());
    for token in [&before, &after] {
        assert_eq!(restored.auth_bearer(token).status, 200, "a token lost");
    }
}

#[test]
fn backup_refuses_postgresql_with_the_tool_to_use() {
    let dir = tempfile::tempdir().unwrap();
    let e = fails(
        dir.path(),
        &[
            "backup",
            "x.db",
            "--store",
            "postgres://u:secret@127.0.0.1:1/db",
        ],
        None,
    );
    assert!(e.contains("pg_dump"), "{e}");
    assert!(!e.contains("secret"), "{e}");
}

fn set_version(db: &Path, version: Option<i64>) {
    let conn = rusqlite::Connection::open(db).unwrap();
    match version {
        Some(v) => conn
            .execute(
                "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
                [v.to_string()],
            )
            .unwrap(),
        None => conn
            .execute("DELETE FROM meta WHERE key = 'schema_version'", [])
            .unwrap(),
    };
}

fn check(dir: &Path) -> (Option<i32>, serde_json::Value) {
    let out = tessera_in(dir, &["migrate", "--check"], None);
    let body = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (out.status.code(), body)
}

#[test]
fn migrate_check_tells_older_current_and_newer_apart() {
    let dir = tempfile::tempdir().unwrap();
    drop(TestServer::start_in(dir.path(), Options::default()));
    let db = dir.path().join("tessera.db");
    let current = tessera_store_sqlite::SCHEMA_VERSION;
    assert_eq!(
        check(dir.path()),
        (
            Some(0),
            json!({ "schema": "current", "store_version": current, "binary_version": current })
        )
    );

    // Written before versions were recorded: older; `migrate` upgrades it.
    set_version(&db, None);
    assert_eq!(check(dir.path()).0, Some(3));
    assert_eq!(check(dir.path()).1["store_version"], 0);
    ok(dir.path(), &["migrate"]);
    assert_eq!(check(dir.path()).0, Some(0));

    // Newer: reported, and refused at start naming both versions.
    set_version(&db, Some(current + 1));
    assert_eq!(check(dir.path()).0, Some(4));
    assert_eq!(check(dir.path()).1["schema"], "newer");
    let out = tessera_in(dir.path(), &["serve", "--listen", "127.0.0.1:0"], None);
    let e = one_error(&out, &["serve"]);
    assert!(
        e.contains(&format!("version {}", current + 1))
            && e.contains(&format!("version {current}")),
        "{e}"
    );
    let e = fails(dir.path(), &["user", "list"], None);
    assert!(e.contains("newer"), "{e}");

    let e = fails(&dir.path().join("none"), &["migrate", "--check"], None);
    assert!(e.contains("no store at"), "{e}");
}
