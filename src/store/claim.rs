//! A claim on an `X-Request-Id`: held by one attempt from before its handler runs until its
//! outcome is recorded. On a shared store the claim is a leased row, renewed while the
//! attempt runs, so that a replica that dies mid-request leaves a claim that runs out and
//! the sender's retry is processed elsewhere, once.

use std::time::Duration;

use uuid::Uuid;

use super::{RequestOutcome, Store, StoreError};

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
        self.settled = true;
        if let Some(renewer) = self.renewer.take() {
            renewer.abort();
        }
        self.store.record_claimed_outcome(outcome).await
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
