//! `Accept` (media type and BaRS major version, 406) and `Content-Type` (FHIR JSON only, 415)
//! negotiation.

use http::HeaderMap;

use super::error::{IssueType, RecCode, RecError};

/// The BaRS major version this receiver serves.
pub(crate) const SERVED_MAJOR_VERSION: u64 = 1;

/// The media type every FHIR response carries.
pub(crate) const FHIR_JSON: &str = "application/fhir+json";

/// Checks `Accept`: absent (or empty, which names no preference: the OpenAPI spec allows
/// it, and senders' HTTP libraries send it) is fine; otherwise at least one media range
/// must accept FHIR JSON, and a `version` parameter on it must have the served major
/// version.
pub(crate) fn check_accept(headers: &HeaderMap) -> Result<(), RecError> {
    let values: Vec<&str> = headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .collect();
    if values.is_empty() {
        return Ok(());
    }
    let mut wrong_version = None;
    for range in values.iter().flat_map(|v| v.split(',')) {
        let media = MediaType::parse(range);
        if media.essence.is_empty() || !accepts_fhir_json(&media.essence) {
            continue;
        }
        if media
            .param("q")
            .is_some_and(|q| q.trim() == "0" || q.trim().trim_end_matches('0') == "0.")
        {
            continue;
        }
        match media.param("version") {
            None => return Ok(()),
            Some(version) => match major_version(version) {
                Some(SERVED_MAJOR_VERSION) => return Ok(()),
                _ => wrong_version = Some(version.to_owned()),
            },
        }
    }
    Err(match wrong_version {
        Some(version) => RecError::new(
            RecCode::NotAcceptable,
            IssueType::Processing,
            format!(
                "BaRS version {version} is not served: this receiver serves major version {SERVED_MAJOR_VERSION}"
            ),
        ),
        None => RecError::new(
            RecCode::NotAcceptable,
            IssueType::Processing,
            format!("Accept does not allow {FHIR_JSON}, the only media type served"),
        ),
    })
}

/// What a request body may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// A FHIR resource: `application/fhir+json` or `application/json`.
    Resource,
    /// A patch: also `application/json-patch+json`.
    Patch,
}

/// Checks `Content-Type` for a request that carries a body.
pub(crate) fn check_content_type(headers: &HeaderMap, kind: BodyKind) -> Result<(), RecError> {
    let unsupported =
        |what: String| RecError::new(RecCode::UnsupportedMediaType, IssueType::NotSupported, what);
    let Some(raw) = headers.get(http::header::CONTENT_TYPE) else {
        return Err(unsupported(format!("Content-Type is missing: send {FHIR_JSON}")));
    };
    let media = MediaType::parse(raw.to_str().unwrap_or_default());
    let allowed = accepts_fhir_json_exactly(&media.essence)
        || (kind == BodyKind::Patch && media.essence == "application/json-patch+json");
    if !allowed {
        return Err(unsupported(format!(
            "Content-Type {} is not supported: send {FHIR_JSON}",
            if media.essence.is_empty() {
                "(unreadable)"
            } else {
                &media.essence
            }
        )));
    }
    if let Some(charset) = media.param("charset") {
        if !charset.eq_ignore_ascii_case("utf-8") {
            return Err(unsupported(format!(
                "charset {charset} is not supported: send UTF-8"
            )));
        }
    }
    Ok(())
}

/// The major number of a version such as `1.4.0` or `1.0.0-alpha`.
pub(crate) fn major_version(version: &str) -> Option<u64> {
    let version = version.trim().trim_matches('"');
    let major = version.split(['.', '-']).next()?;
    major.parse().ok()
}

fn accepts_fhir_json(essence: &str) -> bool {
    accepts_fhir_json_exactly(essence) || essence == "*/*" || essence == "application/*"
}

fn accepts_fhir_json_exactly(essence: &str) -> bool {
    matches!(
        essence,
        "application/fhir+json" | "application/json" | "application/json+fhir"
    )
}

struct MediaType<'a> {
    essence: String,
    params: Vec<(String, &'a str)>,
}

impl<'a> MediaType<'a> {
    fn parse(raw: &'a str) -> Self {
        let mut parts = raw.split(';');
        let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let params = parts
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().trim_matches('"')))
            .collect();
        Self { essence, params }
    }

    fn param(&self, name: &str) -> Option<&'a str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: http::HeaderName, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn accepts_absent_wildcard_and_served_versions() {
        assert!(check_accept(&HeaderMap::new()).is_ok());
        assert!(
            check_accept(&with(http::header::ACCEPT, "")).is_ok(),
            "empty: no preference"
        );
        for ok in [
            "application/fhir+json",
            "application/fhir+json; version=1.4.0",
            "application/fhir+json;version=1.0.0-alpha",
            "application/json",
            "*/*",
            "text/html, application/fhir+json; version=1.2.0",
            "application/fhir+json; version=2.0.0, application/fhir+json; version=1.4.0",
        ] {
            assert!(check_accept(&with(http::header::ACCEPT, ok)).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_another_major_version_or_media_type() {
        let err = check_accept(&with(
            http::header::ACCEPT,
            "application/fhir+json; version=2.0.0",
        ))
        .unwrap_err();
        assert_eq!(err.status(), 406);
        assert_eq!(err.code().as_str(), "REC_NOT_ACCEPTABLE");
        assert_eq!(err.issue(), IssueType::Processing);
        assert!(err.diagnostics().contains("2.0.0"));

        let err = check_accept(&with(http::header::ACCEPT, "application/fhir+xml")).unwrap_err();
        assert_eq!(err.status(), 406);
        let err = check_accept(&with(http::header::ACCEPT, "application/fhir+json;q=0")).unwrap_err();
        assert_eq!(err.status(), 406);
    }

    #[test]
    fn content_type_must_be_fhir_json() {
        let ok = with(http::header::CONTENT_TYPE, "application/fhir+json; charset=utf-8");
        assert!(check_content_type(&ok, BodyKind::Resource).is_ok());
        assert!(
            check_content_type(
                &with(http::header::CONTENT_TYPE, "application/json"),
                BodyKind::Resource
            )
            .is_ok()
        );
        for bad in [
            "text/plain",
            "application/fhir+xml",
            "application/fhir+json; charset=latin1",
        ] {
            let err =
                check_content_type(&with(http::header::CONTENT_TYPE, bad), BodyKind::Resource).unwrap_err();
            assert_eq!(err.status(), 415, "{bad}");
            assert_eq!(err.code().as_str(), "REC_BAD_REQUEST");
            assert_eq!(err.issue(), IssueType::NotSupported);
        }
        let missing = check_content_type(&HeaderMap::new(), BodyKind::Resource).unwrap_err();
        assert_eq!(missing.status(), 415);
        let patch = with(http::header::CONTENT_TYPE, "application/json-patch+json");
        assert!(check_content_type(&patch, BodyKind::Patch).is_ok());
        assert!(check_content_type(&patch, BodyKind::Resource).is_err());
    }

    #[test]
    fn reads_major_versions() {
        assert_eq!(major_version("1.4.0"), Some(1));
        assert_eq!(major_version("1.0.0-alpha"), Some(1));
        assert_eq!(major_version("2"), Some(2));
        assert_eq!(major_version("x.1"), None);
    }
}
