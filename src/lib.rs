//! `bars-receiver`: the mutual-TLS front door of an NHS Booking and Referral Standard (BaRS)
//! receiver.
//!
//! It presents the receiver's NHS-issued server certificate, admits only the BaRS API proxy
//! (source address on the allowlist **and** a client certificate chained to the
//! environment's NHS Root/SubCA), enforces the BaRS HTTP rules, and hands each accepted FHIR
//! request to a handler: the embedded durable inbox by default, a forwarder to the provider's
//! own system ([`ForwardHandler`], or [`RelayHandler`] with its delivery worker), or an
//! integrator's own implementation of the [`MessagingHandler`], [`SlotHandler`],
//! [`ResourceHandler`] and [`MessageDefinitionHandler`] traits.
//!
//! It also acts as a BaRS sender: [`BarsClient`] sends responses and updates through the BaRS
//! API with API-M signed-JWT tokens (see [`sender`]), and [`ReplyTo`] carries what an
//! asynchronous reply to a received message needs.
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

mod admin;
pub mod check;
mod config;
#[cfg(feature = "dev-tools")]
pub mod devproxy;
#[cfg(feature = "dev-tools")]
pub mod devstack;
mod error_chain;
mod fhir;
mod handler;
mod http;
mod loopback;
mod relay;

mod net;
pub mod pki;
mod private_files;
mod reload;
pub mod sender;
mod server;
mod store;
mod tls;
mod upstream;

pub use admin::Metrics;
pub use config::{
    AdminSettings, ApimSettings, ApplicationSettings, ConfigError, DEV_CONFIG, DevProxySettings, ENV_PREFIX,
    Environment, HandlerKind, HttpSettings, InboxSettings, ListenSettings, LogFormat, LogSettings, Problem,
    ReceiverInfo, ReloadSettings, SANDBOX_BASE_URL, SenderAuth, SenderSettings, Settings, UpstreamSettings,
};
pub use fhir::{
    BarsIds, EndUserOrganisation, IssueType, MessageBundle, MessageEvent, MessageReason, MessageResponse,
    NhsdHeaders, RecCode, RecError, RequestingPractitioner, RequestingSoftware, ResourceType,
    TargetIdentifier, encode_header_json,
};
pub use handler::{
    FhirResponse, ForwardHandler, HandlerResult, Handlers, InboxHandler, MessageDefinitionHandler,
    MessagingHandler, RelayHandler, ReplyTo, RequestContext, ResourceHandler, RestInteraction, SearchParams,
    SlotHandler, SlotQuery,
};
pub use net::{Allowlist, ProxyPolicy};
pub use reload::{Reloader, SettingsSource};
pub use sender::{BarsClient, BarsRequest, BarsResponse, SendError};
pub use server::{Server, ServerError, configured_handlers, default_handlers};
pub use store::{
    DeliveryBacklog, DeliveryState, DeliveryStatus, Inserted, MessageRecord, MessageSummary, NewMessage,
    ReadOnlyStore, Store, StoreError,
};
pub use tls::{
    CertInfo, ClientNamePins, CrlInfo, NamePattern, PeerIdentity, RefusalReason, RevocationPolicy, TlsError,
    TlsSettings,
};
pub use upstream::{Upstream, UpstreamError};

/// Lower-level pieces for tools built on this crate (`check`, tests).
pub mod inspect {
    pub use crate::fhir::{
        EVENT_SYSTEM, HTTP_ERROR_CODE_SYSTEM, NHSD_END_USER_ORGANISATION, NHSD_REQUESTING_PRACTITIONER,
        NHSD_REQUESTING_SOFTWARE, NHSD_TARGET_IDENTIFIER, REASON_SYSTEM, X_CORRELATION_ID, X_REQUEST_ID,
    };
    pub use crate::loopback::reachable;
    pub use crate::private_files::create_new_private_file;
    pub use crate::tls::{load_anchors, load_certs, load_key};
}

/// Re-exported so integrators name the same `async_trait` this crate's traits use.
pub use async_trait::async_trait;
