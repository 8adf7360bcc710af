//! Tests against a real PostgreSQL server, named by the environment
//! variable `TESSERA_TEST_POSTGRES_URL` (`.ci/postgres.sh start` runs one
//! and prints the line that sets it). Without it the tests are skipped,
//! except under CI, where they fail.

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_store::conformance::{self, DynStore};
use tessera_store::{Store, StoreError, UserUpsert};
use tessera_store_postgres::{PostgresConfig, PostgresStore};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio_postgres::NoTls;

const URL_VAR: &str = "TESSERA_TEST_POSTGRES_URL";

fn base_url() -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var_os("CI").is_some() => {
            panic!("PostgreSQL tests must run in CI: set {URL_VAR} (eval \"$(bash .ci/postgres.sh start)\")")
        }
        _ => {
            eprintln!(
                "SKIPPED: {URL_VAR} is not set, so the PostgreSQL tests do not run. \
                 Start a server with: eval \"$(bash .ci/postgres.sh start)\""
            );
            None
        }
    }
}

fn unique_name() -> String {
    format!("tessera_test_{:016x}", rand::random::<u64>())
}

/// `url` with its query extended by `param=value` (value percent-encoded
/// enough for the characters used here).
fn with_param(url: &str, param: &str, value: &str) -> String {
    let encoded = value
        .replace('%', "%25")
        .replace(' ', "%20")
        .replace('=', "%3D")
        .replace('&', "%26");
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}={encoded}")
}

/// `url` pointing at database `db` instead.
fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let rest = base
        .strip_prefix("postgres://")
        .or_else(|| base.strip_prefix("postgresql://"))
        .expect("a postgres:// URL");
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    let mut out = format!("postgres://{authority}/{db}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// A store whose tables live in a new schema of their own.
fn with_schema(url: &str, schema: &str) -> String {
    with_param(url, "options", &format!("-c search_path={schema}"))
}

/// A new, empty schema of a unique name; returns its name.
async fn create_schema(admin: &tokio_postgres::Client) -> String {
    let name = unique_name();
    admin
        .batch_execute(&format!("CREATE SCHEMA {name}"))
        .await
        .unwrap();
    name
}

/// A store on `url` (which must be reachable).
async fn connect(url: &str) -> PostgresStore {
    PostgresStore::connect(PostgresConfig::new(url))
        .await
        .expect("connecting the store")
}

async fn connect_admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("connecting to the test server");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn user(name: &str) -> UserUpsert {
    UserUpsert {
        username: name.into(),
        password_hash: Some("hash".into()),
        roles: vec!["superuser".into()],
        full_name: None,
        email: None,
        metadata: Default::default(),
        enabled: true,
        revoke_tokens: false,
    }
}

/// The shared conformance suite, each case on a fresh schema, dropped when
/// the case has passed.
mod conformance_cases {
    use super::*;

    /// Drops its schema when dropped (on a thread of its own, since this
    /// runs inside the test's runtime).
    pub struct Schema {
        base: String,
        name: String,
    }

    impl Drop for Schema {
        fn drop(&mut self) {
            let (base, name) = (self.base.clone(), self.name.clone());
            let _ = std::thread::spawn(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(async {
                        let admin = connect_admin(&base).await;
                        let _ = admin
                            .batch_execute(&format!("DROP SCHEMA {name} CASCADE"))
                            .await;
                    })
            })
            .join();
        }
    }

    async fn fresh() -> Option<(DynStore, Schema)> {
        let base = base_url()?;
        let admin = connect_admin(&base).await;
        let name = create_schema(&admin).await;
        let store = connect(&with_schema(&base, &name)).await;
        Some((Arc::new(store) as DynStore, Schema { base, name }))
    }

    tessera_store::conformance_tests!(fresh);
}

/// Nodes starting at once on an empty database all come up, and the
/// schema is applied exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_connects_migrate_once() {
    let Some(base) = base_url() else { return };
    let admin = connect_admin(&base).await;
    let db = unique_name();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .await
        .unwrap();
    let url = with_database(&base, &db);
    {
        let connects: Vec<_> = (0..4)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { PostgresStore::connect(PostgresConfig::new(url)).await })
            })
            .collect();
        let mut stores = Vec::new();
        for c in connects {
            stores.push(c.await.unwrap().expect("every concurrent connect succeeds"));
        }
        let check = connect_admin(&url).await;
        let versions: Vec<i32> = check
            .query(
                "SELECT version FROM tessera_schema_migrations ORDER BY version",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
        assert!(stores[0].put_user(user("a")).await.unwrap());
        assert_eq!(
            stores[3].get_user("a").await.unwrap().unwrap().username,
            "a"
        );
        // A later start finds the schema in place.
        let again = connect(&url).await;
        assert_eq!(again.list_users().await.unwrap().len(), 1);
    }
    let _ = admin
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await;
}

