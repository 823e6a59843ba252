//! The server's private key may be RSA or ECDSA, in PKCS#1, PKCS#8 or SEC1 PEM: each is
//! generated with `openssl`, certified by the test SubCA, and served to a real TLS client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::pki::{Leaf, TestPki};
use common::*;
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, SanType};

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A server leaf for `key_pem` (any format), signed by the test SubCA.
fn server_leaf(pki: &TestPki, dir: &Path, key_pem: &str) -> Leaf {
    std::fs::write(dir.join("in.key"), key_pem).unwrap();
    let pkcs8 = openssl(dir, &["pkcs8", "-topk8", "-nocrypt", "-in", "in.key"]);
    let key = KeyPair::from_pem(&pkcs8).unwrap();
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "BaRS-INT-X26.test.thirdparty.nhs.uk");
    params.subject_alt_names = vec![SanType::DnsName("localhost".try_into().unwrap())];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &pki.subca.issuer).unwrap();
    Leaf {
        pem: cert.pem(),
        key_pem: key_pem.to_owned(),
        chain: vec![cert.der().clone()],
    }
}

#[tokio::test]
async fn serves_with_rsa_and_ecdsa_keys_in_every_pem_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let rsa_pkcs1 = openssl(d, &["genrsa", "-traditional", "2048"]);
    assert!(rsa_pkcs1.contains("BEGIN RSA PRIVATE KEY"));
    std::fs::write(d.join("rsa.key"), &rsa_pkcs1).unwrap();
    let rsa_pkcs8 = openssl(d, &["pkcs8", "-topk8", "-nocrypt", "-in", "rsa.key"]);
    let ec_sec1 = openssl(d, &["ecparam", "-name", "prime256v1", "-genkey", "-noout"]);
    assert!(ec_sec1.contains("BEGIN EC PRIVATE KEY"));
    std::fs::write(d.join("ec.key"), &ec_sec1).unwrap();
    let ec_pkcs8 = openssl(d, &["pkcs8", "-topk8", "-nocrypt", "-in", "ec.key"]);

    for (name, key_pem) in [
        ("RSA PKCS#1", rsa_pkcs1),
        ("RSA PKCS#8", rsa_pkcs8),
        ("ECDSA SEC1", ec_sec1),
        ("ECDSA PKCS#8", ec_pkcs8),
    ] {
        let mut pki = TestPki::new();
        pki.server = server_leaf(&pki, d, &key_pem);
        let server = TestServer::start_with_pki(
            Arc::new(pki),
            ServerOptions::default(),
            bars_receiver::default_handlers,
        )
        .await;
        match server.client().handshake(server.addr, None).await {
            Handshake::Admitted(200) => {}
            other => panic!("{name}: {other:?}"),
        }
    }
}
