//! `POST` and `DELETE /_security/oauth2/token`: grants, refresh, invalidation,
//! and Elasticsearch's token/10_basic.yml and token/11_invalidation.yml.

use serde_json::{json, Value};

use crate::support::*;

/// A server with Elasticsearch's token tests' user: superuser, "Token
/// User".
fn start_with_token_user() -> TestServer {
    let srv = TestServer::start();
    let r = srv.request_put_user(
        "token_user",
        json!({ "password": TEST_PW, "roles": ["superuser"], "full_name": "Token User" }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({ "created": true }));
    srv
}

fn token_user_auth(kind: &str) -> Value {
    native_authentication(
        "token_user",
        &["superuser"],
        json!("Token User"),
        Value::Null,
        kind,
    )
}

// ---------------------------------------------------------------- grants

/// Three generations of one family: a password grant of `user`, refreshed
/// twice by the admin.
fn generations(srv: &TestServer, (user, password): (&str, &str)) -> [Tokens; 3] {
    let g0 = srv.password_grant(user, password);
    let g1 = srv.assert_refresh_ok((ADMIN, ADMIN_PW), &g0.refresh, user);
    let g2 = srv.assert_refresh_ok((ADMIN, ADMIN_PW), &g1.refresh, user);
    [g0, g1, g2]
}

/// Asserts that the generations of a family are revoked: no access token
/// works and the newest refresh token is refused.
fn assert_family_revoked(srv: &TestServer, generations: [&Tokens; 3]) {
    for g in generations {
        assert_token_expired(&srv.auth_bearer(&g.access));
    }
    assert_oauth_error(
        &srv.refresh(&generations[2].refresh),
        "invalid_grant",
        "token has been invalidated",
    );
}

#[test]
fn password_grant_returns_pair_and_realm_authentication() {
    let srv = start_with_token_user();
    let r = srv.request_password_grant((ADMIN, ADMIN_PW), "token_user", TEST_PW);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.keys(), PAIR_KEYS, "{}", r.text);
    assert_eq!(r.body["type"], "Bearer");
    assert_eq!(r.body["expires_in"], 1200);
    let (access, refresh) = (r.str("access_token"), r.str("refresh_token"));
    assert!(!access.is_empty() && !refresh.is_empty());
    assert_ne!(access, refresh);
    assert_eq!(r.body["authentication"], token_user_auth("realm"));
    // The token stands for the user in the body, not the caller.
    srv.auth_bearer(&access)
        .assert_is(200, &token_user_auth("token"));
}

#[test]
fn scope_is_returned_as_full_only_when_requested() {
    let srv = start_with_token_user();
    // The keys of the grant's answer, with `scope` before `authentication`.
    for (body, refreshes) in [
        (
            json!({ "grant_type": "password", "username": "token_user", "password": TEST_PW, "scope": "whatever" }),
            true,
        ),
        (
            json!({ "grant_type": "client_credentials", "scope": "" }),
            false,
        ),
    ] {
        let r = srv.token_request(body);
        assert_eq!(r.status, 200, "{}", r.text);
        let mut expected = vec!["access_token", "type", "expires_in"];
        if refreshes {
            expected.push("refresh_token");
        }
        expected.extend(["scope", "authentication"]);
        assert_eq!(r.keys(), expected);
        assert_eq!(r.body["scope"], "full");
    }
}

#[test]
fn client_credentials_grant_issues_a_token_for_the_caller_without_refresh_token() {
    let srv = start_with_token_user();
    let r = srv.request_client_credentials("token_user", TEST_PW);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.keys(),
        ["access_token", "type", "expires_in", "authentication"],
        "{}",
        r.text
    );
    assert_eq!(r.body["type"], "Bearer");
    assert_eq!(r.body["expires_in"], 1200);
    assert_eq!(r.body["authentication"], token_user_auth("realm"));
    srv.auth_bearer(&r.str("access_token"))
        .assert_is(200, &token_user_auth("token"));
}

