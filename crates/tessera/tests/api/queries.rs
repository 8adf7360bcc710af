//! `/_security/_query/api_key` and `/_security/_query/user`: the query
//! DSL subset, who sees what, paging and sorting, and the refusals.

use serde_json::{json, Value};

use crate::support::*;

const QUERY_KEYS: &str = "/_security/_query/api_key";
const QUERY_USERS: &str = "/_security/_query/user";

fn create(srv: &TestServer, user: &str, name: &str, metadata: Value) -> String {
    let r = srv
        .post("/_security/api_key")
        .basic(user, TEST_PW)
        .json(&json!({ "name": name, "metadata": metadata }))
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    r.str("id")
}

fn names(r: &Resp, list: &str, field: &str) -> Vec<String> {
    assert_eq!(r.status, 200, "{}", r.text);
    r.body[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} in {}", r.text))
        .iter()
        .map(|k| k[field].as_str().unwrap().to_owned())
        .collect()
}

/// `user`'s query `body` to `path`.
fn query(srv: &TestServer, path: &str, user: &str, body: Value) -> Resp {
    srv.post(path).basic(user, TEST_PW).json(&body).send()
}

/// A manager (`manage_api_key`), two owners (`manage_own_api_key`) with
/// keys, and a user without API key privileges.
fn setup() -> TestServer {
    let srv = TestServer::start();
    srv.put_user_with_cluster("manager", TEST_PW, "manager", &["manage_api_key"]);
    srv.put_user_with_cluster("ann", TEST_PW, "own", &["manage_own_api_key"]);
    srv.put_user("bob", TEST_PW, &["own"]);
    srv.put_user_with_cluster("watcher", TEST_PW, "watcher", &["monitor"]);
    create(&srv, "ann", "alpha", json!({ "env": "prod" }));
    create(&srv, "ann", "beta", json!({ "env": "dev" }));
    create(&srv, "bob", "alphabet", json!({ "env": "prod" }));
    srv
}

#[test]
fn managers_see_every_key_and_owners_their_own() {
    let srv = setup();
    let all = query(&srv, QUERY_KEYS, "manager", json!({}));
    assert_eq!(
        names(&all, "api_keys", "name"),
        ["alpha", "beta", "alphabet"]
    );
    assert_eq!(
        (all.body["total"].clone(), all.body["count"].clone()),
        (json!(3), json!(3))
    );
    let own = srv.get(QUERY_KEYS).basic("ann", TEST_PW).send();
    assert_eq!(names(&own, "api_keys", "name"), ["alpha", "beta"]);
    let prod = query(
        &srv,
        QUERY_KEYS,
        "bob",
        json!({ "query": { "term": { "metadata.env": "prod" } } }),
    );
    assert_eq!(
        names(&prod, "api_keys", "name"),
        ["alphabet"],
        "bob sees only his"
    );
    let r = query(&srv, QUERY_KEYS, "watcher", json!({}));
    assert_forbidden(
        &r,
        "cluster:admin/xpack/security/api_key/query",
        "watcher",
        "watcher",
        "read_security,manage_api_key,manage_security,all",
    );
}

