//! `POST /oauth2/token` (RFC 6749): grants, client authentication, and
//! every error code with its exact status and headers.

use serde_json::json;

use crate::support::*;

#[test]
fn client_credentials_with_basic_authentication() {
    let server = TestServer::start();
    let client = server.register(json!({ "client_name": "reporting" }));
    let r = server.token(&client, &[("grant_type", "client_credentials")]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_token_headers(&r);
    assert_eq!(
        r.keys(),
        ["access_token", "token_type", "expires_in"],
        "no refresh token, no scope (none registered)"
    );
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 1200);
    let token = r.str("access_token");
    assert_eq!(token.len(), 55);

    // The token is an ordinary Tessera token: it authenticates as the client.
    let me = server.whoami(&token);
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["username"], client.id.as_str());
    assert_eq!(me.body["roles"], json!([]));
    assert_eq!(me.body["full_name"], "reporting");
    assert_eq!(
        me.body["authentication_realm"],
        json!({"name": "_oauth2_client", "type": "_oauth2_client"})
    );
    assert_eq!(
        me.body["lookup_realm"],
        json!({"name": "_oauth2_client", "type": "_oauth2_client"})
    );
    assert_eq!(me.body["authentication_type"], "token");
}

/// A client-credentials grant authenticated with `client_secret_post`.
fn client_secret_post(server: &TestServer, client: &TestClient) -> Resp {
    server
        .post(TOKEN)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client.id),
            ("client_secret", &client.secret),
        ])
        .send()
}

#[test]
fn client_secret_post_is_honoured_only_for_clients_registered_for_it() {
    let server = TestServer::start();
    let post = server.register(json!({ "token_endpoint_auth_method": "client_secret_post" }));
    let r = client_secret_post(&server, &post);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_token_headers(&r);

    // The registered method is the only one accepted.
    let r = server.token(&post, &[("grant_type", "client_credentials")]);
    assert_oauth_error_says(
        &r,
        401,
        "invalid_client",
        "this client is registered to authenticate with [client_secret_post], not [client_secret_basic]",
    );
    assert_eq!(r.header_all("www-authenticate"), [BASIC_CHALLENGE]);
    let basic = server.register(json!({}));
    let r = client_secret_post(&server, &basic);
    assert_oauth_error(&r, 401, "invalid_client", false);
    assert_eq!(
        r.body["error_description"],
        "this client is registered to authenticate with [client_secret_basic], not [client_secret_post]"
    );
}

#[test]
fn basic_credentials_are_form_urlencoded_per_rfc_6749() {
    let server = TestServer::start();
    let client = server.register(json!({}));
    // Encoding characters that need none is still valid encoding.
    let encode_all = |s: &str| -> String { s.bytes().map(|b| format!("%{b:02X}")).collect() };
    let r = server
        .post(TOKEN)
        .basic(&encode_all(&client.id), &encode_all(&client.secret))
        .form(&[("grant_type", "client_credentials")])
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
    // A matching client_id in the body is allowed next to Basic; another is not.
    let r = server.token(
        &client,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client.id),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = server.token(
        &client,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", "someone-else"),
        ],
    );
    assert_oauth_error_says(
        &r,
        400,
        "invalid_request",
        "client_id in the body does not match the HTTP Basic credentials",
    );
}

#[test]
fn client_authentication_failures_are_invalid_client() {
    let server = TestServer::start();
    let client = server.register(json!({}));
    let cc = [("grant_type", "client_credentials")];

    // Unknown client and wrong secret: the same 401, with the Basic challenge.
    for who in [
        TestClient {
            id: "no-such-client".into(),
            secret: client.secret.clone(),
        },
        client.with_secret("wrong"),
    ] {
        let r = server.token(&who, &cc);
        assert_oauth_error_says(&r, 401, "invalid_client", "client authentication failed");
        assert_eq!(r.header_all("www-authenticate"), [BASIC_CHALLENGE]);
    }
    // Malformed Basic credentials.
    let r = server
        .post(TOKEN)
        .header("authorization", "Basic !!!")
        .form(&cc)
        .send();
    assert_oauth_error_says(
        &r,
        401,
        "invalid_client",
        "malformed HTTP Basic credentials",
    );
    // Another scheme.
    let r = server.post(TOKEN).bearer("abc").form(&cc).send();
    assert_oauth_error(&r, 401, "invalid_client", true);
    // No client authentication at all, and a public client: no challenge.
    let r = server.post(TOKEN).form(&cc).send();
    assert_client_auth_required(&r);
    let r = server
        .post(TOKEN)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client.id),
        ])
        .send();
    assert_oauth_error_says(
        &r,
        401,
        "invalid_client",
        "client authentication failed: no client_secret (public clients are not supported)",
    );
    // A wrong secret in the body: no challenge either.
    let post = server.register(json!({ "token_endpoint_auth_method": "client_secret_post" }));
    let r = server
        .post(TOKEN)
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &post.id),
            ("client_secret", "wrong"),
        ])
        .send();
    assert_oauth_error_says(&r, 401, "invalid_client", "client authentication failed");
}

