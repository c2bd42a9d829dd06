//! Every scenario model, checked on the wire: the SSE framing, the chunk shapes and the three
//! usage placements, the reasoning / tool-call / citation deltas, both mid-stream error shapes, the
//! pre-stream status errors, and the non-streamed answers.

mod common;

use std::time::Duration;

use common::{Event, chat, chat_body, chunks, content, start, stream_events};
use mock_openrouter::{MockConfig, MockOpenRouter};
use serde_json::{Value, json};

fn assert_usage_shape(usage: &Value) {
    let prompt = usage["prompt_tokens"].as_u64().expect("prompt_tokens");
    let completion = usage["completion_tokens"]
        .as_u64()
        .expect("completion_tokens");
    assert_eq!(usage["total_tokens"].as_u64(), Some(prompt + completion));
    assert!(usage["cost"].is_number(), "{usage}");
    assert_eq!(usage["is_byok"], false);
    assert!(usage["prompt_tokens_details"]["cached_tokens"].is_u64());
    assert!(usage["completion_tokens_details"]["reasoning_tokens"].is_u64());
}

/// The chunks carrying `usage`.
fn usage_chunks(chunks: &[Value]) -> Vec<&Value> {
    chunks.iter().filter(|c| c.get("usage").is_some()).collect()
}

#[tokio::test]
async fn default_model_streams_openrouter_shaped_chunks() {
    let mock = start().await;
    let response = chat(&mock, "qwen/qwen3-32b:free", true).await;
    let generation_id = response.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let (prefix, suffix) = generation_id.rsplit_once('-').unwrap();
    assert!(prefix.strip_prefix("gen-").unwrap().parse::<u64>().is_ok());
    assert_eq!(suffix.len(), 20);
    assert!(suffix.chars().all(|c| c.is_ascii_alphanumeric()));

    let events = common::parse_sse(&response.text().await.unwrap());
    let chunks = chunks(&events);
    assert!(chunks.len() >= 12, "a dozen or so deltas");
    for chunk in &chunks {
        assert_eq!(chunk["id"], generation_id.as_str());
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["model"], "qwen/qwen3-32b:free");
        assert_eq!(chunk["provider"], "Alibaba");
        assert!(chunk["created"].is_u64());
        for choice in chunk["choices"].as_array().unwrap() {
            assert_eq!(choice["index"], 0);
            assert_eq!(choice["delta"]["role"], "assistant", "role repeated");
            assert!(choice["logprobs"].is_null());
            assert!(choice.get("native_finish_reason").is_some());
        }
    }
    assert!(content(&chunks).starts_with("Hello from qwen/qwen3-32b:free."));

    // Keep-alives also come between data lines, not only before the first.
    let first_data = events
        .iter()
        .position(|e| matches!(e, Event::Data(_)))
        .unwrap();
    assert!(
        events[first_data..]
            .iter()
            .any(|e| matches!(e, Event::Comment(_)))
    );

    // Default usage placement is the 2026 one.
    let usage = usage_chunks(&chunks);
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["choices"], json!([]));
}

#[tokio::test]
async fn usage_2025_comes_in_its_own_chunk_with_a_null_finish_choice() {
    let mock = start().await;
    let chunks = chunks(&stream_events(&mock, "mock/usage-2025").await);
    let [.., finish, last] = chunks.as_slice() else {
        panic!("too few chunks")
    };
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert!(finish.get("usage").is_none());
    assert_eq!(last["choices"].as_array().unwrap().len(), 1);
    assert!(last["choices"][0]["finish_reason"].is_null());
    assert_usage_shape(&last["usage"]);
    assert_eq!(usage_chunks(&chunks).len(), 1);
}

#[tokio::test]
async fn usage_2026_comes_in_its_own_chunk_without_choices() {
    let mock = start().await;
    let chunks = chunks(&stream_events(&mock, "mock/usage-2026").await);
    let [.., finish, last] = chunks.as_slice() else {
        panic!("too few chunks")
    };
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["choices"][0]["native_finish_reason"], "stop");
    assert_eq!(last["choices"], json!([]));
    assert_usage_shape(&last["usage"]);
    assert_eq!(usage_chunks(&chunks).len(), 1);
}

#[tokio::test]
async fn usage_merged_rides_on_the_finish_chunk() {
    let mock = start().await;
    let chunks = chunks(&stream_events(&mock, "mock/usage-merged").await);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert_usage_shape(&last["usage"]);
    assert_eq!(usage_chunks(&chunks).len(), 1);
}

