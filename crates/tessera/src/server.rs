//! Starting and stopping a Tessera node.

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tessera_domain::crypto::Secret;
use tessera_domain::privilege::SUPERUSER_ROLE;
use tessera_domain::user;
use tessera_http::audit::Audit;
use tessera_http::telemetry;
use tessera_http::{AppState, MetricsRender};
use tessera_store::{Store, StoreError, UserUpsert};
use tessera_store_postgres::{PostgresConfig, PostgresStore};
use tessera_store_sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, StoreLocation};
use crate::connections;
use crate::tls::Tls;

/// The superuser created on first start.
pub const BOOTSTRAP_USER: &str = "elastic";

/// A started node.
pub struct Running {
    pub addr: SocketAddr,
    /// Where the open metrics listener (`metrics_listen`) is bound, if set.
    pub metrics_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
    audit: Audit,
}

impl Running {
    /// Stops accepting connections, lets in-flight requests finish (up to
    /// the shutdown timeout) and waits for the server to end.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.wait().await
    }

    /// Waits until the server ends by itself (after `stop_on` fired).
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.task.await.context("the server task failed");
        // What the last requests audited is on disk before the node ends.
        let audit = self.audit;
        let _ = tokio::task::spawn_blocking(move || audit.close()).await;
        served?
    }
}

/// Opens the configured store. `serving` is true for the server, which on
/// the embedded store takes the database for itself and caches what
/// authentication reads; other commands open it as guests.
pub async fn open_store(config: &Config, serving: bool) -> anyhow::Result<Arc<dyn Store>> {
    match &config.store {
        StoreLocation::Sqlite(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                prepare_data_dir(parent)?;
            }
            let open = if serving {
                SqliteStore::open_serving
            } else {
                SqliteStore::open
            };
            // Opening migrates the file and may wait for its lock: blocking
            // work, off the async threads.
            let at = path.clone();
            let store = tokio::task::spawn_blocking(move || open(&at))
                .await
                .context("opening the store panicked")?
                .with_context(|| format!("cannot open the store at {}", path.display()))?;
            Ok(Arc::new(store))
        }
        StoreLocation::Postgres { wait, .. } => {
            let pg = config.store.postgres_config().expect("a PostgreSQL store");
            let store = connect_postgres(pg, *wait).await?;
            Ok(Arc::new(store))
        }
    }
}

/// Connects to PostgreSQL, waiting up to `wait` (with backoff and a log
/// line per attempt) while the database cannot be reached: nodes started
/// with their database need not be started after it. Errors name the host
/// and port, never the password.
async fn connect_postgres(config: PostgresConfig, wait: Duration) -> anyhow::Result<PostgresStore> {
    let target = postgres_target(&config.url);
    let deadline = tokio::time::Instant::now() + wait;
    let mut backoff = Duration::from_millis(250);
    for attempt in 1.. {
        match PostgresStore::connect(config.clone()).await {
            Ok(store) => return Ok(store),
            Err(StoreError::Unavailable(cause)) if tokio::time::Instant::now() < deadline => {
                let pause = backoff.min(deadline - tokio::time::Instant::now());
                tracing::warn!(
                    store = %target,
                    attempt,
                    retry_in_ms = pause.as_millis() as u64,
                    cause,
                    "the PostgreSQL store cannot be reached yet; waiting for it (store_wait)"
                );
                tokio::time::sleep(pause).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                return Err(e).with_context(|| {
                    let waited = if wait.is_zero() {
                        "0s".into()
                    } else {
                        format!("{wait:?}")
                    };
                    format!("cannot open the PostgreSQL store at {target} (store_wait: {waited})")
                })
            }
        }
    }
    unreachable!("the loop returns")
}

/// `host:port` of a PostgreSQL URL, for messages: never its user or
/// password.
fn postgres_target(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host_port {
        "" => "localhost:5432".to_owned(),
        h if h.ends_with(']') || !h.contains(':') => format!("{h}:5432"),
        h => h.to_owned(),
    }
}

