//! The request pipeline: route (404/405), ids (400), NHSD-* headers (400), target service
//! (404), registered function (501), de-duplication (409/425/replay), input checks, then the
//! handler, all inside the BaRS deadline (408).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::response::Response;
use http::request::Parts;
use tracing::Instrument;

use super::dedup::{self, Claim};
use super::input::{self, Input};
use super::{App, response};
use bytes::Bytes;

use crate::fhir::{BarsIds, Interaction, IssueType, NhsdHeaders, RecCode, RecError, Route, TargetIdentifier};
use crate::handler::{HandlerResult, RequestContext, RestInteraction};
use crate::tls::PeerIdentity;

/// Which interaction answered, for the access log and metrics.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteName(pub(crate) &'static str);

/// The one axum handler: every path comes here.
pub(crate) async fn dispatch(State(app): State<Arc<App>>, req: Request) -> Response {
    if !app.rate_limit.admit() {
        app.metrics.rate_limited.inc();
        return response::error(&RecError::new(
            RecCode::TooManyRequests,
            IssueType::Throttled,
            "The receiver is receiving too many requests; retry later.",
        ));
    }
    let deadline = app.config.deadline;
    match tokio::time::timeout(deadline, handle(app, req)).await {
        Ok(response) => response,
        Err(_) => response::error(&RecError::timeout(format!(
            "The receiver did not complete processing within {} seconds. If this was a message, retry with the same X-Request-Id to learn its outcome.",
            deadline.as_secs()
        ))),
    }
}

async fn handle(app: Arc<App>, req: Request) -> Response {
    let Some(peer) = req.extensions().get::<Arc<PeerIdentity>>().cloned() else {
        // Only reachable if the router is served without the TLS front: fail closed.
        return response::error(&RecError::new(
            RecCode::Forbidden,
            IssueType::Security,
            "TLS-MA failure.",
        ));
    };
    let (parts, body) = req.into_parts();
    let route = match app.route(parts.uri.path()) {
        Ok(route) => route,
        Err(e) => return response::error(&e),
    };
    let interaction = match route.interaction(&parts.method) {
        Ok(i) => i,
        Err(e) => return response::method_not_allowed(&e, &route.allow_header()),
    };
    let mut response = handle_matched(app, parts, body, route, interaction, peer).await;
    response.extensions_mut().insert(RouteName(interaction.name()));
    response
}

async fn handle_matched(
    app: Arc<App>,
    parts: Parts,
    body: axum::body::Body,
    route: Route,
    interaction: Interaction,
    peer: Arc<PeerIdentity>,
) -> Response {
    if interaction == Interaction::Capabilities {
        return capabilities(&app, &parts);
    }
    let relative = app.relative_path(parts.uri.path()).unwrap_or_default().to_owned();
    let (ctx, target) = match context(&parts, &peer, &relative) {
        Ok(pair) => pair,
        Err(e) => return response::error(&e),
    };
    if !app.is_registered(interaction) {
        return response::error(&not_implemented(interaction));
    }
    if !interaction.is_mutation() {
        let result = match app
            .check_target(target.as_ref(), false)
            .and_then(|()| input::parse(&parts, &Bytes::new(), interaction, &route, &app.config))
        {
            Ok(input) => spawn_call(app, ctx, interaction, input, None).await,
            Err(e) => Err(e),
        };
        return response::from_result(&result);
    }

    // State-changing: the body is read first so that a retry can be told from a different
    // message reusing the id; then the order of bars-spec §5 (duplicate, then the rest).
    // Bodies held in memory at once are bounded (http.max_inflight_body): past it, a request
    // waits for room, within its deadline.
    let _room = match app.body_budget.reserve(&parts, app.config.max_body).await {
        Some(room) => room,
        None => return response::error(&RecError::unavailable("The receiver is busy; retry later.")),
    };
    let body = match input::read_body(&parts, body, interaction, app.config.max_body).await {
        Ok(body) => body,
        Err(e) => return response::error(&e),
    };
    let guard = match app.dedup.claim(ctx.request_id, sha256_hex(&body)).await {
        Ok(Claim::Fresh(guard)) => guard,
        Ok(Claim::InProgress) => return response::error(&dedup::too_early()),
        Ok(Claim::Done(reference)) => return response::error(&dedup::duplicate(reference.as_deref())),
        Ok(Claim::Failed { status, body }) => return response::raw(status, body),
        Ok(Claim::Conflict) => return response::error(&dedup::reused_id()),
        Err(e) => return response::error(&e),
    };
    let checked = app
        .check_target(target.as_ref(), false)
        .and_then(|()| input::parse(&parts, &body, interaction, &route, &app.config));
    let input = match checked {
        Ok(input) => input,
        Err(e) => {
            let result = Err(e);
            guard.finish(interaction, &result).await;
            return response::from_result(&result);
        }
    };
    let ctx = match &input {
        Input::Message(m) => ctx.with_body(m.source.clone()),
        _ => match std::str::from_utf8(&body) {
            Ok(text) if !text.is_empty() => ctx.with_body(Arc::from(text)),
            _ => ctx,
        },
    };
    response::from_result(&spawn_call(app, ctx, interaction, input, Some(guard)).await)
}

