//! The scale measurements: 1,000 against 1,000,000 stored tokens.

use super::*;

/// Tokens stored for the scale measurements.
pub(crate) const SCALE_SMALL: u64 = 1_000;

pub(crate) const SCALE_LARGE: u64 = 1_000_000;

/// Seeded access tokens kept in memory to authenticate with at scale.
pub(crate) const SCALE_SAMPLE: usize = 10_000;

/// Both scale measurements authenticate with this many distinct tokens,
/// drawn at random from what is stored, so that they differ only in how
/// many tokens are stored, not in how many are in use.
pub(crate) const SCALE_WORKING_SET: usize = 1_000;

#[derive(Debug, Serialize)]
pub(crate) struct ScaleReport {
    pub(crate) seeded_small: u64,
    pub(crate) seeded_large: u64,
    pub(crate) seeding: &'static str,
    pub(crate) seed_rate_per_s: f64,
    pub(crate) tokens_stored: u64,
    pub(crate) data_dir_bytes: u64,
    pub(crate) bytes_per_token: f64,
    pub(crate) rss_kb_at_start: Option<u64>,
    pub(crate) rss_kb_after_load: Option<u64>,
    pub(crate) peak_rss_kb: Option<u64>,
    pub(crate) bearer_small_req_per_s: f64,
    pub(crate) bearer_large_req_per_s: f64,
    pub(crate) large_to_small: f64,
}

/// Bearer `_authenticate` with 1,000 and with 1,000,000 stored tokens, the
/// server's memory and the bytes on disk per token.
pub(crate) async fn seed_tokens(
    db: &Path,
    count: u64,
    via_store: bool,
) -> anyhow::Result<seed::Seeded> {
    if via_store {
        seed::seed_via_store(db, count, SCALE_SAMPLE).await
    } else {
        let db = db.to_owned();
        tokio::task::spawn_blocking(move || seed::bulk_seed(&db, count, SCALE_SAMPLE)).await?
    }
}

pub(crate) async fn scale(
    bin: &Path,
    work: &Path,
    load: LoadSettings,
    ceiling_rate: f64,
    via_store: bool,
) -> anyhow::Result<(Row, Row, ScaleReport)> {
    let dir = work.join("scale");
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("tessera.db");

    let how = if via_store {
        "through Store::insert_token"
    } else {
        "in bulk transactions"
    };
    eprintln!(
        "==> scale: seeding {SCALE_SMALL} tokens {how} into {}",
        db.display()
    );
    let small = seed_tokens(&db, SCALE_SMALL, via_store).await?;
    let small_sample = working_set(small.sample);
    seed::checkpoint_and_count(&db)?;
    let small_row = scale_bearer(
        bin,
        &dir,
        work.join("tessera-scale-small.log"),
        load,
        ceiling_rate,
        small_sample,
        "1,000",
    )
    .await?
    .0;

    let more = SCALE_LARGE - SCALE_SMALL;
    eprintln!("==> scale: seeding {more} more tokens {how}, directly into the store");
    let large = seed_tokens(&db, more, via_store).await?;
    let seed_rate = more as f64 / large.elapsed.as_secs_f64();
    eprintln!(
        "    {:.0} tokens/s ({:.1} s)",
        seed_rate,
        large.elapsed.as_secs_f64()
    );
    let tokens_stored = seed::checkpoint_and_count(&db)?;
    let large_sample = working_set(large.sample);
    let data_dir_bytes = seed::dir_bytes(&dir)?;
    let (large_row, rss_start, rss_after) = scale_bearer(
        bin,
        &dir,
        work.join("tessera-scale-large.log"),
        load,
        ceiling_rate,
        large_sample,
        "1,000,000",
    )
    .await?;
    let (small_rate, large_rate) = (
        small_row.req_per_s.unwrap_or(0.0),
        large_row.req_per_s.unwrap_or(0.0),
    );
    let report = ScaleReport {
        seeded_small: SCALE_SMALL,
        seeded_large: SCALE_LARGE,
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

/// A random [`SCALE_WORKING_SET`] of the kept tokens.
pub(crate) fn working_set(mut sample: Vec<String>) -> Vec<String> {
    use rand::seq::SliceRandom;
    sample.shuffle(&mut rand::thread_rng());
    sample.truncate(SCALE_WORKING_SET);
    sample
}

pub(crate) async fn scale_bearer(
    bin: &Path,
    dir: &Path,
    log: PathBuf,
    load: LoadSettings,
    ceiling_rate: f64,
    sample: Vec<String>,
    label: &str,
) -> anyhow::Result<(Row, Memory, Memory)> {
    if sample.is_empty() {
        bail!("the seeded sample is empty");
    }
    let mut server = ChildServer::tessera(bin, dir, None, log)?;
    server
        .wait_ready(READY_PATH, Duration::from_secs(120))
        .await?;
    let at_start = process::memory_kb(server.pid());
    let headers: Arc<Vec<HeaderValue>> = Arc::new(sample.iter().map(|t| bearer(t)).collect());
    let name = format!("_authenticate, Bearer, {label} tokens stored");
    let r = measure(
        &name,
        &server,
        load,
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
        (ceiling_rate > 0.0).then(|| r.throughput() / ceiling_rate),
    );
    row.notes.push(format!(
        "random sample of {} seeded tokens",
        report::group_thousands(sample.len() as u64)
    ));
    Ok((row, at_start, after))
}