/// Creates the data directory 0700 (whatever the umask) if it is missing;
/// warns if an existing one is open to its group or to others, which can
/// then list it and, were a file in it ever readable, read the store.
fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => anyhow::bail!(
            "the data directory {} is not a directory (--data-dir names a file?)",
            crate::admin::absolute(dir).display()
        ),
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(
                    target: "tessera::security",
                    dir = %dir.display(),
                    mode = %format!("{mode:04o}"),
                    "the data directory is accessible to its group or to others; \
                     restrict it with chmod 700"
                );
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DATA_DIR_MODE)
            .create(dir)
            .and_then(|()| {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DATA_DIR_MODE))
            })
            .with_context(|| format!("cannot create the data directory {}", dir.display())),
        Err(e) => {
            Err(e).with_context(|| format!("cannot read the data directory {}", dir.display()))
        }
    }
}

/// The mode of a data directory Tessera creates.
const DATA_DIR_MODE: u32 = 0o700;

fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    telemetry::SECONDS_BUCKETS,
                )
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            telemetry::describe();
            // Histogram samples pile up in the recorder until they are
            // folded into their buckets: by a scrape, or by this upkeep.
            // Without it a server nobody scrapes grows without bound.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                })
                .ok()?;
            Some(handle)
        })
        .clone()
}

/// Creates the `elastic` superuser if the store has no users at all.
async fn bootstrap(store: &dyn Store, password: Option<&str>) -> anyhow::Result<()> {
    let (password, generated) = match password {
        Some(p) => (p.to_owned(), false),
        None => (generate_password(), true),
    };
    let hash = {
        let password = password.clone();
        tokio::task::spawn_blocking(move || user::hash_password(&password)).await?
    };
    let created = store
        .bootstrap_user(UserUpsert {
            username: BOOTSTRAP_USER.into(),
            password_hash: Some(hash),
            roles: vec![SUPERUSER_ROLE.into()],
            full_name: None,
            email: None,
            metadata: Default::default(),
            enabled: true,
            revoke_tokens: false,
        })
        .await?;
    if !created && !generated {
        tracing::warn!(
            "the bootstrap password (TESSERA_BOOTSTRAP_PASSWORD, TESSERA_BOOTSTRAP_PASSWORD_FILE \
             or `bootstrap_password`) was ignored: it only creates `{BOOTSTRAP_USER}` in a store \
             without users, and this store has users; change a password with \
             `tessera user reset-password USER` instead"
        );
    }
    if created {
        if generated {
            // Printed once, to stderr only, never to the log.
            eprintln!(
                "\nCreated the superuser `{BOOTSTRAP_USER}` with the generated password:\n\n    {password}\n\nIt is shown only this once. Set TESSERA_BOOTSTRAP_PASSWORD to choose it instead.\n"
            );
        } else {
            tracing::info!(user = BOOTSTRAP_USER, "created the bootstrap superuser");
        }
    }
    Ok(())
}

fn generate_password() -> String {
    crate::admin::users::generate_password().expose().to_owned()
}

/// Removes expired records forever: every `cleanup_interval`, one pass
/// that purges everything expired by then in batches of `cleanup_batch`
/// (`tessera_store::cleanup::purge_backlog`), so the store keeps pace with
/// expiry at any creation rate.
fn spawn_cleanup(store: Arc<dyn Store>, config: &Config, mut stop: watch::Receiver<bool>) {
    let (interval, batch) = (config.cleanup_interval, config.cleanup_batch);
    let clock = config.http.clock.clone();
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = stop.changed() => return,
            }
            let stopping = stop.clone();
            let pass = tessera_store::cleanup::purge_backlog(
                store.as_ref(),
                clock.now(),
                batch,
                move || *stopping.borrow(),
                |n| metrics::counter!("tessera_tokens_purged_total").increment(n),
            )
            .await;
            match pass {
                Ok(pass) if pass.batches > 1 => {
                    tracing::debug!(purged = pass.purged, batches = pass.batches, "cleanup pass");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "expired-token cleanup failed; will retry"),
            }
        }
    });
}

