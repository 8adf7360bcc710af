//! Application privileges (`/_security/privilege`), privilege checks
//! (`/_security/user/_has_privileges`, `…/{username}/_has_privileges`),
//! the caller's privileges (`/_security/user/_privileges`) and the
//! dashboard's built-in roles.

use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

const PRIVILEGE: &str = "/_security/privilege";
const HAS: &str = "/_security/user/_has_privileges";

fn myapp() -> Value {
    json!({
        "myapp": {
            "read": {"actions": ["data:read/*", "action:login"], "metadata": {"description": "Read access"}},
            "write": {"actions": ["data:write/*", "action:login"]},
        },
        "otherapp": {"admin": {"actions": ["*"]}},
    })
}

fn put_privileges(srv: &TestServer, body: &Value) -> Resp {
    srv.put(PRIVILEGE).admin().json(body).send()
}

fn apikey_header(r: &Resp) -> String {
    format!("ApiKey {}", r.str("encoded"))
}

#[test]
fn privileges_are_put_read_and_deleted() {
    let srv = TestServer::start();
    let r = put_privileges(&srv, &myapp());
    r.assert_is(
        200,
        &json!({"myapp": {"read": {"created": true}, "write": {"created": true}},
                "otherapp": {"admin": {"created": true}}}),
    );
    let r = srv
        .post(PRIVILEGE)
        .admin()
        .json(&json!({"myapp": {"read": {"application": "myapp", "name": "read", "actions": ["data:read/*"]}}}))
        .send();
    r.assert_is(200, &json!({"myapp": {"read": {"created": false}}}));

    let r = srv.get(PRIVILEGE).admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(keys(&r.body), ["myapp", "otherapp"], "{}", r.text);
    assert_eq!(
        r.body["myapp"]["read"],
        json!({"application": "myapp", "name": "read", "actions": ["data:read/*"], "metadata": {}})
    );
    assert_eq!(
        r.body["myapp"]["write"]["actions"],
        json!(["data:write/*", "action:login"])
    );

    let r = srv.get(&format!("{PRIVILEGE}/myapp")).admin().send();
    assert_eq!(keys(&r.body), ["myapp"], "{}", r.text);
    assert_eq!(keys(&r.body["myapp"]), ["read", "write"], "{}", r.text);
    let r = srv
        .get(&format!("{PRIVILEGE}/myapp,otherapp/write,admin,nope"))
        .admin()
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(keys(&r.body["myapp"]), ["write"], "{}", r.text);
    assert_eq!(keys(&r.body["otherapp"]), ["admin"], "{}", r.text);
    let r = srv.get(&format!("{PRIVILEGE}/my*")).admin().send();
    assert_eq!(keys(&r.body), ["myapp"], "{}", r.text);
    // As in Elasticsearch: 404 only when privilege names were asked for.
    srv.get(&format!("{PRIVILEGE}/nosuchapp"))
        .admin()
        .send()
        .assert_is(200, &json!({}));
    srv.get(&format!("{PRIVILEGE}/myapp/nope"))
        .admin()
        .send()
        .assert_is(404, &json!({}));

    let r = srv
        .delete(&format!("{PRIVILEGE}/myapp/read,nope"))
        .admin()
        .send();
    r.assert_is(
        200,
        &json!({"myapp": {"read": {"found": true}, "nope": {"found": false}}}),
    );
    let r = srv
        .delete(&format!("{PRIVILEGE}/myapp/read"))
        .admin()
        .send();
    r.assert_is(404, &json!({"myapp": {"read": {"found": false}}}));
    let r = srv.get(&format!("{PRIVILEGE}/myapp")).admin().send();
    assert_eq!(keys(&r.body["myapp"]), ["write"], "{}", r.text);
}

