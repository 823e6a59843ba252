//! Forwarding one request to a receiver, as the national proxy does: a fresh mutual-TLS
//! connection from the configured source address (so the receiver's allowlist sees the
//! proxy's address), the dev proxy's client certificate, HTTP/1.1, the whole
//! exchange bounded by the proxy timeout. Failures are classified by the phase they happen
//! in, because the proxy answers them differently: no TCP connection (503), no mutual TLS
//! (403 "TLS-MA failure."), no answer in time (408).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::{TcpSocket, TcpStream};

use super::DevProxyError;
use crate::config::DevProxySettings;
use crate::error_chain::error_chain;
use crate::tls::{client_builder, key_error, load_certs, load_key, load_roots};
use crate::upstream::HOP_BY_HOP;

/// The largest receiver answer read (the proxy platform buffers about 10 MB).
pub(crate) const MAX_BODY: usize = 10 * 1024 * 1024;

/// Makes the forwarded connections.
pub(crate) struct Forwarder {
    tls: Arc<rustls::ClientConfig>,
    source: Option<IpAddr>,
    timeout: Duration,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("source", &self.source)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// One request to forward.
#[derive(Debug)]
pub(crate) struct Outbound {
    pub(crate) method: Method,
    /// The receiver's base URL + the path suffix + the query.
    pub(crate) url: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// A receiver's complete answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// Why no answer came back. The text is for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No TCP connection: refused, unreachable, name not resolved, source not bindable.
    Unreachable(String),
    /// The TLS handshake failed, or the receiver refused the client certificate.
    TlsMa(String),
    /// The connection broke off before a whole answer arrived.
    Broken(String),
    /// No whole answer within the proxy timeout.
    Timeout,
    /// An answer larger than the proxy buffers.
    TooLarge,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unreachable(why) => write!(f, "receiver unreachable: {why}"),
            Self::TlsMa(why) => write!(f, "mutual TLS with the receiver failed: {why}"),
            Self::Broken(why) => write!(f, "the connection broke off before an answer: {why}"),
            Self::Timeout => f.write_str("no answer within the proxy timeout"),
            Self::TooLarge => write!(f, "the answer is larger than {MAX_BODY} bytes"),
        }
    }
}

