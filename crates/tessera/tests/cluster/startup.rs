//! Start-up and readiness against the database: a node started before
//! its database waits for it (naming where it looks, never the password),
//! gives up after `store_wait`, refuses at once a database without the TLS
//! its URL requires, and a database that turns read-only makes the node
//! unready.

use std::time::{Duration, Instant};

use tessera_testkit::postgres::run_sql;

use crate::support::*;

/// A node on `url` (not waited for) trying each connection for a second
/// and waiting `store_wait` in all for its database.
fn serve_waiting(url: &str, store_wait: &str) -> Node {
    let flags = [
        "--store",
        url,
        "--store-timeout",
        "1s",
        "--store-wait",
        store_wait,
    ];
    Node::serve("node", node_command(), None, &flags)
}

/// A node whose database does not answer yet logs each attempt with the
/// host, port and cause, and serves once the database is reachable.
pub fn a_node_started_before_its_database_waits_for_it(pg: &str) {
    let db = TestDb::database(pg);
    let proxy = Proxy::start(server_address(pg));
    proxy.set(Mode::Cut);
    let url = with_address(&db.url, proxy.addr);
    let mut node = serve_waiting(&url, "2m");
    let target = proxy.addr.to_string();
    let lines = node.expect_output("a line per attempt", |lines| {
        lines
            .iter()
            .filter(|l| l.contains("cannot be reached yet"))
            .count()
            >= 2
    });
    let attempt = lines
        .iter()
        .find(|l| l.contains("cannot be reached yet"))
        .unwrap();
    assert!(attempt.contains(&target), "{attempt}");
    assert!(attempt.contains("cause"), "{attempt}");
    proxy.set(Mode::Open);
    node.expect_ready();
}

/// With a short `store_wait`, a node whose database never answers exits
/// with a message that names the host and port.
pub fn a_node_gives_up_after_store_wait_and_names_the_database(pg: &str) {
    let db = TestDb::database(pg);
    let proxy = Proxy::start(server_address(pg));
    proxy.set(Mode::Cut);
    let url = with_address(&db.url, proxy.addr).replacen(
        "postgres://postgres@",
        "postgres://postgres:s3cret-pw@",
        1,
    );
    let started = Instant::now();
    let mut node = serve_waiting(&url, "1s");
    let ended = node
        .wait_for_output(Duration::from_secs(30), |_| false)
        .unwrap_err();
    assert!(ended.starts_with("(exited with"), "{ended}");
    assert!(!ended.contains("exit status: 0"), "{ended}");
    assert!(started.elapsed() < Duration::from_secs(30));
    let log = node.log();
    assert!(
        log.contains(&format!(
            "cannot open the PostgreSQL store at {}",
            proxy.addr
        )),
        "{log}"
    );
    assert!(
        !log.contains("s3cret-pw"),
        "the password was printed: {log}"
    );
}

/// A database that does not speak TLS while the URL requires it is a
/// mistake in the configuration, not an outage: the node exits at once
/// (not after `store_wait`), naming the host, port and cause, never the
/// password.
pub fn a_node_refuses_a_database_without_tls_at_once(pg: &str) {
    let db = TestDb::database(pg);
    let url = format!("{}?sslmode=require", db.url).replacen(
        "postgres://postgres@",
        "postgres://postgres:s3cret-pw@",
        1,
    );
    let started = Instant::now();
    let mut node = Node::serve(
        "node",
        node_command(),
        None,
        &["--store", &url, "--store-wait", "5m"],
    );
    let ended = node
        .wait_for_output(Duration::from_secs(60), |_| false)
        .unwrap_err();
    assert!(ended.starts_with("(exited with"), "{ended}");
    assert!(!ended.contains("exit status: 0"), "{ended}");
    assert!(started.elapsed() < Duration::from_secs(60));
    let log = node.log();
    let at = server_address(pg);
    assert!(
        log.contains(&format!("TLS to PostgreSQL at {at}"))
            && log.contains("does not accept TLS connections, and sslmode=require requires TLS"),
        "{log}"
    );
    assert!(!log.contains("cannot be reached yet"), "{log}");
    assert!(
        !log.contains("s3cret-pw"),
        "the password was printed: {log}"
    );
}

/// A database set read-only (as a standby is): `/_tessera/ready` turns
/// 503 once the node's sessions are read-only, and 200 again after.
pub fn a_read_only_database_makes_the_node_unready(pg: &str) {
    let db = TestDb::database(pg);
    let mut node = start_node("node", &db.url, &["--store-timeout", "2s"]);
    let http = Http::new();
    assert_eq!(arrived("ready", http.get(&node.base, READY)).status, 200);
    let set = |value: &str| {
        run_sql(
            pg,
            &format!(
                "ALTER DATABASE {0} SET default_transaction_read_only = {value};
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                  WHERE datname = '{0}' AND pid <> pg_backend_pid();",
                db.name
            ),
        )
        .unwrap()
    };
    set("on");
    let readiness = |want: u16| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = http.get(&node.base, READY);
            if matches!(&r, Ok(r) if r.status == want) {
                return r.unwrap();
            }
            assert!(Instant::now() < deadline, "readiness never {want}: {r:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let r = readiness(503);
    assert_eq!(r.body["status"], "unavailable", "{}", r.text);
    set("off");
    readiness(200);
    node.terminate(Duration::from_secs(10));
}
