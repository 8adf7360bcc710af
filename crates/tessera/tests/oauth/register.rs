//! `/oauth2/register` (RFC 7591, management after RFC 7592) by a
//! `manage_security` administrator.

use serde_json::{json, Value};

use crate::support::*;

/// What every registration answer begins with, before the client's
/// metadata: what was issued (RFC 7591 §3.2.1).
const ISSUED: [&str; 4] = [
    "client_id",
    "client_secret",
    "client_id_issued_at",
    "client_secret_expires_at",
];

fn client_path(id: &str) -> String {
    format!("{REGISTER}/{id}")
}

#[test]
fn registration_returns_the_secret_once_with_the_metadata() {
    let server = TestServer::start();
    let r = server
        .post(REGISTER)
        .admin()
        .json(&json!({
            "client_name": "billing",
            "grant_types": ["refresh_token", "password"],
            "scope": "read tessera:admin",
            "token_endpoint_auth_method": "client_secret_post",
            // Metadata Tessera does not use is ignored (RFC 7591 §2).
            "redirect_uris": ["https://billing.example.com/cb"],
            "logo_uri": "https://billing.example.com/logo.png",
        }))
        .send();
    assert_eq!(r.status, 201, "{}", r.text);
    assert_token_headers(&r);
    assert_eq!(
        r.keys(),
        [
            &ISSUED[..],
            &[
                "client_name",
                "grant_types",
                "scope",
                "token_endpoint_auth_method"
            ]
        ]
        .concat()
    );
    let id = r.str("client_id");
    let secret = r.str("client_secret");
    assert_eq!(id.len(), 22, "128 random bits, base64url");
    assert!(id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(secret.len(), 43, "256 random bits, base64url");
    assert_about_now(r.body["client_id_issued_at"].as_i64().unwrap());
    assert_eq!(r.body["client_secret_expires_at"], 0);
    assert_eq!(r.body["client_name"], "billing");
    assert_eq!(r.body["grant_types"], json!(["password", "refresh_token"]));
    assert_eq!(r.body["scope"], "read tessera:admin");
    assert_eq!(r.body["token_endpoint_auth_method"], "client_secret_post");

    // Reading it back never shows the secret.
    let got = server.get(&client_path(&id)).admin().send();
    assert_eq!(got.status, 200, "{}", got.text);
    let mut expected = r.body.clone();
    expected.as_object_mut().unwrap().remove("client_secret");
    assert_eq!(got.body, expected);
    assert!(!got.text.contains(&secret));
    let list = server.get(REGISTER).admin().send();
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(list.body, json!({ "clients": [expected] }));
    assert!(!list.text.contains(&secret));
}

#[test]
fn registration_defaults() {
    let server = TestServer::start();
    let r = server.post(REGISTER).admin().json(&json!({})).send();
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        r.keys(),
        [&ISSUED[..], &["grant_types", "token_endpoint_auth_method"]].concat()
    );
    assert_eq!(r.body["grant_types"], json!(["client_credentials"]));
    assert_eq!(r.body["token_endpoint_auth_method"], "client_secret_basic");
    let a = r.str("client_id");
    let b = server.register(json!({})).id;
    assert_ne!(a, b);
}

#[test]
fn invalid_metadata_is_refused() {
    let server = TestServer::start();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({ "grant_types": ["authorization_code"] }),
            "grant type [authorization_code] is not supported; supported: [client_credentials, password, refresh_token]",
        ),
        (
            json!({ "grant_types": ["implicit", "password"] }),
            "grant type [implicit] is not supported; supported: [client_credentials, password, refresh_token]",
        ),
        (
            json!({ "grant_types": [] }),
            "grant_types must name at least one grant type",
        ),
        (
            json!({ "grant_types": "password" }),
            "[grant_types] must be an array of strings",
        ),
        (
            json!({ "grant_types": [1] }),
            "[grant_types] must be an array of strings",
        ),
        (
            json!({ "token_endpoint_auth_method": "none" }),
            "token_endpoint_auth_method [none] is not supported; supported: [client_secret_basic, client_secret_post]",
        ),
        (
            json!({ "token_endpoint_auth_method": "private_key_jwt" }),
            "token_endpoint_auth_method [private_key_jwt] is not supported; supported: [client_secret_basic, client_secret_post]",
        ),
        (
            json!({ "scope": "a\"b" }),
            "scope: scope token [a\\\"b] has a character outside RFC 6749's scope-token set",
        ),
        (json!({ "scope": ["a"] }), "[scope] must be a string"),
        (json!({ "client_name": 5 }), "[client_name] must be a string"),
        (json!({ "client_name": "  " }), "client_name must not be blank"),
        (
            json!({ "client_secret": "mine" }),
            "[client_secret] is generated by the server; rotate it with POST /oauth2/register/{client_id}/_rotate_secret",
        ),
        (
            json!({ "client_id": "mine" }),
            "[client_id] is assigned by the server",
        ),
    ];
    for (body, description) in cases {
        let r = server.post(REGISTER).admin().json(&body).send();
        assert_oauth_error_says(&r, 400, "invalid_client_metadata", description);
    }
    // Bodies that are not JSON objects are invalid requests.
    let not_objects = [
        (
            FORM,
            "client_name=x",
            Some("Content-Type [application/x-www-form-urlencoded] is not supported; send application/json"),
        ),
        ("application/json", "{nope", None),
        (
            "application/json",
            "[]",
            Some("the request body must be a JSON object"),
        ),
    ];
    for (content_type, body, description) in not_objects {
        let r = server
            .post(REGISTER)
            .admin()
            .body(content_type, body)
            .send();
        match description {
            Some(description) => assert_oauth_error_says(&r, 400, "invalid_request", description),
            None => assert_oauth_error(&r, 400, "invalid_request", false),
        }
    }
    assert_eq!(
        server.get(REGISTER).admin().send().body,
        json!({ "clients": [] }),
        "nothing was registered"
    );
}