#[test]
fn bad_privilege_bodies_are_refused_in_elasticsearchs_shape() {
    let srv = TestServer::start();
    let r = put_privileges(&srv, &json!({"_app": {"read": {"actions": ["data:read"]}}}));
    assert_es_error(
        &r,
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: An application name prefix must match the pattern ^[a-z][A-Za-z0-9]*$ (found '');",
    );
    let r = put_privileges(&srv, &json!({"ab": {"Read": {"actions": ["read"]}}}));
    assert_es_error(
        &r,
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: An application name prefix must be at least 3 characters long (found 'ab');2: Application privilege names must match the pattern ^[a-z][a-zA-Z0-9_.-]*$ (found 'Read');3: action [read] must contain one of [/ , * , :];",
    );
    let r = put_privileges(&srv, &json!({"myapp": {"read": {"actions": "data:read"}}}));
    assert_error_type(&r, 400, "x_content_parse_exception");
    let r = put_privileges(
        &srv,
        &json!({"myapp": {"read": {"actions": ["a:b"], "bogus": 1}}}),
    );
    assert_error_type(&r, 400, "x_content_parse_exception");
    let r = put_privileges(&srv, &json!({"myapp": ["read"]}));
    assert_error_type(&r, 400, "x_content_parse_exception");
    let r = put_privileges(&srv, &json!({"myapp": {"read": {"metadata": {}}}}));
    assert_error_type(&r, 400, "x_content_parse_exception");
    let r = put_privileges(
        &srv,
        &json!({"myapp": {"read": {"actions": ["a:b"], "metadata": {"_x": 1}}}}),
    );
    assert_error_type(&r, 400, "action_request_validation_exception");
    let r = srv
        .put(PRIVILEGE)
        .admin()
        .body("application/json", "{oops")
        .send();
    assert_error_type(&r, 400, "x_content_parse_exception");
    assert_eq!(
        srv.get(PRIVILEGE).admin().send().body,
        json!({}),
        "nothing stored"
    );
}

#[test]
fn privilege_api_needs_manage_or_read_security() {
    let srv = TestServer::start();
    put_privileges(&srv, &myapp());
    srv.put_user_with_cluster("reader", TEST_PW, "reads", &["read_security"]);
    srv.put_user_with_cluster("tokener", TEST_PW, "token_only", &["manage_token"]);
    let r = srv.get(PRIVILEGE).basic("reader", TEST_PW).send();
    assert_eq!(r.status, 200, "{}", r.text);
    let r = srv
        .get(&format!("{PRIVILEGE}/myapp/read"))
        .basic("reader", TEST_PW)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_changes_need_manage_security(
        &srv,
        "privilege",
        (("reader", "reads"), ("tokener", "token_only")),
        (PRIVILEGE, &myapp()),
        &format!("{PRIVILEGE}/myapp/read"),
        PRIVILEGE,
    );
    let r = srv.get(PRIVILEGE).send();
    assert_eq!(r.status, 401, "{}", r.text);
}

#[test]
fn kibana_system_manages_the_kibana_applications_only() {
    let srv = TestServer::start();
    srv.put_user("kibana", TEST_PW, &["kibana_system"]);
    let kibana = json!({"kibana-.kibana": {"space_all": {"actions": ["login:", "space/*"]}}});
    let r = srv
        .put(PRIVILEGE)
        .basic("kibana", TEST_PW)
        .json(&kibana)
        .send();
    r.assert_is(
        200,
        &json!({"kibana-.kibana": {"space_all": {"created": true}}}),
    );
    let r = srv
        .get(&format!("{PRIVILEGE}/kibana-.kibana"))
        .basic("kibana", TEST_PW)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let r = srv
        .put(PRIVILEGE)
        .basic("kibana", TEST_PW)
        .json(&myapp())
        .send();
    assert_eq!(r.status, 403, "{}", r.text);
    let r = srv.get(PRIVILEGE).basic("kibana", TEST_PW).send();
    assert_eq!(
        r.status, 403,
        "all applications is more than kibana-*: {}",
        r.text
    );
}

