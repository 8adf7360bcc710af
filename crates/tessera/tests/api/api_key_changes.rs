//! Granting API keys for another user (`/_security/api_key/grant`) and
//! updating one's own keys (`PUT /_security/api_key/{id}`,
//! `_bulk_update`); Elasticsearch's api_key/10_grant.yml, 12_grant.yml and
//! the update APIs' documented answers.

use serde_json::{json, Value};

use crate::support::*;

const GRANT: &str = "/_security/api_key/grant";
const BULK: &str = "/_security/api_key/_bulk_update";
const GRANT_ACTION: &str = "cluster:admin/xpack/security/api_key/grant";
const OWN_KEYS: &str = "manage_own_api_key,manage_api_key,manage_security,all";

fn apikey(encoded: &str) -> String {
    format!("ApiKey {encoded}")
}

/// A granter (`grant_api_key`), a target user and a user with
/// `manage_own_api_key` only.
fn setup() -> TestServer {
    let srv = TestServer::start();
    srv.put_user_with_cluster("granter", TEST_PW, "granter_role", &["grant_api_key"]);
    srv.put_user_with_cluster("target", TEST_PW, "own_role", &["manage_own_api_key"]);
    srv.put_user("other", TEST_PW, &["own_role"]);
    srv
}

fn grant(srv: &TestServer, body: Value) -> Resp {
    srv.post(GRANT).basic("granter", TEST_PW).json(&body).send()
}

fn create(srv: &TestServer, user: &str, name: &str) -> Value {
    let r = srv
        .post("/_security/api_key")
        .basic(user, TEST_PW)
        .json(&json!({ "name": name, "metadata": { "v": 1 } }))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

fn get_key(srv: &TestServer, id: &str) -> Value {
    let r = srv
        .get(&format!("/_security/api_key?id={id}"))
        .admin()
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["api_keys"][0].clone()
}

#[test]
fn a_password_grant_makes_a_key_owned_by_the_granted_user() {
    let srv = setup();
    let r = grant(
        &srv,
        json!({ "grant_type": "password", "username": "target", "password": TEST_PW,
                "api_key": { "name": "granted", "expiration": "1d", "metadata": { "a": 1 } } }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], "granted");
    assert!(r.body["expiration"].is_i64(), "{}", r.text);
    let me = srv.auth_header(&apikey(&r.str("encoded")));
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["username"], "target");
    assert_eq!(me.body["authentication_realm"]["name"], "_es_api_key");
    let stored = get_key(&srv, &r.str("id"));
    assert_eq!(stored["username"], "target");
    assert_eq!(stored["metadata"]["a"], 1);
}

