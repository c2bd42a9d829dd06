//! A generation: one assistant reply streamed from the provider into the database, detached from
//! the HTTP request that started it.
//!
//! The path of a reply: provider bytes → [`StreamDecoder`] events → the text and parts pending
//! since the last write → a write at most every [`WRITE_EVERY`], grouped with the other running
//! replies' writes in one transaction by the [journal](crate::journal), whose events carry the new text → the hubs wake the browsers that follow the chat → at the end
//! one transaction writes the final message with its `done` event and compacts the deltas. So a
//! browser never sees a word that is not stored, and a crash loses at most the last
//! [`WRITE_EVERY`] of text. An upstream error keeps the partial text; a stop drops the upstream
//! request at once and keeps the text too.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use switchboard_core::stream::{
    Annotation, DecodeError, ErrorCode, StreamDecoder, StreamEvent, ToolCallAssembler, decode_body,
    decode_json_body, merge_reasoning_details,
};
use switchboard_store::{
    EventDraft, GenerationWrite, Message, MessageFinish, MessageStatus, NewFile, Role, TextPart,
    Usage,
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::context::{DEFAULT_HISTORY_LENGTH, Routing, build_request};
use crate::engine::{Inner, ReplyPlan};
use crate::ledger::GenerationLookup;
use crate::now_ms;
use crate::title::{DEFAULT_TITLE, TitleJob};
use crate::view::MessageView;
use switchboard_core::provider::ProviderId;
use switchboard_core::secret::Secret;

// The tool loop around `stream`: a child module, so it shares this one's private state.
#[path = "tools.rs"]
mod tools;

/// How often a streaming reply is written (and so shown) at most. The first text is written at
/// once; later text is gathered for this long, so one write carries many small deltas.
pub const WRITE_EVERY: Duration = Duration::from_millis(100);
/// The largest error body read from a provider that refused a request.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Event kinds a finished reply's `done` supersedes: deleted when it finishes.
pub(crate) const COMPACTED_KINDS: &[&str] = &[
    "delta",
    "tool_calls",
    "annotations",
    "tool_approval",
    "tool_decision",
];

enum Outcome {
    Complete,
    Stopped,
    /// The instance is shutting down and the grace period is over.
    Interrupted,
    Failed {
        code: Option<String>,
        message: String,
    },
    /// The reply is no longer ours to write: finished elsewhere, or its chat was deleted.
    Lost,
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
    /// The first answer token after reasoning.
    reasoning_ended_at: Option<i64>,
    /// An SSE line or event over the decoder's limit: the stream cannot be trusted after it.
    too_long: Option<usize>,
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

/// What arrived since the last write.
#[derive(Default)]
struct Pending {
    content: String,
    reasoning: String,
    tool_calls_changed: bool,
    annotations_changed: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.content.is_empty()
            && self.reasoning.is_empty()
            && !self.tool_calls_changed
            && !self.annotations_changed
    }
}

pub(crate) struct Generation {
    engine: Arc<Inner>,
    plan: ReplyPlan,
    /// The reply as stored (`streaming`, empty).
    message: Message,
    stop: CancellationToken,
    content: String,
    reasoning: String,
    tools: ToolCallAssembler,
    annotations: Vec<Value>,
    facts: Facts,
    pending: Pending,
    /// Bytes of text and tool arguments so far, against the reply cap.
    size: usize,
    /// The metadata as last written, so a write touches the message row only when it changed.
    written_meta: Option<Meta>,
    /// The conversation before this reply, as read for the first request.
    history: Vec<Message>,
    /// The tools offered in this reply, when its chat enables MCP servers.
    toolbox: Option<crate::mcp::Toolbox>,
    /// The tool calls of finished rounds, with their state and result (see `tools`).
    tool_records: Vec<Value>,
    /// Images the model generated, stored with the reply when it finishes.
    image_files: Vec<NewFile>,
    /// The reply's attachments: references to `image_files`.
    image_refs: Vec<Value>,
    /// Whether this reply may name a chat still called by the default title: in a compare only
    /// the first does, so one turn costs one title request.
    pub(crate) names_chat: bool,
}

/// What a write stores on the message row besides text.
#[derive(Clone, PartialEq)]
struct Meta {
    first_token_at: Option<i64>,
    reasoning_ended_at: Option<i64>,
    generation_id: Option<String>,
    model: Option<String>,
    provider: Option<String>,
}

impl Generation {
    pub(crate) fn new(
        engine: Arc<Inner>,
        plan: ReplyPlan,
        message: Message,
        stop: CancellationToken,
    ) -> Generation {
        Generation {
            engine,
            plan,
            message,
            stop,
            content: String::new(),
            reasoning: String::new(),
            tools: ToolCallAssembler::new(),
            annotations: Vec::new(),
            facts: Facts::default(),
            pending: Pending::default(),
            size: 0,
            written_meta: None,
            history: Vec::new(),
            toolbox: None,
            tool_records: Vec::new(),
            image_files: Vec::new(),
            image_refs: Vec::new(),
            names_chat: true,
        }
    }

    pub(crate) async fn run(mut self) {
        let (outcome, title) = match self.prepare().await {
            Ok((body, title)) => (self.converse(body).await, title),
            Err(outcome) => (outcome, None),
        };
        // Stopped and failed replies name their chat too: it should not stay "New chat".
        let titled = matches!(
            outcome,
            Outcome::Complete | Outcome::Stopped | Outcome::Failed { .. }
        );
        self.finish(outcome).await;
        self.engine.forget(&self.plan.chat.id, &self.message.id);
        if titled
            && let Some(title) = title
            && !self.engine.interrupt.is_cancelled()
        {
            let engine = self.engine.clone();
            tokio::select! {
                () = title.run(&engine, &self.content) => {}
                () = engine.interrupt.cancelled() => {}
            }
        }
    }

    /// The request body, from the history as stored with the new turn, and the title job when the
    /// chat still has the default title.
    async fn prepare(&mut self) -> Result<(Bytes, Option<TitleJob>), Outcome> {
        let chat = &self.plan.chat;
        // The branch this reply answers (its ancestors), not whatever the active path is now:
        // a compare's replies each answer the same turn, and a select may move the path.
        let history = self
            .engine
            .store
            .ancestors(
                &self.plan.workspace,
                &chat.id,
                &self.message.id,
                chat.settings
                    .history_length
                    .unwrap_or(DEFAULT_HISTORY_LENGTH)
                    .clamp(1, 500),
            )
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "reading the conversation for a reply failed");
                failed(503, "the conversation could not be read from the database")
            })?;
        let mut history = history;
        self.load_files(&mut history).await?;
        self.toolbox = self.offered_tools();
        let body = self.request_body(&history);
        let first_user_message = history
            .iter()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.clone());
        let title = match (
            self.names_chat && chat.title == DEFAULT_TITLE,
            first_user_message,
        ) {
            (true, Some(first_user_message)) => Some(TitleJob {
                chat_id: chat.id.clone(),
                upstream_url: self.plan.upstream.url.clone(),
                http: self.plan.upstream.http.clone(),
                key: self.plan.upstream.key.clone(),
                model: self
                    .plan
                    .title_model
                    .clone()
                    .unwrap_or_else(|| self.plan.model.clone()),
                reasoning_off: self.plan.title_model.is_none(),
                first_user_message,
                spend_workspace: self
                    .plan
                    .paid_by_server
                    .then(|| self.plan.workspace.clone()),
            }),
            _ => None,
        };
        self.history = history;
        Ok((Bytes::from(body.to_string()), title))
    }

    /// Gives the files the history's user messages name their bytes (`data_url` beside the
    /// reference), for the request only: pages and the stored messages keep references.
    async fn load_files(&self, history: &mut [Message]) -> Result<(), Outcome> {
        for m in history.iter_mut().filter(|m| m.role == Role::User) {
            let Some(Value::Array(list)) = m.attachments.as_mut() else {
                continue;
            };
            for item in list.iter_mut() {
                let Some(id) = item.get("file").and_then(Value::as_str).map(str::to_owned) else {
                    continue;
                };
                let file = self
                    .engine
                    .store
                    .get_file(&self.plan.workspace, &id)
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = %e, "reading a message's file for a reply failed");
                        failed(
                            503,
                            "a file of the conversation could not be read from the database",
                        )
                    })?;
                if let Some(file) = file {
                    item["data_url"] = json!(format!("data:{};base64,{}", file.mime, file.data));
                }
            }
        }
        Ok(())
    }

    /// The upstream body for `history`, with the offered tools.
    fn request_body(&self, history: &[Message]) -> Value {
        let chat = &self.plan.chat;
        let routing = Routing {
            openrouter: self.plan.provider == ProviderId::OpenRouter.as_str(),
            session_id: &chat.id,
            provider_default: self.engine.config.provider_default.as_ref(),
        };
        let mut body = build_request(
            &self.plan.model,
            &chat.settings,
            history,
            &self.plan.limits,
            self.plan.reasoning_effort.as_deref(),
            &routing,
        );
        if let Some(toolbox) = &self.toolbox {
            body["tools"] = toolbox.definitions();
        }
        body
    }

    async fn stream(&mut self, body: Bytes) -> Outcome {
        let config = &self.engine.config;
        let upstream = &self.plan.upstream;
        let mut req = upstream
            .http
            .post(&upstream.url)
            .header("authorization", format!("Bearer {}", upstream.key.expose()))
            .header("content-type", "application/json")
            .header("accept", "text/event-stream")
            .header("x-title", config.app_name.as_str())
            .body(body);
        if let Some(site) = &config.site_url {
            req = req.header("http-referer", site.as_str());
        }
        let idle = config.idle_timeout;
        let stop = self.stop.clone();
        let interrupt = self.engine.interrupt.clone();

        let resp = tokio::select! {
            biased;
            () = stop.cancelled() => return Outcome::Stopped,
            () = interrupt.cancelled() => return Outcome::Interrupted,
            r = tokio::time::timeout(config.first_byte_timeout, req.send()) => r,
        };
        let mut resp = match resp {
            Err(_) => return failed(504, "the provider sent no response in time"),
            Ok(Err(e)) => {
                let why = crate::failure::describe(&e);
                tracing::warn!("the provider is unreachable: {why}");
                return failed(502, &why);
            }
            Ok(Ok(r)) => r,
        };
        if !resp.status().is_success() {
            return refusal(resp, idle).await;
        }

        // A line longer than the reply cap could never be stored anyway.
        let mut decoder = StreamDecoder::with_limit(config.max_reply_bytes + 64 * 1024);
        // The start of the body, for an answer that turns out not to be an event stream.
        let mut head = Vec::new();
        // The futures every turn of the loop waits on are made once, not per chunk: each new
        // timer or cancellation waiter is a registration, and a reply has thousands of chunks.
        let stopped = stop.cancelled();
        let interrupted = interrupt.cancelled();
        // The first text is written at once; later writes wait for this timer.
        let write_timer = tokio::time::sleep_until(Instant::now());
        // Fires at the end of the silence allowed after the last chunk as it was when the timer
        // was set; a chunk only moves `last_chunk`, and the timer is set again when it fires.
        let mut last_chunk = Instant::now();
        let silence = tokio::time::sleep_until(last_chunk + idle);
        tokio::pin!(stopped, interrupted, write_timer, silence);
        let mut write_due = true;
        let outcome = loop {
            if let Some(outcome) = self.over_limits() {
                break outcome;
            }
            let due = !self.pending.is_empty();
            if due && write_due {
                // Written before anything else is read, so the first words go out at once (a
                // timer already due would still wait for the timer wheel's next tick).
                if let Some(outcome) = self.write().await {
                    break outcome;
                }
                // On the grid all replies share, so their writes go in one transaction.
                write_timer
                    .as_mut()
                    .reset(self.engine.journal.next_tick(Instant::now()));
                write_due = false;
                continue;
            }
            tokio::select! {
                biased;
                () = &mut stopped => break Outcome::Stopped,
                () = &mut interrupted => break Outcome::Interrupted,
                () = &mut write_timer, if !write_due => write_due = true,
                () = &mut silence => {
                    if last_chunk + idle <= Instant::now() {
                        break failed(504, "the provider went silent mid-reply");
                    }
                    silence.as_mut().reset(last_chunk + idle);
                }
                chunk = resp.chunk() => match chunk {
                    Err(_) => break failed(502, "the connection to the provider broke mid-reply"),
                    Ok(None) => {
                        let events = decoder.finish();
                        self.apply(events);
                        if let Some(outcome) = self.over_limits() {
                            break outcome;
                        }
                        if !decoder.saw_done() && self.facts.said_nothing() {
                            // Not an event stream: a JSON completion, a 200 carrying an error
                            // body, or an HTML page.
                            self.apply(decode_body(&head));
                            if self.facts.said_nothing() {
                                break failed(502, "the provider's answer was not a completion");
                            }
                            break Outcome::Complete;
                        }
                        if !decoder.saw_done()
                            && self.facts.finish_reason.is_none()
                            && self.facts.error.is_none()
                        {
                            // An event stream that stopped with neither `[DONE]` nor a finish
                            // reason was cut off, even though the connection closed cleanly.
                            break failed(
                                502,
                                "the provider's stream ended before the reply was finished",
                            );
                        }
                        break Outcome::Complete;
                    }
                    Ok(Some(bytes)) => {
                        last_chunk = Instant::now();
                        let room = MAX_ERROR_BODY.saturating_sub(head.len()).min(bytes.len());
                        head.extend_from_slice(&bytes[..room]);
                        let events = decoder.feed(&bytes);
                        self.apply(events);
                    }
                },
            }
        };
        // The provider's own error (mid-stream) wins over a clean end.
        match (&outcome, self.facts.error.take()) {
            (Outcome::Complete, Some((code, message))) => Outcome::Failed { code, message },
            _ => outcome,
        }
    }

    /// A reply past `SWITCHBOARD_MAX_REPLY_BYTES`, or a stream with an over-long line, ends here
    /// as an error that keeps its text.
    fn over_limits(&self) -> Option<Outcome> {
        if let Some(limit) = self.facts.too_long {
            return Some(failed(
                502,
                &format!(
                    "the provider sent an event longer than {limit} bytes; the reply was cut there"
                ),
            ));
        }
        let cap = self.engine.config.max_reply_bytes;
        (self.size > cap).then(|| Outcome::Failed {
            code: Some("reply_too_long".into()),
            message: format!(
                "the reply grew past {cap} bytes (SWITCHBOARD_MAX_REPLY_BYTES) and was cut there"
            ),
        })
    }

    /// Fold decoded events into the reply and what is pending for the next write.
    fn apply(&mut self, events: Vec<StreamEvent>) {
        for event in events {
            self.tools.push(&event);
            match event {
                StreamEvent::Meta {
                    id,
                    model,
                    provider,
                } => {
                    let f = &mut self.facts;
                    f.generation_id = f.generation_id.take().or(id);
                    f.model = f.model.take().or(model);
                    f.provider = f.provider.take().or(provider);
                }
                StreamEvent::Reasoning(text) => {
                    self.size += text.len();
                    self.reasoning.push_str(&text);
                    self.pending.reasoning.push_str(&text);
                    self.first_token();
                }
                StreamEvent::ReasoningDetail(v) => self.facts.details.push(v),
                StreamEvent::Content(text) => {
                    if !self.reasoning.is_empty() && self.content.is_empty() && !text.is_empty() {
                        self.facts.reasoning_ended_at.get_or_insert_with(now_ms);
                    }
                    self.size += text.len();
                    self.content.push_str(&text);
                    self.pending.content.push_str(&text);
                    self.first_token();
                }
                StreamEvent::ToolCall {
                    arguments_delta, ..
                } => {
                    self.size += arguments_delta.len();
                    self.pending.tool_calls_changed = true;
                    self.first_token();
                }
                StreamEvent::Annotation(a) => {
                    self.annotations.push(annotation_json(a));
                    self.pending.annotations_changed = true;
                }
                StreamEvent::Image(url) => {
                    self.size += url.len();
                    self.first_token();
                    self.keep_image(url);
                }
                StreamEvent::Usage(u) => self.facts.usage = Some(u),
                StreamEvent::Finish { reason, .. } => self.facts.finish_reason = Some(reason),
                StreamEvent::Error {
                    code,
                    message,
                    metadata,
                } => {
                    let status = code.as_http_status();
                    let message = explain(status, &message, metadata.as_ref());
                    self.facts.error.get_or_insert((error_code(&code), message));
                }
                StreamEvent::Malformed(DecodeError::Sse(e)) => {
                    tracing::warn!(message_id = %self.message.id, error = %e, "over-long event from the provider");
                    self.facts
                        .too_long
                        .get_or_insert(self.engine.config.max_reply_bytes + 64 * 1024);
                }
                StreamEvent::Malformed(e) => {
                    tracing::warn!(message_id = %self.message.id, error = %e, "malformed chunk from the provider skipped");
                }
                StreamEvent::Done => {}
            }
        }
    }

    /// A generated image: a data URL becomes a file stored with the reply; another URL is kept as
    /// a link.
    fn keep_image(&mut self, url: String) {
        let n = self.image_refs.len() + 1;
        match crate::files::parse_data_url(&url) {
            Some((mime, data, size)) if mime.starts_with("image/") => {
                let ext = mime.trim_start_matches("image/").replace("jpeg", "jpg");
                let file = NewFile {
                    id: NewFile::new_id(),
                    message_id: self.message.id.clone(),
                    name: format!("image-{n}.{ext}"),
                    mime: mime.to_owned(),
                    data: data.to_owned(),
                    size,
                };
                self.image_refs.push(crate::files::reference(&file));
                self.image_files.push(file);
            }
            _ if url.starts_with("https://") => {
                self.image_refs
                    .push(json!({"url": url, "name": format!("image-{n}")}));
            }
            _ => {
                tracing::warn!(message_id = %self.message.id, "an image that is not a data or https URL was dropped")
            }
        }
    }

    fn first_token(&mut self) {
        self.facts.first_token_at.get_or_insert_with(now_ms);
    }

    /// The tool calls so far, whole, as stored and shown.
    fn tool_calls_json(&self) -> Option<Value> {
        let mut calls = self.tool_records.clone();
        calls.extend(
            self.tools_snapshot()
                .into_iter()
                .map(|c| json!({"id": c.id, "name": c.name, "arguments": c.arguments})),
        );
        (!calls.is_empty()).then_some(Value::Array(calls))
    }

    fn tools_snapshot(&self) -> Vec<switchboard_core::stream::ToolCall> {
        // The assembler hands out whole calls only when finished; tool calls are few and small.
        self.tools.clone().finish()
    }

    fn annotations_json(&self) -> Option<Value> {
        (!self.annotations.is_empty()).then(|| Value::Array(self.annotations.clone()))
    }

    /// Store what is pending. A failed write keeps it for the next attempt; `Some` when the
    /// generation must end (stop requested, or the reply is no longer ours).
    async fn write(&mut self) -> Option<Outcome> {
        let id = self.message.id.clone();
        let mut events = Vec::with_capacity(3);
        if !self.pending.content.is_empty() || !self.pending.reasoning.is_empty() {
            let mut data = json!({"message_id": id});
            if !self.pending.content.is_empty() {
                data["content"] = json!(self.pending.content);
            }
            if !self.pending.reasoning.is_empty() {
                data["reasoning"] = json!(self.pending.reasoning);
            }
            let mut event = EventDraft::new("delta", &id, data.to_string());
            event.part = Some(TextPart {
                content: self.pending.content.clone(),
                reasoning: self.pending.reasoning.clone(),
            });
            events.push(event);
        }
        let tool_calls = self.tool_calls_json();
        if self.pending.tool_calls_changed {
            let data = json!({"message_id": id, "tool_calls": tool_calls}).to_string();
            events.push(EventDraft::new("tool_calls", &id, data));
        }
        let annotations = self.annotations_json();
        if self.pending.annotations_changed {
            let data = json!({"message_id": id, "annotations": annotations}).to_string();
            events.push(EventDraft::new("annotations", &id, data));
        }
        let meta = Meta {
            first_token_at: self.facts.first_token_at,
            reasoning_ended_at: self.facts.reasoning_ended_at,
            generation_id: self.facts.generation_id.clone(),
            model: self.facts.model.clone(),
            provider: self.facts.provider.clone(),
        };
        let fields_changed = self.pending.tool_calls_changed
            || self.pending.annotations_changed
            || self.written_meta.as_ref() != Some(&meta);
        let write = GenerationWrite {
            fields_changed,
            chat_id: self.plan.chat.id.clone(),
            message_id: id.clone(),
            owner: self.engine.instance.clone(),
            events,
            tool_calls,
            annotations,
            first_token_at: self.facts.first_token_at,
            reasoning_ended_at: self.facts.reasoning_ended_at,
            generation_id: self.facts.generation_id.clone(),
            model: self.facts.model.clone(),
            provider: self.facts.provider.clone(),
        };
        match self.engine.journal.write(write).await {
            Ok(Some(ack)) => {
                self.pending = Pending::default();
                self.written_meta = Some(meta);
                self.engine.hubs.stored(&self.plan.chat.id, ack.events);
                ack.stop_requested.then_some(Outcome::Stopped)
            }
            Ok(None) => Some(Outcome::Lost),
            Err(e) => {
                tracing::warn!(message_id = %id, error = %e, "writing a reply failed; will retry");
                None
            }
        }
    }

    async fn finish(&mut self, outcome: Outcome) {
        let (status, error_code, error_message) = match outcome {
            Outcome::Complete => (MessageStatus::Complete, None, None),
            Outcome::Stopped => (MessageStatus::Stopped, None, None),
            Outcome::Interrupted => (MessageStatus::Interrupted, None, None),
            Outcome::Failed { code, message } => (MessageStatus::Error, code, Some(message)),
            Outcome::Lost => return,
        };
        let usage = self
            .facts
            .usage
            .as_ref()
            .map(store_usage)
            .unwrap_or_default();
        let cap = self.engine.config.max_reply_bytes;
        let mut message = self.message.clone();
        // What was kept of a reply over the cap is the cap's worth.
        message.content = within(&self.content, cap).to_string();
        message.reasoning = within(&self.reasoning, cap).to_string();
        message.reasoning_details = details_json(&self.facts.details);
        message.tool_calls = self.tool_calls_json();
        message.annotations = self.annotations_json();
        if !self.image_refs.is_empty() {
            message.attachments = Some(Value::Array(self.image_refs.clone()));
        }
        message.status = status;
        message.error_code = error_code.clone();
        message.error_message = error_message.clone();
        message.usage = usage.clone();
        message.finish_reason = self.facts.finish_reason.clone();
        message.generation_id = self.facts.generation_id.clone();
        message.model = self.facts.model.clone().or(message.model);
        message.provider = self.facts.provider.clone().or(message.provider);
        message.first_token_at = self.facts.first_token_at;
        message.finished_at = Some(now_ms());
        // A reply that only reasoned (stopped, failed) thought until it ended.
        message.reasoning_ended_at = self.facts.reasoning_ended_at.or((!message
            .reasoning
            .is_empty())
        .then_some(message.finished_at)
        .flatten());

        let view = MessageView::event_json(message.clone()).await;
        let finish = MessageFinish {
            chat_id: message.chat_id.clone(),
            message_id: message.id.clone(),
            owner: Some(self.engine.instance.clone()),
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
            first_token_at: message.first_token_at,
            reasoning_ended_at: message.reasoning_ended_at,
            events: vec![EventDraft::new("done", &message.id, view)],
            compact: COMPACTED_KINDS.iter().map(|k| k.to_string()).collect(),
            attachments: message.attachments.clone(),
            files: std::mem::take(&mut self.image_files),
        };
        self.record_spend(&message);
        // Before the final write, so whoever sees the reply finished sees the key verified.
        if finish.status == MessageStatus::Complete
            && self.plan.verifies_key
            && let Err(e) = self
                .engine
                .store
                .mark_workspace_verified(&self.plan.workspace)
                .await
        {
            tracing::warn!(error = %e, "could not mark a workspace's own key as verified");
        }
        // The final write matters most: retry a few times before giving up. If it never lands,
        // the reply stays `streaming` with the text already written, and this instance's sweeper
        // closes it as `interrupted` once it is no longer running here.
        let finish = Arc::new(finish);
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=6 {
            match self.engine.journal.finish(finish.clone()).await {
                Ok(Some(events)) => {
                    self.engine.hubs.stored(&message.chat_id, events);
                    break;
                }
                Ok(None) => break,
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
    }
}

impl Generation {
    /// Put the reply's tokens and cost in the spend ledger, when the server's key paid for it and
    /// the provider answered at all.
    fn record_spend(&self, message: &Message) {
        if !self.plan.paid_by_server || self.facts.said_nothing() {
            return;
        }
        let spend = switchboard_store::Spend {
            workspace: self.plan.workspace.clone(),
            entry: "chat".into(),
            model: message.model.clone(),
            provider: message.provider.clone(),
            prompt_tokens: message.usage.prompt_tokens,
            completion_tokens: message.usage.completion_tokens,
            reasoning_tokens: message.usage.reasoning_tokens,
            cached_tokens: message.usage.cached_tokens,
            cost: message.usage.cost,
            at: now_ms(),
        };
        // A reply that ended before the provider reported its cost (stopped, interrupted,
        // complete without usage) is still billed: OpenRouter's generation record says what it
        // cost. A failed reply is recorded with what it reported: its provider just failed.
        if message.usage.cost.is_none()
            && message.status != MessageStatus::Error
            && self.plan.provider == ProviderId::OpenRouter.as_str()
            && let Some(generation_id) = message.generation_id.clone()
        {
            let upstream = &self.plan.upstream;
            let authorization = Secret::new(format!("Bearer {}", upstream.key.expose()));
            if let Some(lookup) =
                GenerationLookup::beside(&upstream.url, upstream.http.clone(), authorization)
            {
                self.engine.ledger.reconcile(lookup, generation_id, spend);
                return;
            }
        }
        self.engine.ledger.record(spend);
    }
}

/// The longest prefix of `text` of at most `max` bytes, on a character boundary.
fn within(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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
    let resets = (status == 429)
        .then(|| rate_limit_reset(resp.headers(), now_ms()))
        .flatten();
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match tokio::time::timeout(idle, resp.chunk()).await {
            Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let provider_message = decode_json_body(&body).into_iter().find_map(|e| match e {
        StreamEvent::Error {
            message, metadata, ..
        } if !message.is_empty() => Some(explain(Some(status), &message, metadata.as_ref())),
        _ => None,
    });
    let mut message =
        provider_message.unwrap_or_else(|| format!("the provider answered HTTP {status}"));
    if let Some(at) = resets {
        message.push_str(&format!(" The limit resets at {}.", utc_time(at)));
    }
    Outcome::Failed {
        code: Some(status.to_string()),
        message,
    }
}

/// When a rate limit resets, in Unix milliseconds: OpenRouter's `X-RateLimit-Reset` (epoch
/// milliseconds; seconds are taken too), else `Retry-After` seconds from `now`.
fn rate_limit_reset(headers: &reqwest::header::HeaderMap, now: i64) -> Option<i64> {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|n| *n > 0)
    };
    match number("x-ratelimit-reset") {
        // Ten digits are seconds until 2286; milliseconds have thirteen.
        Some(n) if n < 100_000_000_000 => Some(n * 1000),
        Some(n) => Some(n),
        None => number("retry-after").map(|s| now + s.min(86_400 * 7) * 1000),
    }
}

