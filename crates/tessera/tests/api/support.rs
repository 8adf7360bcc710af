//! The harness: a real Tessera node started in-process on its own tokio
//! runtime, with a fresh SQLite data directory, driven over real HTTP with
//! blocking reqwest clients from plain threads.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::blocking::{Client, RequestBuilder};
use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::Method;
use serde_json::{json, Value};
use tessera::config::{Config, ServeArgs, ThrottleArgs};
use tessera::server::{self, Running};

/// The bootstrap superuser and the password tests give it.
pub const ADMIN: &str = "elastic";
pub const ADMIN_PW: &str = "elastic-bootstrap-pw";
/// The password Elasticsearch's YAML tests use for their users.
pub const TEST_PW: &str = "x-pack-test-password";

pub const AUTHENTICATE: &str = "/_security/_authenticate";
pub const TOKEN: &str = "/_security/oauth2/token";

/// The challenges of an ordinary 401, in Elasticsearch 8's order.
pub const DEFAULT_CHALLENGES: [&str; 3] = [
    "Bearer realm=\"security\"",
    "ApiKey",
    "Basic realm=\"security\" charset=\"UTF-8\"",
];
pub const EXPIRED_CHALLENGE: &str =
    "Bearer realm=\"security\", error=\"invalid_token\", error_description=\"The access token expired\"";
pub const COMPATIBLE_JSON: &str = "application/vnd.elasticsearch+json;compatible-with=8";

/// Settings a test may change; everything else is the default.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub access_token_ttl: Option<&'static str>,
    pub refresh_window: Option<&'static str>,
    pub max_body_bytes: Option<&'static str>,
    pub cleanup_interval: Option<&'static str>,
    pub request_timeout: Option<&'static str>,
    pub header_read_timeout: Option<&'static str>,
    pub idle_timeout: Option<&'static str>,
    pub max_connections: Option<&'static str>,
    /// `"false"`: Elasticsearch's behaviour (reuse is only refused).
    pub refresh_reuse_revokes_family: Option<&'static str>,
    /// Defaults to [`ADMIN_PW`].
    pub bootstrap_password: Option<&'static str>,
    /// `"false"`: Elasticsearch's behaviour (user changes leave tokens alive).
    pub revoke_on_user_change: Option<&'static str>,
    /// Time stands still until [`TestServer::advance`] moves it.
    pub manual_clock: bool,
    /// The account lock, source budget and trusted proxies.
    pub throttle: ThrottleArgs,
    /// An address for the open metrics listener (`127.0.0.1:0`).
    pub metrics_listen: Option<&'static str>,
}

pub struct TestServer {
    runtime: Option<tokio::runtime::Runtime>,
    running: Option<Running>,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    base: String,
    client: Client,
    data_dir: PathBuf,
    clock: tessera_http::clock::Clock,
    _temp: Option<tempfile::TempDir>,
}

pub fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("building an HTTP client")
}