#[test]
fn an_access_token_grant_makes_a_key_owned_by_the_tokens_user() {
    let srv = setup();
    let tokens = srv.password_grant("target", TEST_PW);
    let r = grant(
        &srv,
        json!({ "grant_type": "access_token", "access_token": tokens.access,
                "api_key": { "name": "by-token" } }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(get_key(&srv, &r.str("id"))["username"], "target");
    let bad = grant(
        &srv,
        json!({ "grant_type": "access_token", "access_token": "not-a-token",
                "api_key": { "name": "x" } }),
    );
    assert_eq!(bad.status, 401, "{}", bad.text);
}

#[test]
fn a_wrong_password_is_refused_and_counts_toward_the_lock() {
    let srv = setup();
    let r = grant(
        &srv,
        json!({ "grant_type": "password", "username": "target", "password": "wrong-password",
                "api_key": { "name": "x" } }),
    );
    assert_unauthenticated(
        &r,
        &format!("unable to authenticate user [target] for action [{GRANT_ACTION}]"),
    );
    for _ in 0..5 {
        grant(
            &srv,
            json!({ "grant_type": "password", "username": "target", "password": "wrong",
                    "api_key": { "name": "x" } }),
        );
    }
    let locked = grant(
        &srv,
        json!({ "grant_type": "password", "username": "target", "password": TEST_PW,
                "api_key": { "name": "x" } }),
    );
    assert_eq!(locked.status, 401, "the account is locked: {}", locked.text);
}

#[test]
fn only_granters_grant() {
    let srv = setup();
    let r = srv
        .post(GRANT)
        .basic("target", TEST_PW)
        .json(
            &json!({ "grant_type": "password", "username": "target", "password": TEST_PW,
                       "api_key": { "name": "x" } }),
        )
        .send();
    assert_forbidden(
        &r,
        GRANT_ACTION,
        "target",
        "own_role",
        "grant_api_key,manage_api_key,manage_security,all",
    );
}

#[test]
fn bad_grants_are_400() {
    let srv = setup();
    let cases = [
        (
            json!({ "grant_type": "password", "api_key": { "name": "x" } }),
            "Validation Failed: 1: [username] is required;2: [password] is required;",
        ),
        (
            json!({ "grant_type": "access_token", "username": "u", "api_key": { "name": "x" } }),
            "Validation Failed: 1: [access_token] is required;2: [username] is not supported for grant_type [access_token];",
        ),
        (
            json!({ "grant_type": "kerberos", "api_key": { "name": "x" } }),
            "Validation Failed: 1: grant_type [kerberos] is not supported;",
        ),
    ];
    for (body, reason) in cases {
        assert_es_error(
            &grant(&srv, body),
            400,
            "action_request_validation_exception",
            reason,
        );
    }
    let no_key = grant(
        &srv,
        json!({ "grant_type": "password", "username": "target", "password": TEST_PW }),
    );
    assert_eq!(no_key.status, 400, "{}", no_key.text);
    let unnamed = grant(
        &srv,
        json!({ "grant_type": "password", "username": "target", "password": TEST_PW, "api_key": {} }),
    );
    assert_es_error(
        &unnamed,
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: api key name is required;",
    );
}

#[test]
fn run_as_grants_for_the_run_as_user_only_when_the_roles_allow_it() {
    let srv = setup();
    srv.put_role("runner", json!({ "cluster": [], "run_as": ["targ*"] }));
    srv.put_user("runner", TEST_PW, &["runner"]);
    let body = |who: &str| {
        json!({ "grant_type": "password", "username": "runner", "password": TEST_PW,
                "run_as": who, "api_key": { "name": "ran" } })
    };
    let r = grant(&srv, body("target"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(get_key(&srv, &r.str("id"))["username"], "target");
    let refused = grant(&srv, body("other"));
    assert_es_error(
        &refused,
        403,
        "security_exception",
        &format!("action [{GRANT_ACTION}] is unauthorized for user [runner] with effective roles [runner], because user [runner] is unauthorized to run as [other]"),
    );
}

#[test]
fn owners_update_their_keys_and_the_change_applies_at_once() {
    let srv = setup();
    let key = create(&srv, "target", "mine");
    let (id, encoded) = (
        key["id"].as_str().unwrap(),
        key["encoded"].as_str().unwrap(),
    );
    // A key never creates keys, whatever its descriptors.
    let made = srv
        .post("/_security/api_key")
        .header("authorization", &apikey(encoded))
        .json(&json!({ "name": "child" }))
        .send();
    assert_eq!(made.status, 400, "keys cannot create keys: {}", made.text);
    let has = |srv: &TestServer| {
        srv.get(&format!("/_security/api_key?id={id}&owner=true"))
            .header("authorization", &apikey(encoded))
            .send()
            .status
    };
    assert_eq!(has(&srv), 200);
    let path = format!("/_security/api_key/{id}");
    let r = srv
        .put(&path)
        .basic("target", TEST_PW)
        .json(
            &json!({ "role_descriptors": { "none": { "cluster": ["monitor"] } },
                       "metadata": { "v": 2 }, "expiration": "2d" }),
        )
        .send();
    r.assert_is(200, &json!({ "updated": true }));
    assert_eq!(has(&srv), 403, "the narrower descriptors apply at once");
    let stored = get_key(&srv, id);
    assert_eq!(stored["metadata"], json!({ "v": 2 }));
    assert!(stored["expiration"].is_i64(), "{stored}");
    assert_eq!(
        stored["role_descriptors"]["none"]["cluster"],
        json!(["monitor"])
    );
    let again = srv
        .put(&path)
        .basic("target", TEST_PW)
        .json(&json!({ "metadata": { "v": 2 } }))
        .send();
    again.assert_is(200, &json!({ "updated": false }));
}

#[test]
fn others_keys_unknown_ids_and_dead_keys_are_refused() {
    let srv = setup();
    let theirs = create(&srv, "other", "theirs");
    let theirs_id = theirs["id"].as_str().unwrap();
    for id in [theirs_id, "no-such-key"] {
        let r = srv
            .put(&format!("/_security/api_key/{id}"))
            .basic("target", TEST_PW)
            .json(&json!({ "metadata": {} }))
            .send();
        assert_es_error(
            &r,
            404,
            "resource_not_found_exception",
            &format!("no API key owned by requesting user found for ID [{id}]"),
        );
    }
    let gone = srv
        .delete("/_security/api_key")
        .basic("other", TEST_PW)
        .json(&json!({ "ids": [theirs_id], "owner": true }))
        .send();
    assert_eq!(
        gone.body["invalidated_api_keys"],
        json!([theirs_id]),
        "{}",
        gone.text
    );
    let dead = srv
        .put(&format!("/_security/api_key/{theirs_id}"))
        .basic("other", TEST_PW)
        .json(&json!({ "metadata": {} }))
        .send();
    assert_es_error(
        &dead,
        400,
        "illegal_argument_exception",
        &format!("cannot update invalidated API key [{theirs_id}]"),
    );
    let by_key = srv
        .put(&format!("/_security/api_key/{theirs_id}"))
        .header(
            "authorization",
            &apikey(create(&srv, "other", "k")["encoded"].as_str().unwrap()),
        )
        .json(&json!({}))
        .send();
    assert_es_error(
        &by_key,
        400,
        "illegal_argument_exception",
        "authentication via API key not supported: only the owner user can update an API key",
    );
    srv.put_user_with_cluster("watcher", TEST_PW, "watcher", &["monitor"]);
    let r = srv
        .put(&format!("/_security/api_key/{theirs_id}"))
        .basic("watcher", TEST_PW)
        .json(&json!({}))
        .send();
    assert_forbidden(
        &r,
        "cluster:admin/xpack/security/api_key/update",
        "watcher",
        "watcher",
        OWN_KEYS,
    );
    let bad = srv
        .put(&format!("/_security/api_key/{theirs_id}"))
        .basic("other", TEST_PW)
        .json(&json!({ "name": "renamed" }))
        .send();
    assert_eq!(bad.status, 400, "{}", bad.text);
    let reserved = srv
        .put(&format!("/_security/api_key/{theirs_id}"))
        .basic("other", TEST_PW)
        .json(&json!({ "metadata": { "_reserved": 1 } }))
        .send();
    assert_error_type(&reserved, 400, "action_request_validation_exception");
}

#[test]
fn bulk_updates_say_what_each_id_became() {
    let srv = setup();
    let a = create(&srv, "target", "a");
    let b = create(&srv, "target", "b");
    let theirs = create(&srv, "other", "c");
    let ids: Vec<&str> = [&a, &b, &theirs]
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    // `a` and `b` already carry that metadata; `c` is someone else's.
    let r = srv
        .post(BULK)
        .basic("target", TEST_PW)
        .json(&json!({ "ids": [ids[0], ids[1], ids[2]], "metadata": { "v": 1 } }))
        .send();
    r.assert_is(
        200,
        &json!({
            "updated": [], "noops": [ids[0], ids[1]],
            "errors": { "count": 1, "details": { ids[2]: {
                "type": "resource_not_found_exception",
                "reason": format!("no API key owned by requesting user found for ID [{}]", ids[2]),
            } } }
        }),
    );
    let changed = srv
        .post(BULK)
        .basic("target", TEST_PW)
        .json(&json!({ "ids": [ids[0], ids[1]], "metadata": { "v": 3 } }))
        .send();
    changed.assert_is(200, &json!({ "updated": [ids[0], ids[1]], "noops": [] }));
    assert_eq!(get_key(&srv, ids[1])["metadata"], json!({ "v": 3 }));
    let empty = srv
        .post(BULK)
        .basic("target", TEST_PW)
        .json(&json!({ "ids": [] }))
        .send();
    assert_es_error(
        &empty,
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: Field [ids] cannot be empty;",
    );
    srv.put_user_with_cluster("watcher", TEST_PW, "watcher", &["monitor"]);
    let r = srv
        .post(BULK)
        .basic("watcher", TEST_PW)
        .json(&json!({ "ids": [ids[0]] }))
        .send();
    assert_forbidden(
        &r,
        "cluster:admin/xpack/security/api_key/bulk_update",
        "watcher",
        "watcher",
        OWN_KEYS,
    );
}

/// `with_limited_by` shows each key's owner's role descriptors, by role
/// name, as Elasticsearch's one-element `limited_by` list; a value that is
/// not a boolean is refused, and an API key may not see them without
/// `manage_api_key`.
#[test]
fn get_with_limited_by_shows_the_owners_descriptors() {
    let srv = setup();
    let r = srv
        .post("/_security/api_key")
        .basic("target", TEST_PW)
        .json(&json!({ "name": "mine" }))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let (id, encoded) = (r.str("id"), r.str("encoded"));
    let path = format!("/_security/api_key?owner=true&id={id}");
    let r = srv
        .get(&format!("{path}&with_limited_by=true"))
        .basic("target", TEST_PW)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let limited_by = &r.body["api_keys"][0]["limited_by"];
    assert_eq!(
        limited_by[0]["own_role"]["cluster"],
        json!(["manage_own_api_key"]),
        "{}",
        r.text
    );
    assert_eq!(limited_by.as_array().map(Vec::len), Some(1), "{}", r.text);
    let r = srv.get(&path).basic("target", TEST_PW).send();
    assert!(
        r.body["api_keys"][0].get("limited_by").is_none(),
        "{}",
        r.text
    );
    let r = srv
        .get(&format!("{path}&with_limited_by=banana"))
        .basic("target", TEST_PW)
        .send();
    assert_es_error_matching(
        &r,
        400,
        "illegal_argument_exception",
        |reason| reason.contains("[banana]"),
        "not a boolean",
    );
    let r = srv
        .get(&format!("{path}&with_limited_by=true"))
        .header("Authorization", &apikey(&encoded))
        .send();
    assert_eq!(r.status, 403, "{}", r.text);
    let r = srv
        .get(&format!("/_security/api_key?id={id}&with_limited_by=true"))
        .admin()
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["api_keys"][0]["limited_by"][0]["own_role"].is_object());
}
