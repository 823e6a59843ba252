//! A complete custom handler wired into the server: a small booking system that keeps its
//! appointments in memory and answers BaRS bookings, slot searches and Appointment reads,
//! searches, creates and cancellations.
//!
//! Run it against the development PKI:
//!
//! ```text
//! cargo run -- dev-pki            # once: writes certs/dev
//! cargo run --example custom_handler
//! ```
//!
//! Then call it as in the README (`curl --cert certs/dev/client.pem ...`); `GET /metadata`
//! lists exactly the interactions registered below.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bars_receiver::handler::{CreateHandler, DeleteHandler, ReadHandler, SearchHandler};
use bars_receiver::{
    FhirResponse, HandlerResult, Handlers, IssueType, MessageBundle, MessageEvent, MessagingHandler,
    RecError, RequestContext, ResourceHandlers, SearchParam, SearchParams, Server, Settings, SlotHandler,
    SlotQuery, Store,
};
use serde_json::{Value, json};

/// The provider's booking system: appointments by id.
#[derive(Debug, Default)]
pub struct Bookings {
    appointments: Mutex<BTreeMap<String, Value>>,
}

impl Bookings {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Value>> {
        self.appointments
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Accepts `booking-request` messages; refuses other events with 422.
#[derive(Debug)]
pub struct BookingMessages(pub Arc<Bookings>);
impl MessagingHandler for BookingMessages {
    async fn process_message(&self, ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
        if message.event != MessageEvent::BookingRequest {
            return Err(RecError::unprocessable(
                IssueType::NotSupported,
                format!("This service takes bookings only, not {}", message.event.code()),
            ));
        }
        let appointment = message.raw()["entry"]
            .as_array()
            .and_then(|entries| {
                entries
                    .iter()
                    .find(|e| e["fullUrl"] == message.focus_reference.as_str())
            })
            .map(|e| e["resource"].clone())
            .unwrap_or(Value::Null);
        let id = uuid::Uuid::new_v4().to_string();
        let mut stored = appointment;
        stored["id"] = json!(id);
        self.0.lock().insert(id.clone(), stored);
        tracing::info!(request_id = %ctx.request_id, appointment = %id, caller = ctx.peer.display_name(), "booking accepted");
        Ok(FhirResponse::ok(message.into_raw()).with_reference(id))
    }
}

/// Offers two slots, of the first status asked for, in whatever window is asked for. The
/// receiver has checked the query already (statuses, a range within
/// `receiver.max_slot_range`, the service and the required `_include`s).
#[derive(Debug)]
pub struct FreeSlots;
impl SlotHandler for FreeSlots {
    async fn search_slots(&self, _ctx: &RequestContext, query: SlotQuery) -> HandlerResult {
        let status = query.status.first().map_or("free", |s| s.as_str());
        let fmt = &time::format_description::well_known::Rfc3339;
        let slot = |n: i64| {
            let start = query.start_from + time::Duration::hours(n);
            json!({"fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()), "resource": {
                "resourceType": "Slot", "status": status,
                "start": start.format(fmt).unwrap_or_default(),
                "end": (start + time::Duration::minutes(15)).format(fmt).unwrap_or_default(),
            }})
        };
        Ok(FhirResponse::ok(json!({
            "resourceType": "Bundle", "type": "searchset", "total": 2, "entry": [slot(1), slot(2)]
        })))
    }
}

/// RESTful Appointment read, search by patient, create and delete (cancel).
/// Each interaction is its own trait, registered on its own in [`handlers`].
#[derive(Debug)]
pub struct Appointments(pub Arc<Bookings>);

impl ReadHandler for Appointments {
    async fn read(&self, _ctx: &RequestContext, id: &str) -> HandlerResult {
        self.0
            .lock()
            .get(id)
            .cloned()
            .map(FhirResponse::ok)
            .ok_or_else(|| RecError::not_found("No appointment with that id"))
    }
}

impl SearchHandler for Appointments {
    async fn search(&self, _ctx: &RequestContext, params: SearchParams) -> HandlerResult {
        let Some(nhs_number) = params
            .get("patient:identifier")
            .and_then(|v| v.strip_prefix("https://fhir.nhs.uk/Id/nhs-number|"))
        else {
            return Err(RecError::bad_request(
                IssueType::Required,
                "patient:identifier=https://fhir.nhs.uk/Id/nhs-number|<n> is required",
            ));
        };
        let matches: Vec<Value> = self
            .0
            .lock()
            .values()
            .filter(|a| a["participant"].to_string().contains(nhs_number))
            .map(|a| json!({"resource": a}))
            .collect();
        Ok(FhirResponse::ok(
            json!({"resourceType": "Bundle", "type": "searchset", "total": matches.len(), "entry": matches}),
        ))
    }
}

impl CreateHandler for Appointments {
    async fn create(&self, _ctx: &RequestContext, mut resource: Value) -> HandlerResult {
        let id = uuid::Uuid::new_v4().to_string();
        resource["id"] = json!(id);
        self.0.lock().insert(id.clone(), resource.clone());
        Ok(FhirResponse::created(resource, format!("Appointment/{id}")).with_reference(id))
    }
}

impl DeleteHandler for Appointments {
    async fn delete(&self, _ctx: &RequestContext, id: &str) -> HandlerResult {
        match self.0.lock().get_mut(id) {
            Some(appointment) => {
                appointment["status"] = json!("cancelled");
                Ok(FhirResponse::ok(appointment.clone()))
            }
            None => Err(RecError::not_found("No appointment with that id")),
        }
    }
}

/// The handlers of this example, sharing one booking system.
pub fn handlers() -> Handlers {
    let bookings = Arc::new(Bookings::default());
    let appointments = Arc::new(Appointments(bookings.clone()));
    Handlers::new(BookingMessages(bookings))
        .with_slots(FreeSlots)
        .with_appointments(
            ResourceHandlers::new()
                .read(appointments.clone())
                .search(
                    appointments.clone(),
                    [SearchParam::token(
                        "patient:identifier",
                        "NHS number: https://fhir.nhs.uk/Id/nhs-number|<n>",
                    )],
                )
                .create(appointments.clone())
                .delete(appointments),
        )
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let settings = match std::env::args().nth(1) {
        Some(path) => Settings::load(path.as_ref())?,
        None => Settings::dev()?,
    };
    // The store still keeps the de-duplication records, shared by every handler.
    let store = Store::open(&settings.inbox.path)?;
    let server = Server::new(&settings, handlers(), store)?;
    let listener = tokio::net::TcpListener::bind(settings.listen.address).await?;
    println!("custom handler listening on https://{}", listener.local_addr()?);
    server
        .serve(listener, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    Ok(())
}
