//! Hostile and malformed input: every answer is a 4xx in Elasticsearch's
//! error envelope with a reason that says what is wrong, never a 500, and
//! nothing stored changes.

use serde_json::{json, Value};

use crate::support::*;

/// A 400 parse error (`x_content_parse_exception`) whose reason mentions
/// `needle`.
#[track_caller]
fn assert_parse_error(r: &Resp, needle: &str) {
    let kind = "x_content_parse_exception";
    assert_es_error_matching(r, 400, kind, |m| m.contains(needle), needle);
}

/// What a client can observe of the stored state.
fn snapshot(srv: &TestServer) -> (Value, Value) {
    let users = srv.get("/_security/user").admin().send();
    assert_eq!(users.status, 200, "{}", users.text);
    let roles = srv.get("/_security/role").admin().send();
    assert_eq!(roles.status, 200, "{}", roles.text);
    (users.body, roles.body)
}

#[test]
fn malformed_and_non_object_json() {
    let srv = TestServer::start();
    for body in [
        &b"{\"grant_type\": \"password\","[..],
        b"{grant_type: password}",
        b"{\"a\":1}}",
        b"nul",
    ] {
        let r = srv.raw_token_request(body.to_vec());
        assert_parse_error(&r, "request body is not valid JSON");
    }
    for body in [
        "[]",
        "[{\"grant_type\":\"client_credentials\"}]",
        "\"client_credentials\"",
        "5",
        "null",
        "true",
    ] {
        for (method, path) in [("POST", TOKEN), ("PUT", "/_security/user/joe")] {
            let r = srv
                .req(method.parse().unwrap(), path)
                .admin()
                .body("application/json", body)
                .send();
            let reason = "request body must be a JSON object";
            assert_es_error(&r, 400, "x_content_parse_exception", reason);
        }
    }
}

#[test]
fn unknown_fields_are_rejected_by_name() {
    let srv = TestServer::start();
    let r = srv.token_request(json!({ "grant_type": "client_credentials", "grant_tipe": "x" }));
    assert_parse_error(&r, "grant_tipe");
    let r = srv.request_put_user(
        "joe",
        json!({ "password": TEST_PW, "roles": [], "superpowers": true }),
    );
    assert_parse_error(&r, "superpowers");
    let r = srv
        .delete(TOKEN)
        .admin()
        .json(&json!({ "username": "joe", "everything": true }))
        .send();
    assert_parse_error(&r, "everything");
    let r = srv
        .put("/_security/user/elastic/_password")
        .admin()
        .json(&json!({ "password": "whatever-pw", "old_password": "x" }))
        .send();
    assert_parse_error(&r, "old_password");
    srv.assert_basic_ok(ADMIN, ADMIN_PW);
    srv.assert_missing("/_security/user/joe");
}

#[test]
fn missing_required_bodies() {
    let srv = TestServer::start();
    for (method, path) in [
        ("POST", TOKEN),
        ("DELETE", TOKEN),
        ("PUT", "/_security/user/joe"),
        ("PUT", "/_security/user/_password"),
        ("PUT", "/_security/role/ops"),
    ] {
        let r = srv.req(method.parse().unwrap(), path).admin().send();
        assert_es_error(&r, 400, "parse_exception", "request body is required");
        let r = srv
            .req(method.parse().unwrap(), path)
            .admin()
            .body("application/json", "  \n")
            .send();
        assert_es_error(&r, 400, "parse_exception", "request body is required");
    }
    // Enable and disable take no body.
    srv.put_user("joe", TEST_PW, &[]);
    let r = srv.post("/_security/user/joe/_disable").admin().send();
    r.assert_is(200, &json!({}));
}

#[test]
fn wrong_types() {
    let srv = TestServer::start();
    let answers = [
        srv.request_put_user("joe", json!({ "password": TEST_PW, "roles": "superuser" })),
        srv.token_request(json!({ "grant_type": 5 })),
        srv.token_request(
            json!({ "grant_type": "password", "username": ["elastic"], "password": ADMIN_PW }),
        ),
        srv.request_put_user(
            "joe",
            json!({ "password": TEST_PW, "roles": [], "enabled": "yes" }),
        ),
        srv.request_put_user(
            "joe",
            json!({ "password": TEST_PW, "roles": [], "metadata": [1, 2] }),
        ),
        srv.delete(TOKEN)
            .admin()
            .json(&json!({ "token": 12345 }))
            .send(),
    ];
    for r in &answers {
        assert_parse_error(r, "failed to parse request body");
    }
    let r = srv.get("/_security/user").admin().send();
    assert_eq!(keys(&r.body), [ADMIN], "{}", r.text);
}