#[test]
fn refresh_grant_returns_a_new_pair_with_token_authentication() {
    let srv = start_with_token_user();
    let first = srv.password_grant("token_user", TEST_PW);
    let r = srv.refresh(&first.refresh);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.keys(), PAIR_KEYS, "{}", r.text);
    assert_eq!(r.body["type"], "Bearer");
    assert_eq!(r.body["expires_in"], 1200);
    assert_eq!(r.body["authentication"], token_user_auth("token"));
    let second = Tokens::from_body(&r.body);
    assert_ne!(second.access, first.access);
    assert_ne!(second.refresh, first.refresh);
    // Both access tokens work: refreshing does not invalidate the old one.
    srv.auth_bearer(&second.access)
        .assert_is(200, &token_user_auth("token"));
    let a = srv.auth_bearer(&first.access);
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body, token_user_auth("token"));
    // The new refresh token refreshes in its turn.
    let r = srv.refresh(&second.refresh);
    assert_eq!(r.status, 200, "{}", r.text);
    let third = Tokens::from_body(&r.body);
    assert_ne!(third.access, second.access);
    srv.assert_bearer_ok(&third.access, "token_user");
}

#[test]
fn refresh_within_the_window_returns_the_same_pair() {
    let srv = start_with_token_user();
    let first = srv.password_grant("token_user", TEST_PW);
    let r1 = srv.refresh(&first.refresh);
    let r2 = srv.refresh(&first.refresh);
    assert_eq!(r1.status, 200, "{}", r1.text);
    assert_eq!(r2.status, 200, "{}", r2.text);
    assert_eq!(r1.body, r2.body);
    srv.assert_bearer_ok(&r2.str("access_token"), "token_user");
}

#[test]
fn caller_without_manage_token_cannot_create_tokens() {
    let srv = TestServer::start();
    srv.put_user_with_cluster("watcher", TEST_PW, "monitor_only", &["monitor"]);
    let r = srv.request_client_credentials("watcher", TEST_PW);
    assert_forbidden(
        &r,
        "cluster:admin/xpack/security/token/create",
        "watcher",
        "monitor_only",
        "manage_token,manage_security,all",
    );
    let r = srv
        .delete(TOKEN)
        .basic("watcher", TEST_PW)
        .json(&json!({ "username": "elastic" }))
        .send();
    assert_forbidden(
        &r,
        "cluster:admin/xpack/security/token/invalidate",
        "watcher",
        "monitor_only",
        "manage_saml,manage_oidc,manage_token,manage_security,all",
    );
}

// ---------------------------------------------------------------- invalidation

// Tessera deviates here, deliberately (README, "Refresh-token families"):
// invalidating either half of a pair invalidates every token of its family.
// Elasticsearch invalidates only the named half, as `token_invalidation =
// "token"` does (these tests check that mode's answers when the run is in
// it). The counts stay Elasticsearch's.

#[test]
fn invalidate_by_access_token_counts_once_and_revokes_the_family() {
    let srv = start_with_token_user();
    let t = srv.password_grant("token_user", TEST_PW);
    let other = srv.password_grant("token_user", TEST_PW);
    let r = srv.invalidate(json!({ "token": t.access }));
    r.assert_is(200, &counts(1, 0));
    assert_eq!(
        r.keys(),
        [
            "invalidated_tokens",
            "previously_invalidated_tokens",
            "error_count"
        ]
    );
    let r = srv.invalidate(json!({ "token": t.access }));
    r.assert_is(200, &counts(0, 1));
    assert_token_expired(&srv.auth_bearer(&t.access));
    if token_mode() {
        // The named token alone: its refresh token is still alive.
        srv.invalidate(json!({ "refresh_token": t.refresh }))
            .assert_is(200, &counts(1, 0));
        return;
    }
    assert_oauth_error(
        &srv.refresh(&t.refresh),
        "invalid_grant",
        "token has been invalidated",
    );
    let r = srv.invalidate(json!({ "refresh_token": t.refresh }));
    r.assert_is(200, &counts(0, 1));
    // Another grant is another family: untouched.
    srv.assert_bearer_ok(&other.access, "token_user");
    srv.assert_refresh_ok((ADMIN, ADMIN_PW), &other.refresh, "token_user");
}

#[test]
fn invalidate_by_refresh_token_counts_once_and_revokes_the_family() {
    let srv = start_with_token_user();
    let t = srv.password_grant("token_user", TEST_PW);
    let r = srv.invalidate(json!({ "refresh_token": t.refresh }));
    r.assert_is(200, &counts(1, 0));
    let r = srv.invalidate(json!({ "refresh_token": t.refresh }));
    r.assert_is(200, &counts(0, 1));
    assert_oauth_error(
        &srv.refresh(&t.refresh),
        "invalid_grant",
        "token has been invalidated",
    );
    if token_mode() {
        // The named token alone: its access token still authenticates.
        srv.assert_bearer_ok(&t.access, "token_user");
    } else {
        assert_token_expired(&srv.auth_bearer(&t.access));
    }
}

