//! Logging set-up: JSON lines (default when standard output is not a terminal) or a readable
//! format (default on a terminal and for `serve --dev`).
//!
//! The JSON lines are written by this file's own formatter rather than
//! `tracing-subscriber`'s: that one writes every list as the string of its Debug form, and a
//! log query needs a list as a JSON array (see `bars_receiver::log_value`). The shape is
//! the same: `timestamp`, `level`, the event's fields (`message` among them), `target`, and
//! `span` with the current span's fields and `name`.

use std::fmt;
use std::io::IsTerminal;

use bars_receiver::log_value::field_json;
use bars_receiver::{config::LogFormat, config::LogSettings};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Installs the global subscriber. `RUST_LOG`, when set, overrides the configured level.
/// `readable_by_default`: `auto` means the readable format even when standard output is not
/// a terminal (`serve --dev`, whose output a developer reads, often through a pipe).
pub(crate) fn init(settings: &LogSettings, readable_by_default: bool) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match settings.format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !readable_by_default && !std::io::stdout().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let result = if json {
        builder.fmt_fields(JsonFields).event_format(JsonLines).try_init()
    } else {
        // Colours only for a terminal: through a pipe or into a file they are noise.
        builder.with_ansi(std::io::stdout().is_terminal()).try_init()
    };
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
}

/// For the sender tools, whose standard output is their result: human-readable warnings on
/// standard error (`RUST_LOG` shows more, e.g. `RUST_LOG=info` for each attempt).
pub(crate) fn init_stderr() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// One JSON object per event.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Map::new();
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        line.insert("timestamp".into(), Value::String(timestamp));
        line.insert(
            "level".into(),
            Value::String(event.metadata().level().as_str().into()),
        );
        let mut fields = JsonVisitor::default();
        event.record(&mut fields);
        let target = fields
            .log_target
            .take()
            .unwrap_or_else(|| event.metadata().target().to_owned());
        line.extend(fields.map);
        line.insert("target".into(), Value::String(target));
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            let mut object = span
                .extensions()
                .get::<FormattedFields<N>>()
                // The fields were written by `JsonFields`: a JSON object, or nothing yet.
                .and_then(|f| serde_json::from_str::<Map<String, Value>>(&f.fields).ok())
                .unwrap_or_default();
            object.insert("name".into(), Value::String(span.metadata().name().into()));
            line.insert("span".into(), Value::Object(object));
        }
        let text = serde_json::to_string(&Value::Object(line)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Span fields as a JSON object (kept as its text in the span's extensions, parsed back for
/// each event).
struct JsonFields;

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = JsonVisitor::default();
        fields.record(&mut visitor);
        let text = serde_json::to_string(&visitor.map).map_err(|_| fmt::Error)?;
        writer.write_str(&text)
    }

    fn add_fields(
        &self,
        current: &mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut visitor = JsonVisitor {
            map: serde_json::from_str(&current.fields).unwrap_or_default(),
            log_target: None,
        };
        fields.record(&mut visitor);
        current.fields = serde_json::to_string(&visitor.map).map_err(|_| fmt::Error)?;
        Ok(())
    }
}

/// Field values as JSON: numbers and booleans as such, lists as arrays, the rest as text.
#[derive(Default)]
struct JsonVisitor {
    map: Map<String, Value>,
    /// The original target of a record from the `log` crate (rustls logs through it).
    log_target: Option<String>,
}

impl JsonVisitor {
    fn insert(&mut self, field: &Field, value: Value) {
        match field.name() {
            "log.target" => self.log_target = value.as_str().map(str::to_owned),
            // The `log` crate's location fields are noise in an operator's log.
            name if name.starts_with("log.") => {}
            name => {
                self.map.insert(name.to_owned(), value);
            }
        }
    }
}

impl Visit for JsonVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, serde_json::json!(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, Value::String(value.to_owned()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.insert(field, Value::String(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, field_json(value));
    }
}
