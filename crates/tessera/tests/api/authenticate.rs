//! `GET /_security/_authenticate` and every way authentication fails;
//! Elasticsearch's authenticate/10_basic.yml and 11_admin_user.yml.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::header::WWW_AUTHENTICATE;
use serde_json::{json, Value};

use crate::support::*;

fn joe_with_everything(srv: &TestServer) -> Value {
    srv.create_user(
        "joe",
        json!({
            "password": TEST_PW,
            "roles": ["superuser", "extra"],
            "full_name": "Joe Smith",
            "email": "joe@example.com",
            "metadata": { "key1": "val1", "key2": 2 },
        }),
    );
    json!({
        "username": "joe",
        "roles": ["superuser", "extra"],
        "full_name": "Joe Smith",
        "email": "joe@example.com",
        "metadata": { "key1": "val1", "key2": 2 },
        "enabled": true,
        "authentication_realm": { "name": "default_native", "type": "native" },
        "lookup_realm": { "name": "default_native", "type": "native" },
        "authentication_type": "realm",
    })
}

const AUTH_KEYS: [&str; 9] = [
    "username",
    "roles",
    "full_name",
    "email",
    "metadata",
    "enabled",
    "authentication_realm",
    "lookup_realm",
    "authentication_type",
];

#[test]
fn basic_authentication_returns_every_field_in_order() {
    let srv = TestServer::start();
    let expected = joe_with_everything(&srv);
    let r = srv.auth_basic("joe", TEST_PW);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, expected);
    assert_eq!(
        r.keys(),
        AUTH_KEYS,
        "no api_key field, and Elasticsearch's order"
    );
}

#[test]
fn bearer_authentication_returns_the_users_realm_and_type_token() {
    let srv = TestServer::start();
    let mut expected = joe_with_everything(&srv);
    let t = srv.password_grant("joe", TEST_PW);
    let r = srv.auth_bearer(&t.access);
    assert_eq!(r.status, 200, "{}", r.text);
    expected["authentication_type"] = json!("token");
    assert_eq!(r.body, expected);
    assert_eq!(r.keys(), AUTH_KEYS);
}

#[test]
fn schemes_are_case_insensitive() {
    let srv = TestServer::start();
    let t = srv.password_grant(ADMIN, ADMIN_PW);
    let basic = basic_header(ADMIN, ADMIN_PW).replacen("Basic", "basic", 1);
    let r = srv.auth_header(&basic);
    assert_eq!(
        (r.status, &r.body["username"]),
        (200, &json!(ADMIN)),
        "{}",
        r.text
    );
    let r = srv.auth_header(&format!("BEARER {}", t.access));
    assert_eq!(
        (r.status, &r.body["authentication_type"]),
        (200, &json!("token")),
        "{}",
        r.text
    );
}

// ---------------------------------------------------------------- Elasticsearch's YAML tests

#[test]
fn es_authenticate_10_basic() {
    let srv = TestServer::start();
    srv.create_user(
        "authenticate_user",
        json!({ "password": TEST_PW, "roles": ["superuser"], "full_name": "Authenticate User" }),
    );
    let r = srv.auth_basic("authenticate_user", TEST_PW);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], "authenticate_user");
    assert_eq!(r.body["roles"][0], "superuser");
    assert_eq!(r.body["full_name"], "Authenticate User");
    assert_eq!(r.body["authentication_type"], "realm");
    assert!(r.body.get("api_key").is_none(), "{}", r.text);
}

#[test]
fn es_authenticate_11_admin_user_as_admin() {
    let srv = TestServer::start();
    let r = srv.get(AUTHENTICATE).admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], ADMIN);
    assert_eq!(r.body["authentication_type"], "realm");
    assert!(r.body.get("api_key").is_none(), "{}", r.text);
    assert_eq!(r.body["enabled"], true);
}

#[test]
fn es_authenticate_11_admin_user_with_token() {
    let srv = TestServer::start();
    let r = srv.request_client_credentials(ADMIN, ADMIN_PW);
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.str("access_token");
    let admin = srv.get(AUTHENTICATE).admin().send();
    assert_eq!(admin.status, 200, "{}", admin.text);
    let r = srv.auth_bearer(&token);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], admin.body["username"]);
    assert_eq!(
        r.body["authentication_realm"]["name"],
        admin.body["authentication_realm"]["name"]
    );
    assert_eq!(r.body["authentication_type"], "token");
    assert_eq!(r.body["enabled"], true);
    assert!(r.body.get("api_key").is_none(), "{}", r.text);
}

// ---------------------------------------------------------------- 401s

#[test]
fn missing_credentials() {
    let srv = TestServer::start();
    let r = srv.get(AUTHENTICATE).send();
    assert_unauthenticated(
        &r,
        "missing authentication credentials for REST request [/_security/_authenticate]",
    );
    assert_eq!(
        r.header_all(WWW_AUTHENTICATE),
        [
            "Bearer realm=\"security\"",
            "ApiKey",
            "Basic realm=\"security\" charset=\"UTF-8\""
        ]
    );
    // The request target quoted includes the query string.
    let r = srv.get("/_security/_authenticate?pretty").send();
    assert_unauthenticated(
        &r,
        "missing authentication credentials for REST request [/_security/_authenticate?pretty]",
    );
    // Every protected endpoint refuses the same way.
    let r = srv.get("/_security/user").send();
    assert_unauthenticated(
        &r,
        "missing authentication credentials for REST request [/_security/user]",
    );
    let r = srv
        .post(TOKEN)
        .json(&json!({ "grant_type": "client_credentials" }))
        .send();
    assert_unauthenticated(
        &r,
        "missing authentication credentials for REST request [/_security/oauth2/token]",
    );
}

