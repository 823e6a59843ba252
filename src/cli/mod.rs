//! Subcommands and their exit codes: 0 success, 64 bad configuration or usage, 1 runtime
//! failure.

/// `print!` for a subcommand's result on standard output, through [`write_stdout`]: a reader
/// that stops early (`| head`) ends nothing with a panic.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))
    };
}

/// `println!` through [`write_stdout`] (see [`out!`]).
macro_rules! outln {
    () => {
        $crate::cli::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

mod apim;
mod check;
mod csr;
#[cfg(feature = "dev-tools")]
mod dev_pki;
#[cfg(feature = "dev-tools")]
mod dev_proxy;
#[cfg(feature = "dev-tools")]
mod dev_stack;
#[cfg(feature = "dev-tools")]
mod example;
mod healthcheck;
mod inbox;
mod keygen;
mod logging;
mod send;
mod serve;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use bars_receiver::config::Environment;
use bars_receiver::pki::HostedBy;
use clap::{ArgGroup, Parser, Subcommand, ValueEnum};
use uuid::Uuid;

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
        #[cfg_attr(
            not(feature = "dev-tools"),
            arg(help = "Development mode: not in this build (it needs the dev-tools feature)")
        )]
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
    #[cfg(feature = "dev-tools")]
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
    /// Run a local stand-in for the BaRS API and API-M (development only).
    #[cfg(feature = "dev-tools")]
    DevProxy {
        /// The dev proxy configuration (TOML); see config/dev-proxy.toml.
        #[arg(long, short, default_value = "config/dev-proxy.toml")]
        config: PathBuf,
        /// Listen here instead of listen.address (port 0: any free port).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Run the whole BaRS path locally: a dev proxy and two receivers that talk through it.
    #[cfg(feature = "dev-tools")]
    DevStack(dev_stack::Args),
    /// Probe the admin listener's /readyz (for container health checks); exit 0 when ready.
    Healthcheck {
        /// The URL to probe.
        #[arg(long, conflicts_with = "config")]
        url: Option<String>,
        /// Probe the admin address of this configuration.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Read the embedded inbox; retry or purge relay deliveries.
    Inbox {
        #[command(flatten)]
        source: inbox::Source,
        #[command(subcommand)]
        command: inbox::InboxCommand,
    },
    /// Generate the API-M signing key: RSA 4096 private key (0600), public key and JWKS.
    Keygen {
        /// Key id to register with API-M: <Supplier>-<Environment>-<rotation>, e.g.
        /// MySupplier-INT-1.
        #[arg(long)]
        kid: String,
        /// Output directory.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Generate the server key (RSA 2048) and CSR named by the BaRS convention.
    #[command(group(ArgGroup::new("host").required(true).args(["supplier", "provider"])))]
    Csr {
        /// The NHS environment the certificate is for.
        #[arg(long, value_enum)]
        environment: CsrEnvironment,
        /// The provider's ODS code.
        #[arg(long)]
        ods: String,
        /// Supplier-hosted: BaRS-<ENV>-<ODS>.<supplier>.thirdparty.nhs.uk.
        #[arg(long)]
        supplier: Option<String>,
        /// Provider-hosted: BaRS-<ENV>-<ODS>.<provider>.nhs.uk.
        #[arg(long)]
        provider: Option<String>,
        /// Output directory.
        #[arg(long, default_value = ".")]
        out: PathBuf,
        /// Replace existing files.
        #[arg(long)]
        force: bool,
    },
    /// Print a signed API-M client assertion and its decoded header and claims.
    Jwt {
        /// Configuration file with a [sender] section. Without it, the embedded development
        /// configuration.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Fetch and print an API-M access token.
    Token {
        /// Configuration file with a [sender] section.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Send a message bundle to a service's $process-message through the BaRS API.
    Send {
        /// Configuration file with a [sender] section. Without it, the embedded development
        /// configuration (the BaRS sandbox).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// The service addressed (NHSD-Target-Identifier), system|value.
        #[arg(long)]
        target: String,
        /// Continue this conversation (X-Correlation-Id); a new one when omitted.
        #[arg(long)]
        correlation_id: Option<Uuid>,
        /// Resend a message whose outcome is unknown with its original X-Request-Id (a new one
        /// when omitted).
        #[arg(long)]
        request_id: Option<Uuid>,
        /// use-context header, e.g. a4t2|validation|servicerequest-response|new.
        #[arg(long)]
        use_context: Option<String>,
        /// The message bundle (JSON).
        file: PathBuf,
    },
}

/// `csr --environment`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum CsrEnvironment {
    Int,
    Prod,
}

/// Reports a PKI failure: 64 for what the user fixes (files already there, a bad name), 1
/// for anything else.
pub(crate) fn pki_failure(e: &bars_receiver::pki::PkiError) -> ExitCode {
    use bars_receiver::pki::PkiError;
    eprintln!("error: {e}");
    match e {
        PkiError::Exists { .. } | PkiError::Invalid { .. } => ExitCode::from(EXIT_CONFIG),
        _ => ExitCode::from(EXIT_RUNTIME),
    }
}

/// The tokio runtime for a subcommand: multi-threaded for the servers, one thread for the
/// short-lived tools. Says why on standard error when it cannot start.
pub(crate) fn runtime(multi_thread: bool) -> Option<tokio::runtime::Runtime> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| eprintln!("error: cannot start the runtime: {e}"))
        .ok()
}

/// Set when standard output failed for another reason than its reader leaving.
static STDOUT_FAILED: AtomicBool = AtomicBool::new(false);

/// Writes a subcommand's result to standard output. A closed pipe (`inbox show ID | head`)
/// is no failure: the reader has what it wanted, so the rest of the output is dropped
/// quietly and the subcommand ends with its own exit code. Any other write error (a full
/// disk behind `> file`) is reported once and makes the exit code 1, so a script never
/// takes a truncated result for a whole one.
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        stdout_failed(&e);
    }
}

