//! `bars-receiver serve`.

use std::path::PathBuf;
use std::process::ExitCode;

use bars_receiver::{Server, Settings, Store, configured_handlers, reload::Reloader, reload::SettingsSource};

use super::{EXIT_CONFIG, EXIT_RUNTIME, logging};

pub(crate) fn run(config: Option<PathBuf>, dev: bool) -> ExitCode {
    if dev {
        if let Err(code) = dev::prepare() {
            return code;
        }
    }
    let settings = match (&config, dev) {
        (Some(path), _) => Settings::load(path),
        (None, true) => Settings::dev(),
        (None, false) => {
            eprintln!("error: serve needs --config FILE, or --dev for local development");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let settings = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    // `serve --dev` is read by a developer, often through a pipe: readable unless asked.
    logging::init(&settings.log, dev);
    let Some(runtime) = super::runtime(true) else {
        return ExitCode::from(EXIT_RUNTIME);
    };
    let source = match config {
        Some(path) => SettingsSource::File(path),
        None => SettingsSource::Dev,
    };
    runtime.block_on(serve(settings, source, dev))
}

async fn serve(settings: Settings, source: SettingsSource, dev: bool) -> ExitCode {
    // Installed first: a SIGTERM from now on is a clean stop, even during start-up.
    let shutdown = shutdown_signal();
    let store = match Store::connect(&settings.store).await {
        Ok(store) => store,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the inbox");
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_RUNTIME);
        }
    };
    let server = match configured_handlers(&settings, store.clone())
        .and_then(|handlers| Server::with_source(source, &settings, handlers, store))
    {
        Ok(server) => server,
        Err(e) => {
            tracing::error!(error = %e, "refusing to start");
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let Some(listener) = bind(settings.listen.address, "listener").await else {
        return ExitCode::from(EXIT_RUNTIME);
    };
    let admin = match settings.admin.enabled {
        true => match bind(settings.admin.address, "admin listener").await {
            Some(l) => Some(l),
            None => return ExitCode::from(EXIT_RUNTIME),
        },
        false => None,
    };
    if dev {
        let addr = listener.local_addr().unwrap_or(settings.listen.address);
        dev::describe(addr, &settings.inbox.path);
    }
    let reloader = server.reloader();
    let sighup = tokio::spawn(reload_on_sighup(reloader));
    server.serve_with_admin(listener, admin, shutdown).await;
    sighup.abort();
    ExitCode::SUCCESS
}

async fn bind(address: std::net::SocketAddr, what: &str) -> Option<tokio::net::TcpListener> {
    match tokio::net::TcpListener::bind(address).await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::error!(%address, error = %e, "cannot bind the {what}");
            eprintln!("error: cannot bind the {what} on {address}: {e}");
            None
        }
    }
}

/// SIGHUP reloads the TLS and admission material; a failure keeps the old one serving.
async fn reload_on_sighup(reloader: std::sync::Arc<Reloader>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reloads happen only when watched files change");
            return;
        };
        while hup.recv().await.is_some() {
            let reloader = reloader.clone();
            let _ = tokio::task::spawn_blocking(move || reloader.reload("SIGHUP")).await;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = reloader;
        std::future::pending::<()>().await;
    }
}

/// Resolves on SIGTERM or SIGINT. The handlers are installed when this is called, not when
/// the future is first polled, so that a signal arriving right after the start-up output is
/// not missed. Call it inside the runtime.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers =
            signal(SignalKind::terminate()).and_then(|term| Ok((term, signal(SignalKind::interrupt())?)));
        async move {
            match handlers {
                Ok((mut term, mut int)) => {
                    tokio::select! {
                        _ = term.recv() => tracing::info!("SIGTERM received"),
                        _ = int.recv() => tracing::info!("SIGINT received"),
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot install the SIGTERM handler; only SIGINT will stop the receiver");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `serve --dev`: the development PKI in certs/dev and a ready-to-paste request.
#[cfg(feature = "dev-tools")]
mod dev {
    use std::path::Path;
    use std::process::ExitCode;

    use bars_receiver::pki::{DevPki, DevPkiOptions, PkiError, dev_pki_present};

    use super::super::{EXIT_RUNTIME, example};

    /// Where `serve --dev` keeps its development PKI (the paths in config/dev.toml).
    const DEV_CERTS: &str = "certs/dev";

    /// Creates the development PKI if missing.
    pub(super) fn prepare() -> Result<(), ExitCode> {
        ensure_dev_pki(Path::new(DEV_CERTS)).map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_RUNTIME)
        })
    }

    /// Writes the example message and says how to post it to the receiver at `addr`.
    pub(super) fn describe(addr: std::net::SocketAddr, inbox: &Path) {
        match example::write_and_describe(Path::new("data/example-message.json"), Path::new(DEV_CERTS), addr)
        {
            Ok(curl) => eprintln!(
                "\nbars-receiver is listening on https://{addr} (development mode, loopback only).\n\
                 Post a BaRS message with the development client certificate:\n\n{curl}\n\n\
                 Then: bars-receiver inbox --db {} list\n",
                inbox.display()
            ),
            Err(e) => tracing::warn!(error = %e, "could not write the example message"),
        }
    }

    fn ensure_dev_pki(dir: &Path) -> Result<(), PkiError> {
        if dev_pki_present(dir) {
            return Ok(());
        }
        let files = DevPki::generate(&DevPkiOptions::default())?.write(dir, true)?;
        eprintln!(
            "Created a development PKI in {} ({} files).",
            dir.display(),
            files.len()
        );
        Ok(())
    }
}

/// `serve --dev` in a build without the development tools: refused before anything starts.
#[cfg(not(feature = "dev-tools"))]
mod dev {
    use std::process::ExitCode;

    use super::super::EXIT_CONFIG;

    pub(super) fn prepare() -> Result<(), ExitCode> {
        eprintln!(
            "error: serve --dev needs the development PKI, which this build leaves out \
             (built without the dev-tools feature); use serve --config FILE"
        );
        Err(ExitCode::from(EXIT_CONFIG))
    }

    pub(super) fn describe(_addr: std::net::SocketAddr, _inbox: &std::path::Path) {}
}
