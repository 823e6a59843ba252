//! Client certificate chains end to end, with real clients (rustls, openssl s_client, curl)
//! and the real binary: the SubCAs of `tls.client_ca` are verified as intermediates under the
//! Root, so their basicConstraints bind every chain through them (with and without CRLs,
//! whether or not the client sends the SubCA); a bundle with a SubCA but not its Root stops
//! start-up; a chain too large for a TLS handshake message is refused under its own reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::tls_admission::{assert_alert, wait_for_count};

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bars_receiver::default_handlers;
use bars_receiver::tls::RefusalReason;
use common::pki::{crl, leaf_below_intermediates};
use common::*;
use rcgen::BasicConstraints;
use time::OffsetDateTime;

/// A PKI whose SubCA, like the NHS SubCAs, may issue leaves only (`pathlen:0`).
fn leaves_only_pki() -> Arc<TestPki> {
    Arc::new(TestPki::with_subca(BasicConstraints::Constrained(0)))
}

/// `tls.crl` holding a current, empty CRL of the SubCA.
fn subca_crl_options(pki: &TestPki, dir: &Path) -> ServerOptions {
    let now = OffsetDateTime::now_utc();
    let path = dir.join("subca.crl.pem");
    std::fs::write(
        &path,
        crl(
            &pki.subca,
            &[],
            now - time::Duration::hours(1),
            now + time::Duration::days(1),
        ),
    )
    .unwrap();
    ServerOptions {
        tls_extra: format!("crl = [\"{}\"]", path.display()),
        ..ServerOptions::default()
    }
}

/// Four CAs between the leaf and a `pathlen:0` SubCA: refused as a bad certificate, while
/// the SubCA's own leaves (sent with the SubCA, or alone) get in.
async fn assert_path_length_enforced(server: &TestServer, pki: &TestPki) {
    let (deep, _) = leaf_below_intermediates(&pki.subca, 4);
    assert_alert(
        &server.client_with(Some(&deep)).handshake(server.addr, None).await,
        "BadCertificate",
    );
    wait_for_count(server, RefusalReason::BadCertificate, 1).await;
    assert!(matches!(
        server.client().handshake(server.addr, None).await,
        Handshake::Admitted(200)
    ));
    assert!(matches!(
        server
            .client_with(Some(&pki.client.leaf_only()))
            .handshake(server.addr, None)
            .await,
        Handshake::Admitted(200)
    ));
    assert_eq!(server.stats.admitted(), 2);
    assert_eq!(server.stats.refused(RefusalReason::RevocationUnknown), 0);
    assert_eq!(server.stats.refused(RefusalReason::UnknownCa), 0);
}

#[tokio::test]
async fn refuses_a_chain_longer_than_the_subca_path_length_allows() {
    let pki = leaves_only_pki();
    let server = TestServer::start_with_pki(pki.clone(), ServerOptions::default(), default_handlers).await;
    assert_path_length_enforced(&server, &pki).await;
}

#[tokio::test]
async fn refuses_a_chain_longer_than_the_subca_path_length_allows_with_crls_configured() {
    let pki = leaves_only_pki();
    let dir = tempfile::tempdir().unwrap();
    let server =
        TestServer::start_with_pki(pki.clone(), subca_crl_options(&pki, dir.path()), default_handlers).await;
    assert_path_length_enforced(&server, &pki).await;
}

#[tokio::test]
async fn admits_the_same_deep_chain_under_a_subca_without_a_path_length() {
    // The refusal above is the SubCA's constraint, not the depth of the chain.
    let server = TestServer::start(ServerOptions::default()).await;
    let (deep, _) = leaf_below_intermediates(&server.pki.subca, 4);
    assert!(matches!(
        server.client_with(Some(&deep)).handshake(server.addr, None).await,
        Handshake::Admitted(200)
    ));
}

/// Runs a client to its end, or for at most 20 s (a client the receiver wrongly admits may
/// wait on the open connection).
async fn output(command: &mut tokio::process::Command) -> (bool, String) {
    let run = command.stdin(Stdio::null()).kill_on_drop(true).output();
    let Ok(out) = tokio::time::timeout(Duration::from_secs(20), run).await else {
        return (false, "still running after 20 s".into());
    };
    let out = out.expect("openssl and curl must be installed (.ci/run installs them)");
    let text = crate::common::output_text(&out);
    (out.status.success(), text)
}

