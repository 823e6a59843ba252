//! End-to-end BaRS refusals over real mutual TLS (bars-spec.md §2-5): every error a receiver must
//! answer, with its status, `REC_` code, FHIR issue type and echoed ids; de-duplication; the
//! deadline; and the published NHS example bundles.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bars_receiver::{
    FhirResponse, HandlerResult, Handlers, IssueType, MessageBundle, MessagingHandler, RecError,
    RequestContext, Store, handler::InboxHandler,
};
use base64::Engine;
use bytes::Bytes;
use common::{Bars, Reply, ServerOptions, TestClient, TestServer, fixtures, minimal_message};
use http_body_util::Full;
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

type Req = http::Request<Full<Bytes>>;

const OVERSIZED: usize = 200 * 1024;

// ---------------------------------------------------------------------------------------------
// Building requests
// ---------------------------------------------------------------------------------------------

/// `POST /$process-message` of `body` with fresh, well-formed BaRS headers.
fn message(body: impl Into<Bytes>) -> Req {
    Bars::default().message(body)
}

/// The minimal valid message, with fresh ids.
fn good() -> Req {
    message(minimal_message().to_string())
}

/// `builder` with a FHIR JSON `body`.
fn post(builder: http::request::Builder, body: Value) -> Req {
    builder
        .header("content-type", "application/fhir+json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request")
}

/// The minimal valid message, edited.
fn edited(edit: impl FnOnce(&mut Value)) -> Req {
    let mut bundle = minimal_message();
    edit(&mut bundle);
    message(bundle.to_string())
}

/// A valid message of about 200 KiB: one long (valid JSON) string field.
fn oversized_bundle() -> Value {
    let mut bundle = minimal_message();
    bundle["entry"][1]["resource"]["note"] = json!([{"text": "x".repeat(OVERSIZED)}]);
    bundle
}

fn set(mut req: Req, name: &'static str, value: &str) -> Req {
    req.headers_mut()
        .insert(name, value.parse().expect("header value"));
    req
}

/// Adds a second value of `name` (the harness's `Bars::request` builder appends, too).
fn append(mut req: Req, name: &'static str, value: &str) -> Req {
    req.headers_mut()
        .append(name, value.parse().expect("header value"));
    req
}

fn without(mut req: Req, name: &str) -> Req {
    req.headers_mut().remove(name);
    req
}

fn target_header(req: Req, decoded: &str) -> Req {
    set(
        req,
        "nhsd-target-identifier",
        &base64::engine::general_purpose::STANDARD.encode(decoded),
    )
}

fn empty(builder: http::request::Builder) -> Req {
    builder.body(Full::new(Bytes::new())).expect("request")
}

