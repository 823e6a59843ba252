//! De-duplication on `X-Request-Id`, shared by every handler: a retry of a processed message
//! is a 409 duplicate, of one still processing a 425, of one that failed the same failure.
//! Claims and outcomes are kept by the store: on the embedded store claims live in memory
//! (a crash releases them, so the retry is processed), on a shared store they are leased rows,
//! so that two replicas never process one `X-Request-Id` at once and a replica that dies
//! leaves a claim that runs out. A claim is held until its handler ends, however long that
//! takes: the pipeline never cancels a state-changing handler, so a retry can never be
//! processed while the first attempt may still commit.

use std::sync::Arc;

use uuid::Uuid;

use crate::admin::Metrics;
use crate::fhir::{Interaction, IssueType, RecCode, RecError};
use crate::handler::HandlerResult;
use crate::store::{self, OutcomeState, RequestClaim, Settlement, Store};

/// The de-duplication gate.
#[derive(Debug)]
pub(crate) struct Dedup {
    store: Store,
    metrics: Arc<Metrics>,
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
        Arc::new(Self { store, metrics })
    }

    /// Claims `request_id` for processing `interaction` with a body of hash `body_sha256`,
    /// or says why not. An id already used for another interaction or another body is a
    /// different request reusing it, never a retry.
    pub(crate) async fn claim(
        self: &Arc<Self>,
        request_id: Uuid,
        body_sha256: String,
        interaction: Interaction,
    ) -> Result<Claim, RecError> {
        let claim = match self.store.claim_request(request_id, &body_sha256).await {
            Ok(claim) => claim,
            Err(e) => {
                tracing::error!(error = %e, "de-duplication lookup failed");
                return Err(lookup_failed(&e));
            }
        };
        let outcome = match claim {
            RequestClaim::Claimed(claim) => {
                return Ok(Claim::Fresh(DedupGuard {
                    claim,
                    settlement: Settlement::new(request_id, interaction.name(), body_sha256),
                }));
            }
            RequestClaim::InProgress => {
                self.metrics.count_dedup("too_early");
                return Ok(Claim::InProgress);
            }
            RequestClaim::Recorded(outcome) => outcome,
        };
        if outcome.body_sha256 != body_sha256 || outcome.interaction != interaction.name() {
            tracing::warn!(%request_id, "X-Request-Id reused for a different request");
            self.metrics.count_dedup("conflict");
            return Ok(Claim::Conflict);
        }
        Ok(match outcome.state {
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
        })
    }
}

/// The refusal when the store could not say whether the request is a retry: 503 while the
/// database is unreachable (the sender retries), 500 otherwise.
fn lookup_failed(e: &store::StoreError) -> RecError {
    if e.is_unavailable() {
        RecError::new(
            RecCode::ServiceUnavailable,
            IssueType::Transient,
            "The receiver's database is unavailable; retry later.",
        )
    } else {
        RecError::new(
            RecCode::ServerError,
            IssueType::Transient,
            "The receiver could not check for duplicates; retry later.",
        )
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
    claim: store::Claim,
    /// What was claimed (id, interaction, body hash), and whether the handler's commit
    /// recorded the outcome already.
    settlement: Settlement,
}

impl DedupGuard {
    /// For the handler: lets the commit that accepts the message record the outcome with it
    /// (the built-in inbox and relay handlers do).
    pub(crate) fn settlement(&self) -> Settlement {
        self.settlement.clone()
    }

    /// Records how the request ended (durably), which ends the claim, unless the handler's
    /// commit recorded it already ([`DedupGuard::settlement`]). Transient failures
    /// ([`RecError::is_transient`]: 5xx, 408, 425, 429, retryable) are not recorded and the
    /// claim is released: a retry is processed again.
    pub(crate) async fn finish(self, result: &HandlerResult) {
        if self.settlement.is_recorded() {
            self.claim.recorded_with_message();
            return;
        }
        let outcome = match result {
            Ok(ok) => self
                .settlement
                .outcome(OutcomeState::Done, ok.status, None, ok.reference.clone()),
            Err(e) if e.is_transient() => return,
            Err(e) => self.settlement.outcome(
                OutcomeState::Failed,
                e.status(),
                Some(e.to_operation_outcome_text()),
                None,
            ),
        };
        if let Err(e) = self.claim.record(outcome).await {
            tracing::error!(error = %e, request_id = %self.settlement.request_id(), "could not record the request outcome");
        }
    }
}