#[test]
fn only_manage_security_administrators_manage_clients() {
    let server = TestServer::start();
    server.put_role("token_admin", json!({ "cluster": ["manage_token"] }));
    server.put_role("sec_admin", json!({ "cluster": ["manage_security"] }));
    server.add_user("tokens", &["token_admin"]);
    server.add_user("security", &["sec_admin"]);
    let existing = server.register(json!({}));

    // No credentials: the Elasticsearch 401.
    let r = server.post(REGISTER).json(&json!({})).send();
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.body["error"]["type"], "security_exception");
    assert_eq!(
        r.body["error"]["reason"],
        "missing authentication credentials for REST request [/oauth2/register]"
    );
    // The wrong privilege: the Elasticsearch 403, on every route.
    let forbidden = "action [cluster:admin/tessera/oauth2/client] is unauthorized for user [tokens] with effective roles [token_admin], this action is granted by the cluster privileges [manage_security,all]";
    for (method, path) in [
        (reqwest::Method::POST, REGISTER.to_string()),
        (reqwest::Method::GET, REGISTER.to_string()),
        (reqwest::Method::GET, client_path(&existing.id)),
        (reqwest::Method::PUT, client_path(&existing.id)),
        (reqwest::Method::DELETE, client_path(&existing.id)),
        (
            reqwest::Method::POST,
            format!("{}/_rotate_secret", client_path(&existing.id)),
        ),
    ] {
        let r = server
            .req(method.clone(), &path)
            .basic("tokens", USER_PW)
            .json(&json!({}))
            .send();
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text);
        assert_eq!(r.body["error"]["reason"], forbidden, "{method} {path}");
    }
    // manage_security suffices, with Basic or with an (unrestricted) token.
    let r = server
        .post(REGISTER)
        .basic("security", USER_PW)
        .json(&json!({}))
        .send();
    assert_eq!(r.status, 201, "{}", r.text);
    let (token, _) = server.es_password_grant((ADMIN, ADMIN_PW), "security", USER_PW);
    let r = server.post(REGISTER).bearer(&token).json(&json!({})).send();
    assert_eq!(r.status, 201, "{}", r.text);
    // The existing client is untouched.
    assert_eq!(
        server
            .token(&existing, &[("grant_type", "client_credentials")])
            .status,
        200
    );
}

#[test]
fn update_replaces_the_metadata_and_keeps_the_secret() {
    let server = TestServer::start();
    let client = server.register(json!({
        "client_name": "first",
        "grant_types": ["client_credentials", "password"],
        "scope": "read",
    }));
    let path = client_path(&client.id);
    let r = server
        .put(&path)
        .admin()
        .json(&json!({ "client_id": client.id, "client_name": "second", "scope": "write" }))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body.get("client_secret").is_none());
    assert_eq!(r.body["client_name"], "second");
    assert_eq!(r.body["scope"], "write");
    assert_eq!(
        r.body["grant_types"],
        json!(["client_credentials"]),
        "omitted fields take their defaults (RFC 7592 §2.2)"
    );
    assert_eq!(server.get(&path).admin().send().body, r.body);

    // The secret still works, under the new rules.
    let r = server.token(&client, &[("grant_type", "client_credentials")]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["scope"], "write");
    let r = server.token(
        &client,
        &[
            ("grant_type", "password"),
            ("username", ADMIN),
            ("password", ADMIN_PW),
        ],
    );
    assert_oauth_error(&r, 400, "unauthorized_client", false);

    let r = server
        .put(&path)
        .admin()
        .json(&json!({ "client_id": "another" }))
        .send();
    assert_oauth_error_says(
        &r,
        400,
        "invalid_client_metadata",
        "[client_id] does not match the client being updated",
    );
    let r = server
        .put(&path)
        .admin()
        .json(&json!({ "grant_types": ["device_code"] }))
        .send();
    assert_oauth_error(&r, 400, "invalid_client_metadata", false);
    let r = server
        .put(&client_path("missing"))
        .admin()
        .json(&json!({}))
        .send();
    assert_oauth_error_says(&r, 404, "not_found", "OAuth client [missing] not found");
    let r = server.get(&client_path("missing")).admin().send();
    assert_oauth_error_says(&r, 404, "not_found", "OAuth client [missing] not found");
}

