//! The HTTP side: routes, auth, error bodies and the streaming response body.
//!
//! Everything OpenRouter serves lives under `/api` and is logged by the [`record`] middleware before
//! any handler runs, so even rejected requests show up in `GET /__mock/requests`. The `/__mock`
//! routes are the test-only window into those logs and are not logged themselves.
//!
//! Errors are OpenRouter-shaped JSON (`{"error":{"code","message"}}`) and are turned into responses in
//! one place, [`ApiError`]'s `IntoResponse`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::recording::{Generation, GenerationFacts, Recorder};
use crate::scenarios::{self, DONE, Frame, KEEP_ALIVE, Plan, Script};

/// A recorded response body given with `--fixture MODEL=PATH`, served byte for byte.
pub(crate) struct Fixture {
    pub body: Bytes,
    /// For SSE bodies, the body cut after each blank line; each piece is one write.
    pub sse_pieces: Option<Vec<Bytes>>,
}

impl Fixture {
    /// Decides SSE or JSON by content: SSE starts with `data:` or a `:` comment.
    pub fn new(body: Bytes) -> Fixture {
        let start = body.iter().position(|b| !b.is_ascii_whitespace());
        let is_sse = start.is_some_and(|i| body[i..].starts_with(b"data:") || body[i] == b':');
        let sse_pieces = is_sse.then(|| split_events(&body));
        Fixture { body, sse_pieces }
    }
}

/// Cuts after every blank line ("\n\n" or "\r\n\r\n"); the pieces concatenate back to exactly
/// `body`.
fn split_events(body: &Bytes) -> Vec<Bytes> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < body.len() {
        let rest = &body[i..];
        let separator = if rest.starts_with(b"\n\n") {
            2
        } else if rest.starts_with(b"\r\n\r\n") {
            4
        } else {
            0
        };
        if separator > 0 {
            pieces.push(body.slice(start..i + separator));
            start = i + separator;
            i = start;
        } else {
            i += 1;
        }
    }
    if start < body.len() {
        pieces.push(body.slice(start..));
    }
    pieces
}

/// Shared by all handlers; cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState {
    pub keys: Arc<Vec<String>>,
    pub spacing: Duration,
    pub fixtures: Arc<HashMap<String, Fixture>>,
    pub catalog: Bytes,
    pub recorder: Arc<Recorder>,
}

pub(crate) fn router(state: AppState) -> Router {
    let api = Router::new()
        .route(
            "/api/v1/chat/completions",
            axum::routing::post(chat_completions),
        )
        .route("/api/v1/responses", axum::routing::post(responses))
        .route("/api/v1/models", get(models))
        .route("/api/v1/models/user", get(models_user))
        .route("/api/v1/models/{author}/{slug}/endpoints", get(endpoints))
        .route("/api/v1/key", get(key))
        .route("/api/v1/auth/key", get(key))
        .route("/api/v1/credits", get(credits))
        .route("/api/v1/generation", get(generation));
    let mock = Router::new()
        .route("/__mock/requests", get(mock_requests).delete(mock_clear))
        .route("/__mock/generations", get(mock_generations));
    api.merge(mock)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), record))
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Logs every request under `/api`, body included, then hands it on unchanged.
async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/api") {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(_) => return ApiError::new(400, "Could not read the request body").into_response(),
    };
    state.recorder.record_request(
        parts.method.clone(),
        parts.uri.path().to_owned(),
        parts.uri.query().map(str::to_owned),
        parts.headers.clone(),
        bytes.clone(),
    );
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// An OpenRouter-shaped error response.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    body: Value,
    headers: Vec<(&'static str, String)>,
}

impl ApiError {
    fn new(code: u16, message: &str) -> ApiError {
        ApiError {
            status: StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: json!({"error": {"message": message, "code": code}}),
            headers: Vec::new(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body)).into_response();
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static(name), value);
            }
        }
        response
    }
}

/// Proof that the request carried an accepted key; extracting it does the check.
pub(crate) struct Authorized {
    key: String,
}

impl FromRequestParts<AppState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, key) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
            })
            .filter(|key| !key.is_empty())
            .ok_or_else(|| ApiError::new(401, "No auth credentials found"))?;
        let accepted = if state.keys.is_empty() {
            key.starts_with("sk-or-")
        } else {
            state.keys.iter().any(|k| k == key)
        };
        if !accepted {
            return Err(ApiError::new(401, "User not found."));
        }
        Ok(Authorized {
            key: key.to_owned(),
        })
    }
}

