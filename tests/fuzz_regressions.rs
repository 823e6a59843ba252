//! Inputs the fuzz targets (fuzz/) found, sent to the real server by a real client: each
//! must be refused the way any malformed input is, and the server must go on serving.

use crate::common;

use std::time::Duration;

use bars_receiver::tls::RefusalReason;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Polls `check` for up to 10 s: a refusal is counted as its connection closes.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_v1_proxy_header_with_a_character_split_after_a_cr_is_refused() {
    let server = TestServer::start(ServerOptions {
        sources: Some(vec!["10.9.8.7/32".into()]),
        listen_extra: "trusted_proxies = [\"127.0.0.1/32\"]".into(),
        ..ServerOptions::default()
    })
    .await;
    // The `proxy` target's crash: a CR, then a two-byte character, used to panic the
    // connection task inside the PROXY parser instead of refusing the header.
    let mut tcp = TestClient::tcp(server.addr, None).await.unwrap();
    tcp.write_all(b"PROXY 6\xc4\xbf\r\xc4\xbf\r\n").await.unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("closed by the server");
    assert!(matches!(read, Ok(0) | Err(_)));
    eventually("the PROXY header refusal", || {
        server.stats.refused(RefusalReason::ProxyHeader) == 1
    })
    .await;

    // The same balancer's next, well-formed connection is served.
    let mut tcp = TestClient::tcp(server.addr, None).await.unwrap();
    let header = format!("PROXY TCP4 10.9.8.7 127.0.0.1 5555 {}\r\n", server.addr.port());
    tcp.write_all(header.as_bytes()).await.unwrap();
    let mut tls = server
        .client()
        .tls_over_http1(tcp)
        .await
        .expect("handshake after the header");
    tls.write_all(b"GET /metadata HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}
