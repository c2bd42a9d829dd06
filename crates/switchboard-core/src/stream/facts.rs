//! What the spend ledger needs from an answer: its usage, the generation's id, the model and the
//! provider. Read from a whole non-streamed body or from one streamed event, of a chat completion
//! (`chat.completion`, `chat.completion.chunk`) or of OpenRouter's Responses API
//! (`/api/v1/responses`: a response object, or an event wrapping one such as
//! `response.completed`). One targeted parse: everything else in the answer (its text, above all)
//! is skipped, never built into values.

use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::Usage;
use super::decoder::usage_of;
use super::wire::WireUsage;

/// What one answer body or event says about its generation.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct AnswerFacts {
    pub id: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub usage: Option<Usage>,
}

/// The fields read; the rest of the object is skipped by serde.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct WireFacts<'a> {
    id: Option<String>,
    model: Option<String>,
    provider: Option<String>,
    object: Option<String>,
    /// Kept as its text: its shape depends on the API, known only once the whole object is read,
    /// and then it is read once, into the right type.
    #[serde(borrow)]
    usage: Option<&'a RawValue>,
    /// A Responses API event wraps the response object.
    #[serde(borrow)]
    response: Option<Box<WireFacts<'a>>>,
}

/// The facts in `json`; `None` when it is not a JSON object of either API.
pub fn answer_facts(json: &[u8]) -> Option<AnswerFacts> {
    let json = json.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(json);
    let mut wire: WireFacts = serde_json::from_slice(json).ok()?;
    let response = match wire.response.take() {
        Some(inner) => Some(*inner),
        None if wire.object.as_deref() == Some("response") => Some(wire),
        None => {
            return Some(AnswerFacts {
                usage: wire
                    .usage
                    .filter(|u| is_object(u))
                    .and_then(|u| serde_json::from_str::<WireUsage>(u.get()).ok())
                    .map(usage_of),
                id: wire.id,
                model: wire.model,
                provider: wire.provider,
            });
        }
    };
    let response = response?;
    Some(AnswerFacts {
        usage: response
            .usage
            .filter(|u| is_object(u))
            .and_then(|u| serde_json::from_str::<Value>(u.get()).ok())
            .as_ref()
            .map(responses_usage),
        id: response.id,
        model: response.model,
        provider: None,
    })
}

/// Whether a raw JSON value is an object (`null`, a number or a string carry no usage).
fn is_object(raw: &RawValue) -> bool {
    raw.get().starts_with('{')
}

