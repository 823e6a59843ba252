//! `bars-receiver dev-proxy`: a local stand-in for `https://<env>.api.service.nhs.uk`, so
//! that the whole BaRS path runs on one machine: sender → API-M token → BaRS API proxy →
//! mutual TLS → receiver.
//!
//! - `POST /oauth2/token` checks signed-JWT client assertions against a registry of
//!   applications (API key → JWKS file) the way API-M does, and issues bearer tokens.
//! - `/booking-and-referral/FHIR/R4/...` checks the token and the BaRS headers, finds the
//!   target service's receiver in an endpoint catalogue file, and forwards the request over
//!   mutual TLS with the proxy's client certificate from a configurable source address,
//!   rewriting receiver answers as the national proxy does.
//!
//! For development only: it never talks to NHS services, and its tokens mean nothing
//! anywhere else.

mod api;
mod assertion;
mod capability;
mod catalogue;
mod error;
mod forward;
mod outcome;
mod registry;
mod rewrite;
mod server;
mod token;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

pub use api::API_BASE_PATH;
pub use error::DevProxyError;
pub use server::TOKEN_PATH;

use crate::config::DevProxySettings;
use crate::log_value::LogList;
use crate::loopback::reachable;
use crate::tls::{key_error, load_certs, load_key, server_builder};
use catalogue::Catalogue;
use forward::Forwarder;
use registry::Registry;
use token::TokenService;

/// A dev proxy ready to serve: its TLS material, registry, catalogue and forwarding client
/// loaded (failing with the file at fault).
pub struct DevProxy {
    tls: Arc<rustls::ServerConfig>,
    registry: Registry,
    catalogue: Catalogue,
    forwarder: Forwarder,
    token_url: Option<String>,
    token_lifetime: Duration,
    grace: Duration,
    source: Option<std::net::IpAddr>,
}

impl std::fmt::Debug for DevProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevProxy")
            .field("applications", &self.registry)
            .field("catalogue_entries", &self.catalogue.len())
            .field("forwarder", &self.forwarder)
            .finish_non_exhaustive()
    }
}

impl DevProxy {
    /// Loads everything `settings` names.
    pub fn new(settings: &DevProxySettings) -> Result<Self, DevProxyError> {
        let tls = server_config(settings)?;
        let registry = Registry::load(&settings.applications)?;
        let catalogue = Catalogue::load(&settings.catalogue)?;
        let forwarder = Forwarder::new(settings)?;
        Ok(Self {
            tls,
            registry,
            catalogue,
            forwarder,
            token_url: settings.token_url.clone(),
            token_lifetime: settings.access_token_lifetime,
            grace: settings.shutdown_grace,
            source: settings.source_address,
        })
    }

    /// The token URL (the `aud` assertions must carry) when serving on `addr`: `token.url`
    /// if configured, else `https://<addr>/oauth2/token`.
    pub fn token_url(&self, addr: SocketAddr) -> String {
        self.token_url
            .clone()
            .unwrap_or_else(|| format!("https://{}{TOKEN_PATH}", reachable(addr)))
    }

    /// Serves `listener` until `shutdown` resolves, then drains in-flight requests.
    pub async fn serve(self, listener: TcpListener, shutdown: impl Future<Output = ()>) {
        let Ok(addr) = listener.local_addr() else {
            tracing::error!("the dev proxy's listener has no local address");
            return;
        };
        let token_url = self.token_url(addr);
        let mut audiences = vec![token_url.clone()];
        if self.token_url.is_none() {
            // Either name of this machine: senders may configure the token URL with either.
            audiences.push(format!("https://localhost:{}{TOKEN_PATH}", addr.port()));
        }
        let base_url = format!("https://{}{API_BASE_PATH}", reachable(addr));
        let date = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        if self.registry.len() == 0 {
            tracing::warn!("no [[application]] registered: every token request will be refused");
        }
        tracing::info!(
            address = %addr,
            token_url = %token_url,
            base_url = %base_url,
            applications = %LogList::new(self.registry.names()),
            catalogue_entries = self.catalogue.len(),
            source_address = self.source.map(|ip| ip.to_string()).unwrap_or_default(),
            "dev proxy listening (a local stand-in for the BaRS API; never for INT or PROD)"
        );
        let shared = Arc::new(server::Shared {
            tokens: TokenService::new(self.registry, audiences, self.token_lifetime),
            api: api::Api {
                catalogue: self.catalogue,
                forwarder: self.forwarder,
                capability: capability::capability_statement(&base_url, &date),
            },
        });
        server::serve(listener, self.tls, shared, self.grace, shutdown).await;
        tracing::info!("dev proxy stopped");
    }
}

/// The proxy's server side: its certificate, no client certificate asked for.
fn server_config(settings: &DevProxySettings) -> Result<Arc<rustls::ServerConfig>, DevProxyError> {
    let chain = load_certs(&settings.cert_chain).map_err(DevProxyError::tls("tls.cert_chain"))?;
    let key = load_key(&settings.private_key).map_err(DevProxyError::tls("tls.private_key"))?;
    let mut config = server_builder()
        .map_err(DevProxyError::tls("tls"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            DevProxyError::tls("tls.private_key")(key_error(e, &settings.cert_chain, &settings.private_key))
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
