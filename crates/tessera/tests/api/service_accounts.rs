//! Service accounts and service tokens: `/_security/service…` in
//! Elasticsearch 8's shapes (its service_accounts/10_basic.yml), their
//! authorization, and `Bearer <service token>` authenticating as the
//! account until the token is deleted.

use serde_json::json;

use crate::support::*;

const SERVICE: &str = "/_security/service";
const KIBANA_TOKENS: &str = "/_security/service/elastic/kibana/credential/token";
const KIBANA_CREDENTIALS: &str = "/_security/service/elastic/kibana/_credentials";

fn create(srv: &TestServer, name: &str) -> String {
    let r = srv.post(&format!("{KIBANA_TOKENS}/{name}")).admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["created"], true, "{}", r.text);
    assert_eq!(r.body["token"]["name"], name, "{}", r.text);
    assert_eq!(keys(&r.body["token"]), ["name", "value"]);
    token_field(&r, "value")
}

/// `token.<field>` of a creation's answer.
fn token_field(r: &Resp, field: &str) -> String {
    r.body["token"][field]
        .as_str()
        .unwrap_or_else(|| panic!("no token.{field} in {}", r.text))
        .to_owned()
}

fn token_names(srv: &TestServer) -> Vec<String> {
    let r = srv.get(KIBANA_CREDENTIALS).admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    keys(&r.body["tokens"])
        .into_iter()
        .map(str::to_owned)
        .collect()
}

#[test]
fn accounts_are_described_in_elasticsearch_shapes() {
    let srv = TestServer::start();
    let all = srv.get(SERVICE).admin().send();
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(
        all.keys(),
        [
            "elastic/enterprise-search-server",
            "elastic/fleet-server",
            "elastic/kibana"
        ]
    );
    // Each account's descriptor is the domain's table, whole.
    for (principal, shown) in all.body.as_object().unwrap() {
        let account = tessera_domain::service_account::find(principal).unwrap();
        assert_eq!(
            shown["role_descriptor"]["cluster"],
            json!(account.cluster),
            "{principal}"
        );
    }
    let kibana = &all.body["elastic/kibana"]["role_descriptor"];
    assert!(kibana["cluster"]
        .as_array()
        .unwrap()
        .contains(&json!("manage_token")));
    assert_eq!(
        all.body["elastic/fleet-server"]["role_descriptor"]["cluster"],
        json!(["monitor", "manage_own_api_key"])
    );

    let elastic = srv.get(&format!("{SERVICE}/elastic")).admin().send();
    assert_eq!((elastic.status, &elastic.body), (200, &all.body));
    let one = srv
        .get(&format!("{SERVICE}/elastic/fleet-server"))
        .admin()
        .send();
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.keys(), ["elastic/fleet-server"]);
    for unknown in ["/other", "/elastic/nope", "/other/kibana"] {
        srv.get(&format!("{SERVICE}{unknown}"))
            .admin()
            .send()
            .assert_is(200, &json!({}));
    }

    // Reading needs read_security, manage_service_account or above.
    srv.put_user_with_cluster("reader", TEST_PW, "reads", &["read_security"]);
    assert_eq!(srv.get(SERVICE).basic("reader", TEST_PW).send().status, 200);
    srv.put_user_with_cluster("tok", TEST_PW, "tokens", &["manage_token"]);
    let r = srv.get(SERVICE).basic("tok", TEST_PW).send();
    assert_forbidden(
        &r,
        "cluster:admin/xpack/security/service_account/get",
        "tok",
        "tokens",
        "manage_service_account,read_security,manage_security,all",
    );
}

