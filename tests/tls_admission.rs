//! Admission end to end: the source-IP allowlist and the mutual-TLS handshake, exercised with
//! real TLS clients (rustls, curl, openssl s_client) against the real server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::net::IpAddr;
use std::time::Duration;

use bars_receiver::tls::RefusalReason;
use common::pki::{LeafSpec, foreign_client};
use common::*;
use rcgen::ExtendedKeyUsagePurpose;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[track_caller]
pub(crate) fn assert_alert(outcome: &Handshake, alert: &str) {
    match outcome {
        Handshake::Alert(a) if a == alert => {}
        other => panic!("expected alert {alert}, got {other:?}"),
    }
}

pub(crate) async fn wait_for_count(server: &TestServer, reason: RefusalReason, n: u64) {
    for _ in 0..100 {
        if server.stats.refused(reason) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{reason} count stayed at {}", server.stats.refused(reason));
}

#[tokio::test]
async fn admits_the_proxy_shaped_client_over_tls13_and_tls12() {
    let server = TestServer::start(ServerOptions::default()).await;
    assert!(matches!(
        server.client().handshake(server.addr, None).await,
        Handshake::Admitted(200)
    ));
    let tls12 = TestClient::with_versions(
        &server.pki,
        Some(&server.pki.client),
        &[&rustls::version::TLS12],
        &["http/1.1"],
    );
    assert!(matches!(
        tls12.handshake(server.addr, None).await,
        Handshake::Admitted(200)
    ));
    assert_eq!(server.stats.admitted(), 2);
}

#[tokio::test]
async fn negotiates_h2_and_http1_by_alpn() {
    let server = TestServer::start(ServerOptions::default()).await;
    for (alpn, expected) in [
        (&["h2", "http/1.1"][..], &b"h2"[..]),
        (&["http/1.1"][..], &b"http/1.1"[..]),
    ] {
        let client = TestClient::with_versions(
            &server.pki,
            Some(&server.pki.client),
            &[&rustls::version::TLS13],
            alpn,
        );
        let tls = client.tls(server.addr, None).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(expected));
        let reply = client.send(server.addr, Bars::default().get("/metadata")).await;
        assert_eq!(reply.status, 200);
    }
}

#[tokio::test]
async fn admits_a_client_that_sends_only_its_leaf() {
    let server = TestServer::start(ServerOptions::default()).await;
    let leaf_only = server.pki.client.leaf_only();
    assert!(matches!(
        server
            .client_with(Some(&leaf_only))
            .handshake(server.addr, None)
            .await,
        Handshake::Admitted(200)
    ));
}

#[tokio::test]
async fn rejects_client_without_certificate() {
    let server = TestServer::start(ServerOptions::default()).await;
    assert_alert(
        &server.client_with(None).handshake(server.addr, None).await,
        "CertificateRequired",
    );
    wait_for_count(&server, RefusalReason::NoClientCertificate, 1).await;
}

#[tokio::test]
async fn rejects_client_from_foreign_ca() {
    let server = TestServer::start(ServerOptions::default()).await;
    assert_alert(
        &server
            .client_with(Some(&foreign_client()))
            .handshake(server.addr, None)
            .await,
        "UnknownCA",
    );
    wait_for_count(&server, RefusalReason::UnknownCa, 1).await;
}

#[tokio::test]
async fn rejects_expired_and_not_yet_valid_clients() {
    let server = TestServer::start(ServerOptions::default()).await;
    let now = OffsetDateTime::now_utc();
    let expired = server.pki.client_leaf(LeafSpec {
        not_before: Some(now - time::Duration::days(30)),
        not_after: Some(now - time::Duration::days(1)),
        ..LeafSpec::default()
    });
    assert_alert(
        &server
            .client_with(Some(&expired))
            .handshake(server.addr, None)
            .await,
        "CertificateExpired",
    );
    wait_for_count(&server, RefusalReason::Expired, 1).await;

    let future = server.pki.client_leaf(LeafSpec {
        not_before: Some(now + time::Duration::days(1)),
        not_after: Some(now + time::Duration::days(30)),
        ..LeafSpec::default()
    });
    assert_alert(
        &server
            .client_with(Some(&future))
            .handshake(server.addr, None)
            .await,
        "CertificateExpired",
    );
    wait_for_count(&server, RefusalReason::NotYetValid, 1).await;
}

