//! Opening the audit log the configuration names (see
//! [`tessera_http::audit`] for what it writes).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

use anyhow::Context;
use base64::Engine;
use tessera_http::audit::Audit;

use crate::config::observability::AuditTarget;
use crate::config::Config;

/// The audit log of `config`: off, standard output, or a file appended to,
/// created `0600` (an existing file is narrowed to `0600`).
pub fn open(config: &Config) -> anyhow::Result<Audit> {
    let settings = &config.observability;
    let out: Box<dyn Write + Send> = match &settings.audit_log {
        None => return Ok(Audit::default()),
        Some(AuditTarget::Stdout) => Box::new(std::io::stdout()),
        Some(AuditTarget::File(path)) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("cannot open the audit log {}", path.display()))?;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("cannot restrict the audit log {}", path.display()))?;
            Box::new(file)
        }
    };
    // Elasticsearch's node ids are 22 base64url characters.
    let node_id = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(tessera_domain::crypto::random_bytes::<16>());
    tracing::info!(
        node_id,
        target = ?settings.audit_log,
        "writing the audit log"
    );
    Audit::start(
        out,
        settings.audit_filter.clone(),
        node_id,
        config.http.clock.clone(),
    )
    .context("cannot start the audit log writer")
}