#[test]
fn tokens_are_created_listed_and_deleted() {
    let srv = TestServer::start();
    create(&srv, "api-token-1");
    // PUT with a name, POST without one (a generated `token_…` name).
    let r = srv
        .put(&format!("{KIBANA_TOKENS}/api-token-2"))
        .admin()
        .send();
    assert_eq!(
        (r.status, &r.body["created"]),
        (200, &json!(true)),
        "{}",
        r.text
    );
    let r = srv.post(KIBANA_TOKENS).admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    let generated = token_field(&r, "name");
    assert!(
        generated.starts_with("token_") && generated.len() == 26,
        "{generated}"
    );

    let r = srv.get(KIBANA_CREDENTIALS).admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    let mut tokens = serde_json::Map::new();
    for name in ["api-token-1", "api-token-2", generated.as_str()] {
        tokens.insert(name.into(), json!({}));
    }
    assert_eq!(
        r.body,
        json!({
            "service_account": "elastic/kibana",
            "count": 3,
            "tokens": tokens,
            "nodes_credentials": {
                "_nodes": {"total": 1, "successful": 1, "failed": 0},
                "file_tokens": {},
            },
        })
    );

    // A name is taken once per account; the same name elsewhere is fine.
    let r = srv
        .post(&format!("{KIBANA_TOKENS}/api-token-1"))
        .admin()
        .send();
    assert_es_error(
        &r,
        409,
        "version_conflict_engine_exception",
        "[service_account_token-elastic/kibana/api-token-1]: version conflict, document already exists (current version [1])",
    );
    let r = srv
        .post("/_security/service/elastic/fleet-server/credential/token/api-token-1")
        .admin()
        .send();
    assert_eq!(r.status, 200, "{}", r.text);

    // Elasticsearch's name rule, checked before anything else.
    for bad in ["_hidden", "has.dot", &"x".repeat(257)] {
        let r = srv.post(&format!("{KIBANA_TOKENS}/{bad}")).admin().send();
        assert_es_error(
            &r,
            400,
            "action_request_validation_exception",
            &format!(
                "Validation Failed: 1: invalid service token name [{bad}]. service account token name must have at least 1 character and at most 256 characters that are alphanumeric (A-Z, a-z, 0-9) or hyphen (-) or underscore (_). It must not begin with an underscore (_).;"
            ),
        );
    }
    let r = srv
        .post("/_security/service/elastic/nope/credential/token/t")
        .admin()
        .send();
    assert_es_error(
        &r,
        400,
        "illegal_argument_exception",
        "service account [elastic/nope] does not exist",
    );
    let r = srv
        .get("/_security/service/elastic/nope/_credentials")
        .admin()
        .send();
    assert_es_error(
        &r,
        404,
        "resource_not_found_exception",
        "service account [elastic/nope] does not exist",
    );

    // Delete: found, then 404 not found; also for an unknown account.
    let r = srv
        .delete(&format!("{KIBANA_TOKENS}/api-token-2"))
        .admin()
        .send();
    r.assert_is(200, &json!({"found": true}));
    let r = srv
        .delete(&format!("{KIBANA_TOKENS}/api-token-2"))
        .admin()
        .send();
    r.assert_is(404, &json!({"found": false}));
    let r = srv
        .delete("/_security/service/elastic/nope/credential/token/t")
        .admin()
        .send();
    r.assert_is(404, &json!({"found": false}));
    assert_eq!(token_names(&srv), ["api-token-1", generated.as_str()]);

    // Privileges: manage_service_account makes and deletes; read_security
    // only reads.
    srv.put_user_with_cluster("sa", TEST_PW, "sa", &["manage_service_account"]);
    let r = srv
        .post(&format!("{KIBANA_TOKENS}/by-sa"))
        .basic("sa", TEST_PW)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    srv.put_user_with_cluster("reader", TEST_PW, "reads", &["read_security"]);
    assert_eq!(
        srv.get(KIBANA_CREDENTIALS)
            .basic("reader", TEST_PW)
            .send()
            .status,
        200
    );
    let r = srv
        .post(&format!("{KIBANA_TOKENS}/by-reader"))
        .basic("reader", TEST_PW)
        .send();
    assert_forbidden(
        &r,
        "cluster:admin/xpack/security/service_account/token/create",
        "reader",
        "reads",
        "manage_service_account,manage_security,all",
    );
    let r = srv
        .delete(&format!("{KIBANA_TOKENS}/by-sa"))
        .basic("reader", TEST_PW)
        .send();
    assert_forbidden(
        &r,
        "cluster:admin/xpack/security/service_account/token/delete",
        "reader",
        "reads",
        "manage_service_account,manage_security,all",
    );
    // The token values are never listed.
    let listed = srv.get(KIBANA_CREDENTIALS).admin().send();
    assert!(!listed.text.contains("AAEAA"), "{}", listed.text);
}

fn authenticate_as_service(srv: &TestServer, token: &str) -> Resp {
    srv.get(AUTHENTICATE).bearer(token).send()
}

