//! `bars-receiver dev-stack`: the whole BaRS path on one machine, in one process. A dev
//! proxy (the BaRS API and API-M stand-in) and two receivers behind it that talk to each
//! other only through it: A, the referrer, and B, the service. B commits each validation
//! request to its inbox and later answers it through the proxy with the sender library;
//! A's inbox receives the answer. Each receiver's allowlist admits only the proxy's source
//! address, and each has its own API-M application.
//!
//! For development only.

mod files;
mod service;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

pub use files::{REFERRER_SERVICE, SERVICE_SERVICE, StackFiles};

use crate::config::{ConfigError, DevProxySettings, Settings};
use crate::devproxy::{DevProxy, DevProxyError};
use crate::handler::{Handlers, InboxHandler};
use crate::loopback::reachable;
use crate::pki::PkiError;
use crate::sender::{BarsClient, SetupError};
use crate::server::{Server, ServerError, default_handlers};
use crate::store::{Store, StoreError};
use files::Addresses;
use service::{ValidationService, reply_worker};

/// Where and how to run the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DevStackOptions {
    /// The directory holding everything (created 0700).
    pub dir: PathBuf,
    /// The dev proxy's address (port 0: any free port).
    pub proxy_address: SocketAddr,
    /// Receiver A's address.
    pub referrer_address: SocketAddr,
    /// Receiver B's address.
    pub service_address: SocketAddr,
    /// The address the proxy forwards from: the one address the receivers admit.
    pub proxy_source: IpAddr,
    /// How long B waits before answering a validation request.
    pub reply_delay: Duration,
}

impl DevStackOptions {
    /// The defaults: `dir`, the proxy on 127.0.0.1:9443, A on :9444, B on :9445, forwarding
    /// from 127.0.0.2, replies after 2 s.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            proxy_address: SocketAddr::from(([127, 0, 0, 1], 9443)),
            referrer_address: SocketAddr::from(([127, 0, 0, 1], 9444)),
            service_address: SocketAddr::from(([127, 0, 0, 1], 9445)),
            proxy_source: IpAddr::from([127, 0, 0, 2]),
            reply_delay: Duration::from_secs(2),
        }
    }
}

/// Why the stack could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevStackError {
    /// A file or directory could not be written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The development PKI or a signing key could not be made.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// A written configuration did not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The dev proxy could not be assembled.
    #[error(transparent)]
    Proxy(#[from] DevProxyError),
    /// A receiver could not be assembled.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// A receiver's inbox could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// B's sender client could not be built.
    #[error(transparent)]
    Sender(#[from] SetupError),
    /// A listener could not be bound.
    #[error("cannot bind the {what} on {address}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// Where.
        address: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A configuration has no `[sender]`.
    #[error("{path}: no [sender] section")]
    NoSender {
        /// The configuration.
        path: PathBuf,
    },
}

/// A started stack: files written, listeners bound, everything loaded.
pub struct DevStack {
    files: StackFiles,
    generated: Vec<String>,
    addresses: Addresses,
    proxy: (DevProxy, TcpListener),
    referrer: (Server, TcpListener),
    service: (Server, TcpListener),
    reply: (BarsClient, mpsc::UnboundedReceiver<service::Pending>),
}

impl std::fmt::Debug for DevStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevStack")
            .field("files", &self.files)
            .field("addresses", &self.addresses)
            .finish_non_exhaustive()
    }
}

impl DevStack {
    /// Generates what is missing in the directory, binds the three listeners, writes the
    /// configurations with the addresses bound, and loads them. Must be called inside a
    /// Tokio runtime.
    pub async fn start(options: &DevStackOptions) -> Result<Self, DevStackError> {
        let files = StackFiles::new(&options.dir);
        let generated = files.generate_missing()?;
        let bind = |what: &'static str, address: SocketAddr| async move {
            TcpListener::bind(address)
                .await
                .map_err(|source| DevStackError::Bind {
                    what,
                    address,
                    source,
                })
        };
        let proxy_listener = bind("dev proxy", options.proxy_address).await?;
        let referrer_listener = bind("referrer (A)", options.referrer_address).await?;
        let service_listener = bind("service (B)", options.service_address).await?;
        let local = |l: &TcpListener, fallback: SocketAddr| reachable(l.local_addr().unwrap_or(fallback));
        let addresses = Addresses {
            proxy: local(&proxy_listener, options.proxy_address),
            referrer: local(&referrer_listener, options.referrer_address),
            service: local(&service_listener, options.service_address),
            proxy_source: options.proxy_source,
        };
        files.write_configs(&addresses)?;

        let proxy = DevProxy::new(&DevProxySettings::load(&files.proxy_config)?)?;
        let referrer_settings = load_receiver(&files.referrer_config)?;
        let service_settings = load_receiver(&files.service_config)?;

        let referrer_store = Store::open(&referrer_settings.inbox.path)?;
        let referrer = Server::new(
            &referrer_settings,
            default_handlers(referrer_store.clone()),
            referrer_store,
        )?;

