//! Derived credentials die with their source: an API key, a token or a user
//! taken back leaves nothing alive that it minted, however deep the chain.

use serde_json::{json, Value};

use crate::support::*;

fn apikey(encoded: &str) -> String {
    format!("ApiKey {encoded}")
}

/// Creates an API key as the admin; returns its id and encoded credential.
fn create_key(srv: &TestServer, caller: (&str, &str), body: Value) -> (String, String) {
    let r = srv
        .post("/_security/api_key")
        .basic(caller.0, caller.1)
        .json(&body)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    (r.str("id"), r.str("encoded"))
}

/// A password grant for `user`, requested with the raw `Authorization`
/// value `auth`.
fn grant_with(srv: &TestServer, auth: &str, user: &str, password: &str) -> Tokens {
    let r = srv
        .post(TOKEN)
        .header("Authorization", auth)
        .json(&json!({ "grant_type": "password", "username": user, "password": password }))
        .send();
    assert_eq!(r.status, 200, "password grant for {user}: {}", r.text);
    Tokens::from_body(&r.body)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Every token refused: 401 on `_authenticate`, and the refresh token
/// refused (`invalid_grant`, or 401 when its client is dead too).
fn assert_chain_dead(srv: &TestServer, chain: &[(&Tokens, Option<(&str, &str)>)], why: &str) {
    for (i, (t, refresher)) in chain.iter().enumerate() {
        let r = srv.auth_bearer(&t.access);
        assert_eq!(
            r.status, 401,
            "{why}: token {i} still authenticates: {}",
            r.text
        );
        let refresh = match refresher {
            Some(caller) => srv.refresh_as(*caller, &t.refresh),
            None => continue,
        };
        assert_eq!(
            refresh.status, 400,
            "{why}: token {i} refreshed: {}",
            refresh.text
        );
        assert_eq!(
            refresh.body["error"], "invalid_grant",
            "{why}: {}",
            refresh.text
        );
    }
}

fn setup_jane(srv: &TestServer) {
    srv.put_user("jane", TEST_PW, &["superuser"]);
}

/// key → token → token → token → token, the first a password grant the key
/// obtained for a user; then the key is invalidated.
#[test]
fn an_invalidated_api_key_takes_its_whole_chain_with_it() {
    let srv = TestServer::start();
    setup_jane(&srv);
    let (id, key) = create_key(&srv, (ADMIN, ADMIN_PW), json!({ "name": "leaky" }));
    let t1 = grant_with(&srv, &apikey(&key), "jane", TEST_PW);
    let t2 = grant_with(&srv, &bearer(&t1.access), "jane", TEST_PW);
    let t3 = grant_with(&srv, &bearer(&t2.access), "jane", TEST_PW);
    let t4 = grant_with(&srv, &bearer(&t3.access), "jane", TEST_PW);
    let cc = srv
        .post(TOKEN)
        .header("Authorization", &apikey(&key))
        .json(&json!({ "grant_type": "client_credentials" }))
        .send();
    assert_eq!(cc.status, 200, "{}", cc.text);
    let cc = cc.str("access_token");
    let unrelated = srv.password_grant("jane", TEST_PW);
    for t in [&t1, &t2, &t3, &t4] {
        srv.assert_bearer_ok(&t.access, "jane");
    }
    srv.assert_bearer_ok(&cc, ADMIN);

    let r = srv
        .delete("/_security/api_key")
        .admin()
        .json(&json!({ "ids": [id] }))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["invalidated_api_keys"], json!([id]));

    // t1's client is the dead key itself, so its refresh is refused at the
    // door; the others were minted by token callers standing for jane.
    let refused = srv
        .post(TOKEN)
        .header("Authorization", &apikey(&key))
        .json(&json!({ "grant_type": "refresh_token", "refresh_token": t1.refresh }))
        .send();
    assert_eq!(refused.status, 401, "{}", refused.text);
    let jane = Some(("jane", TEST_PW));
    assert_chain_dead(
        &srv,
        &[(&t1, None), (&t2, jane), (&t3, jane), (&t4, jane)],
        "key invalidated",
    );
    assert_eq!(srv.auth_bearer(&cc).status, 401);
    // Nothing more can be minted from the chain.
    let r = srv
        .post(TOKEN)
        .bearer(&t4.access)
        .json(&json!({ "grant_type": "client_credentials" }))
        .send();
    assert_eq!(r.status, 401, "{}", r.text);
    // Jane's own tokens are untouched.
    srv.assert_bearer_ok(&unrelated.access, "jane");
    srv.assert_refresh_ok((ADMIN, ADMIN_PW), &unrelated.refresh, "jane");
}