impl TestServer {
    /// A server with default settings on a fresh data directory.
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Self {
        let temp = tempfile::tempdir().expect("creating a temporary data directory");
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
            max_body_bytes: options.max_body_bytes.map(Into::into),
            cleanup_interval: options.cleanup_interval.map(Into::into),
            request_timeout: options.request_timeout.map(Into::into),
            header_read_timeout: options.header_read_timeout.map(Into::into),
            idle_timeout: options.idle_timeout.map(Into::into),
            max_connections: options.max_connections.map(Into::into),
            refresh_reuse_revokes_family: options.refresh_reuse_revokes_family.map(Into::into),
            revoke_on_user_change: options.revoke_on_user_change.map(Into::into),
            throttle: options.throttle.clone(),
            shutdown_timeout: Some("5s".into()),
            metrics_listen: options.metrics_listen.map(Into::into),
            ..Default::default()
        })
        .expect("a valid test configuration");
        config.bootstrap_password = Some(tessera_domain::crypto::Secret::new(
            options.bootstrap_password.unwrap_or(ADMIN_PW),
        ));
        if options.manual_clock {
            config.http.clock = tessera_http::clock::Clock::manual();
        }
        let clock = config.http.clock.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .thread_name("tessera-test-server")
            .enable_all()
            .build()
            .expect("building the server runtime");
        let running = runtime
            .block_on(server::start(config, std::future::pending()))
            .expect("the server starts");
        let addr = running.addr;
        let metrics_addr = running.metrics_addr;
        TestServer {
            runtime: Some(runtime),
            running: Some(running),
            addr,
            metrics_addr,
            base: format!("http://{addr}"),
            client: client(),
            data_dir: data_dir.to_owned(),
            clock,
            _temp: None,
        }
    }

    /// Moves the server's manual clock (see [`Options::manual_clock`]).
    pub fn advance(&self, ms: i64) {
        self.clock.advance(ms);
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where `metrics_listen` was bound, if it was set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("tessera.db")
    }

    /// Graceful shutdown; fails the test if the server did not stop cleanly.
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

    pub fn req(&self, method: Method, path: &str) -> Req {
        Req::new(&self.client, &self.base, method, path)
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

    /// Creates (or replaces) a user as the admin; asserts 200.
    pub fn put_user(&self, name: &str, password: &str, roles: &[&str]) {
        let r = self
            .put(&format!("/_security/user/{name}"))
            .admin()
            .json(&json!({ "password": password, "roles": roles }))
            .send();
        assert_eq!(r.status, 200, "put user {name}: {}", r.text);
        assert!(r.body["created"].is_boolean(), "{}", r.text);
    }

    pub fn put_role(&self, name: &str, body: Value) {
        let r = self
            .put(&format!("/_security/role/{name}"))
            .admin()
            .json(&body)
            .send();
        assert_eq!(r.status, 200, "put role {name}: {}", r.text);
        assert_eq!(r.body, json!({"role": {"created": true}}));
    }

    /// Password grant for `user`, requested by `caller`; asserts 200 and
    /// returns the whole body.
    pub fn password_grant_by(&self, caller: (&str, &str), user: &str, password: &str) -> Value {
        let r = self
            .post(TOKEN)
            .basic(caller.0, caller.1)
            .json(&json!({ "grant_type": "password", "username": user, "password": password }))
            .send();
        assert_eq!(r.status, 200, "password grant for {user}: {}", r.text);
        assert!(
            r.body["access_token"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{}",
            r.text
        );
        assert!(
            r.body["refresh_token"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{}",
            r.text
        );
        r.body
    }

    /// Password grant for `user`, requested by the admin.
    pub fn password_grant(&self, user: &str, password: &str) -> Tokens {
        Tokens::from_body(&self.password_grant_by((ADMIN, ADMIN_PW), user, password))
    }

    /// Client-credentials grant for the Basic-authenticated caller.
    pub fn client_credentials(&self, user: &str, password: &str) -> String {
        let r = self
            .post(TOKEN)
            .basic(user, password)
            .json(&json!({ "grant_type": "client_credentials" }))
            .send();
        assert_eq!(r.status, 200, "client_credentials for {user}: {}", r.text);
        assert!(r.body.get("refresh_token").is_none(), "{}", r.text);
        r.body["access_token"]
            .as_str()
            .expect("access_token")
            .to_owned()
    }

    /// Refresh as `caller`; returns the raw response.
    pub fn refresh_as(&self, caller: (&str, &str), refresh_token: &str) -> Resp {
        self.post(TOKEN)
            .basic(caller.0, caller.1)
            .json(&json!({ "grant_type": "refresh_token", "refresh_token": refresh_token }))
            .send()
    }

    pub fn refresh(&self, refresh_token: &str) -> Resp {
        self.refresh_as((ADMIN, ADMIN_PW), refresh_token)
    }

    /// Refresh as `caller`; asserts a 200 with a new pair for `user` and
    /// returns the pair.
    pub fn assert_refresh_ok(
        &self,
        caller: (&str, &str),
        refresh_token: &str,
        user: &str,
    ) -> Tokens {
        let r = self.refresh_as(caller, refresh_token);
        assert_eq!(r.status, 200, "refresh: {}", r.text);
        assert_eq!(
            r.keys(),
            [
                "access_token",
                "type",
                "expires_in",
                "refresh_token",
                "authentication"
            ],
            "{}",
            r.text
        );
        assert_eq!(r.body["type"], "Bearer", "{}", r.text);
        assert_eq!(r.body["authentication"]["username"], user, "{}", r.text);
        assert_eq!(
            r.body["authentication"]["authentication_type"], "token",
            "{}",
            r.text
        );
        let pair = Tokens::from_body(&r.body);
        assert_ne!(pair.refresh, refresh_token);
        pair
    }

    pub fn invalidate(&self, body: Value) -> Resp {
        self.delete(TOKEN).admin().json(&body).send()
    }

    pub fn auth_bearer(&self, token: &str) -> Resp {
        self.get(AUTHENTICATE).bearer(token).send()
    }

    pub fn auth_basic(&self, user: &str, password: &str) -> Resp {
        self.get(AUTHENTICATE).basic(user, password).send()
    }

    /// Asserts Basic authentication of `user` succeeds.
    pub fn assert_basic_ok(&self, user: &str, password: &str) {
        let r = self.auth_basic(user, password);
        assert_eq!(r.status, 200, "basic auth of {user}: {}", r.text);
        assert_eq!(r.body["username"], user);
        assert_eq!(r.body["authentication_type"], "realm");
    }

    /// Asserts Basic authentication of `user` fails with Elasticsearch's 401.
    pub fn assert_basic_refused(&self, user: &str, password: &str) {
        let r = self.auth_basic(user, password);
        assert_unauthenticated(
            &r,
            &format!("unable to authenticate user [{user}] for REST request [{AUTHENTICATE}]"),
        );
    }

    pub fn assert_bearer_ok(&self, token: &str, user: &str) {
        let r = self.auth_bearer(token);
        assert_eq!(r.status, 200, "bearer auth as {user}: {}", r.text);
        assert_eq!(r.body["username"], user);
        assert_eq!(r.body["authentication_type"], "token");
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

/// An access/refresh pair.
#[derive(Debug, Clone, PartialEq)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

impl Tokens {
    pub fn from_body(body: &Value) -> Self {
        Tokens {
            access: body["access_token"]
                .as_str()
                .expect("access_token")
                .to_owned(),
            refresh: body["refresh_token"]
                .as_str()
                .expect("refresh_token")
                .to_owned(),
        }
    }
}

pub fn basic_header(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// A request being built.
pub struct Req {
    rb: RequestBuilder,
    compatible: bool,
    path: String,
}

impl Req {
    pub fn new(client: &Client, base: &str, method: Method, path: &str) -> Self {
        Req {
            rb: client.request(method, format!("{base}{path}")),
            compatible: false,
            path: path.to_owned(),
        }
    }

    pub fn basic(self, user: &str, password: &str) -> Self {
        self.header("authorization", &basic_header(user, password))
    }

    pub fn admin(self) -> Self {
        self.basic(ADMIN, ADMIN_PW)
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        if value
            .to_ascii_lowercase()
            .contains("vnd.elasticsearch+json")
        {
            self.compatible = true;
        }
        self.rb = self.rb.header(name, value);
        self
    }

    pub fn header_bytes(mut self, name: &str, value: &[u8]) -> Self {
        self.rb = self.rb.header(
            name,
            HeaderValue::from_bytes(value).expect("a header value"),
        );
        self
    }

    pub fn json(mut self, body: &Value) -> Self {
        self.rb = self.rb.json(body);
        self
    }

    /// A raw body with the given Content-Type.
    pub fn body(self, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        let mut this = self.header("content-type", content_type);
        this.rb = this.rb.body(body.into());
        this
    }

    /// Sends the request. Checks what every response must carry: the
    /// `x-elastic-product` header and, unless the request asked for the
    /// compatible media type, `application/json`.
    pub fn send(self) -> Resp {
        let response = self.rb.send().expect("the request reaches the server");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().expect("reading the response body");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let resp = Resp {
            status,
            headers,
            text,
            body,
        };
        assert_eq!(
            resp.header("x-elastic-product"),
            Some("Elasticsearch"),
            "x-elastic-product on {} ({status})",
            self.path
        );
        if !self.compatible && !self.path.starts_with("/_tessera/metrics") {
            assert_eq!(
                resp.header("content-type"),
                Some("application/json"),
                "content type of {} ({status}): {}",
                self.path,
                resp.text
            );
            assert!(
                !resp.body.is_null(),
                "{} ({status}) answered with non-JSON: {:?}",
                self.path,
                resp.text
            );
        }
        resp
    }
}

/// A response, read completely.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("an ASCII header"))
    }

    pub fn header_all(&self, name: impl reqwest::header::AsHeaderName) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().expect("an ASCII header").to_owned())
            .collect()
    }

    pub fn keys(&self) -> Vec<&str> {
        keys(&self.body)
    }

    pub fn str(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is not a string in {}", self.text))
            .to_owned()
    }
}

/// The keys of a JSON object, in order.
pub fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Asserts an Elasticsearch error envelope: status, type and exact reason,
/// in the error and in its single root cause. No `WWW-Authenticate` unless
/// the status is 401 (checked elsewhere).
pub fn assert_es_error(r: &Resp, status: u16, kind: &str, reason: &str) {
    assert_es_error_matching(r, status, kind, |got| got == reason, reason);
}

/// Like [`assert_es_error`], with the reason checked by `ok`.
pub fn assert_es_error_matching(
    r: &Resp,
    status: u16,
    kind: &str,
    ok: impl Fn(&str) -> bool,
    what: &str,
) {
    assert_eq!(r.status, status, "status; body: {}", r.text);
    assert_eq!(r.body["status"], json!(status), "body.status: {}", r.text);
    let error = &r.body["error"];
    assert_eq!(error["type"], kind, "error.type: {}", r.text);
    let reason = error["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no error.reason in {}", r.text));
    assert!(ok(reason), "error.reason {reason:?} is not {what:?}");
    let causes = error["root_cause"]
        .as_array()
        .unwrap_or_else(|| panic!("no root_cause in {}", r.text));
    assert_eq!(causes.len(), 1, "{}", r.text);
    assert_eq!(causes[0]["type"], kind, "{}", r.text);
    assert_eq!(causes[0]["reason"], reason, "{}", r.text);
    assert_eq!(keys(&r.body), ["error", "status"], "{}", r.text);
    if status != 401 {
        assert!(r.header_all(WWW_AUTHENTICATE).is_empty(), "{:?}", r.headers);
        assert!(error.get("header").is_none(), "{}", r.text);
    }
}

