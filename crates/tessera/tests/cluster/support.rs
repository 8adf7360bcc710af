//! The harness: `tessera` child processes (`tessera_testkit::process`)
//! on a fresh PostgreSQL database per test, and a small blocking HTTP client
//! whose requests may fail (nodes are killed and restarted under it).

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use reqwest::Method;
use serde_json::{json, Value};

pub use tessera_testkit::postgres::{server_address, with_address, TestDb};
pub use tessera_testkit::process::Process as Node;
pub use tessera_testkit::proxy::{Mode, Proxy};
pub use tessera_testkit::server::{ADMIN, ADMIN_PW};
pub use tessera_testkit::threads::join_all;

pub const TOKEN: &str = "/_security/oauth2/token";
pub const AUTHENTICATE: &str = "/_security/_authenticate";
pub const READY: &str = "/_tessera/ready";

// ---- tessera processes ----

/// Spawns a node on `store_url` and waits until it is ready.
pub fn start_node(name: &str, store_url: &str, extra: &[&str]) -> Node {
    start_nodes(&[(name, store_url)], extra)
        .pop()
        .expect("one node")
}

/// Spawns all nodes at once (so they race to migrate and bootstrap), then
/// waits until every one is ready. Each listens on `127.0.0.1:0`; its
/// address comes from the line it logs.
pub fn start_nodes(specs: &[(&str, &str)], extra: &[&str]) -> Vec<Node> {
    let mut nodes: Vec<Node> = specs
        .iter()
        .map(|(name, url)| {
            let mut flags = vec!["--store", url, "--shutdown-timeout", "1s"];
            flags.extend_from_slice(extra);
            Node::serve(name, node_command(), None, &flags)
        })
        .collect();
    for node in &mut nodes {
        node.expect_ready();
    }
    nodes
}

/// The binary with the bootstrap password, logging at `warn` (or
/// `CLUSTER_TEST_NODE_LOG`) plus the line saying where it listens.
pub fn node_command() -> Command {
    let mut cmd = tessera_testkit::process::tessera_command(env!("CARGO_BIN_EXE_tessera").as_ref());
    cmd.env("TESSERA_BOOTSTRAP_PASSWORD", ADMIN_PW)
        .env(
            "TESSERA_LOG",
            format!(
                "{},tessera::server=info",
                std::env::var("CLUSTER_TEST_NODE_LOG").unwrap_or_else(|_| "warn".into())
            ),
        )
        .env("NO_COLOR", "1");
    cmd
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
        let db = TestDb::database(server_url);
        let names: Vec<String> = (0..n).map(|i| format!("node{i}")).collect();
        let specs: Vec<(&str, &str)> = names
            .iter()
            .map(|name| (name.as_str(), db.url.as_str()))
            .collect();
        let nodes = start_nodes(&specs, extra);
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
        self.post_form_as(base, path, Auth::None, form)
    }

    /// [`Http::post_form`] with credentials (Basic only).
    pub fn post_form_as(
        &self,
        base: &str,
        path: &str,
        auth: Auth<'_>,
        form: &str,
    ) -> reqwest::Result<Resp> {
        let started = Instant::now();
        let mut rb = self
            .client
            .post(format!("{base}{path}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form.to_owned());
        if let Auth::Basic(user, password) = auth {
            rb = rb.basic_auth(user, Some(password));
        }
        read(started, rb.send()?)
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

// ---- PostgreSQL's statistics ----

/// The one row `sql` selects in the database `url` names, read by `read`
/// (on a thread of its own, so that any test may call it).
pub fn query_row<T: Send + 'static>(
    url: &str,
    sql: &'static str,
    read: fn(&tessera_testkit::postgres::Row) -> T,
) -> T {
    let url = url.to_owned();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let client = tessera_testkit::postgres::connect_admin(&url).await;
            let row = client.query_one(sql, &[]).await.expect(sql);
            read(&row)
        })
    })
    .join()
    .expect("the query thread")
}

/// `(xact_rollback, deadlocks)` of the database `url` names.
pub fn transaction_stats(url: &str) -> (i64, i64) {
    query_row(
        url,
        "SELECT xact_rollback, deadlocks FROM pg_stat_database
          WHERE datname = current_database()",
        |row| (row.get(0), row.get(1)),
    )
}

/// The revocation epoch of the store in the database `url` names.
pub fn cache_epoch(url: &str) -> i64 {
    query_row(
        url,
        "SELECT CAST(SUM(n) AS BIGINT) FROM cache_epoch",
        |row| row.get(0),
    )
}

/// [`transaction_stats`] once the ended sessions' reports have arrived:
/// two readings in a row agree (at most five seconds).
pub fn settled_transaction_stats(url: &str) -> (i64, i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut last = transaction_stats(url);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = transaction_stats(url);
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}
