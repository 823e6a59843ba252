//! `bars-receiver inbox list|show|export`: read the embedded inbox for the provider's system
//! and for support. Read-only: safe to run while the receiver serves.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use bars_receiver::{MessageRecord, ReadOnlyStore, Settings, Store};
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
}

pub(crate) fn run(source: &Source, command: InboxCommand) -> ExitCode {
    let path = match (&source.db, &source.config) {
        (Some(db), _) => db.clone(),
        (None, Some(config)) => match Settings::load(config) {
            Ok(settings) => settings.inbox.path,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        (None, None) => PathBuf::from("data/inbox.db"),
    };
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
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

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
        "{:<36}  {:<25}  {:<36}  {:<24}  {:<6}  TARGET",
        "ID", "RECEIVED", "X-REQUEST-ID", "EVENT", "REASON"
    )?;
    for row in &rows {
        writeln!(
            out,
            "{:<36}  {:<25}  {:<36}  {:<24}  {:<6}  {}",
            row.id,
            row.received_at,
            row.request_id,
            row.event,
            row.reason,
            row.target.as_deref().unwrap_or("-")
        )?;
    }
    writeln!(out, "{} of {} message(s)", rows.len(), store.count()?)?;
    Ok(ExitCode::SUCCESS)
}

fn show(store: &ReadOnlyStore, id: &str) -> Result<ExitCode> {
    match store.get(id)? {
        Some(record) => {
            println!("{}", serde_json::to_string_pretty(&as_json(&record))?);
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
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
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
        "bundle": serde_json::from_str::<Value>(&m.body).unwrap_or(Value::String(m.body.clone())),
    })
}
