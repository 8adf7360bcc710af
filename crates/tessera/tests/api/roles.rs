//! Roles: `/_security/role/…`; Elasticsearch's roles/10_basic.yml and
//! roles/20_get_missing.yml.

use serde_json::json;

use crate::support::*;

#[test]
fn put_creates_then_updates() {
    let srv = TestServer::start();
    let r = srv.request_put_role("ops", json!({ "cluster": ["monitor"] }));
    r.assert_is(200, &json!({ "role": { "created": true } }));
    let r = srv
        .post("/_security/role/ops")
        .admin()
        .json(&json!({ "cluster": ["manage_token"] }))
        .send();
    r.assert_is(200, &json!({ "role": { "created": false } }));
    assert_eq!(srv.role("ops")["cluster"], json!(["manage_token"]));
}

#[test]
fn get_one_many_and_all() {
    let srv = TestServer::start();
    let a = json!({ "cluster": ["manage_token"], "metadata": { "team": "a" } });
    let b = json!({ "cluster": ["monitor"], "run_as": ["someone"] });
    srv.put_role("role_a", a);
    srv.put_role("role_b", b);
    let expected_a = json!({
        "cluster": ["manage_token"], "indices": [], "applications": [], "run_as": [],
        "metadata": { "team": "a" }, "transient_metadata": { "enabled": true },
    });

    let r = srv.get("/_security/role/role_a").admin().send();
    r.assert_is(200, &json!({ "role_a": expected_a }));

    let r = srv.get("/_security/role/role_a,role_b,nope").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(keys(&r.body), ["role_a", "role_b"], "{}", r.text);
    assert_eq!(r.body["role_b"]["run_as"], json!(["someone"]));

    let r = srv.get("/_security/role").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        keys(&r.body),
        [&BUILT_IN_ROLES[..], &["role_a", "role_b"]].concat(),
        "{}",
        r.text
    );
    assert_eq!(r.body["superuser"]["cluster"], json!(["all"]));
    assert_eq!(r.body["superuser"]["metadata"]["_reserved"], true);
    assert_eq!(r.body["role_a"], expected_a);

    // The built-in role can be fetched by name too.
    let r = srv.get("/_security/role/superuser").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(keys(&r.body), ["superuser"]);
}

#[test]
fn delete_role() {
    let srv = TestServer::start();
    assert_eq!(
        srv.request_put_role("ops", json!({ "cluster": ["manage_token"] }))
            .status,
        200
    );
    srv.put_user("operator", TEST_PW, &["ops"]);
    assert_eq!(srv.client_credentials("operator", TEST_PW).len(), 55);
    let r = srv.delete("/_security/role/ops").admin().send();
    r.assert_is(200, &json!({ "found": true }));
    let r = srv.delete("/_security/role/ops").admin().send();
    r.assert_is(404, &json!({ "found": false }));
    srv.assert_missing("/_security/role/ops");
    // The user's role is gone, and with it the privilege.
    let r = srv.request_client_credentials("operator", TEST_PW);
    assert_forbidden(
        &r,
        "cluster:admin/xpack/security/token/create",
        "operator",
        "ops",
        "manage_token,manage_security,all",
    );
}

#[test]
fn superuser_role_is_reserved() {
    let srv = TestServer::start();
    let put = srv.request_put_role("superuser", json!({ "cluster": ["monitor"] }));
    let delete = srv.delete("/_security/role/superuser").admin().send();
    for r in [put, delete] {
        assert_es_error(
            &r,
            400,
            "illegal_argument_exception",
            "Role [superuser] is reserved and may not be used.",
        );
    }
    srv.assert_basic_ok(ADMIN, ADMIN_PW);
    let r = srv.get("/_security/role/superuser").admin().send();
    assert_eq!(r.body["superuser"]["cluster"], json!(["all"]), "{}", r.text);
}

#[test]
fn unknown_cluster_privilege_is_rejected() {
    let srv = TestServer::start();
    let r = srv.request_put_role("typo", json!({ "cluster": ["manage_tokn"] }));
    assert_es_error_matching(
        &r,
        400,
        "illegal_argument_exception",
        |m| m.starts_with("unknown cluster privilege [manage_tokn]"),
        "unknown cluster privilege [manage_tokn]…",
    );
    srv.assert_missing("/_security/role/typo");
}