#[test]
fn a_service_token_authenticates_as_its_account_until_deleted() {
    let srv = TestServer::start();
    let token = create(&srv, "kibana-1");
    assert!(token.starts_with("AAEAA"), "{token}");

    let r = authenticate_as_service(&srv, &token);
    assert_eq!(r.status, 200, "{}", r.text);
    let realm = json!({"name": "_service_account", "type": "_service_account"});
    assert_eq!(
        r.body,
        json!({
            "username": "elastic/kibana",
            "roles": [],
            "full_name": "Service account - elastic/kibana",
            "email": null,
            "token": {"name": "kibana-1", "type": "_service_account_index"},
            "metadata": {"_elastic_service_account": true},
            "enabled": true,
            "authentication_realm": realm,
            "lookup_realm": realm,
            "authentication_type": "token",
        })
    );
    assert_eq!(
        r.keys(),
        [
            "username",
            "roles",
            "full_name",
            "email",
            "token",
            "metadata",
            "enabled",
            "authentication_realm",
            "lookup_realm",
            "authentication_type"
        ]
    );

    // The account's descriptor grants its privileges: Kibana logs users
    // in with the password grant (manage_token) ...
    srv.put_user("alice", TEST_PW, &["viewer"]);
    let r = srv
        .post("/_security/oauth2/token")
        .bearer(&token)
        .json(&json!({"grant_type": "password", "username": "alice", "password": TEST_PW}))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let alice = r.str("access_token");
    srv.assert_bearer_ok(&alice, "alice");
    // ... but may not mint a token for the account itself, nor manage users.
    let r = srv
        .post("/_security/oauth2/token")
        .bearer(&token)
        .json(&json!({"grant_type": "client_credentials"}))
        .send();
    assert_es_error(
        &r,
        400,
        "illegal_argument_exception",
        "OAuth2 token creation is not supported for service accounts",
    );
    let r = srv.delete("/_security/user/foo").bearer(&token).send();
    assert_es_error(
        &r,
        403,
        "security_exception",
        "action [cluster:admin/xpack/security/user/delete] is unauthorized for service account [elastic/kibana], this action is granted by the cluster privileges [manage_security,all]",
    );

    // A wrong secret, an unknown name or account: the one 401.
    let presented = |account: &str, name: &str, secret: &str| {
        use base64::Engine;
        let mut raw = vec![0u8, 1, 0, 1];
        raw.extend_from_slice(format!("{account}/{name}:{secret}").as_bytes());
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw)
    };
    for (account, name) in [
        ("elastic/kibana", "kibana-1"),
        ("elastic/kibana", "nope"),
        ("elastic/nope", "kibana-1"),
    ] {
        let r = authenticate_as_service(&srv, &presented(account, name, "wrong-secret-0123456789"));
        assert_unauthenticated(
            &r,
            &format!("failed to authenticate service account [{account}] with token name [{name}]"),
        );
    }
    // A bearer that only starts like one is an ordinary bad bearer.
    let r = authenticate_as_service(&srv, "AAEAAnotbase64!");
    assert_unsuccessful_credentials(&r, "oauth2 token: invalid token");

    // Deleted: refused by the very next request.
    srv.delete(&format!("{KIBANA_TOKENS}/kibana-1"))
        .admin()
        .send()
        .assert_is(200, &json!({"found": true}));
    let r = authenticate_as_service(&srv, &token);
    assert_unauthenticated(
        &r,
        "failed to authenticate service account [elastic/kibana] with token name [kibana-1]",
    );
    // A new token of the same name has a new secret: the old value stays
    // refused.
    let renewed = create(&srv, "kibana-1");
    assert_ne!(renewed, token);
    assert_eq!(authenticate_as_service(&srv, &token).status, 401);
    assert_eq!(authenticate_as_service(&srv, &renewed).status, 200);
}

/// A server with a fleet-server service token, and the token.
fn fleet_server() -> (TestServer, String) {
    let srv = TestServer::start();
    let r = srv
        .post("/_security/service/elastic/fleet-server/credential/token/fleet-1")
        .admin()
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let token = token_field(&r, "value");
    (srv, token)
}

/// The API key `name` the bearer of `token` creates: its answer.
fn key_of(srv: &TestServer, token: &str, name: &str) -> Resp {
    let r = srv
        .post("/_security/api_key")
        .bearer(token)
        .json(&json!({"name": name}))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    r
}

#[test]
fn fleet_server_creates_api_keys_with_its_token() {
    let (srv, token) = fleet_server();
    // manage_own_api_key: its own keys, which it may read back.
    let encoded = key_of(&srv, &token, "agent-1").str("encoded");
    let r = srv
        .get(AUTHENTICATE)
        .header("Authorization", &format!("ApiKey {encoded}"))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], "elastic/fleet-server", "{}", r.text);
    // Its privileges are the account's: no token creation.
    let r = srv
        .post("/_security/oauth2/token")
        .bearer(&token)
        .json(&json!({"grant_type": "password", "username": ADMIN, "password": ADMIN_PW}))
        .send();
    assert_es_error(
        &r,
        403,
        "security_exception",
        "action [cluster:admin/xpack/security/token/create] is unauthorized for service account [elastic/fleet-server], this action is granted by the cluster privileges [manage_token,manage_security,all]",
    );
}

