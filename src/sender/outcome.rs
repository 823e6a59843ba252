//! Error answers from the BaRS API: OperationOutcomes carrying a receiver (`REC_`), sender
//! (`SEND_`) or proxy (`PROXY_`) code, read into a typed error that keeps code and diagnostics.

use serde_json::Value;

/// Who a BaRS error code blames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodeFamily {
    /// `REC_*`: the receiver refused or failed.
    Receiver,
    /// `SEND_*`: the sender's request was wrong.
    Sender,
    /// `PROXY_*`: the BaRS API proxy refused or failed (unknown target, bad headers, auth).
    Proxy,
    /// Any other code, or none.
    Other,
}

impl CodeFamily {
    /// The family of `code`, by its prefix.
    pub fn of(code: &str) -> Self {
        if code.starts_with("REC_") {
            Self::Receiver
        } else if code.starts_with("SEND_") {
            Self::Sender
        } else if code.starts_with("PROXY_") {
            Self::Proxy
        } else {
            Self::Other
        }
    }
}

/// An HTTP error answered with a FHIR OperationOutcome.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("HTTP {status} {}{}: {}", code.as_deref().unwrap_or("(no code)"), issue.as_deref().map(|i| format!(" ({i})")).unwrap_or_default(), diagnostics.as_deref().unwrap_or("(no diagnostics)"))]
#[non_exhaustive]
pub struct OutcomeError {
    /// The HTTP status.
    pub status: u16,
    /// `issue[0].details.coding[].code`, e.g. `REC_BAD_REQUEST` or `PROXY_NOT_FOUND`.
    pub code: Option<String>,
    /// That coding's `display`.
    pub display: Option<String>,
    /// `issue[0].code`, the FHIR issue type.
    pub issue: Option<String>,
    /// `issue[0].diagnostics`.
    pub diagnostics: Option<String>,
    /// The whole OperationOutcome.
    pub outcome: Value,
}

impl OutcomeError {
    /// Reads an OperationOutcome; `None` when `body` is not one.
    pub fn parse(status: u16, body: &Value) -> Option<Self> {
        if body["resourceType"] != "OperationOutcome" {
            return None;
        }
        let issue = &body["issue"][0];
        let codings = issue["details"]["coding"].as_array();
        // Prefer the BaRS error code system (either spelling); the proxy sometimes puts its
        // PROXY_ codes under another system.
        let coding = codings.and_then(|c| {
            c.iter()
                .find(|c| {
                    c["system"]
                        .as_str()
                        .is_some_and(|s| s.eq_ignore_ascii_case(crate::fhir::HTTP_ERROR_CODE_SYSTEM))
                })
                .or_else(|| c.first())
        });
        let text = |v: &Value| v.as_str().map(str::to_owned);
        Some(Self {
            status,
            code: coding.and_then(|c| text(&c["code"])),
            display: coding.and_then(|c| text(&c["display"])),
            issue: text(&issue["code"]),
            diagnostics: text(&issue["diagnostics"]),
            outcome: body.clone(),
        })
    }

    /// Who the code blames.
    pub fn family(&self) -> CodeFamily {
        self.code.as_deref().map_or(CodeFamily::Other, CodeFamily::of)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn fixture(name: &str) -> Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/nhs/examples1.4.0")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn reads_the_published_error_examples_of_every_family() {
        let rec = OutcomeError::parse(
            400,
            &fixture("OperationOutcome/REC/400-REC_BAD_REQUEST-invalid.json"),
        )
        .unwrap();
        assert_eq!(rec.code.as_deref(), Some("REC_BAD_REQUEST"));
        assert_eq!(rec.family(), CodeFamily::Receiver);
        assert_eq!(rec.issue.as_deref(), Some("invalid"));
        assert!(rec.diagnostics.is_some());

        let proxy = OutcomeError::parse(404, &fixture("proxy-not-found.json")).unwrap();
        assert_eq!(proxy.code.as_deref(), Some("PROXY_NOT_FOUND"));
        assert_eq!(proxy.family(), CodeFamily::Proxy);
        assert_eq!(
            proxy.diagnostics.as_deref(),
            Some("The target endpoint does not exist in the Endpoint Catalogue.")
        );
        let text = proxy.to_string();
        assert!(
            text.starts_with("HTTP 404 PROXY_NOT_FOUND (not-found): The target"),
            "{text}"
        );

        // Another code system and a numeric issue code, as the proxy has sent.
        let base64 = OutcomeError::parse(400, &fixture("invalid-base64.json")).unwrap();
        assert_eq!(base64.code.as_deref(), Some("PROXY_BAD_REQUEST"));

        assert_eq!(CodeFamily::of("SEND_BAD_REQUEST"), CodeFamily::Sender);
        assert_eq!(CodeFamily::of("X"), CodeFamily::Other);
        assert!(OutcomeError::parse(400, &serde_json::json!({"resourceType": "Bundle"})).is_none());
    }
}
