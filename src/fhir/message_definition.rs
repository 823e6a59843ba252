//! The MessageDefinitions this receiver supports ([`MessageDefinitions`]): which definitions
//! of the built-in catalogue, for which services and use-case categories. From it come the
//! MessageDefinition resources `GET /MessageDefinition?context=...` answers with, the
//! `messaging.supportedMessage` list of the CapabilityStatement, and the answer to "is the
//! definition a message claims supported here" ([`MessageDefinitions::lookup`]).

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::bundle_view::EVENT_SYSTEM;
use super::error::{IssueType, RecError};
use super::headers::TargetIdentifier;
use super::message_definition_catalogue::{CATALOGUE, MessageDefinition, USE_CASE_SYSTEM, USE_CASES};

/// `UsageContext.code` of every use context: the guide's resources say `workflow`.
const USAGE_CONTEXT_TYPE: &str = "http://terminology.hl7.org/CodeSystem/usage-context-type";

/// Where the definition a message follows sits: the first entry is its MessageHeader.
const DEFINITION_EXPRESSION: &str = "Bundle.entry[0].resource.definition";

/// The search parameter naming a use context.
const CONTEXT: &str = "context";

impl MessageDefinition {
    /// Every definition of the built-in catalogue.
    pub fn catalogue() -> &'static [MessageDefinition] {
        &CATALOGUE
    }

    /// The catalogue's definition with canonical URL `url`.
    pub fn find(url: &str) -> Option<&'static MessageDefinition> {
        CATALOGUE.iter().find(|d| d.url == url)
    }
}

/// A use-case category code of `https://fhir.nhs.uk/CodeSystem/usecases-categories-bars`
/// (version 1.5.0), as the code system spells it, with its display; `None` for a code it
/// does not have.
pub fn use_case(code: &str) -> Option<(&'static str, &'static str)> {
    USE_CASES.iter().copied().find(|(c, _)| *c == code)
}

/// One supported definition: a catalogue definition offered for some services, in some
/// use-case categories. Its resource id is derived from all three, so it stays the same
/// across restarts while the configuration does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportedDefinition {
    definition: &'static MessageDefinition,
    services: Vec<TargetIdentifier>,
    categories: Vec<&'static str>,
    id: String,
}

impl SupportedDefinition {
    /// `definition` for `services` (`dos-service-id` values as `system|value`), in the
    /// use-case `categories`; `None` for a category code [`use_case`] does not know.
    pub fn new(
        definition: &'static MessageDefinition,
        services: Vec<TargetIdentifier>,
        categories: &[&str],
    ) -> Option<Self> {
        let categories = categories
            .iter()
            .map(|c| use_case(c).map(|(code, _)| code))
            .collect::<Option<Vec<_>>>()?;
        let mut seed = format!("{}|{}", definition.url, definition.version);
        for s in &services {
            seed.push_str(&format!("\n{s}"));
        }
        for c in &categories {
            seed.push_str(&format!("\n{c}"));
        }
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, seed.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest.as_ref()[..16]);
        let id = uuid::Builder::from_custom_bytes(bytes).into_uuid().to_string();
        Some(Self {
            definition,
            services,
            categories,
            id,
        })
    }

    /// The catalogue definition.
    pub fn definition(&self) -> &'static MessageDefinition {
        self.definition
    }

    /// The services it is offered for.
    pub fn services(&self) -> &[TargetIdentifier] {
        &self.services
    }

    /// The use-case category codes.
    pub fn categories(&self) -> &[&'static str] {
        &self.categories
    }

    /// The MessageDefinition resource.
    pub fn to_resource(&self) -> Value {
        let d = self.definition;
        let context = |system: &str, code: &str, display: Option<&str>| {
            let mut coding = json!({"system": system, "code": code});
            if let Some(display) = display {
                coding["display"] = json!(display);
            }
            json!({
                "code": {"system": USAGE_CONTEXT_TYPE, "code": "workflow"},
                "valueCodeableConcept": {"coding": [coding]}
            })
        };
        let use_context: Vec<Value> = self
            .services
            .iter()
            .map(|s| context(&s.system, &s.value, None))
            .chain(
                self.categories
                    .iter()
                    .map(|c| context(USE_CASE_SYSTEM, c, use_case(c).map(|(_, display)| display))),
            )
            .collect();
        let focus: Vec<Value> = d
            .focus
            .iter()
            .map(|f| {
                json!({
                    "code": f.code,
                    "profile": f.profile,
                    "min": f.min,
                    "max": f.max.map_or_else(|| "*".to_owned(), |m| m.to_string()),
                })
            })
            .collect();
        let mut resource = json!({
            "resourceType": "MessageDefinition",
            "id": self.id,
            "url": d.url,
            "version": d.version,
            "name": d.name,
            "title": d.title,
            "status": "active",
            "date": d.date,
            "useContext": use_context,
            "eventCoding": {"system": EVENT_SYSTEM, "code": d.event},
            "focus": focus,
        });
        if !d.allowed_responses.is_empty() {
            resource["allowedResponse"] = d
                .allowed_responses
                .iter()
                .map(|r| json!({"message": r.message, "situation": r.situation}))
                .collect();
        }
        resource
    }

    /// Whether one of its use contexts matches every token of one `context` value (any of
    /// its comma-separated tokens).
    fn matches_any(&self, tokens: &[Token<'_>]) -> bool {
        tokens.iter().any(|t| self.matches(t))
    }

    fn matches(&self, token: &Token<'_>) -> bool {
        let service = self.services.iter().any(|s| token.matches(&s.system, &s.value));
        service || self.categories.iter().any(|c| token.matches(USE_CASE_SYSTEM, c))
    }
}

