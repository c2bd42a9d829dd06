//! Prometheus metrics, hand-rolled: a handful of counters and histograms do not justify a metrics
//! framework on the hot path. Everything is atomics except the (route, status) counter map, whose
//! lock is held for one hash-map increment.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds in seconds. Overhead is micro-seconds; upstream latency is up to minutes.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05,
];
const UPSTREAM_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
    total: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
            total: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = self.bounds.iter().position(|b| secs <= *b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_nanos
            .fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (b, c) in self.bounds.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {cumulative}");
        }
        let total = self.total.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
    }
}

/// The server's metrics.
pub struct Metrics {
    /// route template → status → count. Two levels so a lookup by `&str` allocates nothing.
    requests: Mutex<HashMap<String, HashMap<u16, u64, Fnv>, Fnv>>,
    upstream_latency: Histogram,
    overhead: Histogram,
    in_flight_streams: AtomicI64,
}

/// FNV-1a for the request counters, which every request updates: their keys are our own route
/// templates and status codes, never chosen by a client, so SipHash's flooding resistance buys
/// nothing there and its cost showed in the relay's profile.
#[derive(Clone, Copy, Default)]
struct Fnv;

impl std::hash::BuildHasher for Fnv {
    type Hasher = FnvHasher;
    fn build_hasher(&self) -> FnvHasher {
        FnvHasher(0xcbf2_9ce4_8422_2325)
    }
}

struct FnvHasher(u64);

impl std::hash::Hasher for FnvHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: Mutex::new(HashMap::default()),
            upstream_latency: Histogram::new(UPSTREAM_BUCKETS),
            overhead: Histogram::new(OVERHEAD_BUCKETS),
            in_flight_streams: AtomicI64::new(0),
        }
    }
}

impl Metrics {
    pub fn count_request(&self, route: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        let by_status = match map.get_mut(route) {
            Some(m) => m,
            None => map.entry(route.to_string()).or_default(),
        };
        *by_status.entry(status).or_insert(0) += 1;
    }

    /// Time from sending the request upstream to its first response byte.
    pub fn observe_upstream(&self, d: Duration) {
        self.upstream_latency.observe(d);
    }

    /// Time spent in Switchboard itself for one proxied request, upstream wait excluded.
    pub fn observe_overhead(&self, d: Duration) {
        self.overhead.observe(d);
    }

    /// Counts a stream as in flight until the guard is dropped.
    pub fn stream_guard(self: &std::sync::Arc<Self>) -> StreamGuard {
        self.in_flight_streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self.clone())
    }

    pub fn in_flight_streams(&self) -> i64 {
        self.in_flight_streams.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP switchboard_requests_total Requests answered, by route and status.\n\
             # TYPE switchboard_requests_total counter\n",
        );
        let mut rows: Vec<(String, u16, u64)> = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .flat_map(|(route, m)| m.iter().map(move |(s, n)| (route.clone(), *s, *n)))
            .collect();
        rows.sort();
        for (route, status, n) in rows {
            let _ = writeln!(
                out,
                "switchboard_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        self.upstream_latency.render(
            "switchboard_upstream_latency_seconds",
            "Time from sending a request upstream to its first response byte.",
            &mut out,
        );
        self.overhead.render(
            "switchboard_proxy_overhead_seconds",
            "Time spent in Switchboard for a proxied request, excluding the wait on the upstream.",
            &mut out,
        );
        let _ = writeln!(
            out,
            "# HELP switchboard_in_flight_streams Streams being relayed now.\n\
             # TYPE switchboard_in_flight_streams gauge\n\
             switchboard_in_flight_streams {}",
            self.in_flight_streams()
        );
        out
    }
}

/// Decrements the in-flight stream gauge when the stream ends, however it ends.
pub struct StreamGuard(std::sync::Arc<Metrics>);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.in_flight_streams.fetch_sub(1, Ordering::Relaxed);
    }
}
