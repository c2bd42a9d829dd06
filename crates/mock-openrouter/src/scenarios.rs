//! What each model id answers, and how that answer looks on the wire.
//!
//! Tests pick a behaviour purely by model id (`mock/reasoning`, `mock/status-429`, …) so any client,
//! including a browser driving the real UI, can reach every wire shape without special headers.
//!
//! The flow is two steps. [`plan`] turns a request into a [`Plan`]: either an HTTP error before any
//! stream, or a [`Script`] — a list of typed [`Step`]s plus how the answer ends. A script is then
//! rendered either as SSE frames ([`Script::sse_frames`]) or as one `chat.completion` object
//! ([`Script::completion_json`]), so streamed and non-streamed answers always agree.
//!
//! SSE chunks are written by hand with `format!` rather than through `serde_json::Value`: the key
//! order then matches real traffic, and the default scenario stays cheap enough for benchmarks.

use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

use crate::catalog::provider_for;

/// One piece of the answer; a streamed answer sends one chunk per step.
#[derive(Debug, Clone)]
pub(crate) enum Step {
    Content(String),
    /// Reasoning text, sent in both `reasoning` and `reasoning_details` as OpenRouter does.
    Reasoning(String),
    /// The signature-only reasoning delta that closes an Anthropic thinking block.
    ReasoningSignature(&'static str),
    ToolCallStart {
        id: String,
        name: String,
    },
    ToolArguments(String),
    /// A `url_citation` list, as web search attaches it, or `file` annotations of parsed files.
    Annotations(Value),
    /// Generated images (`images` in the delta), as image-output models send them.
    Images(Value),
}

/// Where the usage object goes: the three shapes seen in real traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UsageShape {
    /// Its own chunk after the finish chunk, keeping a choice with `finish_reason: null` (2025).
    OwnChunkWithChoice,
    /// Its own chunk with `"choices": []` (2026, documented).
    OwnChunkNoChoices,
    /// Merged into the finish chunk.
    MergedIntoFinish,
}

/// How an answer ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    Finish {
        reason: &'static str,
        native: &'static str,
        usage: UsageShape,
    },
    /// The documented mid-stream error: a chunk with top-level `error` and `finish_reason: "error"`.
    MidstreamError,
    /// The real 2025 shape: `error` on the usage chunk, `finish_reason: null`.
    ErrorOnUsage,
}

/// Token counts and cost reported in `usage` and by `GET /api/v1/generation`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost: f64,
    pub prompt_cost: f64,
}

/// A complete answer, independent of whether it is streamed.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    pub model: String,
    pub provider: &'static str,
    pub steps: Vec<Step>,
    pub ending: Ending,
    pub usage: Usage,
    /// Time between two data chunks.
    pub spacing: Duration,
    /// Results the web plugin fetched (0 without it).
    pub search_results: u64,
}

