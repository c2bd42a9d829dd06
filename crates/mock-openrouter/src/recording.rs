//! What the mock saw and what it served, for tests to assert on.
//!
//! Tests of the proxy need to check what actually reached "OpenRouter" (was the key swapped? were
//! unknown fields passed through?) and whether a stream was cancelled when the browser went away.
//! So every request under `/api` is logged, and every completion gets a [`GenerationRecord`] that
//! the streaming body updates live.
//!
//! Recording sits on the benchmark's hot path, so it is kept cheap: the log stores the raw body
//! `Bytes` and the `HeaderMap` as received (both reference-counted clones) and only parses or
//! converts them when someone asks; both logs are bounded ring buffers behind a plain `Mutex`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::http::{HeaderMap, Method};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// How many requests and generations are kept; older ones are dropped first.
const MAX_KEPT: usize = 10_000;

/// One request the mock received under `/api`, as returned by `GET /__mock/requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Header names are lower-case (that is how HTTP/2 and `http::HeaderMap` spell them). A header
    /// sent more than once is joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// The parsed JSON when the body is JSON, else the body as a string, else `null` when empty.
    pub body: serde_json::Value,
}

/// One completion the mock served, as returned by `GET /__mock/generations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenerationRecord {
    pub id: String,
    pub model: String,
    pub stream: bool,
    /// True when the client went away before the stream's last chunk was handed to the server.
    pub cancelled: bool,
    /// How many `data:` JSON chunks were handed to the server (not counting `[DONE]` or keep-alive
    /// comments). Zero for non-streamed completions.
    pub chunks_sent: u64,
}

/// A request as received, converted to a [`RecordedRequest`] only when read.
struct RawRequest {
    method: Method,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
}

impl RawRequest {
    fn to_recorded(&self) -> RecordedRequest {
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in &self.headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|existing| {
                    existing.push_str(", ");
                    existing.push_str(&value);
                })
                .or_insert(value);
        }
        RecordedRequest {
            method: self.method.to_string(),
            path: self.path.clone(),
            query: self.query.clone(),
            headers,
            body: body_value(&self.body),
        }
    }
}

fn body_value(body: &[u8]) -> serde_json::Value {
    if body.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::from_slice(body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(body).into_owned()))
}

/// Facts about a generation that `GET /api/v1/generation` reports and that don't change.
#[derive(Debug, Clone, Default)]
pub(crate) struct GenerationFacts {
    pub id: String,
    pub model: String,
    pub provider: &'static str,
    pub stream: bool,
    pub created: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost: f64,
    pub finish_reason: &'static str,
    pub native_finish_reason: &'static str,
    /// The request's `provider` preferences, echoed in the generation record.
    pub provider_preferences: Option<serde_json::Value>,
    pub session_id: Option<String>,
    /// Files the file parser read for this request (not the ones whose annotations came back).
    pub files_parsed: u64,
    pub search_results: u64,
    pub images: u64,
}

/// A generation's record: fixed facts plus the two fields the streaming body updates live.
#[derive(Debug)]
pub(crate) struct Generation {
    pub facts: GenerationFacts,
    cancelled: AtomicBool,
    chunks_sent: AtomicU64,
}

impl Generation {
    pub fn record(&self) -> GenerationRecord {
        GenerationRecord {
            id: self.facts.id.clone(),
            model: self.facts.model.clone(),
            stream: self.facts.stream,
            cancelled: self.cancelled.load(Ordering::Acquire),
            chunks_sent: self.chunks_sent.load(Ordering::Acquire),
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    pub fn count_chunk(&self) {
        self.chunks_sent.fetch_add(1, Ordering::AcqRel);
    }

    pub fn mark_cancelled(&self) {
        self.cancelled.store(true, Ordering::Release);
    }
}

/// The shared logs, held in an `Arc` by the server and by the [`crate::MockOpenRouter`] handle.
#[derive(Default)]
pub(crate) struct Recorder {
    requests: Mutex<VecDeque<RawRequest>>,
    generations: Mutex<VecDeque<Arc<Generation>>>,
}

/// Locks a log, ignoring poisoning: a panicking test thread must not break every later read.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn push_bounded<T>(log: &mut VecDeque<T>, item: T) {
    if log.len() == MAX_KEPT {
        log.pop_front();
    }
    log.push_back(item);
}

impl Recorder {
    pub fn record_request(
        &self,
        method: Method,
        path: String,
        query: Option<String>,
        headers: HeaderMap,
        body: Bytes,
    ) {
        let raw = RawRequest {
            method,
            path,
            query,
            headers,
            body,
        };
        push_bounded(&mut lock(&self.requests), raw);
    }

    pub fn start_generation(&self, facts: GenerationFacts) -> Arc<Generation> {
        let generation = Arc::new(Generation {
            facts,
            cancelled: AtomicBool::new(false),
            chunks_sent: AtomicU64::new(0),
        });
        push_bounded(&mut lock(&self.generations), Arc::clone(&generation));
        generation
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.requests)
            .iter()
            .map(RawRequest::to_recorded)
            .collect()
    }

    pub fn generations(&self) -> Vec<GenerationRecord> {
        lock(&self.generations).iter().map(|g| g.record()).collect()
    }

    pub fn find_generation(&self, id: &str) -> Option<Arc<Generation>> {
        lock(&self.generations)
            .iter()
            .rev()
            .find(|g| g.facts.id == id)
            .cloned()
    }

    /// What all kept generations cost together, for `/key` and `/credits`.
    pub fn total_cost(&self) -> f64 {
        lock(&self.generations).iter().map(|g| g.facts.cost).sum()
    }

    pub fn clear(&self) {
        lock(&self.requests).clear();
        lock(&self.generations).clear();
    }
}
