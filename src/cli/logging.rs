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

/// One JSON object per event, written straight into one buffer: the line is built once per
/// event (the access log writes one per request), and the span's fields are spliced in as
/// the text `JsonFields` keeps for them, not parsed back.
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
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut line = Vec::with_capacity(384);
        line.extend_from_slice(b"{\"timestamp\":");
        push_json(&mut line, timestamp.as_str())?;
        line.extend_from_slice(b",\"level\":");
        push_json(&mut line, event.metadata().level().as_str())?;
        let mut fields = JsonVisitor::new(line);
        event.record(&mut fields);
        let JsonVisitor {
            out: mut line,
            log_target,
            failed,
            ..
        } = fields;
        if failed {
            return Err(fmt::Error);
        }
        line.extend_from_slice(b",\"target\":");
        push_json(
            &mut line,
            log_target.as_deref().unwrap_or(event.metadata().target()),
        )?;
        let span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current());
        if let Some(span) = span {
            line.extend_from_slice(b",\"span\":{");
            if let Some(fields) = span.extensions().get::<FormattedFields<N>>() {
                // Written by `JsonFields`: the object's members, without its braces.
                if !fields.fields.is_empty() {
                    line.extend_from_slice(fields.fields.as_bytes());
                    line.push(b',');
                }
            }
            line.extend_from_slice(b"\"name\":");
            push_json(&mut line, span.metadata().name())?;
            line.push(b'}');
        }
        line.extend_from_slice(b"}\n");
        // Only JSON text went in, which is UTF-8.
        writer.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)
    }
}

/// Appends `value` as JSON.
fn push_json(out: &mut Vec<u8>, value: impl serde::Serialize) -> fmt::Result {
    serde_json::to_writer(out, &value).map_err(|_| fmt::Error)
}

/// Span fields as the members of a JSON object, without its braces (spliced into each
/// event's `span` as they are).
struct JsonFields;

impl<'w> FormatFields<'w> for JsonFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = JsonVisitor::new(Vec::new());
        fields.record(&mut visitor);
        writer.write_str(visitor.members()?)
    }

    fn add_fields(
        &self,
        current: &mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        // A span's field recorded after it opened (the connection's client, once its
        // certificate is verified). New names are appended; a name recorded again is merged
        // through a map, so that it keeps its last value.
        let mut recorded = JsonVisitor::new(Vec::new());
        fields.record(&mut recorded);
        let members = recorded.members()?;
        let present = |name: &&str| {
            serde_json::to_string(name).is_ok_and(|key| current.fields.contains(&format!("{key}:")))
        };
        if !recorded.names.iter().any(present) {
            if !current.fields.is_empty() && !members.is_empty() {
                current.fields.push(',');
            }
            current.fields.push_str(members);
            return Ok(());
        }
        let object = |members: &str| {
            serde_json::from_str::<Map<String, Value>>(&format!("{{{members}}}")).map_err(|_| fmt::Error)
        };
        let mut merged = object(&current.fields)?;
        merged.extend(object(members)?);
        let text = serde_json::to_string(&merged).map_err(|_| fmt::Error)?;
        current.fields = text[1..text.len() - 1].to_owned();
        Ok(())
    }
}

/// Field values as JSON members (`,"name":value`): numbers and booleans as such, lists as
/// arrays, the rest as text.
struct JsonVisitor {
    out: Vec<u8>,
    /// The original target of a record from the `log` crate (rustls logs through it).
    log_target: Option<String>,
    /// A value that could not be written (never expected of JSON text in memory).
    failed: bool,
    /// The names written.
    names: Vec<&'static str>,
}

impl JsonVisitor {
    fn new(out: Vec<u8>) -> Self {
        Self {
            out,
            log_target: None,
            failed: false,
            names: Vec::new(),
        }
    }

    /// What was recorded, as object members without the leading comma.
    fn members(&self) -> Result<&str, fmt::Error> {
        if self.failed {
            return Err(fmt::Error);
        }
        let text = std::str::from_utf8(&self.out).map_err(|_| fmt::Error)?;
        Ok(text.strip_prefix(',').unwrap_or(text))
    }

    fn insert(&mut self, field: &Field, value: impl serde::Serialize) {
        match field.name() {
            "log.target" => {
                self.log_target = serde_json::to_value(&value)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned));
            }
            // The `log` crate's location fields are noise in an operator's log.
            name if name.starts_with("log.") => {}
            name => {
                self.names.push(name);
                self.out.push(b',');
                let written = push_json(&mut self.out, name).and_then(|()| {
                    self.out.push(b':');
                    push_json(&mut self.out, value)
                });
                self.failed |= written.is_err();
            }
        }
    }
}

impl Visit for JsonVisitor {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, value);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, value);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.insert(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.insert(field, field_json(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Standard output stand-in: collects what the formatter writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn lines(run: impl FnOnce()) -> Vec<Value> {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::new("trace"))
            .with_writer(move || writer.clone())
            .fmt_fields(JsonFields)
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    #[test]
    fn an_event_is_one_json_object_with_its_span_and_its_fields_typed() {
        let got = lines(|| {
            let span = tracing::info_span!(
                "conn",
                peer = %"127.0.0.2:5000",
                client = tracing::field::Empty,
                via = tracing::field::Empty
            );
            let _entered = span.enter();
            span.record("client", "proxy \"one\"");
            span.record("client", "proxy two");
            span.record("via", "\"peer\": not a key");
            let list = bars_receiver::log_value::LogList::new(["CN=a", "CN=b"]);
            tracing::info!(status = 200u16, duration_ms = 1.5, ok = true, delta = -3i64,
                path = "/a\u{1}\"b", names = %list, "request");
            tracing::warn!("outside the span's fields");
        });
        assert_eq!(got.len(), 2, "{got:?}");
        let first = &got[0];
        let keys: Vec<&str> = first.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "timestamp",
                "level",
                "message",
                "status",
                "duration_ms",
                "ok",
                "delta",
                "path",
                "names",
                "target",
                "span"
            ]
        );
        assert_eq!(first["level"], "INFO");
        assert_eq!(first["status"], 200);
        assert_eq!(first["duration_ms"], 1.5);
        assert_eq!(first["ok"], true);
        assert_eq!(first["delta"], -3);
        assert_eq!(first["path"], "/a\u{1}\"b");
        assert_eq!(first["names"], serde_json::json!(["CN=a", "CN=b"]));
        assert_eq!(first["message"], "request");
        assert_eq!(first["target"], module_path!());
        assert_eq!(
            first["span"],
            serde_json::json!({"peer": "127.0.0.2:5000", "client": "proxy two", "via": "\"peer\": not a key", "name": "conn"}),
            "a field recorded twice keeps its last value"
        );
        assert!(
            time::OffsetDateTime::parse(
                first["timestamp"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339
            )
            .is_ok(),
            "{first}"
        );
        assert_eq!(got[1]["level"], "WARN");
        assert_eq!(got[1]["span"]["name"], "conn");
    }

    #[test]
    fn an_event_outside_any_span_has_no_span_and_a_span_without_fields_has_its_name() {
        let got = lines(|| {
            tracing::error!(error = "boom", "alone");
            let span = tracing::info_span!("bare");
            let _entered = span.enter();
            tracing::info!("inside");
        });
        assert!(got[0].get("span").is_none(), "{}", got[0]);
        assert_eq!(got[0]["error"], "boom");
        assert_eq!(got[1]["span"], serde_json::json!({"name": "bare"}));
    }
}
