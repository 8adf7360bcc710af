//! Interoperability with the `oauth2` crate, a widely used OAuth 2.0
//! client library: client credentials, password, refresh, RFC 7662
//! introspection and RFC 7009 revocation, with the library building every
//! request and parsing every answer.
//!
//! The library refuses to revoke over plain HTTP (RFC 7009 §2: "Clients
//! MUST verify that the URL is an HTTPS URL"). Tessera speaks plain HTTP
//! and is meant to sit behind a TLS terminator, so the revocation URL here
//! is `https://…` and the test's HTTP client plays the terminator: it sends
//! the library's request, unchanged but for the scheme, to the server.

use std::time::Duration;

use oauth2::basic::{BasicClient, BasicErrorResponseType, BasicTokenType};
use oauth2::reqwest::blocking::Client as HttpClient;
use oauth2::{
    AuthType, ClientId, ClientSecret, HttpRequest, HttpResponse, IntrospectionUrl, RefreshToken,
    RequestTokenError, ResourceOwnerPassword, ResourceOwnerUsername, RevocationUrl, Scope,
    StandardErrorResponse, StandardRevocableToken, SyncHttpClient, TokenIntrospectionResponse,
    TokenResponse, TokenUrl,
};
use serde_json::json;

use crate::support::*;

/// Plain HTTP to the test server for `https://127.0.0.1:…` URLs.
fn transport(
    http: &HttpClient,
) -> impl Fn(HttpRequest) -> Result<HttpResponse, oauth2::HttpClientError<oauth2::reqwest::Error>> + '_
{
    move |mut request: HttpRequest| {
        let uri = request.uri().to_string();
        if let Some(rest) = uri.strip_prefix("https://127.0.0.1:") {
            *request.uri_mut() = format!("http://127.0.0.1:{rest}").parse().unwrap();
        }
        http.call(request)
    }
}

fn http_client() -> HttpClient {
    HttpClient::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn is_error<T: std::fmt::Debug, E: std::error::Error + 'static>(
    result: Result<T, RequestTokenError<E, StandardErrorResponse<BasicErrorResponseType>>>,
    expected: BasicErrorResponseType,
) {
    match result {
        Err(RequestTokenError::ServerResponse(e)) => assert_eq!(*e.error(), expected, "{e:?}"),
        other => panic!("expected {expected:?}, got {other:?}"),
    }
}

