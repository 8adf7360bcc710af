//! Every metric the node exports, by Prometheus's conventions: base units
//! (`_seconds`), `_total` counters, bounded labels, histograms rather than
//! summaries. [`CATALOG`] is the one list: [`describe`] gives each its
//! `# HELP` line and registers the counters of known label values at 0,
//! and `docs/operations.md` lists the same names (a test holds them
//! together).

use std::sync::OnceLock;

use metrics::Counter;
use tessera_store::Store;

use crate::state::Metrics;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One exported metric.
pub struct MetricInfo {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

const fn m(name: &'static str, kind: Kind, help: &'static str) -> MetricInfo {
    MetricInfo { name, kind, help }
}

pub const CATALOG: &[MetricInfo] = &[
    m("tessera_build_info", Kind::Gauge, "Always 1; the version label is the running build."),
    m("tessera_http_requests_total", Kind::Counter, "HTTP requests answered, by matched route, method and status."),
    m("tessera_http_request_duration_seconds", Kind::Histogram, "Time to answer an HTTP request, by matched route."),
    m("tessera_tokens_issued_total", Kind::Counter, "Token pairs issued (grants, not refreshes)."),
    m("tessera_refresh_total", Kind::Counter, "Refresh-token presentations by outcome: rotated, replayed_in_window, reuse_detected, family_revoked."),
    m("tessera_tokens_purged_total", Kind::Counter, "Expired tokens removed by the cleanup."),
    m("tessera_authentications_total", Kind::Counter, "Password and client-secret verifications by realm and outcome, throttling refusals (locked, rate_limited) included."),
    m("tessera_realm_authentications_total", Kind::Counter, "Authentications by realm, realm type and outcome (success, failure, error)."),
    m("tessera_saml_responses_total", Kind::Counter, "SAML responses by realm and result (success or the rule that refused it)."),
    m("tessera_oidc_logins_total", Kind::Counter, "OpenID Connect logins by realm and result (success or the rule that refused it)."),
    m("tessera_oidc_logouts_total", Kind::Counter, "OpenID Connect logouts by realm."),
    m("tessera_tls_handshake_failures_total", Kind::Counter, "TLS handshakes that failed."),
    m("tessera_tls_reload_failures_total", Kind::Counter, "Certificate reloads refused (the last good pair kept serving)."),
    m("tessera_connections_open", Kind::Gauge, "Client connections open now."),
    m("tessera_connections_closed_total", Kind::Counter, "Connections the server closed, by reason (header_timeout, idle_timeout, evicted)."),
    m("tessera_accept_errors_total", Kind::Counter, "Errors accepting a connection."),
    m("tessera_audit_events_total", Kind::Counter, "Audit events written."),
    m("tessera_audit_queue_full_total", Kind::Counter, "Audit events whose request waited for room in the audit writer's queue."),
    m("tessera_store_pool_max_connections", Kind::Gauge, "PostgreSQL store: the most connections the pool opens."),
    m("tessera_store_pool_connections", Kind::Gauge, "PostgreSQL store: connections open, by state (idle, in_use: leased to one call, shared: by many single statements)."),
    m("tessera_store_pool_waiting", Kind::Gauge, "PostgreSQL store: requests waiting for a connection."),
    m("tessera_store_cache_lookups_total", Kind::Counter, "PostgreSQL store: authentication reads by result (hit: answered from the node's cache, miss: read from the database)."),
    m("tessera_store_cache_extended_hits_total", Kind::Counter, "PostgreSQL store: cache hits served past cluster_cache_ttl because no write that takes something back had committed since the entry was read (the revocation epoch)."),
    m("tessera_store_grace_waits_total", Kind::Counter, "PostgreSQL store: writes that waited cluster_cache_ttl after their commit before answering."),
];

/// Buckets of the `_seconds` histograms: 0.5 ms to 10 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The outcomes of `tessera_refresh_total`.
pub const REFRESH_OUTCOMES: [&str; 4] = [
    "rotated",
    "replayed_in_window",
    "reuse_detected",
    "family_revoked",
];

/// Gives every metric its help text and registers the counters whose
/// label values are known in advance at 0, and `tessera_build_info`.
/// Call once the recorder is installed.
pub fn describe() {
    for info in CATALOG {
        match info.kind {
            Kind::Counter => metrics::describe_counter!(info.name, info.help),
            Kind::Gauge => metrics::describe_gauge!(info.name, info.help),
            Kind::Histogram => metrics::describe_histogram!(info.name, info.help),
        }
    }
    metrics::gauge!("tessera_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for name in [
        "tessera_tokens_issued_total",
        "tessera_tokens_purged_total",
        "tessera_accept_errors_total",
        "tessera_audit_events_total",
        "tessera_audit_queue_full_total",
    ] {
        metrics::counter!(name).absolute(0);
    }
    for outcome in REFRESH_OUTCOMES {
        metrics::counter!("tessera_refresh_total", "outcome" => outcome).absolute(0);
    }
    for reason in ["header_timeout", "idle_timeout", "evicted"] {
        metrics::counter!("tessera_connections_closed_total", "reason" => reason).absolute(0);
    }
    metrics::gauge!("tessera_connections_open").set(0.0);
    native_counters();
    crate::throttle::register_metrics();
}

/// Sets the pool gauges from `store`, if it has a pool (before a scrape).
pub fn record_pool(store: &dyn Store) {
    if let Some(s) = store.pool_status() {
        let in_use = s.size.saturating_sub(s.idle).saturating_sub(s.shared);
        metrics::gauge!("tessera_store_pool_max_connections").set(s.max_size as f64);
        metrics::gauge!("tessera_store_pool_connections", "state" => "idle").set(s.idle as f64);
        metrics::gauge!("tessera_store_pool_connections", "state" => "in_use").set(in_use as f64);
        metrics::gauge!("tessera_store_pool_connections", "state" => "shared").set(s.shared as f64);
        metrics::gauge!("tessera_store_pool_waiting").set(s.waiting as f64);
        metrics::counter!("tessera_store_cache_lookups_total", "result" => "hit")
            .absolute(s.cache_hits);
        metrics::counter!("tessera_store_cache_lookups_total", "result" => "miss")
            .absolute(s.cache_misses);
        metrics::counter!("tessera_store_cache_extended_hits_total")
            .absolute(s.cache_extended_hits);
        metrics::counter!("tessera_store_grace_waits_total").absolute(s.grace_waits);
    }
}

/// The native realm's success and failure counters, registered once (the
/// password check is a hot path).
fn native_counters() -> &'static [Counter; 2] {
    static COUNTERS: OnceLock<[Counter; 2]> = OnceLock::new();
    COUNTERS.get_or_init(|| {
        let realm = tessera_domain::authn::NATIVE_REALM;
        ["success", "failure"].map(|outcome| {
            metrics::counter!(
                "tessera_realm_authentications_total",
                "realm" => realm.name.clone(),
                "type" => realm.kind.clone(),
                "outcome" => outcome
            )
        })
    })
}

impl Metrics {
    /// One authentication by the realm `realm` of type `realm_type`:
    /// `outcome` is `success`, `failure` (credentials refused) or `error`
    /// (the realm could not decide). Realm names come from the
    /// configuration, so the label stays bounded.
    pub fn realm_authentication(&self, realm: &str, realm_type: &str, outcome: &'static str) {
        metrics::counter!(
            "tessera_realm_authentications_total",
            "realm" => realm.to_owned(),
            "type" => realm_type.to_owned(),
            "outcome" => outcome
        )
        .increment(1);
    }

    /// A password check of the native realm.
    pub(crate) fn native_authentication(&self, success: bool) {
        native_counters()[usize::from(!success)].increment(1);
    }
}