#[test]
fn invalidating_any_generation_revokes_every_generation() {
    let srv = start_with_token_user();
    let [g0, g1, g2] = generations(&srv, ("token_user", TEST_PW));
    for access in [&g0.access, &g1.access, &g2.access] {
        srv.assert_bearer_ok(access, "token_user");
    }
    // Invalidate the middle generation's access token.
    let r = srv.invalidate(json!({ "token": g1.access }));
    r.assert_is(200, &counts(1, 0));
    if token_mode() {
        // The named token alone: the other generations live on.
        assert_token_expired(&srv.auth_bearer(&g1.access));
        for access in [&g0.access, &g2.access] {
            srv.assert_bearer_ok(access, "token_user");
        }
        srv.assert_refresh_ok((ADMIN, ADMIN_PW), &g2.refresh, "token_user");
        return;
    }
    assert_family_revoked(&srv, [&g0, &g1, &g2]);
    // A repeat of a refresh inside its window cannot hand out revoked tokens.
    assert_oauth_error(
        &srv.refresh(&g1.refresh),
        "invalid_grant",
        "token has been invalidated",
    );
}

#[test]
fn invalidate_by_username_counts_two_per_password_token_and_one_per_client_credentials_token() {
    let srv = start_with_token_user();
    srv.put_user("bystander", TEST_PW, &["superuser"]);
    let a = srv.password_grant("token_user", TEST_PW);
    let b = srv.password_grant("token_user", TEST_PW);
    let c = srv.client_credentials("token_user", TEST_PW);
    let other = srv.password_grant("bystander", TEST_PW);
    let r = srv.invalidate(json!({ "username": "token_user" }));
    r.assert_is(200, &counts(5, 0));
    for access in [&a.access, &b.access, &c] {
        assert_token_expired(&srv.auth_bearer(access));
    }
    for refresh in [&a.refresh, &b.refresh] {
        assert_oauth_error(
            &srv.refresh(refresh),
            "invalid_grant",
            "token has been invalidated",
        );
    }
    // Nothing active is left for that user.
    let r = srv.invalidate(json!({ "username": "token_user" }));
    r.assert_is(200, &counts(0, 0));
    // Other users' tokens are untouched.
    srv.assert_bearer_ok(&other.access, "bystander");
    // A client_credentials token alone counts 1.
    let d = srv.client_credentials("token_user", TEST_PW);
    let r = srv.invalidate(json!({ "username": "token_user" }));
    r.assert_is(200, &counts(1, 0));
    assert_token_expired(&srv.auth_bearer(&d));
}

#[test]
fn invalidate_by_realm_name_covers_every_user_of_the_realm() {
    let srv = start_with_token_user();
    let a = srv.password_grant("token_user", TEST_PW);
    let b = srv.password_grant(ADMIN, ADMIN_PW);
    let r = srv.invalidate(json!({ "realm_name": "default_native" }));
    r.assert_is(200, &counts(4, 0));
    assert_token_expired(&srv.auth_bearer(&a.access));
    assert_token_expired(&srv.auth_bearer(&b.access));
    let r = srv.invalidate(json!({ "realm_name": "no_such_realm" }));
    r.assert_is(200, &counts(0, 0));
}

#[test]
fn invalidate_validation_errors() {
    let srv = TestServer::start();
    let t = srv.password_grant(ADMIN, ADMIN_PW);
    let r = srv.invalidate(json!({ "token": t.access, "refresh_token": t.refresh }));
    assert_es_error(
        &r,
        400,
        "illegal_argument_exception",
        "only one of [token, refresh_token] may be sent per request",
    );
    let r = srv.invalidate(json!({ "username": "elastic", "token": t.access }));
    assert_es_error(
        &r,
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: token string must not be provided when realm name or username is specified;2: token type must not be provided when realm name or username is specified;",
    );
    let r = srv.invalidate(json!({ "realm_name": "default_native", "refresh_token": t.refresh }));
    assert_es_error(
        &r,
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: token string must not be provided when realm name or username is specified;2: token type must not be provided when realm name or username is specified;",
    );
    for body in [json!({}), json!({ "token": "" }), json!({ "username": "" })] {
        let r = srv.invalidate(body);
        assert_es_error(
            &r,
            400,
            "action_request_validation_exception",
            "Validation Failed: 1: token string must be provided when not specifying a realm name or a username;",
        );
    }
    // None of that touched the token.
    srv.assert_bearer_ok(&t.access, ADMIN);
    srv.assert_refresh_ok((ADMIN, ADMIN_PW), &t.refresh, ADMIN);
}

