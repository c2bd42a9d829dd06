//! What the spend ledger needs from OpenRouter's Responses API (`/api/v1/responses`): its usage,
//! the generation's id and the model, from a whole response object or from the streamed event
//! that carries one (`response.created`, `response.completed`, …). Everything else is relayed
//! untouched and never parsed.

use serde_json::Value;

use super::Usage;

/// What one Responses API body or event says about its generation.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ResponsesFacts {
    pub id: Option<String>,
    pub model: Option<String>,
    pub usage: Option<Usage>,
}

/// The facts in `json`, a response object or a streamed event wrapping one; `None` when it is
/// neither.
pub fn responses_facts(json: &[u8]) -> Option<ResponsesFacts> {
    let value: Value = serde_json::from_slice(json).ok()?;
    let response = match value.get("response") {
        Some(inner) if inner.is_object() => inner,
        _ if value.get("object").and_then(Value::as_str) == Some("response") => &value,
        _ => return None,
    };
    let text = |key: &str| response.get(key).and_then(Value::as_str).map(str::to_owned);
    let usage = response.get("usage").filter(|u| u.is_object()).map(|u| {
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
    });
    Some(ResponsesFacts {
        id: text("id"),
        model: text("model"),
        usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completed_event_gives_usage_and_cost() {
        let event = br#"{"type":"response.completed","response":{"object":"response","id":"gen-1","model":"openai/gpt-oss-20b","usage":{"input_tokens":78,"input_tokens_details":{"cached_tokens":3},"output_tokens":37,"output_tokens_details":{"reasoning_tokens":22},"total_tokens":115,"cost":0.0000113}},"sequence_number":39}"#;
        let facts = responses_facts(event).unwrap();
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
        let facts = responses_facts(event).unwrap();
        assert_eq!(facts.id.as_deref(), Some("gen-2"));
        assert_eq!(facts.usage, None);
    }

    #[test]
    fn a_whole_response_object_is_read_and_other_shapes_are_not() {
        let body = br#"{"object":"response","id":"gen-3","model":"m","usage":{"input_tokens":1,"output_tokens":2,"cost":0.5}}"#;
        let facts = responses_facts(body).unwrap();
        assert_eq!(facts.usage.unwrap().cost, Some(0.5));
        assert_eq!(
            responses_facts(br#"{"type":"response.output_text.delta","delta":"x"}"#),
            None
        );
        assert_eq!(
            responses_facts(br#"{"object":"chat.completion","id":"c"}"#),
            None
        );
        assert_eq!(responses_facts(b"not json"), None);
    }
}
