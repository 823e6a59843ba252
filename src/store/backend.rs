//! The store's interface: what every database behind [`Store`](super::Store) implements.
//! SQLite (`sqlite/`) serves one instance; PostgreSQL (`postgres/`) serves several replicas
//! sharing one database, so everything that two replicas could do at once (claiming an
//! `X-Request-Id`, claiming a delivery) is decided by the database, never by one process.
//!
//! Times cross this interface as [`timestamp`](super::timestamp) text; each backend stores
//! them its own way.

use std::time::Duration;

use uuid::Uuid;

use super::{
    Delivery, DeliveryBacklog, DeliveryStatus, Finish, Inserted, MessageRecord, MessageSummary, NewMessage,
    RequestOutcome, StoreError,
};

/// A message's delivery, queued with it in the same transaction.
#[derive(Debug, Clone)]
pub(crate) struct QueuedDelivery {
    /// The request headers to send upstream, as JSON.
    pub(crate) headers: String,
    /// When it was queued ([`timestamp`](super::timestamp)).
    pub(crate) at: String,
}

/// What claiming an `X-Request-Id` found.
#[derive(Debug)]
pub(crate) enum ClaimFound {
    /// This caller holds the claim under `token` until it records an outcome or releases it.
    Claimed { token: Uuid },
    /// Another attempt holds a live claim.
    InProgress,
    /// The request was already processed or refused.
    Recorded(RequestOutcome),
}

/// The operations of a durable store.
#[allow(async_fn_in_trait)]
pub(crate) trait Backend {
    /// Whether several processes share this database (claims must then be leased and
    /// renewed; interrupted deliveries are taken over when their lease runs out).
    fn shared(&self) -> bool;

    /// Commits a message, and queues its delivery when `delivery` is given, durably. When
    /// the message is new and `outcome` is given, records that outcome in the same
    /// transaction, ending the request's claim as [`Backend::record_outcome`] does.
    async fn insert_message(
        &self,
        message: NewMessage,
        delivery: Option<QueuedDelivery>,
        outcome: Option<RequestOutcome>,
    ) -> Result<Inserted, StoreError>;

    /// Claims `request_id` for one attempt, leased for `lease` when the store is shared.
    async fn claim_request(
        &self,
        request_id: Uuid,
        body_sha256: &str,
        lease: Duration,
    ) -> Result<ClaimFound, StoreError>;

    /// Extends a live claim; `false` when it is no longer this caller's.
    async fn renew_claim(&self, request_id: Uuid, token: Uuid, lease: Duration) -> Result<bool, StoreError>;

    /// Gives a claim up with nothing recorded: a retry is processed afresh.
    async fn release_claim(&self, request_id: Uuid, token: Uuid) -> Result<(), StoreError>;

    /// Durably records how a request ended (ending its claim, if any).
    async fn record_outcome(&self, outcome: RequestOutcome) -> Result<(), StoreError>;

    /// The recorded outcome of a request, if any.
    async fn find_outcome(&self, request_id: Uuid) -> Result<Option<RequestOutcome>, StoreError>;

    /// Forgets up to `limit` outcomes recorded before `cutoff`; returns how many.
    async fn prune_outcomes(&self, cutoff: String, limit: u32) -> Result<u64, StoreError>;

    /// Claims up to `limit` conversation heads that are due now, each counted as an attempt
    /// and leased for `lease`; returns them with their attempt number. No two callers ever
    /// get the same message while its lease runs.
    async fn claim_deliveries(&self, limit: u32, lease: Duration)
    -> Result<Vec<(Delivery, u64)>, StoreError>;

    /// When the earliest conversation head is due, if any.
    async fn next_delivery_due(&self) -> Result<Option<String>, StoreError>;

    /// Records how attempt `attempt` on message `seq` ended; ignored (returns 0) when the
    /// message has since been claimed again by another attempt.
    async fn finish_attempt(&self, seq: i64, attempt: u64, finish: Finish) -> Result<u64, StoreError>;

    /// Makes attempts interrupted by this process's last stop due at once; returns how many.
    /// A shared store does nothing: their leases run out instead.
    async fn recover_deliveries(&self, now: String) -> Result<u64, StoreError>;

    /// Re-queues a dead letter with a fresh count of attempts; returns how many changed.
    async fn retry_dead_letter(&self, id: String, now: String) -> Result<u64, StoreError>;

    /// Deletes up to `limit` messages delivered before `cutoff`; returns how many.
    async fn purge_delivered(&self, cutoff: String, limit: u32) -> Result<u64, StoreError>;

    /// The delivery of one message: `None` when there is no such message, `Some(None)`
    /// when it is not relayed.
    async fn delivery_status(&self, id: String) -> Result<Option<Option<DeliveryStatus>>, StoreError>;

    /// How many messages are stored.
    async fn count(&self) -> Result<u64, StoreError>;

    /// What the relay has yet to deliver.
    async fn delivery_backlog(&self) -> Result<DeliveryBacklog, StoreError>;

    /// Whether the database answers a write.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The newest `limit` messages.
    async fn list(&self, limit: u32) -> Result<Vec<MessageSummary>, StoreError>;

    /// One message by receiver reference or `X-Request-Id`.
    async fn get(&self, id: String) -> Result<Option<MessageRecord>, StoreError>;

    /// Up to `limit` messages after arrival position `after`, oldest first, with their
    /// delivery state as stored.
    async fn page(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(MessageRecord, Option<CopiedDelivery>)>, StoreError>;

    /// Every de-duplication outcome, for copying to another store.
    async fn outcomes(&self) -> Result<Vec<RequestOutcome>, StoreError>;

    /// Stores a message exactly as another store holds it (its delivery state included),
    /// unless one with its `X-Request-Id` is present; `true` when it was copied.
    async fn copy_message(
        &self,
        record: MessageRecord,
        delivery: Option<CopiedDelivery>,
    ) -> Result<bool, StoreError>;

    /// Stores an outcome unless one for its `X-Request-Id` is present; `true` when copied.
    async fn copy_outcome(&self, outcome: RequestOutcome) -> Result<bool, StoreError>;
}

/// A message's whole delivery state, as copied between stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CopiedDelivery {
    pub(crate) state: String,
    pub(crate) attempts: i64,
    pub(crate) next_attempt_at: Option<String>,
    pub(crate) last_error: Option<String>,
    pub(crate) delivered_at: Option<String>,
    pub(crate) upstream_headers: Option<String>,
}
