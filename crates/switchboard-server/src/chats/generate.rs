//! A generation: one assistant reply streamed from the provider into the database, detached from
//! the HTTP request that started it.
//!
//! The path of a reply: provider bytes → [`StreamDecoder`] events → the chat's [`ChatHub`] (live
//! text + numbered events for browsers) → a checkpoint in the database every
//! [`CHECKPOINT_EVERY`] (so a crash loses at most that much) → the final state, with usage, finish
//! reason and status, written once at the end. An upstream error keeps the partial text; a stop
//! drops the upstream request at once and keeps the text too.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use switchboard_core::secret::Secret;
use switchboard_core::stream::{
    Annotation, ErrorCode, StreamDecoder, StreamEvent, decode_body, decode_json_body,
    merge_reasoning_details,
};
use switchboard_store::{GenerationFlush, Message, MessageFinish, MessageStatus, NewEvent, Usage};
use tokio::sync::Notify;

use super::hub::{ChatHub, Event, LiveMessage, now_ms};
use super::view::MessageView;
use crate::state::AppState;

/// How often a running generation is written to the database.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// The largest error body read from a provider that refused a request.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Everything a generation needs, prepared by the request handler.
pub struct Generation {
    pub state: AppState,
    pub hub: Arc<ChatHub>,
    /// The assistant message as inserted (`streaming`, empty).
    pub message: Message,
    pub upstream_url: String,
    /// The client for the configured provider, or one pinned to a vetted user endpoint.
    pub http: reqwest::Client,
    /// The key for this request only: the server's, or the user's own, never stored.
    pub key: Secret,
    pub body: Bytes,
    /// Events already emitted for this reply (the new messages), written with the first checkpoint.
    pub pending: Vec<Arc<Event>>,
    pub stop: Arc<Notify>,
    /// Title the chat after this reply when it still has the default title.
    pub title: Option<super::title::TitleJob>,
}

enum Outcome {
    Complete,
    Stopped,
    Failed {
        code: Option<String>,
        message: String,
    },
}

/// What the stream told us besides text.
#[derive(Default)]
struct Facts {
    generation_id: Option<String>,
    model: Option<String>,
    provider: Option<String>,
    details: Vec<Value>,
    usage: Option<switchboard_core::stream::Usage>,
    finish_reason: Option<String>,
    error: Option<(Option<String>, String)>,
    first_token_at: Option<i64>,
}

impl Facts {
    /// Whether the provider has told us nothing at all: no text, metadata, finish, usage or error.
    fn said_nothing(&self) -> bool {
        self.first_token_at.is_none()
            && self.generation_id.is_none()
            && self.model.is_none()
            && self.finish_reason.is_none()
            && self.usage.is_none()
            && self.error.is_none()
    }
}

impl Generation {
    pub fn spawn(self) {
        tokio::spawn(self.run());
    }

    async fn run(mut self) {
        let mut facts = Facts::default();
        let outcome = self.stream(&mut facts).await;
        self.finish(outcome, facts).await;
    }

