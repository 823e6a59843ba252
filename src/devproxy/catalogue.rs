//! The endpoint catalogue: which receiver base URL serves each target service
//! (`NHSD-Target-Identifier`), as the national Endpoint Catalogue records it. A TOML file:
//!
//! ```toml
//! [[endpoint]]
//! service = "https://fhir.nhs.uk/Id/dos-service-id|2000072489"
//! url = "https://127.0.0.1:8443"
//! ```

use std::path::Path;

use serde::Deserialize;

use super::DevProxyError;
use crate::fhir::TargetIdentifier;

/// The catalogue, loaded once at start.
#[derive(Debug, Clone)]
pub(crate) struct Catalogue {
    endpoints: Vec<Endpoint>,
}

/// One registered endpoint.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) service: TargetIdentifier,
    /// `https://host:port[/path]`, without a trailing slash.
    pub(crate) url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    #[serde(default)]
    endpoint: Vec<RawEndpoint>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEndpoint {
    service: String,
    url: String,
}

impl Catalogue {
    /// Reads and checks a catalogue file.
    pub(crate) fn load(path: &Path) -> Result<Self, DevProxyError> {
        let bad = |detail: String| DevProxyError::Catalogue {
            path: path.to_owned(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read: {e}")))?;
        Self::parse(&text).map_err(bad)
    }

    fn parse(text: &str) -> Result<Self, String> {
        let raw: RawCatalogue = toml::from_str(text).map_err(|e| e.to_string().trim().to_owned())?;
        let mut endpoints: Vec<Endpoint> = Vec::new();
        for (i, entry) in raw.endpoint.into_iter().enumerate() {
            let at = format!("endpoint[{i}]");
            let service = TargetIdentifier::parse_token(&entry.service)
                .ok_or_else(|| format!("{at}.service: '{}' is not system|value", entry.service))?;
            check_url(&entry.url).map_err(|why| format!("{at}.url: '{}' {why}", entry.url))?;
            if endpoints.iter().any(|e| e.service.same_service(&service)) {
                return Err(format!("{at}.service: {service} is listed twice"));
            }
            endpoints.push(Endpoint {
                service,
                url: entry.url.trim_end_matches('/').to_owned(),
            });
        }
        Ok(Self { endpoints })
    }

    /// The endpoint registered for `target` (system compared without its http/https
    /// scheme, as receivers do).
    pub(crate) fn find(&self, target: &TargetIdentifier) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.service.same_service(target))
    }

    /// How many endpoints are registered.
    pub(crate) fn len(&self) -> usize {
        self.endpoints.len()
    }
}

/// Receivers are reached over mutual TLS: an `https` URL with a host, no query or fragment.
fn check_url(text: &str) -> Result<(), &'static str> {
    if text.contains(['?', '#', ' ']) {
        return Err("must not have a query, fragment or spaces");
    }
    let uri: http::Uri = text.parse().map_err(|_| "is not a URL")?;
    if uri.scheme_str() != Some("https") {
        return Err("must be https (receivers are reached over mutual TLS)");
    }
    if uri.host().is_none() {
        return Err("has no host");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_services_across_http_and_https_systems() {
        let catalogue = Catalogue::parse(
            r#"
[[endpoint]]
service = "https://fhir.nhs.uk/Id/dos-service-id|111"
url = "https://127.0.0.1:9444/"
[[endpoint]]
service = "https://fhir.nhs.uk/Id/dos-service-id|222"
url = "https://localhost:9445/bars/FHIR/R4"
"#,
        )
        .unwrap();
        assert_eq!(catalogue.len(), 2);
        let target = TargetIdentifier::parse_token("http://fhir.nhs.uk/Id/dos-service-id|111").unwrap();
        assert_eq!(catalogue.find(&target).unwrap().url, "https://127.0.0.1:9444");
        let other = TargetIdentifier::parse_token("https://fhir.nhs.uk/Id/dos-service-id|333").unwrap();
        assert!(catalogue.find(&other).is_none());
    }

    #[test]
    fn the_shipped_example_catalogue_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dev-catalogue.toml");
        let catalogue = Catalogue::load(&path).unwrap();
        assert_eq!(catalogue.len(), 1);
        // The service `serve --dev`'s example message addresses, at `serve --dev`'s address.
        let target =
            TargetIdentifier::parse_token("https://fhir.nhs.uk/Id/dos-service-id|2000072489").unwrap();
        assert_eq!(catalogue.find(&target).unwrap().url, "https://127.0.0.1:8443");
    }

    #[test]
    fn refuses_bad_entries_naming_them() {
        for (text, expected) in [
            (
                "[[endpoint]]\nservice = \"no-bar\"\nurl = \"https://a\"",
                "endpoint[0].service",
            ),
            (
                "[[endpoint]]\nservice = \"s|1\"\nurl = \"http://a\"",
                "endpoint[0].url",
            ),
            (
                "[[endpoint]]\nservice = \"s|1\"\nurl = \"https://a\"\n[[endpoint]]\nservice = \"s|1\"\nurl = \"https://b\"",
                "listed twice",
            ),
            (
                "[[endpoint]]\nservice = \"s|1\"\nurl = \"https://a\"\nport = 1",
                "unknown field",
            ),
        ] {
            let err = Catalogue::parse(text).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }
}
