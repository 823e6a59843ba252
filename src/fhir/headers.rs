//! The BaRS request headers: the two ids, and the base64-JSON `NHSD-*` headers decoded into
//! typed values. Every refusal names the header at fault.

use base64::Engine;
use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use http::{HeaderMap, HeaderName};
use serde_json::Value;
use uuid::Uuid;

use super::error::{IssueType, RecError};

/// `X-Request-Id`: the message id and de-duplication key.
pub const X_REQUEST_ID: &str = "x-request-id";
/// `X-Correlation-Id`: the conversation id.
pub const X_CORRELATION_ID: &str = "x-correlation-id";
/// `NHSD-Target-Identifier`: the service being addressed.
pub const NHSD_TARGET_IDENTIFIER: &str = "nhsd-target-identifier";
/// `NHSD-End-User-Organisation`: the sending organisation.
pub const NHSD_END_USER_ORGANISATION: &str = "nhsd-end-user-organisation";
/// `NHSD-Requesting-Software`: the sending software.
pub const NHSD_REQUESTING_SOFTWARE: &str = "nhsd-requesting-software";
/// `NHSD-Requesting-Practitioner`: the requesting practitioner role, when known.
pub const NHSD_REQUESTING_PRACTITIONER: &str = "nhsd-requesting-practitioner";

/// The names above as [`HeaderName`]s, for lookups: a map looked up by a `&str` parses the
/// name first, and every request looks up all six.
pub(crate) const X_REQUEST_ID_NAME: HeaderName = HeaderName::from_static(X_REQUEST_ID);
pub(crate) const X_CORRELATION_ID_NAME: HeaderName = HeaderName::from_static(X_CORRELATION_ID);
const NHSD_TARGET_IDENTIFIER_NAME: HeaderName = HeaderName::from_static(NHSD_TARGET_IDENTIFIER);
const NHSD_END_USER_ORGANISATION_NAME: HeaderName = HeaderName::from_static(NHSD_END_USER_ORGANISATION);
const NHSD_REQUESTING_SOFTWARE_NAME: HeaderName = HeaderName::from_static(NHSD_REQUESTING_SOFTWARE);
const NHSD_REQUESTING_PRACTITIONER_NAME: HeaderName = HeaderName::from_static(NHSD_REQUESTING_PRACTITIONER);

/// The ODS organisation code system.
pub(crate) const ODS_CODE_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";

/// Standard alphabet; padding optional, because senders differ and the proxy passes the
/// header through untouched.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The two BaRS ids, both UUIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarsIds {
    /// `X-Request-Id`.
    pub request_id: Uuid,
    /// `X-Correlation-Id`.
    pub correlation_id: Uuid,
}

impl BarsIds {
    /// Reads both ids: missing is `required`, repeated is `invalid`, not a UUID is `value`.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, RecError> {
        Ok(Self {
            request_id: required_uuid(headers, X_REQUEST_ID_NAME, "X-Request-Id")?,
            correlation_id: required_uuid(headers, X_CORRELATION_ID_NAME, "X-Correlation-Id")?,
        })
    }

    /// Like [`BarsIds::from_headers`], but `None` when neither header is present (allowed on
    /// `GET /metadata`, which health probes call without ids).
    pub fn optional_from_headers(headers: &HeaderMap) -> Result<Option<Self>, RecError> {
        if !headers.contains_key(X_REQUEST_ID) && !headers.contains_key(X_CORRELATION_ID) {
            return Ok(None);
        }
        Self::from_headers(headers).map(Some)
    }
}

/// `NHSD-Target-Identifier`: `{"system": ..., "value": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct TargetIdentifier {
    /// The identifier system, e.g. `https://fhir.nhs.uk/Id/dos-service-id`.
    pub system: String,
    /// The service id within that system.
    pub value: String,
}

impl TargetIdentifier {
    /// Parses `system|value`, the token form used in configuration and FHIR searches.
    pub fn parse_token(token: &str) -> Option<Self> {
        let (system, value) = token.split_once('|')?;
        if system.is_empty() || value.is_empty() {
            return None;
        }
        Some(Self {
            system: system.to_owned(),
            value: value.to_owned(),
        })
    }

