//! The request pipeline: one sequence of typed stages, the same for reads and writes, each
//! step turning one stage into the next or answering with its refusal. In the order the
//! code runs them:
//!
//! 1. Admitted: the HTTP/1.1 framing rules (one valid `Host`, 400; no transfer coding but
//!    `chunked`, 501), the global rate limit (429). Everything below runs within
//!    `http.deadline` (408). Whatever the answer, an HTTP/1 body nothing read is drained
//!    (within bounds, [`drain`]) before it goes, so that it reaches a client that writes its
//!    whole body before reading.
//! 2. [`Routed`]: a verified TLS peer (403, only reachable without the TLS front), a BaRS
//!    endpoint under the base path (404), a method it serves (405 with `Allow`).
//! 3. [`Identified`]: `X-Request-Id` and `X-Correlation-Id` (400; optional on
//!    `GET /metadata`), then the `NHSD-*` headers decoded (400), and with
//!    `receiver.requester_headers = "required"` the requester headers present (400).
//! 4. [`Registered`]: a handler is registered for the interaction (501).
//! 5. [`Targeted`]: `NHSD-Target-Identifier` present (400; optional on `GET /metadata`) and
//!    among `receiver.services` when that is set (404).
//! 6. [`Claimed`], state-changing requests only: room under `http.max_inflight_body` (the
//!    request waits for it), the body within `http.max_body` (413), then the
//!    de-duplication claim on `X-Request-Id` (409 `duplicate`, 425, the first attempt's
//!    error replayed, 409 `conflict` for a different body).
//! 7. [`Parsed`]: `Accept` (406), then the interaction's own input: the resource id of
//!    the path (400), query parameters (400; a slot range too wide, 422), `Content-Type`
//!    (415), body text and JSON (400), bundle rules (400, 422), the resource type and id. A
//!    claimed request's refusal from here on is recorded for its retries.
//! 8. Answered: `GET /metadata` from the generated CapabilityStatement and
//!    `GET /MessageDefinition` from the configured definitions, by the receiver itself;
//!    anything else by its handler in a task of its own, whose outcome is recorded for
//!    state-changing requests.
//!
//! Routing and the service addressed (steps 2 to 5) come before the body is read and
//! before de-duplication: a request this receiver cannot serve claims no `X-Request-Id`, so
//! it is answered afresh on every attempt. From the claim on, the order is bars-spec §5:
//! duplicate, Accept, bundle rules, destination, then the handler's business rules.
//!
//! A state-changing handler is never cancelled, because one stopped mid-way may have
//! committed part of its work for all the receiver can tell. Past the deadline the sender
//! gets 408 and the handler runs on, holding the claim, so a retry gets 425 and never runs
//! it a second time; past `http.processing_limit` it is logged as stuck; whenever it ends,
//! its outcome is recorded and the next retry gets it (409 `duplicate`, or the error).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::request::Parts;
use time::OffsetDateTime;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

use super::dedup::{self, Claim, DedupGuard};
use super::input::{self, Input};
use super::{App, response};
use super::{drain, framing};

use crate::fhir::{
    BarsIds, Interaction, IssueType, NhsdHeaders, RecCode, RecError, RequesterHeaders, Route,
    TargetIdentifier,
};
use crate::handler::{FhirResponse, HandlerResult, RequestContext, RestInteraction};
use crate::tls::PeerIdentity;

/// Which interaction answered, for the access log and metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteName(pub(crate) &'static str);

/// The one axum handler: every path comes here. Step 1: the HTTP/1.1 framing rules (400,
/// 501), the rate limit, then the deadline around the rest.
pub(crate) async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    if let Some(refused) = framing::refusal(req.version(), req.headers()) {
        return refused;
    }
    let deadline = app.config.deadline;
    let until = tokio::time::Instant::now() + deadline;
    let max_body = app.config.max_body;
    // Whatever answers, a body left unread is drained first (HTTP/1), so that a client
    // writing its whole body before reading gets the answer rather than a reset.
    let (req, unread) = drain::track(req);
    let response = if app.rate_limit.admit() {
        match tokio::time::timeout_at(until, handle(app, req)).await {
            Ok(response) => response,
            Err(_) => response::error(&RecError::timeout(format!(
                "The receiver did not complete processing within {} seconds. If this was a message, retry with the same X-Request-Id to learn its outcome.",
                deadline.as_secs()
            ))),
        }
    } else {
        app.metrics.rate_limited.inc();
        drop(req);
        response::error(&RecError::new(
            RecCode::TooManyRequests,
            IssueType::Throttled,
            "The receiver is receiving too many requests; retry later.",
        ))
    };
    unread.settle(response, max_body, until).await
}

