//! The client side: an HTTP(S) client to the provider's own system (the `[upstream]`), used by
//! the forward handler and the relay delivery worker. Pooled keep-alive connections, HTTP/1.1
//! and h2, the single aws-lc-rs crypto provider, and the hop-by-hop headers never relayed.
//! It knows no handler type: what a request becomes upstream is the handlers' business.

mod client;
mod error;
mod headers;
mod tls;

pub(crate) use client::Outbound;
pub use client::Upstream;
pub(crate) use error::Exchange;
pub use error::UpstreamError;
pub(crate) use headers::HOP_BY_HOP;
