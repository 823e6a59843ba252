//! The Prometheus metrics (prometheus-client), exposed as OpenMetrics or Prometheus 0.0.4
//! text (`exposition.rs`).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::tls::RefusalReason;

/// `reason` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabel {
    pub(crate) reason: &'static str,
}

/// `route`, `status` labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub(crate) route: &'static str,
    pub(crate) status: u16,
}

/// `route` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RouteLabel {
    pub(crate) route: &'static str,
}

/// `kind` label (de-duplication outcomes).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabel {
    pub(crate) kind: &'static str,
}

/// `result` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabel {
    pub(crate) result: &'static str,
}

/// A certificate or CRL: what it is and whose.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct MaterialLabels {
    pub(crate) kind: &'static str,
    pub(crate) subject: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;
type TimestampGauges = Family<MaterialLabels, Gauge<f64, AtomicU64>>;

fn latency_histogram() -> Histogram {
    // 1 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Every metric the receiver exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub(crate) connections_accepted: Counter,
    pub(crate) connections_admitted: Counter,
    pub(crate) connections_refused: Family<ReasonLabel, Counter>,
    pub(crate) connections_active: Gauge,
    pub(crate) handshake_seconds: Histogram,
    pub(crate) requests: Family<RequestLabels, Counter>,
    pub(crate) request_seconds: Histograms<RouteLabel>,
    pub(crate) dedup_hits: Family<KindLabel, Counter>,
    pub(crate) reloads: Family<ResultLabel, Counter>,
    pub(crate) not_after: TimestampGauges,
    pub(crate) inbox_messages: Gauge,
    pub(crate) deliveries: Family<KindLabel, Gauge>,
    pub(crate) oldest_pending_delivery_seconds: Gauge,
    pub(crate) rate_limited: Counter,
    pub(crate) ready: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("bars_receiver");
        let m = Self {
            registry: Registry::default(),
            connections_accepted: Counter::default(),
            connections_admitted: Counter::default(),
            connections_refused: Family::default(),
            connections_active: Gauge::default(),
            handshake_seconds: latency_histogram(),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            dedup_hits: Family::default(),
            reloads: Family::default(),
            not_after: Family::default(),
            inbox_messages: Gauge::default(),
            deliveries: Family::default(),
            oldest_pending_delivery_seconds: Gauge::default(),
            rate_limited: Counter::default(),
            ready: Gauge::default(),
        };
        let r = &mut registry;
        r.register(
            "connections_accepted",
            "TCP connections accepted",
            m.connections_accepted.clone(),
        );
        r.register(
            "connections_admitted",
            "Connections that completed the mutual-TLS handshake",
            m.connections_admitted.clone(),
        );
        r.register(
            "connections_refused",
            "Connections refused before HTTP, by reason",
            m.connections_refused.clone(),
        );
        r.register(
            "connections_active",
            "Connections open now",
            m.connections_active.clone(),
        );
        r.register(
            "handshake_duration_seconds",
            "Time to complete an admitted TLS handshake",
            m.handshake_seconds.clone(),
        );
        r.register(
            "requests",
            "Requests answered, by route and status",
            m.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Time to answer a request, by route",
            m.request_seconds.clone(),
        );
        r.register(
            "dedup_hits",
            "Retries answered from de-duplication (duplicate, too_early, replay, conflict)",
            m.dedup_hits.clone(),
        );
        r.register(
            "reloads",
            "TLS and admission material reloads, by result",
            m.reloads.clone(),
        );
        r.register(
            "not_after_timestamp_seconds",
            "Expiry of the server certificate (kind=server), each client CA (kind=ca) and the next update of each CRL (kind=crl), as Unix time",
            m.not_after.clone(),
        );
        r.register(
            "inbox_messages",
            "Messages in the embedded inbox",
            m.inbox_messages.clone(),
        );
        r.register(
            "deliveries",
            "Relayed messages not yet delivered upstream, by kind (pending, dead)",
            m.deliveries.clone(),
        );
        r.register(
            "oldest_pending_delivery_age_seconds",
            "How long the oldest pending relayed message has waited (0 when none)",
            m.oldest_pending_delivery_seconds.clone(),
        );
        r.register(
            "rate_limited",
            "Requests refused with 429 by the global rate limit",
            m.rate_limited.clone(),
        );
        r.register(
            "ready",
            "1 when /readyz answers 200 (serving, TLS material valid, inbox writable), else 0; read at each scrape",
            m.ready.clone(),
        );
        // Series an alert compares over time exist from the start at 0: `increase()` misses
        // the first failure of a series that appears with it.
        for result in ["success", "failure"] {
            m.reloads.get_or_create(&ResultLabel { result }).get();
        }
        for kind in ["duplicate", "too_early", "replay", "conflict"] {
            m.dedup_hits.get_or_create(&KindLabel { kind }).get();
        }
        Self { registry, ..m }
    }
}