#[tokio::test]
async fn echo_answers_the_last_user_message() {
    let mock = start().await;
    for stream in [true, false] {
        let body = json!({
            "model": "mock/echo",
            "stream": stream,
            "messages": [
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": "an answer"},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                    {"type": "text", "text": "in this picture?"},
                ]},
            ],
        });
        let response = chat_body(&mock, body).await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        let answer = if stream {
            content(&chunks(&common::parse_sse(&text)))
        } else {
            let completion: Value = serde_json::from_str(&text).unwrap();
            completion["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(answer, "What is in this picture?");
    }
    let plain = chat(&mock, "mock/echo", true).await.text().await.unwrap();
    assert_eq!(content(&chunks(&common::parse_sse(&plain))), "Hello there");
}

#[tokio::test]
async fn vision_counts_the_images() {
    let mock = start().await;
    let image = json!({"type": "image_url", "image_url": {"url": "https://example.com/a.png"}});
    let body = json!({
        "model": "mock/vision",
        "stream": true,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Compare these."}, image, image]}],
    });
    let text = chat_body(&mock, body).await.text().await.unwrap();
    assert_eq!(
        content(&chunks(&common::parse_sse(&text))),
        "Compare these. I see 2 image(s)."
    );
}

#[tokio::test]
async fn reasoning_streams_both_fields_then_a_signature_then_content() {
    let mock = start().await;
    let chunks = chunks(&stream_events(&mock, "mock/reasoning").await);
    let reasoning: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["delta"])
        .filter(|d| d.get("reasoning_details").is_some())
        .collect();
    let (signature, texts) = reasoning.split_last().unwrap();
    assert!(texts.len() >= 3, "several reasoning deltas");
    for delta in texts {
        let detail = &delta["reasoning_details"][0];
        assert_eq!(detail["type"], "reasoning.text");
        assert_eq!(detail["format"], "anthropic-claude-v1");
        assert_eq!(detail["index"], 0);
        assert_eq!(
            delta["reasoning"], detail["text"],
            "same text in both fields"
        );
        assert_eq!(delta["content"], "");
    }
    assert!(signature["reasoning"].is_null());
    let detail = &signature["reasoning_details"][0];
    assert!(detail["signature"].as_str().is_some_and(|s| s.len() > 16));
    assert!(detail.get("text").is_none());

    // Content only after the reasoning.
    let last_reasoning = chunks
        .iter()
        .rposition(|c| c["choices"][0]["delta"].get("reasoning_details").is_some())
        .unwrap();
    let first_content = chunks
        .iter()
        .position(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .unwrap();
    assert!(first_content > last_reasoning);
    let finish = chunks
        .iter()
        .find(|c| c["choices"][0]["finish_reason"].is_string())
        .unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish["choices"][0]["native_finish_reason"], "end_turn");
    let usage = &usage_chunks(&chunks)[0]["usage"];
    assert!(
        usage["completion_tokens_details"]["reasoning_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn reasoning_non_stream_has_reasoning_and_details() {
    let mock = start().await;
    let completion: Value = chat(&mock, "mock/reasoning", false)
        .await
        .json()
        .await
        .unwrap();
    let message = &completion["choices"][0]["message"];
    let reasoning = message["reasoning"].as_str().unwrap();
    assert!(reasoning.starts_with("Let me"));
    assert_eq!(message["reasoning_details"][0]["text"], reasoning);
    assert!(message["reasoning_details"][0]["signature"].is_string());
    assert!(message["content"].as_str().unwrap().contains("42"));
    assert_eq!(completion["choices"][0]["native_finish_reason"], "end_turn");
    assert!(
        completion["usage"]["completion_tokens_details"]["reasoning_tokens"].as_u64() > Some(0)
    );
}

#[tokio::test]
async fn tools_stream_a_call_in_fragments() {
    let mock = start().await;
    let chunks = chunks(&stream_events(&mock, "mock/tools").await);
    let deltas: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["delta"])
        .filter(|d| d.get("tool_calls").is_some())
        .collect();
    assert!(deltas.len() >= 3);
    let first = &deltas[0]["tool_calls"][0];
    assert!(first["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(first["type"], "function");
    assert_eq!(first["function"]["name"], "get_weather");
    assert_eq!(first["function"]["arguments"], "");
    let mut arguments = String::new();
    for delta in &deltas {
        assert!(delta["content"].is_null(), "content is null on tool deltas");
        assert_eq!(delta["tool_calls"][0]["index"], 0);
        arguments.push_str(
            delta["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap(),
        );
    }
    let arguments: Value = serde_json::from_str(&arguments).expect("fragments join into JSON");
    assert_eq!(arguments, json!({"city": "Paris", "unit": "celsius"}));
    let finish = chunks
        .iter()
        .find(|c| c["choices"][0]["finish_reason"].is_string())
        .unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(finish["choices"][0]["native_finish_reason"], "tool_use");
}

#[tokio::test]
async fn tools_non_stream_returns_the_whole_call() {
    let mock = start().await;
    let completion: Value = chat(&mock, "mock/tools", false).await.json().await.unwrap();
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments["city"], "Paris");
}

#[tokio::test]
async fn web_sends_url_citations() {
    let mock = start().await;
    let chunks = chunks(&stream_events(&mock, "mock/web").await);
    let annotations = chunks
        .iter()
        .find_map(|c| c["choices"][0]["delta"].get("annotations"))
        .expect("an annotations delta")
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(annotations.len(), 2);
    let text = content(&chunks);
    for annotation in &annotations {
        assert_eq!(annotation["type"], "url_citation");
        let citation = &annotation["url_citation"];
        assert!(citation["url"].as_str().unwrap().starts_with("https://"));
        assert!(citation["title"].is_string());
        assert!(citation["content"].is_string());
        let start = citation["start_index"].as_u64().unwrap() as usize;
        let end = citation["end_index"].as_u64().unwrap() as usize;
        assert!(
            text[start..end].starts_with('['),
            "indices point into the text"
        );
    }
    let completion: Value = chat(&mock, "mock/web", false).await.json().await.unwrap();
    assert_eq!(
        completion["choices"][0]["message"]["annotations"],
        json!(annotations)
    );
}

#[tokio::test]
async fn error_midstream_uses_the_documented_shape() {
    let mock = start().await;
    let chunks = chunks(&stream_events(&mock, "mock/error-midstream").await);
    assert!(
        !content(&chunks).is_empty(),
        "some content before the error"
    );
    let last = chunks.last().unwrap();
    assert_eq!(last["error"]["code"], 429);
    assert_eq!(last["error"]["message"], "Rate limit exceeded");
    assert_eq!(
        last["error"]["metadata"]["error_type"],
        "rate_limit_exceeded"
    );
    assert_eq!(last["choices"][0]["finish_reason"], "error");
    assert_eq!(last["choices"][0]["delta"]["content"], "");
    assert_eq!(
        chunks.iter().filter(|c| c.get("error").is_some()).count(),
        1
    );
}

#[tokio::test]
async fn error_on_usage_uses_the_real_2025_shape() {
    let mock = start().await;
    let chunks = chunks(&stream_events(&mock, "mock/error-on-usage").await);
    assert!(!content(&chunks).is_empty());
    let last = chunks.last().unwrap();
    assert_eq!(
        last["error"],
        json!({"code": 400, "message": "Token limit reached"})
    );
    assert!(last["choices"][0]["finish_reason"].is_null());
    assert_usage_shape(&last["usage"]);
}

#[tokio::test]
async fn status_models_fail_before_the_stream() {
    let mock = start().await;
    for code in [400u16, 402, 403, 429, 500, 502, 503, 524] {
        for stream in [true, false] {
            let response = chat(&mock, &format!("mock/status-{code}"), stream).await;
            assert_eq!(response.status().as_u16(), code);
            assert_eq!(response.headers()["content-type"], "application/json");
            let headers = response.headers().clone();
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], code);
            assert!(body["error"]["message"].is_string());
            assert_eq!(body["user_id"], "user_mock");
            match code {
                402 => assert!(
                    body["error"]["message"]
                        .as_str()
                        .unwrap()
                        .starts_with("This request requires more credits, or fewer max_tokens.")
                ),
                429 => {
                    assert_eq!(body["error"]["message"], "Provider returned error");
                    assert!(body["error"]["metadata"]["raw"].is_string());
                    assert_eq!(headers["retry-after"], "1");
                    assert!(headers.contains_key("x-ratelimit-limit"));
                    assert!(headers.contains_key("x-ratelimit-remaining"));
                    assert!(headers.contains_key("x-ratelimit-reset"));
                }
                _ => {}
            }
        }
    }
    assert!(
        mock.generations().is_empty(),
        "no generation for a failed request"
    );
}

