//! The three `_authenticate` scenarios, between two measurements of the
//! ceiling.
//!
//! On a shared machine the ceiling itself moves by ±20% within minutes, so
//! it is measured right before and right after the scenarios it is the
//! yardstick for, and their ratios use the mean.

use std::path::Path;
use std::sync::Arc;

use rand::Rng;

use crate::client::{LoadResult, LoadSettings, Req};
use crate::measure::{create_api_key, measure, measure_ceiling, repeat, row, ApiKey};
use crate::report::{self, Row};

use super::fixture::{BearerPool, Tessera, AUTHENTICATE_PATH};

/// The ceiling and the `_authenticate` rows, with their ratios to it.
pub(super) struct Authentication {
    /// The mean of the ceiling before and after: every ratio's yardstick.
    pub(super) ceiling_rate: f64,
    pub(super) ceiling: Row,
    pub(super) bearer: Row,
    pub(super) basic: Row,
    pub(super) api_key: Row,
}

impl Authentication {
    /// The table's rows, in order.
    pub(super) fn rows(&self) -> [Row; 4] {
        [
            self.ceiling.clone(),
            self.bearer.clone(),
            self.basic.clone(),
            self.api_key.clone(),
        ]
    }
}

/// The ceiling, Bearer, Basic and ApiKey `_authenticate`, the ceiling again.
pub(super) async fn authentication(
    tessera: &mut Tessera,
    pool: &BearerPool,
    work: &Path,
    load: LoadSettings,
) -> anyhow::Result<Authentication> {
    let body_bytes = pool.authenticate_body_bytes;
    let ceiling_name = format!("ceiling (bare axum, {body_bytes}-byte JSON)");
    let ceiling_req = Req::get(AUTHENTICATE_PATH, Some(pool.first()));
    let before = measure_ceiling(
        body_bytes,
        &work.join("ceiling.log"),
        &format!("{ceiling_name}, before"),
        &ceiling_req,
        load,
    )
    .await?;

    let mut bearer = bearer_row(tessera, pool, load).await?;
    let mut basic = basic_row(tessera, load).await?;
    let mut api_key = api_key_row(tessera, load).await?;

    let after = measure_ceiling(
        body_bytes,
        &work.join("ceiling-after.log"),
        &format!("{ceiling_name}, after"),
        &ceiling_req,
        load,
    )
    .await?;
    let (ceiling, ceiling_rate) = ceiling_row(body_bytes, &before, &after);
    for auth_row in [&mut bearer, &mut basic, &mut api_key] {
        auth_row.ratio_to_ceiling = auth_row
            .req_per_s
            .filter(|_| ceiling_rate > 0.0)
            .map(|rate| rate / ceiling_rate);
    }
    Ok(Authentication {
        ceiling_rate,
        ceiling,
        bearer,
        basic,
        api_key,
    })
}

/// The ceiling's row (the mean rate, the first measurement's latency) and
/// the mean rate.
fn ceiling_row(body_bytes: usize, before: &LoadResult, after: &LoadResult) -> (Row, f64) {
    let (before_rate, after_rate) = (before.throughput(), after.throughput());
    let ceiling_rate = (before_rate + after_rate) / 2.0;
    let mut ceiling = row(
        &format!("ceiling: bare axum, {body_bytes} B JSON"),
        before,
        None,
    );
    ceiling.req_per_s = Some(ceiling_rate);
    ceiling.notes.push(format!(
        "mean of {} before and {} after the _authenticate rows; latency from the first",
        report::group_thousands(before_rate.round() as u64),
        report::group_thousands(after_rate.round() as u64)
    ));
    (ceiling, ceiling_rate)
}

/// A random one of the pool's access tokens each time.
async fn bearer_row(
    tessera: &Tessera,
    pool: &BearerPool,
    load: LoadSettings,
) -> anyhow::Result<Row> {
    let headers = Arc::clone(&pool.headers);
    let r = measure(
        "_authenticate, Bearer",
        &tessera.server,
        load,
        Arc::new(move |rng| {
            let h = &headers[rng.gen_range(0..headers.len())];
            Some(Req::get(AUTHENTICATE_PATH, Some(h.clone())))
        }),
    )
    .await?;
    Ok(row("_authenticate, Bearer", &r, None))
}

/// `bench_user` and its password every time.
async fn basic_row(tessera: &Tessera, load: LoadSettings) -> anyhow::Result<Row> {
    let req = Req::get(AUTHENTICATE_PATH, Some(tessera.bench.clone()));
    let r = measure("_authenticate, Basic", &tessera.server, load, repeat(req)).await?;
    Ok(row("_authenticate, Basic", &r, None))
}

/// One API key, created first; skipped if the server has no API keys.
async fn api_key_row(tessera: &mut Tessera, load: LoadSettings) -> anyhow::Result<Row> {
    Ok(
        match create_api_key(&mut tessera.control, &tessera.bench).await? {
            ApiKey::Unavailable => {
                eprintln!("==> _authenticate, ApiKey: skipped: API keys not available");
                Row::skipped("_authenticate, ApiKey", "skipped: API keys not available")
            }
            ApiKey::Failed(why) => {
                eprintln!("!!! _authenticate, ApiKey: creating an API key failed: {why}");
                Row {
                    errors: 1,
                    ..Row::skipped(
                        "_authenticate, ApiKey",
                        &format!("ERROR: creating an API key failed: {why}"),
                    )
                }
            }
            ApiKey::Header(h) => {
                let req = Req::get(AUTHENTICATE_PATH, Some(h));
                let r =
                    measure("_authenticate, ApiKey", &tessera.server, load, repeat(req)).await?;
                row("_authenticate, ApiKey", &r, None)
            }
        },
    )
}