    async fn stream(&mut self, facts: &mut Facts) -> Outcome {
        let settings = self.state.settings();
        let mut req = self
            .http
            .post(&self.upstream_url)
            .header("authorization", format!("Bearer {}", self.key.expose()))
            .header("content-type", "application/json")
            .header("accept", "text/event-stream")
            .header("x-title", settings.app_name.as_str())
            .body(self.body.clone());
        if let Some(site) = &settings.site_url {
            req = req.header("http-referer", site.as_str());
        }
        let first_byte = settings.upstream_first_byte_timeout;
        let idle = settings.upstream_idle_timeout;
        let stop = self.stop.clone();
        // The first checkpoint stores the new messages' events right away.
        self.checkpoint(facts).await;

        let resp = tokio::select! {
            biased;
            _ = stop.notified() => return Outcome::Stopped,
            r = tokio::time::timeout(first_byte, req.send()) => r,
        };
        let mut resp = match resp {
            Err(_) => return failed(504, "the provider sent no response in time"),
            Ok(Err(e)) if e.is_connect() => {
                return failed(502, "could not connect to the provider");
            }
            Ok(Err(_)) => return failed(502, "the request to the provider failed"),
            Ok(Ok(r)) => r,
        };
        if !resp.status().is_success() {
            return refusal(resp, idle).await;
        }

        let mut decoder = StreamDecoder::new();
        // The start of the body, for an answer that turns out not to be an event stream.
        let mut head = Vec::new();
        let mut ticker = tokio::time::interval(CHECKPOINT_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        // A deadline rather than a timeout per poll: the checkpoint ticker wakes this loop every
        // 250 ms, and a fresh timeout each time would never expire.
        let mut silent_until = tokio::time::Instant::now() + idle;
        let outcome = loop {
            tokio::select! {
                biased;
                _ = stop.notified() => break Outcome::Stopped,
                chunk = tokio::time::timeout_at(silent_until, resp.chunk()) => match chunk {
                    Err(_) => break failed(504, "the provider went silent mid-reply"),
                    Ok(Err(_)) => break failed(502, "the connection to the provider broke mid-reply"),
                    Ok(Ok(None)) => {
                        let events = decoder.finish();
                        self.apply(events, facts);
                        if !decoder.saw_done() && facts.said_nothing() {
                            // Not an event stream: a JSON completion, a 200 carrying an error
                            // body, or an HTML page.
                            self.apply(decode_body(&head), facts);
                            if facts.said_nothing() {
                                break failed(502, "the provider's answer was not a completion");
                            }
                            break Outcome::Complete;
                        }
                        if !decoder.saw_done()
                            && facts.finish_reason.is_none()
                            && facts.error.is_none()
                        {
                            // An event stream that stopped with neither `[DONE]` nor a finish
                            // reason was cut off (a proxy in between timed out, the provider
                            // crashed), even though the connection closed cleanly.
                            break failed(
                                502,
                                "the provider's stream ended before the reply was finished",
                            );
                        }
                        break Outcome::Complete;
                    }
                    Ok(Ok(Some(bytes))) => {
                        silent_until = tokio::time::Instant::now() + idle;
                        let room = MAX_ERROR_BODY.saturating_sub(head.len()).min(bytes.len());
                        head.extend_from_slice(&bytes[..room]);
                        let events = decoder.feed(&bytes);
                        self.apply(events, facts);
                    }
                },
                _ = ticker.tick() => self.checkpoint(facts).await,
            }
        };
        // The provider's own error (mid-stream) wins over a clean end.
        match (&outcome, facts.error.take()) {
            (Outcome::Complete, Some((code, message))) => Outcome::Failed { code, message },
            _ => outcome,
        }
    }

    /// Turn decoded events into hub events, coalescing the text of one network chunk into one
    /// delta so a burst of tiny deltas is one event.
    fn apply(&mut self, events: Vec<StreamEvent>, facts: &mut Facts) {
        let mut content = String::new();
        let mut reasoning = String::new();
        let mut tools: Vec<(u32, Option<String>, Option<String>, String)> = Vec::new();
        let mut annotations: Vec<Value> = Vec::new();
        for event in events {
            match event {
                StreamEvent::Meta {
                    id,
                    model,
                    provider,
                } => {
                    facts.generation_id = facts.generation_id.take().or(id);
                    facts.model = facts.model.take().or(model);
                    facts.provider = facts.provider.take().or(provider);
                }
                StreamEvent::Reasoning(text) => reasoning.push_str(&text),
                StreamEvent::ReasoningDetail(v) => facts.details.push(v),
                StreamEvent::Content(text) => content.push_str(&text),
                StreamEvent::ToolCall {
                    index,
                    id,
                    name,
                    arguments_delta,
                } => tools.push((index, id, name, arguments_delta)),
                StreamEvent::Annotation(a) => annotations.push(annotation_json(a)),
                StreamEvent::Usage(u) => facts.usage = Some(u),
                StreamEvent::Finish { reason, .. } => facts.finish_reason = Some(reason),
                StreamEvent::Error { code, message, .. } => {
                    facts.error.get_or_insert((error_code(&code), message));
                }
                StreamEvent::Malformed(e) => {
                    tracing::warn!(message_id = %self.message.id, error = %e, "malformed chunk from the provider skipped");
                }
                StreamEvent::Done => {}
            }
        }
        let mid = self.message.id.clone();
        if (!content.is_empty() || !reasoning.is_empty() || !tools.is_empty())
            && facts.first_token_at.is_none()
        {
            facts.first_token_at = Some(now_ms());
        }
        if !content.is_empty() || !reasoning.is_empty() {
            let mut data = json!({"message_id": mid});
            if !content.is_empty() {
                data["content"] = json!(content);
            }
            if !reasoning.is_empty() {
                data["reasoning"] = json!(reasoning);
            }
            let ev = self.hub.emit("delta", &mid, |live| {
                let m = live.entry(mid.clone()).or_default();
                m.content.push_str(&content);
                m.reasoning.push_str(&reasoning);
                data.to_string()
            });
            self.pending.push(ev);
        }
        if !tools.is_empty() {
            let ev = self.hub.emit("tool_calls", &mid, |live| {
                let m = live.entry(mid.clone()).or_default();
                for (index, id, name, args) in tools {
                    let i = index as usize;
                    if m.tool_calls.len() <= i {
                        m.tool_calls.resize(i + 1, Default::default());
                    }
                    let slot = &mut m.tool_calls[i];
                    if let Some(id) = id {
                        slot.0 = id;
                    }
                    if let Some(name) = name {
                        slot.1.push_str(&name);
                    }
                    slot.2.push_str(&args);
                }
                let current = m.tool_calls_json().unwrap_or(Value::Null);
                json!({"message_id": mid, "tool_calls": current}).to_string()
            });
            self.pending.push(ev);
        }
        if !annotations.is_empty() {
            let ev = self.hub.emit("annotations", &mid, |live| {
                let m = live.entry(mid.clone()).or_default();
                m.annotations.extend(annotations);
                let all = m.annotations_json().unwrap_or(Value::Null);
                json!({"message_id": mid, "annotations": all}).to_string()
            });
            self.pending.push(ev);
        }
    }

    /// Write the text so far and the events since the last checkpoint, in one transaction. A
    /// failed write keeps the events for the next attempt, so nothing is skipped.
    async fn checkpoint(&mut self, facts: &Facts) {
        let live = self.hub.live(&self.message.id).unwrap_or_default();
        let batch = GenerationFlush {
            message_id: self.message.id.clone(),
            content: live.content.clone(),
            reasoning: live.reasoning.clone(),
            reasoning_details: details_json(&facts.details),
            tool_calls: live.tool_calls_json(),
            annotations: live.annotations_json(),
            first_token_at: facts.first_token_at,
            generation_id: facts.generation_id.clone(),
            model: facts.model.clone(),
            provider: facts.provider.clone(),
            events: new_events(&self.pending),
        };
        match self.state.store().flush_generation(&batch).await {
            Ok(()) => {
                self.hub.persisted(&self.pending);
                self.pending.clear();
            }
            Err(e) => {
                tracing::warn!(message_id = %self.message.id, error = %e, "checkpoint failed; will retry")
            }
        }
    }

    async fn finish(mut self, outcome: Outcome, facts: Facts) {
        // The last checkpoint carries what the final write has no field for (first token time).
        self.checkpoint(&facts).await;
        let live: LiveMessage = self.hub.live(&self.message.id).unwrap_or_default();
        let (status, error_code, error_message) = match outcome {
            Outcome::Complete => (MessageStatus::Complete, None, None),
            Outcome::Stopped => (MessageStatus::Stopped, None, None),
            Outcome::Failed { code, message } => (MessageStatus::Error, code, Some(message)),
        };
        let usage = facts.usage.as_ref().map(store_usage).unwrap_or_default();
        let mut message = self.message.clone();
        message.content = live.content.clone();
        message.reasoning = live.reasoning.clone();
        message.reasoning_details = details_json(&facts.details);
        message.tool_calls = live.tool_calls_json();
        message.annotations = live.annotations_json();
        message.status = status;
        message.error_code = error_code.clone();
        message.error_message = error_message.clone();
        message.usage = usage.clone();
        message.finish_reason = facts.finish_reason.clone();
        message.generation_id = facts.generation_id.clone();
        message.model = facts.model.clone().or(message.model);
        message.provider = facts.provider.clone().or(message.provider);
        message.first_token_at = facts.first_token_at;
        message.finished_at = Some(now_ms());

        let done = self.hub.emit("done", &message.id, |live| {
            if let Some(m) = live.get_mut(&message.id) {
                m.finished = Some(Box::new(message.clone()));
            }
            json!({"message": MessageView::new(&message)}).to_string()
        });
        self.pending.push(done);
        let finish = MessageFinish {
            message_id: message.id.clone(),
            status,
            content: message.content.clone(),
            reasoning: message.reasoning.clone(),
            reasoning_details: message.reasoning_details.clone(),
            tool_calls: message.tool_calls.clone(),
            annotations: message.annotations.clone(),
            usage,
            finish_reason: message.finish_reason.clone(),
            error_code,
            error_message,
            finished_at: message.finished_at.unwrap_or_else(now_ms),
            generation_id: message.generation_id.clone(),
            provider: message.provider.clone(),
            model: message.model.clone(),
            events: new_events(&self.pending),
        };
        // The final write matters most: retry a few times before giving up (the message then
        // stays `streaming` and becomes `interrupted` with its checkpointed text at next start).
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=6 {
            match self.state.store().finish_message(&finish).await {
                Ok(()) => {
                    self.hub.persisted(&self.pending);
                    break;
                }
                Err(e) if attempt < 6 => {
                    tracing::warn!(message_id = %message.id, error = %e, attempt, "finishing a message failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => {
                    tracing::error!(message_id = %message.id, error = %e, "could not finish a message")
                }
            }
        }
        let _ = self
            .state
            .store()
            .touch_chat(&message.chat_id, now_ms())
            .await;
        self.hub.finished(&message.id);
        if status == MessageStatus::Complete
            && let Some(title) = self.title.take()
        {
            title.run(&self.state, &self.hub, &message.content).await;
        }
    }
}

fn failed(code: u16, message: &str) -> Outcome {
    Outcome::Failed {
        code: Some(code.to_string()),
        message: message.to_string(),
    }
}

/// A provider that refused before streaming: keep its status and its own message
/// (e.g. 402 "requires more credits", 429 rate limited).
async fn refusal(mut resp: reqwest::Response, idle: Duration) -> Outcome {
    let status = resp.status().as_u16();
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match tokio::time::timeout(idle, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let provider_message = decode_json_body(&body).into_iter().find_map(|e| match e {
        StreamEvent::Error { message, .. } if !message.is_empty() => Some(message),
        _ => None,
    });
    Outcome::Failed {
        code: Some(status.to_string()),
        message: provider_message.unwrap_or_else(|| format!("the provider answered HTTP {status}")),
    }
}

fn error_code(code: &ErrorCode) -> Option<String> {
    match code {
        ErrorCode::Int(n) => Some(n.to_string()),
        ErrorCode::Text(s) => Some(s.clone()),
        ErrorCode::Missing => None,
    }
}

fn annotation_json(a: Annotation) -> Value {
    match a {
        Annotation::UrlCitation(c) => json!({
            "type": "url_citation",
            "url": c.url,
            "title": c.title,
            "content": c.content,
            "start_index": c.start_index,
            "end_index": c.end_index,
        }),
        Annotation::Other(v) => v,
    }
}

fn details_json(details: &[Value]) -> Option<Value> {
    (!details.is_empty()).then(|| Value::Array(merge_reasoning_details(details.iter())))
}

fn store_usage(u: &switchboard_core::stream::Usage) -> Usage {
    let int = |n: u64| Some(i64::try_from(n).unwrap_or(i64::MAX));
    Usage {
        prompt_tokens: int(u.prompt_tokens),
        completion_tokens: int(u.completion_tokens),
        reasoning_tokens: u.reasoning_tokens.and_then(int),
        cached_tokens: u.cached_tokens.and_then(int),
        cost: u.cost,
    }
}

pub fn new_events(events: &[Arc<Event>]) -> Vec<NewEvent> {
    events
        .iter()
        .map(|e| NewEvent {
            seq: e.seq,
            kind: e.kind.to_string(),
            data: e.data.clone(),
            created_at: e.created_at,
        })
        .collect()
}