/// The definitions this receiver supports, in configuration order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageDefinitions {
    supported: Vec<SupportedDefinition>,
}

/// Why the definition a message claims is not supported here: 422 `not-supported`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnsupportedDefinition {
    /// No definition with that URL is supported.
    #[error("MessageHeader.definition {url} is not a message definition this receiver supports")]
    Definition {
        /// The URL claimed.
        url: String,
    },
    /// It is supported, but not for the service addressed.
    #[error("MessageHeader.definition {url} is not supported for the service {service}")]
    Service {
        /// The URL claimed.
        url: String,
        /// The service addressed.
        service: String,
    },
    /// It is supported, in other versions only.
    #[error("MessageHeader.definition {url} version {version} is not supported; supported: {}", supported.join(", "))]
    Version {
        /// The URL claimed.
        url: String,
        /// The version claimed.
        version: String,
        /// The versions supported.
        supported: Vec<String>,
    },
}

impl UnsupportedDefinition {
    /// The refusal: 422 `REC_UNPROCESSABLE_ENTITY` `not-supported`, naming
    /// `Bundle.entry[0].resource.definition`.
    pub fn to_rec_error(&self) -> RecError {
        RecError::unprocessable(IssueType::NotSupported, self.to_string())
            .with_expression(DEFINITION_EXPRESSION)
    }
}

impl MessageDefinitions {
    /// The given definitions.
    pub fn new(supported: Vec<SupportedDefinition>) -> Self {
        Self { supported }
    }

    /// Every supported definition.
    pub fn supported(&self) -> &[SupportedDefinition] {
        &self.supported
    }

    /// Whether none is supported.
    pub fn is_empty(&self) -> bool {
        self.supported.is_empty()
    }

