//! The fuzz targets' functions (see `fuzz/`), one per target, so that the
//! fuzz crate and the stable corpus replay test
//! (`tests/fuzz_replay.rs`) run exactly the same code.
//!
//! Not an API: hidden from the documentation and free to change.

use std::time::Duration;

pub use tessera_http::fuzzing::{
    authorization_header, form_body, json_body, role_mapping, time_unit, token_string,
};

use crate::config::Config;

/// The config file: TOML text resolved as `--config` resolves it. Any text
/// is either refused with a message or gives settings inside their bounds.
pub fn config_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = Config::from_toml_text(text) else {
        return;
    };
    let ttl = config.http.access_token_ttl;
    assert!(ttl >= Duration::from_secs(1) && ttl <= Duration::from_secs(3600));
    assert!(config.http.refresh_window <= Duration::from_secs(300));
    assert!((1024..=64 * 1024 * 1024).contains(&config.http.max_body_bytes));
    assert!((1..=1_000_000).contains(&config.cleanup_batch));
    assert!(
        config.http.issuer.starts_with("http://") || config.http.issuer.starts_with("https://")
    );
}

/// A fuzz target's function.
pub type Target = fn(&[u8]);

/// Every target by the name of its corpus folder under `fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[
    ("token_string", token_string),
    ("authorization_header", authorization_header),
    ("json_body", json_body),
    ("form_body", form_body),
    ("time_unit", time_unit),
    ("config_file", config_file),
    ("role_mapping", role_mapping),
];
