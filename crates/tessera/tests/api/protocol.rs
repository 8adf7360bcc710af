//! HTTP-level behaviour: media types, Elasticsearch's product header,
//! unknown routes, wrong methods and the operational endpoints.

use serde_json::json;

use crate::support::*;

#[test]
fn compatible_media_type_in_and_out() {
    let srv = TestServer::start();
    let r = srv
        .post(TOKEN)
        .admin()
        .header("accept", COMPATIBLE_JSON)
        .body(
            COMPATIBLE_JSON,
            r#"{"grant_type":"password","username":"elastic","password":"elastic-bootstrap-pw"}"#,
        )
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some(COMPATIBLE_JSON));
    assert_eq!(r.header("x-elastic-product"), Some("Elasticsearch"));
    assert_eq!(r.body["type"], "Bearer");
    let token = r.str("access_token");

    // Accept alone is enough to get the compatible type back.
    let r = srv
        .get(AUTHENTICATE)
        .bearer(&token)
        .header(
            "accept",
            "application/vnd.elasticsearch+json; compatible-with=8",
        )
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some(COMPATIBLE_JSON));
    assert_eq!(r.body["username"], ADMIN);

    // Content-Type alone too, with parameters spelled with a space.
    let r = srv
        .put("/_security/user/joe")
        .admin()
        .body(
            "application/vnd.elasticsearch+json; compatible-with=8",
            r#"{"password":"x-pack-test-password","roles":[]}"#,
        )
        .send();
    r.assert_is(200, &json!({ "created": true }));
    assert_eq!(r.header("content-type"), Some(COMPATIBLE_JSON));

    // Errors come back in the compatible type as well.
    let r = srv
        .get(AUTHENTICATE)
        .header("accept", COMPATIBLE_JSON)
        .send();
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(r.header("content-type"), Some(COMPATIBLE_JSON));
    assert_eq!(r.header("x-elastic-product"), Some("Elasticsearch"));
    assert_eq!(
        r.body["error"]["reason"],
        "missing authentication credentials for REST request [/_security/_authenticate]"
    );
    let r = srv
        .post(TOKEN)
        .admin()
        .header("accept", COMPATIBLE_JSON)
        .json(&json!({ "grant_type": "authorization_code" }))
        .send();
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.header("content-type"), Some(COMPATIBLE_JSON));
    assert_eq!(r.body["error"], "unsupported_grant_type");
}

#[test]
fn plain_json_responses_are_application_json() {
    let srv = TestServer::start();
    // `send` checks content type and product header on every response; this
    // test spells it out once for a success, an OAuth error and an ES error.
    for r in [
        srv.get(AUTHENTICATE).admin().send(),
        srv.token_request(json!({ "grant_type": "nope" })),
        srv.get(AUTHENTICATE).send(),
        srv.get("/_tessera/ready").send(),
    ] {
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "{}",
            r.text
        );
        assert_eq!(
            r.header("x-elastic-product"),
            Some("Elasticsearch"),
            "{}",
            r.text
        );
    }
}

#[test]
fn unknown_route_is_404_in_the_error_envelope() {
    let srv = TestServer::start();
    let r = srv.get("/_security/nothing_here").admin().send();
    assert_es_error(
        &r,
        404,
        "resource_not_found_exception",
        "no handler found for uri [/_security/nothing_here] and method [GET]",
    );
    // `/` is the root API (`node.rs`); other unknown paths stay 404.
    let r = srv.get("/_nothing").send();
    assert_es_error(
        &r,
        404,
        "resource_not_found_exception",
        "no handler found for uri [/_nothing] and method [GET]",
    );
    let r = srv
        .post("/_xpack/security/oauth2/tokens")
        .json(&json!({}))
        .send();
    assert_error_type(&r, 404, "resource_not_found_exception");
}

#[test]
fn wrong_method_is_405_in_the_error_envelope() {
    let srv = TestServer::start();
    let r = srv.req(reqwest::Method::PATCH, TOKEN).admin().send();
    assert_es_error(
        &r,
        405,
        "method_not_allowed_exception",
        "Incorrect HTTP method for uri [/_security/oauth2/token] and method [PATCH]",
    );
    let r = srv.get(TOKEN).admin().send();
    assert_es_error(
        &r,
        405,
        "method_not_allowed_exception",
        "Incorrect HTTP method for uri [/_security/oauth2/token] and method [GET]",
    );
    let r = srv.delete(AUTHENTICATE).admin().send();
    assert_error_type(&r, 405, "method_not_allowed_exception");
    let r = srv.get("/_security/user/joe/_enable").admin().send();
    assert_error_type(&r, 405, "method_not_allowed_exception");
}

#[test]
fn readiness_and_liveness() {
    let srv = TestServer::start();
    let r = srv.get("/_tessera/ready").send();
    r.assert_is(200, &json!({ "status": "ready" }));
    let r = srv.get("/_tessera/live").send();
    r.assert_is(200, &json!({ "status": "live" }));
}
