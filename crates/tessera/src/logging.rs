//! The process's log lines, on standard error: `text` (tracing's usual
//! format) or `json` (one object per line: `timestamp`, `level`, `target`,
//! `message`, `fields`, `request_id`, `spans`). Either way a line written
//! while a request is handled carries the request's id, taken from its
//! context ([`tessera_http::request_context`]) rather than from a span
//! per request, which would cost every request even when nothing is
//! logged.

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

use crate::config::observability::LogFormat;

/// Installs the global subscriber: `TESSERA_LOG` filters (default `info`).
pub fn init(format: LogFormat) {
    let filter = filter(std::env::var("TESSERA_LOG").ok().as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => {
            // Colours only on a terminal: logs that go to a file or a
            // journal stay plain text.
            let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
            builder
                .with_ansi(colour)
                .map_event_format(WithRequestId)
                .init();
        }
        LogFormat::Json => builder.with_ansi(false).event_format(JsonLines).init(),
    }
}

/// Crates whose debug lines carry what Tessera never logs: the PostgreSQL
/// client logs every statement with its parameters (password hashes,
/// token keys, token metadata). They stay at `info`, whatever the filter.
const QUIET: &[&str] = &["tokio_postgres=info", "tokio_postgres::query=info"];

/// The filter of `spec` (`TESSERA_LOG`'s syntax; `info` when unset or
/// invalid), with [`QUIET`]'s caps added last so that they win.
fn filter(spec: Option<&str>) -> EnvFilter {
    let filter = spec
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    QUIET.iter().fold(filter, |f, cap| {
        f.add_directive(cap.parse().expect("a valid directive"))
    })
}

/// The current request's id, if a request is being handled.
fn request_id() -> Option<String> {
    tessera_http::request_context::with_current(|c| c.id_str().to_owned())
}

/// A text format that ends each line of a request with `request_id=…`.
pub struct WithRequestId<F>(pub F);

impl<S, N, F> FormatEvent<S, N> for WithRequestId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(id) = request_id() else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let line = line.strip_suffix('\n').unwrap_or(&line);
        writeln!(writer, "{line} request_id={id}")
    }
}

/// One JSON object per line.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields(Map::new());
        event.record(&mut fields);
        let mut fields = fields.0;
        let meta = event.metadata();
        let mut line = Map::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        line.insert(
            "timestamp".into(),
            tessera_http::audit::timestamp(now).into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        line.insert(
            "message".into(),
            fields.remove("message").unwrap_or_default(),
        );
        let id = fields
            .remove("request_id")
            .or_else(|| request_id().map(Value::from));
        if !fields.is_empty() {
            line.insert("fields".into(), Value::Object(fields));
        }
        if let Some(id) = id {
            line.insert("request_id".into(), id);
        }
        if let Some(scope) = ctx.event_scope() {
            let spans: Vec<Value> = scope
                .from_root()
                .map(|span| {
                    let ext = span.extensions();
                    let fields = ext
                        .get::<FormattedFields<N>>()
                        .map_or("", |f| f.fields.as_str());
                    serde_json::json!({ "name": span.name(), "fields": fields })
                })
                .collect();
            line.insert("spans".into(), spans.into());
        }
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        writer.write_str(&text)
    }
}

/// An event's fields as JSON values.
struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::{Context, SubscriberExt};
    use tracing_subscriber::Layer;

    /// Records the target of every event that passes the filter.
    struct Seen(Arc<Mutex<Vec<String>>>);

    impl<S: tracing::Subscriber> Layer<S> for Seen {
        fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
            let target = event.metadata().target().to_owned();
            self.0.lock().unwrap().push(target);
        }
    }

    /// Even at `debug` or `trace`, and even when the filter names it, the
    /// PostgreSQL client's statement lines (with their parameters) are not
    /// logged; everything else follows the filter.
    #[test]
    fn the_postgres_clients_statements_are_never_logged() {
        for spec in [
            "debug",
            "trace",
            "debug,tokio_postgres=trace",
            "debug,tokio_postgres::query=debug",
        ] {
            let seen = Arc::new(Mutex::new(Vec::new()));
            let subscriber = tracing_subscriber::registry()
                .with(super::filter(Some(spec)))
                .with(Seen(Arc::clone(&seen)));
            tracing::subscriber::with_default(subscriber, || {
                tracing::debug!(target: "tokio_postgres::query", "executing statement s1 with parameters: [..]");
                tracing::debug!(target: "tokio_postgres::prepare", "preparing query s1");
                tracing::info!(target: "tokio_postgres::connection", "notice");
                tracing::debug!(target: "tessera::server", "kept");
            });
            let seen = seen.lock().unwrap().clone();
            assert_eq!(
                seen,
                ["tokio_postgres::connection", "tessera::server"],
                "{spec}"
            );
        }
    }
}