/// Asserts an ordinary 401: `security_exception` with `reason`, the three
/// default challenges as headers (in order) and in the body, both in the
/// error and in its root cause.
pub fn assert_unauthenticated(r: &Resp, reason: &str) {
    assert_es_error(r, 401, "security_exception", reason);
    assert_eq!(
        r.header_all(WWW_AUTHENTICATE),
        DEFAULT_CHALLENGES,
        "{:?}",
        r.headers
    );
    let challenges = json!({ "WWW-Authenticate": DEFAULT_CHALLENGES });
    assert_eq!(r.body["error"]["header"], challenges, "{}", r.text);
    assert_eq!(
        r.body["error"]["root_cause"][0]["header"], challenges,
        "{}",
        r.text
    );
}

/// Asserts Elasticsearch 8's 401 for presented credentials that match nothing.
pub fn assert_unsuccessful_credentials(r: &Resp, detail: &str) {
    assert_unauthenticated(
        r,
        "unable to authenticate with provided credentials and anonymous access is not allowed for this request",
    );
    assert_eq!(
        r.body["error"]["additional_unsuccessful_credentials"], detail,
        "{}",
        r.text
    );
    assert_eq!(
        r.body["error"]["root_cause"][0]["additional_unsuccessful_credentials"], detail,
        "{}",
        r.text
    );
}

