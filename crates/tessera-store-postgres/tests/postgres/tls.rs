//! TLS to the database. The CA, the server's certificate (for `localhost`
//! and `127.0.0.1`) and a client certificate are made here; a throw-away
//! server of their own is started with them by `.ci/postgres.sh` in its
//! TLS mode, which takes TCP connections over TLS only (`hostssl` lines
//! alone in pg_hba.conf) and plain ones on its Unix socket, where the test
//! looks at `pg_stat_ssl`. The plain test server serves the cases that
//! need a server without TLS.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use tessera_store::conformance::{self, StoreExt};
use tessera_store::{Store, StoreError};
use tessera_store_postgres::{PostgresConfig, PostgresStore};
use tessera_testkit::postgres::{connect_admin, random_hex, server_address, TestDb};
use tessera_testkit::trials::{needs_postgres_async, Trial};

pub fn trials() -> Vec<Trial> {
    vec![
        needs_postgres_async(
            "tls::sslmodes_against_a_server_that_takes_tls_only",
            2,
            sslmodes_against_a_server_that_takes_tls_only,
        ),
        needs_postgres_async(
            "tls::required_tls_refuses_a_server_without_it",
            2,
            required_tls_refuses_a_server_without_it,
        ),
    ]
}

/// A CA and what it issued, as PEM files in a folder of their own (which
/// `.ci/postgres.sh` reads `server.crt`, `server.key` and `ca.crt` from),
/// and a second CA that issued none of them.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new() -> Pki {
        let dir = std::env::temp_dir().join(format!("tessera-pgtls-{}", random_hex()));
        std::fs::create_dir_all(&dir).unwrap();
        let (ca, ca_key) = ca("Tessera test CA");
        let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).unwrap();
        write("ca.crt", &ca.pem());
        write("other-ca.crt", &self::ca("Another CA").0.pem());
        let leaf = |names: &[&str], cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params =
                CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                    .unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (cert, key) = leaf(&["localhost", "127.0.0.1"], "localhost");
        write("server.crt", &cert);
        write("server.key", &key);
        // The `cert` method of pg_hba.conf matches the CN with the role.
        let (cert, key) = leaf(&[], "tessera_cert");
        write("client.crt", &cert);
        write("client.key", &key);
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    (params.self_signed(&key).unwrap(), key)
}

/// A PostgreSQL server with TLS, stopped and deleted when dropped.
struct TlsServer {
    state: PathBuf,
    port: u16,
    /// `key=value` connection string of its Unix socket (plain).
    socket: String,
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.ci/postgres.sh")
}

impl TlsServer {
    fn start(pki: &Pki) -> TlsServer {
        let state = pki.dir.join("postgres.state");
        // A first port below Linux's ephemeral range (32768 and up), so
        // that no test's outgoing connection takes it between the script's
        // check and the server's bind; the script moves on if it is held.
        // The ephemeral port the kernel hands out spreads concurrent runs.
        let ephemeral = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let free = 20000 + ephemeral % 12000;
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .env("TESSERA_PG_STATE", &state)
            .env("TESSERA_PG_PORT", free.to_string())
            .env("TESSERA_PG_TLS_DIR", &pki.dir)
            .output()
            .expect("running .ci/postgres.sh");
        // Stops whatever started, should an assertion below fail.
        let mut server = TlsServer {
            state,
            port: 0,
            socket: String::new(),
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "starting a PostgreSQL server with TLS failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let var = |name: &str| {
            stdout
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name} in {stdout}"))
                .to_owned()
        };
        server.port = server_address(&var("TESSERA_TEST_POSTGRES_URL")).port();
        server.socket = format!(
            "host={} port={} user=postgres dbname=postgres",
            var("TESSERA_TEST_POSTGRES_SOCKET_DIR"),
            server.port
        );
        server
    }

    /// A URL on `host` (the server listens on 127.0.0.1) with `query`.
    fn url(&self, user: &str, host: &str, query: &str) -> String {
        format!(
            "postgres://{user}:not-the-password@{host}:{}/postgres?{query}",
            self.port
        )
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("stop")
            .env("TESSERA_PG_STATE", &self.state)
            .output();
    }
}

async fn connect(url: String, ca_file: Option<String>) -> Result<PostgresStore, StoreError> {
    PostgresStore::connect(PostgresConfig {
        ca_file: ca_file.map(PathBuf::from),
        ..PostgresConfig::new(url)
    })
    .await
}

/// The refusal of a store that must not open.
async fn refused(what: &str, url: String, ca_file: Option<String>) -> StoreError {
    match connect(url, ca_file).await {
        Err(e) => {
            let text = e.to_string();
            eprintln!("{what}: {text}");
            assert!(!text.contains("not-the-password"), "{what}: {text}");
            e
        }
        Ok(_) => panic!("{what}: the store opened"),
    }
}

/// A token stored through `store` reads back the same.
async fn round_trip(store: &PostgresStore) {
    let subject = conformance::subject("tls");
    let (record, pair) =
        tessera_domain::TokenRecord::issue(&subject, subject.client_ref(), true, 1_000, 60_000);
    store.insert_token(&record).await.unwrap();
    assert_eq!(store.stored(&pair.access).await, record);
}