/// The table of `_has_privileges` through HTTP: one user with two roles.
#[test]
fn has_privileges_answers_for_the_callers_roles() {
    let srv = TestServer::start();
    put_privileges(&srv, &myapp());
    srv.put_role(
        "app_reader",
        json!({
            "cluster": ["monitor"],
            "indices": [{"names": ["logs-*"], "privileges": ["read"]}, {"names": "single", "privileges": ["write"]}],
            "applications": [{"application": "myapp", "privileges": ["read"], "resources": ["space/*"]}],
        }),
    );
    srv.put_role("api_keys", json!({"cluster": ["manage_api_key"]}));
    srv.put_user("joe", TEST_PW, &["app_reader", "api_keys"]);
    let request = json!({
        "cluster": ["monitor", "manage_own_api_key", "manage", "cluster:monitor/health"],
        "index": [
            {"names": ["logs-1", "logs-*"], "privileges": ["read", "indices:data/read/search", "write"]},
            {"names": ["single"], "privileges": ["index", "create_doc", "delete"]},
        ],
        "application": [
            {"application": "myapp", "privileges": ["read", "data:read/x", "write"], "resources": ["space/a", "other"]},
        ],
    });
    let expected = json!({
        "username": "joe",
        "has_all_requested": false,
        "cluster": {"monitor": true, "manage_own_api_key": true, "manage": false, "cluster:monitor/health": true},
        "index": {
            "logs-1": {"read": true, "indices:data/read/search": true, "write": false},
            "logs-*": {"read": true, "indices:data/read/search": true, "write": false},
            "single": {"index": true, "create_doc": true, "delete": true},
        },
        "application": {"myapp": {
            "space/a": {"read": true, "data:read/x": true, "write": false},
            "other": {"read": false, "data:read/x": false, "write": false},
        }},
    });
    for method in [Method::GET, Method::POST] {
        let r = srv
            .req(method, HAS)
            .basic("joe", TEST_PW)
            .json(&request)
            .send();
        r.assert_is(200, &expected);
    }
    // Through a token, the same.
    let tokens = srv.password_grant("joe", TEST_PW);
    let r = srv.post(HAS).bearer(&tokens.access).json(&request).send();
    r.assert_is(200, &expected);

    let all =
        json!({"cluster": ["monitor"], "index": [{"names": ["logs-x"], "privileges": ["read"]}]});
    let r = srv.post(HAS).basic("joe", TEST_PW).json(&all).send();
    assert_eq!(r.body["has_all_requested"], true, "{}", r.text);
    let r = srv.post(HAS).admin().json(&request).send();
    assert_eq!(r.body["has_all_requested"], true, "superuser: {}", r.text);
    assert_eq!(r.body["username"], ADMIN, "{}", r.text);
}

#[test]
fn an_api_key_holds_what_its_descriptors_and_its_owner_both_hold() {
    let srv = TestServer::start();
    srv.put_role(
        "owner_role",
        json!({"cluster": ["manage_api_key", "monitor"], "indices": [{"names": ["*"], "privileges": ["all"]}]}),
    );
    srv.put_user("owner", TEST_PW, &["owner_role"]);
    let r = srv
        .post("/_security/api_key")
        .basic("owner", TEST_PW)
        .json(&json!({"name": "k", "role_descriptors": {"r": {
            "cluster": ["monitor", "manage_security"],
            "indices": [{"names": ["logs-*"], "privileges": ["read"]}],
        }}}))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let limited = apikey_header(&r);
    let r = srv
        .post("/_security/api_key")
        .basic("owner", TEST_PW)
        .json(&json!({"name": "plain"}))
        .send();
    let plain = apikey_header(&r);
    let request = json!({
        "cluster": ["monitor", "manage_security", "manage_api_key"],
        "index": [{"names": ["logs-1", "other"], "privileges": ["read"]}],
    });
    let r = srv
        .post(HAS)
        .header("Authorization", &limited)
        .json(&request)
        .send();
    r.assert_is(
        200,
        &json!({
            "username": "owner",
            "has_all_requested": false,
            // The key's `manage_security` includes `manage_api_key`, which
            // the owner holds.
            "cluster": {"monitor": true, "manage_security": false, "manage_api_key": true},
            "index": {"logs-1": {"read": true}, "other": {"read": false}},
            "application": {},
        }),
    );
    let r = srv
        .post(HAS)
        .header("Authorization", &plain)
        .json(&request)
        .send();
    assert_eq!(
        r.body["cluster"],
        json!({"monitor": true, "manage_security": false, "manage_api_key": true}),
        "{}",
        r.text
    );
    assert_eq!(r.body["index"]["other"]["read"], true, "{}", r.text);

    let r = srv
        .get("/_security/user/_privileges")
        .header("Authorization", &limited)
        .send();
    assert_es_error_containing(
        &r,
        400,
        "illegal_argument_exception",
        "Cannot retrieve privileges for API keys with assigned role descriptors",
    );
    let r = srv
        .get("/_security/user/_privileges")
        .header("Authorization", &plain)
        .send();
    assert_eq!(
        r.body["cluster"],
        json!(["manage_api_key", "monitor"]),
        "{}",
        r.text
    );
}