#[tokio::test]
async fn long_sends_two_thousand_deltas() {
    let mock = start().await;
    let events = stream_events(&mock, "mock/long").await;
    let chunks = chunks(&events);
    let deltas = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .count();
    assert_eq!(deltas, 2_000);
    let comments = events
        .iter()
        .filter(|e| matches!(e, Event::Comment(_)))
        .count();
    assert!(comments > 100, "keep-alives between data lines: {comments}");
}

#[tokio::test]
async fn models_fallback_list_serves_the_first() {
    let mock = start().await;
    let body = json!({
        "models": ["mock/echo", "openai/gpt-4o"],
        "messages": [{"role": "user", "content": "fallback"}],
    });
    let completion: Value = chat_body(&mock, body).await.json().await.unwrap();
    assert_eq!(completion["model"], "mock/echo");
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["choices"][0]["message"]["content"], "fallback");
    let usage = &completion["usage"];
    assert_usage_shape(usage);
}

#[tokio::test]
async fn bad_requests_get_openrouter_errors() {
    let mock = start().await;
    let response = common::client()
        .post(format!("{}/v1/chat/completions", mock.api_url()))
        .bearer_auth(common::KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], 400);

    let response = chat_body(&mock, json!({"messages": []})).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], 400);

    let response = common::client()
        .get(format!("{}/v1/nothing-here", mock.api_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], 404);
    assert!(body["error"]["message"].is_string());
}

