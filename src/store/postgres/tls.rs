//! TLS to PostgreSQL: rustls on the one crypto provider, the server's certificate verified
//! against `store.ca_file` (and the system roots only when asked) and its name against the
//! URL's host, as libpq's `sslmode=verify-full` does.

use std::path::PathBuf;

use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::StoreError;
use crate::store::settings::PostgresTls;
use crate::tls::{TlsError, client_builder, load_roots};

/// The connector for `tls`, or `None` for plaintext.
pub(super) fn connector(tls: &PostgresTls, database: &str) -> Result<Option<MakeRustlsConnect>, StoreError> {
    let PostgresTls::VerifyFull { ca, use_system_roots } = tls else {
        return Ok(None);
    };
    let fail = |detail: String| StoreError::Tls {
        database: database.to_owned(),
        detail,
    };
    let mut roots = load_roots(ca.iter().map(PathBuf::as_path), |_| Ok(())).map_err(|e| match e {
        TlsError::BadAnchor { path, index, detail } => fail(format!(
            "store.ca_file {}: certificate {index} cannot be a trust anchor: {detail}",
            path.display()
        )),
        other => fail(format!("store.ca_file: {other}")),
    })?;
    if *use_system_roots {
        let found = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(found.certs);
    }
    if roots.is_empty() {
        return Err(fail(
            "no roots to verify the server with: set store.ca_file (or store.use_system_roots = true)".into(),
        ));
    }
    let config = client_builder(roots)
        .map_err(|e| fail(e.to_string()))?
        .with_no_client_auth();
    Ok(Some(MakeRustlsConnect::new(config)))
}
