//! Role mappings: `/_security/role_mapping/…` in Elasticsearch's shapes
//! (its role_mapping/10_basic.yml and 20_get_missing.yml), validation,
//! authorization; and the built-in role `kibana_system`.

use serde_json::{json, Value};

use crate::support::*;

const PATH: &str = "/_security/role_mapping";

fn put_mapping(srv: &TestServer, name: &str, body: &Value) -> Resp {
    srv.put(&format!("{PATH}/{name}")).admin().json(body).send()
}

fn everything_mapping() -> Value {
    json!({
        "roles": ["superuser"], "enabled": true,
        "rules": {"all": [
            {"any": [{"field": {"dn": "*,ou=admin,dc=example,dc=com"}},
                     {"field": {"username": ["es-admin", "es-system"]}}]},
            {"field": {"groups": "cn=people,dc=example,dc=com"}},
            {"field": {"realm.name": "saml1"}},
            {"except": {"field": {"metadata.terminated_date": null}}}]},
        "metadata": {"version": 1},
    })
}

#[test]
fn put_get_and_delete_in_elasticsearch_shapes() {
    let srv = TestServer::start();
    let r = put_mapping(&srv, "everything", &everything_mapping());
    assert_eq!(
        (r.status, &r.body),
        (200, &json!({"role_mapping": {"created": true}})),
        "{}",
        r.text
    );
    let r = srv
        .post(&format!("{PATH}/everything"))
        .admin()
        .json(&everything_mapping())
        .send();
    assert_eq!(
        (r.status, &r.body),
        (200, &json!({"role_mapping": {"created": false}})),
        "{}",
        r.text
    );
    let one_value = json!({"roles": ["viewer"], "enabled": false,
        "rules": {"field": {"groups": ["admins"]}}});
    let r = put_mapping(&srv, "viewers", &one_value);
    assert_eq!(r.status, 200, "{}", r.text);

    let r = srv.get(&format!("{PATH}/everything")).admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    let mut shown = everything_mapping();
    // Elasticsearch answers `enabled` first and holds a single field value bare.
    shown["rules"]["all"][0]["any"][1] = json!({"field": {"username": ["es-admin", "es-system"]}});
    assert_eq!(r.body, json!({"everything": shown}), "{}", r.text);
    assert_eq!(r.keys(), ["everything"]);
    assert_eq!(
        keys(&r.body["everything"]),
        ["enabled", "roles", "rules", "metadata"]
    );

    let r = srv.get(&format!("{PATH}/viewers")).admin().send();
    assert_eq!(
        r.body["viewers"],
        json!({"enabled": false, "roles": ["viewer"],
               "rules": {"field": {"groups": "admins"}}, "metadata": {}}),
        "{}",
        r.text
    );
    let r = srv
        .get(&format!("{PATH}/viewers,nope,everything"))
        .admin()
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.keys(), ["viewers", "everything"], "{}", r.text);
    let r = srv.get(PATH).admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.keys(), ["everything", "viewers"], "{}", r.text);

    let r = srv.get(&format!("{PATH}/nope,other")).admin().send();
    assert_eq!((r.status, &r.body), (404, &json!({})), "{}", r.text);

    let r = srv.delete(&format!("{PATH}/everything")).admin().send();
    assert_eq!(
        (r.status, &r.body),
        (200, &json!({"found": true})),
        "{}",
        r.text
    );
    let r = srv.delete(&format!("{PATH}/everything")).admin().send();
    assert_eq!(
        (r.status, &r.body),
        (404, &json!({"found": false})),
        "{}",
        r.text
    );
    let r = srv.get(&format!("{PATH}/everything")).admin().send();
    assert_eq!((r.status, &r.body), (404, &json!({})), "{}", r.text);
    let r = srv.delete(&format!("{PATH}/viewers")).admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    let r = srv.get(PATH).admin().send();
    assert_eq!(
        (r.status, &r.body),
        (200, &json!({})),
        "none at all is not an error"
    );
}