/// A key created with `"expiration":"2s"`: what it minted, and what that
/// minted, ends with it.
#[test]
fn an_expiring_api_key_ends_its_chain_when_it_expires() {
    let srv = TestServer::start_with(Options::default().manual_clock());
    setup_jane(&srv);
    let (_, key) = create_key(
        &srv,
        (ADMIN, ADMIN_PW),
        json!({ "name": "brief", "expiration": "2s" }),
    );
    let r = srv
        .post(TOKEN)
        .header("Authorization", &apikey(&key))
        .json(&json!({ "grant_type": "password", "username": "jane", "password": TEST_PW }))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["expires_in"].as_i64().unwrap() <= 2, "{}", r.text);
    let t1 = Tokens::from_body(&r.body);
    let t2 = grant_with(&srv, &bearer(&t1.access), "jane", TEST_PW);
    let t3 = grant_with(&srv, &bearer(&t2.access), "jane", TEST_PW);
    let t4 = grant_with(&srv, &bearer(&t3.access), "jane", TEST_PW);
    srv.advance(1_000);
    for t in [&t1, &t2, &t3, &t4] {
        srv.assert_bearer_ok(&t.access, "jane");
    }
    // A refresh inside the key's life does not outlive it either.
    let r = srv.refresh_as(("jane", TEST_PW), &t4.refresh);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["expires_in"], 1, "{}", r.text);
    let t4 = Tokens::from_body(&r.body);
    srv.advance(1_000);
    let jane = Some(("jane", TEST_PW));
    for t in [&t1, &t2, &t3, &t4] {
        let r = srv.auth_bearer(&t.access);
        assert_eq!(r.status, 401, "{}", r.text);
    }
    assert_chain_dead(&srv, &[(&t2, jane), (&t3, jane), (&t4, jane)], "expired");
}

/// A token minted by a token-authenticated caller dies when only the
/// caller's token is invalidated (with `token_invalidation = "family"`;
/// with `"token"`, only the named token dies).
#[test]
fn invalidating_one_token_takes_what_it_minted() {
    let srv = TestServer::start();
    setup_jane(&srv);
    let parent = srv.password_grant("jane", TEST_PW);
    let kid = grant_with(&srv, &bearer(&parent.access), "jane", TEST_PW);
    let grandkid = grant_with(&srv, &bearer(&kid.access), "jane", TEST_PW);
    let sibling = srv.password_grant("jane", TEST_PW);
    let r = srv.invalidate(json!({ "token": parent.access }));
    assert_eq!(r.status, 200, "{}", r.text);
    if token_mode() {
        // The named token alone, as Elasticsearch: what it minted lives on.
        for t in [&kid, &grandkid, &sibling] {
            srv.assert_bearer_ok(&t.access, "jane");
        }
        return;
    }
    let jane = Some(("jane", TEST_PW));
    assert_chain_dead(
        &srv,
        &[(&kid, jane), (&grandkid, jane)],
        "parent invalidated",
    );
    srv.assert_bearer_ok(&sibling.access, "jane");
}

/// A change made to the user named by the second argument.
type Change = fn(&TestServer, &str);