#[tokio::test]
async fn openssl_agrees_and_s_client_is_refused_with_bad_certificate() {
    let pki = leaves_only_pki();
    let server = TestServer::start_with_pki(pki.clone(), ServerOptions::default(), default_handlers).await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (deep, above) = leaf_below_intermediates(&pki.subca, 4);
    let write = |name: &str, text: &str| {
        let path = d.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let root = write("root.pem", &pki.root.pem);
    let subca = write("subca.pem", &pki.subca.pem);
    let deep_cert = write("deep.pem", &deep.pem);
    let deep_key = write("deep.key", &deep.key_pem);
    let deep_chain = write("deep-chain.pem", &above);
    let leaf = write("client.pem", &pki.client.pem);
    let leaf_key = write("client.key", &pki.client.key_pem);

    // openssl's own verdict on the same chains, with the Root as the only anchor.
    let (ok, text) = output(tokio::process::Command::new("openssl").args([
        "verify",
        "-CAfile",
        &root,
        "-untrusted",
        &deep_chain,
        &deep_cert,
    ]))
    .await;
    assert!(!ok && text.contains("path length constraint exceeded"), "{text}");
    let (ok, text) = output(tokio::process::Command::new("openssl").args([
        "verify",
        "-CAfile",
        &root,
        "-untrusted",
        &subca,
        &leaf,
    ]))
    .await;
    assert!(ok, "{text}");

    // The receiver refuses the deep chain from s_client with a bad_certificate alert (42),
    // over TLS 1.2 (refused inside the handshake) and TLS 1.3 (after the client's Finished).
    for version in ["-tls1_2", "-tls1_3"] {
        let (_, text) = output(tokio::process::Command::new("openssl").args([
            "s_client",
            "-connect",
            &server.addr.to_string(),
            version,
            "-CAfile",
            &root,
            "-cert",
            &deep_cert,
            "-key",
            &deep_key,
            "-cert_chain",
            &deep_chain,
            // Keep reading after stdin's end: under TLS 1.3 the alert follows the handshake.
            "-ign_eof",
        ]))
        .await;
        assert!(
            text.contains("alert bad certificate") && text.contains("alert number 42"),
            "{version}: {text}"
        );
    }
    wait_for_count(&server, RefusalReason::BadCertificate, 2).await;

    // curl sending the SubCA's leaf alone is admitted: the receiver supplies the SubCA.
    let resolve = format!("localhost:{}:127.0.0.1", server.addr.port());
    let url = format!("https://localhost:{}/metadata", server.addr.port());
    let (ok, text) = output(tokio::process::Command::new("curl").args([
        "-sS",
        "--max-time",
        "10",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--cacert",
        &root,
        "--cert",
        &leaf,
        "--key",
        &leaf_key,
        "--resolve",
        &resolve,
        &url,
    ]))
    .await;
    assert!(ok && text == "200", "{text}");
}

/// The good leaf followed by the SubCA over and over: a Certificate message well over the
/// 64 KiB a TLS handshake message may have here.
fn oversized_chain(pki: &TestPki) -> Leaf {
    let copies = 64 * 1024 / pki.subca.der.len() + 16;
    let mut leaf = pki.client.leaf_only();
    leaf.chain
        .extend(std::iter::repeat_n(pki.subca.der.clone(), copies));
    leaf
}

#[tokio::test]
async fn counts_an_oversized_chain_as_handshake_too_large_over_tls12_and_tls13() {
    let server = TestServer::start(ServerOptions::default()).await;
    let leaf = oversized_chain(&server.pki);
    for (n, version) in [&rustls::version::TLS12, &rustls::version::TLS13]
        .into_iter()
        .enumerate()
    {
        let client = TestClient::with_versions(&server.pki, Some(&leaf), &[version], &["http/1.1"]);
        // An alert or a reset, as the refusal meets the client still writing.
        let outcome = client.handshake(server.addr, None).await;
        assert!(!matches!(outcome, Handshake::Admitted(_)), "{outcome:?}");
        wait_for_count(&server, RefusalReason::HandshakeTooLarge, n as u64 + 1).await;
    }
    assert_eq!(server.stats.refused(RefusalReason::NotTls), 0);
}

/// A receiver configuration for the real binary: `pki`'s server files in `dir`, the CA files
/// `client_ca`, ephemeral ports, JSON logs.
fn write_config(dir: &Path, pki: &TestPki, client_ca: &[&Path]) -> std::path::PathBuf {
    let files = pki.write_server_files(dir);
    let q = |p: &Path| format!("\"{}\"", p.display());
    let cas: Vec<String> = client_ca.iter().map(|p| q(p)).collect();
    let config = dir.join("receiver.toml");
    std::fs::write(
        &config,
        format!(
            "environment = \"dev\"\n\
             [listen]\naddress = \"127.0.0.1:0\"\nshutdown_grace = \"1s\"\n\
             [tls]\ncert_chain = {chain}\nprivate_key = {key}\nclient_ca = [{cas}]\n\
             [inbox]\npath = {inbox}\n\
             [admin]\nenabled = true\naddress = \"127.0.0.1:0\"\n\
             [log]\nformat = \"json\"\n",
            chain = q(&files.chain),
            key = q(&files.key),
            cas = cas.join(", "),
            inbox = q(&dir.join("data/inbox.db")),
        ),
    )
    .unwrap();
    config
}

/// Runs a program to its end, or kills it after 30 s (a receiver that wrongly starts would
/// serve for ever): its exit code (`None` when killed) and its output.
fn run_bounded_status(command: &mut std::process::Command) -> (Option<i32>, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    let text = crate::common::output_text(&out);
    (out.status.code(), text)
}

fn run_bounded(command: &mut std::process::Command) -> String {
    run_bounded_status(command).1
}

#[test]
fn a_subca_without_its_root_in_the_bundle_stops_start_up_naming_the_file() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let subca_only = d.join("subca-only.pem");
    std::fs::write(&subca_only, &pki.subca.pem).unwrap();
    let config = write_config(d, &pki, &[&subca_only]);
    for command in [&["serve", "--config"][..], &["check", "--config"][..]] {
        let (code, text) = run_bounded_status(bin(d).args(command).arg(&config));
        assert_eq!(code, Some(64), "{command:?}: {text}");
        assert!(
            text.contains("subca-only.pem") && text.contains("add the environment's Root CA"),
            "{command:?}: {text}"
        );
    }
}

