//! What `dev-stack` keeps in its directory. Generated once, when missing: the development
//! PKI, the two sender applications (signing key, JWKS, API key) and the example message.
//! Written at every start, because they carry the addresses in use: the dev proxy's
//! configuration, the endpoint catalogue and the two receivers' configurations.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use serde_json::json;
use uuid::Uuid;

use super::DevStackError;
use crate::pki::{ApimKeyPair, DevPki, DevPkiOptions, dev_pki_present};
use crate::private_files;

/// The referrer's service (receiver A).
pub const REFERRER_SERVICE: &str = "https://fhir.nhs.uk/Id/dos-service-id|2000000001";
/// The service the referrer sends to (receiver B).
pub const SERVICE_SERVICE: &str = "https://fhir.nhs.uk/Id/dos-service-id|2000000002";

/// One side of the conversation: a receiver that also sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A: sends the validation request, receives the response.
    Referrer,
    /// B: receives the request, sends the response.
    Service,
}

impl Role {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Referrer => "referrer",
            Self::Service => "service",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Referrer => "receiver A, the referrer",
            Self::Service => "receiver B, the service",
        }
    }

    pub(crate) fn service(self) -> &'static str {
        match self {
            Self::Referrer => REFERRER_SERVICE,
            Self::Service => SERVICE_SERVICE,
        }
    }

    fn kid(self) -> &'static str {
        match self {
            Self::Referrer => "DevReferrer-INT-1",
            Self::Service => "DevService-INT-1",
        }
    }

    fn ods(self) -> &'static str {
        match self {
            Self::Referrer => "A1001",
            Self::Service => "X26",
        }
    }
}

/// The paths of everything in the stack's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StackFiles {
    /// The directory.
    pub dir: PathBuf,
    /// The development PKI.
    pub certs: PathBuf,
    /// The sender applications' keys.
    pub keys: PathBuf,
    /// The dev proxy's configuration.
    pub proxy_config: PathBuf,
    /// The endpoint catalogue.
    pub catalogue: PathBuf,
    /// Receiver A's configuration (with its `[sender]`).
    pub referrer_config: PathBuf,
    /// Receiver B's configuration (with its `[sender]`).
    pub service_config: PathBuf,
    /// Receiver A's inbox.
    pub referrer_inbox: PathBuf,
    /// Receiver B's inbox.
    pub service_inbox: PathBuf,
    /// A validation request from A to B.
    pub message: PathBuf,
}

/// The addresses in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Addresses {
    pub(crate) proxy: SocketAddr,
    pub(crate) referrer: SocketAddr,
    pub(crate) service: SocketAddr,
    pub(crate) proxy_source: IpAddr,
}

