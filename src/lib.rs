//! `bars-receiver`: the mutual-TLS front door of an NHS Booking and Referral Standard (BaRS)
//! receiver.
//!
//! It presents the receiver's NHS-issued server certificate, admits only the BaRS API proxy
//! (source address on the allowlist **and** a client certificate chained to the
//! environment's NHS Root/SubCA), enforces the BaRS HTTP rules, and hands each accepted FHIR
//! request to a handler: the embedded durable inbox by default, a forwarder to the provider's
//! own system ([`handler::ForwardHandler`], or [`handler::RelayHandler`] with its delivery
//! worker), or an integrator's own implementation of the [`MessagingHandler`] and
//! [`SlotHandler`] traits and of the RESTful interactions registered one by one in
//! [`ResourceHandlers`]. The CapabilityStatement and the MessageDefinitions are served by the
//! receiver itself, from what is registered and configured.
//!
//! It also acts as a BaRS sender: [`BarsClient`] sends responses and updates through the BaRS
//! API with API-M signed-JWT tokens (see [`sender`]), and [`ReplyTo`] carries what an
//! asynchronous reply to a received message needs.
//!
//! The root holds what an integrator needs; the modules hold the rest: [`config`] (every
//! settings type), [`fhir`] (BaRS headers and resources), [`handler`] (the per-interaction
//! traits and the built-in handlers), [`store`], [`tls`], [`net`], [`admin`] (metrics),
//! [`upstream`], [`reload`] and [`sender`].
//!
//! For local development (the `dev-tools` feature), `devproxy` stands in for the BaRS API
//! proxy and API-M (tokens, endpoint catalogue, mutual-TLS forwarding, the proxy's rewrites),
//! and `devstack` runs it with two receivers that exchange a request and its response
//! through it.
//!
//! ```no_run
//! use bars_receiver::{Server, Settings, Store, configured_handlers};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let settings = Settings::load("config/int.toml".as_ref())?;
//! let store = Store::open(&settings.inbox.path)?;
//! let server = Server::new(&settings, configured_handlers(&settings, store.clone())?, store)?;
//! let listener = tokio::net::TcpListener::bind(settings.listen.address).await?;
//! server.serve(listener, async { let _ = tokio::signal::ctrl_c().await; }).await;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod check;
pub mod config;
#[cfg(feature = "dev-tools")]
pub mod devproxy;
#[cfg(feature = "dev-tools")]
pub mod devstack;
mod error_chain;
pub mod fhir;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz;
pub mod handler;
mod http;
pub mod log_value;
pub mod loopback;
pub mod net;
pub mod pki;
pub mod private_files;
mod relay;
pub mod reload;
mod secret;
pub mod sender;
mod server;
pub mod store;
mod tasks;
pub mod tls;
pub mod upstream;

pub use config::{ConfigError, Settings};
pub use fhir::{
    AssignedId, IssueType, MessageBundle, MessageEvent, RecCode, RecError, ResourceType, SearchParam,
    TargetIdentifier,
};
pub use handler::{
    FhirResponse, HandlerResult, Handlers, MessagingHandler, ReplyTo, RequestContext, ResourceHandlers,
    SearchParams, SlotHandler, SlotQuery, SlotStatus,
};
pub use sender::BarsClient;
pub use server::{Server, ServerError, configured_handlers, default_handlers};
pub use store::{Store, StoreError};
pub use tls::PeerIdentity;
