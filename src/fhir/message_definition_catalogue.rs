//! The built-in catalogue: the BaRS MessageDefinitions of the implementation guide
//! (NHSDigital/NHSDigital-FHIR-BookingAndReferrals, the `MessageDefinition/` resources of
//! the Core 1.5.0 guide, as published at commit 0cf8fdaa), written out here from their facts:
//! canonical URL, version, title, date, event, and each focus resource with its profile and
//! cardinality. `allowedResponse` is not carried by the guide's resources; it is taken from
//! the Application pages that say which response a request is answered with (cited on each).
//!
//! Also the use-case categories of the `usecases-categories-bars` CodeSystem (version 1.5.0),
//! which configuration is checked against.

/// A BaRS MessageDefinition of the built-in catalogue.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct MessageDefinition {
    /// The canonical URL, e.g.
    /// `https://fhir.nhs.uk/MessageDefinition/bars-message-booking-request`.
    pub url: &'static str,
    /// The business version (`MessageDefinition.version`).
    pub version: &'static str,
    /// A computer-friendly name.
    pub name: &'static str,
    /// The guide's title.
    pub title: &'static str,
    /// The guide's publication date of this version.
    pub date: &'static str,
    /// The `MessageHeader.eventCoding` code (`https://fhir.nhs.uk/CodeSystem/message-events-bars`).
    pub event: &'static str,
    /// The resources a message following it carries, with their cardinality. `Bundle` is the
    /// message bundle itself; every other code counts the bundle's entries of that type. A
    /// code may appear more than once with different profiles ([`MessageDefinition::cardinality`]).
    pub focus: &'static [Focus],
    /// The messages a request is answered with later (asynchronously).
    pub allowed_responses: &'static [AllowedResponse],
    /// The use-case categories the guide's own resource names for it (the development set).
    pub guide_categories: &'static [&'static str],
}

/// `MessageDefinition.focus`: a resource type, its profile and its cardinality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Focus {
    /// The resource type (`Patient`).
    pub code: &'static str,
    /// The profile it must conform to.
    pub profile: &'static str,
    /// At least this many.
    pub min: u32,
    /// At most this many; `None` is `*`.
    pub max: Option<u32>,
}

/// `MessageDefinition.allowedResponse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct AllowedResponse {
    /// The canonical URL of the response's MessageDefinition.
    pub message: &'static str,
    /// When it is sent.
    pub situation: &'static str,
}

impl MessageDefinition {
    /// `url|version`, the canonical as `MessageHeader.definition` may carry it.
    pub fn canonical(&self) -> String {
        format!("{}|{}", self.url, self.version)
    }

    /// How many entries of resource type `code` a message may carry, over every focus entry of
    /// that code (`min` and `max` summed; `max` `None` when any is `*`); `None` when the
    /// definition does not name the type. Entries of one code told apart only by profile
    /// (`Flag`, `Location`) cannot be counted apart without profile validation.
    pub fn cardinality(&self, code: &str) -> Option<(u32, Option<u32>)> {
        let mut entries = self.focus.iter().filter(|f| f.code == code).peekable();
        entries.peek()?;
        Some(entries.fold((0, Some(0)), |(min, max), f| {
            (min + f.min, max.zip(f.max).map(|(a, b)| a + b))
        }))
    }
}

/// Profiles by the package they come from: BaRS, UK Core, HL7 base.
macro_rules! bars {
    ($name:literal) => {
        concat!("https://fhir.nhs.uk/StructureDefinition/", $name)
    };
}
macro_rules! uk_core {
    ($name:literal) => {
        concat!("https://fhir.hl7.org.uk/StructureDefinition/", $name)
    };
}
macro_rules! hl7 {
    ($name:literal) => {
        concat!("http://hl7.org/fhir/StructureDefinition/", $name)
    };
}

/// A focus entry; `max` `None` is `*`.
const fn focus(code: &'static str, profile: &'static str, min: u32, max: Option<u32>) -> Focus {
    Focus {
        code,
        profile,
        min,
        max,
    }
}

const ONE: Option<u32> = Some(1);
const MANY: Option<u32> = None;

