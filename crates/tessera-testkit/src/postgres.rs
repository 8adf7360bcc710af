//! The PostgreSQL server tests run against, and a database or a schema of
//! its own for each test, so that tests run in parallel and leave nothing
//! behind.
//!
//! The server is named by [`URL_VAR`] (`eval "$(bash .ci/postgres.sh
//! start)"` runs a throw-away one). Whether it can be reached is found out
//! once per test binary ([`server`]); the harness in [`crate::trials`]
//! reports the tests as ignored when it cannot, except under CI, where they
//! fail.

use std::hash::{BuildHasher, Hasher};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};
/// A row of [`connect_admin`]'s answers.
pub use tokio_postgres::Row;

pub const URL_VAR: &str = "TESSERA_TEST_POSTGRES_URL";

/// How to get a server, said when there is none.
pub const HOW_TO_START: &str = "start one with: eval \"$(bash .ci/postgres.sh start)\"";

/// The URL of a PostgreSQL server that answered, or why there is none.
/// Asked once per process.
pub fn server() -> Result<&'static str, &'static str> {
    static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let url = match std::env::var(URL_VAR) {
                Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
                _ => return Err(format!("{URL_VAR} is not set; {HOW_TO_START}")),
            };
            run_sql(&url, "SELECT 1")
                .map(|()| url.clone())
                .map_err(|e| format!("PostgreSQL at {URL_VAR}={url} cannot be reached: {e}"))
        })
        .as_ref()
        .map(String::as_str)
        .map_err(String::as_str)
}

/// Whether this runs under CI (`CI` set, and not to `false` or `0`), where
/// a test that needs PostgreSQL fails when it cannot reach it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
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

// ---- URLs ----

/// The parts of a `postgres://` URL the helpers rewrite.
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

/// `url` with its host and port replaced by `addr` (a proxy's).
pub fn with_address(url: &str, addr: SocketAddr) -> String {
    let u = split_url(url);
    format!("postgres://{}{addr}{}{}", u.userinfo, u.path, u.query)
}

/// `url` whose sessions put their tables in `schema`.
pub fn with_schema(url: &str, schema: &str) -> String {
    let options = format!("-c search_path={schema}")
        .replace('%', "%25")
        .replace(' ', "%20")
        .replace('=', "%3D")
        .replace('&', "%26");
    with_param(url, "options", &options)
}

/// `url` with the query parameter `key=value` added (`value` already
/// percent-encoded where it must be).
pub fn with_param(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={value}")
}

/// The TCP address of the server `url` names (IPv4, for the proxy).
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

// ---- SQL ----

/// Runs `sql` on a connection of its own, on a thread and runtime of its
/// own (so it may be called from plain threads and async tests alike).
pub fn run_sql(url: &str, sql: &str) -> Result<(), String> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for an admin connection");
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(|e| e.to_string())?;
            let driver = tokio::spawn(connection);
            let result = client.batch_execute(&sql).await.map_err(|e| e.to_string());
            drop(client);
            let _ = driver.await;
            result
        })
    })
    .join()
    .expect("the admin connection's thread")
}

/// A connection to `url` for a test to look at or change the database
/// directly; its driver runs on the caller's runtime.
pub async fn connect_admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connecting to the test server");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A database or a schema of its own for one test, dropped with
/// everything in it (and any session still on a database) when this is
/// dropped.
pub struct TestDb {
    admin_url: String,
    drop_sql: String,
    pub name: String,
    /// The URL that names it: the database, or the server with the schema
    /// as the search path.
    pub url: String,
}

impl TestDb {
    /// A new database on the server.
    pub fn database(server_url: &str) -> TestDb {
        let name = format!("tessera_test_{}", random_hex());
        let url = with_database(server_url, &name);
        Self::create(server_url, "DATABASE", name, url, "WITH (FORCE)")
    }

    /// A new, empty schema in the server's database.
    pub fn schema(server_url: &str) -> TestDb {
        let name = format!("tessera_test_{}", random_hex());
        let url = with_schema(server_url, &name);
        Self::create(server_url, "SCHEMA", name, url, "CASCADE")
    }

    fn create(server_url: &str, kind: &str, name: String, url: String, drop: &str) -> TestDb {
        run_sql(server_url, &format!("CREATE {kind} {name}"))
            .unwrap_or_else(|e| panic!("creating the test {kind} {name}: {e}"));
        TestDb {
            admin_url: server_url.to_owned(),
            drop_sql: format!("DROP {kind} IF EXISTS {name} {drop}"),
            name,
            url,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Err(e) = run_sql(&self.admin_url, &self.drop_sql) {
            eprintln!("could not drop {}: {e}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_rewritten_part_by_part() {
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
        assert_eq!(
            with_schema("postgres://u@h/db", "s"),
            "postgres://u@h/db?options=-c%20search_path%3Ds"
        );
    }
}