/// Migration 4 fills in where the pairs stored before it came from: a pair
/// an API key minted under version 3 dies when the key is invalidated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_4_finds_the_sources_of_older_pairs() {
    let Some(base) = base_url() else { return };
    let admin = connect_admin(&base).await;
    let schema = create_schema(&admin).await;
    let url = with_schema(&base, &schema);
    let mut key = tessera_domain::api_key::mint(
        &conformance::subject("owner"),
        tessera_domain::api_key::NewKey {
            name: "k".into(),
            expires_at: None,
            role_descriptors: Default::default(),
            metadata: Default::default(),
        },
        1_000,
    )
    .record;
    key.created_at = 1_000;
    let by_key = key.authentication();
    let (old, old_pair) =
        tessera_domain::TokenRecord::issue(&by_key, by_key.client_ref(), true, 1_000, 60_000);
    {
        let store = connect(&url).await;
        store.insert_api_key(&key).await.unwrap();
        store.insert_token(&old).await.unwrap();
    }
    // Back to what version 3 left behind.
    admin
        .batch_execute(&format!(
            "ALTER TABLE {schema}.tokens DROP COLUMN not_after, DROP COLUMN parent_family,
               DROP COLUMN api_key_id, DROP COLUMN client_username;
             DELETE FROM {schema}.tessera_schema_migrations WHERE version = 4;"
        ))
        .await
        .unwrap();
    let store = connect(&url).await;
    let found = store
        .find_by_access(&old_pair.access.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, old);
    let filter = tessera_store::ApiKeyFilter {
        ids: Some(vec![key.id.clone()]),
        ..Default::default()
    };
    store.invalidate_api_keys(&filter, 2_000).await.unwrap();
    let found = store
        .find_by_access(&old_pair.access.hash())
        .await
        .unwrap()
        .unwrap();
    assert!(found.access_invalidated && found.refresh_invalidated);
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// A database at schema version 2 (before OAuth) is brought to version 3
/// at connect: its tokens keep working, unrestricted, and scoped tokens and
/// OAuth clients can be stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migration_3_upgrades_a_version_2_database() {
    let Some(base) = base_url() else { return };
    let admin = connect_admin(&base).await;
    let schema = create_schema(&admin).await;
    let url = with_schema(&base, &schema);
    let subject = conformance::subject("old");
    let (old, old_pair) =
        tessera_domain::TokenRecord::issue(&subject, subject.client_ref(), true, 1_000, 60_000);
    {
        let store = connect(&url).await;
        store.insert_token(&old).await.unwrap();
    }
    // Back to what version 2 left behind.
    admin
        .batch_execute(&format!(
            "ALTER TABLE {schema}.tokens DROP COLUMN scope;
             DROP TABLE {schema}.oauth_clients;
             DELETE FROM {schema}.tessera_schema_migrations WHERE version = 3;"
        ))
        .await
        .unwrap();
    let store = connect(&url).await;
    let versions: Vec<i32> = admin
        .query(
            &format!("SELECT version FROM {schema}.tessera_schema_migrations ORDER BY version"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    let found = store
        .find_by_access(&old_pair.access.hash())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, old);
    assert_eq!(found.scope, None);
    let client = tessera_domain::oauth::mint_client(Default::default(), 5).record;
    assert!(store.put_oauth_client(&client).await.unwrap());
    let (scoped, pair) = tessera_domain::TokenRecord::issue_scoped(
        &subject,
        client.client_ref(),
        Some(vec!["a".into()]),
        false,
        1_000,
        60_000,
    );
    store.insert_token(&scoped).await.unwrap();
    assert_eq!(
        store
            .find_by_access(&pair.access.hash())
            .await
            .unwrap()
            .unwrap(),
        scoped
    );
    drop(store);
    let _ = admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await;
}

