//! The pooled HTTP(S) client to the upstream and one bounded exchange with it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use super::error::{Exchange, UpstreamError};
use super::tls::client_config;
use crate::config::UpstreamSettings;
use crate::error_chain::error_chain;

/// Idle pooled connections are closed after this.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// A client to the provider's system; cheap to clone (one connection pool).
#[derive(Clone)]
pub struct Upstream {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    url: String,
    timeout: Duration,
    max_response_body: usize,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("url", &self.inner.url)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

/// One request to send upstream.
pub(crate) struct Outbound<'a> {
    pub(crate) method: Method,
    /// Appended to the upstream base URL; starts with `/`.
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    pub(crate) headers: &'a [(String, String)],
    pub(crate) body: Bytes,
}

/// A complete upstream answer.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Upstream {
    /// A client for `settings`: loads the CA, certificate and key files (failing with the
    /// file at fault). Must be called inside a Tokio runtime only when used.
    pub fn new(settings: &UpstreamSettings) -> Result<Self, UpstreamError> {
        let uri: http::Uri = settings.url.parse().map_err(|_| UpstreamError::Url {
            url: settings.url.clone(),
        })?;
        if uri.host().is_none() || !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(UpstreamError::Url {
                url: settings.url.clone(),
            });
        }
        let tls = client_config(settings)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.timeout));
        http.set_keepalive(Some(Duration::from_secs(30)));
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let builder = match &settings.server_name {
            Some(name) => {
                let name = rustls_pki_types::ServerName::try_from(name.clone())
                    .map_err(|_| UpstreamError::ServerName { name: name.clone() })?;
                builder.with_server_name_resolver(FixedServerNameResolver::new(name))
            }
            None => builder,
        };
        let connector = builder.enable_all_versions().wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE)
            .http2_only(settings.http2_only)
            // Only requests that never started to be written on a reused connection found
            // dead are retried (hyper hands those back unsent): no byte of a POST is ever
            // sent twice by this client.
            .retry_canceled_requests(true)
            .build(connector);
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                url: settings.url.clone(),
                timeout: settings.timeout,
                max_response_body: settings.max_response_body,
            }),
        })
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Sends one request and reads its whole answer, all within the timeout.
    pub(crate) async fn send(&self, outbound: Outbound<'_>) -> Result<Reply, Exchange> {
        let request = self.request(outbound)?;
        match tokio::time::timeout(self.inner.timeout, self.exchange(request)).await {
            Ok(result) => result,
            Err(_) => Err(Exchange::Timeout),
        }
    }

    fn request(&self, o: Outbound<'_>) -> Result<Request<Full<Bytes>>, Exchange> {
        let path = if o.path.is_empty() { "/" } else { o.path };
        let mut uri = format!("{}{path}", self.inner.url);
        if let Some(query) = o.query {
            uri.push('?');
            uri.push_str(query);
        }
        let mut request = Request::builder()
            .method(o.method)
            .uri(&uri)
            .body(Full::new(o.body))
            .map_err(|e| Exchange::Unreachable(format!("cannot build the request: {e}")))?;
        let headers = request.headers_mut();
        for (name, value) in o.headers {
            // The names and values came from a parsed request; one that does not convert
            // back is dropped rather than failing the request.
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.append(name, value);
            }
        }
        Ok(request)
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<Reply, Exchange> {
        let response = self
            .inner
            .client
            .request(request)
            .await
            .map_err(|e| Exchange::Unreachable(error_chain(&e)))?;
        let status = response.status().as_u16();
        let limit = self.inner.max_response_body;
        let too_large = Exchange::TooLarge { status, limit };
        let declared = response
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit as u64) {
            return Err(too_large);
        }
        let (parts, body) = response.into_parts();
        match Limited::new(body, limit).collect().await {
            Ok(collected) => Ok(Reply {
                status,
                headers: parts.headers,
                body: collected.to_bytes(),
            }),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large),
            Err(e) => Err(Exchange::Unreachable(format!(
                "the answer broke off: {}",
                error_chain(e.as_ref())
            ))),
        }
    }
}
