//! One HTTPS exchange: hyper-util's pooled client over rustls (aws-lc-rs), trusting the public
//! web roots (`webpki-roots`, never the system store) or, when configured, only a given CA
//! file. Each exchange is bounded in time and response size.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error_chain::error_chain;
use crate::tls::{TlsError, client_builder, load_roots};

/// The largest response body read (the BaRS proxy platform buffers about 10 MB).
const MAX_RESPONSE_BODY: usize = 16 * 1024 * 1024;

/// A response read whole.
#[derive(Debug, Clone)]
pub(crate) struct RawResponse {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// A failure before a whole response arrived: connect, TLS, reset, timeout.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(crate) struct TransportError(pub(crate) String);

/// The shared HTTP client.
#[derive(Clone)]
pub(crate) struct Transport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A client trusting `ca_file`'s certificates if given, else the public web roots. Plain
    /// `http://` is only ever used for URLs the configuration allowed (loopback mocks).
    pub(crate) fn new(ca_file: Option<&Path>, timeout: Duration) -> Result<Self, TlsError> {
        let roots = match ca_file {
            Some(path) => load_roots([path], |_| Ok(()))?,
            None => rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
        };
        let config = client_builder(roots)?.with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Ok(Self { client, timeout })
    }

    /// Sends `request` and reads the whole response within the timeout.
    pub(crate) async fn send(
        &self,
        request: http::Request<Full<Bytes>>,
    ) -> Result<RawResponse, TransportError> {
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| TransportError(error_chain(&e)))?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BODY)
                .collect()
                .await
                .map_err(|e| TransportError(format!("reading the response body: {e}")))?
                .to_bytes();
            Ok(RawResponse {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| Err(TransportError(format!("no response within {:?}", self.timeout))))
    }
}