// ---------------------------------------------------------------- token endpoint errors

#[test]
fn unsupported_grant_types() {
    let srv = TestServer::start();
    let message = "Validation Failed: 1: grant_type only supports the values: [password, _kerberos, refresh_token, client_credentials];";
    for body in [
        json!({ "grant_type": "authorization_code" }),
        json!({ "grant_type": "PASSWORD", "username": "elastic", "password": ADMIN_PW }),
        json!({ "username": "elastic", "password": ADMIN_PW }),
    ] {
        let r = srv.post(TOKEN).admin().json(&body).send();
        assert_oauth_error(&r, "unsupported_grant_type", message);
    }
}

/// Each token request body refused with its OAuth `error` and description.
#[track_caller]
fn assert_token_requests_refused(srv: &TestServer, cases: Vec<(Value, &str, &str)>) {
    for (body, error, description) in cases {
        let r = srv.token_request(body);
        assert_oauth_error(&r, error, description);
    }
}

#[test]
fn password_grant_validation() {
    let srv = TestServer::start();
    assert_token_requests_refused(
        &srv,
        vec![
            (
                json!({ "grant_type": "password", "password": ADMIN_PW }),
                "invalid_request",
                "Validation Failed: 1: username is missing;",
            ),
            (
                json!({ "grant_type": "password", "username": "elastic", "password": "" }),
                "invalid_request",
                "Validation Failed: 1: password is missing;",
            ),
            (
                json!({ "grant_type": "password" }),
                "invalid_request",
                "Validation Failed: 1: username is missing;2: password is missing;",
            ),
            (
                json!({ "grant_type": "password", "username": "elastic", "password": ADMIN_PW, "refresh_token": "x" }),
                "unsupported_grant_type",
                "Validation Failed: 1: refresh_token is not supported with the password grant_type;",
            ),
        ],
    );
}

#[test]
fn client_credentials_and_refresh_grant_validation() {
    let srv = TestServer::start();
    assert_token_requests_refused(
        &srv,
        vec![
            (
                json!({ "grant_type": "client_credentials", "username": "elastic" }),
                "unsupported_grant_type",
                "Validation Failed: 1: username is not supported with the client_credentials grant_type;",
            ),
            (
                json!({ "grant_type": "refresh_token" }),
                "invalid_request",
                "Validation Failed: 1: refresh_token is missing;",
            ),
        ],
    );
}

#[test]
fn kerberos_grant_is_refused() {
    let srv = TestServer::start();
    let r = srv.token_request(
        json!({ "grant_type": "_kerberos", "kerberos_ticket": "YIIB9wYGKwYBBQUCoIIB6zCCAeeg" }),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(keys(&r.body), ["error", "error_description"], "{}", r.text);
    assert_eq!(r.body["error"], "unsupported_grant_type");
    assert!(
        r.body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("_kerberos")),
        "{}",
        r.text
    );
    let r = srv.token_request(json!({ "grant_type": "_kerberos" }));
    assert_oauth_error(
        &r,
        "invalid_request",
        "Validation Failed: 1: kerberos_ticket is missing;",
    );
}

#[test]
fn password_grant_with_wrong_password_is_401_for_the_create_action() {
    let srv = start_with_token_user();
    let r = srv.request_password_grant((ADMIN, ADMIN_PW), "token_user", "wrong-password");
    assert_grant_refused(&r, "token_user");
    let r = srv.request_password_grant((ADMIN, ADMIN_PW), "nobody", TEST_PW);
    assert_grant_refused(&r, "nobody");
}

