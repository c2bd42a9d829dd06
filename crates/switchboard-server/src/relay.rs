//! Relaying one request to an upstream provider and its response back, shared by the NextChat proxy
//! and the OpenAI-compatible gateway.
//!
//! The body goes up untouched and comes back chunk by chunk as it arrives: no buffering, no
//! re-encoding, no compression. Dropping the response (the client went away) drops the upstream
//! request at once, which is how OpenRouter learns to stop the generation and its billing.
//!
//! Timeouts: the first byte must arrive within `SWITCHBOARD_UPSTREAM_FIRST_BYTE_TIMEOUT`, and we wait
//! for it *before* answering, so a stalled upstream gets a 504 JSON rather than a 200 that then
//! carries an error. Once the stream has started, silence longer than
//! `SWITCHBOARD_UPSTREAM_IDLE_TIMEOUT` ends it with an OpenRouter-shaped error chunk.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Body as _, Frame, SizeHint};
use tokio::time::Sleep;

use crate::error::ApiError;
use crate::metrics::StreamGuard;
use crate::outbound::InFlight;
use crate::state::AppState;

/// One request to send upstream.
///
/// It owns what it took from the client's request, so the relay can let go of it once it is sent:
/// the body points into the client connection's read buffer, which stays allocated while
/// anything does (4 KB per stream, for as long as the stream runs).
pub struct UpstreamRequest {
    pub method: Method,
    /// The full upstream URL, built from the provider's configured base URL only.
    pub url: reqwest::Url,
    /// `Bearer <key>`: the user's own key or one of the server's.
    pub authorization: HeaderValue,
    pub client_headers: HeaderMap,
    /// Where the response's usage goes when the server's key pays for it (the spend ledger).
    pub meter: Option<SpendMeter>,
    pub body: Bytes,
}

/// `{base}/{path}[?{query}]` from the provider's parsed base URL. Called at start for each allowed
/// path (see `Upstream::url_of`), so a request parses nothing of its upstream URL but its query.
pub fn upstream_url(base: &reqwest::Url, path: &str, query: Option<&str>) -> reqwest::Url {
    let mut url = base.clone();
    let base_path = base.path().trim_end_matches('/');
    let mut full = String::with_capacity(base_path.len() + 1 + path.len());
    full.push_str(base_path);
    full.push('/');
    full.push_str(path);
    url.set_path(&full);
    url.set_query(query);
    url
}

/// A copy of a client's header value that does not keep the client's read buffer alive (see
/// [`UpstreamRequest`]).
fn unshared(v: &HeaderValue) -> HeaderValue {
    let mut copy = HeaderValue::from_bytes(v.as_bytes()).unwrap_or_else(|_| v.clone());
    copy.set_sensitive(v.is_sensitive());
    copy
}

/// Response headers clients rely on; everything else from upstream stays behind.
fn passes_back(name: &HeaderName) -> bool {
    let n = name.as_str();
    n == "content-type"
        || n == "x-generation-id"
        || n == "retry-after"
        || n.starts_with("x-ratelimit-")
}

const HTTP_REFERER: &str = "http-referer";
const X_TITLE: &str = "x-title";