#[test]
fn the_oauth2_crate_runs_every_flow_against_tessera() {
    let server = TestServer::start();
    let registered = server.register(json!({
        "client_name": "interop",
        "grant_types": ["client_credentials", "password", "refresh_token"],
        "scope": "read tessera:admin",
        "token_endpoint_auth_method": "client_secret_post",
    }));
    let http = http_client();
    let send = transport(&http);
    let client = BasicClient::new(ClientId::new(registered.id.clone()))
        .set_client_secret(ClientSecret::new(registered.secret.clone()))
        .set_auth_type(AuthType::RequestBody)
        .set_token_uri(TokenUrl::new(server.url(TOKEN)).unwrap())
        .set_introspection_url(IntrospectionUrl::new(server.url(INTROSPECT)).unwrap())
        .set_revocation_url(
            RevocationUrl::new(format!(
                "https://127.0.0.1:{}{REVOKE}",
                server.addr().port()
            ))
            .unwrap(),
        );

    // Client credentials, narrowed to one scope.
    let cc = client
        .exchange_client_credentials()
        .add_scope(Scope::new("read".into()))
        .request(&send)
        .expect("client_credentials");
    assert_eq!(*cc.token_type(), BasicTokenType::Bearer);
    assert_eq!(cc.expires_in(), Some(Duration::from_secs(1200)));
    assert!(cc.refresh_token().is_none());
    assert_eq!(cc.scopes(), Some(&vec![Scope::new("read".into())]));
    assert_eq!(server.whoami(cc.access_token().secret()).status, 200);

    // Password grant.
    let pw = client
        .exchange_password(
            &ResourceOwnerUsername::new(ADMIN.into()),
            &ResourceOwnerPassword::new(ADMIN_PW.into()),
        )
        .request(&send)
        .expect("password");
    let first_refresh = pw.refresh_token().expect("a refresh token").clone();
    assert_eq!(
        pw.scopes(),
        Some(&vec![
            Scope::new("read".into()),
            Scope::new("tessera:admin".into())
        ])
    );

    // Refresh.
    let refreshed = client
        .exchange_refresh_token(&first_refresh)
        .request(&send)
        .expect("refresh");
    assert_ne!(
        refreshed.access_token().secret(),
        pw.access_token().secret()
    );
    let head_refresh = refreshed
        .refresh_token()
        .expect("a new refresh token")
        .clone();

    // Introspection (RFC 7662).
    let info = client
        .introspect(refreshed.access_token())
        .request(&send)
        .expect("introspect");
    assert!(info.active());
    assert_eq!(
        info.client_id(),
        Some(&ClientId::new(registered.id.clone()))
    );
    assert_eq!(info.username(), Some(ADMIN));
    assert_eq!(info.sub(), Some(ADMIN));
    assert_eq!(info.token_type(), Some(&BasicTokenType::Bearer));
    assert_eq!(
        info.scopes(),
        Some(&vec![
            Scope::new("read".into()),
            Scope::new("tessera:admin".into())
        ])
    );
    let (iat, exp) = (info.iat().unwrap(), info.exp().unwrap());
    assert_eq!((exp - iat).num_seconds(), 1200);
    assert_about_now(iat.timestamp());
    let spent = client
        .introspect(&oauth2::AccessToken::new(first_refresh.secret().clone()))
        .request(&send)
        .expect("introspect a spent refresh token");
    assert!(!spent.active());

    // Revocation (RFC 7009) of the head refresh token ends the family.
    client
        .revoke_token(StandardRevocableToken::RefreshToken(head_refresh.clone()))
        .expect("an https revocation URL")
        .request(&send)
        .expect("revoke");
    let gone = client
        .introspect(refreshed.access_token())
        .request(&send)
        .expect("introspect after revocation");
    assert!(!gone.active());
    is_error(
        client.exchange_refresh_token(&head_refresh).request(&send),
        BasicErrorResponseType::InvalidGrant,
    );
    // Revoking something unknown succeeds (§2.2).
    client
        .revoke_token(StandardRevocableToken::AccessToken(
            oauth2::AccessToken::new("unknown".into()),
        ))
        .unwrap()
        .request(&send)
        .expect("revoking an unknown token");

    // Errors parse as RFC 6749 §5.2 errors.
    is_error(
        client
            .exchange_password(
                &ResourceOwnerUsername::new(ADMIN.into()),
                &ResourceOwnerPassword::new("wrong".into()),
            )
            .request(&send),
        BasicErrorResponseType::InvalidGrant,
    );
    is_error(
        client
            .exchange_client_credentials()
            .add_scope(Scope::new("write".into()))
            .request(&send),
        BasicErrorResponseType::InvalidScope,
    );
    let impostor = client
        .clone()
        .set_client_secret(ClientSecret::new("wrong".into()));
    is_error(
        impostor.exchange_client_credentials().request(&send),
        BasicErrorResponseType::InvalidClient,
    );
    is_error(
        client
            .exchange_refresh_token(&RefreshToken::new("junk".into()))
            .request(&send),
        BasicErrorResponseType::InvalidGrant,
    );
}

#[test]
fn the_oauth2_crate_with_http_basic_and_the_async_client() {
    let server = TestServer::start();
    let registered = server.register(json!({ "scope": "read" }));
    let client = BasicClient::new(ClientId::new(registered.id.clone()))
        .set_client_secret(ClientSecret::new(registered.secret.clone()))
        .set_token_uri(TokenUrl::new(server.url(TOKEN)).unwrap())
        .set_introspection_url(IntrospectionUrl::new(server.url(INTROSPECT)).unwrap());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = oauth2::reqwest::Client::builder()
        .redirect(oauth2::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    runtime.block_on(async {
        let token = client
            .exchange_client_credentials()
            .request_async(&http)
            .await
            .expect("client_credentials with HTTP Basic");
        assert_eq!(token.scopes(), Some(&vec![Scope::new("read".into())]));
        let info = client
            .introspect(token.access_token())
            .request_async(&http)
            .await
            .expect("introspect with HTTP Basic");
        assert!(info.active());
        assert_eq!(info.username(), Some(registered.id.as_str()));
    });
}