#[test]
fn another_users_privileges_need_manage_security() {
    let srv = TestServer::start();
    srv.put_role("mon", json!({"cluster": ["monitor"]}));
    srv.put_user("joe", TEST_PW, &["mon"]);
    srv.put_user("ann", TEST_PW, &["mon"]);
    let request = json!({"cluster": ["monitor", "manage"]});
    let expected = json!({
        "username": "joe", "has_all_requested": false,
        "cluster": {"monitor": true, "manage": false}, "index": {}, "application": {},
    });
    srv.post("/_security/user/joe/_has_privileges")
        .basic("joe", TEST_PW)
        .json(&request)
        .send()
        .assert_is(200, &expected);
    srv.get("/_security/user/joe/_has_privileges")
        .admin()
        .json(&request)
        .send()
        .assert_is(200, &expected);
    let r = srv
        .post("/_security/user/joe/_has_privileges")
        .basic("ann", TEST_PW)
        .json(&request)
        .send();
    assert_forbidden(
        &r,
        "cluster:admin/xpack/security/user/has_privileges",
        "ann",
        "mon",
        "manage_security,all",
    );
    let r = srv
        .post("/_security/user/nobody/_has_privileges")
        .admin()
        .json(&request)
        .send();
    assert_es_error(
        &r,
        404,
        "resource_not_found_exception",
        "user [nobody] does not exist",
    );
}

#[test]
fn bad_checks_are_refused() {
    let srv = TestServer::start();
    let r = srv.post(HAS).admin().json(&json!({})).send();
    assert_es_error(
        &r,
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: must specify at least one privilege;",
    );
    let r = srv
        .post(HAS)
        .admin()
        .json(&json!({"cluster": ["manage_everything"]}))
        .send();
    assert_es_error_containing(
        &r,
        400,
        "illegal_argument_exception",
        "unknown cluster privilege [manage_everything]",
    );
    let r = srv
        .post(HAS)
        .admin()
        .json(&json!({"index": [{"names": ["x"], "privileges": ["reed"]}]}))
        .send();
    assert_es_error_containing(
        &r,
        400,
        "illegal_argument_exception",
        "unknown index privilege [reed]",
    );
    let r = srv
        .post(HAS)
        .admin()
        .json(&json!({"clusterx": ["monitor"]}))
        .send();
    assert_error_type(&r, 400, "x_content_parse_exception");
    let r = srv.post(HAS).admin().send();
    assert_eq!(r.status, 400, "{}", r.text);
    let r = srv.post(HAS).json(&json!({"cluster": ["monitor"]})).send();
    assert_eq!(r.status, 401, "{}", r.text);
    let r = srv
        .put(HAS)
        .admin()
        .json(&json!({"cluster": ["monitor"]}))
        .send();
    assert_eq!(r.status, 405, "{}", r.text);
    let r = srv.get("/_security/user").admin().send();
    assert!(r.body.get("_has_privileges").is_none(), "{}", r.text);
}

