//! API keys: `/_security/api_key` and `Authorization: ApiKey …`;
//! Elasticsearch's api_key/10_basic.yml and api_key/11_invalidation.yml.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::*;

const API_KEY: &str = "/_security/api_key";
const API_KEY_REALM: &str = "_es_api_key";
const INVALIDATE_ACTION: &str = "cluster:admin/xpack/security/api_key/invalidate";
const INVALIDATE_GRANTED_BY: &str = "manage_api_key,manage_security,all";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as i64
}

fn apikey_header(encoded: &str) -> String {
    format!("ApiKey {encoded}")
}

/// Creates a key as `caller`; asserts 200 and the response shape.
fn create_key(srv: &TestServer, caller: (&str, &str), body: Value) -> Value {
    let r = srv
        .post(API_KEY)
        .basic(caller.0, caller.1)
        .json(&body)
        .send();
    assert_eq!(r.status, 200, "create api key: {}", r.text);
    let id = r.str("id");
    let secret = r.str("api_key");
    assert!(!id.is_empty() && !secret.is_empty(), "{}", r.text);
    assert_eq!(r.body["name"], body["name"], "{}", r.text);
    assert_eq!(
        r.str("encoded"),
        STANDARD.encode(format!("{id}:{secret}")),
        "{}",
        r.text
    );
    r.body
}

fn id_of(key: &Value) -> String {
    key["id"].as_str().expect("id").to_owned()
}

fn encoded_of(key: &Value) -> String {
    key["encoded"].as_str().expect("encoded").to_owned()
}

fn auth_apikey(srv: &TestServer, encoded: &str) -> Resp {
    srv.get(AUTHENTICATE)
        .header("authorization", &apikey_header(encoded))
        .send()
}

/// Asserts the 8.x 401 for an API key that does not authenticate, with the
/// `API key: ` detail checked by `detail`.
fn assert_key_refused(r: &Resp, detail: Option<&str>) {
    assert_unauthenticated(
        r,
        "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
    );
    let got = r.body["error"]["additional_unsuccessful_credentials"]
        .as_str()
        .unwrap_or_else(|| panic!("no additional_unsuccessful_credentials in {}", r.text));
    assert!(got.starts_with("API key: "), "{}", r.text);
    assert_eq!(
        r.body["error"]["root_cause"][0]["additional_unsuccessful_credentials"], got,
        "{}",
        r.text
    );
    if let Some(detail) = detail {
        assert_eq!(got, format!("API key: {detail}"), "{}", r.text);
    }
}

fn id_set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|i| i.as_str().expect("a string id").to_owned())
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn invalidate_as(srv: &TestServer, caller: (&str, &str), body: Value) -> Resp {
    srv.delete(API_KEY)
        .basic(caller.0, caller.1)
        .json(&body)
        .send()
}

/// Asserts a 200 invalidation with exactly these id sets.
fn assert_invalidated(r: &Resp, invalidated: &[&str], previously: &[&str]) {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        id_set(&r.body["invalidated_api_keys"]),
        set(invalidated),
        "{}",
        r.text
    );
    assert_eq!(
        id_set(&r.body["previously_invalidated_api_keys"]),
        set(previously),
        "{}",
        r.text
    );
    assert_eq!(r.body["error_count"], 0, "{}", r.text);
}

fn get_keys(srv: &TestServer, caller: (&str, &str), query: &str) -> Resp {
    srv.get(&format!("{API_KEY}?{query}"))
        .basic(caller.0, caller.1)
        .send()
}

fn listed_ids(r: &Resp) -> BTreeSet<String> {
    r.body["api_keys"]
        .as_array()
        .unwrap_or_else(|| panic!("no api_keys in {}", r.text))
        .iter()
        .map(|k| k["id"].as_str().expect("id").to_owned())
        .collect()
}

const USER: &str = "api_key_user";

/// api_key/10_basic.yml's setup.
fn basic_setup(srv: &TestServer) {
    srv.put_user_with_cluster(USER, TEST_PW, "admin_role", &["manage_api_key"]);
}

// ---- 1. create ----

#[test]
fn create_requires_a_name_with_post_and_put() {
    let srv = TestServer::start();
    for method in [Method::POST, Method::PUT] {
        for body in [
            json!({}),
            json!({ "name": "" }),
            json!({ "expiration": "1d" }),
        ] {
            let r = srv.req(method.clone(), API_KEY).admin().json(&body).send();
            assert_es_error_containing(
                &r,
                400,
                "action_request_validation_exception",
                "api key name is required",
            );
        }
    }
}

