//! `tessera service-token …` next to a running server.

use serde_json::json;

use crate::support::*;

fn bearer_status(server: &TestServer, token: &str) -> u16 {
    server.get(AUTHENTICATE).bearer(token).send().status
}

#[test]
fn service_tokens_made_by_the_cli_authenticate_and_deletions_refuse_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(dir.path(), Options::default());
    let d = dir.path();

    let created = ok(d, &["service-token", "create", "elastic/kibana", "cli-1"]);
    assert_eq!(created["created"], true);
    assert_eq!(created["token"]["name"], "cli-1");
    let token = created["token"]["value"].as_str().unwrap().to_owned();
    assert!(token.starts_with("AAEAA"), "{token}");
    let r = server.get(AUTHENTICATE).bearer(&token).send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], "elastic/kibana");
    assert_eq!(
        r.body["token"],
        json!({"name": "cli-1", "type": "_service_account_index"})
    );

    // A generated name; the API lists what the CLI made, and the reverse.
    let generated = ok(d, &["service-token", "create", "elastic/kibana"]);
    let generated_name = generated["token"]["name"].as_str().unwrap().to_owned();
    assert!(generated_name.starts_with("token_"), "{generated_name}");
    let r = server
        .post("/_security/service/elastic/kibana/credential/token/api-1")
        .basic(ADMIN, ADMIN_PW)
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    let listed = ok(d, &["service-token", "list", "elastic/kibana"]);
    assert_eq!(listed["service_account"], "elastic/kibana");
    assert_eq!(listed["count"], 3);
    let mut names: Vec<&str> = listed["tokens"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    let mut expected = vec!["api-1", "cli-1", generated_name.as_str()];
    expected.sort_unstable();
    assert_eq!(names, expected);
    assert!(!listed.to_string().contains("AAEAA"));

    // Refusals: one line each.
    let e = fails(
        d,
        &["service-token", "create", "elastic/kibana", "cli-1"],
        None,
    );
    assert!(e.contains("already has a token named [cli-1]"), "{e}");
    let e = fails(d, &["service-token", "create", "elastic/nope", "x"], None);
    assert!(
        e.contains("unknown service account principal: [elastic/nope]"),
        "{e}"
    );
    let e = fails(
        d,
        &["service-token", "create", "elastic/kibana", "_x"],
        None,
    );
    assert!(e.contains("invalid service token name [_x]"), "{e}");

    // Deleted by the CLI: the server refuses it at once.
    let deleted = ok(d, &["service-token", "delete", "elastic/kibana", "cli-1"]);
    assert_eq!(deleted, json!({ "found": true }));
    assert_eq!(bearer_status(&server, &token), 401);
    let again = ok(d, &["service-token", "delete", "elastic/kibana", "cli-1"]);
    assert_eq!(again, json!({ "found": false }));
}