/// Steps 2 to 8, in order.
async fn handle(app: Arc<App>, req: Request) -> Response {
    let routed = match route(&app, req) {
        Ok(routed) => routed,
        Err(refusal) => return refusal.into_response(),
    };
    let name = RouteName(routed.head.interaction.name());
    let mut response = advance(app, routed).await.unwrap_or_else(Refusal::into_response);
    response.extensions_mut().insert(name);
    response
}

async fn advance(app: Arc<App>, routed: Routed) -> Step<Response> {
    let identified = identify(&app, routed)?;
    let registered = register(&app, identified)?;
    let targeted = target(&app, registered)?;
    let claimed = claim(&app, targeted).await?;
    let parsed = parse(&app, claimed).await?;
    Ok(answer(app, parsed).await)
}

/// A stage, or the refusal that ended the request there.
type Step<T> = Result<T, Refusal>;

/// Why a request ended before its handler was called.
enum Refusal {
    /// An OperationOutcome.
    Error(RecError),
    /// 405, with the methods the path serves.
    MethodNotAllowed(RecError, String),
    /// The first attempt's answer, replayed to a retry.
    Replay { status: u16, body: String },
}

impl From<RecError> for Refusal {
    fn from(error: RecError) -> Self {
        Self::Error(error)
    }
}

impl Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::Error(e) => response::error(&e),
            Self::MethodNotAllowed(e, allow) => response::method_not_allowed(&e, &allow),
            Self::Replay { status, body } => response::raw(status, body),
        }
    }
}

/// What every stage carries: the request head and what routing made of it.
struct Head {
    parts: Parts,
    route: Route,
    interaction: Interaction,
}

/// Step 2: a verified peer asking for an endpoint and method this receiver serves.
struct Routed {
    head: Head,
    body: Body,
    peer: Arc<PeerIdentity>,
}

/// Step 3: who is asking, with the ids and `NHSD-*` headers decoded.
struct Identified {
    head: Head,
    body: Body,
    caller: Caller,
}

/// The caller of an identified request.
enum Caller {
    /// A BaRS request, with the context its handler will see.
    Bars(Box<RequestContext>),
    /// `GET /metadata`, answered by the receiver itself; ids are optional there.
    Metadata(Option<TargetIdentifier>),
}

/// Step 4: a request for an interaction with a registered handler.
struct Registered(Identified);

/// Step 5: a request addressed to a service this receiver handles.
struct Targeted(Identified);

/// Step 6: for a state-changing request, its body, read within the limits, and its
/// de-duplication claim; for a read, neither.
struct Claimed {
    head: Head,
    caller: Caller,
    body: Bytes,
    claim: Option<DedupGuard>,
    /// Held until the request is answered (`http.max_inflight_body`).
    room: Option<OwnedSemaphorePermit>,
}

/// Step 7: the input its handler is called with.
struct Parsed {
    interaction: Interaction,
    caller: Caller,
    input: Input,
    claim: Option<DedupGuard>,
    room: Option<OwnedSemaphorePermit>,
}

fn route(app: &App, req: Request) -> Step<Routed> {
    let Some(peer) = req.extensions().get::<Arc<PeerIdentity>>().cloned() else {
        // Only reachable if the router is served without the TLS front: fail closed.
        return Err(RecError::new(RecCode::Forbidden, IssueType::Security, "TLS-MA failure.").into());
    };
    let (parts, body) = req.into_parts();
    let route = app.route(parts.uri.path())?;
    let interaction = route
        .interaction(&parts.method)
        .map_err(|e| Refusal::MethodNotAllowed(e, route.allow_header()))?;
    Ok(Routed {
        head: Head {
            parts,
            route,
            interaction,
        },
        body,
        peer,
    })
}

