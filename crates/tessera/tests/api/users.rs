//! Native users: `/_security/user/…`, passwords, enable/disable, and
//! Elasticsearch's users/* and change_password/* YAML tests.

use serde_json::{json, Value};

use crate::support::*;

fn user_json(
    name: &str,
    roles: &[&str],
    full_name: Value,
    email: Value,
    metadata: Value,
    enabled: bool,
) -> Value {
    json!({
        "username": name,
        "roles": roles,
        "full_name": full_name,
        "email": email,
        "metadata": metadata,
        "enabled": enabled,
    })
}

// ---------------------------------------------------------------- put / get / delete

#[test]
fn put_creates_then_updates_and_post_works_too() {
    let srv = TestServer::start();
    let r = srv.request_put_user(
        "joe",
        json!({ "password": TEST_PW, "roles": ["superuser"] }),
    );
    r.assert_is(200, &json!({ "created": true }));
    let r = srv
        .post("/_security/user/joe")
        .admin()
        .json(&json!({ "roles": ["superuser"], "full_name": "Joe" }))
        .send();
    r.assert_is(200, &json!({ "created": false }));
    let r = srv
        .post("/_security/user/jim")
        .admin()
        .json(&json!({ "password": TEST_PW, "roles": [] }))
        .send();
    r.assert_is(200, &json!({ "created": true }));
    // The update without a password kept the old one.
    srv.assert_basic_ok("joe", TEST_PW);
    srv.assert_basic_ok("jim", TEST_PW);
}