/// The audit lines written so far that match `want`, waiting (at most two
/// seconds: the writer flushes within one) until there is one.
fn audit_event(
    path: &std::path::Path,
    want: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let found = text
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line"))
            .find(|e| want(e));
        if let Some(e) = found {
            return e;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no such event in:\n{text}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn the_audit_log_names_the_service_account_realm_and_never_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.json");
    let srv = TestServer::start_with(Options::default().audit_log(&path));
    let token = create(&srv, "audited");
    let e = audit_event(&path, |e| e["event.action"] == "create_service_token");
    assert_eq!(
        e["create"],
        json!({"service_token": {"namespace": "elastic", "service": "kibana", "name": "audited"}}),
        "{e}"
    );

    let r = srv
        .get(AUTHENTICATE)
        .bearer(&token)
        .header("X-Request-Id", "svc-good")
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let e = audit_event(&path, |e| {
        e["request.id"] == "svc-good" && e["event.action"] == "authentication_success"
    });
    assert_eq!(e["user.name"], "elastic/kibana", "{e}");
    assert_eq!(e["user.realm"], "_service_account", "{e}");

    srv.delete(&format!("{KIBANA_TOKENS}/audited"))
        .admin()
        .send()
        .assert_is(200, &json!({"found": true}));
    audit_event(&path, |e| e["event.action"] == "delete_service_token");
    let r = srv
        .get(AUTHENTICATE)
        .bearer(&token)
        .header("X-Request-Id", "svc-gone")
        .send();
    assert_eq!(r.status, 401, "{}", r.text);
    let e = audit_event(&path, |e| {
        e["request.id"] == "svc-gone" && e["event.action"] == "realm_authentication_failed"
    });
    assert_eq!(
        (&e["user.name"], &e["realm"]),
        (&json!("elastic/kibana"), &json!("_service_account")),
        "{e}"
    );
    let e = audit_event(&path, |e| {
        e["request.id"] == "svc-gone" && e["event.action"] == "authentication_failed"
    });
    assert_eq!(e["user.name"], "elastic/kibana", "{e}");

    srv.stop();
    let text = std::fs::read_to_string(&path).unwrap();
    let secret = token_secret(&token);
    assert!(!text.contains(&token) && !text.contains(&secret), "{text}");
}

/// The secret part of a service token's value.
fn token_secret(value: &str) -> String {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(value)
        .expect("base64");
    let text = String::from_utf8(raw[4..].to_vec()).expect("UTF-8");
    text.split_once(':').expect("name:secret").1.to_owned()
}

/// A key of the fleet-server service account owns the account's keys, not
/// those of a native user who bears the same name: `owner` reaches only
/// keys of the key owner's own realm, listed and invalidated alike.
#[test]
fn a_service_accounts_key_does_not_own_a_native_namesakes_keys() {
    let (srv, token) = fleet_server();
    let r = key_of(&srv, &token, "agent-1");
    let (agent_id, agent) = (r.str("id"), r.str("encoded"));
    srv.put_role("own_keys", json!({"cluster": ["manage_own_api_key"]}));
    let r = srv
        .put("/_security/user/elastic%2Ffleet-server")
        .admin()
        .json(&json!({"password": TEST_PW, "roles": ["own_keys"]}))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let r = srv
        .post("/_security/api_key")
        .basic("elastic/fleet-server", TEST_PW)
        .json(&json!({"name": "namesakes-key"}))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let namesakes = r.str("encoded");
    let as_agent = |req: tessera_testkit::http::Req| {
        req.header("Authorization", &format!("ApiKey {agent}"))
            .send()
    };
    let r = as_agent(srv.get("/_security/api_key?owner=true"));
    assert_eq!(r.status, 200, "{}", r.text);
    let names: Vec<&str> = r.body["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["agent-1"], "{}", r.text);
    let r = as_agent(
        srv.delete("/_security/api_key")
            .json(&json!({"owner": true})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body["invalidated_api_keys"],
        json!([agent_id]),
        "{}",
        r.text
    );
    let r = srv
        .get(AUTHENTICATE)
        .header("Authorization", &format!("ApiKey {namesakes}"))
        .send();
    assert_eq!(r.status, 200, "the namesake's key lives: {}", r.text);
}
