//! `bars-receiver inbox list|show|export|retry|purge|migrate`: read the inbox (the SQLite
//! file or the PostgreSQL database of the configuration) for the provider's system and for
//! support, manage relay deliveries, and copy an SQLite inbox to PostgreSQL. `list`, `show`
//! and `export` only read; `retry` and `purge` write through the database's own locking, so
//! all are safe to run while the receiver serves.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use bars_receiver::private_files::create_new_private_file;
use bars_receiver::store::{
    DeliveryState, DeliveryStatus, MessageRecord, PostgresSettings, PostgresTls, PostgresUrl, StoreSettings,
};
use bars_receiver::{Settings, Store};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{EXIT_CONFIG, EXIT_RUNTIME};

/// Which inbox to read.
#[derive(Debug, Args)]
pub(crate) struct Source {
    /// The inbox database file (SQLite).
    #[arg(long, global = true, conflicts_with = "config")]
    db: Option<PathBuf>,
    /// Use the store of this configuration file (`[store]`, or `inbox.path` for SQLite).
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
    /// Copies an SQLite inbox (messages, delivery state, de-duplication records) to
    /// PostgreSQL, creating its schema; what is there already is left as it is, so running
    /// it again changes nothing. Stop the receiver first.
    Migrate {
        /// The PostgreSQL database: postgres://user:password@host:5432/database.
        #[arg(long)]
        to: String,
        /// CA of the database server's certificate (TLS with the name verified).
        #[arg(long)]
        ca_file: Vec<PathBuf>,
        /// Plaintext to a database on this machine (loopback or socket) only.
        #[arg(long)]
        insecure_plaintext: bool,
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
    let settings = match (&source.db, &source.config) {
        // clap checks `conflicts_with` only among the options given at one level: `inbox --db
        // X list --config Y` reaches here with both.
        (Some(_), Some(_)) => {
            eprintln!("error: the argument '--db <DB>' cannot be used with '--config <CONFIG>'");
            return ExitCode::from(EXIT_CONFIG);
        }
        (Some(db), None) => StoreSettings::Sqlite { path: db.clone() },
        (None, Some(config)) => match Settings::load(config) {
            Ok(settings) => settings.store,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        (None, None) => StoreSettings::Sqlite {
            path: PathBuf::from("data/inbox.db"),
        },
    };
    let Some(runtime) = super::runtime(false) else {
        return ExitCode::from(EXIT_RUNTIME);
    };
    let result = runtime.block_on(async {
        let read_only = matches!(
            command,
            InboxCommand::List { .. } | InboxCommand::Show { .. } | InboxCommand::Export { .. } | InboxCommand::Migrate { .. }
        );
        if let (InboxCommand::Migrate { .. }, StoreSettings::Postgres(_)) = (&command, &settings) {
            eprintln!("error: inbox migrate copies an SQLite inbox: give it with --db, or a configuration whose store is sqlite");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
        let store = Store::open_existing(&settings, read_only).await?;
        match command {
            InboxCommand::List { limit, json } => list(&store, limit, json).await,
            InboxCommand::Show { id } => show(&store, &id).await,
            InboxCommand::Export { out } => export(&store, out).await,
            InboxCommand::Retry { id } => retry(store, &id).await,
            InboxCommand::Purge { delivered_before } => purge(store, delivered_before).await,
            InboxCommand::Migrate {
                to,
                ca_file,
                insecure_plaintext,
            } => migrate(&store, to, ca_file, insecure_plaintext).await,
        }
    });
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

/// Copies `from` (SQLite) into the PostgreSQL database at `to`, migrating its schema first.
async fn migrate(from: &Store, to: String, ca: Vec<PathBuf>, insecure_plaintext: bool) -> Result<ExitCode> {
    let to: PostgresUrl = match to.parse() {
        Ok(url) => url,
        Err(e) => {
            // Never echo the URL: it may hold the password.
            eprintln!("error: --to {e}");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    let tls = match (insecure_plaintext, ca.is_empty()) {
        (true, false) => {
            eprintln!("error: --insecure-plaintext and --ca-file exclude each other");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
        (true, true) if !to.is_local() => {
            eprintln!("error: --insecure-plaintext is only for a database on this machine; give --ca-file");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
        (true, true) => PostgresTls::InsecureDisabled,
        (false, true) => {
            eprintln!(
                "error: give --ca-file (the CA of the database server's certificate), or --insecure-plaintext for a local database"
            );
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
        (false, false) => PostgresTls::VerifyFull {
            ca,
            use_system_roots: false,
        },
    };
    let target = Store::connect(&StoreSettings::Postgres(PostgresSettings {
        url: to,
        tls,
        pool_size: 4,
        connect_timeout: std::time::Duration::from_secs(10),
        statement_timeout: std::time::Duration::from_secs(60),
        claim_lease: std::time::Duration::from_secs(30),
    }))
    .await?;
    let report = from.copy_to(&target).await?;
    outln!(
        "copied {} message(s) and {} de-duplication record(s) from {} to {}; {} message(s) and {} record(s) were there already",
        report.messages_copied,
        report.outcomes_copied,
        from.describe(),
        target.describe(),
        report.messages_present,
        report.outcomes_present
    );
    Ok(ExitCode::SUCCESS)
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

async fn list(store: &Store, limit: u32, as_json: bool) -> Result<ExitCode> {
    let rows = store.list(limit).await?;
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
    let total = store.count().await?;
    writeln!(out, "{} of {total} message(s)", rows.len())?;
    Ok(ExitCode::SUCCESS)
}

async fn show(store: &Store, id: &str) -> Result<ExitCode> {
    match store.get(id).await? {
        Some(record) => {
            let mut json = as_json(&record);
            if let Some(Some(delivery)) = store.delivery_status(id).await? {
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

async fn export(store: &Store, out: Option<PathBuf>) -> Result<ExitCode> {
    let mut writer: Box<dyn Write> = match &out {
        Some(path) => Box::new(std::io::BufWriter::new(create_new_private_file(path)?)),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let count = store
        .for_each(|record| {
            serde_json::to_writer(&mut writer, &as_json(&record))?;
            writer.write_all(b"\n")
        })
        .await?;
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