#[test]
fn create_with_and_without_expiration() {
    let srv = TestServer::start();
    // POST with an expiration of one day.
    let before = now_ms();
    let r = srv
        .post(API_KEY)
        .admin()
        .json(&json!({ "name": "day-key", "expiration": "1d" }))
        .send();
    let after = now_ms();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.keys(),
        ["id", "name", "expiration", "api_key", "encoded"],
        "{}",
        r.text
    );
    assert_eq!(r.body["name"], "day-key");
    let exp = r.body["expiration"]
        .as_i64()
        .unwrap_or_else(|| panic!("expiration is not epoch ms: {}", r.text));
    let day = 86_400_000;
    assert!(
        exp >= before + day - 1_000 && exp <= after + day + 1_000,
        "expiration {exp} not about now+1d ({before}..{after})"
    );
    assert_eq!(
        r.str("encoded"),
        STANDARD.encode(format!("{}:{}", r.str("id"), r.str("api_key")))
    );

    // PUT without an expiration: no expiration field at all.
    let r = srv
        .put(API_KEY)
        .admin()
        .json(&json!({ "name": "forever" }))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.keys(), ["id", "name", "api_key", "encoded"], "{}", r.text);
    assert_eq!(r.body["name"], "forever");
    assert_eq!(
        r.str("encoded"),
        STANDARD.encode(format!("{}:{}", r.str("id"), r.str("api_key")))
    );
    // And the key works.
    let r = auth_apikey(&srv, &r.str("encoded"));
    assert_eq!(r.status, 200, "{}", r.text);
}

// ---- 2. authenticate ----

#[test]
fn authenticate_with_an_api_key() {
    let srv = TestServer::start();
    basic_setup(&srv);
    let key = create_key(&srv, (USER, TEST_PW), json!({ "name": "my-api-key" }));
    let r = auth_apikey(&srv, &encoded_of(&key));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], USER, "{}", r.text);
    assert_eq!(r.body["roles"], json!([]), "{}", r.text);
    let realm = json!({ "name": API_KEY_REALM, "type": API_KEY_REALM });
    assert_eq!(r.body["authentication_realm"], realm, "{}", r.text);
    assert_eq!(r.body["lookup_realm"], realm, "{}", r.text);
    assert_eq!(r.body["authentication_type"], "api_key", "{}", r.text);
    assert_eq!(
        r.body["api_key"],
        json!({ "id": id_of(&key), "name": "my-api-key" }),
        "{}",
        r.text
    );
    assert!(r.body.get("token").is_none(), "{}", r.text);
}