/// Send `req` upstream and turn its answer into our response.
pub async fn relay(
    state: &AppState,
    req: UpstreamRequest,
    started: Instant,
) -> Result<Response, ApiError> {
    let settings = state.settings();
    let meter = req.meter;
    let mut upstream = reqwest::Request::new(req.method, req.url);
    *upstream.body_mut() = Some(reqwest::Body::from(req.body));
    let h = upstream.headers_mut();
    h.insert(header::AUTHORIZATION, req.authorization);
    let client = req.client_headers;
    for name in [header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(v) = client.get(&name) {
            h.insert(name, unshared(v));
        }
    }
    // Attribution: the client's own values win over the server's.
    match client.get(HTTP_REFERER) {
        Some(v) => {
            h.insert(HTTP_REFERER, unshared(v));
        }
        None => {
            if let Some(site) = state.site_url_header() {
                h.insert(HTTP_REFERER, site.clone());
            }
        }
    }
    match client.get(X_TITLE) {
        Some(v) => h.insert(X_TITLE, unshared(v)),
        None => h.insert(X_TITLE, state.app_name_header().clone()),
    };
    drop(client);

    let first_byte_timeout = settings.upstream_first_byte_timeout;
    let sent_at = Instant::now();
    let lane = state.outbound().take();
    // One deadline for the answer's head and its first bytes, so one timer.
    let exchange = async {
        let sent = lane
            .client()
            .execute(upstream)
            .await
            .map_err(|e| upstream_unreachable(&e))?;
        let (parts, mut body) = http::Response::<reqwest::Body>::from(sent).into_parts();
        let first = match next_data(&mut body).await {
            Some(Ok(chunk)) => Some(chunk),
            None => None,
            Some(Err(e)) => return Err(upstream_unreachable(&e)),
        };
        Ok((parts, body, first))
    };
    let (parts, body, first) = tokio::time::timeout(first_byte_timeout, exchange)
        .await
        .map_err(|_| first_byte_timeout_error(first_byte_timeout))??;
    let upstream_wait = sent_at.elapsed();
    state.metrics().observe_upstream(upstream_wait);

    let status = parts.status;
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if passes_back(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let is_sse = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if is_sse {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    }

    let mut body = RelayBody::new(
        body,
        first,
        settings.upstream_idle_timeout,
        is_sse,
        state.metrics().stream_guard(),
        lane,
    );
    // Only a successful answer is a paid one.
    body.meter = meter
        .filter(|_| status.is_success())
        .map(|m| m.start(is_sse));
    let mut response = Response::new(Body::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    state
        .metrics()
        .observe_overhead(started.elapsed().saturating_sub(upstream_wait));
    Ok(response)
}

/// The response body: upstream's bytes as they arrive, with the idle timeout and the mid-stream
/// error chunk. A hand-written [`hyper::body::Body`] rather than a stream adapter so that
/// - the upstream's exact length passes through: a non-streamed answer goes back with
///   `Content-Length` instead of being re-framed as chunked;
/// - the idle timer is one [`Sleep`] per response, moved only when it fires early, instead of a
///   timer registered and cancelled for every SSE delta.
struct RelayBody {
    /// The client gives its connection back for reuse once this is read to its end; dropped
    /// before that, the upstream request is cancelled.
    body: reqwest::Body,
    first: Option<Bytes>,
    idle: Duration,
    /// Armed on the first wait; its deadline may be stale (earlier data moved the real one on).
    timer: Option<Pin<Box<Sleep>>>,
    last_data: tokio::time::Instant,
    is_sse: bool,
    done: bool,
    /// The last bytes relayed, to tell whether the stream stopped between two SSE events.
    tail: [u8; 4],
    tail_len: usize,
    /// Reads usage out of the bytes as they pass (never changing them), for the spend ledger.
    meter: Option<RunningMeter>,
    _guard: StreamGuard,
    /// The call counts on its outbound lane for as long as its body can still be read.
    _lane: InFlight,
}

impl RelayBody {
    fn new(
        body: reqwest::Body,
        first: Option<Bytes>,
        idle: Duration,
        is_sse: bool,
        guard: StreamGuard,
        lane: InFlight,
    ) -> RelayBody {
        RelayBody {
            done: first.is_none(),
            body,
            first,
            idle,
            timer: None,
            last_data: tokio::time::Instant::now(),
            is_sse,
            tail: [0; 4],
            tail_len: 0,
            meter: None,
            _guard: guard,
            _lane: lane,
        }
    }

    fn relayed(&mut self, chunk: &Bytes) {
        if let Some(meter) = &mut self.meter {
            meter.feed(chunk);
        }
        for &b in &chunk[chunk.len().saturating_sub(4)..] {
            if self.tail_len == 4 {
                self.tail.copy_within(1.., 0);
                self.tail[3] = b;
            } else {
                self.tail[self.tail_len] = b;
                self.tail_len += 1;
            }
        }
    }

    /// The error chunk to end the stream with. An upstream that broke off inside an event gets
    /// that event ended first, so the error chunk is not glued onto a half line.
    fn error_chunk(&self, code: u16, message: &str) -> Bytes {
        let t = &self.tail[..self.tail_len];
        let between_events = t.is_empty()
            || t.ends_with(b"\n\n")
            || t.ends_with(b"\r\n\r\n")
            || t.ends_with(b"\r\r");
        let chunk = sse_error_chunk(code, message);
        if between_events {
            return chunk;
        }
        let mut ended = b"\n\n".to_vec();
        ended.extend_from_slice(&chunk);
        Bytes::from(ended)
    }

    /// The stream ended badly: an SSE client gets an error event it can show, anyone else a
    /// broken body (the server then closes the connection instead of ending the response).
    fn fail(
        &mut self,
        code: u16,
        message: String,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.done = true;
        if let Some(meter) = &mut self.meter {
            // The provider that just failed would not answer a lookup either: what the stream
            // reported is what is recorded.
            meter.meter.lookup = None;
        }
        if self.is_sse {
            Poll::Ready(Some(Ok(Frame::data(self.error_chunk(code, &message)))))
        } else {
            Poll::Ready(Some(Err(io::Error::other(message))))
        }
    }

    /// Ready when upstream has been silent for longer than `idle`.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.last_data + self.idle;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        loop {
            ready!(timer.as_mut().poll(cx));
            if timer.deadline() >= deadline {
                return Poll::Ready(());
            }
            // Data came since the timer was set: move it to the real deadline and wait again.
            timer.as_mut().reset(deadline);
        }
    }
}

