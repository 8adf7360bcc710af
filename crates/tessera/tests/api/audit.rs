//! The audit log, in Elasticsearch's format, against a real node: one line
//! per event kind with Elasticsearch's field names, the request id of the
//! request it came from, the include/exclude filter, and never a secret
//! (in the audit log or in the process's log lines).

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use serde_json::{json, Value};
use tessera_testkit::process::{without_tessera_env, Process};

use crate::support::*;

fn action_is(action: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["event.action"] == action
}

fn with_action(event: &'static str, action: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["event.action"] == event && e["action"] == action
}

#[test]
fn every_event_kind_is_written_in_elasticsearchs_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.json");
    let srv = TestServer::start_with(Options::default().audit_log(&path));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the audit log is private");

    // authentication_success, with the caller's request id echoed.
    let r = srv
        .get(AUTHENTICATE)
        .admin()
        .header("X-Opaque-Id", "opaque-42")
        .send();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-opaque-id"), Some("opaque-42"));
    let e = wait_event(&path, |e| {
        e["event.action"] == "authentication_success" && e["request.id"] == "opaque-42"
    });
    for (k, v) in [
        ("type", json!("audit")),
        ("event.type", json!("rest")),
        ("user.name", json!(ADMIN)),
        ("user.realm", json!("default_native")),
        ("user.roles", json!(["superuser"])),
        ("authentication.type", json!("REALM")),
        ("origin.type", json!("rest")),
        ("url.path", json!(AUTHENTICATE)),
        ("request.method", json!("GET")),
    ] {
        assert_eq!(e[k], v, "{k} in {e}");
    }
    assert!(e["@timestamp"].as_str().unwrap().ends_with("+0000"), "{e}");
    assert_eq!(e["node.id"].as_str().unwrap().len(), 22, "{e}");
    assert!(e["origin.address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));

    // A generated id when the caller sends none, as X-Request-Id.
    let r = srv.get(AUTHENTICATE).admin().send();
    let generated = r.header("x-request-id").expect("a generated id").to_owned();
    wait_event(&path, |e| e["request.id"] == generated.as_str());

    // Failed authentications.
    srv.assert_basic_refused(ADMIN, "wrong-password");
    let e = wait_event(&path, action_is("authentication_failed"));
    assert_eq!(e["user.name"], ADMIN);
    let e = wait_event(&path, action_is("realm_authentication_failed"));
    assert_eq!(
        (e["user.name"].clone(), e["realm"].clone()),
        (json!(ADMIN), json!("default_native"))
    );
    assert_eq!(srv.get(AUTHENTICATE).send().status, 401);
    wait_event(&path, action_is("anonymous_access_denied"));
    assert_eq!(srv.auth_header("Basic %%%not-base64").status, 401);
    wait_event(&path, action_is("tampered_request"));

    // Security configuration changes, and the privilege checks before them.
    srv.put_user("alice", TEST_PW, &[]);
    let e = wait_event(&path, action_is("put_user"));
    assert_eq!(e["event.type"], "security_config_change");
    assert_eq!(e["put"]["user"]["name"], "alice");
    let e = wait_event(
        &path,
        with_action("access_granted", "cluster:admin/xpack/security/user/put"),
    );
    assert_eq!(e["event.type"], "transport");
    assert_eq!(e["request.name"], "PutUserRequest");
    let r = srv.get("/_security/user").basic("alice", TEST_PW).send();
    assert_eq!(r.status, 403);
    let e = wait_event(&path, action_is("access_denied"));
    assert_eq!(
        (e["user.name"].clone(), e["action"].clone()),
        (
            json!("alice"),
            json!("cluster:admin/xpack/security/user/get")
        )
    );

    let ok = |r: Resp| assert!(r.status < 300, "{}", r.text);
    ok(srv
        .put("/_security/user/alice/_password")
        .admin()
        .json(&json!({ "password": "another-password" }))
        .send());
    ok(srv.put("/_security/user/alice/_disable").admin().send());
    ok(srv.put("/_security/user/alice/_enable").admin().send());
    ok(srv.delete("/_security/user/alice").admin().send());
    srv.put_role("auditors", json!({ "cluster": ["monitor"] }));
    ok(srv.delete("/_security/role/auditors").admin().send());
    ok(srv
        .put("/_security/role_mapping/m1")
        .admin()
        .json(
            &json!({ "roles": ["r"], "enabled": true, "rules": { "field": { "username": "*" } } }),
        )
        .send());
    ok(srv.delete("/_security/role_mapping/m1").admin().send());
    let key = srv
        .post("/_security/api_key")
        .admin()
        .json(&json!({ "name": "k1" }))
        .send();
    ok(srv
        .delete("/_security/api_key")
        .admin()
        .json(&json!({ "ids": [key.body["id"]] }))
        .send());
    let client = srv.full_client();
    ok(srv
        .put(&format!("/oauth2/register/{}", client.id))
        .admin()
        .json(&json!({ "client_name": "renamed", "grant_types": ["client_credentials"], "scope": "read" }))
        .send());
    ok(srv
        .post(&format!("/oauth2/register/{}/_rotate_secret", client.id))
        .admin()
        .send());
    ok(srv
        .delete(&format!("/oauth2/register/{}", client.id))
        .admin()
        .send());
    for (action, verb, kind) in [
        ("change_password", "change", "password"),
        ("change_disable_user", "change", "disable"),
        ("change_enable_user", "change", "enable"),
        ("delete_user", "delete", "user"),
        ("put_role", "put", "role"),
        ("delete_role", "delete", "role"),
        ("put_role_mapping", "put", "role_mapping"),
        ("delete_role_mapping", "delete", "role_mapping"),
        ("create_apikey", "create", "apikey"),
        ("invalidate_apikeys", "invalidate", "apikeys"),
        ("create_oauth_client", "create", "oauth_client"),
        ("change_oauth_client", "change", "oauth_client"),
        (
            "change_oauth_client_secret",
            "change",
            "oauth_client_secret",
        ),
        ("delete_oauth_client", "delete", "oauth_client"),
    ] {
        let e = wait_event(&path, |e| e["event.action"] == action);
        assert_eq!(e["event.type"], "security_config_change", "{e}");
        assert!(e[verb][kind].is_object(), "{e}");
        assert!(e["request.id"].is_string(), "{e}");
    }

    // Token create, refresh and invalidate are access_granted with their
    // action names.
    let t = srv.password_grant(ADMIN, ADMIN_PW);
    srv.assert_refresh_ok((ADMIN, ADMIN_PW), &t.refresh, ADMIN);
    ok(srv.invalidate(json!({ "username": ADMIN })));
    for action in ["create", "refresh", "invalidate"] {
        let name = format!("cluster:admin/xpack/security/token/{action}");
        wait_event(&path, |e| {
            e["event.action"] == "access_granted" && e["action"] == name.as_str()
        });
    }

    // A token whose OAuth scope does not reach the administrative API
    // authenticated, and was denied: access_denied, not a failed login.
    let client = srv.client_for(&["client_credentials"], "read");
    let t = srv.grant(
        &client,
        &[("grant_type", "client_credentials"), ("scope", "read")],
    );
    let r = srv
        .get("/_security/user")
        .bearer(t["access_token"].as_str().unwrap())
        .header("X-Request-Id", "scope-denied")
        .send();
    assert_eq!(r.status, 403, "{}", r.text);
    let e = wait_event(&path, |e| e["request.id"] == "scope-denied");
    assert_eq!(e["event.action"], "access_denied", "{e}");
    assert_eq!(e["event.type"], "rest", "{e}");
    assert!(e["user.name"].is_string(), "{e}");

    // OAuth client authentication is audited too: a wrong secret fails
    // naming the client id it claimed, the right one succeeds.
    let bad = client.with_secret("not-the-secret");
    let r = srv
        .post("/oauth2/token")
        .client(&bad)
        .header("X-Request-Id", "client-bad")
        .form(&[("grant_type", "client_credentials")])
        .send();
    assert_eq!(r.status, 401, "{}", r.text);
    let e = wait_event(&path, |e| e["request.id"] == "client-bad");
    assert_eq!(e["event.action"], "authentication_failed", "{e}");
    assert_eq!(e["user.name"], client.id.as_str(), "{e}");
    let r = srv
        .post("/oauth2/token")
        .client(&client)
        .header("X-Request-Id", "client-good")
        .form(&[("grant_type", "client_credentials")])
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let e = wait_event(&path, |e| {
        e["request.id"] == "client-good" && e["event.action"] == "authentication_success"
    });
    assert_eq!(e["user.name"], client.id.as_str(), "{e}");
    assert_eq!(e["user.realm"], "_oauth2_client", "{e}");
    srv.stop();
}

#[test]
fn include_and_exclude_choose_the_event_actions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.json");
    let srv = TestServer::start_with(
        Options::default()
            .audit_log(&path)
            .audit_include("authentication_success,authentication_failed,access_granted")
            .audit_exclude("access_granted"),
    );
    srv.assert_basic_ok(ADMIN, ADMIN_PW);
    srv.assert_basic_refused(ADMIN, "wrong-password");
    srv.put_user("bob", TEST_PW, &[]);
    srv.stop();
    let actions: std::collections::BTreeSet<String> = audit_lines(&path)
        .iter()
        .map(|e| e["event.action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions.into_iter().collect::<Vec<_>>(),
        ["authentication_failed", "authentication_success"]
    );
}

/// Plants every kind of secret in requests to the binary (debug logging,
/// access log and audit log on) and searches its output and audit log.
#[test]
fn no_secret_reaches_the_audit_log_or_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.json");
    let mut cmd = without_tessera_env(std::process::Command::new(env!("CARGO_BIN_EXE_tessera")));
    cmd.env("TESSERA_LOG", "debug")
        .env("TESSERA_BOOTSTRAP_PASSWORD", ADMIN_PW)
        .env("TESSERA_LOG_FORMAT", "json");
    let audit_flag = audit.display().to_string();
    let mut node = Process::serve(
        "secrets",
        cmd,
        None,
        &["--access-log", "true", "--audit-log", &audit_flag],
    );
    node.expect_ready();
    let api = Api::new(&node.base);
    const USER_PASSWORD: &str = "planted-user-password-1";
    const WRONG_PASSWORD: &str = "planted-wrong-password-2";
    const SAML_CONTENT: &str = "UGxhbnRlZFNhbWxDb250ZW50U2VjcmV0";
    const REDIRECT: &str = "https://planted-redirect.example/cb";

    api.put_user("carol", USER_PASSWORD, &["superuser"]);
    api.assert_basic_refused("carol", WRONG_PASSWORD);
    let t = api.password_grant_by(("carol", USER_PASSWORD), "carol", USER_PASSWORD);
    let (access, refresh) = (
        t["access_token"].as_str().unwrap().to_owned(),
        t["refresh_token"].as_str().unwrap().to_owned(),
    );
    api.assert_bearer_ok(&access, "carol");
    let refreshed = api.refresh(&refresh);
    let key = api
        .post("/_security/api_key")
        .admin()
        .json(&json!({ "name": "k" }))
        .send();
    let (key_secret, encoded) = (
        key.body["api_key"].as_str().unwrap().to_owned(),
        key.body["encoded"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        api.get(AUTHENTICATE)
            .header("Authorization", &format!("ApiKey {encoded}"))
            .send()
            .status,
        200
    );
    let client = api.register(json!({
        "client_name": "c",
        "grant_types": ["client_credentials"],
        "redirect_uris": [REDIRECT],
    }));
    api.post("/_security/saml/authenticate")
        .admin()
        .json(&json!({ "content": SAML_CONTENT, "ids": ["x"] }))
        .send();
    let client_token = api.token(&client, &[("grant_type", "client_credentials")]);

    let mut secrets = vec![
        USER_PASSWORD.to_owned(),
        WRONG_PASSWORD.to_owned(),
        ADMIN_PW.to_owned(),
        access,
        refresh,
        key_secret,
        encoded,
        client.secret.clone(),
        SAML_CONTENT.to_owned(),
        REDIRECT.to_owned(),
    ];
    for body in [&refreshed.body, &client_token.body] {
        for k in ["access_token", "refresh_token"] {
            if let Some(s) = body[k].as_str() {
                secrets.push(s.to_owned());
            }
        }
    }
    // The audit log has what happened...
    wait_event(&audit, action_is("create_oauth_client"));
    node.terminate(Duration::from_secs(10));
    let audit_text = std::fs::read_to_string(&audit).unwrap();
    assert!(audit_text.contains("\"create_apikey\""), "{audit_text}");
    let log = node.log();
    // Every log line is one JSON object, and the access log says who did
    // what.
    let lines: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let access = lines
        .iter()
        .find(|l| {
            l["target"] == "tessera::access"
                && l["fields"]["route"] == AUTHENTICATE
                && l["fields"]["user"] == "carol"
        })
        .unwrap_or_else(|| panic!("no access line for carol's _authenticate: {log}"));
    assert_eq!(access["fields"]["status"], 200, "{access}");
    assert_eq!(access["fields"]["method"], "GET", "{access}");
    assert!(access["fields"]["duration_ms"].is_number(), "{access}");
    assert_eq!(
        access["request_id"].as_str().map(str::len),
        Some(22),
        "{access}"
    );
    for secret in &secrets {
        assert!(
            !audit_text.contains(secret.as_str()),
            "{secret} in the audit log"
        );
        assert!(!log.contains(secret.as_str()), "{secret} in the log");
    }
}