#[test]
fn bad_api_keys_are_refused_with_401() {
    let srv = TestServer::start();
    let key = create_key(&srv, (ADMIN, ADMIN_PW), json!({ "name": "good" }));
    let id = id_of(&key);
    let secret = key["api_key"].as_str().unwrap().to_owned();

    // Not base64.
    let r = auth_apikey(&srv, "!!!not-base64!!!");
    assert_key_refused(&r, None);
    // Base64 without a colon.
    let r = auth_apikey(&srv, &STANDARD.encode("no-colon-here"));
    assert_key_refused(&r, None);
    // Empty credentials.
    let r = srv.auth_header("ApiKey ");
    assert_ne!(r.status, 500, "{}", r.text);
    assert_eq!(r.status, 401, "{}", r.text);
    // An unknown id.
    let r = auth_apikey(&srv, &STANDARD.encode(format!("nosuchid:{secret}")));
    assert_key_refused(&r, Some("unable to find apikey with id nosuchid"));
    // A wrong secret.
    let r = auth_apikey(
        &srv,
        &STANDARD.encode(format!("{id}:{}", tampered(&secret))),
    );
    assert_key_refused(&r, Some("invalid credentials"));
    // The real key still works.
    let r = auth_apikey(&srv, &encoded_of(&key));
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn expired_key_is_refused() {
    let srv = TestServer::start_with(Options::default().manual_clock());
    let key = create_key(
        &srv,
        (ADMIN, ADMIN_PW),
        json!({ "name": "short", "expiration": "1s" }),
    );
    let r = auth_apikey(&srv, &encoded_of(&key));
    assert_eq!(r.status, 200, "{}", r.text);
    srv.advance(1_000);
    let r = auth_apikey(&srv, &encoded_of(&key));
    assert_key_refused(&r, Some("api key is expired"));
}

#[test]
fn invalidated_key_is_refused() {
    let srv = TestServer::start();
    let key = create_key(&srv, (ADMIN, ADMIN_PW), json!({ "name": "doomed" }));
    let id = id_of(&key);
    assert_eq!(auth_apikey(&srv, &encoded_of(&key)).status, 200);
    let r = invalidate_as(&srv, (ADMIN, ADMIN_PW), json!({ "ids": [id] }));
    assert_invalidated(&r, &[&id], &[]);
    let r = auth_apikey(&srv, &encoded_of(&key));
    assert_key_refused(&r, Some("api key has been invalidated"));
}

// ---- 3. api_key/10_basic.yml ----

/// After the basic setup, api_key/10_basic.yml's key for `USER`, its role
/// descriptors' index privileges under `indices_field`.
fn create_my_api_key(srv: &TestServer, indices_field: &str) -> Value {
    basic_setup(srv);
    let indices =
        |names: &str, privilege: &str| json!([{ "names": [names], "privileges": [privilege] }]);
    create_key(
        srv,
        (USER, TEST_PW),
        json!({
            "name": "my-api-key",
            "expiration": "1d",
            "role_descriptors": {
                "role-a": { "cluster": ["all"], indices_field: indices("index-a", "read") },
                "role-b": { "cluster": ["manage"], indices_field: indices("index-b", "all") }
            }
        }),
    )
}

#[test]
fn es_create_with_role_descriptors_and_authenticate() {
    let srv = TestServer::start();
    let key = create_my_api_key(&srv, "indices");
    assert!(key["expiration"].is_i64(), "{key}");
    let r = auth_apikey(&srv, &encoded_of(&key));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], USER);
    assert_eq!(r.body["roles"], json!([]));
    assert_eq!(r.body["authentication_realm"]["name"], API_KEY_REALM);
    assert_eq!(r.body["authentication_realm"]["type"], API_KEY_REALM);
    assert_eq!(r.body["api_key"]["id"], key["id"]);
    assert_eq!(r.body["api_key"]["name"], "my-api-key");

    let r = srv
        .post(&format!("{API_KEY}/{}/_clear_cache", id_of(&key)))
        .basic(USER, TEST_PW)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["_nodes"]["failed"], 0, "{}", r.text);
}

/// api_key/10_basic.yml's exact body: Elasticsearch's role descriptor
/// parser accepts `index` as a synonym of `indices`.
#[test]
fn es_create_with_role_descriptors_using_index_synonym() {
    let srv = TestServer::start();
    let key = create_my_api_key(&srv, "index");
    let r = auth_apikey(&srv, &encoded_of(&key));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], USER);
}

#[test]
fn es_get_api_key() {
    let srv = TestServer::start();
    basic_setup(&srv);
    let key = create_key(
        &srv,
        (USER, TEST_PW),
        json!({ "name": "my-api-key-2", "expiration": "1d" }),
    );
    let id = id_of(&key);
    let r = get_keys(&srv, (USER, TEST_PW), &format!("id={id}"));
    assert_eq!(r.status, 200, "{}", r.text);
    let keys = r.body["api_keys"].as_array().expect("api_keys");
    assert_eq!(keys.len(), 1, "{}", r.text);
    assert_eq!(keys[0]["id"], id.as_str());
    assert_eq!(keys[0]["name"], "my-api-key-2");
    assert_eq!(keys[0]["username"], USER);
    assert_eq!(keys[0]["invalidated"], false);
    assert_eq!(keys[0]["realm"], "default_native");
    assert_eq!(keys[0]["expiration"], key["expiration"]);
    let creation = keys[0]["creation"].as_i64().expect("creation in ms");
    assert!((creation - now_ms()).abs() < 60_000, "{creation}");

    let r = get_keys(&srv, (USER, TEST_PW), "owner=true");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["api_keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["api_keys"][0]["id"], id.as_str());
}

#[test]
fn es_invalidate_api_keys_by_ids() {
    let srv = TestServer::start();
    basic_setup(&srv);
    let ids: Vec<String> = (1..=3)
        .map(|i| {
            id_of(&create_key(
                &srv,
                (USER, TEST_PW),
                json!({ "name": format!("key-{i}") }),
            ))
        })
        .collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let r = invalidate_as(&srv, (USER, TEST_PW), json!({ "ids": ids }));
    assert_invalidated(&r, &refs, &[]);
    assert_eq!(
        r.keys(),
        [
            "invalidated_api_keys",
            "previously_invalidated_api_keys",
            "error_count"
        ],
        "{}",
        r.text
    );
    let r = invalidate_as(&srv, (USER, TEST_PW), json!({ "ids": ids }));
    assert_invalidated(&r, &[], &refs);
    // The listing shows them invalidated.
    let r = get_keys(&srv, (USER, TEST_PW), &format!("id={}", ids[0]));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["api_keys"][0]["invalidated"], true, "{}", r.text);
}

