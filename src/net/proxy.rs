//! PROXY protocol v1 and v2 (parsed by the `ppp` crate), accepted only from trusted load
//! balancers. The header is consumed exactly, so the TLS bytes that follow are untouched.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use ppp::{v1, v2};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::allowlist::canonical;

/// The v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 prefix.
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// A v1 header is at most 107 bytes, CRLF included.
const V1_MAX: usize = 107;
/// Largest v2 header accepted (addresses plus a few TLVs).
const V2_MAX_PAYLOAD: usize = 2048;

/// Who may send a PROXY header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyPolicy {
    trusted: Vec<IpNet>,
}

impl ProxyPolicy {
    /// PROXY headers accepted (and required) from these networks; empty turns it off.
    pub fn new(trusted: Vec<IpNet>) -> Self {
        Self { trusted }
    }

    /// Whether the PROXY protocol is on.
    pub fn enabled(&self) -> bool {
        !self.trusted.is_empty()
    }

    /// Whether connections from `ip` must start with a PROXY header.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted.iter().any(|net| net.contains(&ip))
    }

    /// The trusted networks.
    pub fn trusted(&self) -> &[IpNet] {
        &self.trusted
    }
}

/// Why a PROXY header was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    #[error("the connection closed before a complete PROXY header")]
    Io(#[from] std::io::Error),
    #[error("no PROXY header from a trusted proxy")]
    Missing,
    #[error("malformed PROXY header: {0}")]
    Malformed(String),
}

/// Reads one PROXY header (v1 or v2). `Some(source)` for a proxied TCP connection; `None`
/// for a v2 LOCAL command or v1 UNKNOWN (the proxy's own health checks), where the
/// connection's own address applies.
/// Generic over the reader so the fuzz targets can feed it bytes; the server passes its
/// `TcpStream`.
pub(crate) async fn read_header<R: AsyncRead + Unpin>(
    stream: &mut R,
) -> Result<Option<SocketAddr>, ProxyError> {
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await?;
    if &head == V2_SIGNATURE {
        let mut fixed = [0u8; 4];
        stream.read_exact(&mut fixed).await?;
        let len = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
        if len > V2_MAX_PAYLOAD {
            return Err(ProxyError::Malformed(format!("v2 payload of {len} bytes")));
        }
        let mut header = Vec::with_capacity(16 + len);
        header.extend_from_slice(&head);
        header.extend_from_slice(&fixed);
        header.resize(16 + len, 0);
        stream.read_exact(&mut header[16..]).await?;
        let parsed =
            v2::Header::try_from(header.as_slice()).map_err(|e| ProxyError::Malformed(format!("{e:?}")))?;
        return Ok(match (parsed.command, parsed.addresses) {
            (v2::Command::Local, _) => None,
            (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
            }
            (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
            }
            (v2::Command::Proxy, other) => {
                return Err(ProxyError::Malformed(format!(
                    "unsupported v2 address family {other:?}"
                )));
            }
        });
    }
    if !head.starts_with(V1_PREFIX) {
        return Err(ProxyError::Missing);
    }
    // v1 ends at CRLF; read byte by byte so that nothing after it is consumed.
    let mut line = head.to_vec();
    while !line.ends_with(b"\r\n") {
        if line.len() >= V1_MAX {
            return Err(ProxyError::Malformed("v1 header longer than 107 bytes".into()));
        }
        line.push(stream.read_u8().await?);
    }
    // The v1 header is US-ASCII (PROXY protocol spec 2.1). Checked here, not left to `ppp`:
    // its parser cuts the text two bytes after the first CR, which panics when that falls
    // inside a multi-byte UTF-8 character (found by the `proxy` fuzz target).
    if !line.is_ascii() {
        return Err(ProxyError::Malformed("v1 header is not ASCII".into()));
    }
    let text =
        std::str::from_utf8(&line).map_err(|_| ProxyError::Malformed("v1 header is not ASCII".into()))?;
    let parsed = v1::Header::try_from(text).map_err(|e| ProxyError::Malformed(format!("{e:?}")))?;
    Ok(match parsed.addresses {
        v1::Addresses::Unknown => None,
        v1::Addresses::Tcp4(a) => Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port)),
        v1::Addresses::Tcp6(a) => Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port)),
    })
}

/// Whether the first bytes of a connection look like the start of a PROXY header.
pub(crate) fn looks_like_proxy_header(first: &[u8]) -> bool {
    !first.is_empty()
        && (V2_SIGNATURE.starts_with(&first[..first.len().min(12)])
            || V1_PREFIX.starts_with(&first[..first.len().min(6)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;

    async fn parse(bytes: Vec<u8>) -> (Result<Option<SocketAddr>, ProxyError>, Vec<u8>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(&bytes).await.unwrap();
            s.write_all(b"REST").await.unwrap();
        });
        let (mut s, _) = listener.accept().await.unwrap();
        let result = read_header(&mut s).await;
        writer.await.unwrap();
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await;
        (result, rest)
    }

    #[tokio::test]
    async fn reads_v1_and_leaves_what_follows() {
        let (r, rest) = parse(b"PROXY TCP4 35.197.254.55 10.0.0.1 51234 8443\r\n".to_vec()).await;
        assert_eq!(r.unwrap(), Some("35.197.254.55:51234".parse().unwrap()));
        assert_eq!(rest, b"REST");
        let (r, _) = parse(b"PROXY UNKNOWN\r\n".to_vec()).await;
        assert_eq!(r.unwrap(), None);
    }

    #[tokio::test]
    async fn reads_v2_and_leaves_what_follows() {
        let header = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            (
                "34.89.0.111:40000".parse::<SocketAddr>().unwrap(),
                "10.0.0.1:8443".parse::<SocketAddr>().unwrap(),
            ),
        )
        .build()
        .unwrap();
        let (r, rest) = parse(header).await;
        assert_eq!(r.unwrap(), Some("34.89.0.111:40000".parse().unwrap()));
        assert_eq!(rest, b"REST");
    }

    #[tokio::test]
    async fn refuses_missing_and_malformed_headers() {
        let (r, _) = parse(vec![0x16, 3, 1, 0, 0x10, 1, 0, 0, 0x0c, 3, 3, 0]).await;
        assert!(matches!(r, Err(ProxyError::Missing)));
        let (r, _) = parse(b"PROXY TCP4 not-an-ip 10.0.0.1 1 2\r\n".to_vec()).await;
        assert!(matches!(r, Err(ProxyError::Malformed(_))));
    }

    #[tokio::test]
    async fn refuses_a_v1_header_with_a_character_split_after_a_cr() {
        // The `proxy` fuzz target's input: a CR inside the line, followed by a two-byte
        // character, used to panic in `ppp`'s v1 parser.
        let (r, _) = parse(b"PROXY 6\xc4\xbf\r\xc4\xbf\r\n".to_vec()).await;
        assert!(matches!(r, Err(ProxyError::Malformed(m)) if m.contains("ASCII")));
        let (r, _) = parse("PROXY TCP4 192.0.2.1 192.0.2.2 1 2 é\r\n".as_bytes().to_vec()).await;
        assert!(matches!(r, Err(ProxyError::Malformed(m)) if m.contains("ASCII")));
    }

    #[test]
    fn recognises_header_prefixes() {
        assert!(looks_like_proxy_header(b"PROX"));
        assert!(looks_like_proxy_header(b"\r\n\r\n"));
        assert!(!looks_like_proxy_header(b"POST /"));
        assert!(!looks_like_proxy_header(&[0x16, 3, 1]));
    }
}