#[tokio::test]
async fn rejects_client_certificate_without_client_auth_usage() {
    let server = TestServer::start(ServerOptions::default()).await;
    let server_only = server.pki.client_leaf(LeafSpec {
        eku: Some(vec![ExtendedKeyUsagePurpose::ServerAuth]),
        ..LeafSpec::default()
    });
    assert_alert(
        &server
            .client_with(Some(&server_only))
            .handshake(server.addr, None)
            .await,
        "UnsupportedCertificate",
    );
    wait_for_count(&server, RefusalReason::WrongKeyUsage, 1).await;
}

#[tokio::test]
async fn identity_pins_match_the_cn_only_when_there_is_no_dns_san() {
    let server = TestServer::start(ServerOptions {
        allowed_client_names: vec![
            "int.api.service.nhs.uk".into(),
            "*.int.api.platform.nhs.uk".into(),
        ],
        ..ServerOptions::default()
    })
    .await;
    // The proxy-shaped client: CN only, no SAN.
    assert!(matches!(
        server.client().handshake(server.addr, None).await,
        Handshake::Admitted(200)
    ));
    // A DNS SAN matching the wildcard (which covers exactly one label).
    let g2 = server.pki.client_leaf(LeafSpec {
        cn: Some("bars.dev.api.platform.nhs.uk".into()),
        dns: vec!["bars.int.api.platform.nhs.uk".into()],
        ..LeafSpec::default()
    });
    assert!(matches!(
        server.client_with(Some(&g2)).handshake(server.addr, None).await,
        Handshake::Admitted(200)
    ));
    // Two labels under the wildcard's suffix do not match it.
    let deeper = server.pki.client_leaf(LeafSpec {
        cn: Some("x".into()),
        dns: vec!["a.bars.int.api.platform.nhs.uk".into()],
        ..LeafSpec::default()
    });
    assert_alert(
        &server
            .client_with(Some(&deeper))
            .handshake(server.addr, None)
            .await,
        "AccessDenied",
    );
    // Same chain, a name not pinned.
    let other = server.pki.client_leaf(LeafSpec {
        cn: Some("someone.else.nhs.uk".into()),
        ..LeafSpec::default()
    });
    assert_alert(
        &server
            .client_with(Some(&other))
            .handshake(server.addr, None)
            .await,
        "AccessDenied",
    );
    wait_for_count(&server, RefusalReason::IdentityNotAllowed, 2).await;
    // A pinned CN does not help a certificate whose DNS SANs are all unpinned.
    let san_wins = server.pki.client_leaf(LeafSpec {
        cn: Some("int.api.service.nhs.uk".into()),
        dns: vec!["elsewhere.example.nhs.uk".into()],
        ..LeafSpec::default()
    });
    assert_alert(
        &server
            .client_with(Some(&san_wins))
            .handshake(server.addr, None)
            .await,
        "AccessDenied",
    );
    wait_for_count(&server, RefusalReason::IdentityNotAllowed, 3).await;
}

#[tokio::test]
async fn allowlist_admits_127_0_0_2_and_refuses_127_0_0_3_before_tls() {
    let server = TestServer::start(ServerOptions {
        sources: Some(vec!["127.0.0.2/32".into()]),
        ..ServerOptions::default()
    })
    .await;
    assert!(matches!(
        server.client().handshake(server.addr, ip("127.0.0.2")).await,
        Handshake::Admitted(200)
    ));
    match server.client().handshake(server.addr, ip("127.0.0.3")).await {
        Handshake::Closed(_) => {}
        other => panic!("127.0.0.3 must be dropped before any TLS: {other:?}"),
    }
    wait_for_count(&server, RefusalReason::SourceNotAllowed, 1).await;
    // Refused before TLS: no handshake was attempted for it.
    assert_eq!(server.stats.admitted(), 1);
    // 127.0.0.1 is not on the list either.
    assert!(matches!(
        server.client().handshake(server.addr, ip("127.0.0.1")).await,
        Handshake::Closed(_)
    ));
}

