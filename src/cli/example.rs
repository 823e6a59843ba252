//! The ready-to-paste `curl` that `serve --dev` prints: a BaRS validation request posted with
//! the development client certificate and fresh ids.

use std::net::SocketAddr;
use std::path::Path;

use bars_receiver::fhir::encode_header_json;
use bars_receiver::loopback::reachable;
use serde_json::json;
use uuid::Uuid;

/// A BaRS validation request (synthetic patient data only).
pub(crate) const EXAMPLE_MESSAGE: &str = include_str!("example-message.json");

/// Writes the example message to `path` and returns the curl command that posts it.
pub(crate) fn write_and_describe(path: &Path, certs: &Path, addr: SocketAddr) -> std::io::Result<String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, EXAMPLE_MESSAGE)?;
    let target = encode_header_json(
        &json!({"system": "https://fhir.nhs.uk/Id/dos-service-id", "value": "2000072489"}),
    );
    let organisation = encode_header_json(&json!({
        "resourceType": "Organization",
        "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A1001"}],
        "name": "Example referring organisation"
    }));
    let software = encode_header_json(&json!({
        "resourceType": "Device",
        "deviceName": [{"name": "curl", "type": "manufacturer-name"}],
        "version": [{"value": "1"}]
    }));
    let host = reachable(addr);
    let c = |f: &str| certs.join(f).display().to_string();
    Ok(format!(
        "curl --cacert {ca} --cert {cert} --key {key} \\\n  \
         -H 'Content-Type: application/fhir+json' -H 'Accept: application/fhir+json; version=1.4.0' \\\n  \
         -H 'X-Request-Id: {rid}' -H 'X-Correlation-Id: {cid}' \\\n  \
         -H 'NHSD-Target-Identifier: {target}' \\\n  \
         -H 'NHSD-End-User-Organisation: {organisation}' \\\n  \
         -H 'NHSD-Requesting-Software: {software}' \\\n  \
         --data-binary @{body} 'https://{host}/$process-message'",
        ca = c("ca-bundle.pem"),
        cert = c("client.pem"),
        key = c("client.key"),
        rid = Uuid::new_v4(),
        cid = Uuid::new_v4(),
        body = path.display(),
    ))
}
