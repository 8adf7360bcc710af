//! A real Tessera node started in-process on its own tokio runtime, with a
//! fresh SQLite data directory, listening on a real socket that the server
//! itself bound on `127.0.0.1:0`; driven over real HTTP with blocking
//! clients from plain threads.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tessera::config::{Config, ServeArgs, ThrottleArgs};
use tessera::server::{self, Running};

use crate::http::Api;

/// The bootstrap superuser and the password every test server and node
/// gives it.
pub const ADMIN: &str = "elastic";
pub const ADMIN_PW: &str = "elastic-bootstrap-pw";

/// Settings a test may change; everything else is the default.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub access_token_ttl: Option<&'static str>,
    pub refresh_window: Option<&'static str>,
    /// `"false"`: Elasticsearch's behaviour (reuse is only refused).
    pub refresh_reuse_revokes_family: Option<&'static str>,
    /// `"false"`: Elasticsearch's behaviour (user changes leave tokens alive).
    pub revoke_on_user_change: Option<&'static str>,
    /// Time stands still until [`TestServer::advance`] moves it.
    pub manual_clock: bool,
    pub max_body_bytes: Option<&'static str>,
    pub request_timeout: Option<&'static str>,
    pub header_read_timeout: Option<&'static str>,
    pub idle_timeout: Option<&'static str>,
    /// The account lock, source budget and trusted proxies.
    pub throttle: ThrottleArgs,
    pub max_connections: Option<&'static str>,
    pub cleanup_interval: Option<&'static str>,
    /// Defaults to [`ADMIN_PW`].
    pub bootstrap_password: Option<&'static str>,
    /// The OAuth issuer (defaults to `http://` and the bound address).
    pub issuer: Option<&'static str>,
    /// An address for the open metrics listener (`127.0.0.1:0`).
    pub metrics_listen: Option<&'static str>,
    /// A config file (for what only the file configures: the realms).
    pub config: Option<PathBuf>,
    /// Where the audit log is written.
    pub audit_log: Option<PathBuf>,
    pub audit_include: Option<&'static str>,
    pub audit_exclude: Option<&'static str>,
    pub access_log: Option<&'static str>,
    pub node_name: Option<&'static str>,
    pub cluster_name: Option<&'static str>,
    /// `"token"`: Elasticsearch's invalidation (the named token alone).
    pub token_invalidation: Option<&'static str>,
}

/// `pub fn name(self, value) -> Self` for each string setting.
macro_rules! setters {
    ($($field:ident),* $(,)?) => {
        $(
            pub fn $field(self, value: &'static str) -> Self {
                Self {
                    $field: Some(value),
                    ..self
                }
            }
        )*
    };
}

/// Each setting as a builder step:
/// `Options::default().access_token_ttl("1s").manual_clock()`.
impl Options {
    setters!(
        access_token_ttl,
        refresh_window,
        max_body_bytes,
        cleanup_interval,
        request_timeout,
        header_read_timeout,
        idle_timeout,
        max_connections,
        refresh_reuse_revokes_family,
        bootstrap_password,
        revoke_on_user_change,
        issuer,
        metrics_listen,
        audit_include,
        audit_exclude,
        access_log,
        node_name,
        cluster_name,
        token_invalidation,
    );

    /// The audit log, written to `path`.
    pub fn audit_log(self, path: &Path) -> Self {
        Self {
            audit_log: Some(path.to_owned()),
            ..self
        }
    }

    /// Time stands still until [`TestServer::advance`] moves it.
    pub fn manual_clock(self) -> Self {
        Self {
            manual_clock: true,
            ..self
        }
    }

    pub fn throttle(self, throttle: ThrottleArgs) -> Self {
        Self { throttle, ..self }
    }

    /// Account locks that last an hour, so that no test depends on how
    /// fast the machine is, and the rest of `throttle`.
    pub fn hour_long_locks(throttle: ThrottleArgs) -> Self {
        Self::default().throttle(ThrottleArgs {
            lockout_delays: Some("1h".into()),
            ..throttle
        })
    }
}

/// A per-source budget of `burst` failures that refills slowly (one every
/// 100 seconds), so that a test spends it deterministically.
pub fn source_budget(burst: &str) -> ThrottleArgs {
    ThrottleArgs {
        source_failure_burst: Some(burst.into()),
        source_failure_rate: Some("0.01".into()),
        ..Default::default()
    }
}

/// The variable that runs a whole test binary in one invalidation mode
/// (`make test` runs the API tests again with `token`): the
/// `token_invalidation` of every server and process a test starts without
/// naming one.
pub const TOKEN_INVALIDATION_ENV: &str = "TESSERA_TEST_TOKEN_INVALIDATION";

/// The mode [`TOKEN_INVALIDATION_ENV`] names, if it is set.
pub fn token_invalidation_from_env() -> Option<String> {
    std::env::var(TOKEN_INVALIDATION_ENV)
        .ok()
        .filter(|v| !v.is_empty())
}

/// Whether the servers of this run invalidate the named token alone
/// (`token_invalidation = "token"`), for tests whose expectations depend
/// on the mode.
pub fn token_mode() -> bool {
    token_invalidation_from_env().as_deref() == Some("token")
}

pub struct TestServer {
    runtime: Option<tokio::runtime::Runtime>,
    running: Option<Running>,
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    api: Api,
    data_dir: PathBuf,
    clock: tessera_http::clock::Clock,
    _temp: Option<tempfile::TempDir>,
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
            issuer: options.issuer.map(Into::into),
            throttle: options.throttle.clone(),
            shutdown_timeout: Some("5s".into()),
            metrics_listen: options.metrics_listen.map(Into::into),
            config: options.config.clone(),
            observability: tessera::config::ObservabilityArgs {
                audit_log: options.audit_log.as_ref().map(|p| p.display().to_string()),
                audit_include: options.audit_include.map(Into::into),
                audit_exclude: options.audit_exclude.map(Into::into),
                access_log: options.access_log.map(Into::into),
                log_format: None,
            },
            compat: tessera::config::CompatArgs {
                node_name: options.node_name.map(Into::into),
                cluster_name: options.cluster_name.map(Into::into),
                token_invalidation: options
                    .token_invalidation
                    .map(Into::into)
                    .or_else(token_invalidation_from_env),
            },
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
            api: Api::new(&format!("http://{addr}")),
            data_dir: data_dir.to_owned(),
            clock,
            _temp: None,
        }
    }

    /// Moves the server's manual clock (see [`Options::manual_clock`]).
    pub fn advance(&self, ms: i64) {
        self.clock.advance(ms);
    }

    /// The server's current time (its manual clock, if it has one).
    pub fn now(&self) -> i64 {
        self.clock.now()
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
}

/// A test server is a client of itself: `srv.get(…)`, `srv.put_user(…)`.
impl std::ops::Deref for TestServer {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
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
