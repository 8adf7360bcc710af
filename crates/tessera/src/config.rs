//! Configuration: defaults, overlaid by a TOML file, overlaid by `TESSERA_*`
//! environment variables, overlaid by command-line flags. Validated once at
//! start; an invalid value stops start-up with a message naming the setting.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use serde::Deserialize;
use tessera_domain::crypto::Secret;
use tessera_store_postgres::PostgresConfig;

pub mod compat;
mod describe;
mod jwt;
pub mod observability;
mod oidc;
pub mod realms;
mod sources;
pub mod throttle;
pub mod tls;
mod values;

use values::{boolean, duration, integer, setting_error, toml_text};

pub use compat::CompatArgs;
pub use describe::SERVE_HELP;
pub use observability::ObservabilityArgs;
pub use sources::FileKeys;
pub use throttle::ThrottleArgs;
pub use tls::{TlsArgs, TlsFiles};

/// Flags of `tessera serve`. Each can also be given as an environment
/// variable or in the config file (same name, snake_case).
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "TESSERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:9200].
    #[arg(long, env = "TESSERA_LISTEN")]
    pub listen: Option<String>,
    /// Directory for the embedded store; created if missing [default: ./data].
    #[arg(long, env = "TESSERA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub connect: StoreConnectArgs,
    /// PostgreSQL: how long a starting node waits for the database to
    /// answer, retrying with backoff, before giving up [default: 60s].
    #[arg(long, env = "TESSERA_STORE_WAIT")]
    pub store_wait: Option<String>,
    /// PostgreSQL: how long a node serves what authentication read from
    /// memory, and how long after its commit every call that takes
    /// something back waits before answering; 0s turns both off
    /// [default: 250ms].
    #[arg(long, env = "TESSERA_CLUSTER_CACHE_TTL")]
    pub cluster_cache_ttl: Option<String>,
    /// Access token lifetime, 1s to 1h [default: 20m].
    #[arg(long, env = "TESSERA_ACCESS_TOKEN_TTL")]
    pub access_token_ttl: Option<String>,
    /// How long after a refresh a repeat returns the same pair [default: 30s].
    #[arg(long, env = "TESSERA_REFRESH_WINDOW")]
    pub refresh_window: Option<String>,
    /// Whether reuse of a refresh token outside its window revokes its whole
    /// family (true) or is only refused, as in Elasticsearch (false)
    /// [default: true].
    #[arg(long, env = "TESSERA_REFRESH_REUSE_REVOKES_FAMILY")]
    pub refresh_reuse_revokes_family: Option<String>,
    /// Whether deleting or disabling a user, or changing its password,
    /// revokes its tokens and everything derived from them (true), or
    /// leaves them alive, as in Elasticsearch (false) [default: true].
    #[arg(long, env = "TESSERA_REVOKE_ON_USER_CHANGE")]
    pub revoke_on_user_change: Option<String>,
    /// Largest accepted request body in bytes [default: 1048576].
    #[arg(long, env = "TESSERA_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<String>,
    /// Longest a request may take [default: 30s].
    #[arg(long, env = "TESSERA_REQUEST_TIMEOUT")]
    pub request_timeout: Option<String>,
    /// How often expired tokens are removed [default: 1m].
    #[arg(long, env = "TESSERA_CLEANUP_INTERVAL")]
    pub cleanup_interval: Option<String>,
    /// How many expired tokens one cleanup batch removes [default: 250].
    #[arg(long, env = "TESSERA_CLEANUP_BATCH")]
    pub cleanup_batch: Option<String>,
    /// How long in-flight requests may take to finish on shutdown [default: 30s].
    #[arg(long, env = "TESSERA_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<String>,
    /// How long a client may take to send a request's headers, in total,
    /// from its first byte (or from connecting) [default: 10s].
    #[arg(long, env = "TESSERA_HEADER_READ_TIMEOUT")]
    pub header_read_timeout: Option<String>,
    /// How long a keep-alive connection may wait for its next request
    /// [default: 75s].
    #[arg(long, env = "TESSERA_IDLE_TIMEOUT")]
    pub idle_timeout: Option<String>,
    /// Most concurrent connections; also capped by the file-descriptor
    /// limit [default: 10000].
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS")]
    pub max_connections: Option<String>,
    /// OAuth issuer identifier (RFC 8414): an http(s) URL without query or
    /// fragment, under which the /oauth2 endpoints are reached
    /// [default: http://<listen address>, https:// with TLS].
    #[arg(long, env = "TESSERA_ISSUER")]
    pub issuer: Option<String>,
    /// HTTPS.
    #[command(flatten)]
    pub tls: TlsArgs,
    /// Password and client-secret guessing.
    #[command(flatten)]
    pub throttle: ThrottleArgs,
    /// A second address serving only GET /_tessera/metrics, without
    /// authentication, for a scraper on a private network [default: none;
    /// on the API port the metrics need the `monitor` privilege].
    #[arg(long, env = "TESSERA_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Logs, access log and audit log.
    #[command(flatten)]
    pub observability: ObservabilityArgs,
    /// Elasticsearch compatibility.
    #[command(flatten)]
    pub compat: CompatArgs,
}

