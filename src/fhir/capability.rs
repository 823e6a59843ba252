//! The CapabilityStatement served at `GET /metadata`, generated from what is registered and
//! configured so that it lists exactly what this receiver implements: the RESTful
//! interactions of its handlers, the message definitions it receives
//! (`messaging.supportedMessage`) and, when it also sends through the BaRS API, what it does
//! as a client (`rest[mode=client]`).

use serde_json::{Value, json};

use super::message_definition::MessageDefinitions;
use super::routes::ResourceType;

/// The `_include`s of a BaRS slot search (the BaRS API specification's list for `GET /Slot`).
const SLOT_INCLUDES: [&str; 6] = [
    "Slot:schedule",
    "Schedule:actor:Practitioner",
    "Schedule:actor:PractitionerRole",
    "Schedule:actor:HealthcareService",
    "HealthcareService:providedBy",
    "HealthcareService:location",
];

/// `CapabilityStatement.rest.security.service` codes.
const SECURITY_SERVICE: &str = "http://terminology.hl7.org/CodeSystem/restful-security-service";

/// The `$process-message` operation.
const PROCESS_MESSAGE: &str = "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message";

/// A search parameter advertised in the CapabilityStatement.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SearchParam {
    /// The parameter name as sent, with any modifier (`patient:identifier`).
    pub name: String,
    /// Its FHIR type.
    pub kind: SearchParamType,
    /// What it means here.
    pub documentation: String,
}

impl SearchParam {
    /// A parameter of any type.
    pub fn new(name: impl Into<String>, kind: SearchParamType, documentation: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind,
            documentation: documentation.into(),
        }
    }

    /// A `token` parameter (`system|value`).
    pub fn token(name: impl Into<String>, documentation: impl Into<String>) -> Self {
        Self::new(name, SearchParamType::Token, documentation)
    }
}

/// The FHIR `SearchParamType` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SearchParamType {
    /// `number`
    Number,
    /// `date`
    Date,
    /// `string`
    String,
    /// `token`
    Token,
    /// `reference`
    Reference,
    /// `composite`
    Composite,
    /// `quantity`
    Quantity,
    /// `uri`
    Uri,
    /// `special`
    Special,
}

impl SearchParamType {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Number => "number",
            Self::Date => "date",
            Self::String => "string",
            Self::Token => "token",
            Self::Reference => "reference",
            Self::Composite => "composite",
            Self::Quantity => "quantity",
            Self::Uri => "uri",
            Self::Special => "special",
        }
    }
}

/// What the registered handlers implement.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Registered {
    /// Slot search.
    pub(crate) slots: bool,
    /// RESTful resource handlers with at least one interaction.
    pub(crate) resources: Vec<RegisteredResource>,
}

/// One RESTful resource type's interactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RegisteredResource {
    /// The type.
    pub(crate) resource_type: ResourceType,
    /// FHIR interaction codes (`read`, `search-type`...).
    pub(crate) interactions: Vec<&'static str>,
    /// Search parameters.
    pub(crate) search_params: Vec<SearchParam>,
}

/// How the receiver describes itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Describe<'a> {
    /// `name`.
    pub name: &'a str,
    /// `publisher`.
    pub publisher: Option<&'a str>,
    /// `software.name`.
    pub software_name: &'a str,
    /// `software.version`.
    pub software_version: &'a str,
    /// `implementation.url`.
    pub base_url: Option<&'a str>,
    /// The message definitions received (`messaging.supportedMessage`, mode receiver).
    pub messages: &'a MessageDefinitions,
    /// How this receiver authenticates when it sends through the BaRS API (`[sender]`), for
    /// `rest[mode=client]`; `None` when it does not send.
    pub client: Option<ClientAuth>,
}

/// How the receiver, as a BaRS API client, authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// API-M access tokens from a signed-JWT client assertion.
    SignedJwt,
    /// The sandbox: no token.
    Sandbox,
}

