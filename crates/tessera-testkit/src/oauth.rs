//! The standard OAuth 2.0 endpoints: their paths, registered clients,
//! conveniences on [`Api`] (and so on every test server) and assertions on RFC 6749 answers.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::http::Api;
use crate::http::Resp;

pub const TOKEN: &str = "/oauth2/token";
pub const REVOKE: &str = "/oauth2/revoke";
pub const INTROSPECT: &str = "/oauth2/introspect";
pub const REGISTER: &str = "/oauth2/register";

pub const FORM: &str = "application/x-www-form-urlencoded";
pub const BASIC_CHALLENGE: &str = "Basic realm=\"tessera\"";
pub const INSUFFICIENT_SCOPE: &str =
    "Bearer realm=\"security\", error=\"insufficient_scope\", scope=\"tessera:admin\"";

/// The password of the native users [`Api::add_user`] creates.
pub const USER_PW: &str = "user-password-1";

/// A registered client's credentials.
#[derive(Debug, Clone)]
pub struct TestClient {
    pub id: String,
    pub secret: String,
}

impl TestClient {
    pub fn from_body(body: &Value) -> Self {
        Self {
            id: body["client_id"].as_str().expect("client_id").to_owned(),
            secret: body["client_secret"]
                .as_str()
                .expect("client_secret")
                .to_owned(),
        }
    }

    pub fn with_secret(&self, secret: &str) -> Self {
        Self {
            id: self.id.clone(),
            secret: secret.to_owned(),
        }
    }
}

impl Api {
    /// Registers a client as the admin; asserts 201.
    pub fn register(&self, metadata: Value) -> TestClient {
        let r = self.post(REGISTER).admin().json(&metadata).send();
        assert_eq!(r.status, 201, "register: {}", r.text);
        TestClient::from_body(&r.body)
    }

    /// A client for every grant, with the admin scope and `read`.
    pub fn full_client(&self) -> TestClient {
        self.register(json!({
            "client_name": "full",
            "grant_types": ["client_credentials", "password", "refresh_token"],
            "scope": "read tessera:admin",
        }))
    }

    /// Creates a native user with [`USER_PW`] and a full name as the admin.
    pub fn add_user(&self, name: &str, roles: &[&str]) {
        let r = self
            .put(&format!("/_security/user/{name}"))
            .admin()
            .json(&json!({ "password": USER_PW, "roles": roles, "full_name": format!("{name} full") }))
            .send();
        assert_eq!(r.status, 200, "put user {name}: {}", r.text);
    }

    /// A client registered for `grant_types` with `scope`.
    pub fn client_for(&self, grant_types: &[&str], scope: &str) -> TestClient {
        self.register(json!({ "grant_types": grant_types, "scope": scope }))
    }

    /// `POST path` with a form body and HTTP Basic client authentication.
    pub fn form_as(&self, client: &TestClient, path: &str, params: &[(&str, &str)]) -> Resp {
        self.post(path).client(client).form(params).send()
    }

    /// `POST /oauth2/token` with HTTP Basic client authentication.
    pub fn token(&self, client: &TestClient, params: &[(&str, &str)]) -> Resp {
        self.form_as(client, TOKEN, params)
    }

    /// A successful grant; asserts 200 and returns the body.
    pub fn grant(&self, client: &TestClient, params: &[(&str, &str)]) -> Value {
        let r = self.token(client, params);
        assert_eq!(r.status, 200, "grant {params:?}: {}", r.text);
        assert_token_headers(&r);
        r.body
    }

    /// A refresh-token grant of `refresh_token` by `client`.
    pub fn refresh_grant(&self, client: &TestClient, refresh_token: &str) -> Resp {
        self.token(
            client,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
    }

    pub fn introspect(&self, client: &TestClient, token: &str) -> Resp {
        self.form_as(client, INTROSPECT, &[("token", token)])
    }

    pub fn revoke(&self, client: &TestClient, token: &str) -> Resp {
        self.form_as(client, REVOKE, &[("token", token)])
    }

    /// `GET /_security/_authenticate` with a bearer token.
    pub fn whoami(&self, token: &str) -> Resp {
        self.get(crate::es::AUTHENTICATE).bearer(token).send()
    }

    /// Password grant through the Elasticsearch API, by `caller`.
    pub fn es_password_grant(
        &self,
        caller: (&str, &str),
        user: &str,
        pw: &str,
    ) -> (String, String) {
        let t = crate::es::Tokens::from_body(&self.password_grant_by(caller, user, pw));
        (t.access, t.refresh)
    }
}

/// The headers of every token response (RFC 6749 §5.1).
pub fn assert_token_headers(r: &Resp) {
    assert_eq!(r.header("cache-control"), Some("no-store"), "{r:?}");
    assert_eq!(r.header("pragma"), Some("no-cache"), "{r:?}");
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{r:?}"
    );
}

/// An RFC 6749 §5.2 error: exact status, code, flat body, `no-store`, and
/// the Basic challenge exactly when `challenge` is set.
pub fn assert_oauth_error(r: &Resp, status: u16, error: &str, challenge: bool) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.keys(), ["error", "error_description"], "{}", r.text);
    assert_eq!(r.body["error"], error, "{}", r.text);
    r.nonempty("error_description");
    assert_eq!(r.header("cache-control"), Some("no-store"), "{}", r.text);
    let challenges = r.header_all("www-authenticate");
    if challenge {
        assert_eq!(challenges, [BASIC_CHALLENGE], "{}", r.text);
    } else {
        assert!(challenges.is_empty(), "{challenges:?}: {}", r.text);
    }
}

/// Like [`assert_oauth_error`], also checking the description.
pub fn assert_oauth_error_says(r: &Resp, status: u16, error: &str, description: &str) {
    assert_oauth_error(r, status, error, r.headers.contains_key("www-authenticate"));
    assert_eq!(r.body["error_description"], description, "{}", r.text);
}

/// The 401 of a request to the OAuth endpoints without client
/// authentication.
pub fn assert_client_auth_required(r: &Resp) {
    assert_oauth_error_says(
        r,
        401,
        "invalid_client",
        "client authentication is required",
    );
}

/// The 401 a dead bearer token gets on the Elasticsearch API.
pub fn assert_token_dead(server: &Api, token: &str) {
    let r = server.whoami(token);
    assert_eq!(r.status, 401, "{}", r.text);
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Asserts `t` is within a few seconds of now.
pub fn assert_about_now(t: i64) {
    let now = now_secs();
    assert!((now - 5..=now + 5).contains(&t), "{t} is not about {now}");
}
