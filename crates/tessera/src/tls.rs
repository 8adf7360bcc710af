//! In-process HTTPS: the rustls server configuration built from the
//! `tls_cert` / `tls_key` files, and its reloading.
//!
//! One crypto provider serves the whole process: ring, installed as the
//! process default at start ([`install_provider`]), so that no dependency
//! can pick another; `aws-lc-rs` is not in the dependency graph (`.ci/run`
//! checks it). Only TLS 1.2 and 1.3 are offered.
//!
//! The configuration in use sits in an [`ArcSwap`]: the accept loop takes
//! the current one for each new connection, so a reload never touches the
//! connections already open. A reload happens on SIGHUP and when either
//! file changes (their size, modification time or inode, looked at every
//! [`POLL_INTERVAL`]). A new pair that cannot be read, or whose key does
//! not match its certificate, is refused with an error logged and the old
//! pair keeps serving: a bad certificate pair never replaces a good one.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;

use crate::config::TlsFiles;

/// How often the files are looked at for a change.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Makes ring the process's crypto provider, so that every TLS
/// configuration built without naming one (by any dependency) uses it.
/// Idempotent.
pub fn install_provider() {
    // Err only when a provider is already installed: ring, by an earlier call.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The rustls configuration of the API listener, reloadable.
pub struct Tls {
    files: TlsFiles,
    current: ArcSwap<ServerConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

/// What identifies a version of the two files.
type Stamp = [(u64, i64, i64, u64); 2];

fn stamp_of(files: &TlsFiles) -> Option<Stamp> {
    let one = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .map(|m| (m.len(), m.mtime(), m.mtime_nsec(), m.ino()))
    };
    Some([one(&files.cert)?, one(&files.key)?])
}

impl Tls {
    /// Loads the pair; refuses to start on a missing, unreadable or
    /// mismatched one, with a message naming both files.
    pub fn load(files: TlsFiles) -> anyhow::Result<Arc<Tls>> {
        install_provider();
        let config = server_config(&files).with_context(|| {
            format!(
                "cannot use the TLS certificate {} with the key {}",
                files.cert.display(),
                files.key.display()
            )
        })?;
        Ok(Arc::new(Tls {
            files,
            current: ArcSwap::from(config),
        }))
    }

    /// The configuration a new connection is to use.
    pub fn current(&self) -> Arc<ServerConfig> {
        self.current.load_full()
    }

    /// Reads the pair again; on success new connections use it, otherwise
    /// the old one stays and the error is logged.
    pub fn reload(&self) -> bool {
        match server_config(&self.files) {
            Ok(config) => {
                self.current.store(config);
                tracing::info!(
                    cert = %self.files.cert.display(),
                    "reloaded the TLS certificate and key"
                );
                true
            }
            Err(e) => {
                tracing::error!(
                    cert = %self.files.cert.display(),
                    key = %self.files.key.display(),
                    error = format!("{e:#}"),
                    "the new TLS certificate and key were refused; the previous ones keep serving"
                );
                metrics::counter!("tessera_tls_reload_failures_total").increment(1);
                false
            }
        }
    }

    /// Reloads on SIGHUP and when the files change, until `stop` fires.
    pub fn spawn_reloader(self: &Arc<Self>, mut stop: watch::Receiver<bool>) {
        let tls = Arc::clone(self);
        tokio::spawn(async move {
            let mut hangup =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
            let mut seen = stamp_of(&tls.files);
            let mut ticker = tokio::time::interval(POLL_INTERVAL);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                let signalled = async {
                    match hangup.as_mut() {
                        Some(s) => s.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = signalled => {
                        tracing::info!("SIGHUP: reloading the TLS certificate and key");
                        seen = stamp_of(&tls.files);
                        tls.reload();
                    }
                    _ = ticker.tick() => {
                        let now = stamp_of(&tls.files);
                        // A file being replaced may be missing for a moment:
                        // wait until both are there again.
                        if now.is_some() && now != seen {
                            seen = now;
                            tls.reload();
                        }
                    }
                }
            }
        });
    }
}

/// Builds the configuration: TLS 1.2 and 1.3 with ring, HTTP/1.1 only.
fn server_config(files: &TlsFiles) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot read a PEM certificate from {}: {e}",
                files.cert.display()
            )
        })?;
    if certs.is_empty() {
        anyhow::bail!("no certificate in {}", files.cert.display());
    }
    warn_if_readable(&files.key);
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        anyhow::anyhow!(
            "cannot read a PEM private key from {}: {e}",
            files.key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .context("the TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            anyhow::anyhow!(
                "the key in {} does not fit the certificate in {}: {e}",
                files.key.display(),
                files.cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A private key readable by the file's group or by others is one more
/// way for it to leak: said once per load.
fn warn_if_readable(key: &Path) {
    if let Ok(meta) = std::fs::metadata(key) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                target: "tessera::security",
                file = %key.display(),
                mode = %format!("{mode:04o}"),
                "the TLS private key is accessible to its group or to others; \
                 restrict it with chmod 600"
            );
        }
    }
}