#[tokio::test]
async fn plain_http_to_the_tls_port_gets_a_plain_refusal() {
    let server = TestServer::start(ServerOptions::default()).await;
    let mut tcp = TestClient::tcp(server.addr, None).await.unwrap();
    tcp.write_all(b"GET /metadata HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("requires TLS"), "{answer}");
    wait_for_count(&server, RefusalReason::NotTls, 1).await;
}

/// A TLS 1.1 ClientHello (no supported_versions extension), written by hand so the test does
/// not depend on what the local TLS library is still willing to send. It offers modern
/// cipher suites and signature algorithms, so that only its version can be refused.
fn tls11_client_hello() -> Vec<u8> {
    let mut body = vec![0x03, 0x02];
    body.extend_from_slice(&[7u8; 32]);
    body.push(0);
    body.extend_from_slice(&[0x00, 0x04, 0xc0, 0x2b, 0xc0, 0x2f]);
    body.extend_from_slice(&[0x01, 0x00]);
    let extensions: &[u8] = &[
        0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01, // signature_algorithms
        0x00, 0x0a, 0x00, 0x06, 0x00, 0x04, 0x00, 0x1d, 0x00, 0x17, // supported_groups
        0x00, 0x0b, 0x00, 0x02, 0x01, 0x00, // ec_point_formats
    ];
    body.extend_from_slice(&[0x00, extensions.len() as u8]);
    body.extend_from_slice(extensions);
    let mut handshake = vec![0x01, 0x00, (body.len() >> 8) as u8, body.len() as u8];
    handshake.extend_from_slice(&body);
    let mut record = vec![
        0x16,
        0x03,
        0x01,
        (handshake.len() >> 8) as u8,
        handshake.len() as u8,
    ];
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn refuses_a_tls_1_1_client_hello_with_protocol_version_alert() {
    let server = TestServer::start(ServerOptions::default()).await;
    let mut tcp = TestClient::tcp(server.addr, None).await.unwrap();
    tcp.write_all(&tls11_client_hello()).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut reply)).await;
    assert!(reply.len() >= 7, "{reply:?}");
    assert_eq!(reply[0], 0x15, "an alert record");
    assert_eq!(reply[5], 2, "fatal");
    assert_eq!(reply[6], 70, "protocol_version");
    wait_for_count(&server, RefusalReason::ProtocolVersion, 1).await;
}

#[tokio::test]
async fn openssl_s_client_cannot_negotiate_tls_1_1() {
    let server = TestServer::start(ServerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("client.pem");
    let key = dir.path().join("client.key");
    std::fs::write(&cert, &server.pki.client.pem).unwrap();
    std::fs::write(&key, &server.pki.client.key_pem).unwrap();
    let out = tokio::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &server.addr.to_string(),
            "-tls1_1",
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
        ])
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("openssl must be installed (.ci/run installs it)");
    let text = crate::common::output_text(&out);
    assert!(!out.status.success(), "{text}");
    // A TLS 1.1 client offers only pre-1.2 cipher suites, so the refusal comes as a
    // handshake_failure before the version check; either way no session is set up.
    assert!(
        text.contains("alert handshake failure") || text.contains("alert protocol version"),
        "{text}"
    );
    assert!(text.contains("Cipher is (NONE)"), "{text}");
    wait_for_count(&server, RefusalReason::ProtocolVersion, 1).await;
}

#[tokio::test]
async fn frees_a_client_that_never_handshakes_at_the_timeout() {
    let server = TestServer::start(ServerOptions {
        handshake_timeout: "1s",
        ..ServerOptions::default()
    })
    .await;
    let mut tcp = TestClient::tcp(server.addr, None).await.unwrap();
    let started = std::time::Instant::now();
    // Send nothing: the server must close the connection by itself.
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .expect("server closed it");
    assert!(matches!(read, Ok(0) | Err(_)));
    assert!(started.elapsed() >= Duration::from_millis(900));
    wait_for_count(&server, RefusalReason::HandshakeTimeout, 1).await;
    assert_eq!(server.stats.active(), 0);
}

#[tokio::test]
async fn waits_rather_than_refuses_past_the_connection_cap() {
    let server = TestServer::start(ServerOptions {
        max_connections: 1,
        ..ServerOptions::default()
    })
    .await;
    let client = server.client();
    let first = client.tls(server.addr, None).await.expect("first connection");
    // The second is not refused; it waits in the accept queue until the first slot frees.
    let waiting = tokio::time::timeout(Duration::from_millis(700), client.tls(server.addr, None)).await;
    assert!(
        waiting.is_err(),
        "second connection should wait while the cap is reached"
    );
    drop(first);
    let second = tokio::time::timeout(Duration::from_secs(5), client.tls(server.addr, None)).await;
    assert!(
        matches!(second, Ok(Ok(_))),
        "second connection proceeds once the first closes"
    );
    assert_eq!(server.stats.refused(RefusalReason::SourceNotAllowed), 0);
}

