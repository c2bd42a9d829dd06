//! The decoder against real OpenRouter traffic: the VCR cassettes in `shared/openrouter/recorded`
//! (a sibling of the repository; the test is skipped where it is absent).
//!
//! For every interaction whose response is an SSE stream or a `chat.completion` JSON body, the
//! decoded content, reasoning, usage, errors, tool calls and annotations must equal what a
//! deliberately naive walk over the same JSON finds. The walk shares no code with the decoder, so
//! the two can only agree by both being right.

use std::path::Path;

use serde_json::Value;
use switchboard_core::stream::{
    ErrorCode, StreamDecoder, StreamEvent, ToolCallAssembler, Usage, decode_body,
};

const RECORDINGS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/openrouter/recorded"
);

/// What the naive walk expects of one response.
#[derive(Debug, Default)]
struct Expected {
    content: String,
    reasoning: String,
    usage: Option<Usage>,
    error: Option<(i64, String)>,
    tool_calls: Vec<(String, String, String)>,
    annotations: usize,
}

/// What the decoder produced, in the same terms.
fn actual(events: &[StreamEvent]) -> Expected {
    let mut got = Expected::default();
    let mut assembler = ToolCallAssembler::new();
    for event in events {
        assembler.push(event);
        match event {
            StreamEvent::Content(t) => got.content.push_str(t),
            StreamEvent::Reasoning(t) => got.reasoning.push_str(t),
            StreamEvent::Usage(u) => got.usage = Some(u.clone()),
            StreamEvent::Annotation(_) => got.annotations += 1,
            StreamEvent::Error { code, message, .. } => {
                assert!(got.error.is_none(), "the error is reported once");
                let ErrorCode::Int(code) = code else {
                    panic!("recorded codes are numbers: {code:?}")
                };
                got.error = Some((*code, message.clone()));
            }
            StreamEvent::Malformed(e) => panic!("real traffic decoded as malformed: {e}"),
            _ => {}
        }
    }
    got.tool_calls = assembler
        .finish()
        .into_iter()
        .map(|c| (c.id, c.name, c.arguments))
        .collect();
    got
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or("")
}

fn naive_usage(usage: &Value) -> Option<Usage> {
    usage.is_object().then(|| Usage {
        prompt_tokens: usage["prompt_tokens"].as_u64().unwrap_or(0),
        completion_tokens: usage["completion_tokens"].as_u64().unwrap_or(0),
        total_tokens: usage["total_tokens"].as_u64().unwrap_or(0),
        reasoning_tokens: usage["completion_tokens_details"]["reasoning_tokens"].as_u64(),
        cached_tokens: usage["prompt_tokens_details"]["cached_tokens"].as_u64(),
        cost: usage["cost"].as_f64(),
        is_byok: usage["is_byok"].as_bool().unwrap_or(false),
    })
}

fn naive_error(body: &Value) -> Option<(i64, String)> {
    let error = body.get("error").filter(|e| e.is_object())?;
    Some((
        error["code"].as_i64().expect("numeric code"),
        text(&error["message"]).to_owned(),
    ))
}

/// Reasoning text of a delta or message. The naive rule is "take `reasoning`"; but a response may
/// carry its text only in `reasoning_details` (reasoning null, e.g. a Gemini `reasoning.text`
/// item), which the naive rule cannot see. Then — and only then, since otherwise the details
/// repeat `reasoning` — the text/summary items are the reasoning.
fn naive_reasoning(message: &Value) -> String {
    let reasoning = text(&message["reasoning"]);
    if !reasoning.is_empty() {
        return reasoning.to_owned();
    }
    let details = message["reasoning_details"]
        .as_array()
        .into_iter()
        .flatten();
    details
        .map(|d| text(&d["text"]).to_owned() + text(&d["summary"]))
        .collect()
}

