//! The client-certificate verifier: webpki chain verification against the CA bundle (the
//! configured SubCAs added to what the client sends, so they are verified as intermediates
//! under the Roots), then the identity pins, inside the handshake, so a refused caller never
//! reaches HTTP.
//! It also notes the presented certificate's subject and issuer on the connection span, so
//! the one line logged for a refused handshake says whose certificate it was.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::certinfo::CertInfo;
use super::identity::ClientNamePins;

tokio::task_local! {
    /// The client certificate presented on this connection, kept so that a refused
    /// handshake can be explained in terms of the certificate (rustls reports only the
    /// category).
    pub(crate) static PRESENTED: std::cell::RefCell<Option<CertInfo>>;
}

/// Wraps the webpki verifier with the configured SubCAs and identity pins.
#[derive(Debug)]
pub(crate) struct AdmissionVerifier {
    /// Trusts the Roots of the bundle only.
    inner: Arc<dyn ClientCertVerifier>,
    /// The SubCAs of the bundle, offered to path building after the client's own chain.
    subcas: Vec<CertificateDer<'static>>,
    pins: ClientNamePins,
}

impl AdmissionVerifier {
    pub(crate) fn new(
        inner: Arc<dyn ClientCertVerifier>,
        subcas: Vec<CertificateDer<'static>>,
        pins: ClientNamePins,
    ) -> Self {
        Self { inner, subcas, pins }
    }
}

impl ClientCertVerifier for AdmissionVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let info = CertInfo::parse(end_entity).ok();
        if let Some(info) = &info {
            let span = tracing::Span::current();
            span.record("client_subject", info.subject.as_str());
            span.record("client_issuer", info.issuer.as_str());
            // Outside a connection task (no scope) there is nobody to tell.
            let _ = PRESENTED.try_with(|slot| *slot.borrow_mut() = Some(info.clone()));
        }
        // The client's chain first (it is usually complete), then the configured SubCAs, so
        // that a client sending only its leaf still chains, and a chain through a SubCA meets
        // its path length and name constraints whether or not the client sent that SubCA.
        let candidates: Vec<CertificateDer<'_>> = intermediates
            .iter()
            .map(|c| CertificateDer::from(c.as_ref()))
            .chain(self.subcas.iter().map(|c| CertificateDer::from(c.as_ref())))
            .collect();
        let verified = self
            .inner
            .verify_client_cert(end_entity, &candidates, now)
            .map_err(chain_fault_as_bad_certificate)?;
        match info {
            Some(info) if self.pins.allows(&info) => Ok(verified),
            Some(_) => Err(Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            )),
            None => Err(Error::InvalidCertificate(CertificateError::BadEncoding)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// webpki refusals that rustls has no variant for arrive as `CertificateError::Other`, which
/// rustls answers with a `certificate_unknown` alert: a chain that breaks a CA's constraints
/// (path length, name constraints), a CA certificate presented as the leaf, a malformed
/// extension, a chain too deep or too costly to build. Each is a fault of the chain the
/// client sent, so it is answered `bad_certificate` (the alert rustls sends for
/// `BadEncoding`) and counted as such; the detail goes to the debug log.
fn chain_fault_as_bad_certificate(err: Error) -> Error {
    match err {
        Error::InvalidCertificate(CertificateError::Other(detail)) => {
            tracing::debug!(error = %detail, "client certificate chain refused");
            Error::InvalidCertificate(CertificateError::BadEncoding)
        }
        other => other,
    }
}