fn identify(app: &App, routed: Routed) -> Step<Identified> {
    let Routed { head, body, peer } = routed;
    let caller = if head.interaction == Interaction::Capabilities {
        BarsIds::optional_from_headers(&head.parts.headers)
            .and_then(|_| NhsdHeaders::from_headers(&head.parts.headers))
            .map(|headers| Caller::Metadata(headers.target))
    } else {
        let relative = app.relative_path(head.parts.uri.path()).unwrap_or_default();
        // The guide leaves the MessageDefinition search out of the requester headers, as
        // it does /metadata.
        let requester = match head.interaction {
            Interaction::SearchMessageDefinitions => RequesterHeaders::Optional,
            _ => app.config.requester_headers,
        };
        context(&head.parts, &peer, relative, requester).map(|ctx| Caller::Bars(Box::new(ctx)))
    }?;
    Ok(Identified { head, body, caller })
}

fn register(app: &App, identified: Identified) -> Step<Registered> {
    let interaction = identified.head.interaction;
    if app.is_registered(interaction) {
        Ok(Registered(identified))
    } else {
        Err(not_implemented(interaction).into())
    }
}

fn target(app: &App, Registered(identified): Registered) -> Step<Targeted> {
    match &identified.caller {
        Caller::Bars(ctx) => app.check_target(ctx.target.as_ref(), false)?,
        Caller::Metadata(target) => app.check_target(target.as_ref(), true)?,
    }
    Ok(Targeted(identified))
}

/// The steps only state-changing requests take. The body is read before the claim so that
/// a retry can be told from a different message reusing its id.
async fn claim(app: &App, Targeted(identified): Targeted) -> Step<Claimed> {
    let Identified { head, body, caller } = identified;
    let request_id = match &caller {
        Caller::Bars(ctx) if head.interaction.is_mutation() => ctx.request_id,
        _ => {
            return Ok(Claimed {
                head,
                caller,
                body: Bytes::new(),
                claim: None,
                room: None,
            });
        }
    };
    // Past http.max_inflight_body a request waits for room, within its deadline.
    let room = app
        .body_budget
        .reserve(&head.parts, head.interaction, app.config.max_body)
        .await
        .ok_or_else(|| RecError::unavailable("The receiver is busy; retry later."))?;
    let body = input::read_body(&head.parts, body, head.interaction, app.config.max_body).await?;
    let guard = match app
        .dedup
        .claim(request_id, sha256_hex(&body), head.interaction)
        .await?
    {
        Claim::Fresh(guard) => guard,
        Claim::InProgress => return Err(dedup::too_early().into()),
        Claim::Done(reference) => return Err(dedup::duplicate(reference.as_deref()).into()),
        Claim::Failed { status, body } => return Err(Refusal::Replay { status, body }),
        Claim::Conflict => return Err(dedup::reused_id().into()),
    };
    Ok(Claimed {
        head,
        caller,
        body,
        claim: Some(guard),
        room: Some(room),
    })
}

async fn parse(app: &App, claimed: Claimed) -> Step<Parsed> {
    let Claimed {
        head,
        caller,
        body,
        claim,
        room,
    } = claimed;
    match input::parse(&head.parts, &body, head.interaction, &head.route, &app.config) {
        Ok(input) => Ok(Parsed {
            interaction: head.interaction,
            caller: caller.with_body(&input, &body),
            input,
            claim,
            room,
        }),
        Err(e) => {
            if let Some(guard) = claim {
                guard.finish(&Err(e.clone())).await;
            }
            Err(e.into())
        }
    }
}

async fn answer(app: Arc<App>, parsed: Parsed) -> Response {
    let Parsed {
        interaction,
        caller,
        input,
        claim,
        room: _room,
    } = parsed;
    match caller {
        Caller::Metadata(_) => response::fhir_text(200, app.capability.clone()),
        Caller::Bars(ctx) => response::from_result(&spawn_call(app, *ctx, interaction, input, claim).await),
    }
}

