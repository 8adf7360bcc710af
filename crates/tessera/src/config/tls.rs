//! The settings of in-process HTTPS: the certificate chain and private key
//! files. Both or neither; with them the API port speaks only HTTPS.

use std::path::{Path, PathBuf};

use clap::Args;

use super::setting_error;

/// Flags (and `TESSERA_*` variables) of TLS.
#[derive(Debug, Clone, Default, Args)]
pub struct TlsArgs {
    /// PEM file with the server's certificate chain, leaf first; with
    /// `tls_key`, the API port serves HTTPS only (TLS 1.2 and 1.3). Reloaded
    /// on SIGHUP and when the file changes [default: none, plain HTTP].
    #[arg(long, env = "TESSERA_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1);
    /// keep it readable by Tessera's user only [default: none].
    #[arg(long, env = "TESSERA_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
}

/// The same settings from the TOML file.
#[derive(Debug, Default)]
pub struct TlsFile {
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

/// The certificate and key files of an HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Flags over the file; a relative path in the file is relative to the
/// file's folder (`base_dir`), as the realms' files are.
pub fn resolve(
    args: TlsArgs,
    file: TlsFile,
    base_dir: Option<&Path>,
) -> anyhow::Result<Option<TlsFiles>> {
    let from_file = |p: PathBuf| match base_dir {
        Some(dir) if p.is_relative() => dir.join(p),
        _ => p,
    };
    let cert = args.tls_cert.or(file.tls_cert.map(from_file));
    let key = args.tls_key.or(file.tls_key.map(from_file));
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(TlsFiles { cert, key })),
        (Some(_), None) => Err(setting_error(
            "tls_key",
            "`tls_cert` is set but `tls_key` is not: HTTPS needs both",
        )),
        (None, Some(_)) => Err(setting_error(
            "tls_cert",
            "`tls_key` is set but `tls_cert` is not: HTTPS needs both",
        )),
    }
}