/// Every change that takes a user's authority back takes its tokens with
/// it: its own, those it minted for others, those of its API keys, and
/// what those minted. Its keys are refused while it is disabled.
#[test]
fn user_changes_reach_every_token_of_the_user() {
    let srv = TestServer::start();
    setup_jane(&srv);
    let changes: [(&str, Change); 5] = [
        ("deleted", |srv, u| {
            let r = srv.delete(&format!("/_security/user/{u}")).admin().send();
            assert_eq!(r.status, 200, "{}", r.text);
        }),
        ("disabled", |srv, u| {
            let r = srv
                .put(&format!("/_security/user/{u}/_disable"))
                .admin()
                .send();
            assert_eq!(r.status, 200, "{}", r.text);
        }),
        ("password changed by the admin", |srv, u| {
            let r = srv
                .put(&format!("/_security/user/{u}/_password"))
                .admin()
                .json(&json!({ "password": "a-new-password" }))
                .send();
            assert_eq!(r.status, 200, "{}", r.text);
        }),
        ("own password changed", |srv, u| {
            let r = srv
                .put("/_security/user/_password")
                .basic(u, TEST_PW)
                .json(&json!({ "password": "a-new-password" }))
                .send();
            assert_eq!(r.status, 200, "{}", r.text);
        }),
        ("replaced with a new password", |srv, u| {
            srv.put_user(u, "another-password", &["superuser"]);
        }),
    ];
    for (i, (what, change)) in changes.iter().enumerate() {
        let bob = format!("bob{i}");
        srv.put_user(&bob, TEST_PW, &["superuser"]);
        let own = srv.password_grant(&bob, TEST_PW);
        let for_jane = srv.password_grant_by((&bob, TEST_PW), "jane", TEST_PW);
        let for_jane = Tokens::from_body(&for_jane);
        let (_, key) = create_key(&srv, (&bob, TEST_PW), json!({ "name": "k" }));
        let by_key = grant_with(&srv, &apikey(&key), "jane", TEST_PW);
        let kid = grant_with(&srv, &bearer(&own.access), "jane", TEST_PW);
        let janes = srv.password_grant("jane", TEST_PW);
        change(&srv, &bob);
        for (n, t) in [&own, &for_jane, &by_key, &kid].iter().enumerate() {
            let r = srv.auth_bearer(&t.access);
            assert_eq!(r.status, 401, "{what}: token {n} lives on: {}", r.text);
        }
        // The pair the admin obtained for bob no longer refreshes.
        let r = srv.refresh(&own.refresh);
        assert_eq!(r.status, 400, "{what}: {}", r.text);
        assert_eq!(r.body["error"], "invalid_grant", "{what}: {}", r.text);
        let key_auth = srv
            .get(AUTHENTICATE)
            .header("Authorization", &apikey(&key))
            .send();
        if *what == "deleted" || *what == "disabled" {
            assert_eq!(key_auth.status, 401, "{what}: {}", key_auth.text);
        } else {
            assert_eq!(key_auth.status, 200, "{what}: {}", key_auth.text);
        }
        srv.assert_bearer_ok(&janes.access, "jane");
    }
    // Enabling the disabled user again brings its key back, not its tokens.
    let r = srv.put("/_security/user/bob1/_enable").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A deleted user's API keys are invalidated with it: a user created later
/// under the same name, with other roles, does not get them back.
#[test]
fn a_deleted_users_keys_stay_dead_when_the_name_returns() {
    let srv = TestServer::start();
    srv.put_user("bob", TEST_PW, &["superuser"]);
    let (id, key) = create_key(&srv, ("bob", TEST_PW), json!({ "name": "k" }));
    let r = srv.delete("/_security/user/bob").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    srv.put_role("mon", json!({ "cluster": ["monitor"] }));
    srv.put_user("bob", TEST_PW, &["mon"]);
    let r = srv
        .get(AUTHENTICATE)
        .header("Authorization", &apikey(&key))
        .send();
    assert_eq!(r.status, 401, "the old key came back: {}", r.text);
    let r = srv
        .get(&format!("/_security/api_key?id={id}"))
        .admin()
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["api_keys"][0]["invalidated"], true, "{}", r.text);
}