/// Which store, and how to connect to it: flags of `serve` and of every
/// command on the store.
#[derive(Debug, Clone, Default, Args)]
pub struct StoreConnectArgs {
    /// Store: `sqlite:PATH` (default: tessera.db in the data directory) or
    /// a `postgres://user:password@host:port/db` URL.
    #[arg(long, env = "TESSERA_STORE")]
    pub store: Option<String>,
    /// PostgreSQL: PEM file of the certificate authorities the database's
    /// certificate is checked against; set, the default `sslmode` is
    /// `verify-full` (an `sslrootcert` in the URL wins) [default: none].
    #[arg(long, env = "TESSERA_STORE_CA_FILE")]
    pub store_ca_file: Option<PathBuf>,
    /// PostgreSQL: most connections of the process (of the node, for
    /// `serve`) [default: 16].
    #[arg(long, env = "TESSERA_STORE_POOL_SIZE")]
    pub store_pool_size: Option<String>,
    /// PostgreSQL: limit on connecting, on one statement and on waiting for
    /// a pooled connection [default: 5s].
    #[arg(long, env = "TESSERA_STORE_TIMEOUT")]
    pub store_timeout: Option<String>,
}

/// The same settings as they may appear in the TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    store: Option<String>,
    store_ca_file: Option<PathBuf>,
    store_pool_size: Option<toml::Value>,
    store_timeout: Option<String>,
    store_wait: Option<String>,
    cluster_cache_ttl: Option<String>,
    access_token_ttl: Option<String>,
    refresh_window: Option<String>,
    refresh_reuse_revokes_family: Option<toml::Value>,
    revoke_on_user_change: Option<toml::Value>,
    node_name: Option<String>,
    cluster_name: Option<String>,
    token_invalidation: Option<toml::Value>,
    max_body_bytes: Option<toml::Value>,
    request_timeout: Option<String>,
    cleanup_interval: Option<String>,
    cleanup_batch: Option<toml::Value>,
    shutdown_timeout: Option<String>,
    header_read_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<toml::Value>,
    issuer: Option<String>,
    metrics_listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    bootstrap_password: Option<Secret>,
    lockout_threshold: Option<toml::Value>,
    lockout_delays: Option<toml::Value>,
    lockout_reset_after: Option<String>,
    source_failure_burst: Option<toml::Value>,
    source_failure_rate: Option<toml::Value>,
    trusted_proxies: Option<toml::Value>,
    realms: Option<realms::RealmsFile>,
    log_format: Option<String>,
    access_log: Option<toml::Value>,
    audit_log: Option<String>,
    audit_include: Option<Vec<String>>,
    audit_exclude: Option<Vec<String>>,
}