#[test]
fn rotating_the_secret_retires_the_old_one_and_keeps_tokens() {
    let server = TestServer::start();
    let client = server.register(json!({ "client_name": "rotating" }));
    let before = server.grant(&client, &[("grant_type", "client_credentials")]);
    let r = server
        .post(&format!("{}/_rotate_secret", client_path(&client.id)))
        .admin()
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_token_headers(&r);
    assert_eq!(r.body["client_id"], client.id.as_str());
    assert_eq!(r.body["client_name"], "rotating");
    let rotated = TestClient::from_body(&r.body);
    assert_ne!(rotated.secret, client.secret);
    assert_eq!(rotated.secret.len(), 43);

    let r = server.token(&client, &[("grant_type", "client_credentials")]);
    assert_oauth_error_says(&r, 401, "invalid_client", "client authentication failed");
    assert_eq!(
        server
            .token(&rotated, &[("grant_type", "client_credentials")])
            .status,
        200
    );
    assert_eq!(
        server
            .whoami(before["access_token"].as_str().unwrap())
            .status,
        200,
        "tokens issued before the rotation stay valid"
    );
    let r = server
        .post(&format!("{}/_rotate_secret", client_path("missing")))
        .admin()
        .send();
    assert_oauth_error_says(&r, 404, "not_found", "OAuth client [missing] not found");
}

#[test]
fn deleting_a_client_invalidates_its_tokens() {
    let server = TestServer::start();
    let client = server.register(json!({
        "grant_types": ["client_credentials", "password", "refresh_token"],
    }));
    let other = server.register(json!({}));
    let cc = server.grant(&client, &[("grant_type", "client_credentials")]);
    let pw = server.grant(
        &client,
        &[
            ("grant_type", "password"),
            ("username", ADMIN),
            ("password", ADMIN_PW),
        ],
    );
    let others = server.grant(&other, &[("grant_type", "client_credentials")]);

    let r = server.delete(&client_path(&client.id)).admin().send();
    assert_eq!(r.status, 204, "{}", r.text);
    assert!(r.text.is_empty());
    for token in [&cc["access_token"], &pw["access_token"]] {
        assert_token_dead(&server, token.as_str().unwrap());
    }
    let r = server.introspect(&other, pw["refresh_token"].as_str().unwrap());
    assert_eq!(r.body, json!({ "active": false }));
    assert_eq!(
        server
            .whoami(others["access_token"].as_str().unwrap())
            .status,
        200,
        "other clients' tokens stay"
    );
    let r = server.token(&client, &[("grant_type", "client_credentials")]);
    assert_oauth_error_says(&r, 401, "invalid_client", "client authentication failed");
    let r = server.delete(&client_path(&client.id)).admin().send();
    assert_oauth_error_says(
        &r,
        404,
        "not_found",
        &format!("OAuth client [{}] not found", client.id),
    );
    let r = server.get(&client_path(&client.id)).admin().send();
    assert_eq!(r.status, 404);
}

/// Grants racing the deletion of their client: every token handed out is
/// dead once the deletion has returned (a pair stored after the deletion's
/// invalidation is never stored at all), and every refusal after the
/// deletion is a client-authentication failure, never a 500.
#[test]
fn grants_racing_a_client_deletion_leave_no_live_token() {
    let server = TestServer::start();
    for trial in 0..12 {
        let client = server.register(json!({ "grant_types": ["client_credentials"] }));
        let deleted = std::sync::atomic::AtomicBool::new(false);
        let handed_out: Vec<String> = std::thread::scope(|s| {
            let grants: Vec<_> = (0..3)
                .map(|_| {
                    s.spawn(|| {
                        let mut tokens = Vec::new();
                        loop {
                            let was_deleted = deleted.load(std::sync::atomic::Ordering::SeqCst);
                            let r = server.token(&client, &[("grant_type", "client_credentials")]);
                            if r.status == 200 {
                                tokens.push(r.body["access_token"].as_str().unwrap().to_owned());
                                assert!(!was_deleted, "trial {trial}: a grant after the deletion");
                                continue;
                            }
                            assert_eq!(r.status, 401, "trial {trial}: {}", r.text);
                            assert_eq!(r.body["error"], "invalid_client", "{}", r.text);
                            return tokens;
                        }
                    })
                })
                .collect();
            let r = server.delete(&client_path(&client.id)).admin().send();
            assert_eq!(r.status, 204, "{}", r.text);
            deleted.store(true, std::sync::atomic::Ordering::SeqCst);
            grants.into_iter().flat_map(|g| g.join().unwrap()).collect()
        });
        for token in &handed_out {
            assert_token_dead(&server, token);
        }
    }
}