#[test]
fn refresh_with_unknown_tokens_is_invalid_grant() {
    let srv = TestServer::start();
    let t = srv.password_grant(ADMIN, ADMIN_PW);
    let cc = srv.client_credentials(ADMIN, ADMIN_PW);
    for junk in [
        "not-a-token".to_owned(),
        tampered(&t.refresh),
        t.access.clone(),
        cc,
        "46ToAxYzNUdPZWdYOFRQcWhjeHR3NWpvTmVB".to_owned(),
    ] {
        let r = srv.refresh(&junk);
        assert_oauth_error(&r, "invalid_grant", "could not refresh the requested token");
    }
    // The real one is unaffected.
    srv.assert_refresh_ok((ADMIN, ADMIN_PW), &t.refresh, ADMIN);
}

#[test]
fn only_the_creating_client_may_refresh() {
    let srv = TestServer::start();
    srv.put_user("test_user", TEST_PW, &["superuser"]);
    // The superuser creates a token for test_user.
    let t = srv.password_grant("test_user", TEST_PW);
    // test_user's own credentials cannot refresh it ...
    let r = srv.refresh_as(("test_user", TEST_PW), &t.refresh);
    assert_oauth_error(
        &r,
        "invalid_grant",
        "tokens must be refreshed by the creating client",
    );
    // ... nor can its own access token.
    let r = srv
        .post(TOKEN)
        .bearer(&t.access)
        .json(&json!({ "grant_type": "refresh_token", "refresh_token": t.refresh }))
        .send();
    assert_oauth_error(
        &r,
        "invalid_grant",
        "tokens must be refreshed by the creating client",
    );
    // The creating superuser can, and the result still stands for test_user.
    let r = srv.refresh(&t.refresh);
    assert_eq!(r.status, 200, "{}", r.text);
    let test_user = native_authentication(
        "test_user",
        &["superuser"],
        Value::Null,
        Value::Null,
        "token",
    );
    assert_eq!(r.body["authentication"], test_user);
    srv.auth_bearer(&r.str("access_token"))
        .assert_is(200, &test_user);
}

#[test]
fn reuse_after_the_window_is_refused_and_revokes_the_family() {
    let srv = TestServer::start_with(Options::default().refresh_window("1s").manual_clock());
    let t = srv.password_grant(ADMIN, ADMIN_PW);
    let first = srv.assert_refresh_ok((ADMIN, ADMIN_PW), &t.refresh, ADMIN);
    // Let the one-second refresh window pass.
    srv.advance(1_200);
    assert_oauth_error(
        &srv.refresh(&t.refresh),
        "invalid_grant",
        "token has already been refreshed more than 1 second in the past",
    );
    // Reuse is treated as theft: the whole family is gone.
    assert_token_expired(&srv.auth_bearer(&first.access));
    assert_token_expired(&srv.auth_bearer(&t.access));
    assert_oauth_error(
        &srv.refresh(&first.refresh),
        "invalid_grant",
        "token has been invalidated",
    );
}

#[test]
fn reuse_after_the_window_is_only_refused_in_elasticsearch_mode() {
    let srv = TestServer::start_with(
        Options::default()
            .refresh_window("1s")
            .refresh_reuse_revokes_family("false")
            .manual_clock(),
    );
    let t = srv.password_grant(ADMIN, ADMIN_PW);
    let first = srv.assert_refresh_ok((ADMIN, ADMIN_PW), &t.refresh, ADMIN);
    // Let the one-second refresh window pass.
    srv.advance(1_200);
    for _ in 0..2 {
        assert_oauth_error(
            &srv.refresh(&t.refresh),
            "invalid_grant",
            "token has already been refreshed more than 1 second in the past",
        );
    }
    // The pair the first refresh produced is unaffected, and so is the
    // original access token.
    srv.assert_bearer_ok(&first.access, ADMIN);
    srv.assert_bearer_ok(&t.access, ADMIN);
    srv.assert_refresh_ok((ADMIN, ADMIN_PW), &first.refresh, ADMIN);
}

#[test]
fn older_generation_reuse_inside_the_window_revokes_the_family() {
    let srv = TestServer::start();
    let [g0, g1, g2] = generations(&srv, (ADMIN, ADMIN_PW));
    // g1's repeat is still a replay (g1 is the head's predecessor) ...
    let r = srv.refresh(&g1.refresh);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(Tokens::from_body(&r.body), g2);
    // ... but g0's is reuse of an older generation.
    assert_oauth_error(
        &srv.refresh(&g0.refresh),
        "invalid_grant",
        "token has already been refreshed",
    );
    assert_family_revoked(&srv, [&g0, &g1, &g2]);
}

