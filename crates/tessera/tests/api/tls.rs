//! In-process HTTPS: a real server with certificates made here (a test CA
//! and its leaves, with rcgen), driven by a real TLS client (rustls, ring)
//! and by raw TCP for what a TLS library would not send.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, DnType, KeyPair, SerialNumber};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::Value;
use tessera::config::{Config, ServeArgs, TlsArgs};
use tessera::server::{self, Running};

/// A test CA and the leaves it signs for `localhost`.
struct Pki {
    ca: rcgen::Certificate,
    ca_key: KeyPair,
}

/// One leaf: its PEM texts and its DER, to recognise it when served.
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Tessera test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        Pki { ca, ca_key }
    }

    fn leaf(&self, serial: u64) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.serial_number = Some(SerialNumber::from(serial));
        params
            .distinguished_name
            .push(DnType::CommonName, format!("tessera test leaf {serial}"));
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    fn client(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

/// Writes a file whole, by renaming a finished copy over it, as a
/// certificate manager would.
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Node {
    runtime: tokio::runtime::Runtime,
    running: Option<Running>,
    cert: PathBuf,
    key: PathBuf,
    _dir: tempfile::TempDir,
}

impl Node {
    fn config(dir: &Path, header_read_timeout: Option<&str>) -> anyhow::Result<Config> {
        let mut config = Config::resolve(ServeArgs {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.join("data")),
            header_read_timeout: header_read_timeout.map(Into::into),
            metrics_listen: Some("127.0.0.1:0".into()),
            shutdown_timeout: Some("2s".into()),
            tls: TlsArgs {
                tls_cert: Some(dir.join("cert.pem")),
                tls_key: Some(dir.join("key.pem")),
            },
            ..Default::default()
        })?;
        config.bootstrap_password = Some(tessera_domain::crypto::Secret::new(
            tessera_testkit::server::ADMIN_PW,
        ));
        Ok(config)
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    }

    fn start(leaf: &Leaf, header_read_timeout: Option<&str>) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, &leaf.cert_pem).unwrap();
        std::fs::write(&key, &leaf.key_pem).unwrap();
        let config = Self::config(dir.path(), header_read_timeout).unwrap();
        let runtime = Self::runtime();
        let running = runtime
            .block_on(server::start(config, std::future::pending()))
            .expect("the server starts");
        Node {
            runtime,
            running: Some(running),
            cert,
            key,
            _dir: dir,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.running.as_ref().unwrap().addr
    }

    fn metric(&self, name: &str) -> f64 {
        let at = self.running.as_ref().unwrap().metrics_addr.unwrap();
        let text = reqwest::blocking::get(format!("http://{at}/_tessera/metrics"))
            .unwrap()
            .text()
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = self.runtime.block_on(running.shutdown());
        }
    }
}

type Tls = StreamOwned<ClientConnection, TcpStream>;

fn connect(addr: SocketAddr, client: &Arc<ClientConfig>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(Arc::clone(client), name).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    // Finish the handshake now, so that the served certificate is known.
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

fn served_cert(tls: &Tls) -> CertificateDer<'static> {
    tls.conn.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// One keep-alive GET; the status and the body.
fn get(tls: &mut Tls, path: &str) -> (u16, String) {
    write!(
        tls,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic {}\r\n\r\n",
        base64_admin()
    )
    .unwrap();
    tls.flush().unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tls.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    tls.read_exact(&mut body).unwrap();
    (status, String::from_utf8(body).unwrap())
}

fn base64_admin() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        tessera_testkit::server::ADMIN,
        tessera_testkit::server::ADMIN_PW
    ))
}

/// Waits until `s` is closed by the server (end of stream or an error);
/// the bytes it sent before.
fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(_) => return Some(got),
        }
    }
}

