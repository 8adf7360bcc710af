//! `GET /.well-known/oauth-authorization-server` (RFC 8414).

use serde_json::json;

use crate::support::*;

const WELL_KNOWN: &str = "/.well-known/oauth-authorization-server";

fn expected(issuer: &str) -> serde_json::Value {
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}/oauth2/token"),
        "revocation_endpoint": format!("{issuer}/oauth2/revoke"),
        "introspection_endpoint": format!("{issuer}/oauth2/introspect"),
        "registration_endpoint": format!("{issuer}/oauth2/register"),
        "scopes_supported": ["tessera:admin", "tessera:introspect"],
        "response_types_supported": [],
        "grant_types_supported": ["client_credentials", "password", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    })
}

#[test]
fn the_default_issuer_is_the_bound_address() {
    let server = TestServer::start();
    let r = server.get(WELL_KNOWN).send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
    assert_eq!(
        r.body,
        expected(&format!("http://127.0.0.1:{}", server.addr().port()))
    );
    assert!(r.body.get("authorization_endpoint").is_none());
    // The advertised endpoints are the ones that answer.
    let client = server.register(json!({}));
    let token = server.token(&client, &[("grant_type", "client_credentials")]);
    assert_eq!(token.status, 200);
    assert_eq!(r.body["token_endpoint"], server.url(TOKEN));
}

#[test]
fn a_configured_issuer_is_used_verbatim() {
    let server =
        TestServer::start_with(Options::default().issuer("https://auth.example.com/tessera/"));
    let r = server.get(WELL_KNOWN).send();
    assert_eq!(r.body, expected("https://auth.example.com/tessera"));
    let client = server.register(json!({}));
    let body = server.grant(&client, &[("grant_type", "client_credentials")]);
    let r = server.introspect(&client, body["access_token"].as_str().unwrap());
    assert_eq!(r.body["iss"], "https://auth.example.com/tessera");
}
