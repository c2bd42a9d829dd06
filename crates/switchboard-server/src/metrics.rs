//! Prometheus metrics with `prometheus-client`: one registry per server (so tests running several
//! servers in one process never mix their counts), rendered in the OpenMetrics text format.
//!
//! Requests by route and status, the wait on the upstream and the proxy's own overhead, streams in
//! flight, tokens and cost of every call the server's key paid for (from the spend ledger), and the
//! database's connections.

use std::sync::atomic::{AtomicI64, AtomicU64};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds in seconds. Overhead is micro-seconds; upstream latency is up to minutes.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05,
];
const UPSTREAM_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// The route template, never a client's path.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    /// `chat`, `title`, `proxy` or `gateway`.
    entry: String,
    /// `prompt`, `completion`, `reasoning` or `cached`.
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EntryLabels {
    entry: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    /// `write` / `read` (SQLite) or `pool` (PostgreSQL).
    pool: String,
    /// `open` or `idle`.
    state: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    upstream_latency: Histogram,
    overhead: Histogram,
    in_flight_streams: Gauge<i64, AtomicI64>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<EntryLabels, Counter<f64, AtomicU64>>,
    paid_calls: Family<EntryLabels, Counter>,
    db_connections: Family<PoolLabels, Gauge<i64, AtomicI64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "switchboard_requests",
            "Requests answered, by route and status",
            requests.clone(),
        );
        let upstream_latency = Histogram::new(UPSTREAM_BUCKETS.iter().copied());
        registry.register(
            "switchboard_upstream_latency_seconds",
            "Time from sending a request upstream to its first response byte",
            upstream_latency.clone(),
        );
        let overhead = Histogram::new(OVERHEAD_BUCKETS.iter().copied());
        registry.register(
            "switchboard_proxy_overhead_seconds",
            "Time spent in Switchboard for a proxied request, excluding the wait on the upstream",
            overhead.clone(),
        );
        let in_flight_streams = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "switchboard_in_flight_streams",
            "Streams being relayed now",
            in_flight_streams.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "switchboard_tokens",
            "Tokens of the calls the server's key paid for, by entry point and kind",
            tokens.clone(),
        );
        let cost = Family::<EntryLabels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "switchboard_cost_usd",
            "What the calls the server's key paid for cost, in USD, by entry point",
            cost.clone(),
        );
        let paid_calls = Family::<EntryLabels, Counter>::default();
        registry.register(
            "switchboard_paid_calls",
            "Calls the server's key paid for, by entry point",
            paid_calls.clone(),
        );
        let db_connections = Family::<PoolLabels, Gauge<i64, AtomicI64>>::default();
        registry.register(
            "switchboard_db_connections",
            "Database connections, by pool and state",
            db_connections.clone(),
        );
        Metrics {
            registry,
            requests,
            upstream_latency,
            overhead,
            in_flight_streams,
            tokens,
            cost,
            paid_calls,
            db_connections,
        }
    }
}

impl Metrics {
    pub fn count_request(&self, route: &str, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_owned(),
                status,
            })
            .inc();
    }

    /// Time from sending the request upstream to its first response byte.
    pub fn observe_upstream(&self, d: Duration) {
        self.upstream_latency.observe(d.as_secs_f64());
    }

    /// Time spent in Switchboard itself for one proxied request, upstream wait excluded.
    pub fn observe_overhead(&self, d: Duration) {
        self.overhead.observe(d.as_secs_f64());
    }

    /// Counts a stream as in flight until the guard is dropped.
    pub fn stream_guard(self: &std::sync::Arc<Self>) -> StreamGuard {
        self.in_flight_streams.inc();
        StreamGuard(self.clone())
    }

    pub fn in_flight_streams(&self) -> i64 {
        self.in_flight_streams.get()
    }

    /// A call the server's key paid for, as the spend ledger records it.
    pub fn observe_spend(&self, spend: &switchboard_store::Spend) {
        let entry = EntryLabels {
            entry: spend.entry.clone(),
        };
        self.paid_calls.get_or_create(&entry).inc();
        if let Some(cost) = spend.cost.filter(|c| c.is_finite() && *c >= 0.0) {
            self.cost.get_or_create(&entry).inc_by(cost);
        }
        for (kind, n) in [
            ("prompt", spend.prompt_tokens),
            ("completion", spend.completion_tokens),
            ("reasoning", spend.reasoning_tokens),
            ("cached", spend.cached_tokens),
        ] {
            if let Some(n) = n.and_then(|n| u64::try_from(n).ok()) {
                let labels = TokenLabels {
                    entry: spend.entry.clone(),
                    kind: kind.to_owned(),
                };
                self.tokens.get_or_create(&labels).inc_by(n);
            }
        }
    }

    /// The OpenMetrics text exposition, with the database's connections as they are now.
    pub fn render(&self, store: &switchboard_store::Store) -> String {
        for pool in store.pool_status() {
            for (state, n) in [("open", pool.open as usize), ("idle", pool.idle)] {
                let labels = PoolLabels {
                    pool: pool.name.to_owned(),
                    state: state.to_owned(),
                };
                self.db_connections
                    .get_or_create(&labels)
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Decrements the in-flight stream gauge when the stream ends, however it ends.
pub struct StreamGuard(std::sync::Arc<Metrics>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.in_flight_streams.dec();
    }
}