/// Asserts the 401 for an expired or invalidated bearer token.
pub fn assert_token_expired(r: &Resp) {
    assert_es_error(r, 401, "security_exception", "token expired");
    assert_eq!(
        r.header_all(WWW_AUTHENTICATE),
        [EXPIRED_CHALLENGE],
        "{:?}",
        r.headers
    );
    let challenge = json!({ "WWW-Authenticate": EXPIRED_CHALLENGE });
    assert_eq!(r.body["error"]["header"], challenge, "{}", r.text);
    assert_eq!(
        r.body["error"]["root_cause"][0]["header"], challenge,
        "{}",
        r.text
    );
}

/// Asserts the token endpoint's flat OAuth error, exactly.
pub fn assert_oauth_error(r: &Resp, error: &str, description: &str) {
    assert_eq!(r.status, 400, "status; body: {}", r.text);
    assert_eq!(
        r.body,
        json!({ "error": error, "error_description": description }),
        "{}",
        r.text
    );
    assert!(r.header_all(WWW_AUTHENTICATE).is_empty(), "{:?}", r.headers);
}

/// Asserts Elasticsearch's 403 for a missing cluster privilege.
pub fn assert_forbidden(r: &Resp, action: &str, user: &str, roles: &str, granted_by: &str) {
    assert_es_error(
        r,
        403,
        "security_exception",
        &format!(
            "action [{action}] is unauthorized for user [{user}] with effective roles [{roles}], this action is granted by the cluster privileges [{granted_by}]"
        ),
    );
}

/// Invalidation counts.
pub fn counts(invalidated: u64, previously: u64) -> Value {
    json!({ "invalidated_tokens": invalidated, "previously_invalidated_tokens": previously, "error_count": 0 })
}

/// The `_authenticate` object of a native user authenticated by `kind`.
pub fn native_authentication(
    user: &str,
    roles: &[&str],
    full_name: Value,
    email: Value,
    kind: &str,
) -> Value {
    json!({
        "username": user,
        "roles": roles,
        "full_name": full_name,
        "email": email,
        "metadata": {},
        "enabled": true,
        "authentication_realm": { "name": "default_native", "type": "native" },
        "lookup_realm": { "name": "default_native", "type": "native" },
        "authentication_type": kind,
    })
}

/// `token` with one character in the middle changed: the same shape,
/// another token.
pub fn tampered(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

/// Opens the server's SQLite file read-only (to observe what it stored).
pub fn open_db_read_only(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("opening the store read-only")
}

pub fn count_tokens(db: &rusqlite::Connection) -> i64 {
    db.query_row("SELECT COUNT(*) FROM token_pairs", [], |r| r.get(0))
        .expect("counting tokens")
}