impl Metrics {
    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The Prometheus text exposition, format 0.0.4 (what `promtool check metrics` reads).
    pub fn encode_prometheus_text(&self) -> String {
        super::exposition::prometheus_text(&self.encode())
    }

    /// TCP connections accepted so far (before the allowlist).
    pub fn accepted(&self) -> u64 {
        self.connections_accepted.get()
    }

    /// Connections that completed the mutual-TLS handshake so far.
    pub fn admitted(&self) -> u64 {
        self.connections_admitted.get()
    }

    /// Connections open now.
    pub fn active(&self) -> u64 {
        self.connections_active.get().max(0) as u64
    }

    /// Counts a connection as open until the guard drops.
    pub(crate) fn open(&self) -> ActiveGuard<'_> {
        self.connections_active.inc();
        ActiveGuard(self)
    }

    /// Connections refused for `reason` so far.
    pub fn refused(&self, reason: RefusalReason) -> u64 {
        self.connections_refused
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .get()
    }

    pub(crate) fn count_refused(&self, reason: RefusalReason) {
        self.connections_refused
            .get_or_create(&ReasonLabel {
                reason: reason.as_str(),
            })
            .inc();
    }

    pub(crate) fn count_dedup(&self, kind: &'static str) {
        self.dedup_hits.get_or_create(&KindLabel { kind }).inc();
    }

    /// Records the expiry (or next update) of a piece of TLS material.
    pub(crate) fn set_not_after(&self, kind: &'static str, subject: &str, at: time::OffsetDateTime) {
        self.not_after
            .get_or_create(&MaterialLabels {
                kind,
                subject: subject.to_owned(),
            })
            .set(at.unix_timestamp() as f64);
    }

    /// Publishes the relay backlog.
    pub(crate) fn observe_backlog(&self, backlog: &crate::store::DeliveryBacklog) {
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        self.deliveries
            .get_or_create(&KindLabel { kind: "pending" })
            .set(gauge(backlog.pending));
        self.deliveries
            .get_or_create(&KindLabel { kind: "dead" })
            .set(gauge(backlog.dead));
        let age = backlog
            .oldest_pending
            .as_deref()
            .and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
            .map_or(0, |t| {
                (time::OffsetDateTime::now_utc() - t).whole_seconds().max(0)
            });
        self.oldest_pending_delivery_seconds.set(age);
    }

    /// Forgets the material gauges (before a reload sets the new ones).
    pub(crate) fn clear_not_after(&self) {
        self.not_after.clear();
    }
}

/// Decrements the open-connection gauge when the connection ends.
pub(crate) struct ActiveGuard<'a>(&'a Metrics);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.connections_active.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_family_with_the_prefix() {
        let m = Metrics::default();
        m.count_refused(RefusalReason::UnknownCa);
        m.requests
            .get_or_create(&RequestLabels {
                route: "process-message",
                status: 200,
            })
            .inc();
        m.set_not_after("server", "CN=x", time::OffsetDateTime::UNIX_EPOCH);
        let text = m.encode();
        assert!(
            text.contains("bars_receiver_connections_refused_total{reason=\"unknown_ca\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("bars_receiver_requests_total{route=\"process-message\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("bars_receiver_not_after_timestamp_seconds{kind=\"server\",subject=\"CN=x\"} 0"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(m.refused(RefusalReason::UnknownCa), 1);
    }
}
