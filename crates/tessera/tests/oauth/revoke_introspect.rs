//! `POST /oauth2/revoke` (RFC 7009) and `POST /oauth2/introspect`
//! (RFC 7662), and the equivalence of tokens across the two APIs.

use serde_json::{json, Value};

use crate::support::*;

fn password_pair(server: &TestServer, client: &TestClient) -> Value {
    server.grant(
        client,
        &[
            ("grant_type", "password"),
            ("username", ADMIN),
            ("password", ADMIN_PW),
        ],
    )
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

#[test]
fn revoking_an_access_token_ends_its_family() {
    let server = TestServer::start();
    let client = server.full_client();
    let pair = password_pair(&server, &client);
    let r = server.revoke(&client, s(&pair["access_token"]));
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.is_empty(), "{}", r.text);
    assert_token_dead(&server, s(&pair["access_token"]));
    let r = server.token(
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", s(&pair["refresh_token"])),
        ],
    );
    assert_oauth_error_says(&r, 400, "invalid_grant", "token has been invalidated");
    // Revoking again, or revoking what matches nothing, is a 200 (§2.2).
    for token in [
        s(&pair["access_token"]),
        "not-a-token",
        "oAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let r = server.revoke(&client, token);
        assert_eq!(r.status, 200, "{token}: {}", r.text);
        assert!(r.text.is_empty());
    }
}

#[test]
fn revoking_a_refresh_token_ends_its_family_including_successors() {
    let server = TestServer::start();
    let client = server.full_client();
    let first = password_pair(&server, &client);
    let second = server.grant(
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", s(&first["refresh_token"])),
        ],
    );
    // token_type_hint is accepted (and not needed); an unknown hint is ignored.
    let r = revoke_with_hint(
        &server,
        &client,
        s(&second["refresh_token"]),
        "refresh_token",
    );
    assert_eq!(r.status, 200, "{}", r.text);
    for token in [&first["access_token"], &second["access_token"]] {
        assert_token_dead(&server, s(token));
    }
    let fresh = password_pair(&server, &client);
    let r = revoke_with_hint(&server, &client, s(&fresh["access_token"]), "mystery");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_token_dead(&server, s(&fresh["access_token"]));
}

#[test]
fn only_the_client_a_token_was_issued_to_may_revoke_it() {
    let server = TestServer::start();
    let owner = server.full_client();
    let stranger = server.register(json!({}));
    let pair = password_pair(&server, &owner);
    for token in [&pair["access_token"], &pair["refresh_token"]] {
        let r = server.revoke(&stranger, s(token));
        assert_oauth_error_says(
            &r,
            400,
            "unauthorized_client",
            "the token was not issued to this client",
        );
    }
    assert_eq!(
        server.whoami(s(&pair["access_token"])).status,
        200,
        "left alone"
    );
    // A native user is not the client either.
    let r = server
        .post(REVOKE)
        .admin()
        .form(&[("token", s(&pair["access_token"]))])
        .send();
    assert_oauth_error(&r, 400, "unauthorized_client", false);
}

/// `POST /oauth2/revoke` of `token` with a `token_type_hint`.
fn revoke_with_hint(server: &TestServer, client: &TestClient, token: &str, hint: &str) -> Resp {
    server.form_as(
        client,
        REVOKE,
        &[("token", token), ("token_type_hint", hint)],
    )
}

#[test]
fn revocation_requires_client_authentication_and_a_token() {
    let server = TestServer::start();
    let client = server.full_client();
    let r = server.post(REVOKE).form(&[("token", "x")]).send();
    assert_client_auth_required(&r);
    let r = server
        .post(REVOKE)
        .client(&client.with_secret("wrong"))
        .form(&[("token", "x")])
        .send();
    assert_oauth_error_says(&r, 401, "invalid_client", "client authentication failed");
    assert_eq!(r.header_all("www-authenticate"), [BASIC_CHALLENGE]);
    // Neither a known client nor a native user.
    let r = server
        .post(REVOKE)
        .basic("nobody", "nothing")
        .form(&[("token", "x")])
        .send();
    assert_oauth_error_says(&r, 401, "invalid_client", "client authentication failed");
    let r = server.form_as(&client, REVOKE, &[]);
    assert_oauth_error_says(&r, 400, "invalid_request", "missing parameter [token]");
    let r = server
        .post(REVOKE)
        .client(&client)
        .json(&json!({ "token": "x" }))
        .send();
    assert_oauth_error(&r, 400, "invalid_request", false);
}

