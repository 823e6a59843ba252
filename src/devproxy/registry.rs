//! The registry of sender applications, as API-M keeps it: each application's API key and
//! the public keys of its JWKS, by `kid`. Loaded once at start; API keys are never logged.

use std::collections::HashMap;
use std::path::Path;

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};

use super::DevProxyError;
use crate::config::ApplicationSettings;

/// The registered applications, by API key.
pub(crate) struct Registry {
    apps: HashMap<String, Application>,
}

/// One application: a name for logs and its verification keys by `kid`.
pub(crate) struct Application {
    pub(crate) name: String,
    keys: HashMap<String, DecodingKey>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: the map's keys are API keys.
        f.debug_list()
            .entries(self.apps.values().map(|a| &a.name))
            .finish()
    }
}

impl Registry {
    /// The applications' names (never their API keys), for the start-up log.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.apps.values().map(|a| a.name.as_str())
    }

    /// Loads every application's JWKS file.
    pub(crate) fn load(applications: &[ApplicationSettings]) -> Result<Self, DevProxyError> {
        let mut apps = HashMap::new();
        for app in applications {
            let keys = load_jwks(&app.jwks)?;
            apps.insert(
                app.api_key.expose().clone(),
                Application {
                    name: app.name.clone(),
                    keys,
                },
            );
        }
        Ok(Self { apps })
    }

    /// The application with this API key.
    pub(crate) fn get(&self, api_key: &str) -> Option<&Application> {
        self.apps.get(api_key)
    }

    /// How many applications are registered.
    pub(crate) fn len(&self) -> usize {
        self.apps.len()
    }
}

impl Application {
    /// The public key registered under `kid`.
    pub(crate) fn key(&self, kid: &str) -> Option<&DecodingKey> {
        self.keys.get(kid)
    }
}

/// Reads a JWKS file: every key must be RSA and carry a `kid`.
fn load_jwks(path: &Path) -> Result<HashMap<String, DecodingKey>, DevProxyError> {
    let bad = |detail: String| DevProxyError::Jwks {
        path: path.to_owned(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let set: JwkSet =
        serde_json::from_str(&text).map_err(|e| bad(format!("not a JWKS ({{\"keys\": [...]}}): {e}")))?;
    if set.keys.is_empty() {
        return Err(bad("has no keys".into()));
    }
    let mut keys = HashMap::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        let n = i + 1;
        let kid = jwk
            .common
            .key_id
            .clone()
            .ok_or_else(|| bad(format!("key #{n} has no kid")))?;
        if !matches!(jwk.algorithm, AlgorithmParameters::RSA(_)) {
            return Err(bad(format!(
                "key #{n} ({kid}) is not an RSA key; API-M assertions are RS512"
            )));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| bad(format!("key #{n} ({kid}): {e}")))?;
        if keys.insert(kid.clone(), key).is_some() {
            return Err(bad(format!("kid {kid} appears twice")));
        }
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sender::Secret;

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn refuses_unusable_jwks_files_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text, expected) in [
            ("empty.json", r#"{"keys": []}"#, "has no keys"),
            ("junk.json", "not json", "not a JWKS"),
            (
                "nokid.json",
                r#"{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}"#,
                "no kid",
            ),
            (
                "ec.json",
                r#"{"keys": [{"kty": "EC", "crv": "P-256", "kid": "k", "x": "AA", "y": "AA"}]}"#,
                "not an RSA key",
            ),
        ] {
            let app = ApplicationSettings {
                name: "t".into(),
                api_key: Secret::new("k".into()),
                jwks: write(dir.path(), name, text),
            };
            let err = Registry::load(&[app]).unwrap_err().to_string();
            assert!(err.contains(name) && err.contains(expected), "{err}");
        }
    }

    #[test]
    fn debug_shows_names_not_api_keys() {
        let dir = tempfile::tempdir().unwrap();
        let jwks = write(
            dir.path(),
            "k.json",
            r#"{"keys": [{"kty": "RSA", "kid": "A-INT-1", "n": "sXch", "e": "AQAB"}]}"#,
        );
        let registry = Registry::load(&[ApplicationSettings {
            name: "Referrer".into(),
            api_key: Secret::new("secret-api-key".into()),
            jwks,
        }])
        .unwrap();
        let shown = format!("{registry:?}");
        assert!(
            shown.contains("Referrer") && !shown.contains("secret-api-key"),
            "{shown}"
        );
        assert!(registry.get("secret-api-key").unwrap().key("A-INT-1").is_some());
    }
}
