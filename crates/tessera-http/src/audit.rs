//! The audit log, in Elasticsearch's format: one JSON object per line,
//! flat dotted keys with Elasticsearch's names (`type`, `@timestamp`,
//! `node.id`, `event.type`, `event.action`, `user.name`, `request.id`, …).
//!
//! The hooks are few so that handlers stay thin: the authentication
//! extractor reports `authentication_success` / `authentication_failed`
//! (and `anonymous_access_denied`, `tampered_request`), the password check
//! `realm_authentication_failed`, [`crate::auth::require`] `access_granted`
//! / `access_denied`, and a handler that changed the security
//! configuration calls [`Audit::config_change`] once it is stored. The
//! request's id, origin, path and method come from its
//! [`crate::request_context`].
//!
//! Nothing secret is ever written: events are built from names, ids and
//! roles only (never a password, token, key, client secret, SAML content or
//! redirect URI), and the configuration changes are typed
//! ([`ConfigChange`]) so that a request body cannot be copied in whole.
//!
//! Lines go through a bounded queue to one writer thread, which writes
//! them buffered and flushes 200 ms after the oldest unflushed line (so
//! within a second of the event), and at shutdown ([`Audit::close`]). When the
//! queue is full the request waits for room: an audit line is never
//! dropped (the wait is counted in `tessera_audit_queue_full_total`).

use std::io::Write;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tessera_domain::authn::{AuthenticationType, RealmRef};
use tessera_domain::privilege::Action;
use tessera_domain::{Authentication, Millis};

use crate::clock::Clock;
use crate::request_context;

pub use change::ConfigChange;

mod change;
mod format;

/// Every event action the audit log writes (the default of
/// `audit_include`).
pub const EVENT_ACTIONS: &[&str] = &[
    "authentication_success",
    "authentication_failed",
    "realm_authentication_failed",
    "anonymous_access_denied",
    "access_granted",
    "access_denied",
    "run_as_granted",
    "run_as_denied",
    "tampered_request",
    "put_user",
    "delete_user",
    "change_password",
    "change_enable_user",
    "change_disable_user",
    "put_role",
    "delete_role",
    "put_role_mapping",
    "delete_role_mapping",
    "create_apikey",
    "invalidate_apikeys",
    "create_oauth_client",
    "change_oauth_client",
    "change_oauth_client_secret",
    "delete_oauth_client",
    "create_service_token",
    "delete_service_token",
];

/// How many lines may wait for the writer before requests wait for it.
const QUEUE: usize = 65_536;

/// How long a written line may wait in the writer's buffer.
const FLUSH_AFTER: Duration = Duration::from_millis(200);

/// Which event actions are written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    /// `None`: every action in [`EVENT_ACTIONS`].
    pub include: Option<Vec<String>>,
    pub exclude: Vec<String>,
}

impl AuditFilter {
    fn wants(&self, action: &str) -> bool {
        self.include
            .as_ref()
            .is_none_or(|i| i.iter().any(|a| a == action))
            && !self.exclude.iter().any(|a| a == action)
    }
}

/// The audit log: disabled (the default), or a queue to its writer.
#[derive(Clone, Default)]
pub struct Audit(Option<Arc<Sink>>);

struct Sink {
    queue: SyncSender<Message>,
    filter: AuditFilter,
    node_id: String,
    clock: Clock,
}

enum Message {
    Line(String),
    /// Flush, then answer.
    Flush(mpsc::Sender<()>),
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Audit(off)"),
            Some(sink) => f
                .debug_struct("Audit")
                .field("filter", &sink.filter)
                .field("node_id", &sink.node_id)
                .finish(),
        }
    }
}