#[test]
fn get_unknown_id_is_404_with_empty_list() {
    let srv = TestServer::start();
    basic_setup(&srv);
    create_key(&srv, (USER, TEST_PW), json!({ "name": "exists" }));
    let r = get_keys(&srv, (USER, TEST_PW), "id=does-not-exist");
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.body, json!({ "api_keys": [] }), "{}", r.text);
}

#[test]
fn get_by_name_prefix_username_and_realm() {
    let srv = TestServer::start();
    basic_setup(&srv);
    let a = id_of(&create_key(
        &srv,
        (USER, TEST_PW),
        json!({ "name": "deploy-a" }),
    ));
    let b = id_of(&create_key(
        &srv,
        (USER, TEST_PW),
        json!({ "name": "deploy-b" }),
    ));
    let other = id_of(&create_key(
        &srv,
        (USER, TEST_PW),
        json!({ "name": "other" }),
    ));
    let admins = id_of(&create_key(
        &srv,
        (ADMIN, ADMIN_PW),
        json!({ "name": "deploy-admin" }),
    ));

    let r = get_keys(&srv, (ADMIN, ADMIN_PW), "name=deploy*");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(listed_ids(&r), set(&[&a, &b, &admins]), "{}", r.text);

    let r = get_keys(&srv, (ADMIN, ADMIN_PW), "name=deploy-a");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(listed_ids(&r), set(&[&a]), "{}", r.text);

    let r = get_keys(&srv, (ADMIN, ADMIN_PW), &format!("username={USER}"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(listed_ids(&r), set(&[&a, &b, &other]), "{}", r.text);
    for k in r.body["api_keys"].as_array().unwrap() {
        assert_eq!(k["username"], USER, "{}", r.text);
    }

    let r = get_keys(
        &srv,
        (ADMIN, ADMIN_PW),
        &format!("username={USER}&name=deploy*"),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(listed_ids(&r), set(&[&a, &b]), "{}", r.text);

    let r = get_keys(&srv, (USER, TEST_PW), "realm_name=default_native");
    assert_eq!(r.status, 200, "{}", r.text);
    let listed = listed_ids(&r);
    for id in [&a, &b, &other] {
        assert!(listed.contains(id.as_str()), "{id} missing: {}", r.text);
    }
    for k in r.body["api_keys"].as_array().unwrap() {
        assert_eq!(k["realm"], "default_native", "{}", r.text);
    }

    let r = get_keys(&srv, (ADMIN, ADMIN_PW), "realm_name=no_such_realm");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body, json!({ "api_keys": [] }), "{}", r.text);
}

// ---- 4. api_key/11_invalidation.yml ----

const MANAGER: &str = "api_key_manager";
const USER1: &str = "api_key_user_1";

fn invalidation_setup(srv: &TestServer) {
    srv.put_role("admin_role", json!({ "cluster": ["manage_api_key"] }));
    srv.put_role("user_role", json!({ "cluster": ["manage_own_api_key"] }));
    srv.put_user(MANAGER, TEST_PW, &["admin_role"]);
    srv.put_user(USER1, TEST_PW, &["user_role"]);
}

fn assert_user1_forbidden(r: &Resp) {
    assert_forbidden(
        r,
        INVALIDATE_ACTION,
        USER1,
        "user_role",
        INVALIDATE_GRANTED_BY,
    );
}

#[test]
fn es_invalidation_by_username_owner_and_realm() {
    let srv = TestServer::start();
    invalidation_setup(&srv);
    let manager = (MANAGER, TEST_PW);
    let user1 = (USER1, TEST_PW);
    let manager_key = id_of(&create_key(&srv, manager, json!({ "name": "manager-key" })));
    let user1_key = id_of(&create_key(&srv, user1, json!({ "name": "user1-key" })));

    // The manager invalidates user1's keys by username.
    let r = invalidate_as(&srv, manager, json!({ "username": USER1 }));
    assert_invalidated(&r, &[&user1_key], &[]);

    // user1 may not invalidate the manager's keys.
    let r = invalidate_as(&srv, user1, json!({ "username": MANAGER }));
    assert_user1_forbidden(&r);
    // ... nor by id of someone else's key.
    let r = invalidate_as(&srv, user1, json!({ "ids": [manager_key] }));
    assert_user1_forbidden(&r);
    // The manager's key is still valid.
    let r = get_keys(&srv, manager, &format!("id={manager_key}"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["api_keys"][0]["invalidated"], false, "{}", r.text);

    // user1 invalidates their own (new) key with owner=true.
    let user1_key2 = id_of(&create_key(&srv, user1, json!({ "name": "user1-key-2" })));
    let r = invalidate_as(&srv, user1, json!({ "owner": true }));
    assert_invalidated(&r, &[&user1_key2], &[&user1_key]);

    // By realm: user1 is refused, the manager invalidates what remains.
    let user1_key3 = id_of(&create_key(&srv, user1, json!({ "name": "user1-key-3" })));
    let r = invalidate_as(&srv, user1, json!({ "realm_name": "default_native" }));
    assert_user1_forbidden(&r);
    let r = invalidate_as(&srv, manager, json!({ "realm_name": "default_native" }));
    assert_invalidated(&r, &[&manager_key, &user1_key3], &[&user1_key, &user1_key2]);
}

#[test]
fn es_manager_invalidates_own_keys() {
    let srv = TestServer::start();
    invalidation_setup(&srv);
    let manager = (MANAGER, TEST_PW);
    let user1 = (USER1, TEST_PW);
    let m1 = id_of(&create_key(&srv, manager, json!({ "name": "m1" })));
    let u1 = id_of(&create_key(&srv, user1, json!({ "name": "u1" })));
    let r = invalidate_as(&srv, manager, json!({ "owner": true }));
    assert_invalidated(&r, &[&m1], &[]);
    // user1's key is untouched.
    let r = get_keys(&srv, user1, "owner=true");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(listed_ids(&r), set(&[&u1]));
    assert_eq!(r.body["api_keys"][0]["invalidated"], false, "{}", r.text);
}

// ---- 5. a key's privileges are the intersection with its owner's ----

#[test]
fn superuser_key_limited_by_its_descriptors() {
    let srv = TestServer::start();
    let key = create_key(
        &srv,
        (ADMIN, ADMIN_PW),
        json!({ "name": "token-only", "role_descriptors": { "r": { "cluster": ["manage_token"] } } }),
    );
    let header = apikey_header(&encoded_of(&key));
    let r = srv
        .post(TOKEN)
        .header("authorization", &header)
        .json(&json!({ "grant_type": "client_credentials" }))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    r.nonempty("access_token");

    assert_user_put_refused(&srv, &header, json!([]), "elastic");
}

/// Creating a user with the API key in `header` (with `roles`) is refused
/// as beyond the authority of the key of `owner`, and creates nothing.
fn assert_user_put_refused(srv: &TestServer, header: &str, roles: Value, owner: &str) {
    let r = srv
        .put("/_security/user/x")
        .header("authorization", header)
        .json(&json!({ "password": TEST_PW, "roles": roles }))
        .send();
    let refusal = format!(
        "action [cluster:admin/xpack/security/user/put] is unauthorized for user [{owner}]"
    );
    assert_es_error_matching(
        &r,
        403,
        "security_exception",
        |m| m.starts_with(&refusal),
        &refusal,
    );
    let r = srv.get("/_security/user/x").admin().send();
    assert_eq!(r.status, 404, "nothing was created: {}", r.text);
}

#[test]
fn key_cannot_exceed_its_owners_privileges() {
    let srv = TestServer::start();
    srv.put_user_with_cluster("limited", TEST_PW, "own_keys", &["manage_own_api_key"]);
    let key = create_key(
        &srv,
        ("limited", TEST_PW),
        json!({ "name": "greedy", "role_descriptors": { "r": { "cluster": ["manage_security"] } } }),
    );
    let header = apikey_header(&encoded_of(&key));
    assert_user_put_refused(&srv, &header, json!(["superuser"]), "limited");
}

// ---- 6. DELETE validation ----

#[test]
fn invalidate_requires_a_selector() {
    let srv = TestServer::start();
    let r = invalidate_as(&srv, (ADMIN, ADMIN_PW), json!({}));
    assert_es_error_matching(
        &r,
        400,
        "action_request_validation_exception",
        |m| {
            m.contains("One of [api key id(s), api key name, username, realm name] must be specified if [owner] flag is false")
        },
        "one of ... must be specified",
    );
    let r = invalidate_as(
        &srv,
        (ADMIN, ADMIN_PW),
        json!({ "owner": false, "ids": [] }),
    );
    assert_eq!(r.status, 400, "{}", r.text);
}

#[test]
fn invalidate_rejects_unknown_fields() {
    let srv = TestServer::start();
    let r = invalidate_as(&srv, (ADMIN, ADMIN_PW), json!({ "ids": ["x"], "bogus": 1 }));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["status"], 400, "{}", r.text);
    assert!(r.body["error"]["type"].is_string(), "{}", r.text);
    assert!(r.body["error"]["reason"].is_string(), "{}", r.text);
}

// ---- 7. concurrency ----

/// Waits (yielding, for at most a minute) until `done` holds.
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::yield_now();
    }
}

