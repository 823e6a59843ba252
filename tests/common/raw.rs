//! Raw HTTP/1.1 over mutual TLS: the exact request bytes written, the response read back as
//! the server sent it, and whether (and how soon) the server closes the connection.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{TestClient, TestServer};

pub type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// A client with the good certificate that offers only HTTP/1.1 by ALPN.
pub fn h1_client(server: &TestServer) -> TestClient {
    TestClient::with_versions(
        &server.pki,
        Some(&server.pki.client),
        &[&rustls::version::TLS13, &rustls::version::TLS12],
        &["http/1.1"],
    )
}

/// A client with the good certificate that offers only h2 by ALPN.
pub fn h2_client(server: &TestServer) -> TestClient {
    TestClient::with_versions(
        &server.pki,
        Some(&server.pki.client),
        &[&rustls::version::TLS13, &rustls::version::TLS12],
        &["h2"],
    )
}

/// A response as read off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The status line and headers, as text.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `REC_` code of a one-issue OperationOutcome.
    pub fn rec_code(&self) -> String {
        let body = self.json();
        assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
        body["issue"][0]["details"]["coding"][0]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Writes `request` as it is and reads one response (within 10 s).
pub async fn exchange(tls: &mut Tls, request: &[u8]) -> RawResponse {
    tls.write_all(request).await.expect("write request");
    tls.flush().await.expect("flush");
    tokio::time::timeout(Duration::from_secs(10), read_response(tls))
        .await
        .expect("a response within 10 s")
        .unwrap_or_else(|| {
            panic!(
                "no response to {:?}",
                String::from_utf8_lossy(&request[..request.len().min(200)])
            )
        })
}

/// Reads one response: its head, then a `Content-Length` body, or everything to the end
/// when it has none. `None` if the connection closed before a whole head arrived.
pub async fn read_response<S: AsyncRead + Unpin>(stream: &mut S) -> Option<RawResponse> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let mut response = RawResponse {
        status,
        head,
        body: buf[head_end..].to_vec(),
    };
    match response
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
    {
        Some(length) => {
            while response.body.len() < length {
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => response.body.extend_from_slice(&chunk[..n]),
                }
            }
        }
        None => {
            let _ = stream.read_to_end(&mut response.body).await;
        }
    }
    Some(response)
}

/// Whether the server closes the connection (end of stream, or an error such as a reset)
/// within `bound`, discarding anything it sends meanwhile.
pub async fn closed_within<S: AsyncRead + Unpin>(stream: &mut S, bound: Duration) -> bool {
    let mut chunk = [0u8; 4096];
    tokio::time::timeout(bound, async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// A `GET /metadata` request with these extra header lines (each ending `\r\n`).
pub fn get_metadata(extra: &str) -> Vec<u8> {
    format!("GET /metadata HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n").into_bytes()
}