    /// Whether `token` (`system|value`, as in `MessageHeader.destination.endpoint`) names this
    /// service. The scheme of the system is compared loosely (`http`/`https`), because real
    /// senders write both.
    pub fn matches_token(&self, token: &str) -> bool {
        Self::parse_token(token).is_some_and(|other| self.same_service(&other))
    }

    /// Whether both name the same service (system compared without its http/https scheme).
    pub fn same_service(&self, other: &Self) -> bool {
        other.value == self.value && strip_scheme(&other.system) == strip_scheme(&self.system)
    }
}

fn strip_scheme(system: &str) -> &str {
    system
        .strip_prefix("https://")
        .or_else(|| system.strip_prefix("http://"))
        .unwrap_or(system)
}

impl std::fmt::Display for TargetIdentifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}|{}", self.system, self.value)
    }
}

/// `NHSD-End-User-Organisation`: a FHIR Organization, kept whole for audit, with its ODS code
/// and name lifted out.
#[derive(Debug, Clone, PartialEq)]
pub struct EndUserOrganisation {
    /// The ODS code, when an identifier with the ODS system is present.
    pub ods_code: Option<String>,
    /// `Organization.name`, when present.
    pub name: Option<String>,
    /// The decoded resource as sent.
    pub resource: Value,
}

/// `NHSD-Requesting-Software`: a FHIR Device, kept whole for audit.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestingSoftware {
    /// `Device.deviceName.name` (or the first of them), when present.
    pub name: Option<String>,
    /// `Device.version.value` (or the first of them), when present.
    pub version: Option<String>,
    /// The decoded resource as sent.
    pub resource: Value,
}

/// `NHSD-Requesting-Practitioner`: a FHIR PractitionerRole, kept whole.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestingPractitioner {
    /// The decoded resource as sent.
    pub resource: Value,
}

/// The `NHSD-*` headers of one request, decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NhsdHeaders {
    /// `NHSD-Target-Identifier`.
    pub target: Option<TargetIdentifier>,
    /// `NHSD-End-User-Organisation`.
    pub end_user_organisation: Option<EndUserOrganisation>,
    /// `NHSD-Requesting-Software`.
    pub requesting_software: Option<RequestingSoftware>,
    /// `NHSD-Requesting-Practitioner`.
    pub requesting_practitioner: Option<RequestingPractitioner>,
}

impl NhsdHeaders {
    /// Decodes every `NHSD-*` header present. Absent headers are `None`; a header that is
    /// present but not standard-base64 JSON of the right shape is a 400 naming it.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, RecError> {
        let target = decode_json(headers, NHSD_TARGET_IDENTIFIER_NAME, "NHSD-Target-Identifier")?
            .map(|v| parse_target(&v))
            .transpose()?;
        let end_user_organisation = decode_json(
            headers,
            NHSD_END_USER_ORGANISATION_NAME,
            "NHSD-End-User-Organisation",
        )?
        .map(|resource| EndUserOrganisation {
            ods_code: ods_code(&resource),
            name: resource["name"].as_str().map(str::to_owned),
            resource,
        });
        let requesting_software =
            decode_json(headers, NHSD_REQUESTING_SOFTWARE_NAME, "NHSD-Requesting-Software")?.map(
                |resource| RequestingSoftware {
                    name: first_or_self(&resource["deviceName"])["name"]
                        .as_str()
                        .map(str::to_owned),
                    version: first_or_self(&resource["version"])["value"]
                        .as_str()
                        .map(str::to_owned),
                    resource,
                },
            );
        let requesting_practitioner = decode_json(
            headers,
            NHSD_REQUESTING_PRACTITIONER_NAME,
            "NHSD-Requesting-Practitioner",
        )?
        .map(|resource| RequestingPractitioner { resource });
        Ok(Self {
            target,
            end_user_organisation,
            requesting_software,
            requesting_practitioner,
        })
    }
}

