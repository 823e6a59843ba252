//! A bound on request bodies held in memory at once (`http.max_inflight_body`): each
//! state-changing request reserves its declared length (or `http.max_body` when it declares
//! none) before its body is read, and gives it back when it is answered.

use std::sync::Arc;

use http::request::Parts;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Reservations are counted in KiB, so that the semaphore's u32 permits cover gigabytes.
const UNIT: usize = 1024;

/// The budget.
#[derive(Debug)]
pub(crate) struct BodyBudget {
    room: Arc<Semaphore>,
    total_units: usize,
}

impl BodyBudget {
    pub(crate) fn new(total_bytes: usize) -> Self {
        let total_units = (total_bytes / UNIT).max(1);
        Self {
            room: Arc::new(Semaphore::new(total_units)),
            total_units,
        }
    }

    /// Reserves room for this request's body, waiting while other bodies use it. `None`
    /// only if the budget is closed.
    pub(crate) async fn reserve(&self, parts: &Parts, max_body: usize) -> Option<OwnedSemaphorePermit> {
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        // Over max_body is refused (413) once read starts; reserve no more than that.
        let bytes = declared.unwrap_or(max_body).min(max_body);
        let units = (bytes / UNIT + 1).min(self.total_units);
        let units = u32::try_from(units).unwrap_or(u32::MAX);
        self.room.clone().acquire_many_owned(units).await.ok()
    }
}