#[test]
fn queries_filter_sort_and_page() {
    let srv = setup();
    let q = |body: Value| query(&srv, QUERY_KEYS, "manager", body);
    let r = q(json!({ "query": { "bool": {
        "must": [{ "prefix": { "name": "alpha" } }],
        "must_not": [{ "term": { "username": "bob" } }] } } }));
    assert_eq!(names(&r, "api_keys", "name"), ["alpha"]);
    let r = q(json!({ "query": { "wildcard": { "name": "*ph*" } },
                      "sort": [{ "name": { "order": "desc" } }] }));
    assert_eq!(names(&r, "api_keys", "name"), ["alphabet", "alpha"]);
    assert_eq!(r.body["api_keys"][0]["_sort"], json!(["alphabet"]));
    let r = q(
        json!({ "query": { "range": { "creation": { "gte": "2000-01-01", "lte": "now" } } },
                      "sort": ["name"], "size": 2 }),
    );
    assert_eq!(names(&r, "api_keys", "name"), ["alpha", "alphabet"]);
    assert_eq!(
        (r.body["total"].clone(), r.body["count"].clone()),
        (json!(3), json!(2))
    );
    let after = q(json!({ "sort": ["name"], "search_after": ["alphabet"] }));
    assert_eq!(names(&after, "api_keys", "name"), ["beta"]);
    let r = q(json!({ "query": { "bool": { "should": [
        { "term": { "name": "beta" } }, { "terms": { "username": ["bob"] } } ] } },
        "from": 1, "sort": "creation" }));
    assert_eq!(names(&r, "api_keys", "name"), ["alphabet"]);
    let r = q(json!({ "query": { "exists": { "field": "invalidation" } } }));
    assert_eq!(r.body["total"], 0, "{}", r.text);
}

#[test]
fn bad_queries_are_400_in_elasticsearchs_words() {
    let srv = setup();
    let q = |body: Value| query(&srv, QUERY_KEYS, "manager", body);
    assert_es_error(
        &q(json!({ "query": { "term": { "api_key_hash": "x" } } })),
        400,
        "illegal_argument_exception",
        "Field [api_key_hash] is not allowed for querying or aggregation",
    );
    assert_es_error(
        &q(json!({ "query": { "match_phrase": { "name": "x" } } })),
        400,
        "illegal_argument_exception",
        "Query type [match_phrase] is not currently supported in this context",
    );
    assert_es_error(
        &q(json!({ "query": { "nonsense": {} } })),
        400,
        "parsing_exception",
        "unknown query [nonsense]",
    );
    assert_es_error(
        &q(json!({ "size": -1 })),
        400,
        "illegal_argument_exception",
        "[size] parameter cannot be negative, found [-1]",
    );
    assert_error_type(
        &q(json!({ "from": 9000, "size": 2000 })),
        400,
        "illegal_argument_exception",
    );
    assert_error_type(&q(json!({ "aggs": {} })), 400, "x_content_parse_exception");
    assert_error_type(&q(json!([1])), 400, "x_content_parse_exception");
    let r = srv
        .post(&format!("{QUERY_KEYS}?bogus=1"))
        .basic("manager", TEST_PW)
        .send();
    assert_error_type(&r, 400, "illegal_argument_exception");
}

#[test]
fn users_are_queried_with_read_security() {
    let srv = setup();
    srv.put_user_with_cluster("reader", TEST_PW, "reader", &["read_security"]);
    let q = |body: Value| query(&srv, QUERY_USERS, "reader", body);
    let r = q(json!({ "query": { "term": { "roles": "own" } }, "sort": [{ "username": "desc" }] }));
    assert_eq!(names(&r, "users", "username"), ["bob", "ann"]);
    assert_eq!(r.body["users"][0]["_sort"], json!(["bob"]));
    assert_eq!(r.body["total"], 2);
    let all = srv.get(QUERY_USERS).basic("reader", TEST_PW).send();
    assert!(names(&all, "users", "username").contains(&ADMIN.to_string()));
    assert_es_error(
        &q(json!({ "sort": "email" })),
        400,
        "illegal_argument_exception",
        "sorting is not supported for field [email]",
    );
    assert_es_error(
        &q(json!({ "query": { "term": { "name": "x" } } })),
        400,
        "illegal_argument_exception",
        "Field [name] is not allowed for querying or aggregation",
    );
    let r = srv
        .post(QUERY_USERS)
        .basic("ann", TEST_PW)
        .json(&json!({}))
        .send();
    assert_forbidden(
        &r,
        "cluster:admin/xpack/security/user/query",
        "ann",
        "own",
        "read_security,manage_security,all",
    );
}
