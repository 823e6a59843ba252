//! The API-M signing key: an RSA private key loaded from PEM (PKCS#8 or PKCS#1), its key id,
//! and the public JWK/JWKS to register. The key bytes never leave this type except into the
//! signer, and nothing here formats them.

use std::path::{Path, PathBuf};

use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::{self, PemObject};
use serde_json::{Value, json};

/// The smallest RSA key accepted for signing. API-M asks for 4096 bits; `check` warns below it.
pub const MIN_RSA_BITS: usize = 2048;

/// The RSA key size API-M asks for.
pub const RECOMMENDED_RSA_BITS: usize = 4096;

/// Why a signing key could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file holds no PEM private key.
    #[error("{path}: contains no private key (is it empty, or the public key?)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file is not a usable RSA private key.
    #[error("{path}: not a usable RSA private key: {detail}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Why (never key material).
        detail: String,
    },
    /// The key is RSA but too short.
    #[error(
        "{path}: RSA key of {bits} bits; at least {MIN_RSA_BITS} are required ({RECOMMENDED_RSA_BITS} recommended)"
    )]
    TooShort {
        /// The file.
        path: PathBuf,
        /// Its size.
        bits: usize,
    },
    /// The key id cannot be sent in a JWT header.
    #[error("key id '{kid}': {detail}")]
    BadKid {
        /// The key id as given.
        kid: String,
        /// Why.
        detail: String,
    },
}