/// Records a failed write to standard output (see [`write_stdout`]).
pub(crate) fn stdout_failed(e: &std::io::Error) {
    if e.kind() != std::io::ErrorKind::BrokenPipe && !STDOUT_FAILED.swap(true, Ordering::Relaxed) {
        eprintln!("error: cannot write to standard output: {e}");
    }
}

/// Whether `error`, or an error it wraps, is standard output's reader leaving.
pub(crate) fn is_broken_pipe(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(e) = next {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Parses arguments and runs the subcommand.
pub(crate) fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_CONFIG } else { 0 };
            // Help or a usage error: a closed pipe after it changes nothing.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let code = dispatch(cli.command);
    if STDOUT_FAILED.load(Ordering::Relaxed) {
        ExitCode::from(EXIT_RUNTIME)
    } else {
        code
    }
}

fn dispatch(command: Command) -> ExitCode {
    match command {
        Command::Serve { config, dev } => serve::run(config, dev),
        Command::Check { config } => check::run(config),
        #[cfg(feature = "dev-tools")]
        Command::DevPki {
            out,
            force,
            ods,
            supplier,
        } => dev_pki::run(&out, force, ods, supplier),
        #[cfg(feature = "dev-tools")]
        Command::DevProxy { config, listen } => dev_proxy::run(&config, listen),
        #[cfg(feature = "dev-tools")]
        Command::DevStack(args) => dev_stack::run(args),
        Command::Inbox { source, command } => inbox::run(&source, command),
        Command::Healthcheck { url, config } => healthcheck::run(url, config),
        Command::Keygen { kid, out, force } => keygen::run(&kid, &out, force),
        Command::Csr {
            environment,
            ods,
            supplier,
            provider,
            out,
            force,
        } => {
            let environment = match environment {
                CsrEnvironment::Int => Environment::Int,
                CsrEnvironment::Prod => Environment::Prod,
            };
            let hosted_by = match (supplier, provider) {
                (Some(s), _) => HostedBy::Supplier(s),
                (None, Some(p)) => HostedBy::Provider(p),
                // clap's required "host" group guarantees one of them.
                (None, None) => return ExitCode::from(EXIT_CONFIG),
            };
            csr::run(environment, ods, hosted_by, &out, force)
        }
        Command::Jwt { config } => apim::jwt(config.as_deref()),
        Command::Token { config } => apim::token(config.as_deref()),
        Command::Send {
            config,
            target,
            correlation_id,
            request_id,
            use_context,
            file,
        } => send::run(send::SendArgs {
            config: config.as_deref(),
            request_id,
            target: &target,
            correlation_id,
            use_context,
            file: &file,
        }),
    }
}