#[test]
fn invalid_mappings_get_400_in_the_elasticsearch_envelope() {
    let srv = TestServer::start();
    let rules = json!({"field": {"username": "*"}});
    let p = "failed to parse rules expression.";
    #[rustfmt::skip]
    let table: Vec<(Value, &str, String)> = vec![
        (json!({"roles": ["r"], "rules": rules, "enabled": true, "bogus": 1}),
            "x_content_parse_exception", "[role-mapping] unknown field [bogus]".into()),
        (json!({"roles": ["r"], "rules": rules}),
            "parsing_exception", "failed to parse role-mapping [m]. missing field [enabled]".into()),
        (json!({"roles": ["r"], "enabled": true}),
            "parsing_exception", "failed to parse role-mapping [m]. missing field [rules]".into()),
        (json!({"rules": rules, "enabled": true}),
            "parsing_exception", "failed to parse role-mapping [m]. missing field [roles]".into()),
        (json!({"roles": [], "rules": rules, "enabled": true, "metadata": {"_private": 1}}),
            "action_request_validation_exception",
            "Validation Failed: 1: role-mapping roles or role-templates are missing;2: metadata keys may not start with [_];".into()),
        (json!({"roles": ["r"], "enabled": true, "rules": {"except": {"field": {"username": "x"}}}}),
            "parse_exception", format!("{p} field [except] is not allowed within [m]")),
        (json!({"roles": ["r"], "enabled": true, "rules": {"field": {"username": "a", "dn": "b"}}}),
            "parse_exception", format!("{p} object [field] contains multiple fields")),
        (json!({"roles": ["r"], "enabled": true, "rules": {"field": {"username": {"x": 1}}}}),
            "parse_exception", format!("{p} expected a field value but found [START_OBJECT] instead")),
        (json!({"roles": ["r"], "enabled": true, "rules": {"nope": []}}),
            "parse_exception", format!("{p} field [nope] is not recognised in object [m]")),
        (json!({"roles": ["r"], "enabled": true, "rules": {"field": {"username": "/a)(b/"}}}),
            "illegal_argument_exception", "invalid pattern [/a)(b/]: unopened group".into()),
        (json!({"roles": ["r"], "enabled": true, "rules": {"field": {"username": []}}}),
            "illegal_argument_exception", "null or empty values ([])".into()),
        (json!({"role_templates": [{"template": {"source": "{{username}}"}}], "enabled": true, "rules": rules}),
            "illegal_argument_exception",
            "role_templates are not supported by Tessera; give the role names in [roles]".into()),
    ];
    for (body, kind, reason) in table {
        let r = put_mapping(&srv, "m", &body);
        assert_es_error(&r, 400, kind, &reason);
    }
    let r = srv
        .put(&format!("{PATH}/m"))
        .admin()
        .body("application/json", "{\"roles\": [\"r\"], ")
        .send();
    assert_es_error_matching(
        &r,
        400,
        "x_content_parse_exception",
        |reason| reason.starts_with("request body is not valid JSON"),
        "a JSON syntax error",
    );
    let r = srv.put(&format!("{PATH}/m")).admin().send();
    assert_es_error(&r, 400, "parse_exception", "request body is required");
    let r = srv.get(PATH).admin().send();
    assert_eq!((r.status, &r.body), (200, &json!({})), "nothing was stored");
}

#[test]
fn managing_mappings_needs_manage_security_and_reading_read_security() {
    let srv = TestServer::start();
    srv.put_role("reader", json!({"cluster": ["read_security"]}));
    srv.put_role("tokens", json!({"cluster": ["manage_token"]}));
    srv.put_user("reader", TEST_PW, &["reader"]);
    srv.put_user("tokens", TEST_PW, &["tokens"]);
    let r = put_mapping(&srv, "m", &everything_mapping());
    assert_eq!(r.status, 200, "{}", r.text);

    let r = srv
        .get(&format!("{PATH}/m"))
        .basic("reader", TEST_PW)
        .send();
    assert_eq!(r.status, 200, "read_security reads mappings: {}", r.text);
    let m = format!("{PATH}/m");
    assert_changes_need_manage_security(
        &srv,
        "role_mapping",
        (("reader", "reader"), ("tokens", "tokens")),
        (&m, &everything_mapping()),
        &m,
        PATH,
    );
    let r = srv.get(PATH).send();
    assert_eq!(r.status, 401, "{}", r.text);
    let r = srv.get(&format!("{PATH}/m")).admin().send();
    assert_eq!(r.body["m"]["roles"], json!(["superuser"]), "unchanged");
}

#[test]
fn kibana_system_is_a_built_in_role_for_a_dashboard() {
    let srv = TestServer::start();
    let r = srv.get("/_security/role/kibana_system").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    let cluster = r.body["kibana_system"]["cluster"].as_array().unwrap();
    for p in ["monitor", "manage_token", "manage_saml", "manage_oidc"] {
        assert!(cluster.contains(&json!(p)), "{p}: {}", r.text);
    }
    // Reserved and read-only, as every built-in role is (privileges.rs).

    srv.put_user("kibana", TEST_PW, &["kibana_system"]);
    let pair = srv.password_grant_by(("kibana", TEST_PW), "kibana", TEST_PW);
    let tokens = Tokens::from_body(&pair);
    let r = srv.refresh_as(("kibana", TEST_PW), &tokens.refresh);
    assert_eq!(r.status, 200, "kibana_system refreshes: {}", r.text);
    let r = srv.get("/_tessera/metrics").basic("kibana", TEST_PW).send();
    assert_ne!(r.status, 403, "monitor reads the metrics: {}", r.text);
    let r = srv
        .put(&format!("{PATH}/m"))
        .basic("kibana", TEST_PW)
        .json(&everything_mapping())
        .send();
    assert_forbidden(
        &r,
        "cluster:admin/xpack/security/role_mapping/put",
        "kibana",
        "kibana_system",
        "manage_security,all",
    );
}

#[test]
fn manage_saml_refreshes_and_invalidates_tokens_but_does_not_mint_them() {
    let srv = TestServer::start();
    srv.put_role("saml", json!({"cluster": ["manage_saml"]}));
    srv.put_user("facilitator", TEST_PW, &["saml"]);
    let r = srv
        .post(TOKEN)
        .basic("facilitator", TEST_PW)
        .json(&json!({"grant_type": "client_credentials"}))
        .send();
    assert_forbidden(
        &r,
        "cluster:admin/xpack/security/token/create",
        "facilitator",
        "saml",
        "manage_token,manage_security,all",
    );
    let tokens = srv.password_grant(ADMIN, ADMIN_PW);
    let r = srv
        .delete(TOKEN)
        .basic("facilitator", TEST_PW)
        .json(&json!({"token": tokens.access}))
        .send();
    assert_eq!((r.status, &r.body), (200, &counts(1, 0)), "{}", r.text);
}