/// Every definition of the guide, one version each.
pub(super) static CATALOGUE: [MessageDefinition; 9] = [
    // MessageDefinition/BARS-MessageDefinition-Booking-Request.xml (version 1.0.0).
    MessageDefinition {
        url: "https://fhir.nhs.uk/MessageDefinition/bars-message-booking-request",
        version: "1.0.0",
        name: "BARSMessageDefinitionBookingRequest",
        title: "BARS Message Definition Booking - Request",
        date: "2025-03-24",
        event: "booking-request",
        focus: &[
            focus("Bundle", bars!("BARSBundleMessage"), 1, ONE),
            focus(
                "MessageHeader",
                bars!("BARSMessageHeader-booking-request"),
                1,
                ONE,
            ),
            focus(
                "ServiceRequest",
                bars!("BARSServiceRequest-request-referral"),
                0,
                ONE,
            ),
            focus("Patient", uk_core!("UKCore-Patient"), 1, ONE),
            focus("Location", uk_core!("UKCore-Location"), 0, ONE),
            focus("Organization", uk_core!("UKCore-Organization"), 2, MANY),
            focus("Practitioner", uk_core!("UKCore-Practitioner"), 0, MANY),
            focus("PractitionerRole", uk_core!("UKCore-PractitionerRole"), 0, MANY),
            focus("Consent", uk_core!("UKCore-Consent"), 0, MANY),
            focus("HealthcareService", uk_core!("UKCore-HealthcareService"), 1, ONE),
            focus("Appointment", uk_core!("UKCore-Appointment"), 1, ONE),
            focus("Slot", uk_core!("UKCore-Slot"), 1, ONE),
            focus("Schedule", uk_core!("UKCore-Schedule"), 1, ONE),
        ],
        // A booking is answered synchronously; no asynchronous response is defined.
        allowed_responses: &[],
        guide_categories: &["a1t1"],
    },
    // MessageDefinition/BARSMessageDefinitionBookingRequestCancelled.xml (version 1.0.0).
    MessageDefinition {
        url: "https://fhir.nhs.uk/MessageDefinition/bars-message-booking-request-cancelled",
        version: "1.0.0",
        name: "BARSMessageDefinitionBookingRequestCancelled",
        title: "BARS Message Definition Booking - Request - Cancelled",
        date: "2025-03-24",
        event: "booking-request",
        focus: &[
            focus("Bundle", bars!("BARSBundleMessage"), 1, ONE),
            focus(
                "MessageHeader",
                bars!("BARSMessageHeader-booking-request"),
                1,
                ONE,
            ),
            focus("Patient", uk_core!("UKCore-Patient"), 1, ONE),
            focus("Organization", uk_core!("UKCore-Organization"), 2, MANY),
            focus("Appointment", uk_core!("UKCore-Appointment"), 1, ONE),
        ],
        allowed_responses: &[],
        guide_categories: &["a1t1"],
    },
    // MessageDefinition/BARS-MessageDefinition-ServiceRequest-Request-Referral.xml
    // (version 1.0.0-beta, Application 6; RelatedPerson 0..* added 2026-07-13).
    MessageDefinition {
        url: "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-referral",
        version: "1.0.0-beta",
        name: "BARSMessageDefinitionServiceRequestRequestReferral",
        title: "BARS Message Definition ServiceRequest - Request Referral",
        date: "2026-07-13",
        event: "servicerequest-request",
        focus: &[
            focus("Bundle", bars!("BARSBundleMessage"), 1, ONE),
            focus(
                "MessageHeader",
                bars!("BARSMessageHeader-servicerequest-request"),
                1,
                ONE,
            ),
            focus(
                "ServiceRequest",
                bars!("BARSServiceRequest-request-referral"),
                1,
                ONE,
            ),
            focus("Patient", uk_core!("UKCore-Patient"), 1, ONE),
            focus("Encounter", uk_core!("UKCore-Encounter"), 1, ONE),
            focus("CarePlan", uk_core!("UKCore-CarePlan"), 1, ONE),
            // The guide names this BaRS profile under the UK Core base URL; kept as written.
            focus("Location", uk_core!("BARSLocation-incident-location"), 0, ONE),
            focus("Location", uk_core!("UKCore-Location"), 0, MANY),
            focus("Organization", uk_core!("UKCore-Organization"), 2, MANY),
            focus("Practitioner", uk_core!("UKCore-Practitioner"), 1, MANY),
            focus("PractitionerRole", uk_core!("UKCore-PractitionerRole"), 1, MANY),
            focus("Observation", uk_core!("UKCore-Observation"), 0, MANY),
            focus("Flag", bars!("BARSFlag-scene-safety"), 0, MANY),
            focus("Flag", hl7!("Flag"), 0, MANY),
            focus(
                "MedicationStatement",
                uk_core!("UKCore-MedicationStatement"),
                0,
                MANY,
            ),
            focus(
                "AllergyIntolerance",
                uk_core!("UKCore-AllergyIntolerance"),
                0,
                MANY,
            ),
            focus("Questionnaire", uk_core!("UKCore-Questionnaire"), 0, MANY),
            focus(
                "QuestionnaireResponse",
                uk_core!("UKCore-QuestionnaireResponse"),
                0,
                MANY,
            ),
            focus("Consent", uk_core!("UKCore-Consent"), 1, MANY),
            focus("HealthcareService", uk_core!("UKCore-HealthcareService"), 1, MANY),
            focus("Condition", uk_core!("UKCore-Condition"), 0, MANY),
            focus("Task", uk_core!("UKCore-Task"), 0, MANY),
            focus("Communication", uk_core!("UKCore-Communication"), 0, MANY),
            focus("Procedure", uk_core!("UKCore-Procedure"), 0, MANY),
            focus("Device", hl7!("Device"), 0, ONE),
            focus("RelatedPerson", uk_core!("UKCore-RelatedPerson"), 0, MANY),
        ],
        // Application 6, "Payloads for Responses": status updates and rejections are a
        // Referral Response (referral-short).
        allowed_responses: &[AllowedResponse {
            message: "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-response-referral-short",
            situation: "Status updates on the referral (accepted, resource allocated, arrived, cancelled, completed), or its rejection (Mutual Aid and Call Assist requests only).",
        }],
        guide_categories: &["a6t1", "a6t2", "a6t3"],
    },
    // MessageDefinition/BARS-MessageDefinition-ServiceRequest-Request-Validation.xml
    // (version 1.1.0, Application 4).
    MessageDefinition {
        url: "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-validation",
        version: "1.1.0",
        name: "BARSMessageDefinitionServiceRequestRequestValidation",
        title: "BARS Message Definition ServiceRequest - Request Validation",
        date: "2025-03-24",
        event: "servicerequest-request",
        focus: &[
            focus("Bundle", bars!("BARSBundleMessage"), 1, ONE),
            focus(
                "MessageHeader",
                bars!("BARSMessageHeader-servicerequest-request"),
                1,
                ONE,
            ),
            focus(
                "ServiceRequest",
                bars!("BARSServiceRequest-request-validation"),
                1,
                ONE,
            ),
            focus("Patient", uk_core!("UKCore-Patient"), 1, ONE),
            focus("Encounter", uk_core!("UKCore-Encounter"), 1, ONE),
            focus("CarePlan", uk_core!("UKCore-CarePlan"), 1, ONE),
            focus("Location", uk_core!("UKCore-Location"), 1, ONE),
            focus("Organization", uk_core!("UKCore-Organization"), 2, MANY),
            focus("Practitioner", uk_core!("UKCore-Practitioner"), 1, MANY),
            focus("PractitionerRole", uk_core!("UKCore-PractitionerRole"), 1, MANY),
            focus("Observation", uk_core!("UKCore-Observation"), 0, MANY),
            focus("Flag", bars!("BARSFlag-scene-safety"), 0, MANY),
            focus("Flag", hl7!("Flag"), 0, MANY),
            focus("Consent", uk_core!("UKCore-Consent"), 1, MANY),
            focus(
                "MedicationStatement",
                uk_core!("UKCore-MedicationStatement"),
                0,
                MANY,
            ),
            focus(
                "AllergyIntolerance",
                uk_core!("UKCore-AllergyIntolerance"),
                0,
                MANY,
            ),
            focus("HealthcareService", uk_core!("UKCore-HealthcareService"), 1, ONE),
        ],
        // Application 4, "Payloads for Responders": an interim response (assessment started,
        // or the request rejected), then the validation outcome.
        allowed_responses: &[
            AllowedResponse {
                message: "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-response-validation-interim",
                situation: "The responder has started the assessment, or rejects the validation request.",
            },
            AllowedResponse {
                message: "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-response-validation-full",
                situation: "The outcome of the validation.",
            },
        ],
        guide_categories: &["a4t1"],
    },
    // MessageDefinition/BARSMessageDefinitionServiceRequestRequestCancelled.xml (version 1.0.0).
    MessageDefinition {
        url: "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-cancelled",
        version: "1.0.0",
        name: "BARSMessageDefinitionServiceRequestRequestCancelled",
        title: "BARS Message Definition ServiceRequest - Request - Cancelled",
        date: "2025-03-24",
        event: "servicerequest-request",
        focus: &[
            focus("Bundle", bars!("BARSBundleMessage"), 1, ONE),
            focus(
                "MessageHeader",
                bars!("BARSMessageHeader-servicerequest-request"),
                1,
                ONE,
            ),
            focus(
                "ServiceRequest",
                bars!("BARSServiceRequest-request-referral"),
                1,
                ONE,
            ),
            focus("Patient", uk_core!("UKCore-Patient"), 1, ONE),
            focus("Organization", uk_core!("UKCore-Organization"), 2, MANY),
        ],
        allowed_responses: &[],
        guide_categories: &["a1t1"],
    },
    // MessageDefinition/BARS-MessageDefinition-ServiceRequest-Response-Referral.xml
    // (version 1.0.0-beta; RelatedPerson 0..* added 2026-07-13).
    MessageDefinition {
        url: "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-response-referral",
        version: "1.0.0-beta",
        name: "BARSMessageDefinitionServiceRequestResponseReferral",
        title: "BARS Message Definition ServiceRequest - Response Referral",
        date: "2026-07-13",
        event: "servicerequest-response",
        focus: &[
            focus("Bundle", bars!("BARSBundleMessage"), 1, ONE),
            // The guide names the request's MessageHeader profile here, although the event
            // is a response; kept as written.
            focus(
                "MessageHeader",
                bars!("BARSMessageHeader-servicerequest-request"),
                1,
                ONE,
            ),
            focus(
                "ServiceRequest",
                bars!("BARSServiceRequest-request-referral"),
                1,
                ONE,
            ),
            focus("Patient", uk_core!("UKCore-Patient"), 1, ONE),
            focus("Encounter", uk_core!("UKCore-Encounter"), 0, ONE),
            focus("CarePlan", uk_core!("UKCore-CarePlan"), 0, ONE),
            focus("Location", uk_core!("UKCore-Location"), 0, ONE),
            focus("Organization", uk_core!("UKCore-Organization"), 2, MANY),
            focus("Practitioner", uk_core!("UKCore-Practitioner"), 1, MANY),
            focus("PractitionerRole", uk_core!("UKCore-PractitionerRole"), 1, MANY),
            focus("Observation", uk_core!("UKCore-Observation"), 0, MANY),
            focus("Flag", bars!("BARSFlag-scene-safety"), 0, MANY),
            focus("Flag", hl7!("Flag"), 0, MANY),
            focus(
                "MedicationStatement",
                uk_core!("UKCore-MedicationStatement"),
                0,
                MANY,
            ),
            focus(
                "AllergyIntolerance",
                uk_core!("UKCore-AllergyIntolerance"),
                0,
                MANY,
            ),
            focus(
                "QuestionnaireResponse",
                uk_core!("UKCore-QuestionnaireResponse"),
                0,
                MANY,
            ),
            focus("Consent", uk_core!("UKCore-Consent"), 1, MANY),
            focus("HealthcareService", uk_core!("UKCore-HealthcareService"), 1, ONE),
            focus("Appointment", uk_core!("UKCore-Appointment"), 0, ONE),
            focus("Condition", uk_core!("UKCore-Condition"), 0, MANY),
            focus("Task", uk_core!("UKCore-Task"), 0, MANY),
            focus("RelatedPerson", uk_core!("UKCore-RelatedPerson"), 0, MANY),
        ],
        allowed_responses: &[],
        guide_categories: &["a6t3"],
    },
    // MessageDefinition/BARS-MessageDefinition-ServiceRequest-Response-Referral-Short.xml
    // (version 1.0.0-beta).
    MessageDefinition {
        url: "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-response-referral-short",
        version: "1.0.0-beta",
        name: "BARSMessageDefinitionServiceRequestResponseReferralShort",
        title: "BARS Message Definition ServiceRequest - Response Referral Short",
        date: "2026-03-24",
        event: "servicerequest-response",
        focus: &[
            focus("Bundle", bars!("BARSBundleMessage"), 1, ONE),
            focus(
                "MessageHeader",
                bars!("BARSMessageHeader-servicerequest-response"),
                1,
                ONE,
            ),
            focus(
                "ServiceRequest",
                bars!("BARSServiceRequest-request-referral"),
                1,
                ONE,
            ),
            focus("Patient", uk_core!("UKCore-Patient"), 1, ONE),
            focus("Encounter", uk_core!("UKCore-Encounter"), 2, Some(2)),
            focus("Organization", uk_core!("UKCore-Organization"), 2, MANY),
            focus("Practitioner", uk_core!("UKCore-Practitioner"), 1, MANY),
            focus("PractitionerRole", uk_core!("UKCore-PractitionerRole"), 1, MANY),
            focus("HealthcareService", uk_core!("UKCore-HealthcareService"), 0, MANY),
        ],
        allowed_responses: &[],
        guide_categories: &["a6t1"],
    },
    // MessageDefinition/BARS-MessageDefinition-ServiceRequest-Response-Validation-Full.xml
    // (version 1.1.0, Application 4).
    MessageDefinition {
        url: "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-response-validation-full",
        version: "1.1.0",
        name: "BARSMessageDefinitionServiceRequestResponseValidationFull",
        title: "BARS Message Definition ServiceRequest - Response Validation Full",
        date: "2025-03-24",
        event: "servicerequest-response",
        focus: &[
            focus("Bundle", bars!("BARSBundleMessage"), 1, ONE),
            focus(
                "MessageHeader",
                bars!("BARSMessageHeader-servicerequest-response"),
                1,
                ONE,
            ),
            focus(
                "ServiceRequest",
                bars!("BARSServiceRequest-request-validation"),
                1,
                ONE,
            ),
            focus("Patient", uk_core!("UKCore-Patient"), 1, ONE),
            focus("Encounter", uk_core!("UKCore-Encounter"), 2, Some(3)),
            focus("CarePlan", uk_core!("UKCore-CarePlan"), 1, ONE),
            focus("Location", uk_core!("UKCore-Location"), 1, ONE),
            focus("Organization", uk_core!("UKCore-Organization"), 2, MANY),
            focus("Practitioner", uk_core!("UKCore-Practitioner"), 1, MANY),
            focus("PractitionerRole", uk_core!("UKCore-PractitionerRole"), 1, MANY),
            focus("Observation", uk_core!("UKCore-Observation"), 0, MANY),
            focus("Flag", bars!("BARSFlag-scene-safety"), 0, MANY),
            focus("Flag", hl7!("Flag"), 0, MANY),
            focus("Consent", uk_core!("UKCore-Consent"), 1, MANY),
            focus(
                "MedicationStatement",
                uk_core!("UKCore-MedicationStatement"),
                0,
                MANY,
            ),
            focus(
                "AllergyIntolerance",
                uk_core!("UKCore-AllergyIntolerance"),
                0,
                MANY,
            ),
            focus("HealthcareService", uk_core!("UKCore-HealthcareService"), 1, ONE),
        ],
        allowed_responses: &[],
        guide_categories: &["a4t1"],
    },
    // MessageDefinition/BARS-MessageDefinition-ServiceRequest-Response-Validation-Interim.xml
    // (version 1.1.0, Application 4).
    MessageDefinition {
        url: "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-response-validation-interim",
        version: "1.1.0",
        name: "BARSMessageDefinitionServiceRequestResponseValidationInterim",
        title: "BARS Message Definition ServiceRequest - Response Validation Interim",
        date: "2025-03-24",
        event: "servicerequest-response",
        focus: &[
            focus("Bundle", bars!("BARSBundleMessage"), 1, ONE),
            focus(
                "MessageHeader",
                bars!("BARSMessageHeader-servicerequest-response"),
                1,
                ONE,
            ),
            focus(
                "ServiceRequest",
                bars!("BARSServiceRequest-request-validation"),
                1,
                ONE,
            ),
            focus("Patient", uk_core!("UKCore-Patient"), 1, ONE),
            focus("Encounter", uk_core!("UKCore-Encounter"), 2, Some(2)),
            focus("Organization", uk_core!("UKCore-Organization"), 1, MANY),
            focus("Practitioner", uk_core!("UKCore-Practitioner"), 1, MANY),
            focus("PractitionerRole", uk_core!("UKCore-PractitionerRole"), 1, MANY),
            focus("HealthcareService", uk_core!("UKCore-HealthcareService"), 0, MANY),
        ],
        allowed_responses: &[],
        guide_categories: &["a4t1"],
    },
];

