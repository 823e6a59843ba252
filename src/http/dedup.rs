//! De-duplication on `X-Request-Id`, shared by every handler: a retry of a processed message
//! is a 409 duplicate, of one still processing a 425, of one that failed the same failure.
//! In-flight claims live in memory (a crash releases them, so the retry is processed);
//! outcomes are durable in the store. A claim is held until its handler ends, however long
//! that takes: the pipeline never cancels a state-changing handler, so a retry can never be
//! processed while the first attempt may still commit.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::admin::Metrics;
use crate::fhir::{Interaction, IssueType, RecCode, RecError};
use crate::handler::HandlerResult;
use crate::store::{OutcomeState, RequestOutcome, Store, timestamp};

/// The de-duplication gate.
#[derive(Debug)]
pub(crate) struct Dedup {
    store: Store,
    metrics: Arc<Metrics>,
    in_flight: Mutex<HashSet<Uuid>>,
}

/// What a claim on an `X-Request-Id` found.
pub(crate) enum Claim {
    /// First sight: process it, then [`DedupGuard::finish`].
    Fresh(DedupGuard),
    /// Another attempt is processing right now.
    InProgress,
    /// Already processed, with the receiver's reference if any.
    Done(Option<String>),
    /// The id was already used for a different body: not a retry but another message.
    Conflict,
    /// Already failed: answer the same.
    Failed {
        /// The status sent the first time.
        status: u16,
        /// The OperationOutcome sent the first time.
        body: String,
    },
}

impl Dedup {
    pub(crate) fn new(store: Store, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            store,
            metrics,
            in_flight: Mutex::new(HashSet::new()),
        })
    }

    /// Claims `request_id` for processing a body with hash `body_sha256`, or says why not.
    pub(crate) async fn claim(
        self: &Arc<Self>,
        request_id: Uuid,
        body_sha256: String,
    ) -> Result<Claim, RecError> {
        if !self.lock().insert(request_id) {
            self.metrics.count_dedup("too_early");
            return Ok(Claim::InProgress);
        }
        // From here the guard releases the claim on every path, including cancellation.
        let guard = DedupGuard {
            dedup: self.clone(),
            request_id,
            body_sha256,
        };
        match self.store.find_outcome(request_id).await {
            Ok(None) => Ok(Claim::Fresh(guard)),
            Ok(Some(outcome)) if outcome.body_sha256 != guard.body_sha256 => {
                tracing::warn!(%request_id, "X-Request-Id reused for a different body");
                self.metrics.count_dedup("conflict");
                Ok(Claim::Conflict)
            }
            Ok(Some(outcome)) => Ok(match outcome.state {
                OutcomeState::Done => {
                    self.metrics.count_dedup("duplicate");
                    Claim::Done(outcome.reference)
                }
                OutcomeState::Failed => {
                    self.metrics.count_dedup("replay");
                    Claim::Failed {
                        status: outcome.status,
                        body: outcome.response.unwrap_or_default(),
                    }
                }
            }),
            Err(e) => {
                tracing::error!(error = %e, "de-duplication lookup failed");
                Err(RecError::new(
                    RecCode::ServerError,
                    IssueType::Transient,
                    "The receiver could not check for duplicates; retry later.",
                ))
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
        // The set holds plain ids; a panic while it was held cannot leave it inconsistent.
        self.in_flight
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The 409 for a retry of a processed message, quoting the receiver's reference.
pub(crate) fn duplicate(reference: Option<&str>) -> RecError {
    let mut text = "This message has already been received and processed.".to_owned();
    if let Some(reference) = reference {
        text.push_str(&format!(" Reference ID: {reference}"));
    }
    RecError::new(RecCode::Conflict, IssueType::Duplicate, text)
}

/// The 409 for an `X-Request-Id` reused for a different message.
pub(crate) fn reused_id() -> RecError {
    RecError::new(
        RecCode::Conflict,
        IssueType::Conflict,
        "This X-Request-Id was already used for a different message; every message needs its own X-Request-Id.",
    )
}

/// The 425 for a retry that arrives while the first attempt is processing.
pub(crate) fn too_early() -> RecError {
    RecError::new(
        RecCode::TooEarly,
        IssueType::Duplicate,
        "The receiver has not finished processing the previous attempt of this message; retry later.",
    )
}

/// A claim in progress. Dropping it without [`DedupGuard::finish`] releases the claim with
/// nothing recorded, so a retry is processed afresh: the pipeline does so only when the
/// deadline passes before the handler is called, and when the handler panics.
pub(crate) struct DedupGuard {
    dedup: Arc<Dedup>,
    request_id: Uuid,
    body_sha256: String,
}

impl DedupGuard {
    /// Records how the request ended (durably), then releases the claim. Transient failures
    /// ([`RecError::is_transient`]: 5xx, 408, 425, 429, retryable) are not recorded: a retry
    /// is processed again.
    pub(crate) async fn finish(self, interaction: Interaction, result: &HandlerResult) {
        let (state, status, response, reference) = match result {
            Ok(ok) => (OutcomeState::Done, ok.status, None, ok.reference.clone()),
            Err(e) if e.is_transient() => return,
            Err(e) => (
                OutcomeState::Failed,
                e.status(),
                Some(e.to_operation_outcome_text()),
                None,
            ),
        };
        let outcome = RequestOutcome {
            request_id: self.request_id,
            state,
            status,
            response,
            reference,
            interaction: interaction.name().to_owned(),
            body_sha256: self.body_sha256.clone(),
            recorded_at: timestamp(OffsetDateTime::now_utc()),
        };
        if let Err(e) = self.dedup.store.record_outcome(outcome).await {
            tracing::error!(error = %e, request_id = %self.request_id, "could not record the request outcome");
        }
    }
}

impl Drop for DedupGuard {
    fn drop(&mut self) {
        self.dedup.lock().remove(&self.request_id);
    }
}
