//! The client side: an HTTP(S) client to the provider's own system (the `[upstream]`), used by
//! the forward handler and the relay delivery worker. Pooled keep-alive connections, HTTP/1.1
//! and h2, the single aws-lc-rs crypto provider, and the header rules that describe the
//! verified caller to the upstream.

mod client;
mod error;
mod headers;
mod tls;

pub(crate) use client::Outbound;
pub use client::Upstream;
pub(crate) use error::Exchange;
pub use error::UpstreamError;
#[cfg(feature = "dev-tools")]
pub(crate) use headers::HOP_BY_HOP;
pub(crate) use headers::outbound_headers;