impl hyper::body::Body for RelayBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            this.relayed(&first);
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        if this.done {
            return Poll::Ready(None);
        }
        match poll_data(Pin::new(&mut this.body), cx) {
            Poll::Ready(Some(Ok(data))) => {
                this.last_data = tokio::time::Instant::now();
                this.relayed(&data);
                return Poll::Ready(Some(Ok(Frame::data(data))));
            }
            Poll::Ready(Some(Err(_))) => {
                return this.fail(502, "upstream connection failed mid-stream".into());
            }
            Poll::Ready(None) => {
                this.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        ready!(this.poll_idle(cx));
        let message = format!("upstream sent nothing for {}", human(this.idle));
        this.fail(504, message)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && (self.done || self.body.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        // An SSE stream may still get an error chunk appended, so its length is never promised.
        if self.is_sse || self.done {
            return SizeHint::default();
        }
        let mut hint = self.body.size_hint();
        if let Some(first) = &self.first {
            let n = first.len() as u64;
            match hint.exact() {
                Some(exact) => hint.set_exact(exact + n),
                None => {
                    hint.set_lower(hint.lower() + n);
                    if let Some(upper) = hint.upper() {
                        hint.set_upper(upper + n);
                    }
                }
            }
        }
        hint
    }
}

/// The spend ledger's view of one relayed call: whose it is and through which entry point.
pub struct SpendMeter {
    pub ledger: switchboard_chat::Ledger,
    pub workspace: String,
    /// `proxy` or `gateway`.
    pub entry: &'static str,
    /// The model the client asked for (the answer's own `model` wins when it names one).
    pub asked: AskedModel,
    /// Where to ask what the call cost when its answer carries no usage (OpenRouter only).
    pub lookup: Option<switchboard_chat::GenerationLookup>,
}

/// The model a metered call asked for, for when its answer names none.
pub enum AskedModel {
    Named(String),
    /// Still in the request's body. Parsing a whole conversation to find it would delay every
    /// call; the answer nearly always names its model, so the body is parsed only when it does
    /// not, and let go of as soon as it does.
    InRequest(Bytes),
    Unknown,
}

impl AskedModel {
    fn into_name(self) -> Option<String> {
        match self {
            AskedModel::Named(model) => Some(model),
            AskedModel::InRequest(body) => crate::models::RequestedModels::parse(&body)
                .ok()
                .and_then(|r| r.model),
            AskedModel::Unknown => None,
        }
    }
}

impl SpendMeter {
    fn start(self, is_sse: bool) -> RunningMeter {
        RunningMeter {
            meter: self,
            sse: is_sse.then(switchboard_core::stream::SseDecoder::new),
            body: Vec::new(),
            usage: None,
            model: None,
            provider: None,
            generation_id: None,
        }
    }
}

/// The largest non-streamed answer read for its usage (longer ones are relayed, not metered).
const MAX_METERED_BODY: usize = 1024 * 1024;

struct RunningMeter {
    meter: SpendMeter,
    /// Splits a stream into events without parsing them; only events that mention usage are.
    sse: Option<switchboard_core::stream::SseDecoder>,
    body: Vec<u8>,
    usage: Option<switchboard_core::stream::Usage>,
    model: Option<String>,
    provider: Option<String>,
    /// OpenRouter's id of the generation, from the first event (for a lookup of its cost).
    generation_id: Option<String>,
}

impl RunningMeter {
    fn feed(&mut self, chunk: &[u8]) {
        match &mut self.sse {
            Some(sse) => {
                for frame in sse.feed(chunk) {
                    // Only the first event (for the generation's id) and those that mention
                    // usage are parsed: the relay must stay a relay.
                    if let Ok(switchboard_core::stream::SseFrame::Event(e)) = frame
                        && (e.data.contains("\"usage\"")
                            || (self.generation_id.is_none() && self.model.is_none()))
                    {
                        self.read(e.data.as_bytes());
                    }
                }
            }
            None => {
                if self.body.len() + chunk.len() <= MAX_METERED_BODY {
                    self.body.extend_from_slice(chunk);
                }
            }
        }
    }

    fn read(&mut self, json: &[u8]) {
        if let Some(facts) = switchboard_core::stream::answer_facts(json) {
            self.generation_id = self.generation_id.take().or(facts.id);
            self.model = self.model.take().or(facts.model);
            if self.model.is_some() {
                self.meter.asked = AskedModel::Unknown;
            }
            self.provider = self.provider.take().or(facts.provider);
            if facts.usage.is_some() {
                self.usage = facts.usage;
            }
        }
    }
}

impl Drop for RelayBody {
    /// The call is over (ended, failed or the client left): what it cost goes to the ledger once
    /// this task yields. hyper drops a body before it writes the body's last bytes, so reading
    /// the answer's usage here would hold every non-streamed answer back.
    fn drop(&mut self) {
        if let Some(meter) = self.meter.take() {
            let ledger = meter.meter.ledger.clone();
            ledger.record_after(move || meter.finish());
        }
    }
}

impl RunningMeter {
    /// Hands what the call cost to the ledger.
    fn finish(mut self) {
        if self.sse.is_none() && !self.body.is_empty() {
            let body = std::mem::take(&mut self.body);
            self.read(&body);
        }
        let int = |n: u64| i64::try_from(n).ok();
        let usage = self.usage.take();
        let spend = switchboard_store::Spend {
            workspace: std::mem::take(&mut self.meter.workspace),
            entry: self.meter.entry.to_owned(),
            model: self.model.take().or_else(|| {
                std::mem::replace(&mut self.meter.asked, AskedModel::Unknown).into_name()
            }),
            provider: self.provider.take(),
            prompt_tokens: usage.as_ref().and_then(|u| int(u.prompt_tokens)),
            completion_tokens: usage.as_ref().and_then(|u| int(u.completion_tokens)),
            reasoning_tokens: usage
                .as_ref()
                .and_then(|u| u.reasoning_tokens.and_then(int)),
            cached_tokens: usage.as_ref().and_then(|u| u.cached_tokens.and_then(int)),
            cost: usage.as_ref().and_then(|u| u.cost),
            at: switchboard_chat::now_ms(),
        };
        // An answer without its cost (a stream the client left, a provider that sent no usage):
        // the generation record has it.
        if spend.cost.is_none()
            && let (Some(lookup), Some(id)) = (self.meter.lookup.take(), self.generation_id.take())
        {
            self.meter.ledger.reconcile(lookup, id, spend);
            return;
        }
        self.meter.ledger.record(spend);
    }
}

/// An error after the stream started, in OpenRouter's documented mid-stream shape.
pub fn sse_error_chunk(code: u16, message: &str) -> Bytes {
    let chunk = serde_json::json!({
        "object": "chat.completion.chunk",
        "error": {"code": code, "message": message},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    });
    Bytes::from(switchboard_core::stream::encode_data(&chunk.to_string()))
}

/// The next data frame of an upstream body (trailers are not relayed).
fn poll_data(
    mut body: Pin<&mut reqwest::Body>,
    cx: &mut Context<'_>,
) -> Poll<Option<Result<Bytes, reqwest::Error>>> {
    loop {
        match ready!(body.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Poll::Ready(Some(Ok(data)));
                }
            }
            Some(Err(e)) => return Poll::Ready(Some(Err(e))),
            None => return Poll::Ready(None),
        }
    }
}