#[derive(Clone, PartialEq)]
pub enum StoreLocation {
    Sqlite(PathBuf),
    Postgres {
        url: String,
        /// `store_ca_file` (`PostgresConfig::ca_file`).
        ca_file: Option<PathBuf>,
        pool_size: usize,
        timeout: Duration,
        /// How long a starting node waits for the database.
        wait: Duration,
        /// `cluster_cache_ttl` (`PostgresConfig::cache_ttl`).
        cache_ttl: Duration,
    },
}

impl StoreLocation {
    /// The PostgreSQL store's connection settings (`timeout` bounds
    /// connecting, each statement and the wait for a pooled connection);
    /// `None` for the embedded store.
    pub fn postgres_config(&self) -> Option<PostgresConfig> {
        let StoreLocation::Postgres {
            url,
            ca_file,
            pool_size,
            timeout,
            cache_ttl,
            ..
        } = self
        else {
            return None;
        };
        Some(PostgresConfig {
            url: url.clone(),
            ca_file: ca_file.clone(),
            pool_size: *pool_size,
            connect_timeout: *timeout,
            statement_timeout: *timeout,
            acquire_timeout: *timeout,
            cache_ttl: *cache_ttl,
        })
    }
}

impl std::fmt::Debug for StoreLocation {
    /// Never prints a database password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            StoreLocation::Postgres {
                url,
                ca_file,
                pool_size,
                timeout,
                wait,
                cache_ttl,
            } => f
                .debug_struct("Postgres")
                .field("url", &redact_url(url))
                .field("ca_file", ca_file)
                .field("pool_size", pool_size)
                .field("timeout", timeout)
                .field("wait", wait)
                .field("cache_ttl", cache_ttl)
                .finish(),
        }
    }
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub store: StoreLocation,
    pub http: tessera_http::Settings,
    pub cleanup_interval: Duration,
    pub cleanup_batch: u32,
    pub shutdown_timeout: Duration,
    /// Slow and idle clients: header and idle timeouts, connection cap.
    pub connections: crate::connections::Limits,
    /// From `TESSERA_BOOTSTRAP_PASSWORD` (or `…_FILE`, or the config file).
    pub bootstrap_password: Option<Secret>,
    /// The configured OAuth issuer. `None`: `http://<bound address>`, set
    /// in `http.issuer` once the server has bound its socket.
    pub issuer: Option<String>,
    /// Where the metrics are also served, open, for a scraper.
    pub metrics_listen: Option<SocketAddr>,
    /// The config file and the keys it set (for `check-config`).
    pub file: FileKeys,
    /// HTTPS on the API port (the metrics listener stays plain HTTP).
    pub tls: Option<TlsFiles>,
    /// The log format, the access log and the audit log.
    pub observability: observability::Observability,
}