impl Caller {
    /// The request body as the handler sees it: the message's exact text, or the body read.
    fn with_body(self, input: &Input, body: &Bytes) -> Self {
        let Self::Bars(ctx) = self else {
            return self;
        };
        Self::Bars(Box::new(match input {
            Input::Message(m) => ctx.with_body(m.source.clone()),
            _ => match std::str::from_utf8(body) {
                Ok(text) if !text.is_empty() => ctx.with_body(Arc::from(text)),
                _ => *ctx,
            },
        }))
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    crate::tls::hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

/// Runs the handler in its own task, so that a panic becomes a 500 and a state-changing
/// request outlives its caller (the deadline, a dropped connection). Such a handler is never
/// cancelled: stopped mid-way it may have committed part of its work for all the receiver
/// can tell, and a retry processed on top of that could commit it twice. So the task holds
/// the de-duplication claim until the handler ends, whenever that is (retries get 425
/// meanwhile), then records the outcome for the retry; `http.processing_limit` only marks
/// it as stuck. Reads change nothing and are aborted when their caller gives up.
async fn spawn_call(
    app: Arc<App>,
    ctx: RequestContext,
    interaction: Interaction,
    input: Input,
    guard: Option<dedup::DedupGuard>,
) -> HandlerResult {
    let limit = app.config.processing_limit;
    let request_id = ctx.request_id;
    let mut ctx = ctx;
    ctx.settlement = guard.as_ref().map(dedup::DedupGuard::settlement);
    // Counted until it ends, so that a handler outliving its connection still holds up the
    // shutdown drain (within the grace period) rather than being dropped at exit.
    let running = app.tasks.token();
    let task = tokio::spawn(
        async move {
            let _running = running;
            let work = call(&app, &ctx, interaction, input);
            let result = to_the_end(work, limit, &ctx, interaction).await;
            if let Some(guard) = guard {
                guard.finish(&result).await;
            }
            result
        }
        .instrument(tracing::Span::current()),
    );
    let abort = (!interaction.is_mutation()).then(|| task.abort_handle());
    let _abort_reads = AbortOnDrop(abort);
    match task.await {
        Ok(result) => result,
        Err(e) => {
            tracing::error!(%request_id, interaction = interaction.name(), error = %e, "handler panicked");
            Err(RecError::server_error(
                "An unexpected error occurred at the receiver.",
            ))
        }
    }
}

/// Awaits `work` to its end, logging it as stuck if it is still running after `limit`.
async fn to_the_end(
    work: impl Future<Output = HandlerResult>,
    limit: Duration,
    ctx: &RequestContext,
    interaction: Interaction,
) -> HandlerResult {
    let mut work = std::pin::pin!(work);
    if let Ok(result) = tokio::time::timeout(limit, work.as_mut()).await {
        return result;
    }
    tracing::error!(
        request_id = %ctx.request_id,
        interaction = interaction.name(),
        limit_secs = limit.as_secs_f64(),
        "handler stuck: still running after http.processing_limit; it is not cancelled, and retries get 425 until it ends"
    );
    let result = work.await;
    let elapsed = (OffsetDateTime::now_utc() - ctx.received_at).as_seconds_f64();
    tracing::warn!(
        request_id = %ctx.request_id,
        interaction = interaction.name(),
        elapsed_secs = elapsed,
        ok = result.is_ok(),
        "stuck handler ended"
    );
    result
}

struct AbortOnDrop(Option<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = &self.0 {
            handle.abort();
        }
    }
}

async fn call(app: &App, ctx: &RequestContext, interaction: Interaction, input: Input) -> HandlerResult {
    let h = &app.handlers;
    let not_registered = || Err(not_implemented(interaction));
    match (interaction, input) {
        (Interaction::ProcessMessage, Input::Message(m)) => h.messaging.process_message(ctx, *m).await,
        (Interaction::SearchSlots, Input::Slots(q)) => match &h.slots {
            Some(s) => s.search_slots(ctx, q).await,
            None => not_registered(),
        },
        // Answered from the configuration, never by a handler: what it lists is what the
        // CapabilityStatement and the message checks use.
        (Interaction::SearchMessageDefinitions, Input::Search(p)) => app
            .config
            .message_definitions
            .search(
                p.pairs(),
                app.config.base_url.as_deref(),
                OffsetDateTime::now_utc(),
            )
            .map(FhirResponse::ok),
        (Interaction::Search(t), Input::Search(p)) => match &h.resource(t).search {
            Some(r) => r.search(ctx, p).await,
            None => not_registered(),
        },
        (Interaction::Read(t), Input::Id(id)) => match &h.resource(t).read {
            Some(r) => r.read(ctx, &id).await,
            None => not_registered(),
        },
        (Interaction::Delete(t), Input::Id(id)) => match &h.resource(t).delete {
            Some(r) => r.delete(ctx, &id).await,
            None => not_registered(),
        },
        (Interaction::Create(t), Input::Resource(_, body)) => match &h.resource(t).create {
            Some(r) => r.create(ctx, body).await,
            None => not_registered(),
        },
        (Interaction::Update(t), Input::Resource(Some(id), body)) => match &h.resource(t).update {
            Some(r) => r.update(ctx, &id, body).await,
            None => not_registered(),
        },
        (Interaction::Patch(t), Input::Patch(id, body)) => match &h.resource(t).patch {
            Some(r) => r.patch(ctx, &id, body).await,
            None => not_registered(),
        },
        _ => not_registered(),
    }
}

fn not_implemented(interaction: Interaction) -> RecError {
    RecError::not_implemented(format!(
        "This receiver has not implemented {}",
        interaction.name()
    ))
}

/// The context a handler sees: ids, decoded `NHSD-*` headers, peer and request line.
fn context(
    parts: &Parts,
    peer: &Arc<PeerIdentity>,
    relative_path: &str,
    requester: RequesterHeaders,
) -> Result<RequestContext, RecError> {
    let ids = BarsIds::from_headers(&parts.headers)?;
    let headers = NhsdHeaders::from_headers(&parts.headers)?;
    headers.check_requester(requester)?;
    Ok(RequestContext::new(ids, headers, PeerIdentity::clone(peer))
        .with_request_line(parts.method.as_str(), relative_path, parts.uri.query())
        .with_http_headers(
            parts
                .headers
                .iter()
                .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str(), v))),
        ))
}