#[test]
fn invalidation_takes_effect_for_every_later_request() {
    const THREADS: usize = 8;
    /// Requests started after the invalidation answered, at least.
    const AFTER: usize = 200;
    let srv = TestServer::start();
    let key = create_key(&srv, (ADMIN, ADMIN_PW), json!({ "name": "hot" }));
    let id = id_of(&key);
    let header = apikey_header(&encoded_of(&key));
    let barrier = Arc::new(Barrier::new(THREADS + 1));
    let stop = Arc::new(AtomicBool::new(false));
    // Set once the invalidation has answered: a request a worker starts
    // after seeing it started after the answer.
    let answered = Arc::new(AtomicBool::new(false));
    let ok_before = Arc::new(AtomicUsize::new(0));
    let started_after = Arc::new(AtomicUsize::new(0));
    let base = srv.base_url().to_owned();

    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (barrier, stop, answered) = (
                Arc::clone(&barrier),
                Arc::clone(&stop),
                Arc::clone(&answered),
            );
            let (ok_before, started_after) = (Arc::clone(&ok_before), Arc::clone(&started_after));
            let base = base.clone();
            let header = header.clone();
            std::thread::spawn(move || {
                let client = client();
                let mut seen = Vec::new();
                barrier.wait();
                while !stop.load(Ordering::SeqCst) {
                    let after = answered.load(Ordering::SeqCst);
                    let r = Req::new(&client, &base, Method::GET, AUTHENTICATE)
                        .header("authorization", &header)
                        .send();
                    if after {
                        started_after.fetch_add(1, Ordering::SeqCst);
                    } else if r.status == 200 {
                        ok_before.fetch_add(1, Ordering::SeqCst);
                    }
                    seen.push((after, r.status));
                }
                seen
            })
        })
        .collect();

    barrier.wait();
    wait_until("a request succeeded before the invalidation", || {
        ok_before.load(Ordering::SeqCst) > 0
    });
    let r = invalidate_as(&srv, (ADMIN, ADMIN_PW), json!({ "ids": [id] }));
    answered.store(true, Ordering::SeqCst);
    assert_invalidated(&r, &[&id], &[]);
    wait_until("requests started after the invalidation", || {
        started_after.load(Ordering::SeqCst) >= AFTER
    });
    stop.store(true, Ordering::SeqCst);

    let seen: Vec<(bool, u16)> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("a worker thread"))
        .collect();
    assert!(
        seen.iter().all(|(_, s)| *s == 200 || *s == 401),
        "unexpected statuses: {:?}",
        seen.iter().map(|(_, s)| s).collect::<BTreeSet<_>>()
    );
    let after: Vec<u16> = seen.iter().filter(|(a, _)| *a).map(|(_, s)| *s).collect();
    let late_ok = after.iter().filter(|s| **s == 200).count();
    assert_eq!(
        late_ok,
        0,
        "{late_ok} of {} requests started after the invalidation answered still authenticated",
        after.len()
    );
    // And afterwards, the exact refusal.
    let r = auth_apikey(&srv, &encoded_of(&key));
    assert_key_refused(&r, Some("api key has been invalidated"));
}
