//! `bars-receiver inbox list|show|export|retry|purge`: read the embedded inbox for the
//! provider's system and for support, and manage relay deliveries. `list`, `show` and
//! `export` are read-only; `retry` and `purge` write through SQLite's locking, so all are
//! safe to run while the receiver serves.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use bars_receiver::private_files::create_new_private_file;
use bars_receiver::{
    Settings, Store, store::DeliveryState, store::DeliveryStatus, store::MessageRecord, store::ReadOnlyStore,
};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{EXIT_CONFIG, EXIT_RUNTIME};

/// Which inbox to read.
#[derive(Debug, Args)]
pub(crate) struct Source {
    /// The inbox database file.
    #[arg(long, global = true, conflicts_with = "config")]
    db: Option<PathBuf>,
    /// Read `inbox.path` from this configuration file.
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum InboxCommand {
    /// The newest messages, one line each.
    List {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One message in full, by receiver reference or X-Request-Id.
    Show {
        /// Receiver reference (the id `list` shows) or X-Request-Id.
        id: String,
    },
    /// Every message, oldest first, as JSON lines.
    Export {
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Re-queues a dead letter for delivery (relay), with a fresh count of attempts.
    Retry {
        /// Receiver reference or X-Request-Id of the dead letter.
        id: String,
    },
    /// Deletes relayed messages delivered before a date (pending and dead ones are kept).
    Purge {
        /// RFC 3339 time (2026-03-01T00:00:00Z) or date (2026-03-01, midnight UTC).
        #[arg(long, value_parser = parse_cutoff)]
        delivered_before: time::OffsetDateTime,
    },
}

fn parse_cutoff(text: &str) -> std::result::Result<time::OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(at) = time::OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, format)
        .map(|d| d.midnight().assume_utc())
        .map_err(|_| format!("'{text}' is not a date (2026-03-01) or an RFC 3339 time"))
}

pub(crate) fn run(source: &Source, command: InboxCommand) -> ExitCode {
    let path = match (&source.db, &source.config) {
        // clap checks `conflicts_with` only among the options given at one level: `inbox --db
        // X list --config Y` reaches here with both.
        (Some(_), Some(_)) => {
            eprintln!("error: the argument '--db <DB>' cannot be used with '--config <CONFIG>'");
            return ExitCode::from(EXIT_CONFIG);
        }
        (Some(db), None) => db.clone(),
        (None, Some(config)) => match Settings::load(config) {
            Ok(settings) => settings.inbox.path,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        (None, None) => PathBuf::from("data/inbox.db"),
    };
    match command {
        InboxCommand::Retry { id } => return write(&path, |store| retry(store, &id)),
        InboxCommand::Purge { delivered_before } => {
            return write(&path, move |store| purge(store, delivered_before));
        }
        _ => {}
    }
    let store = match Store::open_read_only(&path) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let result = match command {
        InboxCommand::List { limit, json } => list(&store, limit, json),
        InboxCommand::Show { id } => show(&store, &id),
        InboxCommand::Export { out } => export(&store, out),
        InboxCommand::Retry { .. } | InboxCommand::Purge { .. } => Ok(ExitCode::from(EXIT_RUNTIME)),
    };
    match result {
        Ok(code) => code,
        // The reader of standard output stopped (`inbox list | head`): it has what it wanted.
        Err(e) if super::is_broken_pipe(e.as_ref()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Runs a writing command on an existing database.
fn write<F, Fut>(path: &std::path::Path, command: F) -> ExitCode
where
    F: FnOnce(Store) -> Fut,
    Fut: std::future::Future<Output = Result<ExitCode>>,
{
    if !path.exists() {
        eprintln!("error: inbox database {} does not exist", path.display());
        return ExitCode::from(EXIT_RUNTIME);
    }
    let Some(runtime) = super::runtime(false) else {
        return ExitCode::from(EXIT_RUNTIME);
    };
    let result = runtime.block_on(async {
        let store = Store::open(path)?;
        command(store).await
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

async fn retry(store: Store, id: &str) -> Result<ExitCode> {
    match store.delivery_status(id).await? {
        None => {
            eprintln!("error: no message with reference or X-Request-Id {id}");
            return Ok(ExitCode::from(EXIT_RUNTIME));
        }
        Some(None) => {
            eprintln!("error: message {id} is not relayed (it was accepted by the inbox handler)");
            return Ok(ExitCode::from(EXIT_RUNTIME));
        }
        Some(Some(status)) if status.state != DeliveryState::Dead => {
            eprintln!(
                "error: message {id} is {}, not a dead letter; only dead letters are retried",
                status.state.as_str()
            );
            return Ok(ExitCode::from(EXIT_RUNTIME));
        }
        Some(Some(_)) => {}
    }
    if store.retry_dead_letter(id).await? {
        outln!("re-queued {id} for delivery");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: message {id} changed meanwhile; look again with inbox list");
        Ok(ExitCode::from(EXIT_RUNTIME))
    }
}

async fn purge(store: Store, before: time::OffsetDateTime) -> Result<ExitCode> {
    let purged = store.purge_delivered(before).await?;
    outln!("purged {purged} delivered message(s)");
    Ok(ExitCode::SUCCESS)
}

/// `state/attempts` for the list, `-` for messages that are not relayed.
fn delivery_cell(delivery: Option<&DeliveryStatus>) -> String {
    match delivery {
        None => "-".into(),
        Some(d) if d.held => format!("{} (held)/{}", d.state.as_str(), d.attempts),
        Some(d) => format!("{}/{}", d.state.as_str(), d.attempts),
    }
}

fn list(store: &ReadOnlyStore, limit: u32, as_json: bool) -> Result<ExitCode> {
    let rows = store.list(limit)?;
    let mut out = std::io::stdout().lock();
    if as_json {
        for row in &rows {
            writeln!(out, "{}", serde_json::to_string(row)?)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<36}  {:<27}  {:<36}  {:<24}  {:<6}  {:<18}  TARGET",
        "ID", "RECEIVED", "X-REQUEST-ID", "EVENT", "REASON", "DELIVERY/ATTEMPTS"
    )?;
    for row in &rows {
        writeln!(
            out,
            "{:<36}  {:<27}  {:<36}  {:<24}  {:<6}  {:<18}  {}",
            row.id,
            row.received_at,
            row.request_id,
            row.event,
            row.reason,
            delivery_cell(row.delivery.as_ref()),
            row.target.as_deref().unwrap_or("-")
        )?;
        if let Some(error) = row
            .delivery
            .as_ref()
            .filter(|d| d.state != DeliveryState::Delivered)
            .and_then(|d| d.last_error.as_deref())
        {
            writeln!(out, "{:<36}  last error: {error}", "")?;
        }
    }
    writeln!(out, "{} of {} message(s)", rows.len(), store.count()?)?;
    Ok(ExitCode::SUCCESS)
}

fn show(store: &ReadOnlyStore, id: &str) -> Result<ExitCode> {
    match store.get(id)? {
        Some(record) => {
            let mut json = as_json(&record);
            if let Some(Some(delivery)) = store.delivery_status(id)? {
                json["delivery"] = serde_json::to_value(delivery)?;
            }
            outln!("{}", serde_json::to_string_pretty(&json)?);
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("error: no message with reference or X-Request-Id {id}");
            Ok(ExitCode::from(EXIT_RUNTIME))
        }
    }
}

fn export(store: &ReadOnlyStore, out: Option<PathBuf>) -> Result<ExitCode> {
    let mut writer: Box<dyn Write> = match &out {
        Some(path) => Box::new(std::io::BufWriter::new(create_new_private_file(path)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let count = store.for_each(|record| {
        serde_json::to_writer(&mut writer, &as_json(&record))?;
        writer.write_all(b"\n")
    })?;
    writer.flush()?;
    if let Some(path) = out {
        eprintln!("exported {count} message(s) to {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The record with its body as JSON rather than text.
fn as_json(record: &MessageRecord) -> Value {
    let m = &record.message;
    json!({
        "seq": record.seq,
        "id": m.id,
        "received_at": m.received_at,
        "request_id": m.request_id,
        "correlation_id": m.correlation_id,
        "bundle_id": m.bundle_id,
        "event": m.event,
        "reason": m.reason,
        "target": m.target,
        "headers": m.headers,
        "peer": m.peer,
        "bundle": serde_json::from_str::<Value>(&m.body).unwrap_or(Value::String(m.body.to_string())),
    })
}