/// What to do with a chat completion request.
#[derive(Debug)]
pub(crate) enum Plan {
    Answer(Script),
    /// Fail before any stream with this HTTP status, body and extra headers.
    Status(u16, Value, Vec<(&'static str, String)>),
}

/// What `mock/status-402` lets a request spend: a request whose `max_tokens` is at most this is
/// answered, as on the real service once the client asks for fewer tokens.
pub const AFFORDABLE_TOKENS: u64 = 3395;
/// What a request without `max_tokens` asks for, in the 402 message (the model's output limit).
const DEFAULT_REQUESTED_TOKENS: u64 = 65536;
/// A 1×1 PNG (one opaque pixel): what `mock/image` draws.
pub const MOCK_PNG_BASE64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

/// Every scenario model id except the open-ended `mock/status-<code>` family.
pub const SCENARIO_MODELS: &[&str] = &[
    "mock/echo",
    "mock/vision",
    "mock/reasoning",
    "mock/tools",
    "mock/use-tool",
    "mock/web",
    "mock/image",
    "mock/error-midstream",
    "mock/error-on-usage",
    "mock/slow",
    "mock/long",
    "mock/usage-2025",
    "mock/usage-2026",
    "mock/usage-merged",
];

const SIGNATURE: &str = "ErUBCkYIBxgCIkBmb2NrLXNpZ25hdHVyZS1ub3QtcmVhbC1vbmx5LWZvci10ZXN0cw==";
const REASONING_FORMAT: &str = "anthropic-claude-v1";
const SLOW_SPACING: Duration = Duration::from_millis(200);
const SLOW_DELTAS: usize = 150;
const LONG_DELTAS: usize = 2_000;

/// Decides what to answer. `model` is the model that serves (the first of `models` when given),
/// `request` the parsed body, `body_len` its size (for a plausible prompt token count), `id` the
/// generation id (tool call ids are derived from it).
pub(crate) fn plan(
    model: &str,
    request: &Value,
    body_len: usize,
    id: &str,
    default_spacing: Duration,
) -> Plan {
    if let Some(Ok(code @ 400..=599)) = model.strip_prefix("mock/status-").map(str::parse::<u16>) {
        let requested = requested_tokens(request);
        // Asking for no more than the credits buy is what the 402's message tells a client to do.
        if !(code == 402 && requested.is_some_and(|n| n <= AFFORDABLE_TOKENS)) {
            let (body, headers) = status_error(code, model, requested);
            return Plan::Status(code, body, headers);
        }
    }
    let stop = Ending::Finish {
        reason: "stop",
        native: "stop",
        usage: UsageShape::OwnChunkNoChoices,
    };
    let with_usage = |usage| Ending::Finish {
        reason: "stop",
        native: "stop",
        usage,
    };
    let mut spacing = default_spacing;
    let (steps, ending) = match model {
        "mock/echo" => {
            let (text, _) = last_user_message(request);
            (words(&text), stop)
        }
        "mock/vision" => {
            let (text, images) = last_user_message(request);
            let seen = format!("I see {images} image(s).");
            let answer = if text.trim().is_empty() {
                seen
            } else {
                format!("{text} {seen}")
            };
            (words(&answer), stop)
        }
        "mock/reasoning" => reasoning_steps(),
        "mock/tools" => tool_steps(id),
        "mock/use-tool" => use_tool_steps(request, id),
        "mock/web" => (web_steps(), stop),
        "mock/image" => {
            let mut steps = words("Here is your image.");
            steps.push(Step::Images(json!([{
                "type": "image_url",
                "image_url": {"url": format!("data:image/png;base64,{MOCK_PNG_BASE64}")},
            }])));
            (steps, stop)
        }
        "mock/status-402" => {
            let (text, _) = last_user_message(request);
            (words(&text), stop)
        }
        "mock/error-midstream" => (
            words("Here is a partial answer that"),
            Ending::MidstreamError,
        ),
        "mock/error-on-usage" => (words("Hello there, I was"), Ending::ErrorOnUsage),
        "mock/slow" => {
            spacing = SLOW_SPACING;
            let steps = (0..SLOW_DELTAS)
                .map(|i| Step::Content(format!("tick {i}. ")))
                .collect();
            (steps, stop)
        }
        "mock/long" => {
            let steps = (0..LONG_DELTAS)
                .map(|i| Step::Content(format!("word{i} ")))
                .collect();
            (steps, stop)
        }
        "mock/usage-2025" => (
            default_steps(model),
            with_usage(UsageShape::OwnChunkWithChoice),
        ),
        "mock/usage-2026" => (
            default_steps(model),
            with_usage(UsageShape::OwnChunkNoChoices),
        ),
        "mock/usage-merged" => (
            default_steps(model),
            with_usage(UsageShape::MergedIntoFinish),
        ),
        _ => {
            let native = if model.starts_with("anthropic/") {
                "end_turn"
            } else {
                "stop"
            };
            let ending = Ending::Finish {
                reason: "stop",
                native,
                usage: UsageShape::OwnChunkNoChoices,
            };
            (default_steps(model), ending)
        }
    };
    let mut steps = steps;
    // The web plugin (or a `:online` model) searches before any model answers: citations come
    // with the answer, whichever scenario wrote it.
    let web = web_plugin(request, model);
    if web.is_some() && !steps.iter().any(|s| matches!(s, Step::Annotations(_))) {
        steps.extend(
            web_steps()
                .into_iter()
                .filter(|s| matches!(s, Step::Annotations(_))),
        );
    }
    // Files not parsed before (no `file` annotation with their hash earlier in the conversation)
    // are parsed now, and their annotations come back for the client to send on later turns.
    let parsed = parse_new_files(request);
    if !parsed.is_empty() {
        steps.push(Step::Annotations(Value::Array(parsed)));
    }
    let mut usage = usage_for(model, &steps, body_len);
    if let Some(results) = web {
        // $4 per 1,000 results, as OpenRouter bills the web plugin.
        usage.cost = ((usage.cost * 1e6).round() + results as f64 * 4_000.0) / 1e6;
    }
    Plan::Answer(Script {
        model: model.to_owned(),
        provider: provider_for(model),
        steps,
        ending,
        usage,
        spacing,
        search_results: web.unwrap_or(0),
    })
}

/// `max_tokens` (or `max_completion_tokens`) as the request gives it.
fn requested_tokens(request: &Value) -> Option<u64> {
    request
        .get("max_tokens")
        .or_else(|| request.get("max_completion_tokens"))
        .and_then(Value::as_u64)
}

/// How many results the `web` plugin asks for, when it is on (`plugins` or a `:online` model).
fn web_plugin(request: &Value, model: &str) -> Option<u64> {
    let plugin = request
        .get("plugins")
        .and_then(Value::as_array)
        .and_then(|p| {
            p.iter()
                .find(|p| p.get("id").and_then(Value::as_str) == Some("web"))
        });
    match plugin {
        Some(p) if p.get("enabled").and_then(Value::as_bool) == Some(false) => None,
        Some(p) => Some(p.get("max_results").and_then(Value::as_u64).unwrap_or(5)),
        None => model.ends_with(":online").then_some(5),
    }
}

/// The hash OpenRouter names a parsed file by (hex SHA-256 of its data).
pub(crate) fn file_hash(data: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(data.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `file` parts of the user messages, as `(name, file_data)`.
pub(crate) fn file_parts(request: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in request
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for part in m
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if part.get("type").and_then(Value::as_str) != Some("file") {
                continue;
            }
            let file = &part["file"];
            let data = file["file_data"].as_str().unwrap_or_default().to_owned();
            let name = file["filename"].as_str().unwrap_or("file").to_owned();
            out.push((name, data));
        }
    }
    out
}

/// The hashes of files whose `file` annotations assistant messages carry back.
pub(crate) fn annotated_hashes(request: &Value) -> Vec<String> {
    request
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
        .flat_map(|m| {
            m.get("annotations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter(|a| a.get("type").and_then(Value::as_str) == Some("file"))
        .filter_map(|a| a["file"]["hash"].as_str().map(str::to_owned))
        .collect()
}

/// The annotations of the files this request makes the file parser read: those no earlier
/// annotation covers. A text file reads as its text; a PDF as a line naming it.
fn parse_new_files(request: &Value) -> Vec<Value> {
    let known = annotated_hashes(request);
    let mut out: Vec<Value> = Vec::new();
    for (name, data) in file_parts(request) {
        let hash = file_hash(&data);
        if known.contains(&hash) || out.iter().any(|a| a["file"]["hash"] == hash.as_str()) {
            continue;
        }
        let text = match data.split_once(";base64,") {
            Some((mime, b64)) if mime.starts_with("data:text/") => decode_base64(b64)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            _ => format!("# {name}"),
        };
        out.push(json!({
            "type": "file",
            "file": {
                "hash": hash,
                "name": name,
                "content": [
                    {"type": "text", "text": format!("<file name=\"{name}\">")},
                    {"type": "text", "text": text},
                    {"type": "text", "text": "</file>"},
                ],
            },
        }));
    }
    out
}

/// Standard base64 (with or without padding); `None` when it is not base64.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
    {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// The text of the last user message and how many image parts it had. Content may be a plain
/// string or an array of parts (`{"type":"text","text":…}`, `{"type":"image_url",…}`).
fn last_user_message(request: &Value) -> (String, usize) {
    let last_user = request
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|messages| {
            messages
                .iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        });
    let Some(content) = last_user.and_then(|m| m.get("content")) else {
        return (String::new(), 0);
    };
    match content {
        Value::String(text) => (text.clone(), 0),
        Value::Array(parts) => {
            let mut text = String::new();
            let mut images = 0;
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = part.get("text").and_then(Value::as_str) {
                            if !text.is_empty() {
                                text.push(' ');
                            }
                            text.push_str(t);
                        }
                    }
                    Some("image_url" | "input_image" | "image") => images += 1,
                    _ => {}
                }
            }
            (text, images)
        }
        _ => (String::new(), 0),
    }
}

/// Splits text into word-sized content deltas (each keeps its trailing space), so the deltas
/// concatenate back to exactly the text. Empty text still yields one (empty) delta.
fn words(text: &str) -> Vec<Step> {
    let steps: Vec<Step> = text
        .split_inclusive(' ')
        .map(|w| Step::Content(w.to_owned()))
        .collect();
    if steps.is_empty() {
        vec![Step::Content(String::new())]
    } else {
        steps
    }
}

fn default_steps(model: &str) -> Vec<Step> {
    words(&format!(
        "Hello from {model}. This is a mock answer, streamed in small pieces so that clients can test their parsers."
    ))
}

fn reasoning_steps() -> (Vec<Step>, Ending) {
    let mut steps: Vec<Step> = [
        "Let me",
        " think about",
        " what the user",
        " is asking.",
        " A short, friendly",
        " answer will do.",
    ]
    .into_iter()
    .map(|t| Step::Reasoning(t.to_owned()))
    .collect();
    steps.push(Step::ReasoningSignature(SIGNATURE));
    steps.extend(words("After thinking it over: the answer is 42."));
    let ending = Ending::Finish {
        reason: "stop",
        native: "end_turn",
        usage: UsageShape::OwnChunkNoChoices,
    };
    (steps, ending)
}

fn tool_steps(generation_id: &str) -> (Vec<Step>, Ending) {
    // "gen-<secs>-<20 alnum>" → "call_<20 alnum>", stable per generation.
    let suffix = generation_id.rsplit('-').next().unwrap_or("0");
    let steps = vec![
        Step::ToolCallStart {
            id: format!("call_{suffix}"),
            name: "get_weather".into(),
        },
        Step::ToolArguments("{\"city\":".into()),
        Step::ToolArguments("\"Paris\"".into()),
        Step::ToolArguments(",\"unit\":".into()),
        Step::ToolArguments("\"celsius\"}".into()),
    ];
    let ending = Ending::Finish {
        reason: "tool_calls",
        native: "tool_use",
        usage: UsageShape::OwnChunkNoChoices,
    };
    (steps, ending)
}

/// `mock/use-tool`: a user's `call NAME {json args}` becomes one call to `NAME` with those
/// arguments; a `tool` result becomes `Tool result: ` and its text. Anything else is explained.
fn use_tool_steps(request: &Value, generation_id: &str) -> (Vec<Step>, Ending) {
    let stop = Ending::Finish {
        reason: "stop",
        native: "stop",
        usage: UsageShape::OwnChunkNoChoices,
    };
    let last = request
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last());
    let role = last.and_then(|m| m.get("role")).and_then(Value::as_str);
    if role == Some("tool") {
        let text = last.map(content_text).unwrap_or_default();
        return (words(&format!("Tool result: {text}")), stop);
    }
    let (text, _) = last_user_message(request);
    let call = text
        .trim()
        .strip_prefix("call ")
        .map(|rest| match rest.trim().split_once(char::is_whitespace) {
            Some((name, args)) => (name.to_owned(), args.trim().to_owned()),
            None => (rest.trim().to_owned(), "{}".to_owned()),
        })
        .filter(|(name, args)| {
            !name.is_empty() && serde_json::from_str::<Value>(args).is_ok_and(|a| a.is_object())
        });
    let Some((name, arguments)) = call.filter(|_| role == Some("user")) else {
        return (
            words("Say `call NAME {json arguments}` to make me call a tool."),
            stop,
        );
    };
    let suffix = generation_id.rsplit('-').next().unwrap_or("0");
    // Arguments in two fragments, as providers stream them.
    let mid = (1..=arguments.len() / 2)
        .rev()
        .find(|i| arguments.is_char_boundary(*i))
        .unwrap_or(0);
    let mut steps = vec![Step::ToolCallStart {
        id: format!("call_{suffix}"),
        name,
    }];
    steps.push(Step::ToolArguments(arguments[..mid].to_owned()));
    steps.push(Step::ToolArguments(arguments[mid..].to_owned()));
    let ending = Ending::Finish {
        reason: "tool_calls",
        native: "tool_use",
        usage: UsageShape::OwnChunkNoChoices,
    };
    (steps, ending)
}

/// A message's text: a string, or its text parts joined.
fn content_text(message: &Value) -> String {
    match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn web_steps() -> Vec<Step> {
    let text = "Paris is the capital of France [1]. The Eiffel Tower was completed in 1889 [2].";
    let mut steps = words(text);
    let cite = |marker: &str, url: &str, title: &str, content: &str| {
        let start = text.find(marker).unwrap_or(0);
        json!({
            "type": "url_citation",
            "url_citation": {
                "url": url,
                "title": title,
                "content": content,
                "start_index": start,
                "end_index": start + marker.len(),
            }
        })
    };
    steps.push(Step::Annotations(json!([
        cite(
            "[1]",
            "https://en.wikipedia.org/wiki/Paris",
            "Paris - Wikipedia",
            "Paris is the capital and largest city of France."
        ),
        cite(
            "[2]",
            "https://www.toureiffel.paris/en/the-monument/history",
            "History of the Eiffel Tower",
            "The tower was completed in March 1889 for the World's Fair."
        ),
    ])));
    steps
}

/// Plausible token counts: about four characters per token, like English text.
fn usage_for(model: &str, steps: &[Step], body_len: usize) -> Usage {
    let mut completion_chars = 0;
    let mut reasoning_chars = 0;
    for step in steps {
        match step {
            Step::Content(t) => completion_chars += t.len(),
            Step::Reasoning(t) => reasoning_chars += t.len(),
            Step::ToolArguments(a) => completion_chars += a.len(),
            Step::ToolCallStart { name, .. } => completion_chars += name.len(),
            Step::ReasoningSignature(_) | Step::Annotations(_) | Step::Images(_) => {}
        }
    }
    let reasoning_tokens = reasoning_chars.div_ceil(4) as u64;
    let prompt_tokens = (body_len.div_ceil(4) as u64).max(1);
    let completion_tokens = (completion_chars.div_ceil(4) as u64).max(1) + reasoning_tokens;
    // Free models cost nothing; everything else $1 / $2 per million tokens, like the mock/*
    // entries. Summed in whole micro-dollars so the JSON shows 0.000072, not 7.199999e-5.
    let (prompt_micros, completion_micros) = if model.ends_with(":free") {
        (0, 0)
    } else {
        (prompt_tokens, 2 * completion_tokens)
    };
    Usage {
        prompt_tokens,
        completion_tokens,
        reasoning_tokens,
        cost: (prompt_micros + completion_micros) as f64 / 1e6,
        prompt_cost: prompt_micros as f64 / 1e6,
    }
}

/// One rendered SSE frame.
#[derive(Debug, Clone)]
pub(crate) enum Frame {
    /// A `: OPENROUTER PROCESSING` keep-alive comment.
    KeepAlive,
    /// A `data: {json}` chunk.
    Data(Bytes),
    /// `data: [DONE]`.
    Done,
    /// A piece of a recorded fixture, sent as is.
    Raw(Bytes),
}

pub(crate) const KEEP_ALIVE: &[u8] = b": OPENROUTER PROCESSING\n\n";
pub(crate) const DONE: &[u8] = b"data: [DONE]\n\n";
/// A keep-alive comment follows every this-many data chunks, as on the real service.
const KEEP_ALIVE_EVERY: usize = 8;

fn json_str(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

impl Usage {
    fn to_json(self) -> String {
        format!(
            concat!(
                r#"{{"prompt_tokens":{},"completion_tokens":{},"total_tokens":{},"cost":{},"is_byok":false,"#,
                r#""prompt_tokens_details":{{"cached_tokens":0,"audio_tokens":0}},"#,
                r#""cost_details":{{"upstream_inference_cost":null,"upstream_inference_prompt_cost":{},"upstream_inference_completions_cost":{}}},"#,
                r#""completion_tokens_details":{{"reasoning_tokens":{},"image_tokens":0}}}}"#
            ),
            self.prompt_tokens,
            self.completion_tokens,
            self.prompt_tokens + self.completion_tokens,
            Value::from(self.cost),
            Value::from(self.prompt_cost),
            Value::from(((self.cost - self.prompt_cost) * 1e6).round() / 1e6),
            self.reasoning_tokens,
        )
    }
}

impl Step {
    /// The `delta` object of this step's chunk.
    fn delta_json(&self) -> String {
        match self {
            Step::Content(text) => {
                format!(r#"{{"role":"assistant","content":{}}}"#, json_str(text))
            }
            Step::Reasoning(text) => {
                let text = json_str(text);
                format!(
                    r#"{{"role":"assistant","content":"","reasoning":{text},"reasoning_details":[{{"type":"reasoning.text","text":{text},"format":"{REASONING_FORMAT}","index":0}}]}}"#
                )
            }
            Step::ReasoningSignature(signature) => format!(
                r#"{{"role":"assistant","content":"","reasoning":null,"reasoning_details":[{{"type":"reasoning.text","signature":"{signature}","format":"{REASONING_FORMAT}","index":0}}]}}"#
            ),
            Step::ToolCallStart { id, name } => format!(
                r#"{{"role":"assistant","content":null,"tool_calls":[{{"index":0,"id":"{id}","type":"function","function":{{"name":{},"arguments":""}}}}]}}"#,
                json_str(name)
            ),
            Step::ToolArguments(fragment) => format!(
                r#"{{"role":"assistant","content":null,"tool_calls":[{{"index":0,"function":{{"arguments":{}}}}}]}}"#,
                json_str(fragment)
            ),
            Step::Annotations(annotations) => {
                format!(r#"{{"role":"assistant","content":"","annotations":{annotations}}}"#)
            }
            Step::Images(images) => {
                format!(r#"{{"role":"assistant","content":"","images":{images}}}"#)
            }
        }
    }
}

impl Script {
    /// How many images the answer carries.
    pub fn image_count(&self) -> u64 {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Images(i) => i.as_array().map_or(0, Vec::len) as u64,
                _ => 0,
            })
            .sum()
    }

    /// The frames of the streamed answer, keep-alives included, ending with `[DONE]`.
    pub fn sse_frames(&self, id: &str, created: u64) -> Vec<Frame> {
        let head = format!(
            r#"data: {{"id":"{id}","provider":"{}","model":{},"object":"chat.completion.chunk","created":{created}"#,
            self.provider,
            json_str(&self.model),
        );
        let chunk = |extra_before: &str, choices: &str, extra_after: &str| {
            let mut out = String::with_capacity(head.len() + choices.len() + 64);
            out.push_str(&head);
            out.push_str(extra_before);
            let _ = write!(out, r#","choices":[{choices}]"#);
            out.push_str(extra_after);
            out.push_str("}\n\n");
            Frame::Data(Bytes::from(out))
        };
        let choice = |delta: &str, finish: Option<(&str, &str)>| match finish {
            Some((reason, native)) => format!(
                r#"{{"index":0,"delta":{delta},"finish_reason":"{reason}","native_finish_reason":"{native}","logprobs":null}}"#
            ),
            None => format!(
                r#"{{"index":0,"delta":{delta},"finish_reason":null,"native_finish_reason":null,"logprobs":null}}"#
            ),
        };
        const EMPTY_DELTA: &str = r#"{"role":"assistant","content":""}"#;

        let mut data = Vec::with_capacity(self.steps.len() + 3);
        for step in &self.steps {
            data.push(chunk("", &choice(&step.delta_json(), None), ""));
        }
        let usage = format!(r#","usage":{}"#, self.usage.to_json());
        match self.ending {
            Ending::Finish {
                reason,
                native,
                usage: shape,
            } => {
                let finish = choice(EMPTY_DELTA, Some((reason, native)));
                match shape {
                    UsageShape::MergedIntoFinish => data.push(chunk("", &finish, &usage)),
                    UsageShape::OwnChunkWithChoice => {
                        data.push(chunk("", &finish, ""));
                        data.push(chunk("", &choice(EMPTY_DELTA, None), &usage));
                    }
                    UsageShape::OwnChunkNoChoices => {
                        data.push(chunk("", &finish, ""));
                        data.push(chunk("", "", &usage));
                    }
                }
            }
            Ending::MidstreamError => data.push(chunk(
                r#","error":{"code":429,"message":"Rate limit exceeded","metadata":{"error_type":"rate_limit_exceeded"}}"#,
                r#"{"index":0,"delta":{"content":""},"finish_reason":"error"}"#,
                "",
            )),
            Ending::ErrorOnUsage => data.push(chunk(
                r#","error":{"code":400,"message":"Token limit reached"}"#,
                &choice(EMPTY_DELTA, None),
                &usage,
            )),
        }

        let mut frames = Vec::with_capacity(data.len() + data.len() / KEEP_ALIVE_EVERY + 3);
        frames.push(Frame::KeepAlive);
        for (i, frame) in data.into_iter().enumerate() {
            if i > 0 && i % KEEP_ALIVE_EVERY == 0 {
                frames.push(Frame::KeepAlive);
            }
            frames.push(frame);
        }
        frames.push(Frame::Done);
        frames
    }

    /// The non-streamed answer: a `chat.completion` object, or for the two error endings the
    /// "200 OK with an error body" shape seen in real traffic.
    pub fn completion_json(&self, id: &str, created: u64) -> Value {
        let error = match self.ending {
            Ending::MidstreamError => Some(json!({
                "code": 429,
                "message": "Rate limit exceeded",
                "metadata": {"error_type": "rate_limit_exceeded", "provider_name": self.provider},
            })),
            Ending::ErrorOnUsage => Some(json!({"code": 400, "message": "Token limit reached"})),
            Ending::Finish { .. } => None,
        };
        if let Some(error) = error {
            return json!({
                "id": null, "choices": null, "created": created, "model": null, "object": null,
                "usage": null, "error": error, "user_id": "user_mock",
            });
        }

        let mut content = String::new();
        let mut reasoning: Option<String> = None;
        let mut signature = None;
        let mut tool_call: Option<(String, String, String)> = None;
        let mut annotations: Option<Vec<Value>> = None;
        let mut images: Option<Value> = None;
        for step in &self.steps {
            match step {
                Step::Content(text) => content.push_str(text),
                Step::Reasoning(text) => reasoning.get_or_insert_with(String::new).push_str(text),
                Step::ReasoningSignature(s) => signature = Some(*s),
                Step::ToolCallStart { id, name } => {
                    tool_call = Some((id.clone(), name.clone(), String::new()));
                }
                Step::ToolArguments(fragment) => {
                    if let Some((_, _, arguments)) = &mut tool_call {
                        arguments.push_str(fragment);
                    }
                }
                Step::Annotations(a) => annotations
                    .get_or_insert_with(Vec::new)
                    .extend(a.as_array().cloned().unwrap_or_default()),
                Step::Images(i) => images = Some(i.clone()),
            }
        }

        let mut message = json!({
            "role": "assistant",
            "content": if tool_call.is_some() && content.is_empty() { Value::Null } else { Value::from(content) },
            "refusal": null,
            "reasoning": reasoning,
        });
        if let Some(text) = &reasoning {
            message["reasoning_details"] = json!([{
                "type": "reasoning.text",
                "text": text,
                "signature": signature,
                "format": REASONING_FORMAT,
                "index": 0,
            }]);
        }
        if let Some((call_id, name, arguments)) = tool_call {
            message["tool_calls"] = json!([{
                "id": call_id,
                "index": 0,
                "type": "function",
                "function": {"name": name, "arguments": arguments},
            }]);
        }
        if let Some(annotations) = annotations {
            message["annotations"] = Value::Array(annotations);
        }
        if let Some(images) = images {
            message["images"] = images;
        }
        let (reason, native) = match self.ending {
            Ending::Finish { reason, native, .. } => (reason, native),
            _ => ("error", "error"),
        };
        let usage: Value = serde_json::from_str(&self.usage.to_json()).unwrap_or(Value::Null);
        json!({
            "id": id,
            "provider": self.provider,
            "model": self.model,
            "object": "chat.completion",
            "created": created,
            "system_fingerprint": null,
            "choices": [{
                "logprobs": null,
                "finish_reason": reason,
                "native_finish_reason": native,
                "index": 0,
                "message": message,
            }],
            "usage": usage,
        })
    }

    /// The finish reasons `GET /api/v1/generation` reports.
    pub fn finish_reasons(&self) -> (&'static str, &'static str) {
        match self.ending {
            Ending::Finish { reason, native, .. } => (reason, native),
            Ending::MidstreamError | Ending::ErrorOnUsage => ("error", "error"),
        }
    }
}

/// The body and extra headers of a `mock/status-<code>` error, with OpenRouter's texts where known.
pub(crate) fn status_error(
    code: u16,
    model: &str,
    requested: Option<u64>,
) -> (Value, Vec<(&'static str, String)>) {
    let mut headers: Vec<(&'static str, String)> = Vec::new();
    let error = match code {
        400 => {
            json!({"code": 400, "message": "Provider returned error", "metadata": {"raw": "{\"error\":{\"message\":\"Invalid request\"}}", "provider_name": "Mock"}})
        }
        401 => json!({"code": 401, "message": "User not found."}),
        402 => json!({
            "code": 402,
            "message": format!(
                "This request requires more credits, or fewer max_tokens. You requested up to {} tokens, but can only afford {AFFORDABLE_TOKENS}. To increase, visit https://openrouter.ai/settings/credits and upgrade to a paid account",
                requested.unwrap_or(DEFAULT_REQUESTED_TOKENS)
            ),
            "metadata": {"provider_name": null},
        }),
        403 => json!({
            "code": 403,
            "message": "mock/status-403 requires moderation on OpenRouter. Your input was flagged for \"harassment\". No credits were charged.",
            "metadata": {"reasons": ["harassment"], "flagged_input": "…", "provider_name": "Mock", "model_slug": "mock/status-403"},
        }),
        404 => json!({"code": 404, "message": "No endpoints found for mock/status-404."}),
        408 => json!({"code": 408, "message": "Request timed out"}),
        413 => json!({"code": 413, "message": "Request entity too large"}),
        429 => {
            // The window resets a minute from now, in epoch milliseconds as OpenRouter sends it.
            let reset = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or_default()
                + 60_000;
            headers.extend([
                ("retry-after", "1".to_owned()),
                ("x-ratelimit-limit", "20".to_owned()),
                ("x-ratelimit-remaining", "0".to_owned()),
                ("x-ratelimit-reset", reset.to_string()),
            ]);
            json!({
                "code": 429,
                "message": "Provider returned error",
                "metadata": {
                    "provider_name": "Google",
                    "raw": format!("{model} is temporarily rate-limited upstream. Please retry shortly, or add your own key to accumulate your rate limits: https://openrouter.ai/settings/integrations"),
                },
            })
        }
        500 => json!({"code": 500, "message": "Internal Server Error"}),
        502 => {
            json!({"code": 502, "message": "Provider returned error", "metadata": {"raw": "error code: 502", "provider_name": "Mock"}})
        }
        503 => {
            json!({"code": 503, "message": "No instances available", "metadata": {"provider_name": "Mock"}})
        }
        524 => {
            json!({"code": 524, "message": "Provider returned error", "metadata": {"raw": "error code: 524", "provider_name": "Mock"}})
        }
        529 => {
            json!({"code": 529, "message": "Provider returned error", "metadata": {"raw": "Overloaded", "provider_name": "Mock"}})
        }
        other => json!({"code": other, "message": format!("Mock error {other}")}),
    };
    (json!({"error": error, "user_id": "user_mock"}), headers)
}