#[test]
fn malformed_requests_are_invalid_request() {
    let server = TestServer::start();
    let client = server.register(json!({ "grant_types": ["password"] }));

    // Two authentication methods at once.
    let r = server.form_as(
        &client,
        TOKEN,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client.id),
            ("client_secret", &client.secret),
        ],
    );
    assert_oauth_error_says(
        &r,
        400,
        "invalid_request",
        "the client used more than one authentication method (HTTP Basic and client_secret in the body)",
    );
    // JSON, or no Content-Type at all.
    let r = server
        .post(TOKEN)
        .client(&client)
        .json(&json!({ "grant_type": "client_credentials" }))
        .send();
    assert_oauth_error_says(
        &r,
        400,
        "invalid_request",
        "Content-Type [application/json] is not supported; send application/x-www-form-urlencoded",
    );
    let r = server
        .post(TOKEN)
        .client(&client)
        .header("content-type", "text/plain")
        .send();
    assert_oauth_error(&r, 400, "invalid_request", false);
    let r = server.post(TOKEN).client(&client).send();
    assert_oauth_error_says(
        &r,
        400,
        "invalid_request",
        "the request needs Content-Type application/x-www-form-urlencoded",
    );
    // A parameter twice.
    let r = server
        .post(TOKEN)
        .client(&client)
        .body(
            FORM,
            "grant_type=password&grant_type=password&username=a&password=b",
        )
        .send();
    assert_oauth_error_says(
        &r,
        400,
        "invalid_request",
        "parameter [grant_type] is included more than once",
    );
    // Missing parameters.
    let r = server.token(&client, &[]);
    assert_oauth_error_says(&r, 400, "invalid_request", "missing parameter [grant_type]");
    let r = server.token(
        &client,
        &[("grant_type", "password"), ("password", USER_PW)],
    );
    assert_oauth_error_says(&r, 400, "invalid_request", "missing parameter [username]");
    // A parameter without a value counts as omitted (RFC 6749 §3.1).
    let r = server.token(
        &client,
        &[
            ("grant_type", "password"),
            ("username", ""),
            ("password", USER_PW),
        ],
    );
    assert_oauth_error_says(&r, 400, "invalid_request", "missing parameter [username]");
    // A charset parameter on the media type is fine.
    let r = server
        .post(TOKEN)
        .client(&client)
        .body(
            "application/x-www-form-urlencoded; charset=UTF-8",
            format!("grant_type=password&username={ADMIN}&password={ADMIN_PW}&scope="),
        )
        .send();
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn grant_types_are_checked_against_the_registration() {
    let server = TestServer::start();
    let cc_only = server.register(json!({}));
    for grant in [
        "authorization_code",
        "_kerberos",
        "urn:ietf:params:oauth:grant-type:device_code",
    ] {
        let r = server.token(&cc_only, &[("grant_type", grant)]);
        assert_oauth_error_says(
            &r,
            400,
            "unsupported_grant_type",
            &format!(
                "grant_type [{grant}] is not supported; supported: [client_credentials, password, refresh_token]"
            ),
        );
    }
    let r = server.token(
        &cc_only,
        &[
            ("grant_type", "password"),
            ("username", ADMIN),
            ("password", ADMIN_PW),
        ],
    );
    assert_oauth_error_says(
        &r,
        400,
        "unauthorized_client",
        "this client is not registered for grant_type [password]",
    );
    let r = server.refresh_grant(&cc_only, "x");
    assert_oauth_error_says(
        &r,
        400,
        "unauthorized_client",
        "this client is not registered for grant_type [refresh_token]",
    );
    let password_only = server.register(json!({ "grant_types": ["password"] }));
    let r = server.token(&password_only, &[("grant_type", "client_credentials")]);
    assert_oauth_error(&r, 400, "unauthorized_client", false);
}