/// With `revoke_on_user_change = false`, Elasticsearch's behaviour: a
/// token keeps the identity it was issued for.
#[test]
fn without_revoke_on_user_change_tokens_outlive_user_changes() {
    let srv = TestServer::start_with(Options::default().revoke_on_user_change("false"));
    srv.put_user("bob", TEST_PW, &["superuser"]);
    let own = srv.password_grant("bob", TEST_PW);
    let (_, key) = create_key(&srv, ("bob", TEST_PW), json!({ "name": "k" }));
    let r = srv.put("/_security/user/bob/_disable").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    srv.assert_bearer_ok(&own.access, "bob");
    let r = srv
        .get(AUTHENTICATE)
        .header("Authorization", &apikey(&key))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let r = srv.delete("/_security/user/bob").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    srv.assert_bearer_ok(&own.access, "bob");
}

/// An API key belongs to its owner and outlives the session that created
/// it, so borrowed authority cannot be laundered into a key: a key, a token
/// a key minted, or a token another token minted may not create keys.
#[test]
fn borrowed_authority_cannot_be_turned_into_a_new_key() {
    let srv = TestServer::start();
    let (_, key) = create_key(&srv, (ADMIN, ADMIN_PW), json!({ "name": "k" }));
    let from_key = grant_with(&srv, &apikey(&key), ADMIN, ADMIN_PW);
    let session = srv.password_grant(ADMIN, ADMIN_PW);
    let from_session = grant_with(&srv, &bearer(&session.access), ADMIN, ADMIN_PW);
    for auth in [
        apikey(&key),
        bearer(&from_key.access),
        bearer(&from_session.access),
    ] {
        let r = srv
            .post("/_security/api_key")
            .header("Authorization", &auth)
            .json(&json!({ "name": "laundered" }))
            .send();
        assert_es_error_matching(
            &r,
            400,
            "illegal_argument_exception",
            |reason| reason.contains("cannot create API keys"),
            "a key's authority refused",
        );
    }
    // A key created in a user's session stays when the session ends.
    let r = srv
        .post("/_security/api_key")
        .bearer(&session.access)
        .json(&json!({ "name": "kept" }))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let kept = r.str("encoded");
    let r = srv.invalidate(json!({ "token": session.access }));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = srv
        .get(AUTHENTICATE)
        .header("Authorization", &apikey(&kept))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A grant by access token keeps to the token's own limits: a granter
/// cannot make a key of a token minted by another token or by a key, nor
/// of an OAuth token whose scope does not reach `/_security/*`. A user's
/// own session still can be granted one.
#[test]
fn a_grant_by_access_token_keeps_to_the_tokens_limits() {
    let srv = TestServer::start();
    let session = srv.password_grant(ADMIN, ADMIN_PW);
    let from_session = grant_with(&srv, &bearer(&session.access), ADMIN, ADMIN_PW);
    let (_, key) = create_key(&srv, (ADMIN, ADMIN_PW), json!({ "name": "k" }));
    let from_key = grant_with(&srv, &apikey(&key), ADMIN, ADMIN_PW);
    let client = srv.client_for(&["password"], "read");
    let scoped = srv.grant(
        &client,
        &[
            ("grant_type", "password"),
            ("username", ADMIN),
            ("password", ADMIN_PW),
            ("scope", "read"),
        ],
    );
    let scoped = scoped["access_token"].as_str().unwrap().to_owned();
    let grant = |token: &str| {
        srv.post("/_security/api_key/grant")
            .admin()
            .json(
                &json!({ "grant_type": "access_token", "access_token": token,
                           "api_key": { "name": "laundered" } }),
            )
            .send()
    };
    for (token, refusal) in [
        (&from_session.access, "cannot create API keys"),
        (&from_key.access, "cannot create API keys"),
        (&scoped, "tessera:admin"),
    ] {
        assert_es_error_matching(
            &grant(token),
            400,
            "illegal_argument_exception",
            |reason| reason.contains(refusal),
            refusal,
        );
    }
    let r = grant(&session.access);
    assert_eq!(r.status, 200, "{}", r.text);
}