async fn not_found() -> ApiError {
    ApiError::new(404, "Not Found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(405, "Method Not Allowed")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `gen-<unix seconds>-<20 alphanumerics>`, unique within the process.
fn generation_id(created: u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SEED: OnceLock<u64> = OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5eed)
    });
    // splitmix64: a counter through a good mixer gives distinct, random-looking suffixes.
    // Each id takes two steps of the sequence, so no two ids share a word.
    let step = COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(2);
    let mut state = seed.wrapping_add(step.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut id = String::with_capacity(36);
    id.push_str("gen-");
    id.push_str(&created.to_string());
    id.push('-');
    let (mut a, mut b) = (next(), next());
    for i in 0..20 {
        let word = if i < 10 { &mut a } else { &mut b };
        id.push(ALPHABET[(*word % 62) as usize] as char);
        *word /= 62;
    }
    id
}

async fn chat_completions(
    State(state): State<AppState>,
    _auth: Authorized,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(400, &format!("Invalid JSON in request body: {e}")))?;
    if !request.is_object() {
        return Err(ApiError::new(400, "Request body must be a JSON object"));
    }
    // With a `models` fallback list each is tried in order until one answers; the response
    // names the one that served.
    let mut candidates: Vec<String> = request
        .get("models")
        .and_then(Value::as_array)
        .map(|models| {
            models
                .iter()
                .filter_map(Value::as_str)
                .filter(|m| !m.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if candidates.is_empty()
        && let Some(model) = request
            .get("model")
            .and_then(Value::as_str)
            .filter(|m| !m.is_empty())
    {
        candidates.push(model.to_owned());
    }
    if candidates.is_empty() {
        return Err(ApiError::new(400, "No models provided"));
    }
    let stream = request.get("stream").and_then(Value::as_bool) == Some(true);
    let created = unix_now();
    let id = generation_id(created);

    let mut refusal = None;
    let mut served = None;
    for model in candidates {
        if let Some(fixture) = state.fixtures.get(&model) {
            return Ok(serve_fixture(&state, fixture, id, model, created));
        }
        match scenarios::plan(&model, &request, body.len(), &id, state.spacing) {
            Plan::Status(code, body, headers) => {
                refusal = Some(ApiError {
                    status: StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY),
                    body,
                    headers,
                });
            }
            Plan::Answer(script) => {
                served = Some((model, script));
                break;
            }
        }
    }
    let Some((model, script)) = served else {
        return Err(refusal.unwrap_or_else(|| ApiError::new(400, "No models provided")));
    };
    let files = scenarios::file_parts(&request);
    let reused = scenarios::annotated_hashes(&request);
    let files_parsed = files
        .iter()
        .filter(|(_, data)| !reused.contains(&scenarios::file_hash(data)))
        .count() as u64;
    let (finish_reason, native_finish_reason) = script.finish_reasons();
    let generation = state.recorder.start_generation(GenerationFacts {
        id: id.clone(),
        model: model.clone(),
        provider: script.provider,
        stream,
        created,
        prompt_tokens: script.usage.prompt_tokens,
        completion_tokens: script.usage.completion_tokens,
        reasoning_tokens: script.usage.reasoning_tokens,
        cost: script.usage.cost,
        finish_reason,
        native_finish_reason,
        provider_preferences: request.get("provider").cloned(),
        session_id: request
            .get("session_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        files_parsed,
        search_results: script.search_results,
        images: script.image_count(),
    });
    if stream {
        let frames = script.sse_frames(&id, created);
        let body = frames_body(frames, script.spacing, generation);
        Ok(sse_response(&id, body))
    } else {
        Ok(completion_response(script, id, created, generation).await)
    }
}

async fn completion_response(
    script: Script,
    id: String,
    created: u64,
    generation: Arc<Generation>,
) -> Response {
    // A non-streamed answer takes as long as its stream would; dropping the request meanwhile
    // counts as a cancellation, like on the real service.
    let mut guard = CancelGuard {
        generation,
        finished: false,
    };
    if !script.spacing.is_zero() {
        tokio::time::sleep(script.spacing * script.steps.len() as u32).await;
    }
    guard.finished = true;
    let body = serde_json::to_vec(&script.completion_json(&id, created)).unwrap_or_default();
    json_response(&id, Bytes::from(body))
}

fn json_response(id: &str, body: Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    insert_generation_id(headers, id);
    response
}

fn sse_response(id: &str, body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    insert_generation_id(headers, id);
    response
}

/// The last user text of a Responses API `input`: a string, or items with string or part content.
fn responses_input_text(request: &Value) -> String {
    match request.get("input") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .rev()
            .find(|i| i.get("role").and_then(Value::as_str) == Some("user"))
            .and_then(|i| match i.get("content") {
                Some(Value::String(text)) => Some(text.clone()),
                Some(Value::Array(parts)) => Some(
                    parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
                _ => None,
            })
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// OpenRouter's Responses API, acted out: any model echoes the last user input word by word
/// (streamed as `response.*` events, or as one response object); a fixture model serves its
/// recording byte for byte. Usage and cost come in `response.completed`, as on the real service.
async fn responses(
    State(state): State<AppState>,
    _auth: Authorized,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::new(400, &format!("Invalid JSON in request body: {e}")))?;
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ApiError::new(400, "No models provided"))?
        .to_owned();
    let stream = request.get("stream").and_then(Value::as_bool) == Some(true);
    let created = unix_now();
    let id = generation_id(created);
    if let Some(fixture) = state.fixtures.get(&model) {
        return Ok(serve_fixture(&state, fixture, id, model, created));
    }
    let text = responses_input_text(&request);
    let words: Vec<String> = text
        .split_whitespace()
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                w.to_owned()
            } else {
                format!(" {w}")
            }
        })
        .collect();
    let output_text = words.concat();
    let input_tokens = (body.len() / 4).max(1) as u64;
    let output_tokens = words.len().max(1) as u64;
    let cost = (input_tokens + output_tokens) as f64 * 0.000_001;
    let generation = state.recorder.start_generation(GenerationFacts {
        id: id.clone(),
        model: model.clone(),
        provider: "Mock",
        stream,
        created,
        prompt_tokens: input_tokens,
        completion_tokens: output_tokens,
        reasoning_tokens: 0,
        cost,
        finish_reason: "stop",
        native_finish_reason: "stop",
        ..GenerationFacts::default()
    });
    let message_id = format!("msg_{}", &id[id.len() - 8..]);
    let response_object = |status: &str, done: bool| {
        json!({
            "object": "response", "id": id, "created_at": created, "model": model,
            "status": status, "error": null, "output_text": "",
            "output": if done {
                json!([{"type": "message", "id": message_id, "status": "completed",
                        "role": "assistant",
                        "content": [{"type": "output_text", "text": output_text, "annotations": []}]}])
            } else {
                json!([])
            },
            "usage": if done {
                json!({"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
                       "output_tokens": output_tokens,
                       "output_tokens_details": {"reasoning_tokens": 0},
                       "total_tokens": input_tokens + output_tokens, "cost": cost,
                       "is_byok": false})
            } else {
                Value::Null
            },
        })
    };
    if !stream {
        let body = serde_json::to_vec(&response_object("completed", true)).unwrap_or_default();
        return Ok(json_response(&id, Bytes::from(body)));
    }
    let mut seq = 0u64;
    let mut event = |mut value: Value| {
        value["sequence_number"] = json!(seq);
        seq += 1;
        Frame::Data(Bytes::from(format!("data: {value}\n\n")))
    };
    let mut frames = vec![
        Frame::KeepAlive,
        event(
            json!({"type": "response.created", "response": response_object("in_progress", false)}),
        ),
        event(
            json!({"type": "response.output_item.added", "output_index": 0,
                     "item": {"type": "message", "id": message_id, "status": "in_progress",
                              "role": "assistant", "content": []}}),
        ),
    ];
    for word in &words {
        frames.push(event(
            json!({"type": "response.output_text.delta", "item_id": message_id,
                                 "output_index": 0, "content_index": 0, "delta": word}),
        ));
    }
    frames.push(event(
        json!({"type": "response.output_text.done", "item_id": message_id,
                             "output_index": 0, "content_index": 0, "text": output_text}),
    ));
    frames.push(event(json!({"type": "response.completed",
                             "response": response_object("completed", true)})));
    frames.push(Frame::Done);
    Ok(sse_response(
        &id,
        frames_body(frames, state.spacing, generation),
    ))
}