        let service_store = Store::open(&service_settings.inbox.path)?;
        let sender = service_settings
            .sender
            .as_ref()
            .ok_or_else(|| DevStackError::NoSender {
                path: files.service_config.clone(),
            })?;
        let client = BarsClient::new(sender)?;
        let (queue, pending) = mpsc::unbounded_channel();
        let handler = ValidationService::new(
            InboxHandler::new(service_store.clone()),
            queue,
            options.reply_delay,
        );
        let service = Server::new(&service_settings, Handlers::new(Arc::new(handler)), service_store)?;
        Ok(Self {
            files,
            generated,
            addresses,
            proxy: (proxy, proxy_listener),
            referrer: (referrer, referrer_listener),
            service: (service, service_listener),
            reply: (client, pending),
        })
    }

    /// The files of the stack.
    pub fn files(&self) -> &StackFiles {
        &self.files
    }

    /// The dev proxy's address.
    pub fn proxy_address(&self) -> SocketAddr {
        self.addresses.proxy
    }

    /// What a person needs to try the round trip: what was generated, where everything
    /// listens, and the commands, each with what it proves.
    pub fn guide(&self) -> String {
        let f = &self.files;
        let a = &self.addresses;
        let path = |p: &Path| p.display().to_string();
        let mut text = String::from(
            "bars-receiver dev-stack: the whole BaRS path on this machine (development only).\n\n",
        );
        for made in &self.generated {
            text.push_str(&format!("Generated {made}.\n"));
        }
        if !self.generated.is_empty() {
            text.push('\n');
        }
        text.push_str(&format!(
            "  dev proxy (BaRS API + API-M)  https://{proxy}  forwarding from {source}\n\
             \x20 receiver A, the referrer      https://{a_addr}  service {a_svc}\n\
             \x20 receiver B, the service       https://{b_addr}  service {b_svc}\n\n\
             Configurations: {proxy_cfg}, {cat}, {a_cfg}, {b_cfg}\n\n\
             Try the round trip (from this directory; `cargo run --` in place of bars-receiver):\n\n\
             1. A gets an API-M access token: its RS512 client assertion is checked against A's JWKS.\n\
             \x20  bars-receiver token --config {a_cfg}\n\n\
             2. A sends a validation request to B through the proxy (token, BaRS ids, target,\n\
             \x20  catalogue, then mutual TLS from {source} to B, whose allowlist admits only that address).\n\
             \x20  bars-receiver send --config {a_cfg} --target '{b_svc}' {msg}\n\n\
             3. B committed it to its inbox before answering 200; `show` names the proxy's certificate and address.\n\
             \x20  bars-receiver inbox --db {b_inbox} list\n\n\
             4. B answers later as a sender, through the proxy to A: a servicerequest-response with a new\n\
             \x20  X-Request-Id and the same X-Correlation-Id. After a few seconds:\n\
             \x20  bars-receiver inbox --db {a_inbox} list\n\
             \x20  bars-receiver inbox --db {a_inbox} export\n\n\
             Ready. Ctrl-C (SIGINT) or SIGTERM stops everything.\n",
            proxy = a.proxy,
            source = a.proxy_source,
            a_addr = a.referrer,
            b_addr = a.service,
            a_svc = REFERRER_SERVICE,
            b_svc = SERVICE_SERVICE,
            proxy_cfg = path(&f.proxy_config),
            cat = path(&f.catalogue),
            a_cfg = path(&f.referrer_config),
            b_cfg = path(&f.service_config),
            msg = path(&f.message),
            a_inbox = path(&f.referrer_inbox),
            b_inbox = path(&f.service_inbox),
        ));
        text
    }

    /// Serves everything until `shutdown` resolves, then stops all three (each draining its
    /// in-flight requests) and B's reply worker.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let (stop, stopped) = watch::channel(false);
        let signal = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let (client, pending) = self.reply;
        let worker = tokio::spawn(reply_worker(client, pending));
        let (proxy, proxy_listener) = self.proxy;
        let (referrer, referrer_listener) = self.referrer;
        let (service, service_listener) = self.service;
        let all = async {
            tokio::join!(
                proxy.serve(proxy_listener, signal(stopped.clone())),
                referrer.serve(referrer_listener, signal(stopped.clone())),
                service.serve(service_listener, signal(stopped.clone())),
            )
        };
        tokio::pin!(all);
        tokio::select! {
            _ = &mut all => {}
            () = shutdown => {
                tracing::info!("dev-stack stopping");
                let _ = stop.send(true);
                all.await;
            }
        }
        worker.abort();
        tracing::info!("dev-stack stopped");
    }
}

/// A receiver configuration written by the stack: the file alone, no `BARS_` overrides (they
/// are meant for a single receiver, not for both of these).
fn load_receiver(path: &Path) -> Result<Settings, DevStackError> {
    let text = std::fs::read_to_string(path).map_err(|source| DevStackError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(Settings::from_toml(
        &text,
        &path.display().to_string(),
        Vec::<(String, String)>::new(),
    )?)
}
