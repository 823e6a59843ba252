//! `$process-message` conformance end to end, through the real server and a real TLS
//! client: every refusal of the BaRS profiles and MessageDefinitions with its exact status,
//! REC_ code, issue type and FHIRPath `expression`; the receiver-assigned ids of the 200,
//! and the same bundle in `inbox show`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use uuid::Uuid;

use crate::common::{Bars, RECEIVER_ODS, ServerOptions, TestServer, bin, minimal_message};

const SERVICE: &str = "https://fhir.nhs.uk/Id/dos-service-id|111111111";
const HEADER: &str = "Bundle.entry[0].resource";

/// A receiver that handles [`SERVICE`] for the organisation [`RECEIVER_ODS`].
fn addressed() -> ServerOptions {
    ServerOptions {
        services: vec![SERVICE.into()],
        receiver_extra: format!("ods_code = \"{RECEIVER_ODS}\""),
        ..ServerOptions::default()
    }
}

fn header(b: &mut Value) -> &mut Value {
    &mut b["entry"][0]["resource"]
}

fn remove(value: &mut Value, name: &str) {
    value.as_object_mut().expect("object").remove(name);
}

type Edit = Box<dyn Fn(&mut Value)>;

/// Each broken rule: the edit of the minimal message, then status, code, issue type and
/// expression.
fn cases() -> Vec<(&'static str, Edit, u16, &'static str, &'static str, String)> {
    let bad = |what, edit: Edit, issue, at: &str| (what, edit, 400, "REC_BAD_REQUEST", issue, at.to_owned());
    let unprocessable = |what, edit: Edit, at: &str| {
        (
            what,
            edit,
            422,
            "REC_UNPROCESSABLE_ENTITY",
            "not-supported",
            at.to_owned(),
        )
    };
    vec![
        bad(
            "empty timestamp",
            Box::new(|b| b["timestamp"] = json!("")),
            "required",
            "Bundle.timestamp",
        ),
        bad(
            "timestamp not a date",
            Box::new(|b| b["timestamp"] = json!("not-a-date")),
            "value",
            "Bundle.timestamp",
        ),
        bad(
            "timestamp without zone",
            Box::new(|b| b["timestamp"] = json!("2026-01-01T00:00:00")),
            "value",
            "Bundle.timestamp",
        ),
        bad(
            "no timestamp",
            Box::new(|b| remove(b, "timestamp")),
            "required",
            "Bundle.timestamp",
        ),
        bad(
            "Bundle.id not a UUID",
            Box::new(|b| b["id"] = json!("bundle-1")),
            "value",
            "Bundle.id",
        ),
        bad(
            "fullUrl not urn:uuid",
            Box::new(|b| b["entry"][2]["fullUrl"] = json!("https://example.org/fhir/Patient/1")),
            "value",
            "Bundle.entry[2].fullUrl",
        ),
        bad(
            "duplicate fullUrl (bdl-7)",
            Box::new(|b| b["entry"][10]["fullUrl"] = b["entry"][9]["fullUrl"].clone()),
            "invariant",
            "Bundle.entry[10].fullUrl",
        ),
        bad(
            "resource id not a FHIR id",
            Box::new(|b| b["entry"][2]["resource"]["id"] = json!("{patient}")),
            "value",
            "Bundle.entry[2].resource.id",
        ),
        bad(
            "no definition",
            Box::new(|b| remove(header(b), "definition")),
            "required",
            &format!("{HEADER}.definition"),
        ),
        bad(
            "no destination",
            Box::new(|b| remove(header(b), "destination")),
            "required",
            &format!("{HEADER}.destination"),
        ),
        bad(
            "no destination endpoint",
            Box::new(|b| remove(&mut header(b)["destination"][0], "endpoint")),
            "required",
            &format!("{HEADER}.destination[0].endpoint"),
        ),
        bad(
            "no destination receiver",
            Box::new(|b| remove(&mut header(b)["destination"][0], "receiver")),
            "required",
            &format!("{HEADER}.destination[0].receiver.reference"),
        ),
        bad(
            "destination receiver outside the bundle",
            Box::new(|b| {
                header(b)["destination"][0]["receiver"]["reference"] =
                    json!("urn:uuid:00000000-0000-4000-8000-000000000000")
            }),
            "invariant",
            &format!("{HEADER}.destination[0].receiver.reference"),
        ),
        bad(
            "sender without reference",
            Box::new(|b| header(b)["sender"] = json!({"display": "someone"})),
            "required",
            &format!("{HEADER}.sender.reference"),
        ),
        bad(
            "no source endpoint",
            Box::new(|b| remove(&mut header(b)["source"], "endpoint")),
            "required",
            &format!("{HEADER}.source.endpoint"),
        ),
        bad(
            "source endpoint not system|value",
            Box::new(|b| header(b)["source"]["endpoint"] = json!("somewhere")),
            "value",
            &format!("{HEADER}.source.endpoint"),
        ),
        bad(
            "definition of another event",
            Box::new(|b| {
                header(b)["definition"] =
                    json!("https://fhir.nhs.uk/MessageDefinition/bars-message-booking-request")
            }),
            "invariant",
            &format!("{HEADER}.definition"),
        ),
        bad(
            "mandatory focus resource missing",
            Box::new(|b| {
                b["entry"].as_array_mut().unwrap().remove(6); // the CarePlan
            }),
            "required",
            "Bundle.entry",
        ),
        bad(
            "focus resource over its maximum",
            Box::new(|b| {
                let mut extra = b["entry"][1].clone();
                extra["fullUrl"] = json!(format!("urn:uuid:{}", Uuid::new_v4()));
                b["entry"].as_array_mut().unwrap().push(extra);
            }),
            "structure",
            "Bundle.entry[11].resource",
        ),
        bad(
            "ServiceRequest.intent not the fixed plan",
            Box::new(|b| b["entry"][1]["resource"]["intent"] = json!("order")),
            "value",
            "Bundle.entry[1].resource.intent",
        ),
        bad(
            "ServiceRequest.status missing",
            Box::new(|b| remove(&mut b["entry"][1]["resource"], "status")),
            "required",
            "Bundle.entry[1].resource.status",
        ),
        bad(
            "Encounter.status outside its value set",
            Box::new(|b| b["entry"][5]["resource"]["status"] = json!("sleeping")),
            "value",
            "Bundle.entry[5].resource.status",
        ),
        unprocessable(
            "unsupported definition",
            Box::new(|b| {
                header(b)["definition"] =
                    json!("https://fhir.nhs.uk/MessageDefinition/bars-message-pizza-order")
            }),
            &format!("{HEADER}.definition"),
        ),
        unprocessable(
            "unsupported definition version",
            Box::new(|b| {
                header(b)["definition"] = json!(
                    "https://fhir.nhs.uk/MessageDefinition/bars-message-servicerequest-request-referral|9.0.0"
                )
            }),
            &format!("{HEADER}.definition"),
        ),
        unprocessable(
            "destination endpoint not a service of this receiver",
            Box::new(|b| {
                header(b)["destination"][0]["endpoint"] =
                    json!("https://fhir.nhs.uk/Id/dos-service-id|999999999")
            }),
            &format!("{HEADER}.destination[0].endpoint"),
        ),
        unprocessable(
            "destination receiver not this organisation",
            Box::new(|b| b["entry"][3]["resource"]["identifier"][0]["value"] = json!("X9999")),
            &format!("{HEADER}.destination[0].receiver"),
        ),
    ]
}

