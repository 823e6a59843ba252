//! `bars-receiver dev-stack`: the dev proxy and two receivers that talk through it.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bars_receiver::devstack::{DevStack, DevStackError, DevStackOptions};
use bars_receiver::{config::LogFormat, config::LogSettings};

use super::serve::shutdown_signal;
use super::{EXIT_CONFIG, EXIT_RUNTIME, logging};

/// `dev-stack` options.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Directory for the PKI, keys, configurations and inboxes (created if missing).
    #[arg(long, default_value = "dev-stack")]
    dir: PathBuf,
    /// The dev proxy's address (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:9443")]
    proxy_address: SocketAddr,
    /// Receiver A's (the referrer's) address.
    #[arg(long, default_value = "127.0.0.1:9444")]
    referrer_address: SocketAddr,
    /// Receiver B's (the service's) address.
    #[arg(long, default_value = "127.0.0.1:9445")]
    service_address: SocketAddr,
    /// The address the proxy forwards from; the receivers admit only this one.
    #[arg(long, default_value = "127.0.0.2")]
    proxy_source: IpAddr,
    /// How long B waits before answering a validation request, e.g. 2s.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    reply_delay: Duration,
    /// Log format: json, pretty or auto.
    #[arg(long, default_value = "auto")]
    log_format: String,
}

pub(crate) fn run(args: Args) -> ExitCode {
    let format = match args.log_format.as_str() {
        "json" => LogFormat::Json,
        "pretty" => LogFormat::Pretty,
        "auto" => LogFormat::Auto,
        other => {
            eprintln!("error: --log-format '{other}' is not json, pretty or auto");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(&LogSettings::new(format, "info"), false);
    let mut options = DevStackOptions::new(args.dir);
    options.proxy_address = args.proxy_address;
    options.referrer_address = args.referrer_address;
    options.service_address = args.service_address;
    options.proxy_source = args.proxy_source;
    options.reply_delay = args.reply_delay;
    let Some(runtime) = super::runtime(true) else {
        return ExitCode::from(EXIT_RUNTIME);
    };
    runtime.block_on(async {
        let stack = match DevStack::start(&options).await {
            Ok(stack) => stack,
            Err(e) => {
                eprintln!("error: {e}");
                let code = match e {
                    DevStackError::Bind { .. } | DevStackError::Io { .. } => EXIT_RUNTIME,
                    _ => EXIT_CONFIG,
                };
                return ExitCode::from(code);
            }
        };
        let shutdown = shutdown_signal();
        eprintln!("{}", stack.guide());
        stack.run(shutdown).await;
        ExitCode::SUCCESS
    })
}
