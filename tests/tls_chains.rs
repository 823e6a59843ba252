//! Client certificate chains end to end, with real clients (rustls, openssl s_client, curl)
//! and the real binary: the SubCAs of `tls.client_ca` are verified as intermediates under the
//! Root, so their basicConstraints bind every chain through them (with and without CRLs,
//! whether or not the client sends the SubCA); a bundle with a SubCA but not its Root stops
//! start-up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;
use crate::tls_admission::{assert_alert, wait_for_count};

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
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
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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

#[test]
fn a_subca_without_its_root_in_the_bundle_stops_start_up_naming_the_file() {
    let pki = TestPki::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let subca_only = d.join("subca-only.pem");
    std::fs::write(&subca_only, &pki.subca.pem).unwrap();
    let config = write_config(d, &pki, &[&subca_only]);
    for command in [&["serve", "--config"][..], &["check", "--config"][..]] {
        let mut child = bin(d)
            .args(command)
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{command:?} is still running: it started with a SubCA and no Root");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(64), "{command:?}: {text}");
        assert!(
            text.contains("subca-only.pem") && text.contains("add the environment's Root CA"),
            "{command:?}: {text}"
        );
    }
}
