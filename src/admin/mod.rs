//! Operations: the Prometheus metrics and the plain-HTTP admin listener (`/healthz`,
//! `/readyz`, `/metrics`), separate from the mutual-TLS port.

mod exposition;
mod metrics;
mod server;

pub use metrics::Metrics;
pub(crate) use metrics::{RequestLabels, ResultLabel, RouteLabel};
pub(crate) use server::{MaterialExpiry, Readiness, serve_admin};