#[test]
fn password_grant_authenticates_the_user_and_refresh_tokens_follow_the_registration() {
    let server = TestServer::start();
    server.add_user("jane", &["superuser"]);
    let client = server.register(json!({ "grant_types": ["password", "refresh_token"] }));
    let body = server.grant(
        &client,
        &[
            ("grant_type", "password"),
            ("username", "jane"),
            ("password", USER_PW),
        ],
    );
    assert_eq!(
        body.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["access_token", "token_type", "expires_in", "refresh_token"]
    );
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(body["refresh_token"].as_str().unwrap().len(), 55);
    let me = server.whoami(access);
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["username"], "jane");
    assert_eq!(me.body["full_name"], "jane full");
    assert_eq!(me.body["roles"], json!(["superuser"]));
    assert_eq!(me.body["authentication_realm"]["name"], "default_native");
    assert_eq!(me.body["authentication_type"], "token");

    // Without refresh_token registered, no refresh token is issued.
    let no_refresh = server.register(json!({ "grant_types": ["password"] }));
    let body = server.grant(
        &no_refresh,
        &[
            ("grant_type", "password"),
            ("username", "jane"),
            ("password", USER_PW),
        ],
    );
    assert!(body.get("refresh_token").is_none(), "{body}");

    // Bad resource-owner credentials are invalid_grant, never invalid_client.
    for (user, pw) in [("jane", "wrong-password"), ("nobody", USER_PW)] {
        let r = server.token(
            &client,
            &[
                ("grant_type", "password"),
                ("username", user),
                ("password", pw),
            ],
        );
        assert_oauth_error_says(
            &r,
            400,
            "invalid_grant",
            &format!("unable to authenticate user [{user}]"),
        );
    }
    let r = server.post("/_security/user/jane/_disable").admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    let r = server.token(
        &client,
        &[
            ("grant_type", "password"),
            ("username", "jane"),
            ("password", USER_PW),
        ],
    );
    assert_oauth_error(&r, 400, "invalid_grant", false);
}

#[test]
fn refresh_rotates_repeats_and_detects_reuse() {
    let server = TestServer::start_with(Options::default().refresh_window("1s").manual_clock());
    let client = server.register(json!({ "grant_types": ["password", "refresh_token"] }));
    let first = server.grant(
        &client,
        &[
            ("grant_type", "password"),
            ("username", ADMIN),
            ("password", ADMIN_PW),
        ],
    );
    let rt = first["refresh_token"].as_str().unwrap();
    let second = server.grant(
        &client,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    );
    assert_eq!(
        second.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["access_token", "token_type", "expires_in", "refresh_token"]
    );
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    // A repeat inside the window gets the byte-identical pair.
    let again = server.grant(
        &client,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    );
    assert_eq!(again, second);
    // The old access token still works until it expires.
    assert_eq!(
        server
            .whoami(first["access_token"].as_str().unwrap())
            .status,
        200
    );

    // Only the client that obtained the pair may refresh it.
    let other = server.register(json!({ "grant_types": ["refresh_token"] }));
    let head_rt = second["refresh_token"].as_str().unwrap();
    let r = server.refresh_grant(&other, head_rt);
    assert_oauth_error_says(
        &r,
        400,
        "invalid_grant",
        "tokens must be refreshed by the creating client",
    );
    // ... and that attempt did not harm the family.
    assert_eq!(
        server
            .whoami(second["access_token"].as_str().unwrap())
            .status,
        200
    );

    // Unknown refresh tokens.
    let r = server.refresh_grant(&client, "junk");
    assert_oauth_error_says(
        &r,
        400,
        "invalid_grant",
        "could not refresh the requested token",
    );

    // Reuse after the window revokes the whole family.
    server.advance(1_300);
    let r = server.refresh_grant(&client, rt);
    assert_oauth_error_says(
        &r,
        400,
        "invalid_grant",
        "token has already been refreshed more than 1 second in the past",
    );
    assert_token_dead(&server, second["access_token"].as_str().unwrap());
    let r = server.refresh_grant(&client, head_rt);
    assert_oauth_error_says(&r, 400, "invalid_grant", "token has been invalidated");
}

#[test]
fn tokens_from_the_elasticsearch_api_cannot_be_refreshed_by_an_oauth_client() {
    let server = TestServer::start();
    let client = server.register(json!({ "grant_types": ["refresh_token"] }));
    let (_, rt) = server.es_password_grant((ADMIN, ADMIN_PW), ADMIN, ADMIN_PW);
    let r = server.refresh_grant(&client, &rt);
    assert_oauth_error_says(
        &r,
        400,
        "invalid_grant",
        "tokens must be refreshed by the creating client",
    );
}
