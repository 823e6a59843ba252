//! `bars-receiver dev-proxy`: the local stand-in for the BaRS API and API-M.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use bars_receiver::config::DevProxySettings;
use bars_receiver::devproxy::{API_BASE_PATH, DevProxy};

use super::serve::shutdown_signal;
use super::{EXIT_CONFIG, EXIT_RUNTIME, logging};

pub(crate) fn run(config: &Path, listen: Option<SocketAddr>) -> ExitCode {
    let mut settings = match DevProxySettings::load(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            if !config.exists() {
                eprintln!(
                    "hint: config/dev-proxy.toml in the repository is a commented example; \
                     `bars-receiver dev-stack` writes a complete set-up and runs it"
                );
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Some(listen) = listen {
        settings.listen = listen;
    }
    logging::init(&settings.log, false);
    let Some(runtime) = super::runtime(true) else {
        return ExitCode::from(EXIT_RUNTIME);
    };
    runtime.block_on(async {
        let proxy = match DevProxy::new(&settings) {
            Ok(proxy) => proxy,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        let listener = match tokio::net::TcpListener::bind(settings.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: cannot bind the dev proxy on {}: {e}", settings.listen);
                return ExitCode::from(EXIT_RUNTIME);
            }
        };
        let shutdown = shutdown_signal();
        let addr = listener.local_addr().unwrap_or(settings.listen);
        eprintln!(
            "bars-receiver dev-proxy (development only) on https://{addr}\n  token URL:    {}\n  BaRS API:     https://{addr}{API_BASE_PATH}",
            proxy.token_url(addr)
        );
        proxy.serve(listener, shutdown).await;
        ExitCode::SUCCESS
    })
}
