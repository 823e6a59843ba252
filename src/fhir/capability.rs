//! The CapabilityStatement served at `GET /metadata`, generated from what is registered so
//! that it lists exactly what this receiver implements.

use serde_json::{Value, json};

use super::routes::ResourceType;

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
    /// MessageDefinition search.
    pub(crate) message_definitions: bool,
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
}

/// Builds the CapabilityStatement.
pub(crate) fn capability_statement(describe: &Describe<'_>, registered: &Registered, date: &str) -> Value {
    let mut resources = vec![json!({
        "type": "CapabilityStatement",
        "interaction": [{"code": "read"}],
        "versioning": "no-version"
    })];
    if registered.message_definitions {
        resources.push(json!({
            "type": "MessageDefinition",
            "interaction": [{"code": "search-type"}],
            "searchParam": [{
                "name": "context", "type": "token",
                "documentation": "The target service identifier, system|value."
            }],
            "versioning": "no-version"
        }));
    }
    if registered.slots {
        resources.push(json!({
            "type": "Slot",
            "interaction": [{"code": "search-type"}],
            "searchParam": [
                {"name": "status", "type": "token"},
                {"name": "start", "type": "date", "documentation": "Twice: ge and le, with a UTC offset."},
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
                "description": "Mutual TLS: client certificates issued under this environment's NHS Root/SubCA, from the BaRS API proxy's addresses only."
            },
            "resource": resources,
            "operation": [{
                "name": "process-message",
                "definition": "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message"
            }]
        }]
    });
    if let Some(publisher) = describe.publisher {
        statement["publisher"] = json!(publisher);
    }
    if let Some(url) = describe.base_url {
        statement["implementation"]["url"] = json!(url);
        statement["url"] = json!(format!("{}/metadata", url.trim_end_matches('/')));
    }
    statement
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe() -> Describe<'static> {
        Describe {
            name: "r",
            publisher: Some("p"),
            software_name: "bars-receiver",
            software_version: "0.1.0",
            base_url: Some("https://BaRS-INT-X26.example.thirdparty.nhs.uk/"),
        }
    }

    #[test]
    fn lists_only_what_is_registered() {
        let minimal = capability_statement(&describe(), &Registered::default(), "2026-01-01");
        let types: Vec<_> = minimal["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(types, vec!["CapabilityStatement"]);
        assert_eq!(minimal["rest"][0]["operation"][0]["name"], "process-message");
        assert_eq!(
            minimal["url"],
            "https://BaRS-INT-X26.example.thirdparty.nhs.uk/metadata"
        );

        let full = capability_statement(
            &describe(),
            &Registered {
                slots: true,
                message_definitions: false,
                resources: vec![RegisteredResource {
                    resource_type: ResourceType::Appointment,
                    interactions: vec!["read", "search-type"],
                    search_params: vec![SearchParam::token("patient:identifier", "NHS number")],
                }],
            },
            "2026-01-01",
        );
        let resources = full["rest"][0]["resource"].as_array().unwrap();
        assert_eq!(resources.len(), 3);
        assert_eq!(resources[2]["type"], "Appointment");
        assert_eq!(resources[2]["interaction"].as_array().unwrap().len(), 2);
        assert_eq!(resources[2]["searchParam"][0]["name"], "patient:identifier");
    }
}