    /// The definition a message claims in `MessageHeader.definition` (`url` or
    /// `url|version`), if this receiver supports it for `service` (the service addressed;
    /// `None`: any service). Without a version, the version configured for the URL. The
    /// definition's [`MessageDefinition::focus`] says which resources the message must carry
    /// and how many ([`MessageDefinition::cardinality`]).
    pub fn lookup(
        &self,
        definition: &str,
        service: Option<&TargetIdentifier>,
    ) -> Result<&'static MessageDefinition, UnsupportedDefinition> {
        let (url, version) = match definition.trim().split_once('|') {
            Some((url, version)) => (url, Some(version)),
            None => (definition.trim(), None),
        };
        let by_url: Vec<&SupportedDefinition> = self
            .supported
            .iter()
            .filter(|s| s.definition.url == url)
            .collect();
        if by_url.is_empty() {
            return Err(UnsupportedDefinition::Definition { url: url.to_owned() });
        }
        let for_service: Vec<&SupportedDefinition> = match service {
            None => by_url,
            Some(target) => by_url
                .into_iter()
                .filter(|s| s.services.iter().any(|svc| svc.same_service(target)))
                .collect(),
        };
        let Some(first) = for_service.first() else {
            return Err(UnsupportedDefinition::Service {
                url: url.to_owned(),
                service: service.map(ToString::to_string).unwrap_or_default(),
            });
        };
        match version {
            None => Ok(first.definition),
            Some(version) => for_service
                .iter()
                .find(|s| s.definition.version == version)
                .map(|s| s.definition)
                .ok_or_else(|| {
                    let mut supported: Vec<String> = for_service
                        .iter()
                        .map(|s| s.definition.version.to_owned())
                        .collect();
                    supported.dedup();
                    UnsupportedDefinition::Version {
                        url: url.to_owned(),
                        version: version.to_owned(),
                        supported,
                    }
                }),
        }
    }

    /// The canonical URLs supported, each once, in configuration order
    /// (`CapabilityStatement.messaging.supportedMessage`).
    pub(crate) fn urls(&self) -> Vec<&'static str> {
        let mut urls: Vec<&'static str> = Vec::new();
        for s in &self.supported {
            if !urls.contains(&s.definition.url) {
                urls.push(s.definition.url);
            }
        }
        urls
    }

    /// Answers `GET /MessageDefinition` with the query `params`: a searchset Bundle of the
    /// definitions whose use contexts match every `context` parameter (a service or a
    /// use-case category: `system|code`, a bare `code` in any system, or `system|` for any
    /// code of it; commas separate alternatives). `context` missing: 400 `required`; empty
    /// or malformed: 400 `value`; nothing matching: 404. Other parameters are ignored.
    pub(crate) fn search(
        &self,
        params: &[(String, String)],
        base_url: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Value, RecError> {
        let contexts: Vec<&str> = params
            .iter()
            .filter(|(k, _)| k == CONTEXT)
            .map(|(_, v)| v.as_str())
            .collect();
        if contexts.is_empty() {
            return Err(RecError::bad_request(
                IssueType::Required,
                "MessageDefinition search needs the context parameter: the service, system|value (e.g. https://fhir.nhs.uk/Id/dos-service-id|2000072489), or a use-case category",
            )
            .with_expression(CONTEXT));
        }
        let parsed = contexts
            .iter()
            .map(|value| Token::parse_list(value))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                RecError::bad_request(
                    IssueType::Value,
                    "The context parameter must be system|code, a code, or system| (comma-separated alternatives), never empty",
                )
                .with_expression(CONTEXT)
            })?;
        let matching: Vec<&SupportedDefinition> = self
            .supported
            .iter()
            .filter(|s| parsed.iter().all(|tokens| s.matches_any(tokens)))
            .collect();
        if matching.is_empty() {
            return Err(RecError::not_found(
                "No MessageDefinition of this receiver matches the context given",
            ));
        }
        let now = now.format(&Rfc3339).unwrap_or_default();
        let entries: Vec<Value> = matching
            .iter()
            .map(|s| {
                json!({
                    "fullUrl": format!("urn:uuid:{}", s.id),
                    "resource": s.to_resource(),
                    "search": {"mode": "match"},
                })
            })
            .collect();
        let mut bundle = json!({
            "resourceType": "Bundle",
            "id": uuid::Uuid::new_v4().to_string(),
            "meta": {"lastUpdated": now},
            "type": "searchset",
            "timestamp": now,
            "total": entries.len(),
            "entry": entries,
        });
        if let Some(base) = base_url {
            let mut query = form_urlencoded::Serializer::new(String::new());
            for value in &contexts {
                query.append_pair(CONTEXT, value);
            }
            bundle["link"] = json!([{
                "relation": "self",
                "url": format!("{}/MessageDefinition?{}", base.trim_end_matches('/'), query.finish()),
            }]);
        }
        Ok(bundle)
    }
}