impl StackFiles {
    pub(crate) fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
            certs: dir.join("certs"),
            keys: dir.join("keys"),
            proxy_config: dir.join("dev-proxy.toml"),
            catalogue: dir.join("catalogue.toml"),
            referrer_config: dir.join("referrer.toml"),
            service_config: dir.join("service.toml"),
            referrer_inbox: dir.join("referrer").join("inbox.db"),
            service_inbox: dir.join("service").join("inbox.db"),
            message: dir.join("validation-request.json"),
        }
    }

    pub(crate) fn config(&self, role: Role) -> &Path {
        match role {
            Role::Referrer => &self.referrer_config,
            Role::Service => &self.service_config,
        }
    }

    pub(crate) fn inbox(&self, role: Role) -> &Path {
        match role {
            Role::Referrer => &self.referrer_inbox,
            Role::Service => &self.service_inbox,
        }
    }

    fn private_key(&self, role: Role) -> PathBuf {
        self.keys.join(format!("{}.pem", role.kid()))
    }

    fn jwks(&self, role: Role) -> PathBuf {
        self.keys.join(format!("{}.jwks.json", role.kid()))
    }

    fn api_key_file(&self, role: Role) -> PathBuf {
        self.keys.join(format!("{}.api-key", role.kid()))
    }

    fn cert(&self, name: &str) -> PathBuf {
        self.certs.join(name)
    }

    /// Generates what is missing; returns what was made, for the user.
    pub(crate) fn generate_missing(&self) -> Result<Vec<String>, DevStackError> {
        let mut made = Vec::new();
        create_private_dir(&self.dir)?;
        if !dev_pki_present(&self.certs) {
            DevPki::generate(&DevPkiOptions::default())?.write(&self.certs, true)?;
            made.push(format!("development PKI in {}", self.certs.display()));
        }
        for role in [Role::Referrer, Role::Service] {
            let complete = [self.private_key(role), self.jwks(role), self.api_key_file(role)]
                .iter()
                .all(|p| p.is_file());
            if !complete {
                ApimKeyPair::generate(role.kid())?.write(&self.keys, true)?;
                let api_key = format!("dev-{}-{}", role.name(), Uuid::new_v4().simple());
                write_file(&self.api_key_file(role), &api_key, true)?;
                made.push(format!(
                    "sender application for {} (kid {}, its key, JWKS and API key) in {}",
                    role.describe(),
                    role.kid(),
                    self.keys.display()
                ));
            }
        }
        if !self.message.is_file() {
            write_file(&self.message, &format!("{:#}\n", validation_request()), false)?;
            made.push(format!("example validation request {}", self.message.display()));
        }
        Ok(made)
    }

    /// Writes the configurations that carry the addresses in use.
    pub(crate) fn write_configs(&self, addresses: &Addresses) -> Result<(), DevStackError> {
        write_file(&self.catalogue, &self.catalogue_toml(addresses), false)?;
        write_file(&self.proxy_config, &self.proxy_toml(addresses)?, true)?;
        for role in [Role::Referrer, Role::Service] {
            write_file(self.config(role), &self.receiver_toml(role, addresses)?, true)?;
        }
        Ok(())
    }

    fn api_key(&self, role: Role) -> Result<String, DevStackError> {
        let path = self.api_key_file(role);
        std::fs::read_to_string(&path)
            .map(|k| k.trim().to_owned())
            .map_err(|source| DevStackError::Io { path, source })
    }

    fn catalogue_toml(&self, a: &Addresses) -> String {
        format!(
            "# Written by bars-receiver dev-stack at every start: the dev proxy's endpoint catalogue.\n\
             # Which receiver base URL serves each target service (NHSD-Target-Identifier).\n\n\
             [[endpoint]]\n# {}\nservice = {}\nurl = {}\n\n\
             [[endpoint]]\n# {}\nservice = {}\nurl = {}\n",
            Role::Referrer.describe(),
            q(REFERRER_SERVICE),
            q(&format!("https://{}", a.referrer)),
            Role::Service.describe(),
            q(SERVICE_SERVICE),
            q(&format!("https://{}", a.service)),
        )
    }

    fn proxy_toml(&self, a: &Addresses) -> Result<String, DevStackError> {
        let p = |path: PathBuf| q(&path.display().to_string());
        let mut text = format!(
            "# Written by bars-receiver dev-stack at every start (see config/dev-proxy.toml for every key).\n\
             # The local stand-in for the BaRS API and API-M. Development only.\n\n\
             [listen]\naddress = {listen}\nshutdown_grace = \"5s\"\n\n\
             [tls]\ncert_chain = {chain}\nprivate_key = {key}\n\n\
             [catalogue]\nfile = {catalogue}\n\n\
             [forward]\nsource_address = {source}\nclient_cert = {client}\nclient_key = {client_key}\n\
             receiver_ca = [{ca}]\ntimeout = \"32s\"\n",
            listen = q(&a.proxy.to_string()),
            chain = p(self.cert("server-chain.pem")),
            key = p(self.cert("server.key")),
            catalogue = p(self.catalogue.clone()),
            source = q(&a.proxy_source.to_string()),
            client = p(self.cert("client.pem")),
            client_key = p(self.cert("client.key")),
            ca = p(self.cert("ca-bundle.pem")),
        );
        for role in [Role::Referrer, Role::Service] {
            text.push_str(&format!(
                "\n[[application]]\nname = {}\napi_key = {}\njwks = {}\n",
                q(&format!("dev-stack {}", role.describe())),
                q(&self.api_key(role)?),
                p(self.jwks(role)),
            ));
        }
        Ok(text)
    }

    fn receiver_toml(&self, role: Role, a: &Addresses) -> Result<String, DevStackError> {
        let p = |path: PathBuf| q(&path.display().to_string());
        let listen = match role {
            Role::Referrer => a.referrer,
            Role::Service => a.service,
        };
        Ok(format!(
            "# Written by bars-receiver dev-stack at every start: {describe}.\n\
             # A receiver configuration (see config/dev.toml for every key) with a [sender] that\n\
             # sends through the dev proxy. `bars-receiver send --config` and `inbox --config` read it.\n\n\
             environment = \"dev\"\n\n\
             [listen]\naddress = {listen}\nshutdown_grace = \"5s\"\n\n\
             [tls]\ncert_chain = {chain}\nprivate_key = {key}\nclient_ca = [{ca}]\n\
             # The dev proxy's client certificate, shaped like the INT proxy's.\n\
             allowed_client_names = [\"int.api.service.nhs.uk\"]\n\n\
             [allowlist]\n# Only the dev proxy's source address, as only the national proxy's addresses in INT.\n\
             sources = [{source}]\n\n\
             [receiver]\nservices = [{service}]\nname = {name}\n\n\
             [inbox]\npath = {inbox}\n\n\
             [admin]\nenabled = false\n\n\
             [reload]\nwatch_interval = \"0s\"\n\n\
             [sender]\nmode = \"signed-jwt\"\napi_key = {api_key}\nprivate_key = {private_key}\nkid = {kid}\n\
             token_url = {token_url}\nbase_url = {base_url}\nca_file = {ca}\n\
             ods_code = {ods}\norganisation_name = {name}\nretry_backoff = \"500ms\"\n",
            describe = role.describe(),
            listen = q(&listen.to_string()),
            chain = p(self.cert("server-chain.pem")),
            key = p(self.cert("server.key")),
            ca = p(self.cert("ca-bundle.pem")),
            source = q(&format!(
                "{}/{}",
                a.proxy_source,
                if a.proxy_source.is_ipv4() { 32 } else { 128 }
            )),
            service = q(role.service()),
            name = q(&format!("dev-stack {}", role.describe())),
            inbox = p(self.inbox(role).to_owned()),
            api_key = q(&self.api_key(role)?),
            private_key = p(self.private_key(role)),
            kid = q(role.kid()),
            token_url = q(&format!("https://{}/oauth2/token", a.proxy)),
            base_url = q(&format!("https://{}/booking-and-referral/FHIR/R4", a.proxy)),
            ods = q(role.ods()),
        ))
    }
}

