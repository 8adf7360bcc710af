//! The harness: a real Tessera node started in-process on its own tokio
//! runtime (fresh SQLite data directory, real HTTP on 127.0.0.1:0), driven
//! with blocking reqwest clients, plus helpers for the OAuth endpoints.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::blocking::Client;
use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::Method;
use serde_json::{json, Value};
use tessera::config::{Config, ServeArgs, ThrottleArgs};
use tessera::server::{self, Running};

pub const ADMIN: &str = "elastic";
pub const ADMIN_PW: &str = "oauth-bootstrap-pw";
pub const USER_PW: &str = "user-password-1";

pub const TOKEN: &str = "/oauth2/token";
pub const REVOKE: &str = "/oauth2/revoke";
pub const INTROSPECT: &str = "/oauth2/introspect";
pub const REGISTER: &str = "/oauth2/register";
pub const AUTHENTICATE: &str = "/_security/_authenticate";
pub const ES_TOKEN: &str = "/_security/oauth2/token";

pub const FORM: &str = "application/x-www-form-urlencoded";
pub const BASIC_CHALLENGE: &str = "Basic realm=\"tessera\"";
pub const INSUFFICIENT_SCOPE: &str =
    "Bearer realm=\"security\", error=\"insufficient_scope\", scope=\"tessera:admin\"";

/// Settings a test may change.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub access_token_ttl: Option<&'static str>,
    pub refresh_window: Option<&'static str>,
    pub issuer: Option<&'static str>,
    /// The account lock, source budget and trusted proxies.
    pub throttle: ThrottleArgs,
    /// Time stands still until [`TestServer::advance`] moves it.
    pub manual_clock: bool,
}

pub struct TestServer {
    runtime: Option<tokio::runtime::Runtime>,
    running: Option<Running>,
    pub base: String,
    pub port: u16,
    client: Client,
    clock: tessera_http::clock::Clock,
    _temp: Option<tempfile::TempDir>,
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Self {
        let temp = tempfile::tempdir().expect("a temporary data directory");
        let mut server = Self::start_in(temp.path(), options);
        server._temp = Some(temp);
        server
    }

    /// A server on an existing data directory (which the caller keeps).
    pub fn start_in(data_dir: &Path, options: Options) -> Self {
        let mut config = Config::resolve(ServeArgs {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(data_dir.to_owned()),
            access_token_ttl: options.access_token_ttl.map(Into::into),
            refresh_window: options.refresh_window.map(Into::into),
            issuer: options.issuer.map(Into::into),
            throttle: options.throttle.clone(),
            shutdown_timeout: Some("5s".into()),
            ..Default::default()
        })
        .expect("a valid test configuration");
        config.bootstrap_password = Some(tessera_domain::crypto::Secret::new(ADMIN_PW));
        if options.manual_clock {
            config.http.clock = tessera_http::clock::Clock::manual();
        }
        let clock = config.http.clock.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tessera-oauth-test")
            .enable_all()
            .build()
            .expect("a server runtime");
        let running = runtime
            .block_on(server::start(config, std::future::pending()))
            .expect("the server starts");
        let port = running.addr.port();
        let base = format!("http://{}", running.addr);
        TestServer {
            runtime: Some(runtime),
            running: Some(running),
            base,
            port,
            client: Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client"),
            clock,
            _temp: None,
        }
    }