#[tokio::test]
async fn keeps_serving_after_every_kind_of_refused_connection() {
    let server = TestServer::start(ServerOptions {
        sources: Some(vec!["127.0.0.1/32".into(), "127.0.0.2/32".into()]),
        handshake_timeout: "1s",
        ..ServerOptions::default()
    })
    .await;
    let _ = server.client_with(None).handshake(server.addr, None).await;
    let _ = server
        .client_with(Some(&foreign_client()))
        .handshake(server.addr, None)
        .await;
    let _ = server.client().handshake(server.addr, ip("127.0.0.3")).await;
    let mut silent = TestClient::tcp(server.addr, None).await.unwrap();
    let mut garbage = TestClient::tcp(server.addr, None).await.unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3])
        .await
        .unwrap();
    drop(garbage);
    let mut buf = [0u8; 1];
    let _ = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    let reply = server
        .client()
        .send(
            server.addr,
            Bars::default().message(minimal_message().to_string()),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(server.inbox_count(), 1);
}

fn write_client_files(server: &TestServer, dir: &std::path::Path) -> (String, String, String) {
    let cert = dir.join("client.pem");
    let key = dir.join("client.key");
    let ca = dir.join("ca.pem");
    std::fs::write(
        &cert,
        format!("{}{}", server.pki.client.pem, server.pki.subca.pem),
    )
    .unwrap();
    std::fs::write(&key, &server.pki.client.key_pem).unwrap();
    std::fs::write(&ca, &server.pki.root.pem).unwrap();
    (
        cert.display().to_string(),
        key.display().to_string(),
        ca.display().to_string(),
    )
}

async fn curl(args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .await
        .expect("curl must be installed (.ci/run installs it)");
    (out.status.success(), crate::common::output_text(&out))
}

#[tokio::test]
async fn curl_from_an_allowed_address_posts_a_message_and_from_another_is_dropped() {
    let server = TestServer::start(ServerOptions {
        sources: Some(vec!["127.0.0.2/32".into()]),
        ..ServerOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = write_client_files(&server, dir.path());
    let body = dir.path().join("message.json");
    std::fs::write(&body, minimal_message().to_string()).unwrap();
    let bars = Bars::default();
    let url = format!("https://localhost:{}/$process-message", server.addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", server.addr.port());
    let target = format!(
        "NHSD-Target-Identifier: {}",
        bars_receiver::fhir::encode_header_json(&bars.target)
    );
    let rid = format!("X-Request-Id: {}", bars.request_id);
    let cid = format!("X-Correlation-Id: {}", bars.correlation_id);
    let data = format!("@{}", body.display());
    let common = [
        "--cacert",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
        "--resolve",
        &resolve,
        "-H",
        "Content-Type: application/fhir+json",
        "-H",
        &rid,
        "-H",
        &cid,
        "-H",
        &target,
        "--data-binary",
        &data,
        "-w",
        "\n%{http_code} %{http_version}",
    ];
    let mut allowed: Vec<&str> = vec!["--interface", "127.0.0.2"];
    allowed.extend_from_slice(&common);
    allowed.push(&url);
    let (ok, text) = curl(&allowed).await;
    assert!(ok, "{text}");
    assert!(text.trim_end().ends_with("200 2"), "{text}");
    assert_eq!(server.inbox_count(), 1);

    let mut refused: Vec<&str> = vec!["--interface", "127.0.0.3"];
    refused.extend_from_slice(&common);
    refused.push(&url);
    let (ok, text) = curl(&refused).await;
    assert!(!ok, "{text}");
    wait_for_count(&server, RefusalReason::SourceNotAllowed, 1).await;
    assert_eq!(server.inbox_count(), 1);
}

#[tokio::test]
async fn curl_without_a_client_certificate_is_refused_in_the_handshake() {
    let server = TestServer::start(ServerOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let (_, _, ca) = write_client_files(&server, dir.path());
    let resolve = format!("localhost:{}:127.0.0.1", server.addr.port());
    let url = format!("https://localhost:{}/metadata", server.addr.port());
    let (ok, text) = curl(&["--cacert", &ca, "--resolve", &resolve, &url]).await;
    assert!(!ok, "{text}");
    wait_for_count(&server, RefusalReason::NoClientCertificate, 1).await;
}
