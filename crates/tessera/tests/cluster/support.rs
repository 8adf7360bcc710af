//! The harness: a fresh PostgreSQL database per test, `tessera` child
//! processes on it, and a small blocking HTTP client.

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

pub const URL_VAR: &str = "TESSERA_TEST_POSTGRES_URL";

/// The bootstrap superuser and the password every node is started with.
pub const ADMIN: &str = "elastic";
pub const ADMIN_PW: &str = "cluster-bootstrap-pw";

pub const TOKEN: &str = "/_security/oauth2/token";
pub const AUTHENTICATE: &str = "/_security/_authenticate";
pub const READY: &str = "/_tessera/ready";

/// How long a node may take from spawn to ready (a debug build hashes the
/// bootstrap password and may apply the schema).
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// The PostgreSQL server to test against, or `None` (after saying so) when
/// there is none. Under CI a missing server is a failure.
pub fn postgres_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_owned()),
        _ if std::env::var_os("CI").is_some() => panic!(
            "PostgreSQL tests must run in CI: set {URL_VAR} (eval \"$(bash .ci/postgres.sh start)\")"
        ),
        _ => {
            eprintln!(
                "SKIPPED: {URL_VAR} is not set, so the cluster tests do not run. \
                 Start a server with: eval \"$(bash .ci/postgres.sh start)\""
            );
            None
        }
    }
}

/// 64 random bits in hex (std's `RandomState` is seeded from the OS).
pub fn random_hex() -> String {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

// ---- PostgreSQL URLs ----

/// The parts of a `postgres://` URL this harness rewrites.
struct PgUrl<'a> {
    /// `user:password@`, or empty.
    userinfo: &'a str,
    /// `host:port` (or just `host`).
    hostport: &'a str,
    /// `/database`, or empty.
    path: &'a str,
    /// `?…`, or empty.
    query: &'a str,
}

fn split_url(url: &str) -> PgUrl<'_> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .unwrap_or_else(|| panic!("{URL_VAR} must be a postgres:// URL"));
    let (before_query, query) = match rest.find('?') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => (&before_query[..i], &before_query[i..]),
        None => (before_query, ""),
    };
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    PgUrl {
        userinfo,
        hostport,
        path,
        query,
    }
}

/// `url` naming database `db` instead of its own.
pub fn with_database(url: &str, db: &str) -> String {
    let u = split_url(url);
    format!("postgres://{}{}/{db}{}", u.userinfo, u.hostport, u.query)
}

/// `url` with its host and port replaced by `addr`.
pub fn with_address(url: &str, addr: SocketAddr) -> String {
    let u = split_url(url);
    format!("postgres://{}{addr}{}{}", u.userinfo, u.path, u.query)
}

/// The TCP address of the server `url` names.
pub fn server_address(url: &str) -> SocketAddr {
    let u = split_url(url);
    let hostport = if u.hostport.contains(':') {
        u.hostport.to_owned()
    } else {
        format!("{}:5432", u.hostport)
    };
    hostport
        .to_socket_addrs()
        .unwrap_or_else(|e| panic!("resolving {hostport}: {e}"))
        .find(SocketAddr::is_ipv4)
        .unwrap_or_else(|| panic!("no IPv4 address for {hostport} (the proxy needs TCP)"))
}

fn run_sql(url: &str, sql: &str) -> Result<(), tokio_postgres::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime for an admin connection");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(connection);
        let result = client.batch_execute(sql).await;
        drop(client);
        let _ = driver.await;
        result
    })
}

/// A database of its own for one test, dropped (with any sessions still
/// on it) when this is dropped.
pub struct TestDb {
    admin_url: String,
    name: String,
    /// The URL nodes use.
    pub url: String,
}

