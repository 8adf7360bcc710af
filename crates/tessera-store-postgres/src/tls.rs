//! TLS to the database: libpq's five `sslmode`s read from the store URL,
//! the CA file (`sslrootcert`, or `PostgresConfig::ca_file`), an optional
//! client certificate (`sslcert`, `sslkey`), and the rustls connector
//! (ring provider) every pooled connection is opened with.
//!
//! tokio-postgres itself knows only `disable`, `prefer` and `require`, and
//! rejects the other `ssl*` parameters, so [`split`] takes them out of the
//! URL and hands the rest (hosts, ports, `target_session_attrs`, …) to the
//! driver untouched. What each mode means:
//!
//! | mode | TLS | server certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `prefer` | if the server offers it, else plain | chain checked only if a CA file is given |
//! | `require` | always | chain checked only if a CA file is given (as libpq) |
//! | `verify-ca` | always | chain checked against the CA file (or the webpki roots) |
//! | `verify-full` | always | chain and host name checked |
//!
//! Without `sslmode` the mode is `verify-full` when a CA file is given and
//! `prefer` (libpq's default) otherwise: a CA file asks for verified TLS,
//! and is never silently downgraded to a plain connection.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, WebPkiServerVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tessera_store::{StoreError, StoreResult};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values (`allow` is not supported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> StoreResult<SslMode> {
        Ok(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(config_error(format!(
                    "sslmode={other} is not supported; use disable, prefer, require, \
                     verify-ca or verify-full"
                )))
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// What the driver is told: it negotiates, we verify.
    pub(crate) fn driver(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }
}

/// Where trusted certificate authorities come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    /// A PEM file of one or more CA certificates.
    File(PathBuf),
    /// `sslrootcert=system`: the Mozilla roots of `webpki-roots`.
    System,
}

/// The TLS settings of one store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) mode: SslMode,
    roots: Option<Roots>,
    /// `sslcert` and `sslkey`.
    client: Option<(PathBuf, PathBuf)>,
}

impl fmt::Display for Settings {
    /// For logs and messages: the mode and where the roots come from.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sslmode={}", self.mode.name())?;
        match &self.roots {
            Some(Roots::File(path)) => write!(f, ", CA file {}", path.display())?,
            Some(Roots::System) => f.write_str(", system roots")?,
            None if matches!(self.mode, SslMode::VerifyCa | SslMode::VerifyFull) => {
                f.write_str(", system roots")?
            }
            None => {}
        }
        if self.client.is_some() {
            f.write_str(", client certificate")?;
        }
        Ok(())
    }
}

fn config_error(message: String) -> StoreError {
    StoreError::Internal(format!("the PostgreSQL store's TLS settings: {message}"))
}

/// The TLS parameters of a `postgres://` URL taken out of it: the URL the
/// driver gets, and the settings. `ca_file` is the store's CA file
/// setting; an `sslrootcert` in the URL wins over it. A URL in libpq's
/// `key=value` form is passed through as it is (the driver then knows
/// only `disable`, `prefer` and `require`).
pub(crate) fn split(url: &str, ca_file: Option<&Path>) -> StoreResult<(String, Settings)> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Ok((url.to_owned(), key_value_settings(url, ca_file)));
    }
    let (base, query) = url.split_at(url.find('?').unwrap_or(url.len()));
    let query = query.strip_prefix('?').unwrap_or(query);
    let (mut mode, mut root, mut cert, mut key) = (None, None, None, None);
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match decode(name)?.as_str() {
            "sslmode" => &mut mode,
            "sslrootcert" => &mut root,
            "sslcert" => &mut cert,
            "sslkey" => &mut key,
            _ => {
                kept.push(pair);
                continue;
            }
        };
        *slot = Some(decode(value)?);
    }
    let roots = match root.filter(|r| !r.is_empty()) {
        Some(r) if r == "system" => Some(Roots::System),
        Some(r) => Some(Roots::File(PathBuf::from(r))),
        None => ca_file.map(|p| Roots::File(p.to_owned())),
    };
    let mode = match mode.as_deref() {
        Some(value) => SslMode::parse(value)?,
        None if roots.is_some() => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    let client = match (cert, key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some((PathBuf::from(cert), PathBuf::from(key))),
        _ => {
            return Err(config_error(
                "sslcert and sslkey go together: a client certificate needs its key".into(),
            ))
        }
    };
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((
        url,
        Settings {
            mode,
            roots,
            client,
        },
    ))
}

/// The settings of a `key=value` string: the driver's own `sslmode` (it
/// refuses the `verify-*` modes there) and the CA file setting.
fn key_value_settings(text: &str, ca_file: Option<&Path>) -> Settings {
    use tokio_postgres::config::SslMode as Driver;
    let mode = match text
        .parse::<tokio_postgres::Config>()
        .map(|c| c.get_ssl_mode())
    {
        Ok(Driver::Disable) => SslMode::Disable,
        Ok(Driver::Require) => SslMode::Require,
        // The caller's own parse reports a bad string.
        _ => SslMode::Prefer,
    };
    Settings {
        mode,
        roots: ca_file.map(|p| Roots::File(p.to_owned())),
        client: None,
    }
}

/// Percent-decoding, as the driver decodes URL parameters.
fn decode(s: &str) -> StoreResult<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| config_error("a URL parameter is not UTF-8 once decoded".into()))
}