/// On tokio's paused clock the mock's waits are exact: the stream takes the sum of its gaps,
/// whatever the machine's load.
#[tokio::test(start_paused = true)]
async fn delta_ms_spaces_the_chunks() {
    let mock = MockOpenRouter::start(MockConfig {
        delta_ms: 20,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let started = tokio::time::Instant::now();
    let chunks = chunks(&stream_events(&mock, "mock/usage-2026").await);
    let elapsed = started.elapsed();
    // n data lines plus [DONE]: n gaps.
    let expected = Duration::from_millis(20) * chunks.len() as u32;
    assert!(elapsed >= expected, "{elapsed:?} < {expected:?}");
}

#[tokio::test]
async fn use_tool_calls_the_named_tool_then_reports_its_result() {
    let mock = start().await;
    for stream in [true, false] {
        let ask = json!({
            "model": "mock/use-tool",
            "stream": stream,
            "messages": [{"role": "user", "content": "call echo {\"message\":\"hi there\"}"}],
        });
        let text = chat_body(&mock, ask).await.text().await.unwrap();
        let (id, name, arguments, finish) = if stream {
            let chunks = chunks(&common::parse_sse(&text));
            let calls: Vec<&Value> = chunks
                .iter()
                .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
                .collect();
            let arguments: String = calls
                .iter()
                .map(|c| c["function"]["arguments"].as_str().unwrap())
                .collect();
            let finish = chunks
                .iter()
                .find_map(|c| c["choices"][0]["finish_reason"].as_str())
                .unwrap()
                .to_owned();
            (
                calls[0]["id"].clone(),
                calls[0]["function"]["name"].clone(),
                arguments,
                finish,
            )
        } else {
            let completion: Value = serde_json::from_str(&text).unwrap();
            let choice = &completion["choices"][0];
            let call = &choice["message"]["tool_calls"][0];
            (
                call["id"].clone(),
                call["function"]["name"].clone(),
                call["function"]["arguments"].as_str().unwrap().to_owned(),
                choice["finish_reason"].as_str().unwrap().to_owned(),
            )
        };
        assert!(id.as_str().unwrap().starts_with("call_"), "{text}");
        assert_eq!(name, "echo");
        let arguments: Value = serde_json::from_str(&arguments).unwrap();
        assert_eq!(arguments, json!({"message": "hi there"}));
        assert_eq!(finish, "tool_calls");

        let answer = json!({
            "model": "mock/use-tool",
            "stream": stream,
            "messages": [
                {"role": "user", "content": "call echo {\"message\":\"hi there\"}"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "echo", "arguments": "{\"message\":\"hi there\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "Echo: hi there"},
            ],
        });
        let text = chat_body(&mock, answer).await.text().await.unwrap();
        let content = if stream {
            content(&chunks(&common::parse_sse(&text)))
        } else {
            let completion: Value = serde_json::from_str(&text).unwrap();
            completion["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        assert_eq!(content, "Tool result: Echo: hi there");
    }
}