/// Whether a request must carry `NHSD-End-User-Organisation` and `NHSD-Requesting-Software`
/// (`receiver.requester_headers`).
///
/// The sources disagree: the BaRS OpenAPI spec (1.4.0) marks both `required` on every
/// endpoint, while the implementation guide (Core 1.5.0, Security and Authorisation) calls
/// them optional ("Although optional, receivers can expect these to be present ... where
/// applicable, to enforce access control", excluding `/metadata` and `/MessageDefinition`),
/// the national proxy checks only the two ids, and the NHS API tests send neither. The
/// guide is the standard a receiver is assured against, so [`RequesterHeaders::Optional`]
/// is the default. The headers are claims made by the sender, not credentials: who may
/// connect is decided by mutual TLS alone, whichever is chosen. When present they are
/// always checked (standard base64 of a JSON object).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RequesterHeaders {
    /// As the implementation guide says: absent headers are accepted (the handler sees
    /// `None`); present ones must be well-formed.
    #[default]
    Optional,
    /// As the OpenAPI spec says: both are required on every interaction except
    /// `GET /metadata` and `GET /MessageDefinition` (400 `required`, naming the header).
    Required,
}

impl RequesterHeaders {
    /// Parses `optional` or `required`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "optional" => Some(Self::Optional),
            "required" => Some(Self::Required),
            _ => None,
        }
    }

    /// The configuration value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Optional => "optional",
            Self::Required => "required",
        }
    }
}

impl NhsdHeaders {
    /// Applies `policy`: with [`RequesterHeaders::Required`], a missing
    /// `NHSD-End-User-Organisation` or `NHSD-Requesting-Software` is 400 `required` with
    /// expression `http.<header>`.
    pub fn check_requester(&self, policy: RequesterHeaders) -> Result<(), RecError> {
        if policy == RequesterHeaders::Optional {
            return Ok(());
        }
        let missing = |name: &str| {
            RecError::bad_request(IssueType::Required, format!("{name} is missing"))
                .with_expression(format!("http.{name}"))
        };
        if self.end_user_organisation.is_none() {
            return Err(missing("NHSD-End-User-Organisation"));
        }
        if self.requesting_software.is_none() {
            return Err(missing("NHSD-Requesting-Software"));
        }
        Ok(())
    }
}

/// Encodes a value the way BaRS headers carry it (standard base64 of compact JSON).
pub fn encode_header_json(value: &Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(value.to_string())
}

fn single_value<'a>(
    headers: &'a HeaderMap,
    key: HeaderName,
    name: &str,
) -> Result<Option<&'a str>, RecError> {
    let mut values = headers.get_all(key).iter();
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(RecError::bad_request(
            IssueType::Invalid,
            format!("{name} was sent more than once"),
        ));
    }
    first
        .to_str()
        .map(|s| Some(s.trim()))
        .map_err(|_| RecError::bad_request(IssueType::Value, format!("{name} is not printable ASCII")))
}

fn required_uuid(headers: &HeaderMap, key: HeaderName, name: &str) -> Result<Uuid, RecError> {
    let raw = single_value(headers, key, name)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| RecError::bad_request(IssueType::Required, format!("{name} is missing")))?;
    // Only the hyphenated 36-character form: that is what BaRS senders emit, and accepting
    // braces or URNs would give one message two de-duplication keys.
    if raw.len() != 36 {
        return Err(not_a_uuid(name));
    }
    Uuid::try_parse(raw).map_err(|_| not_a_uuid(name))
}

fn not_a_uuid(name: &str) -> RecError {
    RecError::bad_request(IssueType::Value, format!("{name} is not a UUID"))
}

/// An empty value carries no claim, so it counts as absent (and so as missing where the
/// header is required).
fn decode_json(headers: &HeaderMap, key: HeaderName, name: &str) -> Result<Option<Value>, RecError> {
    let Some(raw) = single_value(headers, key, name)?.filter(|raw| !raw.is_empty()) else {
        return Ok(None);
    };
    let bytes = BASE64.decode(raw).map_err(|_| {
        RecError::bad_request(IssueType::Value, format!("{name} is not valid standard base64"))
    })?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|_| RecError::bad_request(IssueType::Invalid, format!("{name} does not decode to JSON")))?;
    if !value.is_object() {
        return Err(RecError::bad_request(
            IssueType::Invalid,
            format!("{name} does not decode to a JSON object"),
        ));
    }
    Ok(Some(value))
}

fn parse_target(value: &Value) -> Result<TargetIdentifier, RecError> {
    let field = |key: &str| {
        value[key]
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                RecError::bad_request(
                    IssueType::Required,
                    format!("NHSD-Target-Identifier has no {key}"),
                )
            })
    };
    Ok(TargetIdentifier {
        system: field("system")?,
        value: field("value")?,
    })
}

