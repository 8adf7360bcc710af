//! `GET /` (the root API, as an Elasticsearch 8 node answers it) and
//! `GET /_security/privilege/_builtin`.

use reqwest::Method;
use serde_json::Value;

use crate::support::*;

#[test]
fn the_root_answers_as_an_elasticsearch_node() {
    let srv = TestServer::start_with(Options::default().node_name("node-1").cluster_name("c1"));
    srv.put_user_with_cluster("plain", TEST_PW, "nothing", &[]);
    let r = srv.get("/").basic("plain", TEST_PW).send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-elastic-product"), Some("Elasticsearch"));
    assert_eq!(
        keys(&r.body),
        ["name", "cluster_name", "cluster_uuid", "version", "tagline"]
    );
    assert_eq!(r.body["name"], "node-1");
    assert_eq!(r.body["cluster_name"], "c1");
    assert_eq!(r.body["tagline"], "You Know, for Search");
    let v = &r.body["version"];
    assert_eq!(
        keys(v),
        [
            "number",
            "build_flavor",
            "build_type",
            "build_hash",
            "build_date",
            "build_snapshot",
            "lucene_version",
            "minimum_wire_compatibility_version",
            "minimum_index_compatibility_version",
        ]
    );
    assert_eq!(v["number"], "8.17.0");
    assert_eq!(v["build_flavor"], "default");
    assert_eq!(v["build_snapshot"], false);
    let uuid = r.body["cluster_uuid"].as_str().unwrap().to_owned();
    assert_eq!(uuid.len(), 22, "{uuid}");

    let head = client()
        .request(Method::HEAD, srv.url("/"))
        .header("authorization", basic_header(ADMIN, ADMIN_PW))
        .send()
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["x-elastic-product"], "Elasticsearch");
    assert_eq!(head.text().unwrap(), "");

    let r = srv.get("/").send();
    assert_unauthenticated(
        &r,
        "missing authentication credentials for REST request [/]",
    );
    assert_eq!(r.header("x-elastic-product"), Some("Elasticsearch"));

    // The UUID is the store's: a restart on the same data keeps it.
    let dir = tempfile::tempdir().unwrap();
    let first = TestServer::start_in(dir.path(), Options::default());
    let a = first.get("/").admin().send().body["cluster_uuid"].clone();
    first.stop();
    let second = TestServer::start_in(dir.path(), Options::default());
    let b = second.get("/").admin().send().body["cluster_uuid"].clone();
    assert!(a.is_string());
    assert_eq!(a, b, "the cluster UUID survives a restart");
    assert_ne!(Value::String(uuid), a, "each store has its own");
}

#[test]
fn builtin_privileges_list_what_tessera_knows() {
    let srv = TestServer::start();
    let r = srv.get("/_security/privilege/_builtin").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(keys(&r.body), ["cluster", "index", "remote_cluster"]);
    let cluster: Vec<&str> = r.body["cluster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for p in ["all", "manage_security", "manage_token", "read_security"] {
        assert!(cluster.contains(&p), "{p} in {cluster:?}");
    }
    let index = r.body["index"].as_array().unwrap();
    assert!(index.contains(&Value::from("read")));
    assert!(index.contains(&Value::from("view_index_metadata")));

    srv.put_user_with_cluster("reader", TEST_PW, "reads", &["read_security"]);
    let r = srv
        .get("/_security/privilege/_builtin")
        .basic("reader", TEST_PW)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);

    srv.put_user_with_cluster("tokener", TEST_PW, "token_only", &["manage_token"]);
    let r = srv
        .get("/_security/privilege/_builtin")
        .basic("tokener", TEST_PW)
        .send();
    assert_es_error(
        &r,
        403,
        "security_exception",
        "action [cluster:admin/xpack/security/privilege/builtin/get] is unauthorized for user [tokener] with effective roles [token_only], this action is granted by the cluster privileges [read_security,manage_security,all]",
    );
}