fn sha256_hex(bytes: &[u8]) -> String {
    crate::tls::hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}

/// Runs the handler in its own task, so that a panic becomes a 500 and a state-changing
/// request that overruns the deadline keeps processing (up to the processing limit) and
/// records its outcome for the retry. Reads are aborted when their caller gives up.
async fn spawn_call(
    app: Arc<App>,
    ctx: RequestContext,
    interaction: Interaction,
    input: Input,
    guard: Option<dedup::DedupGuard>,
) -> HandlerResult {
    let limit = app.config.processing_limit;
    let request_id = ctx.request_id;
    let task = tokio::spawn(
        async move {
        let result = match tokio::time::timeout(limit, call(&app, &ctx, interaction, input)).await {
            Ok(result) => result,
            Err(_) => {
                tracing::error!(%request_id, interaction = interaction.name(), limit_secs = limit.as_secs(), "handler abandoned after the processing limit");
                // Dropping the guard releases the claim unrecorded: the retry is processed.
                return Err(RecError::timeout("Processing was abandoned"));
            }
        };
        if let Some(guard) = guard {
            guard.finish(interaction, &result).await;
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
        (Interaction::SearchMessageDefinitions, Input::Search(p)) => match &h.message_definitions {
            Some(s) => s.search(ctx, p).await,
            None => not_registered(),
        },
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

fn capabilities(app: &App, parts: &Parts) -> Response {
    let checked = BarsIds::optional_from_headers(&parts.headers)
        .and_then(|_| NhsdHeaders::from_headers(&parts.headers))
        .and_then(|headers| app.check_target(headers.target.as_ref(), true))
        .and_then(|()| crate::fhir::check_accept(&parts.headers));
    match checked {
        Ok(()) => response::fhir(200, &app.capability),
        Err(e) => response::error(&e),
    }
}

/// The request context, and the target to check once de-duplication has had its turn.
fn context(
    parts: &Parts,
    peer: &Arc<PeerIdentity>,
    relative_path: &str,
) -> Result<(RequestContext, Option<TargetIdentifier>), RecError> {
    let ids = BarsIds::from_headers(&parts.headers)?;
    let headers = NhsdHeaders::from_headers(&parts.headers)?;
    let target = headers.target.clone();
    let ctx = RequestContext::new(ids, headers, PeerIdentity::clone(peer))
        .with_request_line(parts.method.as_str(), relative_path, parts.uri.query())
        .with_http_headers(
            parts
                .headers
                .iter()
                .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str(), v))),
        );
    Ok((ctx, target))
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
            Interaction::Capabilities | Interaction::ProcessMessage => true,
            Interaction::SearchSlots => h.slots.is_some(),
            Interaction::SearchMessageDefinitions => h.message_definitions.is_some(),
            Interaction::Search(t) => h.resource(t).supports(RestInteraction::Search),
            Interaction::Read(t) => h.resource(t).supports(RestInteraction::Read),
            Interaction::Create(t) => h.resource(t).supports(RestInteraction::Create),
            Interaction::Update(t) => h.resource(t).supports(RestInteraction::Update),
            Interaction::Patch(t) => h.resource(t).supports(RestInteraction::Patch),
            Interaction::Delete(t) => h.resource(t).supports(RestInteraction::Delete),
        }
    }
}