#[test]
fn a_native_user_revokes_the_tokens_it_created_through_the_elasticsearch_api() {
    let server = TestServer::start();
    server.add_user("jane", &["superuser"]);
    server.add_user("joe", &["superuser"]);
    // jane creates a pair for herself through /_security/oauth2/token.
    let (access, refresh) = server.es_password_grant(("jane", USER_PW), "jane", USER_PW);
    // joe is not its client.
    let r = server
        .post(REVOKE)
        .basic("joe", USER_PW)
        .form(&[("token", &access)])
        .send();
    assert_oauth_error_says(
        &r,
        400,
        "unauthorized_client",
        "the token was not issued to this client",
    );
    // A wrong password is invalid_client, with the Basic challenge.
    let r = server
        .post(REVOKE)
        .basic("jane", "wrong-password")
        .form(&[("token", &access)])
        .send();
    assert_oauth_error(&r, 401, "invalid_client", true);
    // jane is.
    let r = server
        .post(REVOKE)
        .basic("jane", USER_PW)
        .form(&[("token", &refresh)])
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_token_dead(&server, &access);
    // The Elasticsearch API sees the same state.
    let r = server
        .delete(ES_TOKEN)
        .admin()
        .json(&json!({ "token": access }))
        .send();
    assert_eq!(
        r.body,
        json!({"invalidated_tokens": 0, "previously_invalidated_tokens": 1, "error_count": 0}),
        "{}",
        r.text
    );
}

#[test]
fn oauth_tokens_work_on_the_elasticsearch_api() {
    let server = TestServer::start();
    let client = server.full_client();
    let pair = password_pair(&server, &client);
    let me = server.whoami(s(&pair["access_token"]));
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["username"], ADMIN);
    // Invalidated through DELETE /_security/oauth2/token ...
    let r = server
        .delete(ES_TOKEN)
        .admin()
        .json(&json!({ "refresh_token": pair["refresh_token"] }))
        .send();
    assert_eq!(
        r.body,
        json!({"invalidated_tokens": 1, "previously_invalidated_tokens": 0, "error_count": 0}),
        "{}",
        r.text
    );
    if tessera_testkit::server::token_mode() {
        // The named token alone: the access token still works.
        assert_eq!(server.whoami(s(&pair["access_token"])).status, 200);
        assert_eq!(
            server.introspect(&client, s(&pair["access_token"])).body["active"],
            true
        );
        return;
    }
    // ... it is dead everywhere.
    assert_token_dead(&server, s(&pair["access_token"]));
    assert_eq!(
        server.introspect(&client, s(&pair["access_token"])).body,
        json!({ "active": false })
    );
    let r = server.token(
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", s(&pair["refresh_token"])),
        ],
    );
    assert_oauth_error_says(&r, 400, "invalid_grant", "token has been invalidated");
}

#[test]
fn introspection_describes_active_tokens() {
    let server = TestServer::start();
    let client = server.full_client();
    let pair = password_pair(&server, &client);
    let r = server.introspect(&client, s(&pair["access_token"]));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_token_headers(&r);
    assert_eq!(
        r.keys(),
        [
            "active",
            "scope",
            "client_id",
            "username",
            "token_type",
            "exp",
            "iat",
            "sub",
            "iss"
        ]
    );
    let iat = r.body["iat"].as_i64().unwrap();
    assert_about_now(iat);
    assert_eq!(
        r.body,
        json!({
            "active": true,
            "scope": "read tessera:admin",
            "client_id": client.id,
            "username": ADMIN,
            "token_type": "Bearer",
            "exp": iat + 1200,
            "iat": iat,
            "sub": ADMIN,
            "iss": server.base_url(),
        })
    );
    let r = server.introspect(&client, s(&pair["refresh_token"]));
    assert_eq!(r.body["active"], true, "{}", r.text);
    assert_eq!(r.body["token_type"], "refresh_token");
    assert_eq!(r.body["exp"], iat + 24 * 3600);

    // A client-credentials token: the client is its own subject.
    let cc = server.grant(
        &client,
        &[("grant_type", "client_credentials"), ("scope", "read")],
    );
    let r = server.introspect(&client, s(&cc["access_token"]));
    assert_eq!(r.body["scope"], "read");
    assert_eq!(r.body["client_id"], client.id.as_str());
    assert_eq!(r.body["username"], client.id.as_str());
    assert_eq!(r.body["sub"], client.id.as_str());

    // After a refresh the spent refresh token is inactive; its access
    // token lives on until it expires.
    server.grant(
        &client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", s(&pair["refresh_token"])),
        ],
    );
    assert_eq!(
        server.introspect(&client, s(&pair["refresh_token"])).body,
        json!({ "active": false })
    );
    assert_eq!(
        server.introspect(&client, s(&pair["access_token"])).body["active"],
        true
    );
}