    /// Moves the server's manual clock (see [`Options::manual_clock`]).
    pub fn advance(&self, ms: i64) {
        self.clock.advance(ms);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn req(&self, method: Method, path: &str) -> Req {
        Req {
            builder: self.client.request(method, self.url(path)),
        }
    }

    pub fn get(&self, path: &str) -> Req {
        self.req(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Req {
        self.req(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> Req {
        self.req(Method::PUT, path)
    }

    pub fn delete(&self, path: &str) -> Req {
        self.req(Method::DELETE, path)
    }

    // ---- conveniences that assert their own success ----

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

    /// Creates a native user as the admin.
    pub fn put_user(&self, name: &str, roles: &[&str]) {
        let r = self
            .put(&format!("/_security/user/{name}"))
            .admin()
            .json(&json!({ "password": USER_PW, "roles": roles, "full_name": format!("{name} full") }))
            .send();
        assert_eq!(r.status, 200, "put user {name}: {}", r.text);
    }

    pub fn put_role(&self, name: &str, body: Value) {
        let r = self
            .put(&format!("/_security/role/{name}"))
            .admin()
            .json(&body)
            .send();
        assert_eq!(r.status, 200, "put role {name}: {}", r.text);
    }

    /// `POST /oauth2/token` with HTTP Basic client authentication.
    pub fn token(&self, client: &TestClient, params: &[(&str, &str)]) -> Resp {
        self.post(TOKEN).client(client).form(params).send()
    }

    /// A successful grant; asserts 200 and returns the body.
    pub fn grant(&self, client: &TestClient, params: &[(&str, &str)]) -> Value {
        let r = self.token(client, params);
        assert_eq!(r.status, 200, "grant {params:?}: {}", r.text);
        assert_token_headers(&r);
        r.body
    }

    pub fn introspect(&self, client: &TestClient, token: &str) -> Resp {
        self.post(INTROSPECT)
            .client(client)
            .form(&[("token", token)])
            .send()
    }

    pub fn revoke(&self, client: &TestClient, token: &str) -> Resp {
        self.post(REVOKE)
            .client(client)
            .form(&[("token", token)])
            .send()
    }

    /// `GET /_security/_authenticate` with a bearer token.
    pub fn whoami(&self, token: &str) -> Resp {
        self.get(AUTHENTICATE).bearer(token).send()
    }

    /// Password grant through the Elasticsearch API, by `caller`.
    pub fn es_password_grant(
        &self,
        caller: (&str, &str),
        user: &str,
        pw: &str,
    ) -> (String, String) {
        let r = self
            .post(ES_TOKEN)
            .basic(caller.0, caller.1)
            .json(&json!({ "grant_type": "password", "username": user, "password": pw }))
            .send();
        assert_eq!(r.status, 200, "ES password grant: {}", r.text);
        (
            r.body["access_token"].as_str().unwrap().to_owned(),
            r.body["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    pub fn stop(mut self) {
        self.shutdown().expect("the server shuts down gracefully");
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        let mut result = Ok(());
        if let (Some(runtime), Some(running)) = (self.runtime.as_ref(), self.running.take()) {
            result = runtime.block_on(running.shutdown());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(5));
        }
        result
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let result = self.shutdown();
        if !std::thread::panicking() {
            result.expect("the server shuts down gracefully");
        }
    }
}

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

pub struct Req {
    builder: reqwest::blocking::RequestBuilder,
}

impl Req {
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// `Authorization: Basic base64(user:password)`, nothing encoded.
    pub fn basic(self, user: &str, password: &str) -> Self {
        let value = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
        self.header("authorization", &value)
    }

    pub fn admin(self) -> Self {
        self.basic(ADMIN, ADMIN_PW)
    }

    /// client_secret_basic (the ids and secrets Tessera mints need no
    /// form-urlencoding).
    pub fn client(self, client: &TestClient) -> Self {
        self.basic(&client.id, &client.secret)
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// An `application/x-www-form-urlencoded` body.
    pub fn form(self, params: &[(&str, &str)]) -> Self {
        let body: String = form_urlencoded(params);
        self.body(FORM, body)
    }

    pub fn json(self, value: &Value) -> Self {
        self.body("application/json", value.to_string())
    }

    pub fn body(mut self, content_type: &str, body: impl Into<String>) -> Self {
        self.builder = self
            .builder
            .header(CONTENT_TYPE, content_type)
            .body(body.into());
        self
    }

    pub fn send(self) -> Resp {
        let response = self.builder.send().expect("the request is answered");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().expect("a readable body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::Null)
        };
        Resp {
            status,
            headers,
            text,
            body,
        }
    }
}

/// `k=v&…`, percent-encoded as forms are.
pub fn form_urlencoded(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn headers_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The body's top-level keys in order.
    pub fn keys(&self) -> Vec<String> {
        self.body
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    pub fn str(&self, key: &str) -> String {
        self.body[key]
            .as_str()
            .unwrap_or_else(|| panic!("no string [{key}] in {}", self.text))
            .to_owned()
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
    assert!(
        r.body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty()),
        "{}",
        r.text
    );
    assert_eq!(r.header("cache-control"), Some("no-store"), "{}", r.text);
    let challenges = r.headers_all("www-authenticate");
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

/// The 401 a dead bearer token gets on the Elasticsearch API.
pub fn assert_token_dead(server: &TestServer, token: &str) {
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