/// One token of a `context` search value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    /// `code`: the code in any system.
    Code(&'a str),
    /// `system|code`.
    Coding(&'a str, &'a str),
    /// `system|`: any code of the system.
    System(&'a str),
    /// `|code`: the code without a system, which no use context of ours has.
    NoSystem(&'a str),
}

impl<'a> Token<'a> {
    /// Comma-separated tokens; `None` if any is empty.
    fn parse_list(value: &'a str) -> Option<Vec<Self>> {
        value.split(',').map(|t| Self::parse(t.trim())).collect()
    }

    fn parse(token: &'a str) -> Option<Self> {
        match token.split_once('|') {
            None if token.is_empty() => None,
            None => Some(Self::Code(token)),
            Some(("", "")) => None,
            Some(("", code)) => Some(Self::NoSystem(code)),
            Some((system, "")) => Some(Self::System(system)),
            Some((system, code)) => Some(Self::Coding(system, code)),
        }
    }

    fn matches(&self, system: &str, code: &str) -> bool {
        match *self {
            Self::Code(c) => c == code,
            Self::Coding(s, c) => c == code && same_system(s, system),
            Self::System(s) => same_system(s, system),
            Self::NoSystem(_) => false,
        }
    }
}

/// Systems compared without their http/https scheme, as services are elsewhere: real
/// senders write both.
fn same_system(a: &str, b: &str) -> bool {
    strip_scheme(a) == strip_scheme(b)
}

fn strip_scheme(system: &str) -> &str {
    system
        .strip_prefix("https://")
        .or_else(|| system.strip_prefix("http://"))
        .unwrap_or(system)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALIDATION: &str =
        "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-validation";
    const BOOKING: &str = "https://fhir.nhs.uk/MessageDefinition/bars-message-booking-request";

    fn service(value: &str) -> TargetIdentifier {
        TargetIdentifier::parse_token(&format!("https://fhir.nhs.uk/Id/dos-service-id|{value}")).unwrap()
    }

    fn supported(url: &str, services: &[&str], categories: &[&str]) -> SupportedDefinition {
        SupportedDefinition::new(
            MessageDefinition::find(url).unwrap(),
            services.iter().map(|s| service(s)).collect(),
            categories,
        )
        .unwrap()
    }

    fn set() -> MessageDefinitions {
        MessageDefinitions::new(vec![
            supported(VALIDATION, &["2000072489"], &["a4t1"]),
            supported(BOOKING, &["2000072489", "2000099999"], &["a1t1", "a1t2"]),
        ])
    }

    fn search(defs: &MessageDefinitions, query: &[(&str, &str)]) -> Result<Value, RecError> {
        let pairs: Vec<(String, String)> = query.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        defs.search(
            &pairs,
            Some("https://r.example/bars/"),
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    fn urls(bundle: &Value) -> Vec<&str> {
        bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"]["url"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn renders_the_resource_from_the_catalogue_and_the_configuration() {
        let r = supported(VALIDATION, &["2000072489"], &["a4t1"]).to_resource();
        assert_eq!(r["resourceType"], "MessageDefinition");
        assert_eq!(r["url"], VALIDATION);
        assert_eq!(r["version"], "1.1.0");
        assert_eq!(r["status"], "active");
        assert_eq!(r["eventCoding"]["system"], EVENT_SYSTEM);
        assert_eq!(r["eventCoding"]["code"], "servicerequest-request");
        assert_eq!(r["useContext"][0]["code"]["code"], "workflow");
        let service = &r["useContext"][0]["valueCodeableConcept"]["coding"][0];
        assert_eq!(service["system"], "https://fhir.nhs.uk/Id/dos-service-id");
        assert_eq!(service["code"], "2000072489");
        let category = &r["useContext"][1]["valueCodeableConcept"]["coding"][0];
        assert_eq!(category["system"], USE_CASE_SYSTEM);
        assert_eq!(category["code"], "a4t1");
        assert_eq!(category["display"], "999 to CAS Validation");
        let focus = r["focus"].as_array().unwrap();
        assert_eq!(focus[0]["code"], "Bundle");
        let organisations = focus.iter().find(|f| f["code"] == "Organization").unwrap();
        assert_eq!(
            (&organisations["min"], &organisations["max"]),
            (&json!(2), &json!("*"))
        );
        assert_eq!(
            organisations["profile"],
            "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Organization"
        );
        assert_eq!(r["allowedResponse"].as_array().unwrap().len(), 2);
        assert!(uuid::Uuid::parse_str(r["id"].as_str().unwrap()).is_ok());
        assert_eq!(
            r["id"],
            supported(VALIDATION, &["2000072489"], &["a4t1"]).to_resource()["id"],
            "the id is stable"
        );
        assert_ne!(
            r["id"],
            supported(VALIDATION, &["2000072489"], &["a4t2"]).to_resource()["id"]
        );
        assert!(
            supported(BOOKING, &["1"], &["a1t1"])
                .to_resource()
                .get("allowedResponse")
                .is_none()
        );
    }

    #[test]
    fn unknown_categories_are_refused() {
        let d = MessageDefinition::find(BOOKING).unwrap();
        assert!(SupportedDefinition::new(d, vec![service("1")], &["a1t99"]).is_none());
        assert!(SupportedDefinition::new(d, vec![service("1")], &["A1T1"]).is_none());
    }

    #[test]
    fn context_matches_services_and_categories() {
        let defs = set();
        let by_service = search(
            &defs,
            &[("context", "https://fhir.nhs.uk/Id/dos-service-id|2000072489")],
        )
        .unwrap();
        assert_eq!(urls(&by_service), [VALIDATION, BOOKING]);
        assert_eq!(by_service["type"], "searchset");
        assert_eq!(by_service["total"], 2);
        assert_eq!(by_service["entry"][0]["search"]["mode"], "match");
        assert!(
            by_service["entry"][0]["fullUrl"]
                .as_str()
                .unwrap()
                .starts_with("urn:uuid:")
        );
        assert_eq!(
            by_service["link"][0]["url"],
            "https://r.example/bars/MessageDefinition?context=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fdos-service-id%7C2000072489"
        );
        // A bare value, as the NHS tests send it; http for https; system-only.
        assert_eq!(
            urls(&search(&defs, &[("context", "2000099999")]).unwrap()),
            [BOOKING]
        );
        assert_eq!(
            urls(
                &search(
                    &defs,
                    &[("context", "http://fhir.nhs.uk/Id/dos-service-id|2000099999")]
                )
                .unwrap()
            ),
            [BOOKING]
        );
        assert_eq!(
            urls(&search(&defs, &[("context", "https://fhir.nhs.uk/Id/dos-service-id|")]).unwrap()).len(),
            2
        );
        // Service and category together (two parameters: both must match).
        let both = search(
            &defs,
            &[
                ("context", "https://fhir.nhs.uk/Id/dos-service-id|2000072489"),
                (
                    "context",
                    "https://fhir.nhs.uk/CodeSystem/usecases-categories-bars|a4t1",
                ),
            ],
        )
        .unwrap();
        assert_eq!(urls(&both), [VALIDATION]);
        // Alternatives in one parameter.
        assert_eq!(
            urls(&search(&defs, &[("context", "a4t1,a1t2")]).unwrap()).len(),
            2
        );
    }

    #[test]
    fn context_is_required_well_formed_and_must_match() {
        let defs = set();
        let missing = search(&defs, &[("_format", "json")]).unwrap_err();
        assert_eq!((missing.status(), missing.issue()), (400, IssueType::Required));
        assert_eq!(missing.expression(), ["context"]);
        for bad in ["", "|", "a4t1,", ","] {
            let e = search(&defs, &[("context", bad)]).unwrap_err();
            assert_eq!((e.status(), e.issue()), (400, IssueType::Value), "{bad:?}");
            assert_eq!(e.expression(), ["context"]);
        }
        for none in [
            "https://fhir.nhs.uk/Id/dos-service-id|1",
            "|2000072489",
            "https://fhir.nhs.uk/Id/ods-organization-code|2000072489",
        ] {
            let e = search(&defs, &[("context", none)]).unwrap_err();
            assert_eq!((e.status(), e.issue()), (404, IssueType::NotFound), "{none}");
        }
        let e = search(&MessageDefinitions::default(), &[("context", "2000072489")]).unwrap_err();
        assert_eq!(e.status(), 404);
    }

    #[test]
    fn looks_up_the_definition_a_message_claims() {
        let defs = set();
        let here = service("2000072489");
        let d = defs.lookup(VALIDATION, Some(&here)).unwrap();
        assert_eq!(d.version, "1.1.0");
        assert_eq!(d.cardinality("Organization"), Some((2, None)));
        assert_eq!(d.cardinality("Patient"), Some((1, Some(1))));
        assert_eq!(d.cardinality("Flag"), Some((0, None)));
        assert_eq!(d.cardinality("Slot"), None);
        assert_eq!(
            defs.lookup(&format!("{VALIDATION}|1.1.0"), Some(&here)).unwrap(),
            d
        );
        assert_eq!(defs.lookup(&format!("{VALIDATION}|1.1.0"), None).unwrap(), d);

        let version = defs
            .lookup(&format!("{VALIDATION}|1.0.0"), Some(&here))
            .unwrap_err();
        assert_eq!(
            version,
            UnsupportedDefinition::Version {
                url: VALIDATION.into(),
                version: "1.0.0".into(),
                supported: vec!["1.1.0".into()]
            }
        );
        let refusal = version.to_rec_error();
        assert_eq!(
            (refusal.status(), refusal.issue()),
            (422, IssueType::NotSupported)
        );
        assert_eq!(refusal.expression(), ["Bundle.entry[0].resource.definition"]);
        let oo = refusal.to_operation_outcome();
        assert_eq!(
            oo["issue"][0]["expression"][0],
            "Bundle.entry[0].resource.definition"
        );

        assert!(matches!(
            defs.lookup(VALIDATION, Some(&service("2000099999"))),
            Err(UnsupportedDefinition::Service { .. })
        ));
        assert!(matches!(
            defs.lookup(
                "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-referral",
                None
            ),
            Err(UnsupportedDefinition::Definition { .. })
        ));
        assert!(MessageDefinitions::default().lookup(BOOKING, None).is_err());
    }

    #[test]
    fn lists_each_url_once_for_the_capability_statement() {
        let mut defs = set().supported;
        defs.push(supported(BOOKING, &["3"], &["a1t3"]));
        assert_eq!(MessageDefinitions::new(defs).urls(), [VALIDATION, BOOKING]);
    }
}