#[test]
fn user_privileges_merge_the_callers_roles() {
    let srv = TestServer::start();
    srv.put_role(
        "a",
        json!({"cluster": ["monitor", "manage_token"], "run_as": ["x"],
               "indices": [{"names": ["logs-*"], "privileges": ["read"]}]}),
    );
    srv.put_role(
        "b",
        json!({"cluster": ["monitor"],
               "applications": [{"application": "myapp", "privileges": ["read"], "resources": ["*"]}]}),
    );
    srv.put_user("joe", TEST_PW, &["a", "b", "viewer"]);
    let r = srv
        .get("/_security/user/_privileges")
        .basic("joe", TEST_PW)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        keys(&r.body),
        ["cluster", "global", "indices", "applications", "run_as"]
    );
    assert_eq!(r.body["cluster"], json!(["manage_token", "monitor"]));
    assert_eq!(r.body["run_as"], json!(["x"]));
    assert_eq!(
        r.body["indices"][0],
        json!({"names": ["/~(([.]|ilm-history-).*)/"], "privileges": ["read", "view_index_metadata"], "allow_restricted_indices": false}),
        "the built-in role's first, then the stored ones: {}",
        r.text
    );
    let apps = r.body["applications"].as_array().unwrap();
    assert!(
        apps.contains(&json!({"application": "myapp", "privileges": ["read"], "resources": ["*"]}))
    );
    assert!(apps.contains(
        &json!({"application": "kibana-.kibana", "privileges": ["read"], "resources": ["*"]})
    ));
    let r = srv.get("/_security/user/_privileges").admin().send();
    assert_eq!(r.body["cluster"], json!(["all"]), "{}", r.text);
    assert_eq!(r.body["run_as"], json!(["*"]), "{}", r.text);
}

/// The dashboard's built-in roles: all of them but `superuser`.
const DASHBOARD_ROLES: &[&str] = BUILT_IN_ROLES.split_at(1).1;

#[test]
fn the_dashboards_built_in_roles_are_listed_and_read_only() {
    let srv = TestServer::start();
    let r = srv.get("/_security/role").admin().send();
    assert_eq!(keys(&r.body), BUILT_IN_ROLES, "{}", r.text);
    for name in DASHBOARD_ROLES {
        assert_eq!(
            r.body[name]["metadata"]["_reserved"], true,
            "{name}: {}",
            r.text
        );
        let r = srv
            .put(&format!("/_security/role/{name}"))
            .admin()
            .json(&json!({"cluster": ["all"]}))
            .send();
        assert_es_error(
            &r,
            400,
            "illegal_argument_exception",
            &format!("Role [{name}] is reserved and may not be used."),
        );
        let r = srv
            .delete(&format!("/_security/role/{name}"))
            .admin()
            .send();
        assert_eq!(r.status, 400, "{name}: {}", r.text);
    }
    assert_eq!(
        r.body["kibana_admin"]["applications"],
        json!([{"application": "kibana-.kibana", "privileges": ["all"], "resources": ["*"]}])
    );
    assert_eq!(
        r.body["monitoring_user"]["cluster"],
        json!([
            "cluster:monitor/main",
            "cluster:monitor/xpack/info",
            "cluster:monitor/remote/info"
        ])
    );
    assert_eq!(
        r.body["kibana_system"]["global"]["application"]["manage"]["applications"],
        json!(["kibana-*"])
    );
}

