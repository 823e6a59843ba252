//! Subcommands and their exit codes: 0 success, 64 bad configuration or usage, 1 runtime
//! failure.

mod check;
mod dev_pki;
mod example;
mod inbox;
mod logging;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for a configuration or usage error (`EX_USAGE`).
pub(crate) const EXIT_CONFIG: u8 = 64;
/// Exit code for a runtime failure.
pub(crate) const EXIT_RUNTIME: u8 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "bars-receiver",
    version,
    about = "Mutual-TLS receiver endpoint for the NHS Booking and Referral Standard (BaRS)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the receiver.
    Serve {
        /// Configuration file (TOML). BARS_<SECTION>__<KEY> variables override it.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Development mode: create the development PKI in certs/dev if missing and, without
        /// --config, use the embedded development configuration (loopback only).
        #[arg(long)]
        dev: bool,
    },
    /// Validate a configuration and its certificates without binding anything.
    Check {
        /// Configuration file (TOML). Without it, the embedded development configuration.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Generate a development PKI (never for INT or PROD).
    DevPki {
        /// Output directory.
        #[arg(long, default_value = "certs/dev")]
        out: PathBuf,
        /// Replace an existing development PKI.
        #[arg(long)]
        force: bool,
        /// ODS code in the server certificate name.
        #[arg(long, default_value = "X26")]
        ods: String,
        /// Supplier label in the server certificate name.
        #[arg(long, default_value = "examplesupplier")]
        supplier: String,
    },
    /// Read the embedded inbox; retry or purge relay deliveries.
    Inbox {
        #[command(flatten)]
        source: inbox::Source,
        #[command(subcommand)]
        command: inbox::InboxCommand,
    },
}

/// Parses arguments and runs the subcommand.
pub(crate) fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_CONFIG } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Serve { config, dev } => serve::run(config, dev),
        Command::Check { config } => check::run(config),
        Command::DevPki {
            out,
            force,
            ods,
            supplier,
        } => dev_pki::run(&out, force, ods, supplier),
        Command::Inbox { source, command } => inbox::run(&source, command),
    }
}
