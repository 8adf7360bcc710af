//! `tessera user …` next to a running server.

use std::path::Path;
use std::process::Stdio;

use serde_json::json;

use crate::support::*;

#[test]
fn users_made_by_the_cli_authenticate_and_changes_revoke_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), Options::default());
    let d = dir.path();

    // A generated password: 256 bits, printable, and it works for Basic.
    let alice = ok(
        d,
        &["user", "create", "alice", "--roles", "superuser,viewer"],
    );
    assert_eq!(alice["created"], true);
    let pw = alice["password"].as_str().unwrap().to_owned();
    assert!(
        pw.len() >= 43 && pw.chars().all(|c| c.is_ascii_graphic()),
        "{pw}"
    );
    assert_eq!(basic_status(&server, "alice", &pw), 200);

    // From stdin: one line, the API's password rule.
    let bob = ok_with(
        d,
        &[
            "user",
            "create",
            "bob",
            "--roles",
            "viewer",
            "--password-stdin",
        ],
        Some("bob-password-1\n"),
    );
    assert_eq!(bob, json!({ "created": true, "username": "bob" }));
    assert_eq!(basic_status(&server, "bob", "bob-password-1"), 200);
    let e = fails(
        d,
        &[
            "user",
            "create",
            "carol",
            "--roles",
            "viewer",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    assert!(e.contains("at least [6] characters"), "{e}");
    let e = fails(d, &["user", "create", "alice", "--roles", "viewer"], None);
    assert!(e.contains("[alice] already exists"), "{e}");
    let e = fails(d, &["user", "create", " spaced", "--roles", "viewer"], None);
    assert!(e.contains("Invalid username"), "{e}");

    // list and show: JSON, no hashes.
    let list = ok(d, &["user", "list"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob", ADMIN]);
    assert!(!list.to_string().contains("argon2"));
    let shown = ok(d, &["user", "show", "bob"]);
    assert_eq!(shown["roles"], json!(["viewer"]));
    assert_eq!(shown["enabled"], true);
    let e = fails(d, &["user", "show", "nobody"], None);
    assert_eq!(e, "error: user [nobody] does not exist");

    // reset-password: the new password alone on stdout; the running
    // server refuses the old one and alice's tokens at once, though the
    // token was cached by two authentications.
    let tokens = server.password_grant("alice", &pw);
    for _ in 0..2 {
        assert_eq!(server.auth_bearer(&tokens.access).status, 200);
    }
    let out = tessera_in(d, &["user", "reset-password", "alice"], None);
    assert!(out.status.success());
    let new_pw = String::from_utf8(out.stdout).unwrap();
    let new_pw = new_pw.strip_suffix('\n').unwrap();
    assert!(new_pw.len() >= 43 && !new_pw.contains(char::is_whitespace));
    assert_eq!(server.auth_bearer(&tokens.access).status, 401);
    assert_eq!(basic_status(&server, "alice", &pw), 401);
    assert_eq!(basic_status(&server, "alice", new_pw), 200);
    let json_pw = ok(d, &["user", "reset-password", "alice", "--json"]);
    let json_pw = json_pw["password"].as_str().unwrap();
    assert_eq!(basic_status(&server, "alice", json_pw), 200);
    assert_eq!(basic_status(&server, "alice", new_pw), 401);
    let changed = ok_with(d, &["user", "passwd", "alice"], Some("alice-chosen-1\n"));
    assert_eq!(changed["changed"], true);
    assert_eq!(basic_status(&server, "alice", "alice-chosen-1"), 200);
    let e = fails(d, &["user", "reset-password", "nobody"], None);
    assert!(e.contains("[nobody] does not exist"), "{e}");

    // disable / enable / delete, each revoking as the API does.
    let tokens = server.password_grant("bob", "bob-password-1");
    assert_eq!(server.auth_bearer(&tokens.access).status, 200);
    assert_eq!(
        ok(d, &["user", "disable", "bob"]),
        json!({ "username": "bob", "enabled": false })
    );
    assert_eq!(server.auth_bearer(&tokens.access).status, 401);
    assert_eq!(basic_status(&server, "bob", "bob-password-1"), 401);
    ok(d, &["user", "enable", "bob"]);
    assert_eq!(basic_status(&server, "bob", "bob-password-1"), 200);
    assert_eq!(
        ok(d, &["user", "delete", "bob"]),
        json!({ "deleted": true, "username": "bob" })
    );
    assert_eq!(basic_status(&server, "bob", "bob-password-1"), 401);
    let e = fails(d, &["user", "delete", "bob"], None);
    assert!(e.contains("[bob] does not exist"), "{e}");

    // token invalidate --user: the running server refuses them at once.
    let tokens = server.password_grant("alice", "alice-chosen-1");
    assert_eq!(server.auth_bearer(&tokens.access).status, 200);
    let counts = ok(d, &["token", "invalidate", "--user", "alice"]);
    assert!(
        counts["invalidated_tokens"].as_u64().unwrap() >= 1,
        "{counts}"
    );
    assert_eq!(server.auth_bearer(&tokens.access).status, 401);
    let usage = tessera_in(d, &["token", "invalidate"], None);
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("--user"));
}

#[test]
fn reset_password_works_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    drop(TestServer::start_in(dir.path(), Options::default()));
    let out = tessera_in(dir.path(), &["user", "reset-password", ADMIN], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pw = String::from_utf8(out.stdout).unwrap().trim_end().to_owned();
    let server = TestServer::start_in(dir.path(), Options::default());
    assert_eq!(basic_status(&server, ADMIN, &pw), 200);
    // The bootstrap password the harness sets was ignored: users exist.
    assert_eq!(basic_status(&server, ADMIN, ADMIN_PW), 401);
}

/// Store commands read the server's settings from the same `TESSERA_*`
/// variables as `serve`: with `TESSERA_REVOKE_ON_USER_CHANGE=false` a
/// password changed by the CLI leaves the user's tokens alone, as the API
/// does; a value that is not a boolean is refused, naming the setting.
#[test]
fn store_commands_read_the_servers_settings_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(
        dir.path(),
        Options::default().revoke_on_user_change("false"),
    );
    server.put_user("jane", "jane-password-1", &["superuser"]);
    let token = server.password_grant("jane", "jane-password-1").access;
    let passwd = |value: &str, password: &str| {
        let mut cmd = tessera_testkit::process::tessera_command(Path::new(BIN));
        cmd.env("TESSERA_LOG", "error")
            .env("TESSERA_REVOKE_ON_USER_CHANGE", value)
            .args(["user", "passwd", "jane", "--data-dir"])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        run(cmd, Some(&format!("{password}\n")))
    };
    let out = passwd("false", "jane-password-2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        server.auth_bearer(&token).status,
        200,
        "kept, as configured"
    );
    let out = passwd("flase", "jane-password-3");
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("revoke"), "{e}");
    assert_eq!(basic_status(&server, "jane", "jane-password-2"), 200);
}