#[test]
fn https_serves_the_api_and_the_issuer_is_https() {
    let pki = Pki::new();
    let leaf = pki.leaf(1);
    let node = Node::start(&leaf, None);
    let mut tls = connect(node.addr(), &pki.client()).unwrap();
    assert_eq!(served_cert(&tls), leaf.der);
    assert_eq!(tls.conn.alpn_protocol(), None);
    let (status, body) = get(&mut tls, "/_security/_authenticate");
    assert_eq!(status, 200, "{body}");
    let who: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(who["username"], "elastic");
    let (status, body) = get(&mut tls, "/.well-known/oauth-authorization-server");
    assert_eq!(status, 200, "{body}");
    let metadata: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        metadata["issuer"],
        format!("https://{}", node.addr()),
        "{metadata}"
    );
    assert!(metadata["token_endpoint"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
}

#[test]
fn plain_http_to_the_https_port_is_closed_without_an_http_answer() {
    let pki = Pki::new();
    let node = Node::start(&pki.leaf(1), None);
    let mut s = TcpStream::connect(node.addr()).unwrap();
    s.write_all(b"GET /_tessera/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let got = read_until_closed(&mut s, Duration::from_secs(10)).expect("the server closes it");
    assert!(!got.starts_with(b"HTTP/"), "{got:?}");
    // The server is unharmed.
    let mut tls = connect(node.addr(), &pki.client()).unwrap();
    assert_eq!(get(&mut tls, "/_tessera/live").0, 200);
}

/// A TLS 1.1 ClientHello (no supported_versions extension): refused with
/// an alert, never answered with a ServerHello.
#[test]
fn tls_1_1_is_refused() {
    let pki = Pki::new();
    let node = Node::start(&pki.leaf(1), None);
    let mut hello = vec![0x03, 0x02];
    hello.extend_from_slice(&[7u8; 32]);
    hello.push(0); // no session id
    hello.extend_from_slice(&[0x00, 0x04, 0xc0, 0x13, 0x00, 0x2f]);
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
    let mut handshake = vec![0x01, 0x00, 0x00, hello.len() as u8];
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x02, 0x00, handshake.len() as u8];
    record.extend_from_slice(&handshake);
    let mut s = TcpStream::connect(node.addr()).unwrap();
    s.write_all(&record).unwrap();
    let got = read_until_closed(&mut s, Duration::from_secs(10)).expect("the server closes it");
    assert_ne!(got.first(), Some(&0x16), "a handshake answer: {got:?}");
    if let Some(&kind) = got.first() {
        assert_eq!(kind, 0x15, "an alert: {got:?}");
        // protocol_version(70) or handshake_failure(40).
        assert!(matches!(got.get(6), Some(70 | 40)), "{got:?}");
    }
}

#[test]
fn a_slow_handshake_is_closed_by_the_header_read_timeout() {
    let pki = Pki::new();
    let node = Node::start(&pki.leaf(1), Some("1s"));
    let started = Instant::now();
    let mut s = TcpStream::connect(node.addr()).unwrap();
    // The first bytes of a ClientHello, and nothing more.
    s.write_all(&[0x16, 0x03, 0x01, 0x01, 0x00, 0x01]).unwrap();
    read_until_closed(&mut s, Duration::from_secs(10)).expect("the server closes it");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
}

/// The key of one pair with the certificate of another is refused at
/// start, with a message naming both files, before anything is created.
#[test]
fn a_key_that_does_not_fit_the_certificate_is_refused_at_start() {
    let pki = Pki::new();
    let (a, b) = (pki.leaf(1), pki.leaf(2));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), &a.cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &b.key_pem).unwrap();
    let config = Node::config(dir.path(), None).unwrap();
    let runtime = Node::runtime();
    let err = runtime
        .block_on(server::start(config, std::future::pending()))
        .err()
        .expect("refused");
    let message = format!("{err:#}");
    assert!(message.contains("cert.pem"), "{message}");
    assert!(message.contains("key.pem"), "{message}");
    assert!(message.contains("does not fit"), "{message}");
    assert!(!dir.path().join("data").exists(), "the store was created");

    // A key file that is missing is named too.
    std::fs::remove_file(dir.path().join("key.pem")).unwrap();
    let config = Node::config(dir.path(), None).unwrap();
    let err = runtime
        .block_on(server::start(config, std::future::pending()))
        .err()
        .expect("refused");
    let message = format!("{err:#}");
    assert!(message.contains("key.pem"), "{message}");
}

