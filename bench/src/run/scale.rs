//! The scale measurements: 1,000 stored tokens against many (1,000,000 by
//! default; `--scale 10m` for ten million).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use hyper::header::HeaderValue;
use rand::Rng;
use serde::Serialize;

use crate::client::{bearer, LoadSettings, Req};
use crate::measure::{measure, row, Memory, READY_PATH};
use crate::process::{self, ChildServer};
use crate::report::{self, Row};
use crate::seed;

use super::fixture::AUTHENTICATE_PATH;

/// Tokens stored for the scale measurements.
const SCALE_SMALL: u64 = 1_000;

/// Seeded access tokens kept in memory to authenticate with at scale.
const SCALE_SAMPLE: usize = 10_000;

/// Both scale measurements authenticate with this many distinct tokens,
/// drawn at random from what is stored, so that they differ only in how
/// many tokens are stored, not in how many are in use.
const SCALE_WORKING_SET: usize = 1_000;

#[derive(Debug, Serialize)]
pub(super) struct ScaleReport {
    pub(super) seeded_small: u64,
    pub(super) seeded_large: u64,
    pub(super) seeding: &'static str,
    pub(super) seed_rate_per_s: f64,
    pub(super) tokens_stored: u64,
    pub(super) data_dir_bytes: u64,
    pub(super) bytes_per_token: f64,
    pub(super) rss_kb_at_start: Option<u64>,
    pub(super) rss_kb_after_load: Option<u64>,
    pub(super) peak_rss_kb: Option<u64>,
    pub(super) bearer_small_req_per_s: f64,
    pub(super) bearer_large_req_per_s: f64,
    pub(super) large_to_small: f64,
}

/// Bearer `_authenticate` with 1,000 and with `large` stored tokens, the
/// server's memory and the bytes on disk per token: the table's two rows and
/// the report.
pub(super) async fn scale(
    bin: &Path,
    work: &Path,
    load: LoadSettings,
    ceiling_rate: f64,
    large: u64,
    via_store: bool,
) -> anyhow::Result<(Row, Row, ScaleReport)> {
    let dir = work.join("scale");
    std::fs::create_dir_all(&dir)?;
    let scale = Scale {
        bin,
        work,
        db: dir.join("tessera.db"),
        dir,
        load,
        ceiling_rate,
        via_store,
    };
    let how = if via_store {
        "through Store::insert_token"
    } else {
        "in bulk transactions"
    };
    eprintln!(
        "==> scale: seeding {SCALE_SMALL} tokens {how} into {}",
        scale.db.display()
    );
    let small = scale.seed(SCALE_SMALL).await?;
    let small_sample = working_set(small.sample);
    seed::checkpoint_and_count(&scale.db)?;
    let small_row = scale
        .bearer("tessera-scale-small.log", small_sample, "1,000")
        .await?
        .0;

    let more = large.saturating_sub(SCALE_SMALL);
    eprintln!("==> scale: seeding {more} more tokens {how}, directly into the store");
    let seeded = scale.seed(more).await?;
    let seed_rate = more as f64 / seeded.elapsed.as_secs_f64();
    eprintln!(
        "    {:.0} tokens/s ({:.1} s)",
        seed_rate,
        seeded.elapsed.as_secs_f64()
    );
    let tokens_stored = seed::checkpoint_and_count(&scale.db)?;
    let large_sample = working_set(seeded.sample);
    let data_dir_bytes = seed::dir_bytes(&scale.dir)?;
    let (large_row, rss_start, rss_after) = scale
        .bearer(
            "tessera-scale-large.log",
            large_sample,
            &report::group_thousands(large),
        )
        .await?;
    let (small_rate, large_rate) = (
        small_row.req_per_s.unwrap_or(0.0),
        large_row.req_per_s.unwrap_or(0.0),
    );
    let report = ScaleReport {
        seeded_small: SCALE_SMALL,
        seeded_large: large,
        seeding: if via_store {
            "Store::insert_token, concurrent tasks"
        } else {
            "bulk transactions"
        },
        seed_rate_per_s: seed_rate,
        tokens_stored,
        data_dir_bytes,
        bytes_per_token: data_dir_bytes as f64 / tokens_stored.max(1) as f64,
        rss_kb_at_start: rss_start.map(|m| m.0),
        rss_kb_after_load: rss_after.map(|m| m.0),
        peak_rss_kb: rss_after.map(|m| m.1),
        bearer_small_req_per_s: small_rate,
        bearer_large_req_per_s: large_rate,
        large_to_small: if small_rate > 0.0 {
            large_rate / small_rate
        } else {
            0.0
        },
    };
    Ok((small_row, large_row, report))
}

/// What the scale measurements share: where the data and the logs go and
/// how to load the server.
struct Scale<'a> {
    bin: &'a Path,
    work: &'a Path,
    /// The data directory of the scale server.
    dir: PathBuf,
    db: PathBuf,
    load: LoadSettings,
    ceiling_rate: f64,
    via_store: bool,
}

impl Scale<'_> {
    /// Adds `count` tokens to the store, keeping a sample of them.
    async fn seed(&self, count: u64) -> anyhow::Result<seed::Seeded> {
        if self.via_store {
            seed::seed_via_store(&self.db, count, SCALE_SAMPLE).await
        } else {
            let db = self.db.clone();
            tokio::task::spawn_blocking(move || seed::bulk_seed(&db, count, SCALE_SAMPLE)).await?
        }
    }

    /// Starts the server on the seeded data, authenticates with a random one
    /// of `sample` each time, and stops it: the row and the server's memory
    /// at start and after the load.
    async fn bearer(
        &self,
        log: &str,
        sample: Vec<String>,
        label: &str,
    ) -> anyhow::Result<(Row, Memory, Memory)> {
        if sample.is_empty() {
            bail!("the seeded sample is empty");
        }
        let mut server = ChildServer::tessera(self.bin, &self.dir, None, self.work.join(log))?;
        server
            .wait_ready(READY_PATH, Duration::from_secs(120))
            .await?;
        let at_start = process::memory_kb(server.pid());
        let headers: Arc<Vec<HeaderValue>> = Arc::new(sample.iter().map(|t| bearer(t)).collect());
        let name = format!("_authenticate, Bearer, {label} tokens stored");
        let r = measure(
            &name,
            &server,
            self.load,
            Arc::new(move |rng| {
                Some(Req::get(
                    AUTHENTICATE_PATH,
                    Some(headers[rng.gen_range(0..headers.len())].clone()),
                ))
            }),
        )
        .await?;
        let after = process::memory_kb(server.pid());
        server.stop();
        let mut row = row(
            &name,
            &r,
            (self.ceiling_rate > 0.0).then(|| r.throughput() / self.ceiling_rate),
        );
        row.notes.push(format!(
            "random sample of {} seeded tokens",
            report::group_thousands(sample.len() as u64)
        ));
        Ok((row, at_start, after))
    }
}

/// A random [`SCALE_WORKING_SET`] of the kept tokens.
fn working_set(mut sample: Vec<String>) -> Vec<String> {
    use rand::seq::SliceRandom;
    sample.shuffle(&mut rand::thread_rng());
    sample.truncate(SCALE_WORKING_SET);
    sample
}