/// A validation request from A to B (synthetic patient data only).
fn validation_request() -> serde_json::Value {
    let id = |_: &str| format!("urn:uuid:{}", Uuid::new_v4());
    let (header, request, patient, receiving, referring) = (id("h"), id("sr"), id("p"), id("to"), id("from"));
    let (encounter, plan, location, practitioner, role, consent, service) =
        (id("e"), id("cp"), id("l"), id("pr"), id("r"), id("c"), id("hs"));
    json!({
        "resourceType": "Bundle",
        "id": Uuid::new_v4().to_string(),
        "meta": {"versionId": "1.4.0", "profile": ["https://fhir.nhs.uk/StructureDefinition/BARSBundleMessage"]},
        "type": "message",
        "timestamp": "2026-01-05T09:30:00+00:00",
        "entry": [
            {"fullUrl": header, "resource": {
                "resourceType": "MessageHeader",
                "eventCoding": {"system": crate::fhir::EVENT_SYSTEM, "code": "servicerequest-request"},
                "destination": [{"endpoint": SERVICE_SERVICE, "receiver": {"reference": receiving}}],
                "sender": {"reference": referring},
                "source": {"name": "dev-stack referrer (A)", "software": "bars-receiver", "endpoint": REFERRER_SERVICE},
                "reason": {"coding": [{"system": crate::fhir::REASON_SYSTEM, "code": "new"}]},
                "focus": [{"reference": request}],
                "definition": "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-validation",
            }},
            {"fullUrl": request, "resource": {
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "plan",
                "category": [{"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/usecases-categories-bars", "code": "validation"}]}],
                "subject": {"reference": patient},
                "authoredOn": "2026-01-05T09:29:00+00:00",
                "requester": {"reference": referring},
            }},
            {"fullUrl": patient, "resource": {
                "resourceType": "Patient",
                "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9999999999"}],
                "name": [{"family": "TEST-PATIENT", "given": ["Example"]}],
                "birthDate": "1970-01-01",
            }},
            {"fullUrl": receiving, "resource": {
                "resourceType": "Organization",
                "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": Role::Service.ods()}],
                "name": "dev-stack service (B)",
            }},
            {"fullUrl": referring, "resource": {
                "resourceType": "Organization",
                "identifier": [{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": Role::Referrer.ods()}],
                "name": "dev-stack referrer (A)",
            }},
            // The other focus resources bars-message-servicerequest-request-validation requires.
            {"fullUrl": encounter, "resource": {
                "resourceType": "Encounter",
                "status": "triaged",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "EMER"},
                "subject": {"reference": patient},
            }},
            {"fullUrl": plan, "resource": {
                "resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": {"reference": patient},
            }},
            {"fullUrl": location, "resource": {"resourceType": "Location", "name": "Incident location"}},
            {"fullUrl": practitioner, "resource": {"resourceType": "Practitioner"}},
            {"fullUrl": role, "resource": {"resourceType": "PractitionerRole", "practitioner": {"reference": practitioner}}},
            {"fullUrl": consent, "resource": {
                "resourceType": "Consent",
                "status": "active",
                "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
                "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
            }},
            {"fullUrl": service, "resource": {"resourceType": "HealthcareService", "name": "dev-stack service (B)"}},
        ],
    })
}

/// A TOML basic string.
fn q(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn create_private_dir(dir: &Path) -> Result<(), DevStackError> {
    private_files::create_private_dir(dir).map_err(|source| DevStackError::Io {
        path: dir.to_owned(),
        source,
    })
}

/// Writes `text` to `path`; `secret` files (API keys, configurations holding them) are 0600.
fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), DevStackError> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    private_files::write_file(path, text.as_bytes(), secret).map_err(|source| DevStackError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_request_is_a_valid_message_from_a_to_b() {
        let message = crate::fhir::MessageBundle::parse(validation_request()).unwrap();
        assert_eq!(message.destination_endpoints, [SERVICE_SERVICE]);
        assert_eq!(message.source_endpoint.as_deref(), Some(REFERRER_SERVICE));
        assert_eq!(message.focus_type, "ServiceRequest");
    }
}