/// Invariant: a bad certificate pair never replaces a good one. A new
/// pair written over the files is served to new connections, while a
/// connection opened before keeps working; a pair whose key does not fit
/// is refused and the last good one keeps serving.
#[test]
fn the_certificate_is_reloaded_when_its_files_change_and_a_bad_pair_is_refused() {
    let pki = Pki::new();
    let client = pki.client();
    let (a, b, c) = (pki.leaf(1), pki.leaf(2), pki.leaf(3));
    let node = Node::start(&a, None);
    let mut old = connect(node.addr(), &client).unwrap();
    assert_eq!(served_cert(&old), a.der);
    assert_eq!(get(&mut old, "/_tessera/live").0, 200);

    replace(&node.key, &b.key_pem);
    replace(&node.cert, &b.cert_pem);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let fresh = connect(node.addr(), &client).unwrap();
        if served_cert(&fresh) == b.der {
            break;
        }
        assert_eq!(served_cert(&fresh), a.der);
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The connection opened before the reload still works.
    assert_eq!(get(&mut old, "/_security/_authenticate").0, 200);
    assert_eq!(served_cert(&old), a.der);

    // A certificate with the wrong key: refused, B keeps serving.
    let failures = node.metric("tessera_tls_reload_failures_total");
    replace(&node.cert, &c.cert_pem);
    let deadline = Instant::now() + Duration::from_secs(30);
    while node.metric("tessera_tls_reload_failures_total") <= failures {
        assert!(Instant::now() < deadline, "the bad pair was never tried");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut fresh = connect(node.addr(), &client).unwrap();
    assert_eq!(served_cert(&fresh), b.der);
    assert_eq!(get(&mut fresh, "/_tessera/live").0, 200);
    assert_eq!(get(&mut old, "/_tessera/live").0, 200);
}

/// The real binary reloads its pair on SIGHUP: new connections get the
/// new certificate once it says so. It warns about a key file others can
/// read.
#[test]
fn sighup_reloads_the_certificate_of_the_binary() {
    use tessera_testkit::process::{without_tessera_env, Process};
    let pki = Pki::new();
    let client = pki.client();
    let (a, b) = (pki.leaf(1), pki.leaf(2));
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, &a.cert_pem).unwrap();
    std::fs::write(&key, &a.key_pem).unwrap();
    let mut cmd = without_tessera_env(std::process::Command::new(env!("CARGO_BIN_EXE_tessera")));
    cmd.env("TESSERA_LOG", "info")
        .env("TESSERA_TLS_CERT", &cert)
        .env("TESSERA_TLS_KEY", &key)
        .env(
            "TESSERA_BOOTSTRAP_PASSWORD",
            tessera_testkit::server::ADMIN_PW,
        );
    // A key open to others is warned about (at each load).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut node = Process::serve("tessera", cmd, None, &[]);
    node.wait_listening()
        .unwrap_or_else(|log| panic!("tessera did not start:\n{log}"));
    assert!(
        node.log()
            .contains("the TLS private key is accessible to its group or to others"),
        "{}",
        node.log()
    );
    let addr: SocketAddr = node.base.trim_start_matches("http://").parse().unwrap();
    assert_eq!(served_cert(&connect(addr, &client).unwrap()), a.der);

    replace(&key, &b.key_pem);
    replace(&cert, &b.cert_pem);
    let status = std::process::Command::new("kill")
        .args(["-HUP", &node.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    node.expect_output("the reload on SIGHUP", |lines| {
        lines.iter().any(|l| l.contains("SIGHUP: reloading"))
            && lines
                .iter()
                .any(|l| l.contains("reloaded the TLS certificate"))
    });
    let mut fresh = connect(addr, &client).unwrap();
    assert_eq!(served_cert(&fresh), b.der);
    assert_eq!(get(&mut fresh, "/_tessera/ready").0, 200);
    node.terminate(Duration::from_secs(20));
}
