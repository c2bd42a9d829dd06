//! The typed events the rest of the program sees, and the values they carry.

use serde::Deserialize;
use serde_json::Value;
use thiserror::Error;

use super::sse::SseError;

/// One thing that happened in a completion, in wire order.
///
/// Text arrives as deltas: concatenate the `Reasoning` deltas for the thinking and the `Content`
/// deltas for the answer.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// Which generation this is; sent once, from the first chunk that names an id or a model.
    Meta {
        /// The generation id (`gen-…`), for `GET /v1/generation`.
        id: Option<String>,
        /// The model that actually served the request (may differ from the one asked for).
        model: Option<String>,
        /// The upstream provider OpenRouter routed to.
        provider: Option<String>,
    },
    /// Displayable reasoning text (a delta). Each piece of text is reported once, whichever of
    /// `reasoning`, `reasoning_content`, `reasoning_details` or `<think>` tags carried it.
    Reasoning(String),
    /// One raw `reasoning_details` item, verbatim (including encrypted and signature-only items),
    /// to be sent back on the next turn; see [`merge_reasoning_details`](super::merge_reasoning_details).
    ReasoningDetail(Value),
    /// Answer text (a delta).
    Content(String),
    /// A tool-call fragment; assemble them with [`ToolCallAssembler`](super::ToolCallAssembler).
    ToolCall {
        /// Which tool call of the message this fragment belongs to.
        index: u32,
        /// The call id, usually only on the first fragment.
        id: Option<String>,
        /// The function name, usually only on the first fragment.
        name: Option<String>,
        /// The next piece of the JSON arguments text.
        arguments_delta: String,
    },
    /// A citation or other annotation attached to the answer.
    Annotation(Annotation),
    /// An image the model generated: its URL, normally a `data:image/…;base64,` URL.
    Image(String),
    /// Token counts and cost. If a stream reports usage more than once, the last one is final.
    Usage(Usage),
    /// Why the model stopped; reported once, the first time a chunk says so.
    Finish {
        /// Normalized: `stop`, `length`, `tool_calls`, `content_filter` or `error`.
        reason: String,
        /// The provider's own reason (`end_turn`, `STOP`, `completed`, …).
        native_reason: Option<String>,
    },
    /// An error reported by the upstream, before or in the middle of a stream. Reported once per
    /// stream, however many chunks repeat it.
    Error {
        /// The error code: usually an HTTP status, sometimes a string.
        code: ErrorCode,
        /// The human-readable message.
        message: String,
        /// Provider details (`provider_name`, `raw`, moderation `reasons`, …), verbatim.
        metadata: Option<Value>,
    },
    /// Bytes we could not decode (a data line that is not JSON, an over-long line). The decoder
    /// skipped them and went on; this is reported so it can be logged, not shown.
    Malformed(DecodeError),
    /// The end of the completion: `[DONE]`, the end of a JSON body, or the end of a stream that
    /// stopped without `[DONE]` (see [`StreamDecoder::saw_done`](super::StreamDecoder::saw_done)).
    Done,
}

/// Token counts and cost of one generation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Usage {
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Output tokens, reasoning included.
    pub completion_tokens: u64,
    /// Input plus output.
    pub total_tokens: u64,
    /// Output tokens spent on reasoning, when reported.
    pub reasoning_tokens: Option<u64>,
    /// Input tokens read from the provider's prompt cache, when reported.
    pub cached_tokens: Option<u64>,
    /// What OpenRouter charged, in USD, when reported.
    pub cost: Option<f64>,
    /// Whether the request ran on the user's own provider key.
    pub is_byok: bool,
}

/// An error code as sent: OpenRouter uses HTTP statuses, some providers strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    /// A numeric code, normally an HTTP status.
    Int(i64),
    /// A textual code such as `"rate_limit_exceeded"` (or a number sent as a string).
    Text(String),
    /// No code was sent.
    Missing,
}

impl ErrorCode {
    /// The HTTP status this code stands for, if it is one (100–599, as a number or a numeric string).
    pub fn as_http_status(&self) -> Option<u16> {
        let n = match self {
            ErrorCode::Int(n) => *n,
            ErrorCode::Text(s) => s.trim().parse().ok()?,
            ErrorCode::Missing => return None,
        };
        u16::try_from(n).ok().filter(|s| (100..=599).contains(s))
    }
}

/// An annotation on the answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Annotation {
    /// A web-search citation (`type: url_citation`).
    UrlCitation(UrlCitation),
    /// Any other annotation (e.g. `type: file`), verbatim.
    Other(Value),
}

/// A web page the answer cites.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(default)]
pub struct UrlCitation {
    /// The page address.
    pub url: String,
    /// The page title, if sent.
    pub title: Option<String>,
    /// An excerpt of the page, if sent.
    pub content: Option<String>,
    /// Start of the cited span in the answer text, if sent.
    pub start_index: Option<u64>,
    /// End of the cited span in the answer text, if sent.
    pub end_index: Option<u64>,
}

/// Why some bytes could not be decoded. Never fatal: the decoder reports it and goes on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The SSE framing failed (an over-long line or event).
    #[error(transparent)]
    Sse(#[from] SseError),
    /// A data line or body was not the JSON we expect.
    #[error("invalid JSON ({reason}) in {excerpt:?}")]
    InvalidJson {
        /// What serde_json said.
        reason: String,
        /// The first bytes of the offending data, for the log.
        excerpt: String,
    },
    /// A whole body that is neither JSON nor SSE (e.g. an HTML error page).
    #[error("body is neither JSON nor SSE: {excerpt:?}")]
    UnrecognizedBody {
        /// The first bytes of the body, for the log.
        excerpt: String,
    },
}

impl DecodeError {
    pub(crate) fn invalid_json(error: &serde_json::Error, data: &[u8]) -> Self {
        DecodeError::InvalidJson {
            reason: error.to_string(),
            excerpt: excerpt(data),
        }
    }
}

/// The first 200 bytes (or so, on a character boundary) of `data`, lossily as text.
pub(crate) fn excerpt(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(&data[..data.len().min(200)]);
    text.trim_end_matches('\u{FFFD}').to_owned()
}
