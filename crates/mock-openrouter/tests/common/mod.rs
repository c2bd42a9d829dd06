//! Shared helpers for the integration tests: start a mock, send a chat request, and a tiny SSE
//! parser so the tests check the wire bytes rather than trusting a client library.

#![allow(dead_code)] // each test binary uses a different subset

use mock_openrouter::{MockConfig, MockOpenRouter};
use serde_json::{Value, json};

pub const KEY: &str = "sk-or-v1-test";

pub async fn start() -> MockOpenRouter {
    MockOpenRouter::start(MockConfig::default())
        .await
        .expect("mock starts")
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// POSTs a chat completion for `model` with one user message.
pub async fn chat(mock: &MockOpenRouter, model: &str, stream: bool) -> reqwest::Response {
    chat_body(
        mock,
        json!({
            "model": model,
            "stream": stream,
            "messages": [{"role": "user", "content": "Hello there"}],
        }),
    )
    .await
}

pub async fn chat_body(mock: &MockOpenRouter, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/chat/completions", mock.api_url()))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .expect("request is sent")
}

/// One SSE event as it appeared on the wire.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Comment(String),
    Data(String),
}

/// Splits an SSE body into events. Events are separated by a blank line; a line starting with
/// `:` is a comment, `data: ` carries a payload.
pub fn parse_sse(body: &str) -> Vec<Event> {
    assert!(
        body.ends_with("\n\n"),
        "SSE body must end with a blank line"
    );
    body.split("\n\n")
        .filter(|block| !block.is_empty())
        .map(|block| {
            assert!(!block.contains('\n'), "one line per event: {block:?}");
            if let Some(comment) = block.strip_prefix(':') {
                Event::Comment(comment.trim().to_owned())
            } else if let Some(data) = block.strip_prefix("data: ") {
                Event::Data(data.to_owned())
            } else {
                panic!("unexpected SSE line {block:?}")
            }
        })
        .collect()
}

/// Streams `model` and returns the events, checking the framing every stream must have: a
/// keep-alive comment before the first data line and `[DONE]` last.
pub async fn stream_events(mock: &MockOpenRouter, model: &str) -> Vec<Event> {
    let response = chat(mock, model, true).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    assert_eq!(response.headers()["cache-control"], "no-cache");
    let body = response.text().await.expect("body");
    let events = parse_sse(&body);
    assert_eq!(
        events.first(),
        Some(&Event::Comment("OPENROUTER PROCESSING".to_owned()))
    );
    assert_eq!(events.last(), Some(&Event::Data("[DONE]".to_owned())));
    events
}

/// The JSON chunks of a stream (everything but comments and `[DONE]`).
pub fn chunks(events: &[Event]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::Data(data) if data != "[DONE]" => {
                Some(serde_json::from_str(data).expect("chunk is JSON"))
            }
            _ => None,
        })
        .collect()
}

/// The concatenated `delta.content` of all chunks.
pub fn content(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}
