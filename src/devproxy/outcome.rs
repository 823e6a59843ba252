//! The OperationOutcomes the BaRS API proxy itself answers with: its refusals (`SEND_`,
//! `PROXY_` and plain codes) and the generic bodies that replace receiver answers. The codes,
//! code systems, issue types and diagnostics are the national proxy's, quirks included (its
//! `PROXY_BAD_REQUEST` bodies use another code system, and issue code "400"), so that senders
//! meet here what they will meet in INT.

use serde_json::{Value, json};
use uuid::Uuid;

/// The BaRS error code system.
const HTTP_ERROR_CODES: &str = "https://fhir.nhs.uk/Codesystem/http-error-codes";
/// The system the proxy uses for some of its own codes.
const OPERATION_OUTCOME_VS: &str = "http://hl7.org/fhir/ValueSet/operation-outcome";

/// An answer the proxy makes up rather than relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProxyOutcome {
    /// 401: no access token.
    NoToken,
    /// 401: an access token this proxy did not issue, or an expired one.
    BadToken,
    /// 400: a BaRS id (or the target, where one is needed) missing.
    MissingHeaders,
    /// 400: `NHSD-Target-Identifier` is not base64.
    TargetNotBase64,
    /// 400: `NHSD-Target-Identifier` is not JSON with `system` and `value`.
    TargetSchema,
    /// 404: the target is not in the Endpoint Catalogue.
    NotInCatalogue,
    /// 404: not an endpoint of the BaRS API.
    PageNotFound,
    /// 413: a request body larger than the proxy buffers.
    TooLarge,
    /// 408: the receiver answered 504, or not at all in time.
    Timeout,
    /// 403: mutual TLS with the receiver failed.
    TlsMaFailure,
    /// 503: the receiver answered 503, or could not be reached.
    Unavailable,
    /// 500: the receiver answered 500 without an OperationOutcome.
    ServerError,
}

impl ProxyOutcome {
    /// The HTTP status.
    pub(crate) fn status(self) -> u16 {
        match self {
            Self::NoToken | Self::BadToken => 401,
            Self::MissingHeaders | Self::TargetNotBase64 | Self::TargetSchema => 400,
            Self::NotInCatalogue | Self::PageNotFound => 404,
            Self::TooLarge => 413,
            Self::Timeout => 408,
            Self::TlsMaFailure => 403,
            Self::Unavailable => 503,
            Self::ServerError => 500,
        }
    }

    /// (system, code, FHIR issue type, diagnostics)
    fn parts(self) -> (&'static str, &'static str, &'static str, &'static str) {
        match self {
            Self::NoToken => (
                HTTP_ERROR_CODES,
                "SEND_UNAUTHORIZED",
                "unknown",
                "No Access token was provided.",
            ),
            Self::BadToken => (
                HTTP_ERROR_CODES,
                "SEND_UNAUTHORIZED",
                "security",
                "The user or system was not able to be authenticated, either the access token was invalid, or not provided.",
            ),
            Self::MissingHeaders => (
                HTTP_ERROR_CODES,
                "BAD_REQUEST",
                "invalid",
                "The X-Request-Id or the X-Correlation-Id was not included Or the NHSD-Target-Identifier was not included (depending on the endpoint being called).",
            ),
            Self::TargetNotBase64 => (
                OPERATION_OUTCOME_VS,
                "PROXY_BAD_REQUEST",
                "400",
                "The base64 decoding of the NHSD-Target-Identifier header failed.",
            ),
            Self::TargetSchema => (
                OPERATION_OUTCOME_VS,
                "PROXY_BAD_REQUEST",
                "structure",
                "Invalid schema for NHSD-Target-Identifier header",
            ),
            Self::NotInCatalogue => (
                HTTP_ERROR_CODES,
                "PROXY_NOT_FOUND",
                "not-found",
                "The target endpoint does not exist in the Endpoint Catalogue.",
            ),
            Self::PageNotFound => (
                HTTP_ERROR_CODES,
                "NOT_FOUND",
                "not-found",
                "Endpoint on the API does not exist.",
            ),
            Self::TooLarge => (
                OPERATION_OUTCOME_VS,
                "PROXY_BAD_REQUEST",
                "too-costly",
                "The request body is larger than the BaRS API accepts (10 MiB).",
            ),
            Self::Timeout => (
                HTTP_ERROR_CODES,
                "REC_TIMEOUT",
                "timeout",
                "The connection to the Receiver timed out.",
            ),
            Self::TlsMaFailure => (HTTP_ERROR_CODES, "REC_FORBIDDEN", "forbidden", "TLS-MA failure."),
            Self::Unavailable => (
                HTTP_ERROR_CODES,
                "REC_SERVICE_UNAVAILABLE",
                "transient",
                "The response from the receiver was a 503, with no detail. Also useful if there is a connection failure such as the endpoint not being found, or failing to resolve.",
            ),
            Self::ServerError => (
                HTTP_ERROR_CODES,
                "REC_SERVER_ERROR",
                "exception",
                "unhandled exception.",
            ),
        }
    }

    /// The OperationOutcome body.
    pub(crate) fn body(self) -> Value {
        let (system, code, issue, diagnostics) = self.parts();
        json!({
            "resourceType": "OperationOutcome",
            "id": Uuid::new_v4().to_string(),
            "meta": {"profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-OperationOutcome"]},
            "issue": [{
                "severity": "error",
                "code": issue,
                "details": {"coding": [{"system": system, "code": code}]},
                "diagnostics": diagnostics,
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_one_issue_operation_outcomes_with_the_proxys_codes() {
        for (outcome, status, code) in [
            (ProxyOutcome::NoToken, 401, "SEND_UNAUTHORIZED"),
            (ProxyOutcome::BadToken, 401, "SEND_UNAUTHORIZED"),
            (ProxyOutcome::TargetNotBase64, 400, "PROXY_BAD_REQUEST"),
            (ProxyOutcome::NotInCatalogue, 404, "PROXY_NOT_FOUND"),
            (ProxyOutcome::Timeout, 408, "REC_TIMEOUT"),
            (ProxyOutcome::TlsMaFailure, 403, "REC_FORBIDDEN"),
        ] {
            let body = outcome.body();
            assert_eq!(outcome.status(), status);
            assert_eq!(body["resourceType"], "OperationOutcome");
            assert_eq!(body["issue"].as_array().unwrap().len(), 1);
            assert_eq!(body["issue"][0]["details"]["coding"][0]["code"], code);
        }
        assert_eq!(
            ProxyOutcome::TlsMaFailure.body()["issue"][0]["diagnostics"],
            "TLS-MA failure."
        );
    }
}