/// The connector for `settings`: reads the CA file and the client
/// certificate now, so that a missing or unreadable file stops the start.
pub(crate) fn connector(settings: &Settings) -> StoreResult<MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match &settings.roots {
        Some(Roots::File(path)) => Some(read_roots(path)?),
        Some(Roots::System) => Some(system_roots()),
        None if matches!(settings.mode, SslMode::VerifyCa | SslMode::VerifyFull) => {
            Some(system_roots())
        }
        None => None,
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (settings.mode, roots) {
        (SslMode::VerifyFull, Some(roots)) => {
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .map_err(|e| config_error(format!("the certificate verifier: {e}")))?
        }
        (_, roots) => Arc::new(ChainOnly {
            roots,
            provider: Arc::clone(&provider),
        }),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error(format!("the TLS versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &settings.client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    config_error(format!(
                        "cannot read the client certificate (sslcert) {}: {e}",
                        cert.display()
                    ))
                })?;
            let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                config_error(format!(
                    "cannot read the client key (sslkey) {}: {e}",
                    key.display()
                ))
            })?;
            builder
                .with_client_auth_cert(chain, private)
                .map_err(|e| config_error(format!("the client certificate and key: {e}")))?
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

fn read_roots(path: &Path) -> StoreResult<RootCertStore> {
    let unreadable = |e: &dyn fmt::Display| {
        config_error(format!("cannot read the CA file {}: {e}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| unreadable(&e))?;
    if certs.is_empty() {
        return Err(unreadable(&"it holds no PEM certificate"));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| unreadable(&e))?;
    }
    Ok(roots)
}

fn system_roots() -> RootCertStore {
    RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

/// Why a connection attempt failed, when TLS is the reason: the server
/// refused TLS that the mode demands, or the handshake failed (its
/// certificate did not verify, most often).
pub(crate) fn failure(e: &tokio_postgres::Error, settings: &Settings) -> Option<String> {
    // The driver's words for its TLS error kind; the cause (the rustls
    // error, or the server's refusal) is its source.
    if !e.to_string().starts_with("error performing TLS handshake") {
        return None;
    }
    let cause = std::error::Error::source(e).map(ToString::to_string);
    Some(match cause.as_deref() {
        Some("server does not support TLS") => format!(
            "the server does not accept TLS connections, and sslmode={} requires TLS",
            settings.mode.name()
        ),
        Some(cause) => format!("the TLS handshake failed ({settings}): {cause}"),
        None => format!("the TLS handshake failed ({settings})"),
    })
}

/// Every mode but `verify-full`. Without `roots` (`prefer` and `require`
/// without a CA file, as libpq) the server's certificate is not checked:
/// the connection is encrypted, but not protected from an active attacker.
/// With `roots` (`verify-ca`, and `prefer`/`require` with a CA file) the
/// server's chain must lead to a trusted CA and be valid now; the name it
/// was issued for is not compared with the host. Either way the
/// handshake's signatures are checked against the certificate the server
/// sent.
#[derive(Debug)]
struct ChainOnly {
    roots: Option<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str, ca: Option<&str>) -> (String, Settings) {
        split(url, ca.map(Path::new)).unwrap()
    }

    #[test]
    fn tls_parameters_are_taken_out_and_the_rest_is_kept() {
        let (url, s) = settings(
            "postgres://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
            None,
        );
        assert_eq!(
            url,
            "postgres://u:p@h1:5432,h2:5433/db?target_session_attrs=read-write&application_name=x"
        );
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.roots, Some(Roots::File("/etc/ca.pem".into())));
        let parsed: tokio_postgres::Config = url.parse().unwrap();
        assert_eq!(parsed.get_hosts().len(), 2);
        assert_eq!(parsed.get_ports(), [5432, 5433]);

        let (url, s) = settings("postgres://h/db?sslmode=require", None);
        assert_eq!(url, "postgres://h/db");
        assert_eq!((s.mode, s.roots), (SslMode::Require, None));
        let (url, s) = settings("postgresql://h/db", None);
        assert_eq!(
            (url.as_str(), s.mode),
            ("postgresql://h/db", SslMode::Prefer)
        );
    }

    #[test]
    fn a_ca_file_makes_the_default_verify_full_and_the_url_wins() {
        let (_, s) = settings("postgres://h/db", Some("/setting.pem"));
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.roots, Some(Roots::File("/setting.pem".into())));
        let (_, s) = settings("postgres://h/db?sslrootcert=/url.pem", Some("/setting.pem"));
        assert_eq!(s.roots, Some(Roots::File("/url.pem".into())));
        let (_, s) = settings("postgres://h/db?sslmode=prefer", Some("/setting.pem"));
        assert_eq!(s.mode, SslMode::Prefer);
        let (_, s) = settings("postgres://h/db?sslrootcert=system", None);
        assert_eq!(
            (s.mode, s.roots.clone()),
            (SslMode::VerifyFull, Some(Roots::System))
        );
        assert_eq!(s.to_string(), "sslmode=verify-full, system roots");
    }

    #[test]
    fn bad_tls_settings_are_refused_clearly() {
        let err = |url: &str| split(url, None).unwrap_err().to_string();
        assert!(err("postgres://h/db?sslmode=allow").contains("sslmode=allow is not supported"));
        assert!(err("postgres://h/db?sslcert=/c.pem").contains("sslcert and sslkey"));
        let missing = Settings {
            mode: SslMode::VerifyFull,
            roots: Some(Roots::File("/nonexistent/ca.pem".into())),
            client: None,
        };
        let message = match connector(&missing) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("a missing CA file was accepted"),
        };
        assert!(
            message.contains("cannot read the CA file /nonexistent/ca.pem"),
            "{message}"
        );
    }

    #[test]
    fn key_value_strings_pass_through() {
        let (url, s) = settings("host=h sslmode=require", None);
        assert_eq!(url, "host=h sslmode=require");
        assert_eq!(s.mode, SslMode::Require);
    }
}