/// The code system of the use-case categories.
pub const USE_CASE_SYSTEM: &str = "https://fhir.nhs.uk/CodeSystem/usecases-categories-bars";

/// The concepts of [`USE_CASE_SYSTEM`] (CodeSystem/usecases-categories-bars.xml, version
/// 1.5.0), code and display.
pub(super) static USE_CASES: [(&str, &str); 34] = [
    ("a1t1", "111 to ED"),
    ("a1t2", "111 to UTC"),
    ("a1t3", "IUC CAS to ED"),
    ("a1t4", "IUC CAS to UTC"),
    ("a1t5", "999 to ED"),
    ("a1t6", "999 to UTC"),
    ("a1t7", "111 to SDEC"),
    ("a1t8", "IUC CAS to SDEC"),
    ("a1t9", "999 to SDEC"),
    ("a1t10", "111 to UEC"),
    ("a1t11", "IUC CAS to UEC"),
    ("a1t12", "999 to UEC"),
    ("a2t1", "111 Online to ED"),
    ("a2t2", "111 Online to UTC"),
    ("a2t3", "S and R to ED"),
    ("a2t4", "S and R to UTC"),
    ("a2t5", "111 Online to UEC"),
    ("a2t6", "S and R to UEC"),
    ("a3t1", "999 to CAS Referral"),
    ("a4t1", "999 to CAS Validation"),
    ("a4t2", "999 to Falls"),
    ("a4t3", "999 to Community Services"),
    ("a4t4", "999 to UEC Validation"),
    ("a5t1", "Primary Care to Community Pharmacy"),
    ("a5t2", "Primary Care to Pharmacy Contraception"),
    ("a5t3", "Primary Care to Pharmacy Blood Pressure Check Service"),
    ("referraltopharmacy", "Primary Care to Pharmacy to Deprecated"),
    ("a6t1", "CAD to CAD Out of Area Referral"),
    ("a6t2", "CAD to CAD Call Assist Request"),
    ("a6t3", "CAD to CAD Mutual Aid Request"),
    ("a7t1", "Patient Facing Services to Primary Care"),
    ("a8t1", "AG to e-RS"),
    ("a8t2", "111 Online to e-RS"),
    ("a8t3", "nhs.uk to e-RS"),
];

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://fhir.nhs.uk/MessageDefinition/";

    #[test]
    fn every_definition_is_a_bars_canonical_with_its_bundle_and_header() {
        for d in &CATALOGUE {
            assert!(d.url.starts_with(BASE), "{}", d.url);
            assert_eq!(d.focus[0].code, "Bundle", "{}", d.url);
            assert_eq!(d.focus[1].code, "MessageHeader", "{}", d.url);
            assert!(d.focus.iter().all(|f| f.max.is_none_or(|max| max >= f.min)));
            for response in d.allowed_responses {
                assert!(
                    CATALOGUE.iter().any(|r| r.url == response.message),
                    "{} answers with {}, which is not in the catalogue",
                    d.url,
                    response.message
                );
            }
            for code in d.guide_categories {
                assert!(USE_CASES.iter().any(|(c, _)| c == code), "{code}");
            }
        }
        let mut urls: Vec<_> = CATALOGUE.iter().map(|d| d.url).collect();
        urls.sort_unstable();
        urls.dedup();
        assert_eq!(urls.len(), CATALOGUE.len(), "one version of each definition");
    }
}
