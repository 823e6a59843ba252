//! Operations end to end: the admin endpoints (health, readiness, metrics) read with curl;
//! certificate rotation by reload under load; broken files on reload; CRLs; the PROXY
//! protocol; the global rate limit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bars_receiver::{
    FhirResponse, HandlerResult, Handlers, MessageBundle, MessagingHandler, RequestContext,
    tls::RefusalReason,
};
use common::pki::{LeafSpec, crl, server_leaf};
use common::*;
use rustls::pki_types::pem::PemObject;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn curl(url: &str) -> (String, String) {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-w", "\n%{http_code}", url])
        .output()
        .await
        .expect("curl must be installed (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (code.to_owned(), body.to_owned())
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Replaces a file the way an operator or Kubernetes would: write aside, then rename.
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[tokio::test]
async fn admin_endpoints_report_health_readiness_and_metrics() {
    let server = TestServer::start(ServerOptions {
        admin: true,
        ..ServerOptions::default()
    })
    .await;
    let admin = server.admin.unwrap();
    let (code, body) = curl(&format!("http://{admin}/healthz")).await;
    assert_eq!((code.as_str(), body.trim()), ("200", "ok"));
    let (code, body) = curl(&format!("http://{admin}/readyz")).await;
    assert_eq!(code, "200", "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["checks"]["inbox_writable"], true);

    server.exercise_metric_families().await;

    let (code, metrics) = curl(&format!("http://{admin}/metrics")).await;
    assert_eq!(code, "200");
    for needle in [
        "bars_receiver_connections_refused_total{reason=\"no_client_certificate\"} 1",
        "bars_receiver_requests_total{route=\"process-message\",status=\"200\"} 1",
        "bars_receiver_requests_total{route=\"unmatched\",status=\"404\"} 1",
        "bars_receiver_request_duration_seconds_count{route=\"process-message\"} 1",
        "bars_receiver_handshake_duration_seconds_count",
        "bars_receiver_not_after_timestamp_seconds{kind=\"server\"",
        "bars_receiver_not_after_timestamp_seconds{kind=\"ca\"",
        "bars_receiver_inbox_messages 1",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from:\n{metrics}");
    }
}

struct Slow;
impl MessagingHandler for Slow {
    async fn process_message(&self, _ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        Ok(FhirResponse::ok(message.into_raw()))
    }
}

#[tokio::test]
async fn readiness_fails_while_draining() {
    let mut server = TestServer::start_with(
        ServerOptions {
            admin: true,
            ..ServerOptions::default()
        },
        |_| Handlers::new(Arc::new(Slow)),
    )
    .await;
    let admin = server.admin.unwrap();
    let (addr, client) = (server.addr, server.client());
    let in_flight = tokio::spawn(async move {
        client
            .send(addr, Bars::default().message(minimal_message().to_string()))
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.begin_shutdown();
    wait_for("readiness to fail during the drain", async || {
        curl(&format!("http://{admin}/readyz")).await.0 == "503"
    })
    .await;
    assert_eq!(in_flight.await.unwrap().status, 200);
}

#[tokio::test]
async fn rotates_the_server_certificate_under_load_without_failing_a_request() {
    let server = Arc::new(TestServer::start(ServerOptions::default()).await);
    let client = Arc::new(server.client());
    assert_eq!(
        client.server_cn(server.addr).await,
        "BaRS-INT-X26.test.thirdparty.nhs.uk"
    );

    let failures = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (server, client, failures, done) =
                (server.clone(), client.clone(), failures.clone(), done.clone());
            tokio::spawn(async move {
                for _ in 0..40 {
                    // A new connection each time, so handshakes straddle the swap.
                    let reply = client
                        .send(
                            server.addr,
                            Bars::default().message(minimal_message().to_string()),
                        )
                        .await;
                    if reply.status != 200 {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    wait_for("some load before the rotation", async || {
        done.load(Ordering::Relaxed) >= 40
    })
    .await;
    // A connection opened before the rotation, kept alive across it.
    let mut open = client.h2(server.addr).await;
    let rotated = server_leaf(&server.pki.subca, "BaRS-INT-X26.rotated.thirdparty.nhs.uk");
    replace(&server.files.key, &rotated.key_pem);
    replace(
        &server.files.chain,
        &format!("{}{}", rotated.pem, server.pki.subca.pem),
    );
    server.reloader.reload("test").unwrap();
    let reply = Reply::read(open.send_request(Bars::default().get("/metadata")).await.unwrap()).await;
    assert_eq!(reply.status, 200, "an open connection carries on untouched");
    assert_eq!(
        client.server_cn(server.addr).await,
        "BaRS-INT-X26.rotated.thirdparty.nhs.uk"
    );
    for w in workers {
        w.await.unwrap();
    }
    assert_eq!(done.load(Ordering::Relaxed), 160);
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no request failed across the rotation"
    );
    assert!(
        server
            .stats
            .encode()
            .contains("bars_receiver_reloads_total{result=\"success\"} 1")
    );
}

#[tokio::test]
async fn a_broken_file_on_reload_changes_nothing() {
    let server = TestServer::start(ServerOptions::default()).await;
    let client = server.client();
    let original_key = std::fs::read_to_string(&server.files.key).unwrap();
    let original_chain = std::fs::read_to_string(&server.files.chain).unwrap();
    let other = server_leaf(&server.pki.subca, "BaRS-INT-X26.other.thirdparty.nhs.uk");
    let expired = common::pki::leaf(
        &server.pki.subca,
        LeafSpec {
            cn: Some("BaRS-INT-X26.expired.thirdparty.nhs.uk".into()),
            dns: vec!["localhost".into()],
            eku: Some(vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth]),
            not_before: Some(OffsetDateTime::now_utc() - time::Duration::days(30)),
            not_after: Some(OffsetDateTime::now_utc() - time::Duration::days(1)),
            ..LeafSpec::default()
        },
    );
    let cases: Vec<(&str, String, String, &str)> = vec![
        ("empty key", original_chain.clone(), String::new(), "server.key"),
        (
            "key of another certificate",
            original_chain.clone(),
            other.key_pem.clone(),
            "does not match",
        ),
        (
            "unparsable chain",
            "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n".into(),
            original_key.clone(),
            "server-chain.pem",
        ),
        (
            "expired certificate",
            format!("{}{}", expired.pem, server.pki.subca.pem),
            expired.key_pem.clone(),
            "expired",
        ),
    ];
    for (n, (what, chain, key, needle)) in cases.into_iter().enumerate() {
        std::fs::write(&server.files.chain, chain).unwrap();
        std::fs::write(&server.files.key, key).unwrap();
        let err = server.reloader.reload("test").unwrap_err().to_string();
        assert!(err.contains(needle), "{what}: {err}");
        assert_eq!(
            client.server_cn(server.addr).await,
            "BaRS-INT-X26.test.thirdparty.nhs.uk",
            "{what}: old material still serves"
        );
        let reply = client
            .send(
                server.addr,
                Bars::default().message(minimal_message().to_string()),
            )
            .await;
        assert_eq!(reply.status, 200, "{what}");
        let failures = format!("bars_receiver_reloads_total{{result=\"failure\"}} {}", n + 1);
        assert!(server.stats.encode().contains(&failures), "{what}");
    }
}

#[tokio::test]
async fn watching_files_follows_a_kubernetes_style_symlink_swap() {
    let pki = Arc::new(TestPki::new());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // /etc/certs/server-chain.pem -> ..data/server-chain.pem, ..data -> ..v1
    let v1 = d.join("..v1");
    std::fs::create_dir(&v1).unwrap();
    let files = pki.write_server_files(&v1);
    std::os::unix::fs::symlink("..v1", d.join("..data")).unwrap();
    for name in ["server-chain.pem", "server.key", "root.pem", "subca.pem"] {
        std::os::unix::fs::symlink(format!("..data/{name}"), d.join(name)).unwrap();
    }
    let linked = common::pki::ServerFiles {
        chain: d.join("server-chain.pem"),
        key: d.join("server.key"),
        root: d.join("root.pem"),
        subca: d.join("subca.pem"),
    };
    let _ = files;
    let options = ServerOptions {
        extra_toml: "[reload]\nwatch_interval = \"1s\"\n".into(),
        ..ServerOptions::default()
    };
    let settings = settings_for(&linked, d, &options);
    let store = bars_receiver::Store::open(&settings.inbox.path).unwrap();
    let server =
        bars_receiver::Server::new(&settings, bars_receiver::default_handlers(store.clone()), store).unwrap();
    let stats = server.stats();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(server.serve(listener, std::future::pending()));
    let client = TestClient::new(&pki, Some(&pki.client));
    assert_eq!(
        client.server_cn(addr).await,
        "BaRS-INT-X26.test.thirdparty.nhs.uk"
    );

    let v2 = d.join("..v2");
    std::fs::create_dir(&v2).unwrap();
    let rotated = server_leaf(&pki.subca, "BaRS-INT-X26.v2.thirdparty.nhs.uk");
    std::fs::write(
        v2.join("server-chain.pem"),
        format!("{}{}", rotated.pem, pki.subca.pem),
    )
    .unwrap();
    std::fs::write(v2.join("server.key"), &rotated.key_pem).unwrap();
    std::fs::write(v2.join("root.pem"), &pki.root.pem).unwrap();
    std::fs::write(v2.join("subca.pem"), &pki.subca.pem).unwrap();
    std::os::unix::fs::symlink("..v2", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();

    wait_for("the watcher to pick up the swap", async || {
        client.server_cn(addr).await == "BaRS-INT-X26.v2.thirdparty.nhs.uk"
    })
    .await;
    assert!(
        stats
            .encode()
            .contains("bars_receiver_reloads_total{result=\"success\"} 1")
    );
}

fn crl_options(crl_path: &std::path::Path, extra: &str) -> ServerOptions {
    ServerOptions {
        tls_extra: format!("crl = [\"{}\"]\n{extra}", crl_path.display()),
        ..ServerOptions::default()
    }
}

async fn start_with_crl(
    pki: Arc<TestPki>,
    serials: &[u64],
    extra: &str,
) -> (TestServer, std::path::PathBuf, tempfile::TempDir) {
    let crl_dir = tempfile::tempdir().unwrap();
    let path = crl_dir.path().join("subca.crl.pem");
    let now = OffsetDateTime::now_utc();
    std::fs::write(
        &path,
        crl(
            &pki.subca,
            serials,
            now - time::Duration::hours(1),
            now + time::Duration::days(7),
        ),
    )
    .unwrap();
    let server =
        TestServer::start_with_pki(pki, crl_options(&path, extra), bars_receiver::default_handlers).await;
    (server, path, crl_dir)
}

#[tokio::test]
async fn a_revoked_client_is_refused_and_an_unrevoked_one_admitted() {
    let pki = Arc::new(TestPki::new());
    let revoked = pki.client_leaf(LeafSpec {
        serial: Some(0xbad),
        ..LeafSpec::default()
    });
    let good = pki.client_leaf(LeafSpec {
        serial: Some(0x600d),
        ..LeafSpec::default()
    });
    let (server, _, _dir) = start_with_crl(pki, &[0xbad], "").await;
    match server
        .client_with(Some(&revoked))
        .handshake(server.addr, None)
        .await
    {
        Handshake::Alert(a) => assert_eq!(a, "CertificateRevoked"),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.stats.refused(RefusalReason::Revoked), 1);
    assert!(matches!(
        server.client_with(Some(&good)).handshake(server.addr, None).await,
        Handshake::Admitted(200)
    ));
}

#[tokio::test]
async fn a_crl_rotated_by_reload_takes_effect_without_a_restart() {
    let pki = Arc::new(TestPki::new());
    let client = pki.client_leaf(LeafSpec {
        serial: Some(0x77),
        ..LeafSpec::default()
    });
    let (server, crl_path, _dir) = start_with_crl(pki.clone(), &[], "").await;
    assert!(matches!(
        server
            .client_with(Some(&client))
            .handshake(server.addr, None)
            .await,
        Handshake::Admitted(200)
    ));
    let now = OffsetDateTime::now_utc();
    replace(
        &crl_path,
        &crl(
            &pki.subca,
            &[0x77],
            now - time::Duration::minutes(5),
            now + time::Duration::days(7),
        ),
    );
    server.reloader.reload("test").unwrap();
    assert!(matches!(
        server
            .client_with(Some(&client))
            .handshake(server.addr, None)
            .await,
        Handshake::Alert(_)
    ));
    assert_eq!(server.stats.refused(RefusalReason::Revoked), 1);
}

#[tokio::test]
async fn an_expired_crl_refuses_clients_unless_explicitly_allowed() {
    let pki = Arc::new(TestPki::new());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.crl.pem");
    let now = OffsetDateTime::now_utc();
    std::fs::write(
        &path,
        crl(
            &pki.subca,
            &[],
            now - time::Duration::days(10),
            now - time::Duration::days(1),
        ),
    )
    .unwrap();
    let strict = TestServer::start_with_pki(
        pki.clone(),
        crl_options(&path, ""),
        bars_receiver::default_handlers,
    )
    .await;
    assert!(matches!(
        strict.client().handshake(strict.addr, None).await,
        Handshake::Alert(_)
    ));
    assert_eq!(strict.stats.refused(RefusalReason::RevocationUnknown), 1);
    let lax = TestServer::start_with_pki(
        pki,
        crl_options(&path, "allow_expired_crl_unsafe = true"),
        bars_receiver::default_handlers,
    )
    .await;
    assert!(matches!(
        lax.client().handshake(lax.addr, None).await,
        Handshake::Admitted(200)
    ));
}

#[tokio::test]
async fn unknown_revocation_status_is_refused_unless_explicitly_allowed() {
    // Only the Root's CRL is loaded: nothing says whether the SubCA revoked the client.
    let pki = Arc::new(TestPki::new());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("root.crl.pem");
    let now = OffsetDateTime::now_utc();
    std::fs::write(
        &path,
        crl(
            &pki.root,
            &[],
            now - time::Duration::hours(1),
            now + time::Duration::days(7),
        ),
    )
    .unwrap();
    let strict = TestServer::start_with_pki(
        pki.clone(),
        crl_options(&path, ""),
        bars_receiver::default_handlers,
    )
    .await;
    assert!(matches!(
        strict.client().handshake(strict.addr, None).await,
        Handshake::Alert(_)
    ));
    assert_eq!(strict.stats.refused(RefusalReason::RevocationUnknown), 1);
    let lax = TestServer::start_with_pki(
        pki,
        crl_options(&path, "allow_unknown_revocation_status_unsafe = true"),
        bars_receiver::default_handlers,
    )
    .await;
    assert!(matches!(
        lax.client().handshake(lax.addr, None).await,
        Handshake::Admitted(200)
    ));
}

fn proxy_options(sources: &[&str], timeout: &'static str) -> ServerOptions {
    ServerOptions {
        sources: Some(sources.iter().map(|s| (*s).to_owned()).collect()),
        listen_extra: "trusted_proxies = [\"127.0.0.1/32\"]".into(),
        handshake_timeout: timeout,
        ..ServerOptions::default()
    }
}

fn v2_header(client: SocketAddr, server: SocketAddr) -> Vec<u8> {
    ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        (client, server),
    )
    .build()
    .unwrap()
}

/// Sends `header` from 127.0.0.1 (the trusted proxy), then a message over TLS.
async fn via_proxy(server: &TestServer, header: &[u8]) -> Result<Reply, String> {
    let mut tcp = TestClient::tcp(server.addr, None).await.unwrap();
    tcp.write_all(header).await.unwrap();
    let tls = server
        .client()
        .tls_over_http1(tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut request = Bars::default().message(minimal_message().to_string());
    *request.version_mut() = http::Version::HTTP_11;
    let response = send.send_request(request).await.map_err(|e| e.to_string())?;
    Ok(Reply::read(response).await)
}

#[tokio::test]
async fn a_trusted_proxy_speaks_for_its_client_in_v1_and_v2() {
    let server = TestServer::start(proxy_options(&["10.9.8.7/32"], "5s")).await;
    let v1 = format!("PROXY TCP4 10.9.8.7 127.0.0.1 5555 {}\r\n", server.addr.port());
    assert_eq!(via_proxy(&server, v1.as_bytes()).await.unwrap().status, 200);
    let v2 = v2_header("10.9.8.7:6666".parse().unwrap(), server.addr);
    assert_eq!(via_proxy(&server, &v2).await.unwrap().status, 200);
    // The carried address is the one the inbox records.
    let store = bars_receiver::Store::open_read_only(&server.inbox_path).unwrap();
    let list = store.list(10).await.unwrap();
    assert_eq!(list.len(), 2);
    for summary in list {
        let record = store.get(&summary.id).await.unwrap().unwrap();
        assert_eq!(record.message.peer["source_ip"], "10.9.8.7");
    }
}

#[tokio::test]
async fn the_allowlist_applies_to_the_address_a_proxy_carries() {
    let server = TestServer::start(proxy_options(&["10.9.8.7/32"], "5s")).await;
    let header = format!("PROXY TCP4 10.1.1.1 127.0.0.1 5555 {}\r\n", server.addr.port());
    assert!(via_proxy(&server, header.as_bytes()).await.is_err());
    assert_eq!(server.stats.refused(RefusalReason::SourceNotAllowed), 1);
}

#[tokio::test]
async fn a_trusted_proxy_must_send_a_header_in_time() {
    let server = TestServer::start(proxy_options(&["10.9.8.7/32", "127.0.0.1/32"], "1s")).await;
    // TLS straight away, no header.
    assert!(matches!(
        server.client().handshake(server.addr, None).await,
        Handshake::Closed(_) | Handshake::Alert(_)
    ));
    assert_eq!(server.stats.refused(RefusalReason::ProxyHeader), 1);
    // Nothing at all: closed at the handshake timeout.
    let mut silent = TestClient::tcp(server.addr, None).await.unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut buf))
        .await
        .expect("closed by the server");
    assert!(matches!(read, Ok(0) | Err(_)));
    assert_eq!(server.stats.refused(RefusalReason::HandshakeTimeout), 1);
}

#[tokio::test]
async fn a_header_from_an_untrusted_address_closes_the_connection() {
    let server = TestServer::start(proxy_options(&["127.0.0.2/32", "10.9.8.7/32"], "5s")).await;
    // 127.0.0.2 may connect directly, but may not claim another address.
    let mut tcp = TestClient::tcp(server.addr, "127.0.0.2".parse().ok())
        .await
        .unwrap();
    tcp.write_all(format!("PROXY TCP4 10.9.8.7 127.0.0.1 5555 {}\r\n", server.addr.port()).as_bytes())
        .await
        .unwrap();
    let tls = server.client().tls_over(tcp).await;
    let refused = match tls {
        Err(_) => true,
        Ok(mut tls) => {
            let _ = tls.write_all(b"GET /metadata HTTP/1.1\r\nhost: x\r\n\r\n").await;
            let mut buf = Vec::new();
            tls.read_to_end(&mut buf).await.is_err() || buf.is_empty()
        }
    };
    assert!(refused);
    assert_eq!(server.stats.refused(RefusalReason::ProxyHeader), 1);
    // Direct TLS from 127.0.0.2 is fine.
    assert!(matches!(
        server
            .client()
            .handshake(server.addr, "127.0.0.2".parse().ok())
            .await,
        Handshake::Admitted(200)
    ));
}

#[tokio::test]
async fn the_global_rate_limit_answers_429() {
    let server = TestServer::start(ServerOptions {
        http_extra: "rate_limit = 2".into(),
        ..ServerOptions::default()
    })
    .await;
    // One h2 connection, ten concurrent requests: far more than two a second.
    let send = server.client().h2(server.addr).await;
    let replies = futures_join(send, 10).await;
    let limited: Vec<_> = replies.iter().filter(|r| r.status == 429).collect();
    assert!(
        !limited.is_empty(),
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(replies.iter().any(|r| r.status == 200));
    limited[0].assert_outcome(429, "REC_TOO_MANY_REQUESTS", "throttled");
    assert!(server.stats.encode().contains("bars_receiver_rate_limited_total"));
}

async fn futures_join(
    send: hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>>,
    n: usize,
) -> Vec<Reply> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let mut send = send.clone();
            tokio::spawn(async move {
                Reply::read(send.send_request(Bars::default().get("/metadata")).await.unwrap()).await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

#[tokio::test]
async fn reads_der_and_pem_crls_from_several_files() {
    let pki = Arc::new(TestPki::new());
    let dir = tempfile::tempdir().unwrap();
    let now = OffsetDateTime::now_utc();
    let (from, to) = (now - time::Duration::hours(1), now + time::Duration::days(7));
    // The SubCA's CRL as DER, the Root's as PEM: one file per CA.
    let subca_pem = crl(&pki.subca, &[0xdead], from, to);
    let der = rustls::pki_types::CertificateRevocationListDer::from_pem_slice(subca_pem.as_bytes()).unwrap();
    std::fs::write(dir.path().join("subca.crl"), der.as_ref()).unwrap();
    std::fs::write(dir.path().join("root.crl.pem"), crl(&pki.root, &[], from, to)).unwrap();
    let revoked = pki.client_leaf(LeafSpec {
        serial: Some(0xdead),
        ..LeafSpec::default()
    });
    let options = ServerOptions {
        tls_extra: format!(
            "crl = [\"{}\", \"{}\"]",
            dir.path().join("subca.crl").display(),
            dir.path().join("root.crl.pem").display()
        ),
        ..ServerOptions::default()
    };
    let server = TestServer::start_with_pki(pki, options, bars_receiver::default_handlers).await;
    assert!(matches!(
        server.client().handshake(server.addr, None).await,
        Handshake::Admitted(200)
    ));
    assert!(matches!(
        server
            .client_with(Some(&revoked))
            .handshake(server.addr, None)
            .await,
        Handshake::Alert(_)
    ));
    assert_eq!(server.stats.refused(RefusalReason::Revoked), 1);
    let metrics = server.stats.encode();
    assert_eq!(
        metrics
            .matches("not_after_timestamp_seconds{kind=\"crl\"")
            .count(),
        2,
        "{metrics}"
    );
}

#[tokio::test]
async fn a_revocation_reaches_open_connections_at_their_maximum_age() {
    let pki = Arc::new(TestPki::new());
    let client = pki.client_leaf(LeafSpec {
        serial: Some(0x5eed),
        ..LeafSpec::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("subca.crl.pem");
    let now = OffsetDateTime::now_utc();
    std::fs::write(
        &path,
        crl(
            &pki.subca,
            &[],
            now - time::Duration::hours(1),
            now + time::Duration::days(7),
        ),
    )
    .unwrap();
    let options = ServerOptions {
        listen_extra: "max_connection_age = \"2s\"".into(),
        ..crl_options(&path, "")
    };
    let server = TestServer::start_with_pki(pki.clone(), options, bars_receiver::default_handlers).await;
    let caller = server.client_with(Some(&client));
    let mut open = caller.h2(server.addr).await;
    let reply = Reply::read(open.send_request(Bars::default().get("/metadata")).await.unwrap()).await;
    assert_eq!(reply.status, 200);

    // Revoked while its connection is open.
    replace(
        &path,
        &crl(
            &pki.subca,
            &[0x5eed],
            now - time::Duration::minutes(5),
            now + time::Duration::days(7),
        ),
    );
    server.reloader.reload("test").unwrap();
    // At its maximum age the connection is closed gracefully; the caller must come back
    // through the handshake, where the revocation applies.
    wait_for("the open connection to be closed", async || {
        open.ready().await.is_err() || open.send_request(Bars::default().get("/metadata")).await.is_err()
    })
    .await;
    assert!(matches!(
        caller.handshake(server.addr, None).await,
        Handshake::Alert(_)
    ));
    assert_eq!(server.stats.refused(RefusalReason::Revoked), 1);
}