fn insert_generation_id(headers: &mut HeaderMap, id: &str) {
    if let Ok(value) = HeaderValue::from_str(id) {
        headers.insert(HeaderName::from_static("x-generation-id"), value);
    }
}

fn serve_fixture(
    state: &AppState,
    fixture: &Fixture,
    id: String,
    model: String,
    created: u64,
) -> Response {
    let generation = state.recorder.start_generation(GenerationFacts {
        id: id.clone(),
        model,
        provider: "Fixture",
        stream: fixture.sse_pieces.is_some(),
        created,
        prompt_tokens: 0,
        completion_tokens: 0,
        reasoning_tokens: 0,
        cost: 0.0,
        finish_reason: "stop",
        native_finish_reason: "stop",
        ..GenerationFacts::default()
    });
    match &fixture.sse_pieces {
        Some(pieces) => {
            let frames = pieces.iter().cloned().map(Frame::Raw).collect();
            sse_response(&id, frames_body(frames, state.spacing, generation))
        }
        None => json_response(&id, fixture.body.clone()),
    }
}

/// Marks its generation cancelled when dropped before the answer was fully handed over. It lives
/// inside the response body, which hyper drops as soon as the client goes away.
struct CancelGuard {
    generation: Arc<Generation>,
    finished: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.generation.mark_cancelled();
        }
    }
}

