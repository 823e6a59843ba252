//! The proxy's own CapabilityStatement: what `GET /metadata` without an
//! `NHSD-Target-Identifier` answers. Shaped like the national BaRS API's (an OAuth-secured
//! FHIR server offering the BaRS endpoints); with a target, `/metadata` is the receiver's.

use serde_json::{Value, json};

/// The CapabilityStatement of a dev proxy whose BaRS API is at `base_url`.
pub(crate) fn capability_statement(base_url: &str, date: &str) -> Value {
    let interactions = |codes: &[&str]| -> Value {
        codes
            .iter()
            .map(|c| json!({"code": c}))
            .collect::<Vec<_>>()
            .into()
    };
    let oauth = json!({"service": [{"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
        "code": "OAuth",
        "display": "OAuth",
    }]}], "description": "API-M application-restricted access: a bearer token from POST /oauth2/token (signed JWT client assertion)."});
    json!({
        "resourceType": "CapabilityStatement",
        "id": "BaRS-FHIR-Server",
        "url": base_url,
        "name": "BaRS FHIR Server CapabilityStatement (bars-receiver dev-proxy)",
        "status": "active",
        "experimental": true,
        "date": date,
        "publisher": "bars-receiver dev-proxy (local development stand-in for the BaRS API)",
        "kind": "instance",
        "software": {"name": "BaRS API (dev-proxy)", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {
            "description": "Local stand-in for the BaRS API proxy: forwards to the receiver the NHSD-Target-Identifier names in its endpoint catalogue",
            "url": base_url,
        },
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "security": oauth,
            "resource": [
                {"type": "CapabilityStatement", "interaction": interactions(&["read"])},
                {"type": "MessageDefinition", "interaction": interactions(&["search-type"]),
                 "searchParam": [{"name": "context", "type": "token",
                   "documentation": "The target service identifier, system|value"}]},
                {"type": "Slot", "interaction": interactions(&["search-type"])},
                {"type": "Appointment",
                 "interaction": interactions(&["read", "search-type", "create", "update", "patch", "delete"])},
                {"type": "ServiceRequest",
                 "interaction": interactions(&["read", "search-type", "create", "update", "patch", "delete"])},
            ],
            "operation": [{
                "name": "process-message",
                "definition": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message",
            }],
        }],
    })
}
