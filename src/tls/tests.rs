use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use super::*;

struct Files {
    _dir: tempfile::TempDir,
    chain: PathBuf,
    key: PathBuf,
    ca: PathBuf,
    dir: PathBuf,
}

fn ca_and_leaf() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(DnType::CommonName, "Test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let p = |name: &str| dir.path().join(name);
    std::fs::write(p("chain.pem"), format!("{}{}", leaf.pem(), ca_cert.pem())).unwrap();
    std::fs::write(p("key.pem"), leaf_key.serialize_pem()).unwrap();
    std::fs::write(p("ca.pem"), ca_cert.pem()).unwrap();
    Files {
        chain: p("chain.pem"),
        key: p("key.pem"),
        ca: p("ca.pem"),
        dir: dir.path().to_owned(),
        _dir: dir,
    }
}

fn settings(chain: &Path, key: &Path, cas: Vec<PathBuf>) -> TlsSettings {
    TlsSettings::new(chain.to_owned(), key.to_owned(), cas, ClientNamePins::default())
}

#[test]
fn builds_from_a_chain_key_and_ca_bundle() {
    let f = ca_and_leaf();
    let material = build_server_config(&settings(&f.chain, &f.key, vec![f.ca.clone()])).unwrap();
    assert_eq!(material.anchors.len(), 1);
    assert_eq!(
        material.config.alpn_protocols,
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    );
}

#[test]
fn an_empty_pem_file_is_its_own_error_naming_the_file() {
    let f = ca_and_leaf();
    let empty = f.dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let err = build_server_config(&settings(&empty, &f.key, vec![f.ca.clone()])).unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::Empty {
                what: "certificate",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("empty.pem"));
    let err = build_server_config(&settings(&f.chain, &empty, vec![f.ca.clone()])).unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::Empty {
                what: "private key",
                ..
            }
        ),
        "{err}"
    );
    // A certificate where the key should be holds no key either.
    let err = build_server_config(&settings(&f.chain, &f.ca, vec![f.ca.clone()])).unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::Empty {
                what: "private key",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn unreadable_and_malformed_files_name_the_path() {
    let f = ca_and_leaf();
    let missing = f.dir.join("missing.pem");
    let err = build_server_config(&settings(&missing, &f.key, vec![f.ca.clone()])).unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }));
    assert!(err.to_string().contains("missing.pem"));
    let garbage = f.dir.join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = build_server_config(&settings(&garbage, &f.key, vec![f.ca.clone()])).unwrap_err();
    assert!(matches!(err, TlsError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("garbage.pem"));
}

#[test]
fn refuses_a_key_that_does_not_match_the_certificate() {
    let f = ca_and_leaf();
    let other = f.dir.join("other.key");
    std::fs::write(&other, KeyPair::generate().unwrap().serialize_pem()).unwrap();
    let err = build_server_config(&settings(&f.chain, &other, vec![f.ca.clone()])).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
    assert!(err.to_string().contains("other.key"));
}

#[test]
fn refuses_to_run_without_a_client_ca_bundle_or_with_a_leaf_in_it() {
    let f = ca_and_leaf();
    let err = build_server_config(&settings(&f.chain, &f.key, Vec::new())).unwrap_err();
    assert!(matches!(err, TlsError::NoClientCa), "{err}");
    let err = build_server_config(&settings(&f.chain, &f.key, vec![f.chain.clone()])).unwrap_err();
    assert!(matches!(err, TlsError::BadAnchor { index: 1, .. }), "{err}");
    assert!(err.to_string().contains("not a CA"));
}