struct BodyState {
    frames: std::vec::IntoIter<Frame>,
    spacing: Duration,
    sent_data: bool,
    guard: CancelGuard,
}

/// The streaming body: yields each frame, sleeping `spacing` between data frames, and counts the
/// data chunks it hands over.
fn frames_body(frames: Vec<Frame>, spacing: Duration, generation: Arc<Generation>) -> Body {
    let state = BodyState {
        frames: frames.into_iter(),
        spacing,
        sent_data: false,
        guard: CancelGuard {
            generation,
            finished: false,
        },
    };
    let frames = stream::unfold(state, |mut state| async move {
        let frame = state.frames.next()?;
        let bytes = match frame {
            Frame::KeepAlive => Bytes::from_static(KEEP_ALIVE),
            Frame::Done => Bytes::from_static(DONE),
            Frame::Data(bytes) | Frame::Raw(bytes) => bytes,
        };
        // Comments go out at once; data lines are spaced like tokens arriving.
        if !bytes.starts_with(b":") {
            if state.sent_data && !state.spacing.is_zero() {
                tokio::time::sleep(state.spacing).await;
            }
            state.sent_data = true;
            if frame_is_chunk(&bytes) {
                state.guard.generation.count_chunk();
            }
        }
        if state.frames.as_slice().is_empty() {
            state.guard.finished = true;
        }
        Some((Ok::<_, Infallible>(bytes), state))
    });
    Body::from_stream(frames)
}

/// A `data:` JSON chunk, as opposed to a comment or `[DONE]`.
fn frame_is_chunk(bytes: &[u8]) -> bool {
    bytes.starts_with(b"data:") && !bytes.starts_with(DONE)
}

async fn models(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.catalog.clone(),
    )
        .into_response()
}

async fn models_user(State(state): State<AppState>, _auth: Authorized) -> Response {
    models(State(state)).await
}

fn total_usage(state: &AppState) -> f64 {
    state.recorder.total_cost()
}

async fn key(State(state): State<AppState>, auth: Authorized) -> Json<Value> {
    let label = match (auth.key.get(..11), auth.key.len()) {
        (Some(start), len) if len > 14 => format!("{start}...{}", &auth.key[len - 3..]),
        _ => auth.key.clone(),
    };
    let usage = total_usage(&state);
    Json(json!({
        "data": {
            "label": label,
            // The mock's account holds $100 of credit (see `/credits`); the key may spend it all.
            "limit": KEY_LIMIT,
            "limit_remaining": (KEY_LIMIT - usage).max(0.0),
            "limit_reset": null,
            "allowed_data_regions": ["global"],
            // An account that bought $10 of credits: 1,000 free-model requests a day.
            "free_model_daily_requests": {"limit": 1000, "remaining": 1000, "used": 0},
            "organization_id": null,
            "workspace_id": null,
            "include_byok_in_limit": false,
            "usage": usage,
            "usage_daily": usage,
            "usage_weekly": usage,
            "usage_monthly": usage,
            "byok_usage": 0,
            "byok_usage_daily": 0,
            "byok_usage_weekly": 0,
            "byok_usage_monthly": 0,
            "is_free_tier": false,
            "is_management_key": false,
            "is_provisioning_key": false,
            "expires_at": null,
            "creator_user_id": "user_mock",
            "rate_limit": {
                "requests": -1,
                "interval": "10s",
                "note": "This field is deprecated and safe to ignore.",
            },
        }
    }))
}

/// The mock key's spending limit in USD.
const KEY_LIMIT: f64 = 100.0;