/// Nodes bootstrapping at once (each with its own pool) create exactly one user.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_bootstraps_create_one_user() {
    let Some(base) = base_url() else { return };
    let admin = connect_admin(&base).await;
    for round in 0..10 {
        let schema = create_schema(&admin).await;
        let url = with_schema(&base, &schema);
        let mut nodes = Vec::new();
        for _ in 0..4 {
            let mut config = PostgresConfig::new(url.clone());
            config.pool_size = 2;
            nodes.push(Arc::new(PostgresStore::connect(config).await.unwrap()));
        }
        let tasks: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let node = Arc::clone(node);
                // Half the nodes use the same name, half different ones.
                let name = if i % 2 == 0 {
                    "elastic".to_string()
                } else {
                    format!("node{i}")
                };
                tokio::spawn(async move { node.bootstrap_user(user(&name)).await })
            })
            .collect();
        let mut created = 0;
        for t in tasks {
            created += usize::from(t.await.unwrap().expect("bootstrap"));
        }
        assert_eq!(
            created, 1,
            "round {round}: exactly one bootstrap creates a user"
        );
        assert_eq!(
            nodes[0].list_users().await.unwrap().len(),
            1,
            "round {round}"
        );
        drop(nodes);
        let _ = admin
            .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await;
    }
}

/// What a [`Proxy`] does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Forward both ways.
    Open,
    /// Close every connection and refuse new ones.
    Cut,
    /// Keep connections (and accept new ones) but pass nothing: a network
    /// that silently drops packets.
    Stall,
}

/// A TCP proxy in front of the test server that can fail on demand.
struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    /// Forwarders still holding sockets.
    live: Arc<AtomicUsize>,
}