impl Audit {
    /// An audit log written to `out` by a thread of its own.
    pub fn start(
        out: Box<dyn Write + Send>,
        filter: AuditFilter,
        node_id: String,
        clock: Clock,
    ) -> std::io::Result<Audit> {
        let (queue, lines) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || write_lines(lines, out))?;
        Ok(Audit(Some(Arc::new(Sink {
            queue,
            filter,
            node_id,
            clock,
        }))))
    }

    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Writes what is queued and waits (at most five seconds) until it is
    /// flushed. For shutdown; blocking.
    pub fn close(&self) {
        if let Some(sink) = &self.0 {
            let (ack, done) = mpsc::channel();
            if sink.queue.send(Message::Flush(ack)).is_ok() {
                let _ = done.recv_timeout(Duration::from_secs(5));
            }
        }
    }

    /// The sink, if `action` is to be written.
    fn wants(&self, action: &str) -> Option<&Sink> {
        self.0.as_deref().filter(|s| s.filter.wants(action))
    }

    pub fn authentication_success(&self, who: &Authentication) {
        self.rest("authentication_success", |e| {
            user_fields(e, who);
            e.insert(
                "realm".into(),
                who.authentication_realm.name.as_ref().into(),
            );
        });
    }

    /// Credentials that did not authenticate; `user` is the name a Basic
    /// header claimed, `api_key_id` the id an `ApiKey` header claimed.
    pub fn authentication_failed(&self, user: Option<&str>, api_key_id: Option<&str>) {
        self.rest("authentication_failed", |e| {
            if let Some(u) = user {
                e.insert("user.name".into(), u.into());
            }
            if let Some(id) = api_key_id {
                e.insert("apikey.id".into(), id.into());
            }
        });
    }

    /// A request without credentials to an endpoint that needs them.
    pub fn anonymous_access_denied(&self) {
        self.rest("anonymous_access_denied", |_| {});
    }

    /// An `Authorization` header that cannot have come from a client that
    /// means well (not ASCII, undecodable).
    pub fn tampered_request(&self) {
        self.rest("tampered_request", |_| {});
    }

    /// `realm` refused `user`'s password.
    pub fn realm_authentication_failed(&self, realm: &RealmRef, user: &str) {
        self.rest("realm_authentication_failed", |e| {
            e.insert("user.name".into(), user.into());
            e.insert("realm".into(), realm.name.as_ref().into());
        });
    }

    pub fn access_granted(&self, who: &Authentication, action: Action) {
        self.access("access_granted", who, action);
    }

    pub fn access_denied(&self, who: &Authentication, action: Action) {
        self.access("access_denied", who, action);
    }

    /// `who` may run the request as `target` (the run-as header).
    pub fn run_as_granted(&self, who: &Authentication, target: &str, action: &str) {
        self.run_as("run_as_granted", who, target, true, action);
    }

    /// `who` may not run the request as `target`, or `target` is no user.
    pub fn run_as_denied(&self, who: &Authentication, target: &str, action: &str) {
        self.run_as("run_as_denied", who, target, false, action);
    }

    /// Elasticsearch's run-as events: the caller as `user.*`, the target
    /// as `user.run_as.*` (its realm only when it was found).
    fn run_as(
        &self,
        event: &'static str,
        who: &Authentication,
        target: &str,
        found: bool,
        action: &str,
    ) {
        let Some(sink) = self.wants(event) else {
            return;
        };
        let mut e = sink.header("transport", event);
        e.insert("user.name".into(), who.username.as_str().into());
        e.insert(
            "user.realm".into(),
            who.authentication_realm.name.as_ref().into(),
        );
        e.insert("user.run_as.name".into(), target.into());
        if found {
            e.insert(
                "user.run_as.realm".into(),
                tessera_domain::authn::NATIVE_REALM.name.as_ref().into(),
            );
        }
        e.insert("user.roles".into(), who.roles.clone().into());
        authentication_fields(&mut e, who);
        origin_fields(&mut e, false);
        e.insert("action".into(), action.into());
        sink.send(e);
    }

    /// A token that authenticated but whose OAuth scope does not reach the
    /// administrative API (RFC 6750 `insufficient_scope`): denied before
    /// any action is chosen, so the event names the REST request.
    pub fn access_denied_by_scope(&self, who: &Authentication) {
        self.rest("access_denied", |e| {
            user_fields(e, who);
        });
    }

    /// A change of the security configuration, once it is stored.
    pub fn config_change(&self, change: ConfigChange) {
        let Some(sink) = self.wants(change.action) else {
            return;
        };
        let mut e = sink.header("security_config_change", change.action);
        request_context::with_current(|c| {
            e.insert("request.id".into(), c.id_str().into());
        });
        e.insert(change.verb.into(), json!({ change.kind: change.body }));
        sink.send(e);
    }

    fn access(&self, event: &'static str, who: &Authentication, action: Action) {
        let Some(sink) = self.wants(event) else {
            return;
        };
        let mut e = sink.header("transport", event);
        user_fields(&mut e, who);
        origin_fields(&mut e, false);
        e.insert("action".into(), action.name().into());
        e.insert("request.name".into(), format::request_name(action).into());
        sink.send(e);
    }

    /// An event about the REST request itself.
    fn rest(&self, event: &'static str, fill: impl FnOnce(&mut Map<String, Value>)) {
        let Some(sink) = self.wants(event) else {
            return;
        };
        let mut e = sink.header("rest", event);
        fill(&mut e);
        origin_fields(&mut e, true);
        sink.send(e);
    }
}