#[test]
fn wrong_password_unknown_user_and_disabled_user() {
    let srv = TestServer::start();
    srv.put_user("x", TEST_PW, &["superuser"]);
    srv.assert_basic_refused("x", "not-the-password");
    srv.assert_basic_refused("nobody", TEST_PW);
    // The right password after a wrong one still works (and vice versa).
    srv.assert_basic_ok("x", TEST_PW);
    srv.assert_basic_refused("x", "not-the-password");
    let r = srv.put("/_security/user/x/_disable").admin().send();
    r.assert_is(200, &json!({}));
    srv.assert_basic_refused("x", TEST_PW);
}

#[test]
fn unknown_and_garbage_bearer_tokens() {
    let srv = TestServer::start();
    let t = srv.password_grant(ADMIN, ADMIN_PW);
    for junk in [
        "boom".to_owned(),
        tampered(&t.access),
        "46ToAxYzNUdPZWdYOFRQcWhjeHR3NWpvTmVB".to_owned(),
        "x".repeat(5000),
    ] {
        let r = srv.auth_bearer(&junk);
        assert_unsuccessful_credentials(&r, "oauth2 token: invalid token");
    }
    // The exact header Elasticsearch's rolling-upgrade test sends.
    let r = srv.auth_header("Bearer boom");
    assert_unsuccessful_credentials(&r, "oauth2 token: invalid token");
    srv.assert_bearer_ok(&t.access, ADMIN);
}

#[test]
fn refresh_token_is_not_an_access_token() {
    let srv = TestServer::start();
    let t = srv.password_grant(ADMIN, ADMIN_PW);
    assert_unsuccessful_credentials(&srv.auth_bearer(&t.refresh), "oauth2 token: invalid token");
    // It still refreshes.
    srv.assert_refresh_ok((ADMIN, ADMIN_PW), &t.refresh, ADMIN);
}

#[test]
fn expired_bearer_token() {
    let srv = TestServer::start_with(Options::default().access_token_ttl("2s").manual_clock());
    let r = srv.request_password_grant((ADMIN, ADMIN_PW), ADMIN, ADMIN_PW);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["expires_in"], 2);
    let t = Tokens::from_body(&r.body);
    srv.assert_bearer_ok(&t.access, ADMIN);
    // Let the two-second lifetime pass.
    srv.advance(2_000);
    assert_token_expired(&srv.auth_bearer(&t.access));
    // An expired access token does not stop its refresh token.
    let r = srv.refresh(&t.refresh);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["expires_in"], 2);
    srv.assert_bearer_ok(&r.str("access_token"), ADMIN);
}

#[test]
fn invalidated_bearer_token() {
    let srv = TestServer::start();
    let t = srv.password_grant(ADMIN, ADMIN_PW);
    let r = srv.invalidate(json!({ "token": t.access }));
    r.assert_is(200, &counts(1, 0));
    let r = srv.auth_bearer(&t.access);
    assert_token_expired(&r);
    assert_eq!(r.header(WWW_AUTHENTICATE.as_str()), Some(EXPIRED_CHALLENGE));
    // Not a list in the body when there is one challenge.
    assert!(
        r.body["error"]["header"]["WWW-Authenticate"].is_string(),
        "{}",
        r.text
    );
}

#[test]
fn malformed_authorization_headers() {
    let srv = TestServer::start();
    let r = srv.auth_header("Basic !!!notbase64");
    assert_unauthenticated(&r, "invalid basic authentication header encoding");
    let nocolon = format!("Basic {}", STANDARD.encode("nocolon"));
    let r = srv.auth_header(&nocolon);
    assert_unauthenticated(&r, "invalid basic authentication header value");
    let not_utf8 = format!("Basic {}", STANDARD.encode([0xff, 0xfe, b':', b'x']));
    let r = srv.auth_header(&not_utf8);
    assert_unauthenticated(&r, "invalid basic authentication header encoding");
    let r = srv.auth_header("Basic");
    assert_unauthenticated(&r, "invalid basic authentication header value");
    for empty_bearer in ["Bearer", "Bearer ", "Bearer    "] {
        let r = srv.auth_header(empty_bearer);
        assert_unsuccessful_credentials(&r, "oauth2 token: invalid token");
    }
    for unknown in [
        "Digest username=\"elastic\"",
        "Negotiate YIIB",
        "",
        "elastic:pw",
    ] {
        let r = srv.auth_header(unknown);
        assert_unauthenticated(
            &r,
            "missing authentication credentials for REST request [/_security/_authenticate]",
        );
    }
    let r = srv
        .get(AUTHENTICATE)
        .header_bytes("authorization", b"Basic \xff\xfe")
        .send();
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.body["error"]["type"], "security_exception");
    assert_eq!(r.header_all(WWW_AUTHENTICATE), DEFAULT_CHALLENGES);
}
