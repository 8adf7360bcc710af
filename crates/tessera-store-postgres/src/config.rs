//! [`PostgresConfig`]: how the store reaches the database, and how long
//! it waits for it.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::cache::DEFAULT_CACHE_TTL;

/// How to reach the database and how long to wait for it.
#[derive(Clone)]
pub struct PostgresConfig {
    /// A `postgres://user:password@host:port/database` URL. Its query may
    /// carry driver settings, e.g. `?options=-c%20search_path%3Dtessera`,
    /// and libpq's TLS settings: `sslmode` (`disable`, `prefer`, the
    /// default, `require`, `verify-ca`, `verify-full`), `sslrootcert`,
    /// `sslcert` and `sslkey` (`tls.rs`).
    pub url: String,
    /// The PEM file of the certificate authorities the server's
    /// certificate is checked against (an `sslrootcert` in the URL wins).
    /// Given, the default `sslmode` is `verify-full`.
    pub ca_file: Option<PathBuf>,
    /// The most connections this store opens.
    pub pool_size: usize,
    /// Limit on opening one connection (TCP connect and handshake).
    pub connect_timeout: Duration,
    /// The server-side limit on one statement, set on every connection.
    pub statement_timeout: Duration,
    /// Limit on waiting for a free pooled connection.
    pub acquire_timeout: Duration,
    /// `T`: how long this node serves what authentication read, and how
    /// long after its commit a write that takes something back waits before
    /// it answers (`cache.rs`). Zero turns both off.
    pub cache_ttl: Duration,
}

impl PostgresConfig {
    /// The defaults: 16 connections and 5 s for each timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ca_file: None,
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(5),
            acquire_timeout: Duration::from_secs(5),
            cache_ttl: DEFAULT_CACHE_TTL,
        }
    }
}

impl fmt::Debug for PostgresConfig {
    /// Leaves the URL out: it may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &"<redacted>")
            .field("ca_file", &self.ca_file)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("cache_ttl", &self.cache_ttl)
            .finish()
    }
}
