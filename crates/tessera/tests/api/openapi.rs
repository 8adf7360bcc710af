//! The OpenAPI document served at `/_tessera/openapi.json` and the router
//! agree: every documented operation is routed, every route is documented.

use reqwest::Method;
use serde_json::Value;

use crate::support::*;

const DOC: &str = "/_tessera/openapi.json";

/// The methods a route can be registered for (HEAD follows GET).
const METHODS: [&str; 7] = ["get", "post", "put", "delete", "patch", "options", "trace"];

/// What the router answers for a path it does not serve.
fn is_no_route(r: &Resp) -> bool {
    r.status == 404 && r.body["error"]["type"] == "resource_not_found_exception"
}

/// What the router answers for a method a path is not served with.
fn is_wrong_method(r: &Resp) -> bool {
    r.status == 405 && r.body["error"]["type"] == "method_not_allowed_exception"
}

#[test]
fn the_document_is_openapi_3_1_and_needs_authentication() {
    let srv = TestServer::start();
    let r = srv.get(DOC).send();
    assert_eq!(r.status, 401, "{}", r.text);
    let r = srv.get(DOC).admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.body["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        r.text
    );
    let schemes = r.body["components"]["securitySchemes"].as_object().unwrap();
    for scheme in ["basic", "bearer", "api_key", "oauth2_client"] {
        assert!(schemes.contains_key(scheme), "{scheme} missing");
    }
    // Built once: the same bytes every time.
    assert_eq!(srv.get(DOC).admin().send().text, r.text);
}

#[test]
fn every_route_is_documented_and_every_documented_operation_is_routed() {
    let srv = TestServer::start();
    let doc = srv.get(DOC).admin().send().body;
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 30, "{} paths", paths.len());
    for (path, item) in paths {
        // Any value will do for a path parameter: routing is what is tested.
        let concrete = path
            .split('/')
            .map(|s| if s.starts_with('{') { "probe" } else { s })
            .collect::<Vec<_>>()
            .join("/");
        for method in METHODS {
            let documented = item.get(method).is_some_and(Value::is_object);
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = srv.req(m, &concrete).send();
            if documented {
                assert!(
                    !is_no_route(&r) && !is_wrong_method(&r),
                    "{method} {path} is documented but not routed: {} {}",
                    r.status,
                    r.text
                );
            } else {
                assert!(
                    is_wrong_method(&r),
                    "{method} {path} is routed but not documented: {} {}",
                    r.status,
                    r.text
                );
            }
        }
    }
}

/// docs/endpoints.md, the reference an operator reads, names every path
/// the document (and so the router) serves.
#[test]
fn the_endpoint_reference_lists_every_route() {
    let srv = TestServer::start();
    let doc = srv.get(DOC).admin().send().body;
    let paths = doc["paths"].as_object().expect("paths");
    let reference = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/endpoints.md"
    ))
    .unwrap();
    let missing: Vec<&String> = paths
        .keys()
        .filter(|p| !reference.contains(&format!("`{p}`")))
        .collect();
    assert!(missing.is_empty(), "not in docs/endpoints.md: {missing:?}");
}

/// The router has no other way in than the documented route table: a
/// route added beside it (`.route`, `.nest`, `.merge`) would be served
/// undocumented, so none may be.
#[test]
fn routes_are_only_added_through_the_documented_table() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/../tessera-http/src");
    for (file, function) in [
        ("lib.rs", "pub fn router("),
        ("openapi.rs", "pub fn routes("),
    ] {
        let text = std::fs::read_to_string(format!("{src}/{file}")).unwrap();
        let start = text
            .find(function)
            .unwrap_or_else(|| panic!("{function} in {file}"));
        let body = &text[start..];
        let body = &body[..body.find("\n}\n").expect("end of the function")];
        for call in [
            ".route(",
            ".route_service(",
            ".nest(",
            ".nest_service(",
            ".merge(",
        ] {
            assert!(
                !body.contains(call),
                "{file}: `{function}…` calls `{call}`: register routes with `routes!` \
                 in openapi::routes so that they are documented"
            );
        }
    }
}