/// Builds the CapabilityStatement.
pub(crate) fn capability_statement(describe: &Describe<'_>, registered: &Registered, date: &str) -> Value {
    let mut resources = vec![json!({
        "type": "CapabilityStatement",
        "interaction": [{"code": "read"}],
        "versioning": "no-version"
    })];
    // Served by the receiver itself from its configuration, whatever the handlers.
    resources.push(json!({
        "type": "MessageDefinition",
        "interaction": [{"code": "search-type"}],
        "searchParam": [{
            "name": "context", "type": "token",
            "documentation": "A use context of the definition: the service (system|value, e.g. https://fhir.nhs.uk/Id/dos-service-id|2000072489) or a use-case category (https://fhir.nhs.uk/CodeSystem/usecases-categories-bars|code). Required; repeat it to require both."
        }],
        "versioning": "no-version"
    }));
    if registered.slots {
        resources.push(json!({
            "type": "Slot",
            "interaction": [{"code": "search-type"}],
            "searchInclude": SLOT_INCLUDES,
            "searchParam": [
                {"name": "status", "type": "token", "documentation": "free or busy; comma-separated for both."},
                {"name": "start", "type": "date", "documentation": "Twice: ge and le, with a UTC offset."},
                {"name": "Schedule.actor:HealthcareService", "type": "token", "documentation": "The service whose slots are wanted."},
                {"name": "_include", "type": "special"}
            ],
            "versioning": "no-version"
        }));
    }
    for r in &registered.resources {
        let mut entry = json!({
            "type": r.resource_type.as_str(),
            "interaction": r.interactions.iter().map(|c| json!({"code": c})).collect::<Vec<_>>(),
            "versioning": "no-version"
        });
        if !r.search_params.is_empty() {
            entry["searchParam"] = r
                .search_params
                .iter()
                .map(|p| json!({"name": p.name, "type": p.kind.code(), "documentation": p.documentation}))
                .collect();
        }
        resources.push(entry);
    }
    let mut statement = json!({
        "resourceType": "CapabilityStatement",
        "id": "bars-receiver",
        "name": describe.name,
        "status": "active",
        "experimental": false,
        "date": date,
        "kind": "instance",
        "software": {"name": describe.software_name, "version": describe.software_version},
        "implementation": {"description": describe.name},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [{
            "mode": "server",
            "security": {
                "service": [{"coding": [{"system": SECURITY_SERVICE, "code": "Certificates", "display": "Certificates"}]}],
                "description": "Mutual TLS: client certificates issued under this environment's NHS Root/SubCA, from the BaRS API proxy's addresses only."
            },
            "resource": resources,
            "operation": [{
                "name": "process-message",
                "definition": PROCESS_MESSAGE
            }]
        }]
    });
    if let (Some(client), Some(rest)) = (describe.client, statement["rest"].as_array_mut()) {
        rest.push(client_rest(client));
    }
    let urls = describe.messages.urls();
    if !urls.is_empty() {
        let mut messaging = json!({
            "documentation": "The BaRS message definitions this receiver accepts at $process-message; GET /MessageDefinition?context=<service> returns them with their versions, services and use-case categories.",
            "supportedMessage": urls
                .iter()
                .map(|url| json!({"mode": "receiver", "definition": url}))
                .collect::<Vec<_>>(),
        });
        if let Some(url) = describe.base_url {
            messaging["endpoint"] = json!([{
                "protocol": {"system": "http://terminology.hl7.org/CodeSystem/message-transport", "code": "http"},
                "address": url,
            }]);
        }
        statement["messaging"] = json!([messaging]);
    }
    if let Some(publisher) = describe.publisher {
        statement["publisher"] = json!(publisher);
    }
    if let Some(url) = describe.base_url {
        statement["implementation"]["url"] = json!(url);
        statement["url"] = json!(format!("{}/metadata", url.trim_end_matches('/')));
    }
    statement
}