impl Forwarder {
    /// Loads the client certificate and the CAs trusted for receivers.
    pub(crate) fn new(settings: &DevProxySettings) -> Result<Self, DevProxyError> {
        let roots = load_roots(settings.receiver_ca.iter().map(PathBuf::as_path), |_| Ok(()))
            .map_err(DevProxyError::tls("forward.receiver_ca"))?;
        let chain = load_certs(&settings.client_cert).map_err(DevProxyError::tls("forward.client_cert"))?;
        let key = load_key(&settings.client_key).map_err(DevProxyError::tls("forward.client_key"))?;
        let mut config = client_builder(roots)
            .map_err(DevProxyError::tls("forward"))?
            .with_client_auth_cert(chain, key)
            .map_err(|e| {
                DevProxyError::tls("forward.client_key")(key_error(
                    e,
                    &settings.client_cert,
                    &settings.client_key,
                ))
            })?;
        // HTTP/1.1, as the national proxy's platform speaks to its targets. (It also keeps
        // a refused client certificate recognisable: over h2 the TLS alert reaches us only
        // as text.)
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            tls: Arc::new(config),
            source: settings.source_address,
            timeout: settings.timeout,
        })
    }

    /// Sends `outbound` and reads the whole answer, within the proxy timeout.
    pub(crate) async fn send(&self, outbound: Outbound) -> Result<Answer, Failure> {
        match tokio::time::timeout(self.timeout, self.exchange(outbound)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::Timeout),
        }
    }

    async fn exchange(&self, outbound: Outbound) -> Result<Answer, Failure> {
        let uri: http::Uri = outbound
            .url
            .parse()
            .map_err(|e| Failure::Unreachable(format!("'{}' is not a URL: {e}", outbound.url)))?;
        let host = uri
            .host()
            .ok_or_else(|| Failure::Unreachable(format!("'{}' has no host", outbound.url)))?
            .trim_matches(['[', ']'])
            .to_owned();
        let port = uri.port_u16().unwrap_or(443);
        let tcp = self.connect(&host, port).await?;
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| Failure::Unreachable(format!("'{host}' is not a DNS name or IP address")))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(server_name, tcp)
            .await
            .map_err(|e| Failure::TlsMa(error_chain(&e)))?;
        let request = build_request(outbound, &uri)?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| broken(&e))?;
        tokio::spawn(conn);
        let response = send.send_request(request).await.map_err(|e| broken(&e))?;
        let (parts, body) = response.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > MAX_BODY as u64) {
            return Err(Failure::TooLarge);
        }
        let body = Limited::new(body, MAX_BODY).collect().await.map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
                Failure::TooLarge
            } else {
                Failure::Broken(error_chain(e.as_ref()))
            }
        })?;
        Ok(Answer {
            status: parts.status.as_u16(),
            headers: end_to_end(&parts.headers),
            body: body.to_bytes(),
        })
    }

    /// A TCP connection to `host:port` from the source address: each address the name
    /// resolves to (of the source address's family) in turn, until one connects.
    async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, Failure> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| Failure::Unreachable(format!("cannot resolve {host}: {e}")))?
            .filter(|a| self.source.is_none_or(|s| s.is_ipv4() == a.is_ipv4()))
            .collect();
        let mut last = Failure::Unreachable(format!("{host} has no address of the source address's family"));
        for addr in addrs {
            match self.connect_to(addr).await {
                Ok(stream) => return Ok(stream),
                Err(failure) => last = failure,
            }
        }
        Err(last)
    }

    async fn connect_to(&self, addr: SocketAddr) -> Result<TcpStream, Failure> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| Failure::Unreachable(format!("cannot open a socket: {e}")))?;
        if let Some(source) = self.source {
            socket.bind(SocketAddr::new(source, 0)).map_err(|e| {
                Failure::Unreachable(format!(
                    "cannot bind the source address {source} (forward.source_address): {e}"
                ))
            })?;
        }
        let stream = socket
            .connect(addr)
            .await
            .map_err(|e| Failure::Unreachable(format!("connecting to {addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

/// The request on the wire: origin-form, with `Host` the receiver's authority.
fn build_request(outbound: Outbound, uri: &http::Uri) -> Result<Request<Full<Bytes>>, Failure> {
    let target = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut request = Request::builder()
        .method(outbound.method)
        .uri(target)
        .body(Full::new(outbound.body))
        .map_err(|e| Failure::Unreachable(format!("cannot build the request: {e}")))?;
    *request.headers_mut() = end_to_end(&outbound.headers);
    let headers = request.headers_mut();
    // The sender's token is for the proxy, never for the receiver.
    headers.remove(header::AUTHORIZATION);
    // The proxy has the whole body already, and reads the answer itself (a compressed 500
    // could not be told from one without an OperationOutcome).
    headers.remove(header::EXPECT);
    headers.remove(header::ACCEPT_ENCODING);
    if let Some(authority) = uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        request.headers_mut().insert(header::HOST, authority);
    }
    Ok(request)
}

/// `headers` without hop-by-hop headers (and those `Connection` names), `Host` and
/// `Content-Length` (both set again for the next hop).
pub(crate) fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n) || n == "host" || n == "content-length" || named.iter().any(|c| c == n) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// A failure after the handshake: the receiver refusing our certificate (TLS 1.3 sends that
/// verdict after the client's handshake is done, so it arrives as an alert on the first
/// read), or the connection breaking off.
fn broken(error: &(dyn std::error::Error + 'static)) -> Failure {
    if has_tls_error(error) {
        Failure::TlsMa(error_chain(error))
    } else {
        Failure::Broken(error_chain(error))
    }
}

/// Whether a TLS protocol error (an alert received, a certificate refused) is among the
/// causes. `io::Error` hides its inner error from `source()`, so it is unwrapped by hand.
fn has_tls_error(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if inner.downcast_ref::<rustls::Error>().is_some() {
                return true;
            }
        }
        current = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_hop_by_hop_and_connection_named_headers() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("host", "proxy.local"),
            ("content-length", "12"),
            ("x-request-id", "abc"),
            ("nhsd-target-identifier", "e30="),
        ] {
            headers.append(
                http::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let kept = end_to_end(&headers);
        let names: Vec<&str> = kept.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-request-id", "nhsd-target-identifier"]);
    }

    #[test]
    fn finds_tls_errors_inside_io_errors() {
        let alert = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA),
        );
        assert!(has_tls_error(&alert));
        assert!(matches!(broken(&alert), Failure::TlsMa(_)));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(matches!(broken(&reset), Failure::Broken(_)));
    }
}