#[test]
fn older_generation_repeat_inside_the_window_replays_in_elasticsearch_mode() {
    let srv = TestServer::start_with(Options::default().refresh_reuse_revokes_family("false"));
    let [g0, g1, g2] = generations(&srv, (ADMIN, ADMIN_PW));
    // Elasticsearch: within 30 seconds a repeat returns the same pair.
    let r = srv.refresh(&g0.refresh);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(Tokens::from_body(&r.body), g1);
    for access in [&g0.access, &g1.access, &g2.access] {
        srv.assert_bearer_ok(access, ADMIN);
    }
}

// ---------------------------------------------------------------- token/10_basic.yml

/// The common start of every 10_basic case: get a token as token_user and
/// authenticate with it; the server and the token.
fn get_and_use_token() -> (TestServer, String) {
    let srv = start_with_token_user();
    let r = srv.request_password_grant((ADMIN, ADMIN_PW), "token_user", TEST_PW);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["type"], "Bearer");
    assert_eq!(r.body["expires_in"], 1200);
    assert!(r.body.get("scope").is_none(), "{}", r.text);
    let token = r.str("access_token");
    assert!(!token.is_empty());
    let a = srv.auth_bearer(&token);
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["username"], "token_user");
    assert_eq!(a.body["roles"][0], "superuser");
    assert_eq!(a.body["full_name"], "Token User");
    (srv, token)
}

#[test]
fn es_token_10_basic_get_and_use_token() {
    get_and_use_token();
}

/// Gets and uses a token, then invalidates with the body `by` makes of
/// it, which counts `invalidated` pairs; the token is then dead.
fn invalidate_a_used_token(by: impl FnOnce(&str) -> Value, invalidated: u64) {
    let (srv, token) = get_and_use_token();
    srv.invalidate(by(&token))
        .assert_is(200, &counts(invalidated, 0));
    assert_token_expired(&srv.auth_bearer(&token));
}

#[test]
fn es_token_10_basic_invalidate_token() {
    invalidate_a_used_token(|token| json!({ "token": token }), 1);
}

#[test]
fn es_token_10_basic_invalidate_users_tokens() {
    invalidate_a_used_token(|_| json!({ "username": "token_user" }), 2);
}

#[test]
fn es_token_10_basic_invalidate_realms_tokens() {
    invalidate_a_used_token(|_| json!({ "realm_name": "default_native" }), 2);
}

// ---------------------------------------------------------------- token/11_invalidation.yml

fn invalidation_statuses(field: &str) {
    let srv = TestServer::start();
    srv.put_role("admin_role", json!({ "cluster": ["manage_security"] }));
    srv.create_user(
        "token_user",
        json!({ "password": TEST_PW, "roles": ["admin_role"], "full_name": "Token User" }),
    );
    let as_token_user = |body: Value| {
        srv.delete(TOKEN)
            .basic("token_user", TEST_PW)
            .json(&body)
            .send()
    };

    // a. No token was ever issued: Elasticsearch's missing tokens index.
    let r = as_token_user(json!({ field: "46ToAxYzNUdPZWdYOFRQcWhjeHR3NWpvTmVB" }));
    assert_es_error(&r, 400, "security_exception", "failed to invalidate token");

    // b. Issue one.
    let r = srv.request_password_grant(("token_user", TEST_PW), "token_user", TEST_PW);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["type"], "Bearer");
    assert_eq!(r.body["expires_in"], 1200);
    assert!(r.body.get("scope").is_none(), "{}", r.text);

    // c–e. Junk and unknown tokens: 404 with zero counts.
    for junk in [
        "!this_is_not_a_base64_string_and_we_should_fail_decoding_it",
        "10we+might+assume+this+is+valid+old+token",
        "46ToAxYzNUdPZWdYOFRQcWhjeHR3NWpvTmVB",
    ] {
        let r = as_token_user(json!({ field: junk }));
        assert_eq!(
            (r.status, &r.body),
            (404, &counts(0, 0)),
            "{junk}: {}",
            r.text
        );
    }
}

#[test]
fn es_token_11_invalidation_access_token_statuses() {
    invalidation_statuses("token");
}

#[test]
fn es_token_11_invalidation_refresh_token_statuses() {
    invalidation_statuses("refresh_token");
}