fn header_string(req: &Req, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

// ---------------------------------------------------------------------------------------------
// Checking replies
// ---------------------------------------------------------------------------------------------

/// One refusal: the request and the answer it must get.
struct Case {
    request: Req,
    status: u16,
    code: &'static str,
    issue: &'static str,
    allow: Option<&'static str>,
}

impl Case {
    fn new(request: Req, status: u16, code: &'static str, issue: &'static str) -> Self {
        Self {
            request,
            status,
            code,
            issue,
            allow: None,
        }
    }

    fn bad(request: Req, issue: &'static str) -> Self {
        Self::new(request, 400, "REC_BAD_REQUEST", issue)
    }

    fn allow(mut self, allow: &'static str) -> Self {
        self.allow = Some(allow);
        self
    }
}

/// Both ids are echoed exactly as sent (the first value when sent twice), and absent when not sent.
#[track_caller]
fn assert_echoes(reply: &Reply, request_id: Option<&str>, correlation_id: Option<&str>) {
    assert_eq!(reply.header("x-request-id"), request_id, "x-request-id echo");
    assert_eq!(
        reply.header("x-correlation-id"),
        correlation_id,
        "x-correlation-id echo"
    );
}

#[track_caller]
fn assert_echoes_bars(reply: &Reply, bars: &Bars) {
    assert_echoes(reply, Some(&bars.request_id), Some(&bars.correlation_id));
}

fn diagnostics(reply: &Reply) -> String {
    reply.json()["issue"][0]["diagnostics"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn expect(server: &TestServer, name: &str, case: Case) {
    eprintln!("case {name}");
    let request_id = header_string(&case.request, "x-request-id");
    let correlation_id = header_string(&case.request, "x-correlation-id");
    let reply = server.client().send(server.addr, case.request).await;
    reply.assert_outcome(case.status, case.code, case.issue);
    assert_echoes(&reply, request_id.as_deref(), correlation_id.as_deref());
    if let Some(allow) = case.allow {
        assert_eq!(reply.header("allow"), Some(allow), "{name}: Allow");
    }
}

fn small_body() -> ServerOptions {
    ServerOptions {
        max_body: "64KiB",
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------------
// One test per refusal; `all_refusals()` replays them all on one server.
// ---------------------------------------------------------------------------------------------

macro_rules! refusals {
    ($($name:ident: $case:expr;)*) => {
        $(
            #[tokio::test]
            async fn $name() {
                let server = TestServer::start(small_body()).await;
                expect(&server, stringify!($name), $case).await;
            }
        )*

        /// Every refusal above, fresh ids each time.
        fn all_refusals() -> Vec<(&'static str, Case)> {
            vec![$((stringify!($name), $case)),*]
        }
    };
}

refusals! {
    // §3 ids
    refuses_missing_x_request_id: Case::bad(without(good(), "x-request-id"), "required");
    refuses_non_uuid_x_correlation_id: Case::bad(set(good(), "x-correlation-id", "not-a-uuid"), "value");
    refuses_x_request_id_sent_twice:
        Case::bad(append(good(), "x-request-id", &Uuid::new_v4().to_string()), "invalid");
    // §3 NHSD-Target-Identifier
    refuses_target_identifier_that_is_not_base64:
        Case::bad(set(good(), "nhsd-target-identifier", "not*base64!"), "value");
    refuses_target_identifier_that_is_not_json:
        Case::bad(target_header(good(), "not json at all"), "invalid");
    refuses_target_identifier_without_value:
        Case::bad(target_header(good(), r#"{"system":"https://fhir.nhs.uk/Id/dos-service-id"}"#), "required");
    refuses_process_message_without_target_identifier:
        Case::bad(without(good(), "nhsd-target-identifier"), "required");
    // §3 Accept, §4 media type
    refuses_accept_with_another_major_version: Case::new(
        set(good(), "accept", "application/fhir+json; version=2.0.0"),
        406,
        "REC_NOT_ACCEPTABLE",
        "processing",
    );
    refuses_text_plain_body: Case::new(
        set(message("just some text"), "content-type", "text/plain"),
        415,
        "REC_BAD_REQUEST",
        "not-supported",
    );
    // §5 bundle rules
    refuses_malformed_json: Case::bad(message(r#"{"resourceType": "Bundle", "#), "structure");
    refuses_a_body_that_is_not_a_bundle:
        Case::bad(message(json!({"resourceType": "Patient", "id": "p1"}).to_string()), "invalid");
    refuses_a_collection_bundle: Case::bad(edited(|b| b["type"] = json!("collection")), "invalid");
    refuses_message_header_not_first:
        Case::bad(edited(|b| b["entry"].as_array_mut().expect("entries").swap(0, 1)), "structure");
    refuses_unknown_event_code: Case::bad(
        edited(|b| b["entry"][0]["resource"]["eventCoding"]["code"] = json!("pizza-order")),
        "value",
    );
    refuses_focus_that_resolves_to_nothing: Case::bad(
        edited(|b| b["entry"][0]["resource"]["focus"][0]["reference"] = json!("urn:uuid:nowhere")),
        "invariant",
    );
    refuses_missing_meta_version_id: Case::bad(
        edited(|b| {
            b["meta"].as_object_mut().expect("meta").remove("versionId");
        }),
        "invariant",
    );
    refuses_unsupported_major_version_as_unprocessable: Case::new(
        edited(|b| b["meta"]["versionId"] = json!("2.0.0")),
        422,
        "REC_UNPROCESSABLE_ENTITY",
        "not-supported",
    );
    // §4 size (the server under test has max_body = 64KiB)
    refuses_oversized_body_with_content_length:
        Case::new(message(oversized_bundle().to_string()), 413, "REC_BAD_REQUEST", "too-costly");
    // §2 methods and paths
    refuses_get_on_process_message_with_allow_post:
        Case::new(Bars::default().get("/$process-message"), 405, "REC_METHOD_NOT_ALLOWED", "not-supported")
            .allow("POST");
    refuses_delete_on_appointment_type_with_allow_get_post: Case::new(
        empty(Bars::default().request("DELETE", "/Appointment")),
        405,
        "REC_METHOD_NOT_ALLOWED",
        "not-supported",
    )
    .allow("GET, POST");
    refuses_unknown_path_as_not_found:
        Case::new(Bars::default().get("/DocumentReference"), 404, "REC_NOT_FOUND", "not-found");
    refuses_unregistered_appointment_create_as_not_implemented: Case::new(
        post(
            Bars::default().request("POST", "/Appointment"),
            json!({"resourceType": "Appointment", "status": "booked"}),
        ),
        501,
        "REC_NOT_IMPLEMENTED",
        "not-supported",
    );
    refuses_unregistered_slot_search_as_not_implemented: Case::new(
        Bars::default().get(concat!(
            "/Slot?status=free&start=ge2026-03-01T09:00:00Z",
            "&start=le2026-03-02T09:00:00Z&Schedule.actor:HealthcareService=2000099999",
            "&_include=Slot:schedule&_include=Schedule:actor:HealthcareService"
        )),
        501,
        "REC_NOT_IMPLEMENTED",
        "not-supported",
    );
}

// ---------------------------------------------------------------------------------------------
// The order of checks: a request with two faults gets the refusal of the earlier step
// ---------------------------------------------------------------------------------------------

const HANDLED: &str = "https://fhir.nhs.uk/Id/dos-service-id|111111111";
const OTHER_SERVICE: &str = r#"{"system":"https://fhir.nhs.uk/Id/dos-service-id","value":"999"}"#;

/// A server handling only the service `Bars::default()` addresses, with a 64 KiB body limit.
fn one_service() -> ServerOptions {
    ServerOptions {
        services: vec![HANDLED.into()],
        ..small_body()
    }
}

/// `POST /Appointment`, which the default handlers do not implement.
fn unregistered_create() -> Req {
    post(
        Bars::default().request("POST", "/Appointment"),
        json!({"resourceType": "Appointment", "status": "booked"}),
    )
}

fn for_other_service(req: Req) -> Req {
    target_header(req, OTHER_SERVICE)
}

fn bad_accept(req: Req) -> Req {
    set(req, "accept", "application/fhir+json; version=2.0.0")
}

#[tokio::test]
async fn answers_a_request_with_two_faults_with_the_earlier_step() {
    let server = TestServer::start(one_service()).await;
    let cases = [
        (
            "path before ids",
            Case::new(
                without(Bars::default().get("/DocumentReference"), "x-request-id"),
                404,
                "REC_NOT_FOUND",
                "not-found",
            ),
        ),
        (
            "method before ids",
            Case::new(
                without(Bars::default().get("/$process-message"), "x-request-id"),
                405,
                "REC_METHOD_NOT_ALLOWED",
                "not-supported",
            )
            .allow("POST"),
        ),
        (
            "ids before registration",
            Case::bad(without(unregistered_create(), "x-request-id"), "required"),
        ),
        (
            "NHSD-* headers before registration",
            Case::bad(
                set(unregistered_create(), "nhsd-target-identifier", "not*base64!"),
                "value",
            ),
        ),
        (
            "registration before the target service",
            Case::new(
                for_other_service(unregistered_create()),
                501,
                "REC_NOT_IMPLEMENTED",
                "not-supported",
            ),
        ),
        (
            "target service before the body size",
            Case::new(
                for_other_service(message(oversized_bundle().to_string())),
                404,
                "REC_NOT_FOUND",
                "not-found",
            ),
        ),
        (
            "missing target before the body size",
            Case::bad(
                without(message(oversized_bundle().to_string()), "nhsd-target-identifier"),
                "required",
            ),
        ),
        (
            "target service before Accept",
            Case::new(
                for_other_service(bad_accept(good())),
                404,
                "REC_NOT_FOUND",
                "not-found",
            ),
        ),
        (
            "body size before Accept",
            Case::new(
                bad_accept(message(oversized_bundle().to_string())),
                413,
                "REC_BAD_REQUEST",
                "too-costly",
            ),
        ),
        (
            "Accept before Content-Type",
            Case::new(
                bad_accept(set(message("just some text"), "content-type", "text/plain")),
                406,
                "REC_NOT_ACCEPTABLE",
                "processing",
            ),
        ),
        (
            "bundle rules before the destination",
            Case::bad(
                edited(|b| {
                    b["type"] = json!("collection");
                    b["entry"][0]["resource"]["destination"][0]["endpoint"] =
                        json!("https://fhir.nhs.uk/Id/dos-service-id|999");
                }),
                "invalid",
            ),
        ),
    ];
    for (name, case) in cases {
        expect(&server, name, case).await;
    }
    assert_eq!(server.inbox_count(), 0);
}

/// De-duplication comes after the target service and before `Accept` (bars-spec §5): a
/// retry of a processed message is a duplicate whatever its `Accept`, but a retry sent to
/// another service is refused as not handled here.
#[tokio::test]
async fn checks_a_retry_for_its_target_service_before_de_duplication_and_accept_after() {
    let server = TestServer::start(one_service()).await;
    let bars = Bars::default();
    let body = minimal_message().to_string();
    let first = server
        .client()
        .send(server.addr, bars.message(body.clone()))
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);

    let elsewhere = server
        .client()
        .send(server.addr, for_other_service(bars.message(body.clone())))
        .await;
    elsewhere.assert_outcome(404, "REC_NOT_FOUND", "not-found");
    assert_echoes_bars(&elsewhere, &bars);

    let retry = server
        .client()
        .send(server.addr, bad_accept(bars.message(body)))
        .await;
    retry.assert_outcome(409, "REC_CONFLICT", "duplicate");
    assert_echoes_bars(&retry, &bars);
    assert_eq!(server.inbox_count(), 1);
}

// ---------------------------------------------------------------------------------------------
// A body with no declared length
// ---------------------------------------------------------------------------------------------

/// A body sent in pieces with no length known up front: HTTP/1.1 sends it chunked, HTTP/2
/// without `content-length`.
struct Pieces(VecDeque<Bytes>);

impl hyper::body::Body for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|piece| Ok(Frame::data(piece))))
    }
}

/// Sends `request` with a streamed body over the harness's TLS client, offering only `alpn`.
async fn send_streamed(server: &TestServer, alpn: &str, request: http::Request<Pieces>) -> Reply {
    let versions = [&rustls::version::TLS13];
    let client = TestClient::with_versions(&server.pki, Some(&server.pki.client), &versions, &[alpn]);
    client.send(server.addr, request).await
}

async fn refuses_streamed_oversized_body(alpn: &str) {
    let server = TestServer::start(small_body()).await;
    let bars = Bars::default();
    let text = Bytes::from(oversized_bundle().to_string());
    let pieces = (0..text.len())
        .step_by(8192)
        .map(|at| text.slice(at..text.len().min(at + 8192)))
        .collect();
    let request = bars
        .request("POST", "/$process-message")
        .header("content-type", "application/fhir+json")
        .body(Pieces(pieces))
        .expect("request");
    assert!(request.headers().get("content-length").is_none());
    let reply = send_streamed(&server, alpn, request).await;
    reply.assert_outcome(413, "REC_BAD_REQUEST", "too-costly");
    assert_echoes_bars(&reply, &bars);
    assert_eq!(server.inbox_count(), 0);
}

#[tokio::test]
async fn refuses_oversized_chunked_body_over_http1() {
    refuses_streamed_oversized_body("http/1.1").await;
}

#[tokio::test]
async fn refuses_oversized_body_without_content_length_over_http2() {
    refuses_streamed_oversized_body("h2").await;
}

// ---------------------------------------------------------------------------------------------
// De-duplication and the deadline
// ---------------------------------------------------------------------------------------------

/// A messaging handler that takes its time, then accepts.
struct Slow(Duration);
impl MessagingHandler for Slow {
    async fn process_message(&self, _ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
        tokio::time::sleep(self.0).await;
        Ok(FhirResponse::ok(message.into_raw()))
    }
}

async fn slow_server(options: ServerOptions, delay: Duration) -> TestServer {
    TestServer::start_with(options, move |_store| Handlers::new(Arc::new(Slow(delay)))).await
}

#[tokio::test]
async fn answers_a_processed_duplicate_with_409_quoting_the_reference() {
    let server = TestServer::start(ServerOptions::default()).await;
    let bars = Bars::default();
    let body = minimal_message().to_string();
    let first = server
        .client()
        .send(server.addr, bars.message(body.clone()))
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_echoes_bars(&first, &bars);
    let again = server.client().send(server.addr, bars.message(body)).await;
    again.assert_outcome(409, "REC_CONFLICT", "duplicate");
    assert_echoes_bars(&again, &bars);
    assert!(
        diagnostics(&again).contains("Reference ID"),
        "{}",
        diagnostics(&again)
    );
    assert_eq!(server.inbox_count(), 1);
}

#[tokio::test]
async fn refuses_an_x_request_id_reused_for_a_different_message() {
    let server = TestServer::start(ServerOptions::default()).await;
    let bars = Bars::default();
    let first = server
        .client()
        .send(server.addr, bars.message(minimal_message().to_string()))
        .await;
    assert_eq!(first.status, 200);
    // Same id, another message (minimal_message has a fresh Bundle.id): not a retry.
    let other = server
        .client()
        .send(server.addr, bars.message(minimal_message().to_string()))
        .await;
    other.assert_outcome(409, "REC_CONFLICT", "conflict");
    assert_echoes_bars(&other, &bars);
    assert!(
        diagnostics(&other).contains("different message"),
        "{}",
        diagnostics(&other)
    );
    assert_eq!(
        server.inbox_count(),
        1,
        "the second message was not stored under the first's id"
    );

    // The same holds when the first attempt failed.
    let failed = Bars::default();
    let mut bad = minimal_message();
    bad["type"] = json!("collection");
    let first = server
        .client()
        .send(server.addr, failed.message(bad.to_string()))
        .await;
    first.assert_outcome(400, "REC_BAD_REQUEST", "invalid");
    let fixed = server
        .client()
        .send(server.addr, failed.message(minimal_message().to_string()))
        .await;
    fixed.assert_outcome(409, "REC_CONFLICT", "conflict");
}

#[tokio::test]
async fn replays_the_original_error_for_a_retry_of_a_failed_message() {
    let server = TestServer::start(ServerOptions::default()).await;
    let bars = Bars::default();
    let mut bad = minimal_message();
    bad["entry"][0]["resource"]["eventCoding"]["code"] = json!("pizza-order");
    let first = server
        .client()
        .send(server.addr, bars.message(bad.to_string()))
        .await;
    first.assert_outcome(400, "REC_BAD_REQUEST", "value");
    assert_echoes_bars(&first, &bars);
    let retry = server
        .client()
        .send(server.addr, bars.message(bad.to_string()))
        .await;
    retry.assert_outcome(400, "REC_BAD_REQUEST", "value");
    assert_echoes_bars(&retry, &bars);
    assert_eq!(
        retry.json(),
        first.json(),
        "the retry replays the first error, resource id included"
    );
    assert!(diagnostics(&retry).contains("pizza-order"));
    assert_eq!(server.inbox_count(), 0);
}

#[tokio::test]
async fn answers_a_concurrent_duplicate_with_425_then_409() {
    let server = slow_server(ServerOptions::default(), Duration::from_millis(1500)).await;
    let bars = Bars::default();
    let body = minimal_message().to_string();
    let first = tokio::spawn({
        let (client, addr, request) = (server.client(), server.addr, bars.message(body.clone()));
        async move { client.send(addr, request).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let early = server
        .client()
        .send(server.addr, bars.message(body.clone()))
        .await;
    early.assert_outcome(425, "REC_TOO_EARLY", "duplicate");
    assert_echoes_bars(&early, &bars);

    let first = first.await.expect("first request task");
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_echoes_bars(&first, &bars);
    assert_eq!(first.json()["id"], minimal_id(&body));

    let late = server.client().send(server.addr, bars.message(body)).await;
    late.assert_outcome(409, "REC_CONFLICT", "duplicate");
    assert_echoes_bars(&late, &bars);
}

fn minimal_id(body: &str) -> Value {
    serde_json::from_str::<Value>(body).expect("json")["id"].clone()
}

/// How a [`Gated`] handler ends once its gate opens.
#[derive(Clone, Copy)]
enum Ending {
    /// Commits the message to the inbox, as the default handler does.
    Commit,
    /// Refuses the message with a 422.
    Refuse,
}

/// A messaging handler that waits for the test to open its gate, then commits to the inbox
/// (or refuses), counting its calls: a handler that overruns the deadline for as long as
/// the test wants.
struct Gated {
    inbox: InboxHandler,
    ending: Ending,
    open: watch::Receiver<bool>,
    calls: Arc<AtomicUsize>,
    ended: Arc<Notify>,
}
impl MessagingHandler for Gated {
    async fn process_message(&self, ctx: &RequestContext, message: MessageBundle) -> HandlerResult {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let _ = self.open.clone().wait_for(|open| *open).await;
        let result = match self.ending {
            Ending::Commit => self.inbox.process_message(ctx, message).await,
            Ending::Refuse => Err(RecError::unprocessable(
                IssueType::NotSupported,
                "The gated handler does not take this referral",
            )),
        };
        self.ended.notify_one();
        result
    }
}

/// The test's side of a [`Gated`] handler.
struct Gate {
    open: watch::Sender<bool>,
    calls: Arc<AtomicUsize>,
    ended: Arc<Notify>,
}

impl Gate {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Lets the handler finish, and waits until it has.
    async fn open_and_wait(&self) {
        self.open.send_replace(true);
        tokio::time::timeout(Duration::from_secs(10), self.ended.notified())
            .await
            .expect("the handler ended");
    }
}

async fn gated_server(options: ServerOptions, ending: Ending) -> (TestServer, Gate) {
    let (open, gate_rx) = watch::channel(false);
    let calls = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(Notify::new());
    let handler_calls = calls.clone();
    let handler_ended = ended.clone();
    let server = TestServer::start_with(options, move |store| {
        Handlers::new(Arc::new(Gated {
            inbox: InboxHandler::new(store),
            ending,
            open: gate_rx,
            calls: handler_calls,
            ended: handler_ended,
        }))
    })
    .await;
    (server, Gate { open, calls, ended })
}

/// Sends `body` under `bars`' ids as a sender retries: again while the answer is 425
/// (the outcome is recorded just after the handler returns), for up to 5 s.
async fn retry_past_too_early(server: &TestServer, bars: &Bars, body: &str) -> Reply {
    let give_up = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = server
            .client()
            .send(server.addr, bars.message(body.to_owned()))
            .await;
        if reply.status != 425 || Instant::now() > give_up {
            return reply;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn quoted_reference(reply: &Reply) -> String {
    let text = diagnostics(reply);
    text.split("Reference ID: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no Reference ID in {text:?}"))
        .to_owned()
}

/// The receiver references of the inbox rows.
fn inbox_ids(server: &TestServer) -> Vec<String> {
    let store = Store::open_read_only(&server.inbox_path).expect("inbox");
    common::blocking(async move { store.list(100).await })
        .expect("list")
        .into_iter()
        .map(|row| row.id)
        .collect()
}

fn one_second_deadline() -> ServerOptions {
    ServerOptions {
        deadline: "1s",
        ..Default::default()
    }
}

#[tokio::test]
async fn times_out_at_the_deadline_and_keeps_processing_for_the_retry() {
    let (server, gate) = gated_server(one_second_deadline(), Ending::Commit).await;
    let bars = Bars::default();
    let body = minimal_message().to_string();

    let started = Instant::now();
    let first = server
        .client()
        .send(server.addr, bars.message(body.clone()))
        .await;
    first.assert_outcome(408, "REC_TIMEOUT", "timeout");
    assert_echoes_bars(&first, &bars);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "408 after {:?}",
        started.elapsed()
    );

    let retry = server
        .client()
        .send(server.addr, bars.message(body.clone()))
        .await;
    retry.assert_outcome(425, "REC_TOO_EARLY", "duplicate");
    assert_echoes_bars(&retry, &bars);
    assert_eq!(server.inbox_count(), 0, "the handler has not committed yet");

    // The handler commits after the deadline; the retry learns that it was accepted.
    gate.open_and_wait().await;
    let after = retry_past_too_early(&server, &bars, &body).await;
    after.assert_outcome(409, "REC_CONFLICT", "duplicate");
    assert_echoes_bars(&after, &bars);
    assert_eq!(gate.calls(), 1, "the handler ran once");
    assert_eq!(
        inbox_ids(&server),
        [quoted_reference(&after)],
        "one inbox row, the one quoted"
    );
}

#[tokio::test]
async fn replays_the_error_of_a_handler_that_ended_after_the_deadline() {
    let (server, gate) = gated_server(one_second_deadline(), Ending::Refuse).await;
    let bars = Bars::default();
    let body = minimal_message().to_string();
    let first = server
        .client()
        .send(server.addr, bars.message(body.clone()))
        .await;
    first.assert_outcome(408, "REC_TIMEOUT", "timeout");

    gate.open_and_wait().await;
    let after = retry_past_too_early(&server, &bars, &body).await;
    after.assert_outcome(422, "REC_UNPROCESSABLE_ENTITY", "not-supported");
    assert_echoes_bars(&after, &bars);
    assert!(
        diagnostics(&after).contains("gated handler"),
        "{}",
        diagnostics(&after)
    );
    let again = server.client().send(server.addr, bars.message(body)).await;
    assert_eq!(again.json(), after.json(), "the recorded error, replayed");
    assert_eq!(gate.calls(), 1, "the handler ran once");
    assert_eq!(server.inbox_count(), 0);
}

/// `http.processing_limit` never cancels a handler nor frees its `X-Request-Id`: a retry
/// after the limit is still 425, and the handler's late commit is the one outcome.
#[tokio::test]
async fn keeps_a_handler_past_the_processing_limit_running_and_its_claim_held() {
    let options = ServerOptions {
        http_extra: r#"processing_limit = "2s""#.into(),
        ..one_second_deadline()
    };
    let (server, gate) = gated_server(options, Ending::Commit).await;
    let bars = Bars::default();
    let body = minimal_message().to_string();

    let started = Instant::now();
    let first = server
        .client()
        .send(server.addr, bars.message(body.clone()))
        .await;
    first.assert_outcome(408, "REC_TIMEOUT", "timeout");

    tokio::time::sleep_until((started + Duration::from_secs(3)).into()).await;
    let past_limit = server
        .client()
        .send(server.addr, bars.message(body.clone()))
        .await;
    past_limit.assert_outcome(425, "REC_TOO_EARLY", "duplicate");
    assert_echoes_bars(&past_limit, &bars);
    assert_eq!(gate.calls(), 1, "the retry did not run the handler again");

    gate.open_and_wait().await;
    let after = retry_past_too_early(&server, &bars, &body).await;
    after.assert_outcome(409, "REC_CONFLICT", "duplicate");
    assert_eq!(gate.calls(), 1, "the handler ran once");
    assert_eq!(
        inbox_ids(&server),
        [quoted_reference(&after)],
        "one inbox row, the one quoted"
    );
}

// ---------------------------------------------------------------------------------------------
// Target service, robustness, /metadata
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn refuses_a_target_service_this_receiver_does_not_handle() {
    let options = ServerOptions {
        services: vec!["https://fhir.nhs.uk/Id/dos-service-id|999".into()],
        ..Default::default()
    };
    let server = TestServer::start(options).await;
    let bars = Bars::default();
    assert_eq!(bars.target["value"], "111111111");
    let reply = server
        .client()
        .send(server.addr, bars.message(minimal_message().to_string()))
        .await;
    reply.assert_outcome(404, "REC_NOT_FOUND", "not-found");
    assert_echoes_bars(&reply, &bars);
    assert_eq!(server.inbox_count(), 0);
}

#[tokio::test]
async fn accepts_a_good_message_after_a_burst_of_bad_requests() {
    let server = TestServer::start(small_body()).await;
    let cases = all_refusals();
    assert!(cases.len() >= 20, "{} cases", cases.len());
    for (name, case) in cases {
        expect(&server, name, case).await;
    }
    assert_eq!(server.inbox_count(), 0, "no refused request reached the inbox");
    let bars = Bars::default();
    let bundle = minimal_message();
    let reply = server
        .client()
        .send(server.addr, bars.message(bundle.to_string()))
        .await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_echoes_bars(&reply, &bars);
    assert_eq!(reply.json()["id"], bundle["id"]);
    assert_eq!(server.inbox_count(), 1);
}

#[tokio::test]
async fn serves_metadata_without_bars_headers_and_refuses_a_bad_request_id() {
    let server = TestServer::start(ServerOptions::default()).await;
    let plain = empty(
        http::Request::builder()
            .method("GET")
            .uri("/metadata")
            .header("host", "localhost"),
    );
    let reply = server.client().send(server.addr, plain).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_echoes(&reply, None, None);
    let statement = reply.json();
    assert_eq!(statement["resourceType"], "CapabilityStatement");
    let operations = statement["rest"][0]["operation"]
        .as_array()
        .expect("rest[0].operation");
    assert!(
        operations.iter().any(|o| o["name"] == "process-message"),
        "{operations:?}"
    );

    let bad = Bars {
        request_id: "12345".into(),
        ..Bars::default()
    };
    let reply = server.client().send(server.addr, bad.get("/metadata")).await;
    reply.assert_outcome(400, "REC_BAD_REQUEST", "value");
    assert_echoes_bars(&reply, &bad);
}

// ---------------------------------------------------------------------------------------------
// The published NHS examples
// ---------------------------------------------------------------------------------------------

fn process_message_examples() -> PathBuf {
    fixtures().join("examples1.4.0/process_message")
}

/// The `.json` files of `dir`, sorted; panics if the directory is missing.
fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("fixtures missing at {}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn read_fixture(path: &Path) -> (String, Value) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (text, json)
}

#[tokio::test]
async fn accepts_every_published_request_example() {
    let dir = process_message_examples();
    let mut files = json_files(&dir.join("request"));
    files.push(dir.join("POST-body.json"));
    assert!(files.len() >= 4, "found only {files:?}");
    let server = TestServer::start(ServerOptions::default()).await;
    for path in &files {
        let (text, bundle) = read_fixture(path);
        let bars = Bars::default();
        let reply = server.client().send(server.addr, bars.message(text)).await;
        assert_eq!(
            reply.status,
            200,
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&reply.body)
        );
        assert_echoes_bars(&reply, &bars);
        let echoed = reply.json();
        assert_eq!(echoed["resourceType"], "Bundle", "{}", path.display());
        assert_eq!(echoed["id"], bundle["id"], "{}", path.display());
    }
    assert_eq!(server.inbox_count(), files.len() as u64);
}

/// The response examples carry no `meta.versionId` (and use the retired
/// `message-event-servicerequest` code systems): §5 makes the missing version the first
/// failure, 400 `invariant`.
#[tokio::test]
async fn refuses_published_response_examples_posted_as_messages() {
    let dir = process_message_examples();
    let mut files = json_files(&dir.join("response"));
    files.push(dir.join("POST-success.json"));
    assert!(files.len() >= 3, "found only {files:?}");
    let server = TestServer::start(ServerOptions::default()).await;
    for path in &files {
        let (text, bundle) = read_fixture(path);
        assert!(
            bundle["meta"]["versionId"].is_null(),
            "{} has a versionId",
            path.display()
        );
        let bars = Bars::default();
        let reply = server.client().send(server.addr, bars.message(text)).await;
        eprintln!("{}", path.display());
        reply.assert_outcome(400, "REC_BAD_REQUEST", "invariant");
        assert_echoes_bars(&reply, &bars);
        assert!(
            diagnostics(&reply).contains("versionId"),
            "{}",
            diagnostics(&reply)
        );
    }
    assert_eq!(server.inbox_count(), 0);
}

// ---------------------------------------------------------------------------------------------
// Repeated JSON member names: one message validated, another stored
// ---------------------------------------------------------------------------------------------

/// The minimal message as text with `from` replaced once by `to` (the edit JSON values
/// cannot express: a member name written twice).
fn minimal_text_with(from: &str, to: &str) -> String {
    let text = minimal_message().to_string();
    assert!(text.contains(from), "{from} not in {text}");
    text.replacen(from, to, 1)
}

#[tokio::test]
async fn refuses_repeated_member_names_in_a_message_and_stores_nothing() {
    let server = TestServer::start(ServerOptions::default()).await;
    let cases = [
        // Checked on the last value, read by many consumers on the first.
        (
            "top level",
            minimal_text_with(r#""type":"message""#, r#""type":"collection","type":"message""#),
            r#""type" in $ "#,
        ),
        (
            "inside an entry's resource",
            minimal_text_with(r#""status":"active""#, r#""status":"active","status":"revoked""#),
            r#""status" in $.entry[1].resource "#,
        ),
        (
            "spelt with an escape",
            minimal_text_with(
                r#""type":"message""#,
                r#""type":"collection","\u0074ype":"message""#,
            ),
            r#""type" in $ "#,
        ),
        (
            "inside the MessageHeader",
            minimal_text_with(r#""focus":"#, r#""focus":[],"focus":"#),
            r#""focus" in $.entry[0].resource "#,
        ),
    ];
    for (what, body, needle) in cases {
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert!(
            MessageBundle::parse(parsed).is_ok(),
            "{what}: a last-value-wins reader sees a valid message"
        );
        let reply = server.client().send(server.addr, message(body)).await;
        reply.assert_outcome(400, "REC_BAD_REQUEST", "structure");
        let d = diagnostics(&reply);
        assert!(d.contains(needle) && d.contains("(line 1, column"), "{what}: {d}");
    }
    assert_eq!(server.inbox_count(), 0, "nothing stored");
}

#[tokio::test]
async fn a_message_refused_for_a_repeated_name_is_replayed_then_accepted_under_a_new_id() {
    let server = TestServer::start(ServerOptions::default()).await;
    let bars = Bars::default();
    let bundle = minimal_message();
    let text = bundle.to_string();
    let repeated = text.replacen(
        r#""type":"message""#,
        r#""type":"collection","type":"message""#,
        1,
    );
    let first = server
        .client()
        .send(server.addr, bars.message(repeated.clone()))
        .await;
    first.assert_outcome(400, "REC_BAD_REQUEST", "structure");
    // A 4xx is recorded: the same request again is answered the same.
    let retry = server.client().send(server.addr, bars.message(repeated)).await;
    retry.assert_outcome(400, "REC_BAD_REQUEST", "structure");
    assert_eq!(retry.json(), first.json(), "the first refusal, replayed");
    // The corrected message is another message: under the same id it is a reused id...
    let reused = server
        .client()
        .send(server.addr, bars.message(text.clone()))
        .await;
    reused.assert_outcome(409, "REC_CONFLICT", "conflict");
    assert_eq!(server.inbox_count(), 0);
    // ...and under its own id it is accepted, as sent but for the receiver ids.
    let fixed = server.client().send(server.addr, message(text.clone())).await;
    assert_eq!(fixed.status, 200, "{}", String::from_utf8_lossy(&fixed.body));
    let mut answered = fixed.json();
    for entry in answered["entry"].as_array_mut().unwrap() {
        entry["resource"].as_object_mut().unwrap().remove("id");
    }
    assert_eq!(answered, bundle);
    assert_eq!(server.inbox_count(), 1);
}

/// Create, update and patch handlers that accept whatever they are given.
#[derive(Clone)]
struct Accepts;
impl bars_receiver::handler::CreateHandler for Accepts {
    async fn create(&self, _ctx: &RequestContext, resource: Value) -> HandlerResult {
        Ok(FhirResponse::created(resource, "Appointment/1"))
    }
}
impl bars_receiver::handler::UpdateHandler for Accepts {
    async fn update(&self, _ctx: &RequestContext, _id: &str, resource: Value) -> HandlerResult {
        Ok(FhirResponse::ok(resource))
    }
}
impl bars_receiver::handler::PatchHandler for Accepts {
    async fn patch(&self, _ctx: &RequestContext, _id: &str, patch: Value) -> HandlerResult {
        Ok(FhirResponse::ok(
            json!({"resourceType": "Appointment", "id": "1", "patched": patch}),
        ))
    }
}

#[tokio::test]
async fn refuses_repeated_member_names_in_created_updated_and_patched_resources() {
    let server = TestServer::start_with(ServerOptions::default(), |store| {
        bars_receiver::default_handlers(store).with_appointments(
            bars_receiver::ResourceHandlers::new()
                .create(Accepts)
                .update(Accepts)
                .patch(Accepts),
        )
    })
    .await;
    let send = |method: &str, path: &str, content_type: &str, body: &str| {
        Bars::default()
            .request(method, path)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body.to_owned())))
            .expect("request")
    };
    let fhir = "application/fhir+json";
    let cases = [
        (
            send(
                "POST",
                "/Appointment",
                fhir,
                r#"{"resourceType": "Appointment", "status": "booked", "status": "cancelled"}"#,
            ),
            r#""status" in $ "#,
        ),
        (
            send(
                "PUT",
                "/Appointment/c3f6145e-1a26-4345-b3f2-dccbcba62049",
                fhir,
                r#"{"resourceType": "Appointment", "id": "c3f6145e-1a26-4345-b3f2-dccbcba62049", "participant": [{"actor": {"reference": "Patient/1", "reference": "Patient/2"}}]}"#,
            ),
            r#""reference" in $.participant[0].actor "#,
        ),
        (
            send(
                "PATCH",
                "/Appointment/c3f6145e-1a26-4345-b3f2-dccbcba62049",
                "application/json-patch+json",
                r#"[{"op": "replace", "path": "/status", "value": "booked", "v\u0061lue": "cancelled"}]"#,
            ),
            r#""value" in $[0] "#,
        ),
    ];
    for (request, needle) in cases {
        let reply = server.client().send(server.addr, request).await;
        reply.assert_outcome(400, "REC_BAD_REQUEST", "structure");
        assert!(diagnostics(&reply).contains(needle), "{}", diagnostics(&reply));
    }
    // The same bodies with each name once are accepted.
    let ok = server
        .client()
        .send(
            server.addr,
            send(
                "POST",
                "/Appointment",
                fhir,
                r#"{"resourceType": "Appointment", "status": "booked"}"#,
            ),
        )
        .await;
    assert_eq!(ok.status, 201, "{}", String::from_utf8_lossy(&ok.body));
}

#[tokio::test]
async fn answers_an_accepted_message_as_received_but_for_the_receiver_ids() {
    let server = TestServer::start(ServerOptions::default()).await;
    // Spacing, member order and the written form of numbers are the sender's.
    let text = serde_json::to_string_pretty(&minimal_message())
        .unwrap()
        .replacen('{', "{\n  \"dose\": 1.50E+1,", 1);
    let reply = server.client().send(server.addr, message(text.clone())).await;
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let mut answered = String::from_utf8_lossy(&reply.body).into_owned();
    for entry in reply.json()["entry"].as_array().unwrap() {
        let id = entry["resource"]["id"].as_str().expect("a receiver id");
        answered = answered.replacen(&format!("\"id\":\"{id}\","), "", 1);
    }
    assert_eq!(answered, text);
}