impl Sink {
    fn header(&self, event_type: &str, action: &str) -> Map<String, Value> {
        let mut e = Map::new();
        e.insert("type".into(), "audit".into());
        e.insert(
            "@timestamp".into(),
            format::timestamp(self.clock.now()).into(),
        );
        e.insert("node.id".into(), self.node_id.as_str().into());
        e.insert("event.type".into(), event_type.into());
        e.insert("event.action".into(), action.into());
        e
    }

    fn send(&self, event: Map<String, Value>) {
        let line = Value::Object(event).to_string();
        match self.queue.try_send(Message::Line(line)) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(message)) => {
                metrics::counter!("tessera_audit_queue_full_total").increment(1);
                // Never dropped: wait for room.
                let _ = self.queue.send(message);
            }
        }
        metrics::counter!("tessera_audit_events_total").increment(1);
    }
}

/// The user of an event; when the request runs as another user, the
/// target with its own realm, and the caller as `user.run_by.*`.
fn user_fields(e: &mut Map<String, Value>, who: &Authentication) {
    e.insert("user.name".into(), who.username.as_str().into());
    let run_by = request_context::with_current(|c| c.run_by().cloned()).flatten();
    let realm = match &run_by {
        Some(_) => &who.lookup_realm,
        None => &who.authentication_realm,
    };
    e.insert("user.realm".into(), realm.name.as_ref().into());
    if let Some(run_by) = run_by {
        e.insert("user.run_by.name".into(), run_by.username.into());
        e.insert(
            "user.run_by.realm".into(),
            run_by.realm.name.as_ref().into(),
        );
    }
    e.insert("user.roles".into(), who.roles.clone().into());
    authentication_fields(e, who);
}

/// `authentication.type` and the API key of an event's user.
fn authentication_fields(e: &mut Map<String, Value>, who: &Authentication) {
    let kind = match who.authentication_type {
        AuthenticationType::Realm => "REALM",
        AuthenticationType::Token => "TOKEN",
        AuthenticationType::ApiKey => "API_KEY",
    };
    e.insert("authentication.type".into(), kind.into());
    if let Some(key) = &who.api_key {
        e.insert("apikey.id".into(), key.id.as_str().into());
        if let Some(name) = &key.name {
            e.insert("apikey.name".into(), name.as_str().into());
        }
    }
}

/// `origin.*`, `request.id`, and for a REST event the path and method.
fn origin_fields(e: &mut Map<String, Value>, rest: bool) {
    request_context::with_current(|c| {
        e.insert("origin.type".into(), "rest".into());
        if let Some(origin) = c.origin {
            e.insert("origin.address".into(), origin.to_string().into());
        }
        if rest {
            e.insert("url.path".into(), c.path.as_str().into());
            e.insert("request.method".into(), c.method.as_str().into());
        }
        e.insert("request.id".into(), c.id_str().into());
    });
}

/// The writer thread: writes lines as they come into its buffer, and
/// flushes the buffer [`FLUSH_AFTER`] after the oldest line it holds was
/// written (so a line is on disk within a second of its event, with one
/// write for many lines under load), on [`Audit::close`], and once every
/// sender is gone.
fn write_lines(lines: Receiver<Message>, out: Box<dyn Write + Send>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut oldest: Option<Instant> = None;
    loop {
        let wait = oldest.map_or(Duration::from_secs(1), |t| {
            FLUSH_AFTER.saturating_sub(t.elapsed())
        });
        match lines.recv_timeout(wait) {
            Ok(Message::Line(line)) => {
                if let Err(e) = writeln!(out, "{line}") {
                    tracing::error!(error = %e, "cannot write the audit log");
                }
                oldest.get_or_insert_with(Instant::now);
            }
            Ok(Message::Flush(ack)) => {
                flush(&mut out);
                oldest = None;
                let _ = ack.send(());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if oldest.is_some_and(|t| t.elapsed() >= FLUSH_AFTER) {
            flush(&mut out);
            oldest = None;
        }
    }
    flush(&mut out);
}

fn flush(out: &mut impl Write) {
    if let Err(e) = out.flush() {
        tracing::error!(error = %e, "cannot write the audit log");
    }
}

/// The milliseconds of `at` as Elasticsearch's audit timestamp.
pub fn timestamp(at: Millis) -> String {
    format::timestamp(at)
}