/// `rest[mode=client]`: what the receiver does as a sender through the BaRS API (the
/// interactions its client makes: replies and updates to `$process-message`, and the reads,
/// searches and RESTful changes of the BaRS endpoints).
fn client_rest(auth: ClientAuth) -> Value {
    let security = match auth {
        ClientAuth::SignedJwt => json!({
            "service": [{"coding": [{"system": SECURITY_SERVICE, "code": "OAuth", "display": "OAuth"}]}],
            "description": "API-M access tokens obtained with a signed-JWT client assertion (client credentials, private key JWT)."
        }),
        ClientAuth::Sandbox => json!({
            "description": "The BaRS sandbox: no access token."
        }),
    };
    let rest_interactions = || {
        json!([
            {"code": "read"}, {"code": "search-type"}, {"code": "create"},
            {"code": "update"}, {"code": "patch"}, {"code": "delete"}
        ])
    };
    json!({
        "mode": "client",
        "documentation": "Sends responses and updates through the BaRS API as a BaRS sender.",
        "security": security,
        "resource": [
            {"type": "CapabilityStatement", "interaction": [{"code": "read"}]},
            {"type": "MessageDefinition", "interaction": [{"code": "search-type"}]},
            {"type": "Slot", "interaction": [{"code": "search-type"}]},
            {"type": "Appointment", "interaction": rest_interactions()},
            {"type": "ServiceRequest", "interaction": rest_interactions()}
        ],
        "operation": [{"name": "process-message", "definition": PROCESS_MESSAGE}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::{MessageDefinition, SupportedDefinition, TargetIdentifier};

    fn describe(messages: &MessageDefinitions, client: Option<ClientAuth>) -> Describe<'_> {
        Describe {
            name: "r",
            publisher: Some("p"),
            software_name: "bars-receiver",
            software_version: "0.1.0",
            base_url: Some("https://BaRS-INT-X26.example.thirdparty.nhs.uk/"),
            messages,
            client,
        }
    }

    fn types(statement: &Value, rest: usize) -> Vec<String> {
        statement["rest"][rest]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["type"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn lists_only_what_is_registered() {
        let none = MessageDefinitions::default();
        let minimal = capability_statement(&describe(&none, None), &Registered::default(), "2026-01-01");
        assert_eq!(types(&minimal, 0), ["CapabilityStatement", "MessageDefinition"]);
        assert_eq!(minimal["rest"][0]["mode"], "server");
        assert_eq!(
            minimal["rest"].as_array().unwrap().len(),
            1,
            "no [sender], no client mode"
        );
        assert!(minimal.get("messaging").is_none(), "no definitions, no messaging");
        assert_eq!(minimal["rest"][0]["operation"][0]["name"], "process-message");
        assert_eq!(
            minimal["url"],
            "https://BaRS-INT-X26.example.thirdparty.nhs.uk/metadata"
        );

        let full = capability_statement(
            &describe(&none, None),
            &Registered {
                slots: true,
                resources: vec![RegisteredResource {
                    resource_type: ResourceType::Appointment,
                    interactions: vec!["read", "search-type"],
                    search_params: vec![SearchParam::token("patient:identifier", "NHS number")],
                }],
            },
            "2026-01-01",
        );
        let resources = full["rest"][0]["resource"].as_array().unwrap();
        assert_eq!(
            types(&full, 0),
            ["CapabilityStatement", "MessageDefinition", "Slot", "Appointment"]
        );
        assert_eq!(resources[2]["searchInclude"], json!(SLOT_INCLUDES));
        assert_eq!(resources[3]["interaction"].as_array().unwrap().len(), 2);
        assert_eq!(resources[3]["searchParam"][0]["name"], "patient:identifier");
    }

    #[test]
    fn lists_the_supported_messages_and_the_client_mode() {
        let url = "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-validation";
        let service = TargetIdentifier::parse_token("https://fhir.nhs.uk/Id/dos-service-id|1").unwrap();
        let supported = |categories: &[&str]| {
            SupportedDefinition::new(
                MessageDefinition::find(url).unwrap(),
                vec![service.clone()],
                categories,
            )
            .unwrap()
        };
        let messages = MessageDefinitions::new(vec![supported(&["a4t1"]), supported(&["a4t4"])]);
        let s = capability_statement(
            &describe(&messages, Some(ClientAuth::SignedJwt)),
            &Registered::default(),
            "2026-01-01",
        );
        assert_eq!(
            s["messaging"][0]["supportedMessage"],
            json!([{"mode": "receiver", "definition": url}]),
            "each definition once, mode receiver"
        );
        assert_eq!(
            s["messaging"][0]["endpoint"][0]["address"],
            "https://BaRS-INT-X26.example.thirdparty.nhs.uk/"
        );
        assert_eq!(s["rest"][1]["mode"], "client");
        assert_eq!(
            s["rest"][1]["security"]["service"][0]["coding"][0]["code"],
            "OAuth"
        );
        assert_eq!(s["rest"][1]["operation"][0]["name"], "process-message");
        let sandbox = capability_statement(
            &describe(&messages, Some(ClientAuth::Sandbox)),
            &Registered::default(),
            "2026-01-01",
        );
        assert!(sandbox["rest"][1]["security"].get("service").is_none());
    }
}