#[tokio::test]
async fn refuses_each_broken_profile_or_definition_rule_with_its_code_and_expression() {
    let server = TestServer::start(addressed()).await;
    let cases = cases();
    assert!(cases.len() >= 25);
    for (what, edit, status, code, issue, expression) in cases {
        let mut bundle = minimal_message();
        edit(&mut bundle);
        let bars = Bars::default();
        let reply = server
            .client()
            .send(server.addr, bars.message(bundle.to_string()))
            .await;
        eprintln!("{what}");
        reply.assert_outcome(status, code, issue);
        let outcome = reply.json();
        assert_eq!(
            outcome["issue"][0]["expression"],
            json!([expression]),
            "{what}: {outcome}"
        );
        // Input that failed validation is never reflected.
        assert!(
            !String::from_utf8_lossy(&reply.body).contains("9999999999"),
            "{what}: {outcome}"
        );
    }
    assert_eq!(server.inbox_count(), 0, "nothing refused was stored");
    // The same message unbroken is accepted by this receiver.
    let reply = server
        .client()
        .send(
            server.addr,
            Bars::default().message(minimal_message().to_string()),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
}

/// Shows the inbox record of `request_id` with the real binary.
fn inbox_show(server: &TestServer, request_id: &str) -> Value {
    let out = bin(server.dir.path())
        .args(["inbox", "--db"])
        .arg(&server.inbox_path)
        .args(["show", request_id])
        .output()
        .expect("run inbox show");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("inbox show prints JSON")
}

#[tokio::test]
async fn answers_a_new_message_with_receiver_ids_and_stores_what_it_answered() {
    let server = TestServer::start(addressed()).await;
    let mut request = minimal_message();
    // A sender that wrote its own ids, and a reference by type and id besides the urn:uuid ones.
    request["entry"][1]["resource"]["id"] = json!("sender-sr-1");
    request["entry"][2]["resource"]["id"] = json!("sender-patient-1");
    request["entry"][6]["resource"]["subject"] = json!({"reference": "Patient/sender-patient-1"});
    request["entry"][6]["resource"]["extension"] =
        json!([{"url": "https://example.org/dose", "valueDecimal": "DOSE"}]);
    // A decimal as written: `json!` would make it 1.1.
    let text = request.to_string().replace("\"DOSE\"", "1.10");
    let bars = Bars::default();
    let reply = server.client().send(server.addr, bars.message(text)).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let answered = reply.json();
    assert_eq!(answered["id"], request["id"], "Bundle.id stays the sender's");
    let (sent, got) = (
        request["entry"].as_array().unwrap(),
        answered["entry"].as_array().unwrap(),
    );
    assert_eq!(sent.len(), got.len());
    let mut ids = Vec::new();
    for (s, g) in sent.iter().zip(got) {
        assert_eq!(
            s["fullUrl"], g["fullUrl"],
            "fullUrls are kept, so urn:uuid references resolve"
        );
        let id = g["resource"]["id"]
            .as_str()
            .expect("every resource has a receiver id");
        assert!(Uuid::parse_str(id).is_ok(), "{id}");
        assert_ne!(Some(id), s["resource"]["id"].as_str());
        ids.push(id.to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), sent.len(), "ids are unique");
    let patient = got[2]["resource"]["id"].as_str().unwrap();
    assert_eq!(
        got[6]["resource"]["subject"]["reference"],
        format!("Patient/{patient}")
    );
    assert_eq!(got[1]["resource"]["subject"], sent[1]["resource"]["subject"]);
    let text = String::from_utf8_lossy(&reply.body);
    assert!(text.contains("1.10"), "numbers keep their written form: {text}");
    assert!(!text.contains("sender-sr-1") && !text.contains("sender-patient-1"));

    let shown = inbox_show(&server, &bars.request_id);
    assert_eq!(shown["bundle"], answered, "the inbox holds what was answered");
}

#[tokio::test]
async fn an_update_keeps_the_ids_the_receiver_assigned_before() {
    let server = TestServer::start(addressed()).await;
    let mut request = minimal_message();
    header(&mut request)["reason"]["coding"][0]["code"] = json!("update");
    let earlier = Uuid::new_v4().to_string();
    request["entry"][1]["resource"]["id"] = json!(earlier);
    let reply = server
        .client()
        .send(server.addr, Bars::default().message(request.to_string()))
        .await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let answered = reply.json();
    assert_eq!(answered["entry"][1]["resource"]["id"], earlier.as_str());
    for entry in answered["entry"].as_array().unwrap() {
        assert!(
            entry["resource"]["id"].is_string(),
            "missing ids are filled: {entry}"
        );
    }
}

/// The implementation guide's own example bundles (NHSDigital-FHIR-BookingAndReferrals
/// `Examples/`, converted from XML to FHIR JSON): the repository has no licence, so they
/// are not vendored; `BARS_IG_EXAMPLES_DIR` names a directory of the converted copies.
/// Every message bundle among them must be accepted.
#[tokio::test]
async fn accepts_every_ig_example_message_when_a_copy_is_named() {
    let Some(dir) = std::env::var_os("BARS_IG_EXAMPLES_DIR") else {
        eprintln!("BARS_IG_EXAMPLES_DIR is not set: the IG examples were not checked");
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("BARS_IG_EXAMPLES_DIR is readable")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let server = TestServer::start(ServerOptions::default()).await;
    let (mut accepted, mut refused) = (0, Vec::new());
    for path in &files {
        let text = std::fs::read_to_string(path).expect("readable example");
        let bundle: Value = serde_json::from_str(&text).expect("JSON example");
        if bundle["type"] != "message" {
            continue;
        }
        let reply = server
            .client()
            .send(server.addr, Bars::default().message(text))
            .await;
        if reply.status == 200 {
            accepted += 1;
        } else {
            refused.push(format!(
                "{}: {} {}",
                path.display(),
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ));
        }
    }
    eprintln!(
        "IG examples: {} files, {accepted} message bundles accepted, {} refused",
        files.len(),
        refused.len()
    );
    assert!(
        accepted > 0,
        "no message bundle found in {}",
        dir.to_string_lossy()
    );
    assert!(refused.is_empty(), "{refused:#?}");
}

#[tokio::test]
async fn accepts_a_booking_and_a_delete_that_names_no_definition() {
    let server = TestServer::start(addressed()).await;
    let booking = crate::common::minimal_booking();
    let reply = server
        .client()
        .send(server.addr, Bars::default().message(booking.to_string()))
        .await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    // The IG defines no MessageDefinition for a delete.
    let mut delete = minimal_message();
    header(&mut delete)["reason"]["coding"][0]["code"] = json!("delete");
    remove(header(&mut delete), "definition");
    let reply = server
        .client()
        .send(server.addr, Bars::default().message(delete.to_string()))
        .await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    // Without services and organisation configured, any destination is accepted.
    let open = TestServer::start(ServerOptions::default()).await;
    let mut elsewhere = minimal_message();
    header(&mut elsewhere)["destination"][0]["endpoint"] =
        json!("https://fhir.nhs.uk/Id/dos-service-id|999999999");
    let reply = open
        .client()
        .send(open.addr, Bars::default().message(elsewhere.to_string()))
        .await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(server.inbox_count(), 2);
}