#[test]
fn non_utf8_and_deeply_nested_bodies() {
    let srv = TestServer::start();
    let r = srv.raw_token_request(b"{\"grant_type\": \"\xff\xfe\"}".to_vec());
    assert_parse_error(&r, "request body is not valid UTF-8");
    let deep = format!(
        "{{\"metadata\": {}1{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let r = srv
        .put("/_security/user/joe")
        .admin()
        .body("application/json", deep)
        .send();
    assert_parse_error(&r, "request body is not valid JSON");
    srv.assert_missing("/_security/user/joe");
}

#[test]
fn body_over_the_configured_limit_is_413() {
    let srv = TestServer::start_with(Options::default().max_body_bytes("2048"));
    let padding = "x".repeat(4096);
    let r = srv.request_put_user(
        "joe",
        json!({ "password": TEST_PW, "roles": [], "full_name": padding }),
    );
    assert_es_error(
        &r,
        413,
        "content_too_long_exception",
        "request body is larger than the limit of [2048] bytes",
    );
    // Just under the limit is fine.
    srv.create_user(
        "joe",
        json!({ "password": TEST_PW, "roles": [], "full_name": "x".repeat(1900) }),
    );
    let r = srv.get("/_security/user/joe").admin().send();
    assert_eq!(r.body["joe"]["full_name"].as_str().unwrap().len(), 1900);
}

#[test]
fn body_over_the_default_limit_is_413() {
    let srv = TestServer::start();
    let body = format!("{{\"grant_type\": \"{}\"}}", "x".repeat(1024 * 1024));
    let r = srv.raw_token_request(body);
    assert_es_error(
        &r,
        413,
        "content_too_long_exception",
        "request body is larger than the limit of [1048576] bytes",
    );
    srv.assert_basic_ok(ADMIN, ADMIN_PW);
}

#[test]
fn unsupported_content_type_is_406() {
    let srv = TestServer::start();
    let r = srv
        .post(TOKEN)
        .admin()
        .body("text/plain", r#"{"grant_type":"client_credentials"}"#)
        .send();
    assert_es_error(
        &r,
        406,
        "media_type_header_exception",
        "Content-Type header [text/plain] is not supported; send application/json",
    );
    let r = srv
        .put("/_security/user/joe")
        .admin()
        .body(
            "application/x-www-form-urlencoded",
            "password=x-pack-test-password&roles=superuser",
        )
        .send();
    assert_error_type(&r, 406, "media_type_header_exception");
    // application/json with parameters is fine.
    let r = srv
        .post(TOKEN)
        .admin()
        .body(
            "application/json; charset=UTF-8",
            r#"{"grant_type":"client_credentials"}"#,
        )
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    srv.assert_missing("/_security/user/joe");
}

#[test]
fn usernames_outside_the_rules_are_rejected() {
    let srv = TestServer::start();
    let long = "a".repeat(1025);
    for bad in ["%20joe", "j%C3%B6", "tab%09in", long.as_str()] {
        let r = srv
            .put(&format!("/_security/user/{bad}"))
            .admin()
            .json(&json!({ "password": TEST_PW, "roles": [] }))
            .send();
        assert_es_error_matching(
            &r,
            400,
            "action_request_validation_exception",
            |m| m.contains("Invalid username"),
            "Invalid username…",
        );
    }
    let r = srv.get("/_security/user").admin().send();
    assert_eq!(keys(&r.body), [ADMIN], "{}", r.text);
}

/// A path segment that is not UTF-8 once percent-decoded must get a 400 in
/// the error envelope like every other bad input.
#[test]
fn non_utf8_path_segments_get_the_error_envelope() {
    let srv = TestServer::start();
    for (method, path) in [
        ("GET", "/_security/user/%FF%FE"),
        ("PUT", "/_security/user/%FF/_enable"),
        ("DELETE", "/_security/role/%C3%28"),
    ] {
        let r = srv.req(method.parse().unwrap(), path).admin().send();
        assert_eq!(r.status, 400, "{}", r.text);
        assert_eq!(keys(&r.body), ["error", "status"], "{}", r.text);
        assert_eq!(r.body["status"], 400, "{}", r.text);
        assert!(
            r.body["error"]["reason"]
                .as_str()
                .is_some_and(|m| m.contains("UTF-8")),
            "{}",
            r.text
        );
    }
}

#[test]
fn duplicate_keys_are_rejected() {
    let srv = TestServer::start();
    let r = srv.raw_token_request(r#"{"grant_type":"client_credentials","grant_type":"password","username":"elastic","password":"elastic-bootstrap-pw"}"#);
    assert_parse_error(&r, "duplicate field `grant_type`");
}

/// Elasticsearch authenticates a REST request before its handler parses
/// the body: without credentials, a malformed body still gets the 401.
#[test]
fn unauthenticated_requests_get_401_whatever_the_body() {
    let srv = TestServer::start();
    for (method, path, body) in [
        ("POST", TOKEN, "{bad"),
        ("POST", TOKEN, ""),
        ("DELETE", TOKEN, "[]"),
        ("PUT", "/_security/user/joe", r#"{"roles": "superuser"}"#),
        ("PUT", "/_security/role/ops", r#"{"unknown": 1}"#),
    ] {
        let r = srv
            .req(method.parse().unwrap(), path)
            .body("application/json", body)
            .send();
        assert_unauthenticated(
            &r,
            &format!("missing authentication credentials for REST request [{path}]"),
        );
    }
}

#[test]
fn a_body_that_never_arrives_times_out_with_408() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    let srv = TestServer::start_with(Options::default().request_timeout("1s"));
    let mut stream = std::net::TcpStream::connect(srv.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    write!(
        stream,
        "PUT /_security/user/joe HTTP/1.1\r\nHost: tessera\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{{\"password\"",
        basic_header(ADMIN, ADMIN_PW)
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let elapsed = started.elapsed();
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        elapsed >= Duration::from_millis(900),
        "answered after {elapsed:?}"
    );
    let lower = response.to_ascii_lowercase();
    assert!(
        lower.contains("x-elastic-product: elasticsearch"),
        "{response}"
    );
    assert!(
        lower.contains("content-type: application/json"),
        "{response}"
    );
    let body: Value = serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["status"], 408);
    assert_eq!(body["error"]["type"], "timeout_exception");
    assert_eq!(
        body["error"]["reason"],
        "the request took longer than the configured request timeout"
    );
    // The server is fine, and nothing was stored.
    srv.assert_missing("/_security/user/joe");
}

#[test]
fn nothing_stored_changes_after_a_barrage_of_hostile_requests() {
    let srv = TestServer::start();
    srv.put_user("joe", TEST_PW, &["superuser"]);
    srv.put_role("ops", json!({ "cluster": ["manage_token"] }));
    let t = srv.password_grant("joe", TEST_PW);
    let before = snapshot(&srv);
    let db = open_db_read_only(&srv.db_path());
    let tokens_before = count_tokens(&db);

    let bodies: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        b"[]".to_vec(),
        b"\xff\xff".to_vec(),
        br#"{"roles": "superuser", "password": "x-pack-test-password"}"#.to_vec(),
        br#"{"grant_type": 5}"#.to_vec(),
        br#"{"token": null, "refresh_token": null}"#.to_vec(),
        br#"{"cluster": ["all"], "unknown": 1}"#.to_vec(),
        br#"{"password": "short", "roles": []}"#.to_vec(),
        br#"{"grant_type": "refresh_token", "refresh_token": "junk"}"#.to_vec(),
        br#"{"password_hash": "plain", "roles": []}"#.to_vec(),
        vec![b'{'; 3000],
    ];
    let targets = [
        ("POST", TOKEN),
        ("DELETE", TOKEN),
        ("PUT", "/_security/user/joe"),
        ("PUT", "/_security/user/mallory"),
        ("PUT", "/_security/user/joe/_password"),
        ("PUT", "/_security/role/ops"),
        ("PUT", "/_security/role/evil"),
    ];
    for body in &bodies {
        for (method, path) in targets {
            for auth in [true, false] {
                let mut req = srv.req(method.parse().unwrap(), path);
                if auth {
                    req = req.admin();
                } else {
                    req = req.header("authorization", "Bearer junk");
                }
                let r = req.body("application/json", body.clone()).send();
                assert!(
                    (400..500).contains(&r.status),
                    "{method} {path} with {:?}: {} {}",
                    String::from_utf8_lossy(body),
                    r.status,
                    r.text
                );
                assert!(r.body.get("error").is_some(), "{}", r.text);
            }
        }
    }

    assert_eq!(snapshot(&srv), before);
    assert_eq!(count_tokens(&db), tokens_before);
    srv.assert_basic_ok("joe", TEST_PW);
    srv.assert_bearer_ok(&t.access, "joe");
    srv.assert_refresh_ok((ADMIN, ADMIN_PW), &t.refresh, "joe");
}