#[test]
fn get_users_all_and_by_name() {
    let srv = TestServer::start();
    let r = srv.request_put_user("joe",
        json!({ "password": TEST_PW, "roles": ["superuser"], "full_name": "Joe", "email": "joe@example.com", "metadata": { "a": 1 } }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = srv.request_put_user(
        "ann",
        json!({ "password": TEST_PW, "roles": [], "enabled": false }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let joe = user_json(
        "joe",
        &["superuser"],
        json!("Joe"),
        json!("joe@example.com"),
        json!({ "a": 1 }),
        true,
    );
    let ann = user_json("ann", &[], Value::Null, Value::Null, json!({}), false);
    let elastic = user_json(
        ADMIN,
        &["superuser"],
        Value::Null,
        Value::Null,
        json!({}),
        true,
    );

    let r = srv.get("/_security/user").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({ "ann": ann, "elastic": elastic, "joe": joe })
    );

    let r = srv.get("/_security/user/joe").admin().send();
    r.assert_is(200, &json!({ "joe": joe }));
    let r = srv.get("/_security/user/joe,ann,nobody").admin().send();
    r.assert_is(200, &json!({ "joe": joe, "ann": ann }));
    for missing in ["/_security/user/nobody", "/_security/user/nobody,nothing"] {
        let r = srv.get(missing).admin().send();
        assert_eq!(
            (r.status, &r.body),
            (404, &json!({})),
            "{missing}: {}",
            r.text
        );
    }
    // No password hash ever leaves the server.
    assert!(!r.text.contains("argon2"));
    let all = srv.get("/_security/user").admin().send();
    assert!(!all.text.contains("password"), "{}", all.text);
}

#[test]
fn delete_user() {
    let srv = TestServer::start();
    srv.put_user("joe", TEST_PW, &["superuser"]);
    let t = srv.password_grant("joe", TEST_PW);
    let r = srv.delete("/_security/user/joe").admin().send();
    r.assert_is(200, &json!({ "found": true }));
    let r = srv.delete("/_security/user/joe").admin().send();
    r.assert_is(404, &json!({ "found": false }));
    srv.assert_basic_refused("joe", TEST_PW);
    srv.assert_missing("/_security/user/joe");
    // Deleting the user took its tokens with it (revoke_on_user_change),
    // so an invalidation by username finds nothing live.
    assert_token_expired(&srv.auth_bearer(&t.access));
    let r = srv.invalidate(json!({ "username": "joe" }));
    r.assert_is(200, &counts(0, 0));
}

#[test]
fn delete_user_keeps_tokens_as_elasticsearch_does_when_asked() {
    let srv = TestServer::start_with(Options::default().revoke_on_user_change("false"));
    srv.put_user("joe", TEST_PW, &["superuser"]);
    let t = srv.password_grant("joe", TEST_PW);
    let r = srv.delete("/_security/user/joe").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    srv.assert_bearer_ok(&t.access, "joe");
    // The token's invalidation by username still finds it (Elasticsearch
    // keeps tokens of deleted users until they are invalidated or expire).
    let r = srv.invalidate(json!({ "username": "joe" }));
    r.assert_is(200, &counts(2, 0));
    assert_token_expired(&srv.auth_bearer(&t.access));
}

#[test]
fn put_user_validation() {
    let srv = TestServer::start();
    let r = srv.request_put_user("joe", json!({ "roles": ["superuser"] }));
    assert_es_error(
        &r,
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: password must be specified unless you are updating an existing user;",
    );
    let r = srv.request_put_user(
        "joe",
        json!({ "password": "12345", "roles": ["superuser"] }),
    );
    assert_es_error_containing(
        &r,
        400,
        "action_request_validation_exception",
        "passwords must be at least [6] characters long",
    );
    let r = srv.request_put_user(
        "joe",
        json!({ "password": TEST_PW, "roles": [], "metadata": { "ok": 1, "_reserved": 2 } }),
    );
    assert_es_error(
        &r,
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: metadata keys may not start with [_] (found [_reserved]);",
    );
    let r = srv.request_put_user(
        "joe",
        json!({ "username": "joey", "password": TEST_PW, "roles": [] }),
    );
    assert_error_type(&r, 400, "illegal_argument_exception");
    let reason = r.body["error"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("joey") && reason.contains("joe"),
        "{reason}"
    );
    let r = srv.request_put_user("joe", json!({ "password": TEST_PW }));
    assert_es_error(
        &r,
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: roles are missing;",
    );
    let r = srv.request_put_user(
        "joe",
        json!({ "password": TEST_PW, "password_hash": "x", "roles": [] }),
    );
    assert_error_type(&r, 400, "action_request_validation_exception");
    // Nothing was created by any of that.
    srv.assert_missing("/_security/user/joe");
}

#[test]
fn password_hash_must_be_a_supported_hash() {
    let srv = TestServer::start();
    let r = srv.request_put_user(
        "joe",
        json!({ "password_hash": TEST_PW, "roles": ["superuser"] }),
    );
    assert_es_error_matching(
        &r,
        400,
        "illegal_argument_exception",
        |m| m.starts_with("The provided password hash is not a hash or it could not be resolved to a supported hash algorithm"),
        "The provided password hash is not a hash or it could not be resolved to a supported hash algorithm…",
    );
    // The same for change_password (change_password/12_custom_hash.yml).
    srv.put_user("joe", TEST_PW, &["superuser"]);
    let r = srv
        .put("/_security/user/joe/_password")
        .admin()
        .json(&json!({ "password_hash": "not-a-hash-at-all" }))
        .send();
    assert_es_error_matching(
        &r,
        400,
        "illegal_argument_exception",
        |m| {
            m.starts_with("The provided password hash is not a hash or it could not be resolved to a supported hash algorithm")
        },
        "The provided password hash is not a hash…",
    );
    srv.assert_basic_ok("joe", TEST_PW);
}

#[test]
fn bcrypt_password_hash_works_for_login_and_change_password() {
    let srv = TestServer::start();
    let hash = bcrypt::hash("bcrypt-secret", 4).unwrap();
    let r = srv.request_put_user(
        "joe",
        json!({ "password_hash": hash, "roles": ["superuser"] }),
    );
    r.assert_is(200, &json!({ "created": true }));
    srv.assert_basic_ok("joe", "bcrypt-secret");
    srv.assert_basic_refused("joe", "bcrypt-secrex");
    // A password grant works with it too.
    let t = srv.password_grant("joe", "bcrypt-secret");
    srv.assert_bearer_ok(&t.access, "joe");
    // Change by hash.
    let other = bcrypt::hash("another-secret", 4).unwrap();
    let r = srv
        .put("/_security/user/joe/_password")
        .admin()
        .json(&json!({ "password_hash": other }))
        .send();
    r.assert_is(200, &json!({}));
    assert_password_moved(&srv, "joe", "bcrypt-secret", "another-secret");
}

// ---------------------------------------------------------------- passwords

const CHANGE_PASSWORD_ACTION: &str = "cluster:admin/xpack/security/user/change_password";

/// `req` sent with `password` as the new password.
fn new_password(req: Req, password: &str) -> Resp {
    req.json(&json!({ "password": password })).send()
}

/// `user` now authenticates with `new`, and no longer with `old`.
#[track_caller]
fn assert_password_moved(srv: &TestServer, user: &str, old: &str, new: &str) {
    srv.assert_basic_refused(user, old);
    srv.assert_basic_ok(user, new);
}

/// Changing one's own password with `_password` and another's as admin
/// are `es_change_password_10_basic` below; here the named route for
/// oneself, with POST, and the refusals.
#[test]
fn change_own_password_by_name_and_the_refusals() {
    let srv = TestServer::start();
    srv.put_role(
        "user",
        json!({ "cluster": ["monitor"], "indices": [{ "names": ["*"], "privileges": ["all"] }] }),
    );
    srv.put_user("unprivileged_user", "s3krit-password", &["user"]);
    srv.put_user("joe", "s3krit-password", &["superuser"]);
    // Own password through the named route, with POST, without
    // manage_security.
    let r = new_password(
        srv.post("/_security/user/unprivileged_user/_password")
            .basic("unprivileged_user", "s3krit-password"),
        "changed-password",
    );
    r.assert_is(200, &json!({}));
    assert_password_moved(
        &srv,
        "unprivileged_user",
        "s3krit-password",
        "changed-password",
    );
    // Too short; missing; unknown user.
    let r = new_password(srv.put("/_security/user/joe/_password").admin(), "short");
    assert_es_error_containing(
        &r,
        400,
        "action_request_validation_exception",
        "passwords must be at least [6] characters long",
    );
    let r = srv
        .put("/_security/user/joe/_password")
        .admin()
        .json(&json!({}))
        .send();
    assert_error_type(&r, 400, "action_request_validation_exception");
    let r = new_password(
        srv.put("/_security/user/nobody/_password").admin(),
        "whatever-pw",
    );
    assert_error_type(&r, 404, "resource_not_found_exception");
    srv.assert_basic_ok("joe", "s3krit-password");
}

#[test]
fn es_change_password_10_basic() {
    let srv = TestServer::start();
    srv.put_role(
        "user",
        json!({ "cluster": ["monitor"], "indices": [{ "names": "*", "privileges": ["all"] }] }),
    );
    srv.put_user("joe", "s3krit-password", &["superuser"]);
    srv.put_user("unprivileged_user", "s3krit-password", &["user"]);

    // 1. The admin changes joe's password.
    let r = new_password(
        srv.put("/_security/user/joe/_password").admin(),
        "s3krit-password2",
    );
    r.assert_is(200, &json!({}));
    assert_password_moved(&srv, "joe", "s3krit-password", "s3krit-password2");

    // 2. unprivileged_user changes their own.
    let r = new_password(
        srv.put("/_security/user/_password")
            .basic("unprivileged_user", "s3krit-password"),
        "s3krit-password2",
    );
    r.assert_is(200, &json!({}));
    assert_password_moved(
        &srv,
        "unprivileged_user",
        "s3krit-password",
        "s3krit-password2",
    );

    // 3. ... but not another user's, whether it exists or not.
    for other in ["anotheruser", "joe"] {
        let r = new_password(
            srv.put(&format!("/_security/user/{other}/_password"))
                .basic("unprivileged_user", "s3krit-password2"),
            "s3krit-password3",
        );
        assert_forbidden(
            &r,
            CHANGE_PASSWORD_ACTION,
            "unprivileged_user",
            "user",
            "manage_security,all",
        );
    }
    srv.assert_basic_ok("joe", "s3krit-password2");
}

#[test]
fn es_change_password_11_token() {
    let srv = TestServer::start();
    srv.put_user("joe", "s3krit-password", &["superuser"]);
    srv.put_role(
        "token_admin",
        json!({ "cluster": ["manage_token"], "indices": [{ "names": "*", "privileges": ["all"] }] }),
    );
    srv.put_user("token_joe", "s3krit-password", &["token_admin"]);
    let r = srv.request_password_grant(
        ("token_joe", "s3krit-password"),
        "token_joe",
        "s3krit-password",
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["type"], "Bearer");
    assert_eq!(r.body["expires_in"], 1200);
    assert!(r.body.get("scope").is_none(), "{}", r.text);
    let token = r.str("access_token");
    // Not another's, and not its own either when authenticated with a
    // token.
    for path in ["/_security/user/joe/_password", "/_security/user/_password"] {
        let r = new_password(srv.put(path).bearer(&token), "s3krit-password2");
        assert_forbidden(
            &r,
            CHANGE_PASSWORD_ACTION,
            "token_joe",
            "token_admin",
            "manage_security,all",
        );
    }
    srv.assert_basic_ok("joe", "s3krit-password");
    srv.assert_basic_ok("token_joe", "s3krit-password");
}

// ---------------------------------------------------------------- enable / disable

#[test]
fn es_users_30_enable_disable() {
    let srv = TestServer::start();
    srv.put_user("joe", TEST_PW, &["superuser"]);
    srv.assert_basic_ok("joe", TEST_PW);
    let r = srv.put("/_security/user/joe/_disable").admin().send();
    r.assert_is(200, &json!({}));
    srv.assert_basic_refused("joe", TEST_PW);
    let r = srv.put("/_security/user/joe/_enable").admin().send();
    r.assert_is(200, &json!({}));
    srv.assert_basic_ok("joe", TEST_PW);
    // Enabling an enabled user is fine.
    let r = srv.post("/_security/user/joe/_enable").admin().send();
    r.assert_is(200, &json!({}));
    srv.assert_basic_ok("joe", TEST_PW);
    // Disabling twice is fine.
    for _ in 0..2 {
        let r = srv.post("/_security/user/joe/_disable").admin().send();
        r.assert_is(200, &json!({}));
    }
    srv.assert_basic_refused("joe", TEST_PW);
    let r = srv.get("/_security/user/joe").admin().send();
    assert_eq!(r.body["joe"]["enabled"], false, "{}", r.text);
    let r = srv.put("/_security/user/joe/_enable").admin().send();
    r.assert_is(200, &json!({}));
    // joe may not disable himself.
    let r = srv
        .put("/_security/user/joe/_disable")
        .basic("joe", TEST_PW)
        .send();
    assert_es_error(
        &r,
        400,
        "illegal_argument_exception",
        "users may not update the enabled status of their own account",
    );
    srv.assert_basic_ok("joe", TEST_PW);
    // Unknown user.
    let r = srv.put("/_security/user/nobody/_disable").admin().send();
    assert_error_type(&r, 404, "resource_not_found_exception");
}

#[test]
fn disabled_users_password_grant_is_refused() {
    let srv = TestServer::start();
    srv.put_user("joe", TEST_PW, &["superuser"]);
    let r = srv.put("/_security/user/joe/_disable").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    let r = srv.request_password_grant((ADMIN, ADMIN_PW), "joe", TEST_PW);
    assert_grant_refused(&r, "joe");
}

#[test]
fn es_users_31_create_disabled() {
    let srv = TestServer::start();
    let r = srv.request_put_user(
        "joe",
        json!({ "password": TEST_PW, "roles": ["superuser"], "enabled": false }),
    );
    r.assert_is(200, &json!({ "created": true }));
    srv.assert_basic_refused("joe", TEST_PW);
    let r = srv.put("/_security/user/joe/_enable").admin().send();
    r.assert_is(200, &json!({}));
    srv.assert_basic_ok("joe", TEST_PW);
}

// ---------------------------------------------------------------- Elasticsearch's users/* tests

fn es_joe(srv: &TestServer, extra: Value) -> Resp {
    let mut body = json!({
        "password": TEST_PW,
        "roles": ["superuser"],
        "full_name": "Bazooka Joe",
        "email": "joe@bazooka.gum",
        "metadata": { "key1": "val1", "key2": "val2" },
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    srv.request_put_user("joe", body)
}

fn assert_es_joe(srv: &TestServer) {
    let r = srv.get("/_security/user/joe").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["joe"]["username"], "joe");
    assert_eq!(r.body["joe"]["roles"][0], "superuser");
    assert_eq!(r.body["joe"]["full_name"], "Bazooka Joe");
    assert_eq!(r.body["joe"]["email"], "joe@bazooka.gum");
    assert_eq!(r.body["joe"]["metadata"]["key1"], "val1");
    assert_eq!(r.body["joe"]["metadata"]["key2"], "val2");
}

#[test]
fn es_users_10_basic_put_and_get() {
    let srv = TestServer::start();
    let r = es_joe(&srv, json!({}));
    r.assert_is(200, &json!({ "created": true }));
    let r = srv.auth_basic("joe", TEST_PW);
    assert_eq!(
        (r.status, &r.body["username"]),
        (200, &json!("joe")),
        "{}",
        r.text
    );
    assert_es_joe(&srv);
}

#[test]
fn es_users_10_basic_username_in_body() {
    let srv = TestServer::start();
    let r = es_joe(&srv, json!({ "username": "joe" }));
    r.assert_is(200, &json!({ "created": true }));
    srv.assert_basic_ok("joe", TEST_PW);
    assert_es_joe(&srv);
}

#[test]
fn es_users_10_basic_username_mismatch() {
    let srv = TestServer::start();
    let r = es_joe(&srv, json!({ "username": "joey" }));
    assert_es_error(
        &r,
        400,
        "illegal_argument_exception",
        "the username in the request body [joey] does not match the username in the path [joe]",
    );
    srv.assert_missing("/_security/user/joe");
}

#[test]
fn es_users_10_basic_password_hash_from_another_user() {
    let srv = TestServer::start();
    srv.put_user("bob", "bobs-password", &["superuser"]);
    let r = es_joe(&srv, json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    // Elasticsearch reads bob's hash from its .security index; here it is
    // read from the store file.
    let db = open_db_read_only(&srv.db_path());
    let hash: String = db
        .query_row(
            "SELECT password_hash FROM users WHERE username = 'bob'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let r = srv.request_put_user(
        "joe",
        json!({ "password_hash": hash, "roles": ["superuser"] }),
    );
    r.assert_is(200, &json!({ "created": false }));
    let r = srv.auth_basic("joe", "bobs-password");
    assert_eq!(
        (r.status, &r.body["username"]),
        (200, &json!("joe")),
        "{}",
        r.text
    );
    srv.assert_basic_refused("joe", TEST_PW);
}

#[test]
fn es_users_15_overwrite_user() {
    let srv = TestServer::start();
    let r = es_joe(&srv, json!({}));
    r.assert_is(200, &json!({ "created": true }));
    let r = srv.request_put_user(
        "joe",
        json!({
            "password": "s3krit-password2",
            "roles": ["superuser", "foo"],
            "full_name": "Joe Smith",
            "email": "joe@smith.com",
            "metadata": { "key1": "val1", "key2": "val2", "key3": "val3" },
        }),
    );
    r.assert_is(200, &json!({ "created": false }));
    let r = srv.get("/_security/user/joe").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        json!({ "joe": user_json(
            "joe",
            &["superuser", "foo"],
            json!("Joe Smith"),
            json!("joe@smith.com"),
            json!({ "key1": "val1", "key2": "val2", "key3": "val3" }),
            true,
        ) })
    );
    srv.assert_basic_ok("joe", "s3krit-password2");
    srv.assert_basic_refused("joe", TEST_PW);
}

#[test]
fn es_users_16_update_user() {
    let srv = TestServer::start();
    // 1. Creating without a password.
    let r = srv.request_put_user("joe", json!({ "roles": ["superuser"], "full_name": "Joe" }));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(
        r.body["error"]["root_cause"][0]["reason"],
        "Validation Failed: 1: password must be specified unless you are updating an existing user;"
    );
    // 2. Create, update without a password (kept), then with one.
    let r = srv.request_put_user(
        "joe",
        json!({ "password": TEST_PW, "roles": ["superuser"] }),
    );
    r.assert_is(200, &json!({ "created": true }));
    let r = srv.request_put_user(
        "joe",
        json!({ "roles": ["superuser"], "full_name": "Joe Updated" }),
    );
    r.assert_is(200, &json!({ "created": false }));
    srv.assert_basic_ok("joe", TEST_PW);
    let r = srv.get("/_security/user/joe").admin().send();
    assert_eq!(r.body["joe"]["full_name"], "Joe Updated", "{}", r.text);
    let r = srv.request_put_user(
        "joe",
        json!({ "password": "s3krit-password2", "roles": ["superuser"] }),
    );
    r.assert_is(200, &json!({ "created": false }));
    srv.assert_basic_refused("joe", TEST_PW);
    srv.assert_basic_ok("joe", "s3krit-password2");
}

#[test]
fn es_users_20_get_missing() {
    let srv = TestServer::start();
    for path in ["/_security/user/foo", "/_security/user/foo,bar"] {
        let r = srv.get(path).admin().send();
        assert_eq!((r.status, &r.body), (404, &json!({})), "{path}: {}", r.text);
    }
}

// ---------------------------------------------------------------- authorization

#[test]
fn manage_token_role_can_get_tokens_but_not_manage_users() {
    let srv = TestServer::start();
    srv.put_user_with_cluster("tokener", TEST_PW, "token_only", &["manage_token"]);
    let t = srv.password_grant_by(("tokener", TEST_PW), "tokener", TEST_PW);
    let t = Tokens::from_body(&t);
    srv.assert_bearer_ok(&t.access, "tokener");
    srv.assert_refresh_ok(("tokener", TEST_PW), &t.refresh, "tokener");
    let r = srv
        .put("/_security/user/newbie")
        .basic("tokener", TEST_PW)
        .json(&json!({ "password": TEST_PW, "roles": ["superuser"] }))
        .send();
    assert_eq!(
        r.body["error"]["reason"],
        "action [cluster:admin/xpack/security/user/put] is unauthorized for user [tokener] with effective roles [token_only], this action is granted by the cluster privileges [manage_security,all]"
    );
    assert_forbidden(
        &r,
        "cluster:admin/xpack/security/user/put",
        "tokener",
        "token_only",
        "manage_security,all",
    );
    for (method, path, action) in [
        (
            "GET",
            "/_security/user",
            "cluster:admin/xpack/security/user/get",
        ),
        (
            "DELETE",
            "/_security/user/elastic",
            "cluster:admin/xpack/security/user/delete",
        ),
        (
            "PUT",
            "/_security/user/elastic/_disable",
            "cluster:admin/xpack/security/user/set_enabled",
        ),
    ] {
        let r = srv
            .req(method.parse().unwrap(), path)
            .basic("tokener", TEST_PW)
            .send();
        let granted = if method == "GET" {
            "read_security,manage_security,all"
        } else {
            "manage_security,all"
        };
        assert_forbidden(&r, action, "tokener", "token_only", granted);
    }
    // Nothing changed.
    let r = srv.get("/_security/user").admin().send();
    assert_eq!(keys(&r.body), ["elastic", "tokener"], "{}", r.text);
    srv.assert_basic_ok(ADMIN, ADMIN_PW);
}

#[test]
fn user_without_roles_is_forbidden_everything_but_authenticate() {
    let srv = TestServer::start();
    srv.put_user("nobody_special", TEST_PW, &[]);
    let r = srv.auth_basic("nobody_special", TEST_PW);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["roles"], json!([]));
    let r = srv.request_client_credentials("nobody_special", TEST_PW);
    assert_forbidden(
        &r,
        "cluster:admin/xpack/security/token/create",
        "nobody_special",
        "",
        "manage_token,manage_security,all",
    );
}

#[test]
fn read_security_can_read_users_and_roles_only() {
    let srv = TestServer::start();
    srv.put_user_with_cluster("auditor", TEST_PW, "reader", &["read_security"]);
    let r = srv
        .get("/_security/user/elastic")
        .basic("auditor", TEST_PW)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(keys(&r.body), ["elastic"]);
    let r = srv
        .get("/_security/role/reader")
        .basic("auditor", TEST_PW)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["reader"]["cluster"], json!(["read_security"]));
    let r = srv
        .put("/_security/role/x")
        .basic("auditor", TEST_PW)
        .json(&json!({ "cluster": ["all"] }))
        .send();
    assert_forbidden(
        &r,
        "cluster:admin/xpack/security/role/put",
        "auditor",
        "reader",
        "manage_security,all",
    );
}