/// The Responses API names its counts `input_tokens` / `output_tokens`.
fn responses_usage(u: &Value) -> Usage {
    let n = |v: &Value| v.as_u64();
    let input = u.get("input_tokens").and_then(n).unwrap_or(0);
    let output = u.get("output_tokens").and_then(n).unwrap_or(0);
    Usage {
        prompt_tokens: input,
        completion_tokens: output,
        total_tokens: u.get("total_tokens").and_then(n).unwrap_or(input + output),
        reasoning_tokens: u
            .pointer("/output_tokens_details/reasoning_tokens")
            .and_then(n),
        cached_tokens: u.pointer("/input_tokens_details/cached_tokens").and_then(n),
        cost: u.get("cost").and_then(Value::as_f64),
        is_byok: u.get("is_byok").and_then(Value::as_bool).unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completed_event_gives_usage_and_cost() {
        let event = br#"{"type":"response.completed","response":{"object":"response","id":"gen-1","model":"openai/gpt-oss-20b","usage":{"input_tokens":78,"input_tokens_details":{"cached_tokens":3},"output_tokens":37,"output_tokens_details":{"reasoning_tokens":22},"total_tokens":115,"cost":0.0000113}},"sequence_number":39}"#;
        let facts = answer_facts(event).unwrap();
        assert_eq!(facts.id.as_deref(), Some("gen-1"));
        assert_eq!(facts.model.as_deref(), Some("openai/gpt-oss-20b"));
        let usage = facts.usage.unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (78, 37, 115)
        );
        assert_eq!(usage.reasoning_tokens, Some(22));
        assert_eq!(usage.cached_tokens, Some(3));
        assert_eq!(usage.cost, Some(0.0000113));
    }

    #[test]
    fn a_created_event_gives_the_id_and_no_usage_yet() {
        let event = br#"{"type":"response.created","response":{"object":"response","id":"gen-2","model":"m","usage":null}}"#;
        let facts = answer_facts(event).unwrap();
        assert_eq!(facts.id.as_deref(), Some("gen-2"));
        assert_eq!(facts.usage, None);
    }

    #[test]
    fn a_whole_response_object_is_read_and_other_shapes_are_not() {
        let body = br#"{"object":"response","id":"gen-3","model":"m","usage":{"input_tokens":1,"output_tokens":2,"cost":0.5}}"#;
        let facts = answer_facts(body).unwrap();
        assert_eq!(facts.usage.unwrap().cost, Some(0.5));
        assert_eq!(answer_facts(b"not json"), None);
        assert_eq!(answer_facts(b"[1]"), None);
    }

    #[test]
    fn a_chat_completion_gives_id_model_provider_and_usage_without_its_text() {
        let body = br#"{"id":"gen-4","object":"chat.completion","model":"openai/gpt-4o","provider":"OpenAI","choices":[{"index":0,"message":{"role":"assistant","content":[{"type":"text","text":"hi"}],"tool_calls":[{"id":"x","function":{"name":"f","arguments":{"a":1}}}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12,"cost":0.25,"is_byok":true,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}"#;
        let facts = answer_facts(body).unwrap();
        assert_eq!(facts.id.as_deref(), Some("gen-4"));
        assert_eq!(facts.model.as_deref(), Some("openai/gpt-4o"));
        assert_eq!(facts.provider.as_deref(), Some("OpenAI"));
        let usage = facts.usage.unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.total_tokens
            ),
            (5, 7, 12)
        );
        assert_eq!(
            (usage.cached_tokens, usage.reasoning_tokens),
            (Some(4), Some(2))
        );
        assert_eq!((usage.cost, usage.is_byok), (Some(0.25), true));
    }

    #[test]
    fn a_chunk_without_usage_gives_its_id_only() {
        let chunk = br#"{"id":"gen-5","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"content":"x"}}],"usage":null}"#;
        let facts = answer_facts(chunk).unwrap();
        assert_eq!(facts.id.as_deref(), Some("gen-5"));
        assert_eq!(facts.usage, None);
        let delta = answer_facts(br#"{"type":"response.output_text.delta","delta":"x"}"#).unwrap();
        assert_eq!(delta, AnswerFacts::default());
    }

    /// The meter used to decode a whole answer as the chat engine does; the targeted parse must
    /// agree with that decoder on every recorded OpenRouter answer and event.
    #[test]
    fn agrees_with_the_decoder_on_recorded_traffic() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/openrouter/recorded");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("skipped: {} is not here", dir.display());
            return;
        };
        let mut checked = 0;
        for entry in entries.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            for line in text.lines() {
                let line = line.trim().trim_start_matches("data:").trim();
                if !line.starts_with('{')
                    || line.contains("\"response\"")
                    || line.contains("\"object\":\"response\"")
                {
                    continue;
                }
                let Some(facts) = answer_facts(line.as_bytes()) else {
                    continue;
                };
                let mut expected = AnswerFacts::default();
                for event in crate::stream::decode_json_body(line.as_bytes()) {
                    match event {
                        crate::stream::StreamEvent::Usage(u) => expected.usage = Some(u),
                        crate::stream::StreamEvent::Meta {
                            id,
                            model,
                            provider,
                        } => {
                            expected.id = id;
                            expected.model = model;
                            expected.provider = provider;
                        }
                        _ => {}
                    }
                }
                if expected.id.is_none() && expected.model.is_none() {
                    // The decoder reports a provider only beside an id or a model.
                    expected.provider = facts.provider.clone();
                }
                assert_eq!(facts, expected, "{line}");
                checked += 1;
            }
        }
        assert!(
            checked > 0,
            "no recorded answer was checked in {}",
            dir.display()
        );
    }
}
