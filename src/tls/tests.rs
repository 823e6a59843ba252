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
    assert_eq!(material.client_cas.len(), 1);
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

/// A CA certificate (PEM) named `cn`, self-signed or issued by `parent`, and its issuer.
fn ca_cert(
    cn: &str,
    parent: Option<&rcgen::Issuer<'static, KeyPair>>,
) -> (String, rcgen::Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let key = KeyPair::generate().unwrap();
    let cert = match parent {
        Some(issuer) => params.signed_by(&key, issuer),
        None => params.self_signed(&key),
    }
    .unwrap();
    (cert.pem(), rcgen::Issuer::new(params, key))
}

#[test]
fn roots_are_the_anchors_and_subcas_are_kept_as_intermediates() {
    let dir = tempfile::tempdir().unwrap();
    let (root, root_issuer) = ca_cert("Root", None);
    let (subca, _) = ca_cert("SubCA", Some(&root_issuer));
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, format!("{subca}{root}")).unwrap();
    let cas = load_client_cas(&[bundle]).unwrap();
    assert_eq!((cas.root_count(), cas.subca_count()), (1, 1));
    let names: Vec<(&str, bool)> = cas
        .certs()
        .iter()
        .map(|c| (c.common_name.as_deref().unwrap(), c.self_issued))
        .collect();
    assert_eq!(names, [("SubCA", false), ("Root", true)]);
    // The SubCA is named to clients as rustls names an anchor: the DER Name, in its SEQUENCE.
    let mut as_anchor = rustls::RootCertStore::empty();
    as_anchor.add(cas.subcas[0].clone()).unwrap();
    let bytes = |names: &[rustls::DistinguishedName]| -> Vec<Vec<u8>> {
        names.iter().map(|n| n.as_ref().to_vec()).collect()
    };
    assert_eq!(bytes(&cas.subca_subjects), bytes(&as_anchor.subjects()));
}

#[test]
fn a_subca_without_its_root_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (root, root_issuer) = ca_cert("Root", None);
    let (subca, subca_issuer) = ca_cert("SubCA", Some(&root_issuer));
    let (issuing, _) = ca_cert("Issuing CA", Some(&subca_issuer));
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let subca_only = write("subca.pem", &subca);
    let err = load_client_cas(std::slice::from_ref(&subca_only)).unwrap_err();
    assert!(
        matches!(&err, TlsError::SubCaWithoutRoot { path, index: 1, .. } if path == &subca_only),
        "{err}"
    );
    assert!(
        err.to_string().contains("subca.pem") && err.to_string().contains("CN=Root"),
        "{err}"
    );
    // Two levels under a missing Root: the error names the issuer that is missing.
    let two = write("two.pem", &format!("{subca}{issuing}"));
    let err = load_client_cas(&[two]).unwrap_err();
    assert!(err.to_string().contains("'CN=Root'"), "{err}");
    // With the Root, in another file, both levels load.
    let root = write("root.pem", &root);
    let cas = load_client_cas(&[root, write("both.pem", &format!("{issuing}{subca}"))]).unwrap();
    assert_eq!((cas.root_count(), cas.subca_count()), (1, 2));
    // A lone self-signed CA is a Root: a bundle of it alone is fine.
    let (other_root, _) = ca_cert("Other Root", None);
    let cas = load_client_cas(&[write("other.pem", &other_root)]).unwrap();
    assert_eq!((cas.root_count(), cas.subca_count()), (1, 0));
}
