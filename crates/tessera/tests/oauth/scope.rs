//! Scopes: what a client may ask for (RFC 6749 §3.3), what refresh may
//! ask for (§6), and RFC 6750 `insufficient_scope` on Tessera's own
//! administrative endpoints.

use serde_json::{json, Value};

use crate::support::*;

fn password(server: &TestServer, client: &TestClient, scope: Option<&str>) -> Value {
    let mut params = vec![
        ("grant_type", "password"),
        ("username", ADMIN),
        ("password", ADMIN_PW),
    ];
    if let Some(s) = scope {
        params.push(("scope", s));
    }
    server.grant(client, &params)
}

#[test]
fn a_client_may_ask_for_any_subset_of_its_registered_scopes() {
    let server = TestServer::start();
    let client = server.register(json!({ "scope": "read write tessera:admin" }));
    let cc = |scope: Option<&str>| {
        let mut params = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            params.push(("scope", s));
        }
        server.token(&client, &params)
    };
    // None named: everything registered, and the response says so.
    let r = cc(None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["scope"], "read write tessera:admin");
    let r = cc(Some("write read"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["scope"], "write read");
    let r = cc(Some("read read"));
    assert_eq!(r.body["scope"], "read", "duplicates collapse");

    let r = cc(Some("read delete"));
    assert_oauth_error_says(
        &r,
        400,
        "invalid_scope",
        "scope [delete] is not registered for this client",
    );
    let r = cc(Some("read  write"));
    assert_oauth_error_says(
        &r,
        400,
        "invalid_scope",
        "the requested scope is malformed: scope tokens are separated by single spaces",
    );
    let r = cc(Some("caf\\e"));
    assert_oauth_error(&r, 400, "invalid_scope", false);

    // A client without scopes may ask for none.
    let bare = server.register(json!({}));
    let r = server.token(
        &bare,
        &[("grant_type", "client_credentials"), ("scope", "read")],
    );
    assert_oauth_error(&r, 400, "invalid_scope", false);
}

#[test]
fn restricted_tokens_need_the_admin_scope_on_the_administrative_api() {
    let server = TestServer::start();
    let client = server.client_for(&["client_credentials", "password"], "read tessera:admin");
    let admin_token = password(&server, &client, None)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let read_token = password(&server, &client, Some("read"))["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (es_token, _) = server.es_password_grant((ADMIN, ADMIN_PW), ADMIN, ADMIN_PW);

    // With tessera:admin, or unrestricted (Elasticsearch API): allowed.
    for token in [&admin_token, &es_token] {
        let r = server.get("/_security/user").bearer(token).send();
        assert_eq!(r.status, 200, "{}", r.text);
    }
    // Restricted without it: 403 insufficient_scope, in the ES envelope.
    let r = server.get("/_security/user").bearer(&read_token).send();
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.header_all("www-authenticate"), [INSUFFICIENT_SCOPE]);
    assert_eq!(
        r.body,
        json!({
            "error": {
                "root_cause": [{
                    "type": "security_exception",
                    "reason": "the access token's scope does not include [tessera:admin], which this endpoint requires",
                    "header": { "WWW-Authenticate": INSUFFICIENT_SCOPE },
                }],
                "type": "security_exception",
                "reason": "the access token's scope does not include [tessera:admin], which this endpoint requires",
                "header": { "WWW-Authenticate": INSUFFICIENT_SCOPE },
            },
            "status": 403,
        })
    );
    // ... on every administrative endpoint, the registration one included,
    for (method, path) in [
        (reqwest::Method::PUT, "/_security/user/x"),
        (reqwest::Method::POST, ES_TOKEN),
        (reqwest::Method::DELETE, ES_TOKEN),
        (reqwest::Method::GET, "/_security/role"),
        (reqwest::Method::GET, "/_security/api_key"),
        (reqwest::Method::POST, REGISTER),
        (reqwest::Method::GET, REGISTER),
    ] {
        let r = server
            .req(method.clone(), path)
            .bearer(&read_token)
            .json(&json!({}))
            .send();
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text);
        assert_eq!(r.header_all("www-authenticate"), [INSUFFICIENT_SCOPE]);
    }
    // ... but not on GET /_security/_authenticate.
    let r = server.whoami(&read_token);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], ADMIN);

    // A client-credentials token has no roles anyway; its scope is checked first.
    let cc = server.grant(
        &client,
        &[("grant_type", "client_credentials"), ("scope", "read")],
    );
    let r = server
        .get("/_security/user")
        .bearer(cc["access_token"].as_str().unwrap())
        .send();
    assert_eq!(r.status, 403);
    assert_eq!(r.header_all("www-authenticate"), [INSUFFICIENT_SCOPE]);
    // With the admin scope the privilege check decides: no roles, no users.
    let cc = server.grant(&client, &[("grant_type", "client_credentials")]);
    let r = server
        .get("/_security/user")
        .bearer(cc["access_token"].as_str().unwrap())
        .send();
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.header_all("www-authenticate").is_empty(), "{r:?}");
    assert!(
        r.body["error"]["reason"].as_str().unwrap().starts_with(
            "action [cluster:admin/xpack/security/user/get] is unauthorized for user ["
        ),
        "{}",
        r.text
    );
}