fn ods_code(org: &Value) -> Option<String> {
    org["identifier"]
        .as_array()?
        .iter()
        .find(|id| id["system"] == ODS_CODE_SYSTEM)
        .and_then(|id| id["value"].as_str())
        .map(str::to_owned)
}

fn first_or_self(value: &Value) -> &Value {
    match value {
        Value::Array(items) => items.first().unwrap_or(&Value::Null),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::error::RecCode;
    use serde_json::json;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        map
    }

    const RID: &str = "9c1b8f4e-8a61-4a27-9f7e-2f0f6c1d8a01";
    const CID: &str = "0d6c3b3c-1f6e-4bd5-8a43-5e7b1f3f0a02";

    #[test]
    fn reads_both_ids() {
        let ids = BarsIds::from_headers(&headers(&[(X_REQUEST_ID, RID), (X_CORRELATION_ID, CID)])).unwrap();
        assert_eq!(ids.request_id.to_string(), RID);
        assert_eq!(ids.correlation_id.to_string(), CID);
    }

    #[test]
    fn refuses_missing_repeated_and_malformed_ids() {
        let missing = BarsIds::from_headers(&headers(&[(X_CORRELATION_ID, CID)])).unwrap_err();
        assert_eq!(missing.issue(), IssueType::Required);
        assert!(missing.diagnostics().contains("X-Request-Id"));

        let repeated = BarsIds::from_headers(&headers(&[
            (X_REQUEST_ID, RID),
            (X_REQUEST_ID, RID),
            (X_CORRELATION_ID, CID),
        ]))
        .unwrap_err();
        assert_eq!(repeated.issue(), IssueType::Invalid);

        for bad in [
            "not-a-uuid",
            "{9c1b8f4e-8a61-4a27-9f7e-2f0f6c1d8a01}",
            "9c1b8f4e8a614a279f7e2f0f6c1d8a01",
        ] {
            let err =
                BarsIds::from_headers(&headers(&[(X_REQUEST_ID, RID), (X_CORRELATION_ID, bad)])).unwrap_err();
            assert_eq!(err.code(), RecCode::BadRequest);
            assert_eq!(err.issue(), IssueType::Value, "{bad}");
            assert!(err.diagnostics().contains("X-Correlation-Id"));
        }
    }

    #[test]
    fn ids_are_optional_only_when_both_are_absent() {
        assert_eq!(BarsIds::optional_from_headers(&HeaderMap::new()).unwrap(), None);
        assert!(BarsIds::optional_from_headers(&headers(&[(X_REQUEST_ID, RID)])).is_err());
    }

    #[test]
    fn decodes_target_identifier_and_audit_headers() {
        let target = encode_header_json(
            &json!({"system": "https://fhir.nhs.uk/Id/dos-service-id", "value": "2000072489"}),
        );
        let org = encode_header_json(&json!({
            "resourceType": "Organization",
            "identifier": [{"system": ODS_CODE_SYSTEM, "value": "A1001"}],
            "name": "My service provider name"
        }));
        let software = encode_header_json(&json!({
            "resourceType": "Device",
            "deviceName": {"name": "Supplier product name", "type": "manufacturer-name"},
            "version": {"value": "1.0.0"}
        }));
        let parsed = NhsdHeaders::from_headers(&headers(&[
            (NHSD_TARGET_IDENTIFIER, &target),
            (NHSD_END_USER_ORGANISATION, &org),
            (NHSD_REQUESTING_SOFTWARE, &software),
        ]))
        .unwrap();
        let t = parsed.target.unwrap();
        assert_eq!(t.to_string(), "https://fhir.nhs.uk/Id/dos-service-id|2000072489");
        let o = parsed.end_user_organisation.unwrap();
        assert_eq!(o.ods_code.as_deref(), Some("A1001"));
        assert_eq!(o.name.as_deref(), Some("My service provider name"));
        let s = parsed.requesting_software.unwrap();
        assert_eq!(s.name.as_deref(), Some("Supplier product name"));
        assert_eq!(s.version.as_deref(), Some("1.0.0"));
        assert!(parsed.requesting_practitioner.is_none());
    }

    #[test]
    fn accepts_unpadded_base64() {
        let padded = encode_header_json(&json!({"system": "s", "value": "v1"}));
        let unpadded = padded.trim_end_matches('=');
        let parsed = NhsdHeaders::from_headers(&headers(&[(NHSD_TARGET_IDENTIFIER, unpadded)])).unwrap();
        assert_eq!(parsed.target.unwrap().value, "v1");
    }

    #[test]
    fn refuses_bad_base64_bad_json_and_missing_fields() {
        let bad_b64 =
            NhsdHeaders::from_headers(&headers(&[(NHSD_TARGET_IDENTIFIER, "%%%not base64")])).unwrap_err();
        assert_eq!(bad_b64.issue(), IssueType::Value);
        assert!(bad_b64.diagnostics().contains("NHSD-Target-Identifier"));

        let not_json = base64::engine::general_purpose::STANDARD.encode("{system: nope");
        let bad_json =
            NhsdHeaders::from_headers(&headers(&[(NHSD_TARGET_IDENTIFIER, &not_json)])).unwrap_err();
        assert_eq!(bad_json.issue(), IssueType::Invalid);

        let no_value = encode_header_json(&json!({"system": "https://fhir.nhs.uk/Id/dos-service-id"}));
        let missing =
            NhsdHeaders::from_headers(&headers(&[(NHSD_TARGET_IDENTIFIER, &no_value)])).unwrap_err();
        assert_eq!(missing.issue(), IssueType::Required);
        assert!(missing.diagnostics().contains("value"));
    }

    #[test]
    fn empty_nhsd_headers_count_as_absent() {
        let parsed = NhsdHeaders::from_headers(&headers(&[
            (NHSD_END_USER_ORGANISATION, ""),
            (NHSD_REQUESTING_SOFTWARE, "  "),
            (NHSD_TARGET_IDENTIFIER, ""),
        ]))
        .unwrap();
        assert_eq!(parsed, NhsdHeaders::default());
        let err = parsed.check_requester(RequesterHeaders::Required).unwrap_err();
        assert_eq!(err.issue(), IssueType::Required);
    }

    #[test]
    fn requester_headers_are_required_only_when_configured() {
        let none = NhsdHeaders::default();
        assert_eq!(none.check_requester(RequesterHeaders::Optional), Ok(()));
        let err = none.check_requester(RequesterHeaders::Required).unwrap_err();
        assert_eq!((err.status(), err.issue()), (400, IssueType::Required));
        assert_eq!(
            err.expression().first().map(String::as_str),
            Some("http.NHSD-End-User-Organisation")
        );

        let org = encode_header_json(&json!({"resourceType": "Organization", "name": "x"}));
        let only_org = NhsdHeaders::from_headers(&headers(&[(NHSD_END_USER_ORGANISATION, &org)])).unwrap();
        let err = only_org.check_requester(RequesterHeaders::Required).unwrap_err();
        assert_eq!(
            err.expression().first().map(String::as_str),
            Some("http.NHSD-Requesting-Software")
        );

        let device = encode_header_json(&json!({"resourceType": "Device"}));
        let both = NhsdHeaders::from_headers(&headers(&[
            (NHSD_END_USER_ORGANISATION, &org),
            (NHSD_REQUESTING_SOFTWARE, &device),
        ]))
        .unwrap();
        assert_eq!(both.check_requester(RequesterHeaders::Required), Ok(()));
        assert_eq!(
            RequesterHeaders::parse("required"),
            Some(RequesterHeaders::Required)
        );
        assert_eq!(RequesterHeaders::parse("Required"), None);
        assert_eq!(RequesterHeaders::default().as_str(), "optional");
    }

    #[test]
    fn matches_destination_tokens_across_http_and_https() {
        let t = TargetIdentifier::parse_token("https://fhir.nhs.uk/Id/dos-service-id|111111111").unwrap();
        assert!(t.matches_token("http://fhir.nhs.uk/Id/dos-service-id|111111111"));
        assert!(t.matches_token("https://fhir.nhs.uk/Id/dos-service-id|111111111"));
        assert!(!t.matches_token("https://fhir.nhs.uk/Id/dos-service-id|222"));
        assert!(!t.matches_token("no-bar"));
    }
}