impl Config {
    /// Resolves flags, environment (both already merged by clap), the file
    /// and the defaults, and validates the result.
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Config> {
        let (file, keys) = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the config file {}", path.display()))?;
                let file = values::parse_file::<FileConfig>(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?;
                (file, FileKeys::read(path, &text))
            }
            None => (FileConfig::default(), FileKeys::default()),
        };
        let base_dir = realms::base_dir(args.config.as_deref());
        let _naming_sources = sources::resolving(&keys);
        let mut config = Self::resolve_with(args, file, Some(&base_dir))?;
        config.file = keys;
        Ok(config)
    }

    /// Resolves the text of a config file with no flags: what `--config`
    /// does once the file is read, except that the realms' files are not
    /// read. For the config-file fuzz target.
    #[doc(hidden)]
    pub fn from_toml_text(text: &str) -> anyhow::Result<Config> {
        let file = values::parse_file::<FileConfig>(text).context("invalid config file")?;
        Self::resolve_with(ServeArgs::default(), file, None)
    }

    fn resolve_with(
        args: ServeArgs,
        file: FileConfig,
        base_dir: Option<&Path>,
    ) -> anyhow::Result<Config> {
        let listen_text = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "127.0.0.1:9200".into());
        let listen = values::address("listen", &listen_text)?;
        let data_dir = args
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./data"));
        let pool_size = integer(
            "store_pool_size",
            args.connect
                .store_pool_size
                .or(toml_text(file.store_pool_size)),
            16,
            1,
            1024,
        )?;
        let store_timeout = duration(
            "store_timeout",
            args.connect.store_timeout.or(file.store_timeout),
            "5s",
            Duration::from_millis(100),
            Duration::from_secs(600),
        )?;
        let store_wait = duration(
            "store_wait",
            args.store_wait.or(file.store_wait),
            "60s",
            Duration::from_millis(0),
            Duration::from_secs(3600),
        )?;
        let cache_ttl = duration(
            "cluster_cache_ttl",
            args.cluster_cache_ttl.or(file.cluster_cache_ttl),
            "250ms",
            Duration::ZERO,
            Duration::from_secs(10),
        )?;
        let store = match args.connect.store.or(file.store) {
            None => StoreLocation::Sqlite(data_dir.join("tessera.db")),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                StoreLocation::Postgres {
                    url,
                    ca_file: args.connect.store_ca_file.or(file.store_ca_file.map(
                        |p| match base_dir {
                            // Relative to the config file's folder, as `tls_cert`.
                            Some(dir) if p.is_relative() => dir.join(p),
                            _ => p,
                        },
                    )),
                    pool_size,
                    timeout: store_timeout,
                    wait: store_wait,
                    cache_ttl,
                }
            }
            Some(url) => match url.strip_prefix("sqlite:") {
                Some(path) if !path.is_empty() => {
                    StoreLocation::Sqlite(PathBuf::from(path.trim_start_matches("//")))
                }
                _ => bail!(setting_error(
                    "store",
                    format!(
                        "expected sqlite:PATH or postgres://…, got [{}]",
                        redact_url(&url)
                    )
                )),
            },
        };
        let access_token_ttl = duration(
            "access_token_ttl",
            args.access_token_ttl.or(file.access_token_ttl),
            "20m",
            Duration::from_secs(1),
            Duration::from_secs(3600),
        )?;
        let refresh_window = duration(
            "refresh_window",
            args.refresh_window.or(file.refresh_window),
            "30s",
            Duration::from_millis(0),
            Duration::from_secs(300),
        )?;
        let request_timeout = duration(
            "request_timeout",
            args.request_timeout.or(file.request_timeout),
            "30s",
            Duration::from_millis(100),
            Duration::from_secs(600),
        )?;
        let cleanup_interval = duration(
            "cleanup_interval",
            args.cleanup_interval.or(file.cleanup_interval),
            "1m",
            Duration::from_millis(10),
            Duration::from_secs(86_400),
        )?;
        let shutdown_timeout = duration(
            "shutdown_timeout",
            args.shutdown_timeout.or(file.shutdown_timeout),
            "30s",
            Duration::from_millis(0),
            Duration::from_secs(3600),
        )?;
        let header_read_timeout = duration(
            "header_read_timeout",
            args.header_read_timeout.or(file.header_read_timeout),
            "10s",
            Duration::from_millis(100),
            Duration::from_secs(600),
        )?;
        let idle_timeout = duration(
            "idle_timeout",
            args.idle_timeout.or(file.idle_timeout),
            "75s",
            Duration::from_millis(100),
            Duration::from_secs(3600),
        )?;
        let max_connections = integer(
            "max_connections",
            args.max_connections.or(toml_text(file.max_connections)),
            10_000,
            1,
            1_000_000,
        )?;
        let max_body_bytes = integer(
            "max_body_bytes",
            args.max_body_bytes.or(toml_text(file.max_body_bytes)),
            1024 * 1024,
            1024,
            64 * 1024 * 1024,
        )?;
        let cleanup_batch = integer(
            "cleanup_batch",
            args.cleanup_batch.or(toml_text(file.cleanup_batch)),
            250,
            1,
            1_000_000,
        )?;
        let refresh_reuse_revokes_family = boolean(
            "refresh_reuse_revokes_family",
            args.refresh_reuse_revokes_family
                .or(toml_text(file.refresh_reuse_revokes_family)),
            None,
            true,
        )?;
        let revoke_on_user_change = boolean(
            "revoke_on_user_change",
            args.revoke_on_user_change
                .or(toml_text(file.revoke_on_user_change)),
            None,
            true,
        )?;
        let compat = compat::resolve(
            args.compat,
            compat::CompatFile {
                node_name: file.node_name,
                cluster_name: file.cluster_name,
                token_invalidation: file.token_invalidation,
            },
        )?;
        let observability = observability::resolve(
            args.observability,
            observability::ObservabilityFile {
                log_format: file.log_format,
                access_log: toml_text(file.access_log),
                audit_log: file.audit_log,
                audit_include: file.audit_include,
                audit_exclude: file.audit_exclude,
            },
        )?;
        let throttle = throttle::resolve(
            args.throttle,
            throttle::ThrottleFile {
                lockout_threshold: file.lockout_threshold,
                lockout_delays: file.lockout_delays,
                lockout_reset_after: file.lockout_reset_after,
                source_failure_burst: file.source_failure_burst,
                source_failure_rate: file.source_failure_rate,
                trusted_proxies: file.trusted_proxies,
            },
        )?;
        let metrics_listen = args
            .metrics_listen
            .or(file.metrics_listen)
            .map(|text| {
                let addr = values::address("metrics_listen", &text)?;
                if addr == listen && addr.port() != 0 {
                    return Err(setting_error(
                        "metrics_listen",
                        format!("must differ from `listen` ({listen}): the API port serves the metrics to `monitor` users already"),
                    ));
                }
                Ok(addr)
            })
            .transpose()?;
        let bootstrap_password = bootstrap_password(file.bootstrap_password)?;
        let issuer = args
            .issuer
            .or(file.issuer)
            .map(|text| validate_issuer(&text).map_err(|e| setting_error("issuer", e)))
            .transpose()?;
        let tls = tls::resolve(
            args.tls,
            tls::TlsFile {
                tls_cert: file.tls_cert,
                tls_key: file.tls_key,
            },
            base_dir,
        )?;
        let realms = realms::resolve(file.realms.unwrap_or_default(), base_dir)?;
        Ok(Config {
            listen,
            data_dir,
            store,
            http: tessera_http::Settings {
                access_token_ttl,
                refresh_window,
                refresh_reuse_revokes_family,
                max_body_bytes,
                request_timeout,
                issuer: issuer
                    .clone()
                    .unwrap_or_else(|| default_issuer(listen, tls.is_some())),
                revoke_on_user_change,
                clock: tessera_http::clock::Clock::system(),
                throttle,
                saml: realms.saml,
                oidc: realms.oidc,
                jwt: realms.jwt,
                audit: tessera_http::audit::Audit::default(),
                access_log: observability.access_log,
                node_name: compat.node_name,
                cluster_name: compat.cluster_name,
                token_invalidation: compat.token_invalidation,
            },
            cleanup_interval,
            cleanup_batch,
            shutdown_timeout,
            connections: crate::connections::Limits {
                header_read_timeout,
                idle_timeout,
                max_connections,
            },
            bootstrap_password,
            issuer,
            metrics_listen,
            file: FileKeys::default(),
            tls,
            observability,
        })
    }
}