/// The real binary, serving, with its JSON log lines collected.
struct Serving {
    child: Child,
    tls: SocketAddr,
    admin: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Serving {
    fn start(dir: &Path, config: &Path) -> Self {
        let mut child = bin(dir)
            .args(["serve", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("listening (mutual TLS)") {
                    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                    let addr = |field: &str| -> SocketAddr {
                        let text = v[field].as_str().unwrap();
                        text.trim_start_matches("Some(")
                            .trim_end_matches(')')
                            .parse()
                            .unwrap()
                    };
                    let _ = tx.send((addr("address"), addr("admin")));
                }
                sink.lock().unwrap().push(line);
            }
        });
        let (tls, admin) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the receiver logs where it listens");
        Self {
            child,
            tls,
            admin,
            logs,
        }
    }

    /// The first log line with `needle`, waiting (bounded) for it.
    fn log_line(&self, needle: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self.logs.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return serde_json::from_str(line).unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?}: {:?}",
                self.logs.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn curl_text(args: &[&str]) -> String {
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl must be installed (.ci/run installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn an_oversized_client_chain_is_counted_and_logged_as_handshake_too_large() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let root = d.join("root.pem");
    let subca = d.join("subca.pem");
    std::fs::write(&root, &pki.root.pem).unwrap();
    std::fs::write(&subca, &pki.subca.pem).unwrap();
    let config = write_config(d, &pki, &[&root, &subca]);
    let serving = Serving::start(d, &config);

    // As oversized_chain, for openssl.
    let copies = 64 * 1024 / pki.subca.der.len() + 16;
    let chain = d.join("oversized-chain.pem");
    std::fs::write(&chain, pki.subca.pem.repeat(copies)).unwrap();
    let cert = d.join("client.pem");
    let key = d.join("client.key");
    std::fs::write(&cert, &pki.client.pem).unwrap();
    std::fs::write(&key, &pki.client.key_pem).unwrap();
    assert!(std::fs::metadata(&chain).unwrap().len() > 64 * 1024);
    let mut s_client = std::process::Command::new("openssl");
    s_client
        .args(["s_client", "-connect", &serving.tls.to_string(), "-tls1_3"])
        .arg("-CAfile")
        .arg(&root)
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .arg("-cert_chain")
        .arg(&chain);
    // The refusal closes the connection while the client may still be writing, so what the
    // client sees (an alert or a reset) varies; the receiver's count and log do not.
    let _ = run_bounded(&mut s_client);
    let line = serving.log_line("handshake_too_large");
    assert_eq!(line["reason"], "handshake_too_large", "{line}");
    assert!(
        line["message"].as_str().unwrap().contains("over 64 KiB"),
        "{line}"
    );

    // Plain HTTP to the TLS port is still `not_tls`.
    let plain = curl_text(&[&format!("http://{}/metadata", serving.tls)]);
    assert!(plain.contains("requires TLS"), "{plain}");
    assert_eq!(serving.log_line("\"not_tls\"")["reason"], "not_tls");

    let metrics = curl_text(&[&format!("http://{}/metrics", serving.admin)]);
    for needle in [
        "bars_receiver_connections_refused_total{reason=\"handshake_too_large\"} 1",
        "bars_receiver_connections_refused_total{reason=\"not_tls\"} 1",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from:\n{metrics}");
    }
}