#[test]
fn invalid_role_bodies_are_rejected() {
    let srv = TestServer::start();
    let r = srv.request_put_role("bad", json!({ "clusterx": ["all"] }));
    assert_error_type(&r, 400, "x_content_parse_exception");
    assert!(
        r.body["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("clusterx"),
        "{}",
        r.text
    );
    let r = srv.request_put_role("bad", json!({ "cluster": "all" }));
    assert_error_type(&r, 400, "x_content_parse_exception");
    let r = srv.request_put_role("%20leading", json!({ "cluster": ["all"] }));
    assert_error_type(&r, 400, "action_request_validation_exception");
    let r = srv.get("/_security/role").admin().send();
    assert_eq!(keys(&r.body), BUILT_IN_ROLES, "{}", r.text);
}

#[test]
fn es_roles_10_basic() {
    let srv = TestServer::start();
    let r = srv.request_put_role(
        "admin_role",
        json!({
            "cluster": ["all"],
            "metadata": { "key1": "val1", "key2": "val2" },
            "indices": [{ "names": "*", "privileges": ["all"] }],
        }),
    );
    r.assert_is(200, &json!({ "role": { "created": true } }));
    let r = srv.request_put_role(
        "backwards_role",
        json!({
            "indices": [{ "privileges": ["all"], "names": "*" }],
            "cluster": ["all"],
        }),
    );
    r.assert_is(200, &json!({ "role": { "created": true } }));
    let r = srv.request_put_user(
        "joe",
        json!({ "password": "s3krit-password", "roles": ["admin_role"] }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // joe, with admin_role (cluster: all), can call a cluster-level API.
    let r = srv
        .get("/_security/user")
        .basic("joe", "s3krit-password")
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let r = srv.get("/_security/role/admin_role").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    let role = &r.body["admin_role"];
    assert_eq!(role["cluster"][0], "all", "{}", r.text);
    assert_eq!(role["metadata"]["key1"], "val1", "{}", r.text);
    assert_eq!(role["metadata"]["key2"], "val2", "{}", r.text);
    assert_eq!(role["indices"][0]["privileges"][0], "all", "{}", r.text);
}

/// `indices.0.names.0` in roles/10_basic.yml: a role put with `"names": "*"`
/// reads back with `names` as an array.
#[test]
fn es_roles_10_basic_index_names_read_back_as_array() {
    let srv = TestServer::start();
    let r = srv.request_put_role(
        "admin_role",
        json!({ "cluster": ["all"], "indices": [{ "names": "*", "privileges": ["all"] }] }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(srv.role("admin_role")["indices"][0]["names"], json!(["*"]));
}

#[test]
fn es_roles_20_get_missing() {
    let srv = TestServer::start();
    for path in ["/_security/role/foo", "/_security/role/foo,bar"] {
        let r = srv.get(path).admin().send();
        assert_eq!((r.status, &r.body), (404, &json!({})), "{path}: {}", r.text);
    }
}

/// Names starting with `_` are reserved, for users and roles alike, so an
/// API path such as `/_security/user/_has_privileges` is never a name.
#[test]
fn names_starting_with_an_underscore_are_refused() {
    let srv = TestServer::start();
    let r = srv.request_put_user("_joe", json!({ "password": TEST_PW, "roles": [] }));
    assert_es_error(
        &r,
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: Username [_joe] is reserved and may not be used.;",
    );
    srv.assert_missing("/_security/user/_joe");
    let r = srv.request_put_role("_admins", json!({ "cluster": ["all"] }));
    assert_es_error(
        &r,
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: Role [_admins] is reserved and may not be used.;",
    );
    srv.assert_missing("/_security/role/_admins");
    // An underscore elsewhere is an ordinary character.
    srv.put_user("joe_smith", TEST_PW, &[]);
    srv.put_role("ops_team", json!({ "cluster": ["monitor"] }));
}