/// The issuer when none is configured: the address the server listens
/// on, under the scheme it speaks.
pub fn default_issuer(listen: SocketAddr, https: bool) -> String {
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{listen}")
}

/// RFC 8414 §2: an `http(s)` URL with a host and no query or fragment.
/// Trailing slashes are dropped, since endpoint paths are appended.
fn validate_issuer(text: &str) -> Result<String, String> {
    let rest = text
        .strip_prefix("https://")
        .or_else(|| text.strip_prefix("http://"))
        .ok_or_else(|| format!("expected an http:// or https:// URL, got [{text}]"))?;
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("the URL may not contain whitespace, got [{text}]"));
    }
    if text.contains(['?', '#']) {
        return Err(format!(
            "the issuer may not have a query or fragment, got [{text}]"
        ));
    }
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() || authority.starts_with(':') {
        return Err(format!("the URL names no host, got [{text}]"));
    }
    if authority.contains('@') {
        return Err(format!(
            "the URL may not carry user information, got [{text}]"
        ));
    }
    Ok(text.trim_end_matches('/').to_owned())
}

/// A store URL (or `key=value` connection string) with every password
/// replaced, for messages: the user information's, and a `password` or
/// `sslpassword` parameter's.
fn redact_url(url: &str) -> String {
    let hidden = match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => {
                    format!("{}{user}:<hidden>{}", &url[..scheme_end + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    };
    let secret = |pair: &str| {
        pair.split_once('=').is_some_and(|(k, _)| {
            let k = k.trim().to_ascii_lowercase();
            k == "password" || k == "sslpassword"
        })
    };
    let hide = |pair: &str| match pair.split_once('=') {
        Some((k, _)) => format!("{k}=<hidden>"),
        None => pair.to_owned(),
    };
    if hidden.contains("://") {
        let Some((base, query)) = hidden.split_once('?') else {
            return hidden;
        };
        let query: Vec<String> = query
            .split('&')
            .map(|p| if secret(p) { hide(p) } else { p.to_owned() })
            .collect();
        return format!("{base}?{}", query.join("&"));
    }
    // `key=value` pairs; a quoted value may hold spaces.
    let mut out = Vec::new();
    let mut in_secret_quote = false;
    for word in hidden.split(' ') {
        if in_secret_quote {
            in_secret_quote = !word.ends_with('\'');
            continue;
        }
        if secret(word) {
            let value = word.split_once('=').map_or("", |(_, v)| v);
            in_secret_quote =
                value.starts_with('\'') && (value.len() < 2 || !value.ends_with('\''));
            out.push(hide(word));
        } else {
            out.push(word.to_owned());
        }
    }
    out.join(" ")
}

/// `TESSERA_BOOTSTRAP_PASSWORD`, else the file named by
/// `TESSERA_BOOTSTRAP_PASSWORD_FILE`, else the config file's value.
fn bootstrap_password(from_file: Option<Secret>) -> anyhow::Result<Option<Secret>> {
    let password = if let Ok(p) = std::env::var("TESSERA_BOOTSTRAP_PASSWORD") {
        Some(Secret::new(p))
    } else if let Ok(path) = std::env::var("TESSERA_BOOTSTRAP_PASSWORD_FILE") {
        let text = Secret::new(std::fs::read_to_string(&path).with_context(|| {
            format!("invalid setting `bootstrap_password_file`: cannot read [{path}]")
        })?);
        Some(Secret::new(text.expose().trim_end_matches(['\r', '\n'])))
    } else {
        from_file
    };
    if let Some(p) = &password {
        tessera_domain::user::validate_password(p.expose()).map_err(|e| {
            anyhow::anyhow!(
                "invalid setting `bootstrap_password` (environment TESSERA_BOOTSTRAP_PASSWORD \
                 or TESSERA_BOOTSTRAP_PASSWORD_FILE, or `bootstrap_password` in the config \
                 file): {e}"
            )
        })?;
    }
    Ok(password)
}

#[cfg(test)]
mod tests;
