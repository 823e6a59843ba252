//! A bound on the memory request bodies hold at once (`http.max_inflight_body`): each
//! state-changing request reserves what its body will cost, from its declared length (or
//! `http.max_body` when it declares none), before the body is read, and gives it back when
//! it is answered.
//!
//! A body costs more than its length once it is parsed: a message is held as received and
//! as the text handlers get, parsed into a `serde_json::Value` for its profile checks and its
//! receiver ids (kept with the message while the handler runs), and answered as a second
//! text with those ids; a resource for create, update or patch is also parsed into the
//! `Value` its handler takes. With numbers kept as written and members kept in order, a
//! `Value` measures about nine times the JSON for FHIR resources.

use std::sync::Arc;

use http::request::Parts;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::input::has_body;
use crate::fhir::Interaction;

/// Reservations are counted in KiB, so that the semaphore's u32 permits cover gigabytes.
const UNIT: usize = 1024;

/// What a message's body costs, in multiples of its length: the body read, its text, the
/// parsed `Value` and the answered text.
const MESSAGE_COST: usize = 12;

/// What a resource's body costs, in multiples of its length: the body read, and the parsed
/// `Value`.
const RESOURCE_COST: usize = 11;

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

    /// Reserves room for what this request's body will cost, waiting while other bodies use
    /// it. A request whose cost exceeds the whole budget takes all of it, and so runs alone.
    /// `None` only if the budget is closed.
    pub(crate) async fn reserve(
        &self,
        parts: &Parts,
        interaction: Interaction,
        max_body: usize,
    ) -> Option<OwnedSemaphorePermit> {
        let declared = parts
            .headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        // Over max_body is refused (413) once read starts; reserve no more than that.
        let bytes = declared.unwrap_or(max_body).min(max_body);
        let cost = match interaction {
            _ if !has_body(interaction) => 0,
            Interaction::ProcessMessage => bytes.saturating_mul(MESSAGE_COST),
            _ => bytes.saturating_mul(RESOURCE_COST),
        };
        let units = (cost / UNIT + 1).min(self.total_units);
        let units = u32::try_from(units).unwrap_or(u32::MAX);
        self.room.clone().acquire_many_owned(units).await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::ResourceType;

    fn parts(content_length: Option<usize>) -> Parts {
        let mut builder = http::Request::builder();
        if let Some(len) = content_length {
            builder = builder.header(http::header::CONTENT_LENGTH, len);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[tokio::test]
    async fn reserves_what_each_kind_of_body_costs_once_parsed() {
        let budget = BodyBudget::new(64 * 1024 * 1024);
        let reserve = async |length, interaction| {
            let permit = budget.reserve(&parts(length), interaction, 10 << 20).await;
            permit.unwrap().num_permits()
        };
        assert_eq!(
            reserve(Some(1 << 20), Interaction::ProcessMessage).await,
            12 * 1024 + 1
        );
        let create = Interaction::Create(ResourceType::Appointment);
        assert_eq!(reserve(Some(1 << 20), create).await, 11 * 1024 + 1);
        let delete = Interaction::Delete(ResourceType::Appointment);
        assert_eq!(reserve(None, delete).await, 1);
        // Undeclared: as if max_body; more than the whole budget: all of it.
        assert_eq!(reserve(None, create).await, 64 * 1024);
    }
}
