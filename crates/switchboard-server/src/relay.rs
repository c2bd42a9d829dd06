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

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream;
use switchboard_core::secret::Secret;

use crate::error::ApiError;
use crate::metrics::StreamGuard;
use crate::state::AppState;

/// One request to send upstream.
pub struct UpstreamRequest<'a> {
    pub method: Method,
    /// The full upstream URL, built from the provider's configured base URL only.
    pub url: String,
    pub key: &'a Secret,
    pub client_headers: &'a HeaderMap,
    pub body: Bytes,
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
    req: UpstreamRequest<'_>,
    started: Instant,
) -> Result<Response, ApiError> {
    let settings = state.settings();
    let mut builder = state.http().request(req.method.clone(), &req.url).header(
        header::AUTHORIZATION,
        format!("Bearer {}", req.key.expose()),
    );
    for name in [header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(v) = req.client_headers.get(&name) {
            builder = builder.header(name, v);
        }
    }
    // Attribution: the client's own values win over the server's.
    match req.client_headers.get(HTTP_REFERER) {
        Some(v) => builder = builder.header(HTTP_REFERER, v),
        None => {
            if let Some(site) = &settings.site_url {
                builder = builder.header(HTTP_REFERER, site.as_str());
            }
        }
    }
    builder = match req.client_headers.get(X_TITLE) {
        Some(v) => builder.header(X_TITLE, v),
        None => builder.header(X_TITLE, settings.app_name.as_str()),
    };
    if req.method == Method::POST {
        builder = builder.body(req.body);
    }

    let first_byte_timeout = settings.upstream_first_byte_timeout;
    let sent_at = Instant::now();
    let mut resp = match tokio::time::timeout(first_byte_timeout, builder.send()).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(upstream_unreachable(&e)),
        Err(_) => return Err(first_byte_timeout_error(first_byte_timeout)),
    };
    let remaining = first_byte_timeout.saturating_sub(sent_at.elapsed());
    let first = match tokio::time::timeout(remaining, resp.chunk()).await {
        Ok(Ok(chunk)) => chunk,
        Ok(Err(e)) => return Err(upstream_unreachable(&e)),
        Err(_) => return Err(first_byte_timeout_error(first_byte_timeout)),
    };
    let upstream_wait = sent_at.elapsed();
    state.metrics().observe_upstream(upstream_wait);

    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    for (name, value) in resp.headers() {
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

    let body = relay_body(
        resp,
        first,
        settings.upstream_idle_timeout,
        is_sse,
        state.metrics().stream_guard(),
    );
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    state
        .metrics()
        .observe_overhead(started.elapsed().saturating_sub(upstream_wait));
    Ok(response)
}

struct BodyState {
    resp: reqwest::Response,
    first: Option<Bytes>,
    idle: Duration,
    is_sse: bool,
    done: bool,
    /// The last bytes relayed, to tell whether the stream stopped between two SSE events.
    tail: Vec<u8>,
    _guard: StreamGuard,
}

impl BodyState {
    fn relayed(&mut self, chunk: &Bytes) {
        self.tail
            .extend_from_slice(&chunk[chunk.len().saturating_sub(4)..]);
        let excess = self.tail.len().saturating_sub(4);
        self.tail.drain(..excess);
    }

    /// The error chunk to end the stream with. An upstream that broke off inside an event gets
    /// that event ended first, so the error chunk is not glued onto a half line.
    fn error_chunk(&self, code: u16, message: &str) -> Bytes {
        let t = &self.tail[..];
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
}

fn relay_body(
    resp: reqwest::Response,
    first: Option<Bytes>,
    idle: Duration,
    is_sse: bool,
    guard: StreamGuard,
) -> Body {
    let state = BodyState {
        done: first.is_none(),
        resp,
        first,
        idle,
        is_sse,
        tail: Vec::new(),
        _guard: guard,
    };
    Body::from_stream(stream::unfold(state, |mut st| async move {
        if let Some(first) = st.first.take() {
            st.relayed(&first);
            return Some((Ok(first), st));
        }
        if st.done {
            return None;
        }
        match tokio::time::timeout(st.idle, st.resp.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                st.relayed(&chunk);
                Some((Ok(chunk), st))
            }
            Ok(Ok(None)) => None,
            Ok(Err(e)) => {
                st.done = true;
                if st.is_sse {
                    let chunk = st.error_chunk(502, "upstream connection failed mid-stream");
                    Some((Ok(chunk), st))
                } else {
                    Some((Err(std::io::Error::other(e.without_url())), st))
                }
            }
            Err(_) => {
                st.done = true;
                let msg = format!("upstream sent nothing for {}", human(st.idle));
                if st.is_sse {
                    Some((Ok(st.error_chunk(504, &msg)), st))
                } else {
                    Some((Err(std::io::Error::other(msg)), st))
                }
            }
        }
    }))
}

/// An error after the stream started, in OpenRouter's documented mid-stream shape.
pub fn sse_error_chunk(code: u16, message: &str) -> Bytes {
    let chunk = serde_json::json!({
        "object": "chat.completion.chunk",
        "error": {"code": code, "message": message},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    });
    Bytes::from(format!("data: {chunk}\n\n"))
}

fn upstream_unreachable(e: &reqwest::Error) -> ApiError {
    // The URL is the configured provider's; the key travels in a header and never appears here.
    let kind = if e.is_connect() {
        "could not connect"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    ApiError::bad_gateway(format!("upstream unreachable: {kind}"))
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