/// `2026-01-01T00:00:00Z`: an RFC 3339 UTC time, which the page shows in the reader's own zone.
fn utc_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        switchboard_core::budget::date_of_day(days),
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

/// The provider's error as a person can act on it: OpenRouter's message, and what the provider
/// behind it said (`metadata.provider_name`, `metadata.raw`) — for a 429, who rate-limited the
/// request and what to do about it.
fn explain(status: Option<u16>, message: &str, metadata: Option<&Value>) -> String {
    let provider = metadata
        .and_then(|m| m.get("provider_name"))
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty());
    let raw = metadata
        .and_then(|m| m.get("raw"))
        .and_then(|raw| match raw {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Null | Value::String(_) => None,
            other => Some(other.to_string()),
        });
    // A provider's raw error can be a whole page: a sentence or two is what helps.
    let raw = raw.map(|r| {
        let clipped: String = r.chars().take(500).collect();
        if clipped.len() < r.len() {
            format!("{clipped}…")
        } else {
            clipped
        }
    });
    match (status, provider, raw) {
        (Some(429), Some(p), Some(raw)) => format!("Rate-limited upstream by {p}: {raw}"),
        (Some(429), Some(p), None) => {
            format!("Rate-limited upstream by {p}: retry shortly, or add your own key ({message})")
        }
        (_, Some(p), Some(raw)) => format!("{message} — {p}: {raw}"),
        (_, None, Some(raw)) => format!("{message}: {raw}"),
        (_, Some(p), None) => format!("{message} ({p})"),
        (_, None, None) => message.to_string(),
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

#[cfg(test)]
mod tests {
    use super::{explain, rate_limit_reset, utc_time, within};
    use serde_json::json;

    #[test]
    fn provider_errors_say_who_and_what() {
        let meta = json!({"provider_name": "Google", "raw": "quota exceeded, retry in 30 s"});
        assert_eq!(
            explain(Some(429), "Provider returned error", Some(&meta)),
            "Rate-limited upstream by Google: quota exceeded, retry in 30 s"
        );
        assert_eq!(
            explain(Some(502), "Provider returned error", Some(&meta)),
            "Provider returned error — Google: quota exceeded, retry in 30 s"
        );
        assert_eq!(
            explain(
                Some(503),
                "No instances",
                Some(&json!({"provider_name": "Mock"}))
            ),
            "No instances (Mock)"
        );
        assert_eq!(
            explain(Some(402), "Insufficient credits", None),
            "Insufficient credits"
        );
        let long = json!({"raw": "x".repeat(2000)});
        assert!(explain(Some(500), "Oops", Some(&long)).chars().count() < 520);
    }

    #[test]
    fn rate_limit_resets_are_read_from_the_headers() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-ratelimit-reset", "1767225600000".parse().unwrap());
        assert_eq!(rate_limit_reset(&headers, 0), Some(1_767_225_600_000));
        assert_eq!(utc_time(1_767_225_600_000), "2026-01-01T00:00:00Z");
        headers.insert("x-ratelimit-reset", "1767225600".parse().unwrap());
        assert_eq!(rate_limit_reset(&headers, 0), Some(1_767_225_600_000));
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("retry-after", "30".parse().unwrap());
        assert_eq!(rate_limit_reset(&headers, 1_000), Some(31_000));
        assert_eq!(
            rate_limit_reset(&reqwest::header::HeaderMap::new(), 0),
            None
        );
        assert_eq!(utc_time(1_762_179_802_000), "2025-11-03T14:23:22Z");
    }

    #[test]
    fn cutting_text_keeps_whole_characters() {
        assert_eq!(within("héllo", 2), "h");
        assert_eq!(within("héllo", 3), "hé");
        assert_eq!(within("hi", 10), "hi");
    }
}