/// An RSA private key with its API-M key id (`kid`).
pub struct SigningKey {
    kid: String,
    /// PKCS#1 `RSAPrivateKey` DER, the form the signer takes.
    encoding: jsonwebtoken::EncodingKey,
    modulus: Vec<u8>,
    exponent: Vec<u8>,
    origin: PathBuf,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("bits", &self.bits())
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Loads a PEM private key file (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`). Logs a
    /// warning when the file is readable by every user.
    pub fn load(path: &Path, kid: &str) -> Result<Self, KeyError> {
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        if let Some(warning) = key_file_warning(path) {
            tracing::warn!(file = %path.display(), "{warning}");
        }
        Self::from_pem(&bytes, kid, path)
    }

    /// Parses PEM text; `origin` names it in errors.
    pub fn from_pem(pem_bytes: &[u8], kid: &str, origin: &Path) -> Result<Self, KeyError> {
        check_kid(kid)?;
        let malformed = |detail: String| KeyError::Malformed {
            path: origin.to_owned(),
            detail,
        };
        let der = PrivateKeyDer::from_pem_slice(pem_bytes).map_err(|e| match e {
            pem::Error::NoItemsFound => KeyError::Empty {
                path: origin.to_owned(),
            },
            // pem::Error's Display carries markers and positions, never key bytes.
            other => malformed(other.to_string()),
        })?;
        let (pair, pkcs1) = match &der {
            PrivateKeyDer::Pkcs8(pkcs8) => {
                let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8.secret_pkcs8_der())
                    .map_err(|e| malformed(format!("PKCS#8 key is not RSA or is invalid ({e})")))?;
                let pkcs1 = pkcs1_from_pkcs8(pkcs8.secret_pkcs8_der()).map_err(malformed)?;
                (pair, pkcs1)
            }
            PrivateKeyDer::Pkcs1(pkcs1) => {
                let bytes = pkcs1.secret_pkcs1_der();
                let pair = aws_lc_rs::rsa::KeyPair::from_der(bytes)
                    .map_err(|e| malformed(format!("invalid PKCS#1 RSA key ({e})")))?;
                (pair, bytes.to_vec())
            }
            PrivateKeyDer::Sec1(_) => {
                return Err(malformed(
                    "an EC key; API-M client assertions are RS512 and need an RSA key".into(),
                ));
            }
            _ => return Err(malformed("unsupported key encoding".into())),
        };
        let bits = pair.public_modulus_len() * 8;
        if bits < MIN_RSA_BITS {
            return Err(KeyError::TooShort {
                path: origin.to_owned(),
                bits,
            });
        }
        let public = pair.public_key();
        Ok(Self {
            kid: kid.to_owned(),
            encoding: jsonwebtoken::EncodingKey::from_rsa_der(&pkcs1),
            modulus: public.modulus().big_endian_without_leading_zero().to_vec(),
            exponent: public.exponent().big_endian_without_leading_zero().to_vec(),
            origin: origin.to_owned(),
        })
    }

    /// The key id registered with API-M.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The modulus size in bits.
    pub fn bits(&self) -> usize {
        self.modulus.len() * 8
    }

    /// Where the key came from.
    pub fn origin(&self) -> &Path {
        &self.origin
    }

    /// The public key as a JWK: `kty` RSA, `n`, `e`, `alg` RS512, `use` sig, `kid`.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(&self.modulus),
            "e": URL_SAFE_NO_PAD.encode(&self.exponent),
            "alg": "RS512",
            "use": "sig",
            "kid": self.kid,
        })
    }

    /// A JWKS holding [`SigningKey::jwk`], as API-M registers it.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk()] })
    }

    pub(crate) fn encoding_key(&self) -> &jsonwebtoken::EncodingKey {
        &self.encoding
    }
}

/// A warning when a private key file is readable by every user on the machine.
pub fn key_file_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode();
        if mode & 0o004 != 0 {
            return Some(format!(
                "{}: private key is readable by every user (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    None
}

/// How a key id departs from the `<Supplier>-<Environment>-<rotation>` convention.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KidConventionError {
    /// Fewer than three `-`-separated parts.
    #[error("'{0}' does not have three parts: {KID_SHAPE}")]
    Parts(String),
    /// The supplier part is empty or has other characters.
    #[error("supplier part '{0}' should be letters, digits, '-' or '_': {KID_SHAPE}")]
    Supplier(String),
    /// The environment part is not `INT` or `PROD`.
    #[error("environment part '{0}' is not INT or PROD (upper case): {KID_SHAPE}")]
    Environment(String),
    /// The rotation part is not a number from 1.
    #[error("rotation part '{0}' is not a number from 1: {KID_SHAPE}")]
    Rotation(String),
}

const KID_SHAPE: &str = "expected <Supplier>-<Environment>-<rotation>, e.g. MySupplier-INT-1";

/// The `<Supplier>-<Environment>-<rotation>` convention API-M key ids follow, e.g.
/// `MySupplier-INT-1`. `Err` says how `kid` departs from it; such a kid still works if it is
/// the one registered, so callers warn rather than refuse.
pub fn kid_convention(kid: &str) -> Result<(), KidConventionError> {
    let mut parts = kid.rsplitn(3, '-');
    let (Some(rotation), Some(environment), Some(supplier)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(KidConventionError::Parts(kid.to_owned()));
    };
    if supplier.is_empty()
        || !supplier
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(KidConventionError::Supplier(supplier.to_owned()));
    }
    if !matches!(environment, "INT" | "PROD") {
        return Err(KidConventionError::Environment(environment.to_owned()));
    }
    if rotation.is_empty() || !rotation.bytes().all(|b| b.is_ascii_digit()) || rotation.starts_with('0') {
        return Err(KidConventionError::Rotation(rotation.to_owned()));
    }
    Ok(())
}

/// A kid must fit in a JWT header and an HTTP-safe file name: printable ASCII, no spaces or
/// path separators.
fn check_kid(kid: &str) -> Result<(), KeyError> {
    let bad = |detail: &str| KeyError::BadKid {
        kid: kid.to_owned(),
        detail: detail.to_owned(),
    };
    if kid.is_empty() {
        return Err(bad("is empty"));
    }
    if kid.len() > 128 {
        return Err(bad("is longer than 128 characters"));
    }
    if !kid
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\')
    {
        return Err(bad("must be printable ASCII without spaces or slashes"));
    }
    Ok(())
}

/// The `RSAPrivateKey` inside a PKCS#8 `PrivateKeyInfo` (RFC 5958): the signer takes PKCS#1.
fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Result<Vec<u8>, String> {
    use x509_parser::der_parser::der::parse_der_sequence;
    let unreadable = |what: &str| format!("PKCS#8 structure unreadable ({what})");
    let (_, info) = parse_der_sequence(pkcs8).map_err(|_| unreadable("outer sequence"))?;
    let items = info.as_sequence().map_err(|_| unreadable("outer sequence"))?;
    let algorithm = items
        .get(1)
        .and_then(|a| a.as_sequence().ok())
        .and_then(|a| a.first())
        .and_then(|oid| oid.as_oid().ok())
        .ok_or_else(|| unreadable("algorithm"))?;
    if algorithm.to_id_string() != "1.2.840.113549.1.1.1" {
        return Err(format!(
            "algorithm {} is not rsaEncryption",
            algorithm.to_id_string()
        ));
    }
    items
        .get(2)
        .and_then(|k| k.as_slice().ok())
        .map(<[u8]>::to_vec)
        .ok_or_else(|| unreadable("private key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rsa_pem(size: rcgen::RsaKeySize) -> String {
        rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, size)
            .unwrap()
            .serialize_pem()
    }

    #[test]
    fn loads_pkcs8_rsa_and_describes_its_public_key() {
        let pem = rsa_pem(rcgen::RsaKeySize::_2048);
        let key = SigningKey::from_pem(pem.as_bytes(), "Test-INT-1", Path::new("k.pem")).unwrap();
        assert_eq!(key.bits(), 2048);
        let jwk = key.jwk();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["alg"], "RS512");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["kid"], "Test-INT-1");
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(
            URL_SAFE_NO_PAD.decode(jwk["n"].as_str().unwrap()).unwrap().len(),
            256
        );
        assert!(!format!("{key:?}").contains("BEGIN"), "Debug shows no key");
    }

    #[test]
    fn refuses_ec_keys_empty_files_and_bad_kids_naming_the_file() {
        let ec = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let err = SigningKey::from_pem(ec.as_bytes(), "A-INT-1", Path::new("ec.pem")).unwrap_err();
        assert!(err.to_string().starts_with("ec.pem:"), "{err}");
        assert!(err.to_string().contains("RSA"), "{err}");

        let err = SigningKey::from_pem(b"", "A-INT-1", Path::new("empty.pem")).unwrap_err();
        assert!(matches!(err, KeyError::Empty { .. }), "{err}");

        let pem = rsa_pem(rcgen::RsaKeySize::_2048);
        let err = SigningKey::from_pem(pem.as_bytes(), "has space", Path::new("k.pem")).unwrap_err();
        assert!(matches!(err, KeyError::BadKid { .. }), "{err}");
    }

    #[test]
    fn checks_the_kid_convention() {
        for ok in ["MySupplier-INT-1", "My-Supplier-PROD-12", "acme_x-INT-3"] {
            assert!(kid_convention(ok).is_ok(), "{ok}");
        }
        for bad in [
            "MySupplier-1",
            "MySupplier-int-1",
            "MySupplier-INT-x",
            "-INT-1",
            "MySupplier-INT-0",
            "key",
        ] {
            assert!(kid_convention(bad).is_err(), "{bad}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn warns_about_world_readable_key_files() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, "x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(key_file_warning(&path).unwrap().contains("chmod 600"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(key_file_warning(&path), None);
    }
}
