//! The stream decoder: SSE bytes or a JSON body from OpenRouter (or any OpenAI-compatible provider)
//! into typed events.
//!
//! This is the edge where wire formats stop: everything after it sees [`StreamEvent`]s, never raw
//! JSON. It is pure and sans-IO — bytes in, events out, no async, no clock — so the provider client,
//! the gateway and the tests drive it the same way.
//!
//! # Data flow
//!
//! ```text
//! bytes (any chunking) ──SseDecoder──▶ SseFrame (comment | event{data}) ──serde──▶ chunk structs
//!        ──Turn──▶ StreamEvent (Meta, Reasoning, ReasoningDetail, Content, ToolCall, Annotation,
//!                               Error, Finish, Usage, Malformed, Done)
//! ```
//!
//! 1. [`SseDecoder`] buffers bytes only up to the end of the current line, decodes each complete
//!    line as UTF-8 (so a character split across network chunks is fine), and turns lines into
//!    frames. Each byte is examined once, so decoding is linear in the body size; a line longer
//!    than the limit is dropped with an error rather than buffered forever.
//! 2. Each event's data is deserialized with serde straight into private, lenient structs (every
//!    field defaulted, text fields accepting null or content-part arrays), and the owned strings
//!    are moved into the events without copying.
//! 3. A small per-completion state sends `Meta`, `Finish` and `Error` once each and carries the
//!    `<think>` tag state across deltas.
//!
//! [`decode_json_body`] runs step 3 on a whole `chat.completion` (or error) body, so a streamed and
//! a non-streamed answer produce the same events; [`decode_body`] picks between the two by looking
//! at the body.
//!
//! # Why reasoning is deduplicated
//!
//! OpenRouter sends reasoning twice: as plain text in `delta.reasoning` and, for round-trips, as
//! structured `reasoning_details` items carrying the same text plus signatures or encrypted blobs.
//! Showing both would print every thought twice, and dropping the details would break the next
//! turn (Anthropic and OpenAI reject a continued conversation whose signed reasoning is missing).
//! So text comes from `reasoning` (or DeepSeek's `reasoning_content`), falling back to the details'
//! `text`/`summary` only when those are empty, while every detail item is also passed on verbatim
//! as [`StreamEvent::ReasoningDetail`] for [`merge_reasoning_details`]. Encrypted items are never
//! shown. Local models that write `<think>…</think>` into the content get the same treatment.
//!
//! # Errors and endings
//!
//! An error can come before the stream (a JSON error body) or in the middle of it, either as a
//! chunk with a top-level `error` and `finish_reason: "error"` or riding on the usage chunk; both
//! give one [`StreamEvent::Error`]. Undecodable input gives [`StreamEvent::Malformed`] and decoding
//! goes on. Every decode ends with exactly one [`StreamEvent::Done`]; whether `[DONE]` was really
//! sent is [`StreamDecoder::saw_done`].

mod assemble;
mod decoder;
mod event;
mod facts;
mod sse;
mod think;
mod wire;

pub use assemble::{ToolCall, ToolCallAssembler, merge_reasoning_details};
pub use decoder::{StreamDecoder, decode_body, decode_json_body};
pub use event::{Annotation, DecodeError, ErrorCode, StreamEvent, UrlCitation, Usage};
pub use facts::{AnswerFacts, answer_facts};
pub use sse::{
    DEFAULT_MAX_LINE_BYTES, SseDecoder, SseError, SseEvent, SseFrame, encode_data, encode_event,
};
