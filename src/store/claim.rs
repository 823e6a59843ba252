//! A claim on an `X-Request-Id`: held by one attempt from before its handler runs until its
//! outcome is recorded. On a shared store the claim is a leased row, renewed while the
//! attempt runs, so that a replica that dies mid-request leaves a claim that runs out and
//! the sender's retry is processed elsewhere, once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use uuid::Uuid;

use super::{OutcomeState, RequestOutcome, Store, StoreError};

/// What claiming an `X-Request-Id` found.
#[derive(Debug)]
pub(crate) enum RequestClaim {
    /// First sight (or the lease of a dead attempt ran out): process it, then
    /// [`Claim::record`].
    Claimed(Claim),
    /// Another attempt is processing right now, here or on another replica.
    InProgress,
    /// Already processed or refused.
    Recorded(RequestOutcome),
}

/// A held claim. Dropped without [`Claim::record`], it is released with nothing recorded,
/// so a retry is processed afresh.
#[derive(Debug)]
pub(crate) struct Claim {
    store: Store,
    request_id: Uuid,
    token: Uuid,
    renewer: Option<tokio::task::AbortHandle>,
    settled: bool,
}

impl Claim {
    pub(super) fn new(store: Store, request_id: Uuid, token: Uuid, lease: Duration) -> Self {
        let renewer = store.is_shared().then(|| {
            let store = store.clone();
            tokio::spawn(async move {
                let every = (lease / 3).max(Duration::from_millis(100));
                loop {
                    tokio::time::sleep(every).await;
                    match store.renew_claim(request_id, token, lease).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(%request_id, "the claim on this X-Request-Id was lost; a retry may be processed elsewhere");
                            return;
                        }
                        Err(e) => tracing::warn!(%request_id, error = %e, "could not renew the claim on this X-Request-Id"),
                    }
                }
            })
            .abort_handle()
        });
        Self {
            store,
            request_id,
            token,
            renewer,
            settled: false,
        }
    }

    /// Durably records how the request ended, which ends the claim.
    pub(crate) async fn record(mut self, outcome: RequestOutcome) -> Result<(), StoreError> {
        self.stop_renewing();
        self.store.record_claimed_outcome(outcome).await
    }

    /// Ends a claim whose outcome was committed with the message it accepted
    /// ([`Settlement`]): that commit also ended the claim.
    pub(crate) fn recorded_with_message(mut self) {
        self.stop_renewing();
    }

    fn stop_renewing(&mut self) {
        self.settled = true;
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
    }
}

/// Lets the handler's own commit of an accepted message record the request's
/// de-duplication outcome in the same transaction, so that an acknowledged message waits
/// for one commit (and one fsync) instead of two in sequence. Cloned into the handler's
/// [`RequestContext`](crate::handler::RequestContext); the claim's holder sees afterwards
/// whether it was used.
#[derive(Debug, Clone)]
pub(crate) struct Settlement {
    inner: Arc<SettlementInner>,
}

#[derive(Debug)]
struct SettlementInner {
    request_id: Uuid,
    interaction: &'static str,
    body_sha256: String,
    recorded: AtomicBool,
}

impl Settlement {
    pub(crate) fn new(request_id: Uuid, interaction: &'static str, body_sha256: String) -> Self {
        Self {
            inner: Arc::new(SettlementInner {
                request_id,
                interaction,
                body_sha256,
                recorded: AtomicBool::new(false),
            }),
        }
    }

    /// The `X-Request-Id` claimed.
    pub(crate) fn request_id(&self) -> Uuid {
        self.inner.request_id
    }

    /// How the claimed request ended, as recorded for its retries.
    pub(crate) fn outcome(
        &self,
        state: OutcomeState,
        status: u16,
        response: Option<String>,
        reference: Option<String>,
    ) -> RequestOutcome {
        RequestOutcome {
            request_id: self.inner.request_id,
            state,
            status,
            response,
            reference,
            interaction: self.inner.interaction.to_owned(),
            body_sha256: self.inner.body_sha256.clone(),
            recorded_at: super::timestamp(time::OffsetDateTime::now_utc()),
        }
    }

    /// The outcome of accepting the request as message `reference` with a 200, for a
    /// message with this `X-Request-Id`; `None` for another one (a handler storing a message
    /// that is not this request's).
    pub(crate) fn accepted(&self, request_id: Uuid, reference: &str) -> Option<RequestOutcome> {
        (request_id == self.inner.request_id)
            .then(|| self.outcome(OutcomeState::Done, 200, None, Some(reference.to_owned())))
    }

    /// Called once the commit holding [`Settlement::accepted`]'s outcome returned.
    pub(crate) fn mark_recorded(&self) {
        self.inner.recorded.store(true, Ordering::Release);
    }

    /// Whether the request's outcome was committed with its message.
    pub(crate) fn is_recorded(&self) -> bool {
        self.inner.recorded.load(Ordering::Acquire)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
        if !self.settled {
            self.store.release_claim(self.request_id, self.token);
        }
    }
}
