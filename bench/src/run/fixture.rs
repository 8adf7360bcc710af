//! Tessera on a fresh data directory, with `bench_user` created, and the
//! Bearer scenario's pool of access tokens.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use hyper::header::HeaderValue;
use hyper::Method;
use serde_json::json;

use crate::client::{basic, bearer, Conn, Req};
use crate::measure::{self, Memory, READY_PATH};
use crate::process::{self, ChildServer, BOOTSTRAP_PASSWORD};

pub(super) const BENCH_USER: &str = "bench_user";
pub(super) const BENCH_PASSWORD: &str = "bench-user-password";
pub(super) const TOKEN_PATH: &str = "/_security/oauth2/token";
pub(super) const AUTHENTICATE_PATH: &str = "/_security/_authenticate";
pub(super) const METRICS_PATH: &str = "/_tessera/metrics";
/// Access tokens the Bearer scenario cycles through.
const BEARER_POOL: usize = 1_000;

/// The server under test, a control connection to it, and the requests the
/// scenarios build on.
pub(super) struct Tessera {
    pub(super) server: ChildServer,
    pub(super) control: Conn,
    /// Basic credentials of `bench_user`.
    pub(super) bench: HeaderValue,
    /// A `client_credentials` grant as `bench_user`.
    pub(super) client_credentials: Req,
    /// A `password` grant for `bench_user`.
    pub(super) password_grant: Req,
}

impl Tessera {
    /// Starts the server on a fresh data directory in `work` (or on
    /// `store`) with `flags`, waits until it is ready and creates
    /// `bench_user`.
    pub(super) async fn start(
        bin: &Path,
        work: &Path,
        store: Option<&str>,
        flags: &[&str],
    ) -> anyhow::Result<Self> {
        let server = start_server(bin, work, store, flags).await?;
        let addr = server.addr;

        let bench = basic(BENCH_USER, BENCH_PASSWORD);
        let mut control = Conn::open(addr).await?;
        create_bench_user(&mut control).await?;
        let client_credentials = Req::json(
            Method::POST,
            TOKEN_PATH,
            Some(bench.clone()),
            &json!({ "grant_type": "client_credentials" }),
        );
        let password_grant = Req::json(
            Method::POST,
            TOKEN_PATH,
            Some(bench.clone()),
            &json!({ "grant_type": "password", "username": BENCH_USER, "password": BENCH_PASSWORD }),
        );
        Ok(Self {
            server,
            control,
            bench,
            client_credentials,
            password_grant,
        })
    }

    pub(super) fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// `n` tokens from `n` answers to `req`, sent over `connections`
    /// connections: the `field` of each.
    pub(super) async fn mint(
        &self,
        connections: usize,
        n: usize,
        req: &Req,
        field: &'static str,
    ) -> anyhow::Result<Vec<String>> {
        measure::mint(self.addr(), connections, n, req, field).await
    }

    /// Closes the control connection, reads the server's memory (VmRSS,
    /// VmHWM) and stops it.
    pub(super) fn stop(self) -> Memory {
        let Self {
            mut server,
            control,
            ..
        } = self;
        drop(control);
        let memory = process::memory_kb(server.pid());
        server.stop();
        memory
    }
}

/// Starts `tessera serve` with `flags`, its data directory (`data`) and log
/// (`tessera.log`) in `dir`, on `store` if given, and waits until it is
/// ready. Several servers on one store share its users: only the first
/// one's [`Tessera::start`] creates `bench_user`.
pub(super) async fn start_server(
    bin: &Path,
    dir: &Path,
    store: Option<&str>,
    flags: &[&str],
) -> anyhow::Result<ChildServer> {
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir)?;
    let mut server =
        ChildServer::tessera_with(bin, &data_dir, store, dir.join("tessera.log"), flags)?;
    server
        .wait_ready(READY_PATH, Duration::from_secs(60))
        .await?;
    eprintln!(
        "==> tessera is ready on {} (pid {})",
        server.addr,
        server.pid()
    );
    Ok(server)
}

/// The flags of `tessera serve` for a server whose files live in `dir`:
/// with `audit_log`, its audit log is written to `dir/audit.json`.
pub(super) fn serve_flags(audit_log: bool, dir: &Path) -> Vec<String> {
    if audit_log {
        vec![
            "--audit-log".into(),
            dir.join("audit.json").display().to_string(),
        ]
    } else {
        Vec::new()
    }
}

/// Creates `bench_user` (role `superuser`) as `elastic`.
async fn create_bench_user(control: &mut Conn) -> anyhow::Result<()> {
    let elastic = basic("elastic", BOOTSTRAP_PASSWORD);
    let (status, body) = control
        .send(&Req::json(
            Method::PUT,
            "/_security/user/bench_user",
            Some(elastic),
            &json!({ "password": BENCH_PASSWORD, "roles": ["superuser"], "full_name": "Bench User" }),
        ))
        .await?;
    if !status.is_success() {
        bail!(
            "creating {BENCH_USER} as `elastic` failed: HTTP {status}: {} (with --store, the store must be fresh or have elastic's password set to {BOOTSTRAP_PASSWORD})",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

/// The access tokens of the Bearer scenario, as `Authorization` headers, and
/// the size of `_authenticate`'s answer (the ceiling answers as much).
pub(super) struct BearerPool {
    pub(super) headers: Arc<Vec<HeaderValue>>,
    pub(super) authenticate_body_bytes: usize,
}

impl BearerPool {
    /// Mints the pool with `client_credentials` and authenticates with its
    /// first token.
    pub(super) async fn mint(tessera: &mut Tessera, connections: usize) -> anyhow::Result<Self> {
        eprintln!("==> minting {BEARER_POOL} access tokens for the Bearer scenario");
        let pool = tessera
            .mint(
                connections,
                BEARER_POOL,
                &tessera.client_credentials,
                "access_token",
            )
            .await?;
        let headers: Arc<Vec<HeaderValue>> = Arc::new(pool.iter().map(|t| bearer(t)).collect());
        let (status, auth_body) = tessera
            .control
            .send(&Req::get(AUTHENTICATE_PATH, Some(headers[0].clone())))
            .await?;
        if !status.is_success() {
            bail!(
                "Bearer _authenticate failed: HTTP {status}: {}",
                String::from_utf8_lossy(&auth_body)
            );
        }
        Ok(Self {
            headers,
            authenticate_body_bytes: auth_body.len(),
        })
    }

    /// The header of the first token.
    pub(super) fn first(&self) -> HeaderValue {
        self.headers[0].clone()
    }
}