/// Opens the store, bootstraps it, binds and serves until `stop_on`
/// resolves (or [`Running::shutdown`] is called).
///
/// The order matters: the certificate is checked and the port bound before
/// the store is opened, so that a wrong key or a taken port fails before
/// anything is created (a generated `elastic` password is never printed by
/// a node that then fails to start).
pub async fn start(
    config: Config,
    stop_on: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        store = %config.store_description(),
        data_dir = %crate::admin::absolute(&config.data_dir).display(),
        "starting tessera"
    );
    config.warn_about_issuer();
    crate::tls::install_provider();
    let tls = config.tls.clone().map(Tls::load).transpose()?;
    // The audit log's file too is checked before anything is created.
    let audit_log = crate::audit::open(&config)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let store = open_store(&config, true).await?;
    bootstrap(
        store.as_ref(),
        config.bootstrap_password.as_ref().map(Secret::expose),
    )
    .await?;
    let mut settings = config.http.clone();
    settings.audit = audit_log;
    let audit = settings.audit.clone();
    if config.issuer.is_none() {
        // The address actually bound (the port may have been 0).
        settings.issuer = crate::config::default_issuer(addr, tls.is_some());
    }
    let render: Option<MetricsRender> = metrics_handle().map(|h| {
        let store = Arc::clone(&store);
        Arc::new(move || {
            telemetry::record_pool(store.as_ref());
            h.render()
        }) as MetricsRender
    });
    // OpenID providers to discover: in the background, so that a provider
    // that is down delays nothing (its realm refuses logins meanwhile).
    {
        let oidc = settings.oidc.clone();
        let now = settings.clock.now();
        tokio::spawn(async move { oidc.discover_all(now).await });
    }
    let state = AppState::new(Arc::clone(&store), settings, render.clone());
    let app = tessera_http::router(state);

    let (stop, stop_rx) = watch::channel(false);
    let metrics_addr = match (config.metrics_listen, render) {
        (Some(at), Some(render)) => Some(serve_metrics(at, render, stop_rx.clone()).await?),
        (Some(_), None) => {
            tracing::warn!("metrics_listen is set but this process has no metrics recorder");
            None
        }
        (None, _) => None,
    };
    spawn_cleanup(Arc::clone(&store), &config, stop_rx.clone());
    if let Some(tls) = &tls {
        tls.spawn_reloader(stop_rx.clone());
    }
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            stop_on.await;
            let _ = stop.send(true);
        });
    }
    let grace = config.shutdown_timeout;
    let limits = config.connections;
    let (cap, fd_limit) = connections::effective_cap(limits.max_connections);
    if cap < limits.max_connections {
        tracing::warn!(
            cap,
            max_connections = limits.max_connections,
            fd_limit,
            "the file-descriptor limit allows fewer connections than max_connections"
        );
    }
    let registry = connections::Registry::new(cap);
    let task = tokio::spawn(async move {
        connections::serve(listener, app, limits, registry, tls, stop_rx, grace).await;
        Ok(())
    });
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    tracing::info!(%addr, scheme, "tessera is listening");
    Ok(Running {
        addr,
        metrics_addr,
        stop,
        task,
        audit,
    })
}

/// `metrics_listen`: binds `at` and serves `GET /_tessera/metrics` there,
/// open, until `stop` fires. Returns the bound address. Meant for a
/// private network; on the API port the same text needs `monitor`.
async fn serve_metrics(
    at: SocketAddr,
    render: MetricsRender,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(at)
        .await
        .with_context(|| format!("cannot listen on {at} (metrics_listen)"))?;
    let addr = listener.local_addr()?;
    let app = tessera_http::metrics_router(render);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "the metrics listener failed");
        }
    });
    tracing::info!(%addr, "serving /_tessera/metrics without authentication");
    Ok(addr)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

#[cfg(test)]
mod tests {
    use super::postgres_target;

    #[test]
    fn the_postgres_target_names_host_and_port_never_the_password() {
        for (url, want) in [
            ("postgres://u:secret@db.example:6432/t", "db.example:6432"),
            ("postgresql://u@db/t?sslmode=disable", "db:5432"),
            ("postgres://u:p@[::1]:7/t", "[::1]:7"),
            ("postgres://[::1]/t", "[::1]:5432"),
            ("postgres:///t", "localhost:5432"),
        ] {
            assert_eq!(postgres_target(url), want, "{url}");
        }
    }
}