/// Whether every session named `app` is over TLS (and there is one).
async fn sessions_use_tls(admin: &tokio_postgres::Client, app: &str) -> bool {
    let rows = admin
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    !rows.is_empty() && rows.iter().all(|r| r.get::<_, bool>(0))
}

async fn sslmodes_against_a_server_that_takes_tls_only(_base: String) {
    let pki = Pki::new();
    let server = TlsServer::start(&pki);
    let admin = connect_admin(&server.socket).await;
    let ca = pki.path("ca.crt");
    let at = format!("127.0.0.1:{}", server.port);

    // verify-full with the right CA: the store works, over TLS.
    let store = connect(
        server.url(
            "postgres",
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca}&application_name=tls_full"),
        ),
        None,
    )
    .await
    .expect("verify-full with the server's CA");
    round_trip(&store).await;
    assert!(sessions_use_tls(&admin, "tls_full").await);
    drop(store);

    // The CA file setting alone means verify-full.
    let store = connect(
        server.url("postgres", "127.0.0.1", "application_name=tls_setting"),
        Some(ca.clone()),
    )
    .await
    .expect("the CA file setting");
    round_trip(&store).await;
    assert!(sessions_use_tls(&admin, "tls_setting").await);
    drop(store);

    // Another CA: refused at once, naming the server and the cause.
    let e = refused(
        "wrong CA",
        server.url("postgres", "127.0.0.1", "sslmode=verify-full"),
        Some(pki.path("other-ca.crt")),
    )
    .await;
    assert!(
        matches!(&e, StoreError::Internal(m)
            if m.contains(&format!("TLS to PostgreSQL at {at}")) && m.contains("UnknownIssuer")),
        "{e}"
    );

    // A host name the certificate does not name: refused by verify-full,
    // accepted by verify-ca (the chain is still checked).
    let elsewhere = |mode: &str| {
        server.url(
            "postgres",
            "tessera-db.invalid",
            &format!("hostaddr=127.0.0.1&sslmode={mode}&sslrootcert={ca}"),
        )
    };
    let e = refused("host name mismatch", elsewhere("verify-full"), None).await;
    assert!(
        matches!(&e, StoreError::Internal(m) if m.contains("not valid for name")),
        "{e}"
    );
    let store = connect(elsewhere("verify-ca"), None)
        .await
        .expect("verify-ca ignores the host name");
    round_trip(&store).await;
    drop(store);
    let e = refused(
        "verify-ca with another CA",
        server.url(
            "postgres",
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={}", pki.path("other-ca.crt")),
        ),
        None,
    )
    .await;
    assert!(e.to_string().contains("UnknownIssuer"), "{e}");

    // require without a CA: encrypted, the certificate not checked.
    let store = connect(
        server.url(
            "postgres",
            "127.0.0.1",
            "sslmode=require&application_name=tls_req",
        ),
        None,
    )
    .await
    .expect("require without a CA file");
    round_trip(&store).await;
    assert!(sessions_use_tls(&admin, "tls_req").await);
    drop(store);

    // disable: the server takes no plain TCP connection.
    let e = refused(
        "disable",
        server.url("postgres", "127.0.0.1", "sslmode=disable"),
        None,
    )
    .await;
    assert!(e.to_string().contains("no encryption"), "{e}");

    // A CA file that is not there.
    let e = refused(
        "missing CA file",
        server.url("postgres", "127.0.0.1", "sslmode=verify-full"),
        Some(pki.path("absent.crt")),
    )
    .await;
    assert!(
        matches!(&e, StoreError::Internal(m) if m.contains("cannot read the CA file")),
        "{e}"
    );

    // A role let in only with a client certificate.
    admin
        .batch_execute("CREATE ROLE tessera_cert LOGIN SUPERUSER")
        .await
        .unwrap();
    let store = connect(
        server.url(
            "tessera_cert",
            "localhost",
            &format!(
                "sslmode=verify-full&sslrootcert={ca}&sslcert={}&sslkey={}",
                pki.path("client.crt"),
                pki.path("client.key")
            ),
        ),
        None,
    )
    .await
    .expect("a client certificate");
    round_trip(&store).await;
    drop(store);
    let e = refused(
        "no client certificate",
        server.url("tessera_cert", "localhost", "sslmode=verify-full"),
        Some(ca),
    )
    .await;
    assert!(e.to_string().contains("certificate"), "{e}");
}

/// `require`, `verify-ca` and `verify-full` refuse a server that does not
/// speak TLS, at once, naming it; `prefer` (the default) uses it plain.
async fn required_tls_refuses_a_server_without_it(base: String) {
    let addr = server_address(&base);
    let pki = Pki::new();
    let schema = TestDb::schema(&base);
    let url = |query: &str| format!("{}&{query}", schema.url);
    for mode in ["require", "verify-ca", "verify-full"] {
        let e = refused(
            mode,
            url(&format!(
                "sslmode={mode}&sslrootcert={}",
                pki.path("ca.crt")
            )),
            None,
        )
        .await;
        assert!(
            matches!(&e, StoreError::Internal(m)
                if m.contains(&format!("TLS to PostgreSQL at {addr}"))
                    && m.contains(&format!("does not accept TLS connections, and sslmode={mode}"))),
            "{mode}: {e}"
        );
    }
    let store = connect(url("sslmode=prefer"), None)
        .await
        .expect("prefer falls back to a plain connection");
    store.ping().await.unwrap();
}
