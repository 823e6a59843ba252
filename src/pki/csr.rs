//! The server certificate request (`bars-receiver csr`): the FQDN by the BaRS naming
//! convention, an RSA 2048 key, and a CSR with CN = FQDN, one DNS SAN = FQDN and no email.

use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, PKCS_RSA_SHA256, RsaKeySize, SanType};

use super::{PkiError, write_file};
use crate::config::Environment;
use crate::secret::Secret;

/// X.509's upper bound on a common name.
const MAX_CN_LEN: usize = 64;

/// Who hosts the receiver, which decides the domain of its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostedBy {
    /// Supplier-hosted (multi-tenant): `<Supplier>.thirdparty.nhs.uk`.
    Supplier(String),
    /// Provider-hosted: `<Provider>.nhs.uk`.
    Provider(String),
}

/// The parts of a BaRS server name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerNameSpec {
    /// INT or PROD.
    pub environment: Environment,
    /// The provider's ODS code.
    pub ods_code: String,
    /// The host.
    pub hosted_by: HostedBy,
}

impl ServerNameSpec {
    /// `BaRS-<ENV>-<ODS>.<Supplier>.thirdparty.nhs.uk` or `BaRS-<ENV>-<ODS>.<Provider>.nhs.uk`,
    /// after checking every part.
    pub fn fqdn(&self) -> Result<String, PkiError> {
        let invalid = |what: &'static str, message: String| PkiError::Invalid { what, message };
        let env = match self.environment {
            Environment::Int => "INT",
            Environment::Prod => "PROD",
            Environment::Dev => {
                return Err(invalid(
                    "--environment",
                    "certificates from the NHS PKI are for int or prod; use dev-pki for development".into(),
                ));
            }
        };
        let ods = self.ods_code.trim();
        if !(3..=10).contains(&ods.len()) || !ods.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(invalid(
                "--ods",
                format!("'{ods}' is not an ODS code (3 to 10 letters and digits)"),
            ));
        }
        let (flag, label, domain) = match &self.hosted_by {
            HostedBy::Supplier(s) => ("--supplier", s.trim(), "thirdparty.nhs.uk"),
            HostedBy::Provider(p) => ("--provider", p.trim(), "nhs.uk"),
        };
        dns_label(label).map_err(|why| invalid(flag, format!("'{label}' {why}")))?;
        if matches!(self.hosted_by, HostedBy::Provider(_)) && label.eq_ignore_ascii_case("thirdparty") {
            return Err(invalid(
                "--provider",
                "'thirdparty' is the supplier domain: use --supplier".into(),
            ));
        }
        let fqdn = format!("BaRS-{env}-{}.{label}.{domain}", ods.to_ascii_uppercase());
        if !fqdn.to_ascii_lowercase().ends_with(".nhs.uk") {
            return Err(invalid("name", format!("{fqdn} is not under nhs.uk")));
        }
        if fqdn.len() > MAX_CN_LEN {
            return Err(invalid(
                flag,
                format!(
                    "{fqdn} is {} characters; a certificate CN holds at most {MAX_CN_LEN}: shorten the {}",
                    fqdn.len(),
                    &flag[2..]
                ),
            ));
        }
        Ok(fqdn)
    }
}

/// A generated key and certificate signing request.
#[derive(Debug, Clone)]
pub struct ServerCsr {
    /// The FQDN: CN and the one DNS SAN.
    pub fqdn: String,
    /// The CSR, PEM.
    pub csr_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: Secret<String>,
}

