//! `bars-receiver serve`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bars_receiver::pki::{DevPki, DevPkiOptions, dev_pki_present};
use bars_receiver::{Server, Settings, Store, configured_handlers, reload::Reloader, reload::SettingsSource};

use super::{EXIT_CONFIG, EXIT_RUNTIME, example, logging};

/// Where `serve --dev` keeps its development PKI (the paths in config/dev.toml).
const DEV_CERTS: &str = "certs/dev";

pub(crate) fn run(config: Option<PathBuf>, dev: bool) -> ExitCode {
    if dev {
        if let Err(e) = ensure_dev_pki(Path::new(DEV_CERTS)) {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_RUNTIME);
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
    logging::init(&settings.log);
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
    let store = match Store::open(&settings.inbox.path) {
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
        match example::write_and_describe(Path::new("data/example-message.json"), Path::new(DEV_CERTS), addr)
        {
            Ok(curl) => eprintln!(
                "\nbars-receiver is listening on https://{addr} (development mode, loopback only).\n\
                 Post a BaRS message with the development client certificate:\n\n{curl}\n\n\
                 Then: bars-receiver inbox --db {} list\n",
                settings.inbox.path.display()
            ),
            Err(e) => tracing::warn!(error = %e, "could not write the example message"),
        }
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

fn ensure_dev_pki(dir: &Path) -> Result<(), bars_receiver::pki::PkiError> {
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