#[test]
fn has_privileges_answers_for_the_built_in_roles() {
    let srv = TestServer::start();
    // What a dashboard registers at start: `all` covers `read`.
    put_privileges(
        &srv,
        &json!({"kibana-.kibana": {
            "all": {"actions": ["login:", "version:*", "ui:*", "saved_object:*"]},
            "read": {"actions": ["login:", "version:*", "saved_object:*/get"]},
        }}),
    );
    for name in DASHBOARD_ROLES {
        srv.put_user(&format!("u_{name}"), TEST_PW, &[name]);
    }
    let request = json!({
        "cluster": ["monitor", "manage_token", "manage_security"],
        "index": [{"names": ["logs-1", ".kibana_8", ".monitoring-es-8"], "privileges": ["read", "write"]}],
        "application": [{"application": "kibana-.kibana", "privileges": ["read", "all"], "resources": ["space:default"]}],
    });
    let ask = |name: &str| {
        let r = srv
            .post(HAS)
            .basic(&format!("u_{name}"), TEST_PW)
            .json(&request)
            .send();
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        r.body
    };
    let b = ask("kibana_system");
    assert_eq!(
        b["cluster"],
        json!({"monitor": true, "manage_token": true, "manage_security": false})
    );
    assert_eq!(
        b["index"][".kibana_8"],
        json!({"read": true, "write": true})
    );
    assert_eq!(b["index"]["logs-1"], json!({"read": false, "write": false}));
    assert_eq!(
        b["index"][".monitoring-es-8"],
        json!({"read": true, "write": false})
    );
    let b = ask("kibana_admin");
    assert_eq!(
        b["application"]["kibana-.kibana"]["space:default"],
        json!({"read": true, "all": true})
    );
    assert_eq!(b["cluster"]["monitor"], false);
    let b = ask("viewer");
    assert_eq!(b["index"]["logs-1"], json!({"read": true, "write": false}));
    assert_eq!(
        b["index"][".kibana_8"],
        json!({"read": false, "write": false})
    );
    assert_eq!(
        b["application"]["kibana-.kibana"]["space:default"],
        json!({"read": true, "all": false})
    );
    let b = ask("editor");
    assert_eq!(b["index"]["logs-1"], json!({"read": true, "write": false}));
    assert_eq!(
        b["application"]["kibana-.kibana"]["space:default"],
        json!({"read": true, "all": true})
    );
    let b = ask("monitoring_user");
    assert_eq!(
        b["index"][".monitoring-es-8"],
        json!({"read": true, "write": false})
    );
    assert_eq!(b["cluster"]["monitor"], false);
}

#[test]
fn builtin_privileges_list_the_new_cluster_privileges() {
    let srv = TestServer::start();
    let r = srv.get("/_security/privilege/_builtin").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    let cluster = r.body["cluster"].as_array().unwrap();
    for p in [
        "manage_ilm",
        "manage_index_templates",
        "monitor_ml",
        "delegate_pki",
    ] {
        assert!(cluster.contains(&json!(p)), "{p}: {}", r.text);
    }
}

#[test]
fn roles_with_bad_application_entries_are_refused() {
    let srv = TestServer::start();
    let r = srv.request_put_role(
        "apps",
        json!({"applications": [{"application": "000", "privileges": ["all"], "resources": ["*"]}]}),
    );
    assert_es_error(
        &r,
        400,
        "action_request_validation_exception",
        "Validation Failed: 1: An application name prefix must match the pattern ^[a-z][A-Za-z0-9]*$ (found '000');",
    );
    let r = srv.request_put_role(
        "apps",
        json!({"applications": [{"application": "kibana-*", "privileges": ["read"], "resources": ["*"]}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn privilege_changes_are_audited_without_their_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.json");
    let srv = TestServer::start_with(Options::default().audit_log(&path));
    put_privileges(&srv, &myapp());
    let r = srv
        .delete(&format!("{PRIVILEGE}/myapp/read,nope"))
        .admin()
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let event = |action: &str| -> Value {
        // The writer flushes within a second; ask until then.
        for _ in 0..100 {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(e) = text
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .find(|e| e["event.action"] == action)
            {
                return e;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!(
            "no {action} event in {}",
            std::fs::read_to_string(&path).unwrap_or_default()
        );
    };
    let put = event("put_privileges");
    assert_eq!(put["event.type"], "security_config_change", "{put}");
    let list = put["put"]["privileges"].as_array().expect("a list");
    assert_eq!(list.len(), 3, "{put}");
    assert!(list.contains(
        &json!({"application": "myapp", "name": "read", "actions": ["data:read/*", "action:login"]})
    ));
    assert!(
        !put.to_string().contains("Read access"),
        "no metadata: {put}"
    );
    let delete = event("delete_privileges");
    assert_eq!(
        delete["delete"]["privileges"],
        json!({"application": "myapp", "privileges": ["read"]}),
        "{delete}"
    );
}