impl ServerCsr {
    /// Generates an RSA 2048 key and a CSR for `spec`'s name.
    pub fn generate(spec: &ServerNameSpec) -> Result<Self, PkiError> {
        let fqdn = spec.fqdn()?;
        let err = |source| PkiError::Generate {
            what: "certificate signing request",
            source,
        };
        let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).map_err(err)?;
        let mut params = CertificateParams::default();
        // Only the CN: the NHS PKI takes the name from it, and the request carries no email.
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, fqdn.as_str());
        params.subject_alt_names = vec![SanType::DnsName(fqdn.as_str().try_into().map_err(err)?)];
        let csr = params.serialize_request(&key).map_err(err)?;
        Ok(Self {
            csr_pem: csr.pem().map_err(err)?,
            key_pem: Secret::new(key.serialize_pem()),
            fqdn,
        })
    }

    /// Writes `<fqdn>.key` (0600) and `<fqdn>.csr` into `dir`. Refuses to replace existing
    /// files unless `force`.
    pub fn write(&self, dir: &Path, force: bool) -> Result<(PathBuf, PathBuf), PkiError> {
        let key = dir.join(format!("{}.key", self.fqdn));
        let csr = dir.join(format!("{}.csr", self.fqdn));
        if !force {
            if let Some(existing) = [&key, &csr].into_iter().find(|p| p.exists()) {
                return Err(PkiError::Exists {
                    path: existing.clone(),
                });
            }
        }
        super::create_dir(dir)?;
        write_file(&key, self.key_pem.expose().as_bytes(), true)?;
        write_file(&csr, self.csr_pem.as_bytes(), false)?;
        Ok((key, csr))
    }
}

fn dns_label(label: &str) -> Result<(), &'static str> {
    if label.is_empty() {
        return Err("is empty");
    }
    if label.contains('.') {
        return Err("must be one DNS label, without dots");
    }
    if label.len() > 63 {
        return Err("is longer than a DNS label's 63 characters");
    }
    if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err("may only hold letters, digits and '-'");
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("must not start or end with '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::prelude::FromDer;

    fn spec(env: Environment, ods: &str, hosted_by: HostedBy) -> ServerNameSpec {
        ServerNameSpec {
            environment: env,
            ods_code: ods.into(),
            hosted_by,
        }
    }

    #[test]
    fn names_servers_by_the_bars_convention() {
        assert_eq!(
            spec(
                Environment::Int,
                "x26",
                HostedBy::Supplier("examplesupplier".into())
            )
            .fqdn()
            .unwrap(),
            "BaRS-INT-X26.examplesupplier.thirdparty.nhs.uk"
        );
        assert_eq!(
            spec(Environment::Prod, "RXX01", HostedBy::Provider("leedsth".into()))
                .fqdn()
                .unwrap(),
            "BaRS-PROD-RXX01.leedsth.nhs.uk"
        );
    }

    #[test]
    fn refuses_bad_parts_naming_the_flag() {
        let cases = [
            (
                spec(Environment::Dev, "X26", HostedBy::Supplier("s".into())),
                "--environment",
            ),
            (
                spec(Environment::Int, "X", HostedBy::Supplier("s".into())),
                "--ods",
            ),
            (
                spec(Environment::Int, "X2 6", HostedBy::Supplier("s".into())),
                "--ods",
            ),
            (
                spec(Environment::Int, "X26", HostedBy::Supplier("evil.com".into())),
                "--supplier",
            ),
            (
                spec(Environment::Int, "X26", HostedBy::Supplier("-s".into())),
                "--supplier",
            ),
            (
                spec(Environment::Int, "X26", HostedBy::Provider("".into())),
                "--provider",
            ),
            (
                spec(Environment::Int, "X26", HostedBy::Provider("thirdparty".into())),
                "--provider",
            ),
            (
                spec(Environment::Int, "X26", HostedBy::Supplier("a".repeat(40))),
                "--supplier",
            ),
        ];
        for (spec, flag) in cases {
            match spec.fqdn() {
                Err(PkiError::Invalid { what, .. }) => assert_eq!(what, flag, "{spec:?}"),
                other => panic!("{spec:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_csr_carries_the_name_as_cn_and_san_only() {
        let csr = ServerCsr::generate(&spec(
            Environment::Int,
            "X26",
            HostedBy::Supplier("examplesupplier".into()),
        ))
        .unwrap();
        let der = x509_parser::pem::parse_x509_pem(csr.csr_pem.as_bytes())
            .unwrap()
            .1
            .contents;
        let (_, req) = x509_parser::certification_request::X509CertificationRequest::from_der(&der).unwrap();
        let subject = req.certification_request_info.subject.to_string();
        assert_eq!(subject, "CN=BaRS-INT-X26.examplesupplier.thirdparty.nhs.uk");
        assert!(!subject.to_ascii_lowercase().contains("email"));
        assert!(csr.key_pem.expose().contains("BEGIN PRIVATE KEY"));
    }
}