async fn next_data(body: &mut reqwest::Body) -> Option<Result<Bytes, reqwest::Error>> {
    std::future::poll_fn(|cx| poll_data(Pin::new(&mut *body), cx)).await
}

/// 502 naming the cause in one line (DNS, refused, TLS, proxy), also logged.
fn upstream_unreachable(e: &reqwest::Error) -> ApiError {
    let why = crate::outbound::failure(e);
    tracing::warn!("upstream unreachable: {why}");
    ApiError::bad_gateway(format!("upstream unreachable: {why}"))
}

fn first_byte_timeout_error(t: Duration) -> ApiError {
    ApiError::gateway_timeout(format!(
        "upstream sent no response within {} (SWITCHBOARD_UPSTREAM_FIRST_BYTE_TIMEOUT)",
        human(t)
    ))
}

/// `30 s`, or `300 ms` for a timeout under a second or not whole seconds (never "0 s").
fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unshared_header_value_is_an_equal_copy() {
        let read_buffer = Bytes::from(b"text/event-stream".to_vec());
        let mut shared = HeaderValue::from_maybe_shared(read_buffer.clone()).unwrap();
        shared.set_sensitive(true);
        assert_eq!(shared.as_bytes().as_ptr(), read_buffer.as_ptr());
        let copy = unshared(&shared);
        assert_eq!(copy, shared);
        assert!(copy.is_sensitive());
        assert_ne!(copy.as_bytes().as_ptr(), read_buffer.as_ptr());
    }

    #[test]
    fn upstream_urls_join_base_path_and_query() {
        let url = |base: &str, path, query| {
            upstream_url(&reqwest::Url::parse(base).unwrap(), path, query).to_string()
        };
        assert_eq!(
            url("https://openrouter.ai/api/v1", "chat/completions", None),
            "https://openrouter.ai/api/v1/chat/completions"
        );
        assert_eq!(
            url("http://127.0.0.1:1/api/v1", "models", Some("a=1")),
            "http://127.0.0.1:1/api/v1/models?a=1"
        );
        assert_eq!(
            url("http://127.0.0.1:1", "v1/models", None),
            "http://127.0.0.1:1/v1/models"
        );
    }
}