fn naive_stream(body: &str) -> Expected {
    let mut expected = Expected::default();
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(data).expect("recorded chunks are JSON");
        let delta = &chunk["choices"][0]["delta"];
        expected.content.push_str(text(&delta["content"]));
        expected.reasoning.push_str(&naive_reasoning(delta));
        if let Some(usage) = naive_usage(&chunk["usage"]) {
            expected.usage = Some(usage);
        }
        if expected.error.is_none() {
            expected.error = naive_error(&chunk);
        }
        expected.annotations += delta["annotations"].as_array().map_or(0, Vec::len);
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let index = call["index"].as_u64().unwrap() as usize;
            if calls.len() <= index {
                calls.resize(index + 1, Default::default());
            }
            let entry = &mut calls[index];
            entry.0.push_str(text(&call["id"]));
            entry.1.push_str(text(&call["function"]["name"]));
            entry.2.push_str(text(&call["function"]["arguments"]));
        }
    }
    expected.tool_calls = calls;
    expected
}

fn naive_json(body: &Value) -> Expected {
    let message = &body["choices"][0]["message"];
    Expected {
        content: text(&message["content"]).to_owned(),
        reasoning: naive_reasoning(message),
        usage: naive_usage(&body["usage"]),
        error: naive_error(body),
        tool_calls: message["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let f = &c["function"];
                let args = text(&f["arguments"]).to_owned();
                (text(&c["id"]).into(), text(&f["name"]).into(), args)
            })
            .collect(),
        annotations: message["annotations"].as_array().map_or(0, Vec::len),
    }
}

fn assert_same(what: &str, got: &Expected, expected: &Expected) {
    assert_eq!(got.content, expected.content, "{what}: content");
    assert_eq!(got.reasoning, expected.reasoning, "{what}: reasoning");
    assert_eq!(got.usage, expected.usage, "{what}: usage");
    assert_eq!(got.error, expected.error, "{what}: error");
    assert_eq!(got.tool_calls, expected.tool_calls, "{what}: tool calls");
    assert_eq!(got.annotations, expected.annotations, "{what}: annotations");
}

#[test]
fn recorded_openrouter_traffic_decodes_like_the_naive_walk_says() {
    let dir = Path::new(RECORDINGS);
    if !dir.is_dir() {
        eprintln!("skipping: no recordings at {}", dir.display());
        return;
    }
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let (mut streamed, mut json_bodies, mut other) = (0, 0, 0);
    for path in &files {
        let cassette: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        let interactions = cassette["interactions"].as_sequence().unwrap();
        for (n, interaction) in interactions.iter().enumerate() {
            let what = format!("{name}#{n}");
            let response = &interaction["response"];
            // The Responses API (`/v1/responses`) is another wire format, which this decoder does
            // not claim to read: it must not panic on it, and nothing more is asserted.
            let responses_api = interaction["request"]["uri"]
                .as_str()
                .is_some_and(|uri| uri.ends_with("/responses"));

            if let Some(body) = response["body"]["string"].as_str() {
                let events = decode_body(body.as_bytes());
                if responses_api {
                    other += 1;
                    continue;
                }
                // Real bodies cut into awkward pieces decode the same as in one piece.
                let mut decoder = StreamDecoder::new();
                let mut pieces: Vec<_> = body
                    .as_bytes()
                    .chunks(7)
                    .flat_map(|c| decoder.feed(c))
                    .collect();
                pieces.extend(decoder.finish());
                assert_eq!(pieces, events, "{what}: split decoding");
                assert_eq!(decoder.saw_done(), body.contains("data: [DONE]"), "{what}");
                assert!(
                    !body.contains("<think>"),
                    "{what}: think tags would need their own expectation"
                );
                assert_same(&what, &actual(&events), &naive_stream(body));
                streamed += 1;
            } else if !response["parsed_body"].is_null() {
                let body: Value = serde_json::to_value(&response["parsed_body"]).unwrap();
                let events = decode_body(body.to_string().as_bytes());
                let is_completion =
                    body["object"] == "chat.completion" || body.get("error").is_some();
                if responses_api || !is_completion {
                    other += 1;
                    continue;
                }
                assert_same(&what, &actual(&events), &naive_json(&body));
                json_bodies += 1;
            }
        }
    }
    eprintln!(
        "checked {streamed} streams and {json_bodies} JSON bodies; {other} others only decoded"
    );
    assert!(streamed >= 5, "only {streamed} streamed recordings checked");
    assert!(
        json_bodies >= 10,
        "only {json_bodies} JSON recordings checked"
    );
}
