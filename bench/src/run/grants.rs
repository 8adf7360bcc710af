//! The write scenarios: token creation (client_credentials, password),
//! refresh with distinct refresh tokens (on PostgreSQL between two runs of
//! `pgbench -N`, its yardstick), and invalidation.

use std::path::Path;
use std::sync::Arc;

use hyper::Method;
use serde_json::json;

use crate::client::{LoadResult, LoadSettings, Req};
use crate::measure::{measure, pool_size, prebuilt, repeat, row, take_each_once, Settings};
use crate::pgbench::{self, PgbenchReport};
use crate::report::{self, Row};

use super::fixture::{Tessera, TOKEN_PATH};

/// The rows of the creation and refresh scenarios, which later parts of
/// the run compare with.
pub(super) struct Grants {
    pub(super) client_credentials: Row,
    pub(super) password: Row,
    pub(super) refresh: Row,
    /// `pgbench -N` right before and right after the refresh row, on the
    /// server of a PostgreSQL store.
    pub(super) pgbench: Option<PgbenchReport>,
}

impl Grants {
    /// The table's rows, in order.
    pub(super) fn rows(&self) -> [Row; 3] {
        [
            self.client_credentials.clone(),
            self.password.clone(),
            self.refresh.clone(),
        ]
    }
}

/// What the write scenarios share: the server, how to load it, and the
/// ceiling their ratios are taken against.
pub(super) struct Scenarios<'a> {
    pub(super) tessera: &'a Tessera,
    pub(super) settings: &'a Settings,
    pub(super) load: LoadSettings,
    pub(super) ceiling_rate: f64,
    /// The store's URL (`None`: embedded).
    pub(super) store: Option<&'a str>,
    /// Where logs go.
    pub(super) work: &'a Path,
}

impl Scenarios<'_> {
    /// Creation with each grant, then refresh.
    pub(super) async fn grants(&self) -> anyhow::Result<Grants> {
        let client_credentials = self
            .repeated(
                "create token, client_credentials",
                &self.tessera.client_credentials,
            )
            .await?;
        let password = self
            .repeated("create token, password", &self.tessera.password_grant)
            .await?;
        let (refresh, pgbench) = self.refresh(&password).await?;
        Ok(Grants {
            client_credentials,
            password,
            refresh,
            pgbench,
        })
    }

    /// Each refresh token of a pool minted with the password grant, once;
    /// on a PostgreSQL store, between two runs of `pgbench -N` on its
    /// server while Tessera is idle.
    async fn refresh(&self, password: &Row) -> anyhow::Result<(Row, Option<PgbenchReport>)> {
        // On PostgreSQL a refresh runs up to 1.6 times as fast as the password
        // grant that mints its pool.
        let n = pool_size(password.req_per_s, 2.5, self.settings);
        eprintln!("==> pre-minting {n} refresh tokens (password grant) for the refresh scenario");
        let pool = self
            .tessera
            .mint(
                self.settings.connections,
                n,
                &self.tessera.password_grant,
                "refresh_token",
            )
            .await?;
        let reqs = prebuilt(
            &pool,
            &self.tessera.bench,
            Method::POST,
            TOKEN_PATH,
            |t| json!({ "grant_type": "refresh_token", "refresh_token": t }),
        );
        let mut yardstick = match self.store.filter(|url| pgbench::is_postgres(url)) {
            Some(url) => Some(pgbench::prepare(url, self.settings, self.work).await),
            None => None,
        };
        if let Some(Ok(y)) = &mut yardstick {
            y.run("before refresh", self.work).await;
        }
        let row = self
            .each_once(
                "refresh, distinct refresh tokens",
                "refresh, distinct tokens",
                n,
                reqs,
            )
            .await?;
        let report = match yardstick {
            Some(Ok(mut y)) => {
                y.run("after refresh", self.work).await;
                Some(y.finish())
            }
            Some(Err(report)) => Some(report),
            None => None,
        };
        Ok((row, report))
    }

    /// Each access token of a pool minted with `client_credentials`,
    /// invalidated once.
    pub(super) async fn invalidate(&self, client_credentials: &Row) -> anyhow::Result<Row> {
        // Invalidation writes less than creation: it runs faster.
        let n = pool_size(client_credentials.req_per_s, 3.0, self.settings);
        eprintln!(
            "==> pre-minting {n} access tokens (client_credentials) for the invalidate scenario"
        );
        let pool = self
            .tessera
            .mint(
                self.settings.connections,
                n,
                &self.tessera.client_credentials,
                "access_token",
            )
            .await?;
        let reqs = prebuilt(
            &pool,
            &self.tessera.bench,
            Method::DELETE,
            TOKEN_PATH,
            |t| json!({ "token": t }),
        );
        self.each_once(
            "invalidate access token",
            "invalidate, by access token",
            n,
            reqs,
        )
        .await
    }

    /// `req` over and over, as the row `name`.
    async fn repeated(&self, name: &str, req: &Req) -> anyhow::Result<Row> {
        let r = measure(name, &self.tessera.server, self.load, repeat(req.clone())).await?;
        Ok(row(name, &r, self.ratio(&r)))
    }

    /// Each of the `n` requests of a pool once, measured as `name`, shown as
    /// the row `row_name`.
    async fn each_once(
        &self,
        name: &str,
        row_name: &str,
        n: usize,
        reqs: Arc<Vec<Req>>,
    ) -> anyhow::Result<Row> {
        let r = measure(name, &self.tessera.server, self.load, take_each_once(reqs)).await?;
        let mut row = row(row_name, &r, self.ratio(&r));
        row.notes
            .push(format!("pool of {}", report::group_thousands(n as u64)));
        Ok(row)
    }

    fn ratio(&self, r: &LoadResult) -> Option<f64> {
        (self.ceiling_rate > 0.0).then(|| r.throughput() / self.ceiling_rate)
    }
}