impl Proxy {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0)));
        let addr = listener.local_addr().unwrap();
        let (mode, rx) = watch::channel(Mode::Open);
        let live = Arc::new(AtomicUsize::new(0));
        tokio::spawn(accept_loop(listener, addr, upstream, rx, Arc::clone(&live)));
        Self { addr, mode, live }
    }

    /// Switches mode. A cut waits until every connection is closed; then
    /// the clients get a moment to notice closed sockets.
    async fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
        if mode == Mode::Cut {
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.live.load(SeqCst) > 0 {
                assert!(
                    Instant::now() < deadline,
                    "the proxy did not close its connections"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn listen(addr: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(addr).unwrap();
    socket.listen(64).unwrap()
}

async fn accept_loop(
    first: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    live: Arc<AtomicUsize>,
) {
    let mut listener = Some(first);
    loop {
        let current = *mode.borrow_and_update();
        match (current, listener.take()) {
            (Mode::Cut, held) => {
                // Dropping the listener makes new connections fail at once.
                drop(held);
                if mode.changed().await.is_err() {
                    return;
                }
            }
            (_, held) => {
                let l = held.unwrap_or_else(|| listen(addr));
                tokio::select! {
                    accepted = l.accept() => {
                        if let Ok((socket, _)) = accepted {
                            live.fetch_add(1, SeqCst);
                            let (rx, live) = (mode.clone(), Arc::clone(&live));
                            tokio::spawn(async move {
                                forward(socket, upstream, rx).await;
                                live.fetch_sub(1, SeqCst);
                            });
                        }
                    }
                    changed = mode.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                }
                listener = Some(l);
            }
        }
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let start = *mode.borrow_and_update();
    if start == Mode::Open {
        if let Ok(mut server) = TcpStream::connect(upstream).await {
            tokio::select! {
                _ = copy_bidirectional(&mut client, &mut server) => return,
                _ = mode.wait_for(|m| *m != Mode::Open) => {}
            }
            if *mode.borrow() == Mode::Stall {
                // Hold both ends, passing nothing, until the stall ends.
                let _ = mode.wait_for(|m| *m != Mode::Stall).await;
            }
            return;
        }
    }
    if start == Mode::Stall {
        let _ = mode.wait_for(|m| *m != Mode::Stall).await;
    }
}

fn upstream_of(url: &str) -> (SocketAddr, String) {
    let config: tokio_postgres::Config = url.parse().unwrap();
    let host = match &config.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        #[allow(unreachable_patterns)]
        _ => panic!("the outage test needs a TCP address in {URL_VAR}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .unwrap()
        .find(SocketAddr::is_ipv4)
        .expect("an IPv4 address for the test server");
    let mut rest = String::new();
    if let Some(user) = config.get_user() {
        rest.push_str(user);
        if let Some(pw) = config.get_password() {
            rest.push(':');
            for b in pw {
                if b.is_ascii_alphanumeric() {
                    rest.push(char::from(*b));
                } else {
                    rest.push_str(&format!("%{b:02X}"));
                }
            }
        }
        rest.push('@');
    }
    (addr, rest)
}

async fn assert_unavailable<T: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, StoreError>>,
) {
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"));
    let took = started.elapsed();
    eprintln!("{what}: {took:?}");
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "{what}: expected Unavailable, got {result:?}"
    );
    assert!(took < Duration::from_secs(5), "{what} took {took:?}");
}

/// A database that goes away, or stops answering, makes calls fail fast
/// with `Unavailable`; once it is back the same store works again.
///
/// While stalled, a call on a pooled connection ends at the client-side
/// attempt limit (twice the statement timeout) and a call that needs a new
/// connection ends at the connect timeout; both paths are taken below.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_is_unavailable_and_recovers() {
    let Some(base) = base_url() else { return };
    let admin = connect_admin(&base).await;
    let schema = create_schema(&admin).await;
    let (upstream, credentials) = upstream_of(&base);
    let dbname = {
        let c: tokio_postgres::Config = base.parse().unwrap();
        c.get_dbname().unwrap_or("postgres").to_owned()
    };
    let proxy = Proxy::start(upstream).await;
    let url = with_schema(
        &format!("postgres://{credentials}{}/{dbname}", proxy.addr),
        &schema,
    );
    let config = PostgresConfig {
        pool_size: 4,
        connect_timeout: Duration::from_secs(1),
        statement_timeout: Duration::from_secs(1),
        acquire_timeout: Duration::from_secs(1),
        ..PostgresConfig::new(url)
    };
    let store = PostgresStore::connect(config.clone()).await.unwrap();
    assert!(store.put_user(user("joe")).await.unwrap());
    // Open a few pooled connections for the outage to break.
    let (a, b, c) = tokio::join!(store.get_user("joe"), store.get_user("joe"), store.ping());
    a.unwrap();
    b.unwrap();
    c.unwrap();

    for outage in [Mode::Cut, Mode::Stall, Mode::Cut] {
        proxy.set(outage).await;
        assert_unavailable(
            &format!("connect during {outage:?}"),
            PostgresStore::connect(config.clone()),
        )
        .await;
        assert_unavailable(&format!("ping during {outage:?}"), store.ping()).await;
        assert_unavailable(
            &format!("get_user during {outage:?}"),
            store.get_user("joe"),
        )
        .await;
        assert_unavailable(
            &format!("put_user during {outage:?}"),
            store.put_user(user("amy")),
        )
        .await;
        proxy.set(Mode::Open).await;
        store.ping().await.expect("ping after the outage");
        let joe = store
            .get_user("joe")
            .await
            .expect("get_user after the outage");
        assert_eq!(joe.unwrap().username, "joe");
        store
            .put_user(user("amy"))
            .await
            .expect("put_user after the outage");
    }
    drop(store);
    let _ = admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await;
}

/// The statement timeout is set on the store's sessions: a statement
/// stuck behind a lock is cancelled by the server, the call answers
/// `Unavailable`, and the connection stays usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn statement_timeout_cancels_a_blocked_call() {
    let Some(base) = base_url() else { return };
    let mut admin = connect_admin(&base).await;
    let schema = create_schema(&admin).await;
    let store = PostgresStore::connect(PostgresConfig {
        pool_size: 1,
        statement_timeout: Duration::from_millis(800),
        ..PostgresConfig::new(with_schema(&base, &schema))
    })
    .await
    .unwrap();
    assert!(store.put_user(user("joe")).await.unwrap());

    let locker = admin.transaction().await.unwrap();
    locker
        .batch_execute(&format!(
            "LOCK TABLE {schema}.users IN ACCESS EXCLUSIVE MODE"
        ))
        .await
        .unwrap();
    let started = Instant::now();
    let blocked = store.get_user("joe").await;
    let took = started.elapsed();
    // Cancelled by the server (query_canceled), not by the client-side limit.
    assert!(
        matches!(&blocked, Err(StoreError::Unavailable(m)) if m.contains("57014")),
        "{blocked:?}"
    );
    assert!(
        took >= Duration::from_millis(700) && took < Duration::from_secs(5),
        "{took:?}"
    );
    locker.rollback().await.unwrap();

    assert_eq!(
        store.get_user("joe").await.unwrap().unwrap().username,
        "joe"
    );
    drop(store);
    let _ = admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await;
}

#[test]
fn url_helpers() {
    assert_eq!(
        with_database("postgres://u@h:1/postgres?sslmode=disable", "x"),
        "postgres://u@h:1/x?sslmode=disable"
    );
    assert_eq!(
        with_schema("postgres://u@h/db", "s"),
        "postgres://u@h/db?options=-c%20search_path%3Ds"
    );
}