impl App {
    /// `path` without the base path, or `None` when it is outside it.
    fn relative_path<'a>(&self, path: &'a str) -> Option<&'a str> {
        let base = self.config.base_path.as_str();
        if base.is_empty() {
            Some(path)
        } else {
            path.strip_prefix(base)
                .filter(|rest| rest.is_empty() || rest.starts_with('/'))
        }
    }

    fn route(&self, path: &str) -> Result<Route, RecError> {
        self.relative_path(path)
            .map(Route::match_path)
            .unwrap_or_else(|| {
                Err(RecError::not_found(
                    "No BaRS endpoint at this path on this receiver",
                ))
            })
    }

    fn check_target(
        &self,
        target: Option<&crate::fhir::TargetIdentifier>,
        optional: bool,
    ) -> Result<(), RecError> {
        match target {
            None if optional => Ok(()),
            None => Err(RecError::bad_request(
                IssueType::Required,
                "NHSD-Target-Identifier is missing",
            )),
            Some(t) if self.config.services.is_empty() || self.config.services.contains(t) => Ok(()),
            Some(_) => Err(RecError::not_found(
                "The target service in NHSD-Target-Identifier is not handled by this receiver",
            )),
        }
    }

    fn is_registered(&self, interaction: Interaction) -> bool {
        let h = &self.handlers;
        match interaction {
            Interaction::Capabilities
            | Interaction::ProcessMessage
            | Interaction::SearchMessageDefinitions => true,
            Interaction::SearchSlots => h.slots.is_some(),
            Interaction::Search(t) => h.resource(t).supports(RestInteraction::Search),
            Interaction::Read(t) => h.resource(t).supports(RestInteraction::Read),
            Interaction::Create(t) => h.resource(t).supports(RestInteraction::Create),
            Interaction::Update(t) => h.resource(t).supports(RestInteraction::Update),
            Interaction::Patch(t) => h.resource(t).supports(RestInteraction::Patch),
            Interaction::Delete(t) => h.resource(t).supports(RestInteraction::Delete),
        }
    }
}
