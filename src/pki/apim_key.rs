//! The API-M signing key pair (`bars-receiver keygen`): RSA 4096, the private key as PKCS#8
//! PEM (mode 0600), the public key PEM, and the JWKS to register with API-M.

use std::path::{Path, PathBuf};

use rcgen::{KeyPair, PKCS_RSA_SHA256, RsaKeySize};
use serde_json::Value;

use super::{PkiError, write_file};
use crate::secret::Secret;
use crate::sender::SigningKey;

/// A generated API-M key pair.
#[derive(Debug, Clone)]
pub struct ApimKeyPair {
    /// The key id it is to be registered under.
    pub kid: String,
    /// The private key, PKCS#8 PEM.
    pub private_key_pem: Secret<String>,
    /// The public key, SubjectPublicKeyInfo PEM.
    pub public_key_pem: String,
    /// `{"keys": [{"kty": "RSA", "n", "e", "alg": "RS512", "use": "sig", "kid"}]}`.
    pub jwks: Value,
}

/// The files [`ApimKeyPair::write`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApimKeyFiles {
    /// `<kid>.pem`: the private key (0600).
    pub private_key: PathBuf,
    /// `<kid>.pem.pub`: the public key.
    pub public_key: PathBuf,
    /// `<kid>.jwks.json`: the JWKS.
    pub jwks: PathBuf,
}

impl ApimKeyPair {
    /// Generates an RSA 4096 key pair for `kid`.
    pub fn generate(kid: &str) -> Result<Self, PkiError> {
        let err = |source| PkiError::Generate {
            what: "API-M signing key",
            source,
        };
        let key = KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096).map_err(err)?;
        let private_key_pem = Secret::new(key.serialize_pem());
        let signing = SigningKey::from_pem(
            private_key_pem.expose().as_bytes(),
            kid,
            Path::new("generated key"),
        )
        .map_err(|e| PkiError::Invalid {
            what: "--kid",
            message: e.to_string(),
        })?;
        Ok(Self {
            kid: kid.to_owned(),
            public_key_pem: key.public_key_pem(),
            jwks: signing.jwks(),
            private_key_pem,
        })
    }

    /// Writes `<kid>.pem` (0600), `<kid>.pem.pub` and `<kid>.jwks.json` into `dir` (created
    /// 0700 if missing). Refuses to replace existing files unless `force`.
    pub fn write(&self, dir: &Path, force: bool) -> Result<ApimKeyFiles, PkiError> {
        let files = ApimKeyFiles {
            private_key: dir.join(format!("{}.pem", self.kid)),
            public_key: dir.join(format!("{}.pem.pub", self.kid)),
            jwks: dir.join(format!("{}.jwks.json", self.kid)),
        };
        let all = [&files.private_key, &files.public_key, &files.jwks];
        if !force {
            if let Some(existing) = all.iter().find(|p| p.exists()) {
                return Err(PkiError::Exists {
                    path: (*existing).clone(),
                });
            }
        }
        super::create_dir(dir)?;
        write_file(&files.private_key, self.private_key_pem.expose().as_bytes(), true)?;
        write_file(&files.public_key, self.public_key_pem.as_bytes(), false)?;
        let jwks = format!("{:#}\n", self.jwks);
        write_file(&files.jwks, jwks.as_bytes(), false)?;
        Ok(files)
    }
}