#[test]
fn expired_oauth_tokens_get_invalid_token() {
    let server = TestServer::start_with(Options::default().access_token_ttl("1s").manual_clock());
    let client = server.register(json!({}));
    let body = server.grant(&client, &[("grant_type", "client_credentials")]);
    assert_eq!(body["expires_in"], 1);
    server.advance(1_000);
    let r = server.whoami(body["access_token"].as_str().unwrap());
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(
        r.header_all("www-authenticate"),
        ["Bearer realm=\"security\", error=\"invalid_token\", error_description=\"The access token expired\""]
    );
}

#[test]
fn refresh_keeps_the_granted_scope_and_refuses_more() {
    let server = TestServer::start();
    let client = server.client_for(&["password", "refresh_token"], "read write tessera:admin");
    let first = password(&server, &client, Some("read write"));
    assert_eq!(first["scope"], "read write");
    let rt = first["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |rt: &str, scope: Option<&str>| {
        let mut params = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
        if let Some(s) = scope {
            params.push(("scope", s));
        }
        server.token(&client, &params)
    };
    // More than granted (even if registered): invalid_scope, nothing rotated.
    let r = refresh(&rt, Some("read tessera:admin"));
    assert_oauth_error_says(
        &r,
        400,
        "invalid_scope",
        "scope [tessera:admin] was not granted to this refresh token",
    );
    // Narrower: accepted; the successor keeps the family's scope and says so.
    let r = refresh(&rt, Some("read"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["scope"], "read write");
    let next = r.str("refresh_token");
    let r = refresh(&next, None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["scope"], "read write");
    // The successor is still restricted: no admin API.
    let r = server
        .get("/_security/user")
        .bearer(&r.str("access_token"))
        .send();
    assert_eq!(r.status, 403);
}

/// A client's registration narrowed after a grant binds its refreshes: a
/// family holding a scope token the client is no longer registered for is
/// refused (`invalid_scope`, nothing rotated), and a new grant gets the
/// registration's scope.
#[test]
fn a_narrowed_registration_binds_the_refreshes_of_earlier_grants() {
    let server = TestServer::start();
    let client = server.client_for(&["password", "refresh_token"], "read tessera:admin");
    let first = password(&server, &client, None);
    assert_eq!(first["scope"], "read tessera:admin");
    let rt = first["refresh_token"].as_str().unwrap().to_owned();
    let register = |scope: &str| {
        let body = json!({ "client_id": client.id, "scope": scope,
                           "grant_types": ["password", "refresh_token"] });
        let path = format!("/oauth2/register/{}", client.id);
        let r = server.put(&path).admin().json(&body).send();
        assert_eq!(r.status, 200, "{}", r.text);
    };
    register("read");
    let r = server.refresh_grant(&client, &rt);
    assert_oauth_error_says(
        &r,
        400,
        "invalid_scope",
        "scope [tessera:admin] is no longer registered for this client",
    );
    // Nothing rotated: once registered again, the same refresh token works.
    let again = password(&server, &client, None);
    assert_eq!(again["scope"], "read");
    register("read tessera:admin");
    let r = server.refresh_grant(&client, &rt);
    assert_eq!(r.status, 200, "{}", r.text);
}
