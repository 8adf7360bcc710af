//! Roles, role mappings and API keys from the CLI; which store a command
//! opens; `--help`.

use std::path::Path;

use serde_json::json;

use crate::support::*;

#[test]
fn roles_mappings_and_api_keys_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), Options::default());
    let d = dir.path();

    let role = r#"{"cluster":["monitor"],"indices":[{"names":["logs-*"],"privileges":["read"]}]}"#;
    assert_eq!(
        ok(d, &["role", "put", "log_reader", role]),
        json!({ "role": { "created": true } })
    );
    assert_eq!(
        ok_with(d, &["role", "put", "log_reader", "-"], Some(role)),
        json!({ "role": { "created": false } })
    );
    let listed = ok(d, &["role", "list"]);
    assert_eq!(listed["log_reader"]["cluster"], json!(["monitor"]));
    // The server sees it.
    let r = server.get("/_security/role/log_reader").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    let e = fails(d, &["role", "put", "superuser", "{}"], None);
    assert!(e.contains("reserved"), "{e}");
    let e = fails(d, &["role", "put", "bad", r#"{"cluster":["nope"]}"#], None);
    assert!(e.contains("unknown cluster privilege [nope]"), "{e}");
    let e = fails(d, &["role", "put", "bad", "{"], None);
    assert!(e.contains("not valid JSON"), "{e}");
    assert_eq!(
        ok(d, &["role", "delete", "log_reader"]),
        json!({ "found": true })
    );
    let e = fails(d, &["role", "delete", "log_reader"], None);
    assert!(e.contains("[log_reader] does not exist"), "{e}");

    let mapping = r#"{"roles":["log_reader"],"enabled":true,"rules":{"field":{"username":"*"}}}"#;
    assert_eq!(
        ok(d, &["role-mapping", "put", "everyone", mapping]),
        json!({ "role_mapping": { "created": true } })
    );
    assert_eq!(
        ok(d, &["role-mapping", "list"])["everyone"]["roles"],
        json!(["log_reader"])
    );
    let r = server
        .get("/_security/role_mapping/everyone")
        .admin()
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let e = fails(
        d,
        &["role-mapping", "put", "broken", r#"{"roles":["x"]}"#],
        None,
    );
    assert!(e.contains("invalid role mapping"), "{e}");
    assert_eq!(
        ok(d, &["role-mapping", "delete", "everyone"]),
        json!({ "found": true })
    );
    fails(d, &["role-mapping", "delete", "everyone"], None);

    // API keys: made over HTTP, listed and invalidated by the CLI; the
    // running server refuses the key at once.
    let r = server
        .post("/_security/api_key")
        .admin()
        .json(&json!({ "name": "cli-key" }))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let (id, encoded) = (r.str("id"), r.str("encoded"));
    let auth = |encoded: &str| {
        server
            .get(AUTHENTICATE)
            .header("Authorization", &format!("ApiKey {encoded}"))
            .send()
            .status
    };
    assert_eq!(auth(&encoded), 200);
    let keys = ok(d, &["api-key", "list", "--user", ADMIN]);
    assert_eq!(keys["api_keys"][0]["id"], id.as_str());
    assert_eq!(keys["api_keys"][0]["invalidated"], false);
    assert!(!keys.to_string().contains(&encoded));
    let e = fails(d, &["api-key", "invalidate"], None);
    assert!(e.contains("at least one of --id"), "{e}");
    let out = ok(d, &["api-key", "invalidate", "--id", &id]);
    assert_eq!(out["invalidated_api_keys"], json!([id]));
    assert_eq!(auth(&encoded), 401);
    // Key ids are base64url: one may start with `-`.
    assert_eq!(
        ok(d, &["api-key", "list", "--id", "-no-such-key"]),
        json!({ "api_keys": [] })
    );
    let active = ok(d, &["api-key", "list", "--active-only"]);
    assert_eq!(active, json!({ "api_keys": [] }));
}

#[test]
fn store_commands_never_create_a_store_by_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("elsewhere");
    let e = fails(&missing, &["user", "list"], None);
    assert!(e.contains("no store at") && e.contains("--create"), "{e}");
    assert!(
        e.contains(&missing.join("tessera.db").display().to_string()),
        "{e}"
    );
    assert!(!missing.exists());
    fails(&missing, &["client", "list"], None);
    assert_eq!(ok(&missing, &["user", "list", "--create"]), json!([]));

    // --data-dir naming a file.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let e = fails(&file, &["user", "list", "--create"], None);
    assert!(e.contains("is not a directory"), "{e}");
}

fn help(args: &[&str]) -> String {
    let out = run(
        {
            let mut cmd = tessera_testkit::process::tessera_command(Path::new(BIN));
            cmd.args(args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            cmd
        },
        None,
    );
    assert!(out.status.success(), "{args:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_speaks_to_users() {
    let top = help(&["--help"]);
    assert!(
        top.starts_with("Tessera: an authentication token server"),
        "{top}"
    );
    assert!(top.contains("Examples:"), "{top}");
    let serve = help(&["serve", "--help"]);
    for needle in [
        "TESSERA_BOOTSTRAP_PASSWORD ",
        "TESSERA_BOOTSTRAP_PASSWORD_FILE",
        "bootstrap_password",
        "TESSERA_LOG",
    ] {
        assert!(serve.contains(needle), "{needle}: {serve}");
    }
    let client = help(&["client", "list", "--help"]);
    assert!(
        !client.contains("--listen") && !client.contains("--access-token-ttl"),
        "{client}"
    );
    assert!(client.contains("--data-dir"), "{client}");
    for command in [
        &["user", "create", "--help"][..],
        &["user", "reset-password", "--help"],
        &["role", "put", "--help"],
        &["role-mapping", "put", "--help"],
        &["token", "invalidate", "--help"],
        &["api-key", "invalidate", "--help"],
        &["backup", "--help"],
        &["migrate", "--help"],
    ] {
        let text = help(command);
        assert!(text.contains("Examples:"), "{command:?}: {text}");
    }
}

#[test]
fn a_bad_setting_is_one_line_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let out = tessera_in(
        dir.path(),
        &["check-config", "--access-token-ttl", "2x"],
        None,
    );
    let e = one_error(&out, &["check-config"]);
    assert!(e.contains("access_token_ttl"), "{e}");
}

/// `check-config` loads the TLS pair as `serve` would: a missing file or a
/// file that holds no certificate fails the check, naming the files.
#[test]
fn check_config_checks_the_tls_files() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let args = |cert: &Path, key: &Path| {
        [
            "--tls-cert".to_owned(),
            cert.display().to_string(),
            "--tls-key".to_owned(),
            key.display().to_string(),
        ]
    };
    let missing = args(&cert, &key);
    let missing: Vec<&str> = missing.iter().map(String::as_str).collect();
    let out = check_config(dir.path(), &missing, "error");
    let e = one_error(&out, &["check-config"]);
    assert!(e.contains("c.pem"), "{e}");
    std::fs::write(&cert, "not a certificate").unwrap();
    std::fs::write(&key, "not a key").unwrap();
    let out = check_config(dir.path(), &missing, "error");
    let e = one_error(&out, &["check-config"]);
    assert!(e.contains("c.pem") && e.contains("k.pem"), "{e}");
}

fn check_config(dir: &Path, args: &[&str], log: &str) -> std::process::Output {
    let mut cmd = tessera_testkit::process::tessera_command(Path::new(BIN));
    cmd.env("TESSERA_LOG", log)
        .current_dir(dir)
        .arg("check-config")
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    run(cmd, None)
}

#[test]
fn check_config_prints_toml_with_sources_and_names_the_file_of_a_bad_value() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tessera.toml");
    std::fs::write(
        &file,
        "revoke_on_user_change = \"false\"\nmax_connections = \"500\"\nrefresh_reuse_revokes_family = false\n",
    )
    .unwrap();
    let out = check_config(
        dir.path(),
        &["--config", file.to_str().unwrap(), "--listen", ":9300"],
        "error",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let from_file = format!("# config file {}", file.display());
    for expected in [
        format!("revoke_on_user_change = false  {from_file}"),
        format!("refresh_reuse_revokes_family = false  {from_file}"),
        format!("max_connections = 500  {from_file}"),
        "listen = \"127.0.0.1:9300\"  # flag --listen".into(),
    ] {
        assert!(
            stdout.lines().any(|l| l == expected),
            "no {expected} in {stdout}"
        );
    }
    // The printed configuration is a configuration file.
    let printed = dir.path().join("printed.toml");
    std::fs::write(&printed, &stdout).unwrap();
    let again = check_config(
        dir.path(),
        &["--config", printed.to_str().unwrap()],
        "error",
    );
    assert!(
        again.status.success(),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    let out = check_config(dir.path(), &["--listen", "localhost:9301"], "error");
    assert!(String::from_utf8_lossy(&out.stdout).contains("listen = \"127.0.0.1:9301\""));

    // The wildcard address warns about the issuer it makes.
    let out = check_config(dir.path(), &["--listen", "0.0.0.0:9302"], "warn");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("http://0.0.0.0:9302"), "{stderr}");

    // A bad value names the file that set it.
    std::fs::write(&file, "access_token_ttl = \"2x\"\n").unwrap();
    let out = check_config(dir.path(), &["--config", file.to_str().unwrap()], "error");
    let e = one_error(&out, &["check-config"]);
    assert!(
        e.contains(&format!("set by config file {}", file.display()))
            && e.contains("access_token_ttl"),
        "{e}"
    );
}

#[test]
fn an_ignored_bootstrap_password_is_said_once() {
    let dir = tempfile::tempdir().unwrap();
    drop(TestServer::start_in(dir.path(), Options::default()));
    let mut cmd = tessera_testkit::process::tessera_command(Path::new(BIN));
    cmd.env("TESSERA_BOOTSTRAP_PASSWORD", "another-password");
    let mut node = tessera_testkit::process::Process::serve("tessera", cmd, Some(dir.path()), &[]);
    node.wait_listening().expect("the node listens");
    let lines = node.lines();
    let ignored: Vec<&String> = lines.iter().filter(|l| l.contains("was ignored")).collect();
    assert_eq!(ignored.len(), 1, "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("starting tessera") && l.contains("tessera.db")),
        "{lines:?}"
    );
    node.terminate(std::time::Duration::from_secs(10));
}
