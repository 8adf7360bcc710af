//! The options of `tessera-bench run` and `tessera-bench guessing`: what
//! `main` parses and the two commands read.

use std::path::PathBuf;

use clap::Args;

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// A tiny run of a few seconds that proves the harness works (CI).
    #[arg(long)]
    pub smoke: bool,
    /// Measured seconds per scenario [default: 10, smoke: 1].
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Warm-up seconds before each measured phase [default: 3, smoke: 0.5].
    #[arg(long, value_name = "SECS")]
    pub warmup: Option<f64>,
    /// Concurrent keep-alive connections of the load generator [default: 64, smoke: 8].
    #[arg(long, value_name = "N")]
    pub connections: Option<usize>,
    /// Threads of the load generator's runtime.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub client_threads: usize,
    /// Rounds of the 256-way refresh storm [default: 20, smoke: 3].
    #[arg(long, value_name = "N")]
    pub storm_rounds: Option<usize>,
    /// Where to write the JSON report [default: bench/results/latest.json;
    /// with --smoke: target/bench-smoke.json, or under $CARGO_TARGET_DIR].
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Also measure at scale: 1,000 stored tokens against SIZE (`--scale`
    /// alone: 1m; e.g. `--scale 10m`, `500k`), memory, disk (ignored with --smoke).
    #[arg(long, value_name = "SIZE", num_args = 0..=1, default_missing_value = "1m",
          value_parser = parse_count)]
    pub scale: Option<u64>,
    /// Store URL passed to the server instead of the embedded SQLite, e.g. postgres://…
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Also benchmark a peer implementation (`oidc-provider`).
    #[arg(long, value_name = "NAME")]
    pub peer: Option<String>,
    /// Seed the scale measurements through the store's `insert_token` (slow) instead of bulk transactions.
    #[arg(long)]
    pub seed_via_store: bool,
    /// Run the server with its audit log on, written to a file in the work
    /// directory (every authentication and privilege check audited), to
    /// compare with a run without.
    #[arg(long)]
    pub audit_log: bool,
    /// Keep the temporary data directories and server logs, and print where.
    #[arg(long)]
    pub keep_data: bool,
    /// Do not run `cargo build -p tessera` first when launched by `cargo run`.
    #[arg(long)]
    pub no_build: bool,
    /// Sample the server with `perf` during every row and report where its
    /// CPU went, by thread and area (kernel, SQLite, allocator, Rust crate),
    /// and its hottest functions (needs `perf`, Debian's linux-perf).
    #[arg(long)]
    pub profile: bool,
    /// Instead of the scenarios: SECS of sustained client_credentials
    /// creation with short-lived tokens, sampling rows, size on disk and
    /// RSS; fails if the stored set stops tracking rate × lifetime.
    #[arg(long, value_name = "SECS")]
    pub soak: Option<f64>,
    /// The soak's access-token lifetime in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    pub soak_ttl: u64,
    /// The soak server's cleanup interval in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub soak_cleanup_interval: u64,
    /// Seconds between the soak's samples.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub soak_every: u64,
}

/// A count of tokens: digits with an optional `k` (thousand) or `m`
/// (million) suffix; at least 2,000 (the scale run first seeds 1,000).
fn parse_count(s: &str) -> Result<u64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let (digits, unit) = match lower.as_bytes().last() {
        Some(b'k') => (&lower[..lower.len() - 1], 1_000),
        Some(b'm') => (&lower[..lower.len() - 1], 1_000_000),
        _ => (&lower[..], 1),
    };
    let n: u64 = digits
        .replace('_', "")
        .parse()
        .map_err(|_| format!("`{s}` is not a count like 1m, 10m or 500k"))?;
    let n = n
        .checked_mul(unit)
        .ok_or_else(|| format!("`{s}` is too large"))?;
    if n < 2_000 {
        return Err(format!("`{s}`: the scale run needs at least 2k tokens"));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    #[test]
    fn scale_sizes_parse() {
        assert_eq!(super::parse_count("1m"), Ok(1_000_000));
        assert_eq!(super::parse_count("10M"), Ok(10_000_000));
        assert_eq!(super::parse_count("500k"), Ok(500_000));
        assert_eq!(super::parse_count("2000"), Ok(2_000));
        assert!(super::parse_count("1k").is_err());
        assert!(super::parse_count("ten").is_err());
    }
}

#[derive(Args, Debug, Clone)]
pub struct GuessArgs {
    /// Samples per median [default: 30].
    #[arg(long, default_value_t = 30)]
    pub samples: usize,
    /// Concurrent connections of each guessing flood.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Seconds of each guesses-per-second measurement.
    #[arg(long, default_value_t = 10.0)]
    pub flood_secs: f64,
    /// Do not run `cargo build -p tessera` first when launched by `cargo run`.
    #[arg(long)]
    pub no_build: bool,
}