/// `GET /api/v1/models/{author}/{slug}/endpoints`: the providers serving a catalog model, each
/// with its own price, quantization and latency figures (synthesized, stable per model).
async fn endpoints(
    State(state): State<AppState>,
    axum::extract::Path((author, slug)): axum::extract::Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = format!("{author}/{slug}");
    let catalog: Value = serde_json::from_slice(&state.catalog).unwrap_or(Value::Null);
    let entry = catalog["data"]
        .as_array()
        .and_then(|d| d.iter().find(|m| m["id"] == id.as_str()))
        .cloned()
        .ok_or_else(|| ApiError::new(404, "Resource not found"))?;
    Ok(Json(
        json!({"data": crate::catalog::endpoints_json(&entry)}),
    ))
}

async fn credits(State(state): State<AppState>, _auth: Authorized) -> Json<Value> {
    Json(json!({"data": {"total_credits": 100.0, "total_usage": total_usage(&state)}}))
}

#[derive(Deserialize)]
struct GenerationQuery {
    id: Option<String>,
}

async fn generation(
    State(state): State<AppState>,
    _auth: Authorized,
    Query(query): Query<GenerationQuery>,
) -> Result<Json<Value>, ApiError> {
    let id = query
        .id
        .filter(|id| !id.is_empty())
        .ok_or_else(|| ApiError::new(400, "Missing generation id"))?;
    let found = state
        .recorder
        .find_generation(&id)
        .ok_or_else(|| ApiError::new(404, &format!("Generation {id} not found")))?;
    let facts = &found.facts;
    Ok(Json(json!({
        "data": {
            "id": facts.id,
            "upstream_id": format!("chatcmpl-{}", facts.id.rsplit('-').next().unwrap_or_default()),
            "total_cost": facts.cost,
            "usage": facts.cost,
            "upstream_inference_cost": null,
            "cache_discount": null,
            "is_byok": false,
            "created_at": rfc3339(facts.created),
            "model": facts.model,
            "app_id": null,
            "streamed": facts.stream,
            "cancelled": found.is_cancelled(),
            "provider_name": facts.provider,
            "latency": 120,
            "moderation_latency": null,
            "generation_time": 480,
            "finish_reason": facts.finish_reason,
            "native_finish_reason": facts.native_finish_reason,
            "tokens_prompt": facts.prompt_tokens,
            "tokens_completion": facts.completion_tokens,
            "native_tokens_prompt": facts.prompt_tokens,
            "native_tokens_completion": facts.completion_tokens,
            "native_tokens_completion_images": 0,
            "native_tokens_reasoning": facts.reasoning_tokens,
            "native_tokens_cached": 0,
            "num_media_prompt": (facts.files_parsed > 0).then_some(facts.files_parsed),
            "num_media_completion": (facts.images > 0).then_some(facts.images),
            "num_search_results": (facts.search_results > 0).then_some(facts.search_results),
            "origin": "",
            "api_type": "completions",
            "session_id": facts.session_id,
            // What the request asked of the router, as it arrived: tests read routing here.
            "provider_preferences": facts.provider_preferences,
        }
    })))
}

/// `2026-11-25T10:21:16.000000+00:00`, as OpenRouter writes `created_at`.
fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.000000+00:00",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60
    )
}

async fn mock_requests(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.recorder.requests()))
}

async fn mock_generations(State(state): State<AppState>) -> Json<Value> {
    Json(json!(state.recorder.generations()))
}

async fn mock_clear(State(state): State<AppState>) -> StatusCode {
    state.recorder.clear();
    StatusCode::NO_CONTENT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(rfc3339(1_762_179_802), "2025-11-03T14:23:22.000000+00:00");
    }

    #[test]
    fn generation_ids_look_like_openrouter_ones() {
        let id = generation_id(1_762_179_802);
        let suffix = id.strip_prefix("gen-1762179802-").expect(&id);
        assert_eq!(suffix.len(), 20);
        assert!(suffix.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(generation_id(1), generation_id(1));
    }

    #[test]
    fn fixtures_split_into_events_that_rejoin() {
        let body = Bytes::from_static(b": OPENROUTER PROCESSING\n\ndata: {}\n\ndata: [DONE]\n\n");
        let fixture = Fixture::new(body.clone());
        let pieces = fixture.sse_pieces.expect("is SSE");
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces.concat(), body.to_vec());
        assert!(
            Fixture::new(Bytes::from_static(b"{\"id\":1}"))
                .sse_pieces
                .is_none()
        );
    }
}
