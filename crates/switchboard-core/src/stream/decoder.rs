//! Chunk JSON → events, for a stream ([`StreamDecoder`]) and for a whole body
//! ([`decode_json_body`], [`decode_body`]). Both go through the same [`Turn`], so a streamed and a
//! non-streamed completion produce the same events.

use serde::Deserialize as _;
use serde_json::Value;

use super::event::{Annotation, DecodeError, ErrorCode, StreamEvent, UrlCitation, Usage, excerpt};
use super::sse::{SseDecoder, SseError, SseFrame};
use super::think::ThinkSplitter;
use super::wire::{WireChunk, WireMessage, WireToolCall, WireUsage};

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Incremental decoder of an OpenAI-compatible SSE response into [`StreamEvent`]s.
///
/// Feed it the body bytes as they arrive, in chunks of any size, then call
/// [`finish`](StreamDecoder::finish) when the connection ends. It never panics and never stops on
/// bad input: an undecodable data line becomes a [`StreamEvent::Malformed`] and decoding goes on.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    sse: SseDecoder,
    turn: Turn,
    saw_done: bool,
    ended: bool,
}

impl StreamDecoder {
    /// A decoder with the default SSE line limit (16 MiB).
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder whose SSE lines and events may not exceed `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            sse: SseDecoder::with_limit(limit),
            ..Self::default()
        }
    }

    /// Feeds the next bytes of the body; returns the events they completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        let (sse, turn, saw_done, ended) = (
            &mut self.sse,
            &mut self.turn,
            &mut self.saw_done,
            &mut self.ended,
        );
        sse.feed_with(chunk, &mut |frame| {
            on_frame(frame, turn, saw_done, ended, &mut out)
        });
        out
    }

    /// The body ended: decodes a last event that lacked its blank line, and ends with
    /// [`StreamEvent::Done`] if `[DONE]` never came. Later calls return nothing.
    pub fn finish(&mut self) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        let (sse, turn, saw_done, ended) = (
            &mut self.sse,
            &mut self.turn,
            &mut self.saw_done,
            &mut self.ended,
        );
        sse.finish_with(&mut |frame| on_frame(frame, turn, saw_done, ended, &mut out));
        if !self.ended {
            self.turn.end(&mut out);
            out.push(StreamEvent::Done);
            self.ended = true;
        }
        out
    }

    /// Whether the stream really sent `data: [DONE]`. A stream cut short ends with
    /// [`StreamEvent::Done`] too (from [`finish`](StreamDecoder::finish)), so callers that must tell
    /// a complete answer from a truncated one ask here.
    pub fn saw_done(&self) -> bool {
        self.saw_done
    }
}

fn on_frame(
    frame: Result<SseFrame, SseError>,
    turn: &mut Turn,
    saw_done: &mut bool,
    ended: &mut bool,
    out: &mut Vec<StreamEvent>,
) {
    if *ended {
        // Nothing after `[DONE]` can belong to this completion.
        return;
    }
    let event = match frame {
        Err(error) => return out.push(StreamEvent::Malformed(error.into())),
        Ok(SseFrame::Comment(_)) => return,
        Ok(SseFrame::Event(event)) => event,
    };
    let data = event.data.trim();
    if data == "[DONE]" {
        turn.end(out);
        out.push(StreamEvent::Done);
        *saw_done = true;
        *ended = true;
        return;
    }
    if data.is_empty() {
        return;
    }
    match serde_json::from_str::<WireChunk>(data) {
        Ok(chunk) => turn.chunk(chunk, out),
        Err(error) => out.push(StreamEvent::Malformed(DecodeError::invalid_json(
            &error,
            data.as_bytes(),
        ))),
    }
}

/// Decodes a whole non-streamed body: a `chat.completion` object or an error body
/// (`{"error":{…}}`, including a 200 whose other fields are null). Ends with [`StreamEvent::Done`].
pub fn decode_json_body(body: &[u8]) -> Vec<StreamEvent> {
    let body = body.strip_prefix(BOM).unwrap_or(body);
    let mut out = Vec::new();
    let mut turn = Turn::default();
    match serde_json::from_slice::<WireChunk>(body) {
        Ok(chunk) => turn.chunk(chunk, &mut out),
        Err(error) => out.push(StreamEvent::Malformed(DecodeError::invalid_json(
            &error, body,
        ))),
    }
    turn.end(&mut out);
    out.push(StreamEvent::Done);
    out
}

/// Decodes a complete body whose kind is unknown: JSON if it starts with `{`, SSE if it starts
/// like an event stream (or is empty), otherwise a single [`StreamEvent::Malformed`] (say, an HTML
/// error page). Ends with [`StreamEvent::Done`].
pub fn decode_body(body: &[u8]) -> Vec<StreamEvent> {
    let unmarked = body.strip_prefix(BOM).unwrap_or(body);
    let start = unmarked.trim_ascii_start();
    if start.starts_with(b"{") {
        return decode_json_body(unmarked);
    }
    let looks_like_sse = start.is_empty()
        || [&b"data"[..], b":", b"event", b"id", b"retry"]
            .iter()
            .any(|field| start.starts_with(field));
    if !looks_like_sse {
        return vec![
            StreamEvent::Malformed(DecodeError::UnrecognizedBody {
                excerpt: excerpt(start),
            }),
            StreamEvent::Done,
        ];
    }
    let mut decoder = StreamDecoder::new();
    let mut events = decoder.feed(body);
    events.extend(decoder.finish());
    events
}

/// What one completion has reported so far, to send `Meta`, `Finish` and `Error` once and to
/// carry `<think>` state across deltas.
#[derive(Debug, Default)]
struct Turn {
    meta_sent: bool,
    finish_sent: bool,
    error_sent: bool,
    think: ThinkSplitter,
}

impl Turn {
    /// Events of one chunk (or one whole completion), in this order: meta, reasoning, content,
    /// tool calls, annotations, error, finish, usage.
    fn chunk(&mut self, chunk: WireChunk, out: &mut Vec<StreamEvent>) {
        if !self.meta_sent && (chunk.id.is_some() || chunk.model.is_some()) {
            self.meta_sent = true;
            out.push(StreamEvent::Meta {
                id: chunk.id,
                model: chunk.model,
                provider: chunk.provider,
            });
        }
        // OpenRouter returns one choice; with several we follow the first one (`index` 0).
        let choice = chunk
            .choices
            .into_iter()
            .flatten()
            .find(|choice| choice.index == 0);
        let mut finish = None;
        if let Some(choice) = choice {
            if let Some(message) = choice.delta.or(choice.message) {
                self.message(message, out);
            }
            finish = choice
                .finish_reason
                .map(|reason| (reason, choice.native_finish_reason));
        }
        if let Some(error) = chunk.error
            && !self.error_sent
        {
            self.error_sent = true;
            self.think.flush(out);
            out.push(error_event(error));
        }
        if let Some((reason, native_reason)) = finish
            && !self.finish_sent
        {
            self.finish_sent = true;
            self.think.flush(out);
            out.push(StreamEvent::Finish {
                reason,
                native_reason,
            });
        }
        if let Some(usage) = chunk.usage {
            out.push(StreamEvent::Usage(usage_of(usage)));
        }
    }

    fn message(&mut self, message: WireMessage, out: &mut Vec<StreamEvent>) {
        // OpenRouter puts the same text in `reasoning` and in `reasoning_details`, so the details
        // only supply text when `reasoning` (or DeepSeek's `reasoning_content`) has none;
        // otherwise the thinking would be shown twice.
        let reasoning = [message.reasoning, message.reasoning_content]
            .into_iter()
            .flatten()
            .find(|text| !text.is_empty());
        let mut text_covered = false;
        if let Some(text) = reasoning {
            text_covered = true;
            out.push(StreamEvent::Reasoning(text));
        }
        for detail in message.reasoning_details.into_iter().flatten() {
            if !text_covered
                && let Some(text) = detail_text(&detail).filter(|text| !text.is_empty())
            {
                out.push(StreamEvent::Reasoning(text.to_owned()));
            }
            out.push(StreamEvent::ReasoningDetail(detail));
        }
        if let Some(content) = message.content {
            self.think.push(content, out);
        }
        for (position, call) in message.tool_calls.into_iter().flatten().enumerate() {
            out.push(tool_call_event(call, position));
        }
        for annotation in message.annotations.into_iter().flatten() {
            out.push(StreamEvent::Annotation(annotation_of(annotation)));
        }
        for image in message.images.into_iter().flatten() {
            let url = image
                .get("image_url")
                .and_then(|u| u.get("url").or(Some(u)))
                .and_then(Value::as_str);
            if let Some(url) = url.filter(|u| !u.is_empty()) {
                out.push(StreamEvent::Image(url.to_owned()));
            }
        }
    }

    /// The completion is over: release held-back `<think>` text.
    fn end(&mut self, out: &mut Vec<StreamEvent>) {
        self.think.flush(out);
    }
}

/// The displayable text of a `reasoning_details` item; encrypted items have none.
fn detail_text(detail: &Value) -> Option<&str> {
    let field = match detail.get("type")?.as_str()? {
        "reasoning.text" => "text",
        "reasoning.summary" => "summary",
        _ => return None,
    };
    detail.get(field)?.as_str()
}

fn tool_call_event(call: WireToolCall, position: usize) -> StreamEvent {
    let (name, arguments) = match call.function {
        Some(function) => (function.name, function.arguments),
        None => (None, None),
    };
    let arguments_delta = match arguments {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text,
        Some(other) => other.to_string(),
    };
    StreamEvent::ToolCall {
        index: call
            .index
            .unwrap_or_else(|| u32::try_from(position).unwrap_or(u32::MAX)),
        id: call.id,
        name,
        arguments_delta,
    }
}

fn annotation_of(annotation: Value) -> Annotation {
    let is_citation = annotation.get("type").and_then(Value::as_str) == Some("url_citation");
    if is_citation
        && let Some(citation) = annotation.get("url_citation")
        && let Ok(citation) = UrlCitation::deserialize(citation)
    {
        return Annotation::UrlCitation(citation);
    }
    Annotation::Other(annotation)
}

fn error_event(error: Value) -> StreamEvent {
    let (code, message, metadata) = match error {
        Value::Object(mut fields) => {
            let code = match fields.remove("code") {
                Some(Value::Number(n)) => n
                    .as_i64()
                    .map_or_else(|| ErrorCode::Text(n.to_string()), ErrorCode::Int),
                Some(Value::String(s)) => ErrorCode::Text(s),
                _ => ErrorCode::Missing,
            };
            let message = match fields.remove("message") {
                Some(Value::String(s)) => s,
                _ => String::new(),
            };
            let metadata = fields.remove("metadata").filter(|m| !m.is_null());
            (code, message, metadata)
        }
        // Some providers send the error as a bare string.
        Value::String(message) => (ErrorCode::Missing, message, None),
        other => (ErrorCode::Missing, other.to_string(), None),
    };
    StreamEvent::Error {
        code,
        message,
        metadata,
    }
}

pub(super) fn usage_of(usage: WireUsage) -> Usage {
    Usage {
        prompt_tokens: usage.prompt_tokens.unwrap_or(0),
        completion_tokens: usage.completion_tokens.unwrap_or(0),
        total_tokens: usage.total_tokens.unwrap_or(0),
        reasoning_tokens: usage
            .completion_tokens_details
            .and_then(|details| details.reasoning_tokens),
        cached_tokens: usage
            .prompt_tokens_details
            .and_then(|details| details.cached_tokens),
        cost: usage.cost,
        is_byok: usage.is_byok.unwrap_or(false),
    }
}