impl TestDb {
    pub fn create(server_url: &str) -> TestDb {
        let name = format!("tessera_cluster_{}", random_hex());
        run_sql(server_url, &format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|e| panic!("creating the test database {name}: {e}"));
        TestDb {
            admin_url: server_url.to_owned(),
            url: with_database(server_url, &name),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = run_sql(&self.admin_url, &sql) {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}

// ---- tessera processes ----

/// One `tessera serve` child process; killed (SIGKILL) when dropped.
pub struct Node {
    pub name: String,
    /// `http://` and the address the node bound (known once it is ready).
    pub base: String,
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Spawns a node on `store_url` and waits until it is ready.
    pub fn start(name: &str, store_url: &str, extra: &[&str]) -> Node {
        Self::start_all(&[(name, store_url)], extra)
            .pop()
            .expect("one node")
    }

    /// Spawns all nodes at once (so they race to migrate and bootstrap),
    /// then waits until every one is ready. Each listens on
    /// `127.0.0.1:0`; its address comes from the line it logs.
    pub fn start_all(specs: &[(&str, &str)], extra: &[&str]) -> Vec<Node> {
        let mut nodes: Vec<Node> = specs
            .iter()
            .map(|(name, url)| Node::spawn(name, url, extra))
            .collect();
        for node in &mut nodes {
            if let Err(log) = node.wait_ready() {
                panic!("node {} did not become ready; its log:\n{log}", node.name);
            }
        }
        nodes
    }

    fn spawn(name: &str, store_url: &str, extra: &[&str]) -> Node {
        let dir = tempfile::tempdir().expect("a temporary data directory");
        let log = dir.path().join("tessera.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
        // Nothing from the test's own environment leaks into the node.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("TESSERA_") {
                cmd.env_remove(key);
            }
        }
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(["--store", store_url])
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--shutdown-timeout", "1s"])
            .args(extra)
            .env("TESSERA_BOOTSTRAP_PASSWORD", ADMIN_PW)
            .env(
                "TESSERA_LOG",
                // tessera::server at info: the line saying where it listens.
                format!(
                    "{},tessera::server=info",
                    std::env::var("CLUSTER_TEST_NODE_LOG").unwrap_or_else(|_| "warn".into())
                ),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        let file = File::create(&log).expect("the node's log file");
        cmd.stdout(file.try_clone().expect("the node's log file"))
            .stderr(file);
        let child = cmd.spawn().expect("starting tessera");
        Node {
            name: name.to_owned(),
            base: String::new(),
            child: Some(child),
            log,
            _dir: dir,
        }
    }

    /// Polls `/_tessera/ready` until 200; `Err(log)` if the process ended
    /// or the deadline passed.
    fn wait_ready(&mut self) -> Result<(), String> {
        let http = Http::with_timeout(Duration::from_secs(2));
        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("(exited with {status})\n{}", self.log_tail(40)));
            }
            if self.base.is_empty() {
                if let Some(addr) = self.listening_address() {
                    self.base = format!("http://{addr}");
                }
            }
            if !self.base.is_empty() {
                if let Ok(r) = http.get(&self.base, READY) {
                    if r.status == 200 {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "(not ready after {READY_DEADLINE:?})\n{}",
                    self.log_tail(40)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The address in the node's "tessera is listening addr=…" line.
    fn listening_address(&self) -> Option<String> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter(|line| line.contains("tessera is listening"))
            .find_map(|line| line.split("addr=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("a running node").id()
    }

    /// `kill -9`, as a crashing machine would, and reaps the process.
    pub fn kill9(&mut self) {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args(["-9", &pid])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -9 {pid} failed: {status}");
        let exit = self
            .child
            .take()
            .expect("a running node")
            .wait()
            .expect("reaping the killed node");
        assert!(!exit.success(), "{} exited normally: {exit}", self.name);
    }

    /// SIGTERM, as an orchestrator stopping the node would; waits (at most
    /// `within`) for the process to end and returns how it ended.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -TERM {pid} failed: {status}");
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().expect("a running node");
        loop {
            if let Some(exit) = child.try_wait().expect("waiting for the node") {
                self.child = None;
                return exit;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not stop within {within:?} of SIGTERM; its log:\n{}",
                self.name,
                self.log_tail(20)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the node has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines the node logged.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- last lines logged by node {} ----\n{}",
                self.name,
                self.log_tail(20)
            );
        }
    }
}

/// Nodes on a database of their own. Fields drop in order: the nodes go
/// before their database.
pub struct Cluster {
    pub nodes: Vec<Node>,
    _db: TestDb,
}

impl Cluster {
    /// `n` nodes, started together on a fresh database.
    pub fn start(server_url: &str, n: usize, extra: &[&str]) -> Cluster {
        let db = TestDb::create(server_url);
        let names: Vec<String> = (0..n).map(|i| format!("node{i}")).collect();
        let specs: Vec<(&str, &str)> = names
            .iter()
            .map(|name| (name.as_str(), db.url.as_str()))
            .collect();
        let nodes = Node::start_all(&specs, extra);
        Cluster { nodes, _db: db }
    }

    /// The database URL the nodes use.
    pub fn store_url(&self) -> &str {
        &self._db.url
    }

    pub fn bases(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.base.clone()).collect()
    }
}

// ---- HTTP ----

/// Reads `response` completely.
fn read(started: Instant, response: reqwest::blocking::Response) -> reqwest::Result<Resp> {
    let status = response.status().as_u16();
    let text = response.text()?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Resp {
        status,
        text,
        body,
        elapsed: started.elapsed(),
    })
}

/// A response, read completely.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub text: String,
    pub body: Value,
    pub elapsed: Duration,
}

impl Resp {
    pub fn str(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string {field} in ({}) {}", self.status, self.text))
            .to_owned()
    }
}

#[derive(Clone, Copy)]
pub enum Auth<'a> {
    None,
    Basic(&'a str, &'a str),
    Bearer(&'a str),
    /// The encoded `id:secret` of an API key.
    ApiKey(&'a str),
}

/// A blocking client that keeps its connections alive across requests
/// (each test thread has its own).
pub struct Http {
    client: Client,
}

/// An access and a refresh token, as a refresh or a grant returned them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pair {
    pub access: String,
    pub refresh: String,
}

impl Pair {
    pub fn from(r: &Resp) -> Pair {
        Pair {
            access: r.str("access_token"),
            refresh: r.str("refresh_token"),
        }
    }
}

impl Http {
    pub fn new() -> Http {
        Self::with_timeout(Duration::from_secs(30))
    }

    pub fn with_timeout(timeout: Duration) -> Http {
        Http {
            client: Client::builder()
                .timeout(timeout)
                .build()
                .expect("building an HTTP client"),
        }
    }

    pub fn send(
        &self,
        method: Method,
        base: &str,
        path: &str,
        auth: Auth<'_>,
        body: Option<&Value>,
    ) -> reqwest::Result<Resp> {
        let started = Instant::now();
        let mut rb = self.client.request(method, format!("{base}{path}"));
        rb = match auth {
            Auth::None => rb,
            Auth::Basic(user, password) => rb.basic_auth(user, Some(password)),
            Auth::Bearer(token) => rb.bearer_auth(token),
            Auth::ApiKey(encoded) => rb.header("Authorization", format!("ApiKey {encoded}")),
        };
        if let Some(body) = body {
            rb = rb.json(body);
        }
        read(started, rb.send()?)
    }

    /// A POST of an `application/x-www-form-urlencoded` body (`form` is
    /// sent as it is), as the `/oauth2/*` endpoints take it.
    pub fn post_form(&self, base: &str, path: &str, form: &str) -> reqwest::Result<Resp> {
        let started = Instant::now();
        let response = self
            .client
            .post(format!("{base}{path}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.to_owned())
            .send()?;
        read(started, response)
    }

    pub fn get(&self, base: &str, path: &str) -> reqwest::Result<Resp> {
        self.send(Method::GET, base, path, Auth::None, None)
    }

    /// A password grant for the admin, requested by the admin.
    pub fn password_grant(&self, base: &str) -> reqwest::Result<Resp> {
        self.send(
            Method::POST,
            base,
            TOKEN,
            Auth::Basic(ADMIN, ADMIN_PW),
            Some(&json!({ "grant_type": "password", "username": ADMIN, "password": ADMIN_PW })),
        )
    }

    /// A refresh, requested by the admin (the client that created the pairs).
    pub fn refresh(&self, base: &str, refresh_token: &str) -> reqwest::Result<Resp> {
        self.send(
            Method::POST,
            base,
            TOKEN,
            Auth::Basic(ADMIN, ADMIN_PW),
            Some(&json!({ "grant_type": "refresh_token", "refresh_token": refresh_token })),
        )
    }

    pub fn authenticate_bearer(&self, base: &str, access_token: &str) -> reqwest::Result<Resp> {
        self.send(
            Method::GET,
            base,
            AUTHENTICATE,
            Auth::Bearer(access_token),
            None,
        )
    }

    pub fn authenticate_basic(&self, base: &str) -> reqwest::Result<Resp> {
        self.send(
            Method::GET,
            base,
            AUTHENTICATE,
            Auth::Basic(ADMIN, ADMIN_PW),
            None,
        )
    }

    /// `DELETE /_security/oauth2/token` with `body`, as the admin.
    pub fn invalidate(&self, base: &str, body: &Value) -> reqwest::Result<Resp> {
        self.send(
            Method::DELETE,
            base,
            TOKEN,
            Auth::Basic(ADMIN, ADMIN_PW),
            Some(body),
        )
    }

    /// The sum of the samples of Prometheus counter `series` (name plus
    /// labels exactly as rendered), 0 if the node has none yet.
    pub fn counter(&self, base: &str, series: &str) -> f64 {
        let r = self
            .send(
                Method::GET,
                base,
                "/_tessera/metrics",
                Auth::Basic(ADMIN, ADMIN_PW),
                None,
            )
            .expect("metrics");
        assert_eq!(r.status, 200, "metrics: {}", r.text);
        r.text
            .lines()
            .filter_map(|l| l.strip_prefix(series))
            .filter_map(|rest| rest.trim().parse::<f64>().ok())
            .sum()
    }
}

/// Unwraps a response that must have arrived.
pub fn arrived(what: &str, r: reqwest::Result<Resp>) -> Resp {
    r.unwrap_or_else(|e| panic!("{what}: the request failed: {e}"))
}

#[test]
fn url_helpers() {
    assert_eq!(
        with_database("postgres://u:p@h:1/postgres?sslmode=disable", "x"),
        "postgres://u:p@h:1/x?sslmode=disable"
    );
    assert_eq!(with_database("postgresql://h/db", "x"), "postgres://h/x");
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    assert_eq!(
        with_address("postgres://u@h:1/db?a=b", addr),
        "postgres://u@127.0.0.1:9/db?a=b"
    );
    assert_eq!(with_address("postgres://h", addr), "postgres://127.0.0.1:9");
    assert_eq!(
        server_address("postgres://u@127.0.0.1:54329/postgres"),
        "127.0.0.1:54329".parse().unwrap()
    );
}