#[test]
fn introspection_says_inactive_for_anything_unusable() {
    let server = TestServer::start_with(Options::default().access_token_ttl("1s").manual_clock());
    let client = server.full_client();
    let revoked = password_pair(&server, &client);
    assert_eq!(
        server.revoke(&client, s(&revoked["access_token"])).status,
        200
    );
    let expiring = server.grant(&client, &[("grant_type", "client_credentials")]);
    server.advance(1_000);
    for token in [
        s(&revoked["access_token"]),
        s(&revoked["refresh_token"]),
        s(&expiring["access_token"]),
        "garbage",
        "oAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let r = server.introspect(&client, token);
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body, json!({ "active": false }), "{token}");
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
}

/// POSTs `token` to the introspection endpoint with client authentication
/// in the body.
fn introspect_post(server: &TestServer, client: &TestClient, token: &str) -> Resp {
    server
        .post(INTROSPECT)
        .form(&[
            ("token", token),
            ("client_id", &client.id),
            ("client_secret", &client.secret),
        ])
        .send()
}

fn introspect_as_user(server: &TestServer, user: &str, password: &str, token: &str) -> Resp {
    server
        .post(INTROSPECT)
        .basic(user, password)
        .form(&[("token", token)])
        .send()
}

/// RFC 7662 §4: a client sees only the tokens issued to it, unless it is
/// registered with `tessera:introspect`; a native user needs
/// `manage_token`. Everyone else learns nothing: `{"active":false}`, the
/// same answer as for a token that does not exist.
#[test]
fn introspection_shows_a_token_only_to_its_client_or_an_introspector() {
    let server = TestServer::start();
    server.add_user("jane", &[]);
    server.put_role("token_admin", json!({ "cluster": ["manage_token"] }));
    server.add_user("tokens", &["token_admin"]);
    let client = server.full_client();
    let other = server.register(json!({ "token_endpoint_auth_method": "client_secret_post" }));
    let introspector = server.register(json!({
        "token_endpoint_auth_method": "client_secret_post",
        "scope": "tessera:introspect",
    }));
    let inactive = json!({ "active": false });

    // A token from the Elasticsearch API: its client is the user who
    // created it, so no registered client owns it.
    let (access, refresh) = server.es_password_grant((ADMIN, ADMIN_PW), "jane", USER_PW);
    for token in [&access, &refresh] {
        let r = introspect_post(&server, &other, token);
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body, inactive, "another client sees nothing");
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    let r = introspect_post(&server, &introspector, &access);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["active"], true, "{}", r.text);
    assert!(r.body.get("scope").is_none(), "{}", r.text);
    assert_eq!(
        r.body["client_id"], ADMIN,
        "the creating user is its client"
    );
    assert_eq!(r.body["username"], "jane");

    // A token issued to `client`: its own client sees it, others do not.
    let pair = password_pair(&server, &client);
    let (own_access, own_refresh) = (s(&pair["access_token"]), s(&pair["refresh_token"]));
    for token in [own_access, own_refresh] {
        assert_eq!(server.introspect(&client, token).body["active"], true);
        assert_eq!(introspect_post(&server, &other, token).body, inactive);
        assert_eq!(
            introspect_post(&server, &introspector, token).body["active"],
            true
        );
    }

    // Native users: without manage_token nothing, with it (or as a
    // superuser) everything.
    let r = introspect_as_user(&server, "jane", USER_PW, own_access);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, inactive, "a user without manage_token sees nothing");
    assert_eq!(
        introspect_as_user(&server, "jane", USER_PW, &access).body,
        inactive,
        "not even the tokens issued for her"
    );
    let r = introspect_as_user(&server, "tokens", USER_PW, own_access);
    assert_eq!(r.body["active"], true, "{}", r.text);
    assert_eq!(r.body["client_id"], client.id.as_str());
    let r = introspect_as_user(&server, ADMIN, ADMIN_PW, &access);
    assert_eq!(r.body["active"], true, "{}", r.text);

    // Unauthenticated callers may not introspect at all.
    let r = server
        .post(INTROSPECT)
        .form(&[("token", own_access)])
        .send();
    assert_client_auth_required(&r);
    let r = server.form_as(&client, INTROSPECT, &[]);
    assert_oauth_error_says(&r, 400, "invalid_request", "missing parameter [token]");
}
