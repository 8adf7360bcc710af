//! Request ids and the metrics as an operator sees them: ids echoed or
//! generated, the metrics by Prometheus's conventions, and
//! docs/operations.md and deploy/alerts.yml naming exactly the metrics the
//! node exports.

use std::collections::BTreeSet;

use crate::support::*;

const METRICS: &str = "/_tessera/metrics";

/// Metrics that exist only in some deployments: the PostgreSQL pool's,
/// the SAML and OpenID Connect realms' (once such a realm answered), and
/// TLS's (once a handshake or a reload failed).
const CONDITIONAL: [&str; 11] = [
    "tessera_store_pool_max_connections",
    "tessera_store_cache_lookups_total",
    "tessera_store_cache_extended_hits_total",
    "tessera_store_grace_waits_total",
    "tessera_store_pool_connections",
    "tessera_store_pool_waiting",
    "tessera_saml_responses_total",
    "tessera_oidc_logins_total",
    "tessera_oidc_logouts_total",
    "tessera_tls_handshake_failures_total",
    "tessera_tls_reload_failures_total",
];

fn repo_file(path: &str) -> String {
    let at = format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&at).unwrap_or_else(|e| panic!("{at}: {e}"))
}

/// The `tessera_*` names in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("tessera_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

#[test]
fn request_ids_are_echoed_or_generated() {
    let srv = TestServer::start();
    let r = srv
        .get(AUTHENTICATE)
        .admin()
        .header("X-Request-Id", "req-1")
        .send();
    assert_eq!(r.header("x-request-id"), Some("req-1"));
    let r = srv
        .get(AUTHENTICATE)
        .admin()
        .header("X-Opaque-Id", "op-1")
        .send();
    assert_eq!(r.header("x-opaque-id"), Some("op-1"));
    for bad in ["with space", &"x".repeat(129)] {
        let r = srv
            .get(AUTHENTICATE)
            .admin()
            .header("X-Request-Id", bad)
            .send();
        let id = r.header("x-request-id").unwrap();
        assert_ne!(id, bad);
        assert_eq!(id.len(), 22, "{id}");
    }
    // Errors carry one too.
    let r = srv.get("/_nowhere").send();
    assert_eq!(r.header("x-request-id").map(str::len), Some(22));
}

#[test]
fn metrics_follow_prometheus_conventions_and_match_the_docs() {
    let srv = TestServer::start();
    srv.assert_basic_ok(ADMIN, ADMIN_PW);
    let r = srv.get(METRICS).admin().send();
    assert_eq!(r.status, 200, "{}", r.text);
    let text = r.text;
    let mut exported = BTreeSet::new();
    for line in text.lines().filter(|l| l.starts_with("# TYPE tessera_")) {
        let mut parts = line.split_whitespace().skip(2);
        let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no HELP line"
        );
        match kind {
            "counter" => assert!(name.ends_with("_total"), "{name}"),
            "histogram" => assert!(name.ends_with("_seconds"), "{name}"),
            "gauge" => assert!(!name.ends_with("_total"), "{name}"),
            other => panic!("{name} is a {other}: durations are histograms"),
        }
        exported.insert(name.to_owned());
    }
    assert!(
        text.contains(&format!(
            "tessera_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    // Counters of known label values are there from the start (at 0 in a
    // fresh process; the registry is the process's, which other tests of
    // this binary share, so the value is not checked).
    for series in [
        "tessera_refresh_total{outcome=\"family_revoked\"} ",
        "tessera_audit_queue_full_total ",
        "tessera_connections_closed_total{reason=\"evicted\"} ",
        "tessera_authentications_total{realm_type=\"native\",realm=\"default_native\",outcome=\"locked\"} ",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(series)),
            "{series} missing from\n{text}"
        );
    }

    let docs = repo_file("docs/operations.md");
    let section = docs
        .split("\n## Metrics")
        .nth(1)
        .expect("docs/operations.md has a Metrics section");
    let section = section.split("\n## ").next().unwrap();
    let documented = metric_names(section)
        .into_iter()
        .map(|n| n.trim_end_matches("_bucket").to_owned())
        .collect::<BTreeSet<_>>();
    let missing: Vec<_> = documented
        .iter()
        .filter(|n| !exported.contains(*n) && !CONDITIONAL.contains(&n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "documented but not exported: {missing:?}"
    );
    let undocumented: Vec<_> = exported.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "exported but not documented: {undocumented:?}"
    );

    let alerts = repo_file("deploy/alerts.yml");
    for name in metric_names(&alerts) {
        let base = name.trim_end_matches("_bucket");
        assert!(
            documented.contains(base),
            "deploy/alerts.yml uses {name}, which is not documented"
        );
    }
}

/// A line logged while a request is handled ends with its id: here the
/// failed login the `tessera::security` log records.
#[test]
fn log_lines_of_a_request_carry_its_id() {
    let mut cmd = tessera_testkit::process::without_tessera_env(std::process::Command::new(env!(
        "CARGO_BIN_EXE_tessera"
    )));
    cmd.env("TESSERA_LOG", "info")
        .env("TESSERA_BOOTSTRAP_PASSWORD", ADMIN_PW);
    let mut node = tessera_testkit::process::Process::serve("ids", cmd, None, &[]);
    node.expect_ready();
    let api = Api::new(&node.base);
    let r = api
        .get(AUTHENTICATE)
        .basic(ADMIN, "not-the-password")
        .header("X-Request-Id", "trace-me-1")
        .send();
    assert_eq!(r.status, 401);
    let lines = node
        .wait_for_output(std::time::Duration::from_secs(10), |lines| {
            lines.iter().any(|l| l.contains("authentication failed"))
        })
        .unwrap_or_else(|log| panic!("no failed-login line: {log}"));
    let line = lines
        .iter()
        .find(|l| l.contains("authentication failed"))
        .unwrap();
    assert!(
        line.contains("tessera::security") && line.ends_with("request_id=trace-me-1"),
        "{line}"
    );
}
