//! The stream decoder against one synthesized example of every wire shape OpenRouter sends
//! (after `shared/openrouter/wire-examples.md`; fixtures are written here, not copied).

use serde_json::{Value, json};
use switchboard_core::stream::{
    Annotation, DecodeError, ErrorCode, StreamDecoder, StreamEvent, ToolCall, ToolCallAssembler,
    UrlCitation, Usage, decode_body, decode_json_body, merge_reasoning_details,
};

/// An SSE body from chunk JSON values: keep-alive first, each chunk as `data:`, then `[DONE]`.
fn sse(chunks: &[Value]) -> String {
    let mut body = String::from(": OPENROUTER PROCESSING\n\n");
    for chunk in chunks {
        body.push_str(&format!("data: {chunk}\n\n"));
    }
    body.push_str("data: [DONE]\n\n");
    body
}

/// A `chat.completion.chunk` with one choice.
fn chunk(delta: Value, finish: Option<&str>, native: Option<&str>) -> Value {
    json!({
        "id": "gen-1", "provider": "Anthropic", "model": "anthropic/claude-sonnet-4.5",
        "object": "chat.completion.chunk", "created": 1762179802,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                     "native_finish_reason": native, "logprobs": null}]
    })
}

fn decode(body: &str) -> Vec<StreamEvent> {
    let mut decoder = StreamDecoder::new();
    let mut events = decoder.feed(body.as_bytes());
    events.extend(decoder.finish());
    events
}

fn meta() -> StreamEvent {
    StreamEvent::Meta {
        id: Some("gen-1".into()),
        model: Some("anthropic/claude-sonnet-4.5".into()),
        provider: Some("Anthropic".into()),
    }
}

fn finish(reason: &str, native: &str) -> StreamEvent {
    StreamEvent::Finish {
        reason: reason.into(),
        native_reason: Some(native.into()),
    }
}

fn reasoning_text(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Reasoning(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn content_text(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Content(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

fn usage_json() -> Value {
    json!({"prompt_tokens": 43, "completion_tokens": 36, "total_tokens": 79, "cost": 0.000669,
           "is_byok": false,
           "prompt_tokens_details": {"cached_tokens": 5, "audio_tokens": 0},
           "cost_details": {"upstream_inference_cost": null},
           "completion_tokens_details": {"reasoning_tokens": 13, "image_tokens": 0}})
}

fn usage() -> Usage {
    Usage {
        prompt_tokens: 43,
        completion_tokens: 36,
        total_tokens: 79,
        reasoning_tokens: Some(13),
        cached_tokens: Some(5),
        cost: Some(0.000669),
        is_byok: false,
    }
}

#[test]
fn reasoning_with_signature_then_content_usage_and_done() {
    let text_detail = json!({"type": "reasoning.text", "text": "Let me", "format": "anthropic-claude-v1", "index": 0});
    let signature = json!({"type": "reasoning.text", "signature": "<opaque>", "format": "anthropic-claude-v1", "index": 0});
    let body = sse(&[
        chunk(
            json!({"role": "assistant", "content": "", "reasoning": "Let me", "reasoning_details": [text_detail]}),
            None,
            None,
        ),
        chunk(
            json!({"role": "assistant", "content": "", "reasoning": null, "reasoning_details": [signature]}),
            None,
            None,
        ),
        chunk(json!({"role": "assistant", "content": "Hi"}), None, None),
        chunk(
            json!({"role": "assistant", "content": ""}),
            Some("stop"),
            Some("end_turn"),
        ),
        {
            let mut last = chunk(json!({"role": "assistant", "content": ""}), None, None);
            last["usage"] = usage_json();
            last
        },
    ]);
    let mut decoder = StreamDecoder::new();
    let mut events = decoder.feed(body.as_bytes());
    assert!(decoder.saw_done());
    events.extend(decoder.finish());
    assert_eq!(
        events,
        vec![
            meta(),
            // The same text is in `reasoning` and in the detail: shown once.
            StreamEvent::Reasoning("Let me".into()),
            StreamEvent::ReasoningDetail(text_detail.clone()),
            StreamEvent::ReasoningDetail(signature.clone()),
            StreamEvent::Content("Hi".into()),
            finish("stop", "end_turn"),
            StreamEvent::Usage(usage()),
            StreamEvent::Done,
        ]
    );
}

#[test]
fn reasoning_only_in_details_is_shown_from_the_details() {
    let body = sse(&[
        chunk(
            json!({"reasoning": null, "reasoning_details": [
                {"type": "reasoning.text", "text": "think", "index": 0}]}),
            None,
            None,
        ),
        chunk(
            json!({"reasoning": "", "reasoning_details": [
                {"type": "reasoning.summary", "summary": " more", "index": 0}]}),
            None,
            None,
        ),
    ]);
    assert_eq!(reasoning_text(&decode(&body)), "think more");
}

#[test]
fn deepseek_reasoning_content_is_reasoning() {
    let body = sse(&[chunk(
        json!({"reasoning_content": "hmm", "content": null}),
        None,
        None,
    )]);
    assert_eq!(reasoning_text(&decode(&body)), "hmm");
}

#[test]
fn encrypted_reasoning_is_kept_for_the_round_trip_but_never_shown() {
    let encrypted = json!({"type": "reasoning.encrypted", "data": "gAAAA", "id": "rs_1",
                           "format": "openai-responses-v1", "index": 0});
    let events = decode(&sse(&[chunk(
        json!({"content": "", "reasoning": null, "reasoning_details": [encrypted]}),
        None,
        None,
    )]));
    assert_eq!(reasoning_text(&events), "");
    assert!(events.contains(&StreamEvent::ReasoningDetail(encrypted)));
}

#[test]
fn reasoning_details_merge_by_type_and_index() {
    let fragments = [
        json!({"type": "reasoning.text", "text": "", "signature": "", "format": "anthropic-claude-v1", "index": 0}),
        json!({"type": "reasoning.text", "text": "This", "format": "anthropic-claude-v1", "index": 0}),
        json!({"type": "reasoning.text", "text": " is", "format": "anthropic-claude-v1", "index": 0}),
        json!({"type": "reasoning.text", "signature": "Et0B", "format": "anthropic-claude-v1", "index": 0}),
        json!({"type": "reasoning.summary", "summary": "**A**", "index": 0}),
        json!({"type": "reasoning.summary", "summary": " b", "index": 0}),
        json!({"type": "reasoning.encrypted", "data": "gAAAA", "id": "rs_1", "index": 0}),
        json!({"type": "reasoning.text", "text": "second block", "index": 1}),
    ];
    assert_eq!(
        merge_reasoning_details(&fragments),
        vec![
            json!({"type": "reasoning.text", "text": "This is", "signature": "Et0B", "format": "anthropic-claude-v1", "index": 0}),
            json!({"type": "reasoning.summary", "summary": "**A** b", "index": 0}),
            json!({"type": "reasoning.encrypted", "data": "gAAAA", "id": "rs_1", "index": 0}),
            json!({"type": "reasoning.text", "text": "second block", "index": 1}),
        ]
    );
}

#[test]
fn tool_call_fragments_stream_and_assemble() {
    let body = sse(&[
        chunk(
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": "call_abc",
                "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
            None,
            None,
        ),
        chunk(
            json!({"content": null, "tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
            None,
            None,
        ),
        chunk(
            json!({"content": null, "tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
            None,
            None,
        ),
        chunk(json!({"content": ""}), Some("tool_calls"), Some("tool_use")),
    ]);
    let events = decode(&body);
    assert_eq!(
        events[1],
        StreamEvent::ToolCall {
            index: 0,
            id: Some("call_abc".into()),
            name: Some("get_weather".into()),
            arguments_delta: String::new(),
        }
    );
    let mut assembler = ToolCallAssembler::new();
    events.iter().for_each(|e| assembler.push(e));
    assert_eq!(
        assembler.finish(),
        vec![ToolCall {
            id: "call_abc".into(),
            name: "get_weather".into(),
            arguments: "{\"city\":\"Paris\"}".into(),
        }]
    );
    assert!(events.contains(&finish("tool_calls", "tool_use")));
}

#[test]
fn tool_calls_sharing_an_index_but_not_an_id_stay_apart() {
    let call = |index, id: &str, name: &str, args: &str| StreamEvent::ToolCall {
        index,
        id: Some(id.into()),
        name: Some(name.into()),
        arguments_delta: args.into(),
    };
    let mut assembler = ToolCallAssembler::new();
    for event in [
        call(1, "b", "second", "{}"),
        call(0, "a", "first", "{\"x\":"),
        StreamEvent::ToolCall {
            index: 0,
            id: None,
            name: None,
            arguments_delta: "1}".into(),
        },
        call(0, "c", "third", "{}"),
        StreamEvent::Content("ignored".into()),
    ] {
        assembler.push(&event);
    }
    let names: Vec<_> = assembler
        .finish()
        .into_iter()
        .map(|c| (c.name, c.arguments))
        .collect();
    assert_eq!(
        names,
        [("first", "{\"x\":1}"), ("third", "{}"), ("second", "{}")]
            .map(|(n, a)| (n.to_owned(), a.to_owned()))
    );
}

#[test]
fn url_citations_are_typed_and_other_annotations_kept() {
    let citation = json!({"type": "url_citation", "url_citation": {"url": "https://github.com/x/y",
        "title": "x/y", "start_index": 0, "end_index": 10, "content": "# x/y"}});
    let file = json!({"type": "file", "file": {"name": "a.pdf", "hash": "ab"}});
    let events = decode(&sse(&[chunk(
        json!({"content": "", "annotations": [citation, file]}),
        None,
        None,
    )]));
    assert_eq!(
        events[1..3],
        [
            StreamEvent::Annotation(Annotation::UrlCitation(UrlCitation {
                url: "https://github.com/x/y".into(),
                title: Some("x/y".into()),
                content: Some("# x/y".into()),
                start_index: Some(0),
                end_index: Some(10),
            })),
            StreamEvent::Annotation(Annotation::Other(file)),
        ]
    );
}

#[test]
fn usage_in_each_of_its_three_real_shapes() {
    let stop = chunk(json!({"content": ""}), Some("stop"), Some("stop"));
    // 2025: its own chunk, with a choice whose finish_reason is null.
    let mut own_with_choice = chunk(json!({"content": ""}), None, None);
    own_with_choice["usage"] = usage_json();
    // 2026: its own chunk with `choices: []`.
    let mut own_empty = chunk(json!({}), None, None);
    own_empty["choices"] = json!([]);
    own_empty["usage"] = usage_json();
    // 2026: merged into the finish chunk.
    let mut merged = stop.clone();
    merged["usage"] = usage_json();

    for chunks in [
        vec![stop.clone(), own_with_choice],
        vec![stop.clone(), own_empty],
        vec![merged],
    ] {
        let events = decode(&sse(&chunks));
        assert_eq!(
            events[1..],
            [
                finish("stop", "stop"),
                StreamEvent::Usage(usage()),
                StreamEvent::Done
            ]
        );
    }
}

#[test]
fn a_repeated_finish_chunk_gives_one_finish() {
    let stop = chunk(json!({"content": ""}), Some("stop"), Some("stop"));
    let mut stop_with_usage = stop.clone();
    stop_with_usage["usage"] = usage_json();
    let events = decode(&sse(&[stop, stop_with_usage]));
    let finishes = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::Finish { .. }))
        .count();
    assert_eq!(finishes, 1);
}

#[test]
fn documented_mid_stream_error_gives_one_error_and_the_error_finish() {
    let mut error = chunk(json!({"content": ""}), Some("error"), None);
    error["error"] = json!({"code": 429, "message": "Rate limit exceeded",
                            "metadata": {"error_type": "rate_limit_exceeded"}});
    let events = decode(&sse(&[chunk(json!({"content": "Par"}), None, None), error]));
    assert_eq!(
        events,
        vec![
            meta(),
            StreamEvent::Content("Par".into()),
            StreamEvent::Error {
                code: ErrorCode::Int(429),
                message: "Rate limit exceeded".into(),
                metadata: Some(json!({"error_type": "rate_limit_exceeded"})),
            },
            StreamEvent::Finish {
                reason: "error".into(),
                native_reason: None
            },
            StreamEvent::Done,
        ]
    );
}

#[test]
fn real_mid_stream_error_on_the_usage_chunk_is_reported_once() {
    let mut error = chunk(json!({"content": ""}), None, None);
    error["error"] = json!({"code": 400, "message": "Token limit reached"});
    error["usage"] = usage_json();
    let events = decode(&sse(&[
        chunk(
            json!({"reasoning": "We need"}),
            Some("length"),
            Some("length"),
        ),
        chunk(
            json!({"reasoning": null, "reasoning_details": []}),
            Some("length"),
            Some("length"),
        ),
        error.clone(),
        error,
    ]));
    let error = StreamEvent::Error {
        code: ErrorCode::Int(400),
        message: "Token limit reached".into(),
        metadata: None,
    };
    assert_eq!(
        events,
        vec![
            meta(),
            StreamEvent::Reasoning("We need".into()),
            finish("length", "length"),
            error,
            StreamEvent::Usage(usage()),
            StreamEvent::Usage(usage()),
            StreamEvent::Done,
        ]
    );
}

#[test]
fn error_codes_keep_numbers_and_strings() {
    assert_eq!(ErrorCode::Int(429).as_http_status(), Some(429));
    assert_eq!(ErrorCode::Text("502".into()).as_http_status(), Some(502));
    assert_eq!(ErrorCode::Text("rate_limit".into()).as_http_status(), None);
    assert_eq!(ErrorCode::Int(7).as_http_status(), None);
    assert_eq!(ErrorCode::Missing.as_http_status(), None);
    let events = decode_json_body(br#"{"error":{"code":"overloaded","message":"busy"}}"#);
    assert_eq!(
        events[0],
        StreamEvent::Error {
            code: ErrorCode::Text("overloaded".into()),
            message: "busy".into(),
            metadata: None
        }
    );
}

#[test]
fn meta_is_sent_once() {
    let events = decode(&sse(&[
        chunk(json!({"content": "a"}), None, None),
        chunk(json!({"content": "b"}), None, None),
    ]));
    let metas = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::Meta { .. }))
        .count();
    assert_eq!(metas, 1);
    assert_eq!(events[0], meta());
}

#[test]
fn a_stream_cut_short_still_ends_with_done_but_says_so() {
    let body = sse(&[chunk(json!({"content": "Hel"}), None, None)]);
    let body = body.trim_end_matches("data: [DONE]\n\n");
    let mut decoder = StreamDecoder::new();
    let mut events = decoder.feed(body.as_bytes());
    events.extend(decoder.finish());
    assert_eq!(events.last(), Some(&StreamEvent::Done));
    assert!(!decoder.saw_done());
    assert!(
        decoder.finish().is_empty(),
        "finish twice gives nothing more"
    );
}

#[test]
fn a_last_chunk_without_its_blank_line_is_decoded_at_finish() {
    let body = format!("data: {}", chunk(json!({"content": "end"}), None, None));
    let events = decode(&body);
    assert_eq!(content_text(&events), "end");
}

#[test]
fn unparseable_data_is_reported_and_decoding_goes_on() {
    let body = format!(
        "data: {{not json\n\ndata: {}\n\ndata: [DONE]\n\n",
        chunk(json!({"content": "ok"}), None, None)
    );
    let events = decode(&body);
    assert!(matches!(
        &events[0],
        StreamEvent::Malformed(DecodeError::InvalidJson { excerpt, .. }) if excerpt == "{not json"
    ));
    assert_eq!(content_text(&events), "ok");
    assert_eq!(events.last(), Some(&StreamEvent::Done));
}

#[test]
fn nothing_after_done_is_decoded() {
    let mut body = sse(&[chunk(json!({"content": "a"}), None, None)]);
    body.push_str(&format!(
        "data: {}\n\ndata: [DONE]\n\n",
        chunk(json!({"content": "late"}), None, None)
    ));
    let events = decode(&body);
    assert_eq!(content_text(&events), "a");
    assert_eq!(
        events.iter().filter(|e| **e == StreamEvent::Done).count(),
        1
    );
}

#[test]
fn think_tags_in_streamed_content_become_reasoning() {
    let events = decode(&sse(&[
        chunk(json!({"content": "<th"}), None, None),
        chunk(json!({"content": "ink>step 1</thi"}), None, None),
        chunk(json!({"content": "nk>\n\nAnswer"}), None, None),
    ]));
    assert_eq!(reasoning_text(&events), "step 1");
    assert_eq!(content_text(&events), "\n\nAnswer");
}

#[test]
fn content_sent_as_an_array_of_parts_is_text() {
    let events = decode(&sse(&[chunk(
        json!({"content": [{"type": "text", "text": "a"}, {"type": "image_url"}, "b"]}),
        None,
        None,
    )]));
    assert_eq!(content_text(&events), "ab");
}

#[test]
fn a_json_completion_gives_the_same_events_as_a_stream() {
    let body = json!({
        "id": "gen-1", "provider": "Anthropic", "model": "anthropic/claude-sonnet-4.5",
        "object": "chat.completion",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "native_finish_reason": "tool_use",
            "message": {"role": "assistant", "content": "Let me check.", "refusal": null,
                "reasoning": "**Plan**", "reasoning_details": [
                    {"type": "reasoning.summary", "summary": "**Plan**", "index": 0},
                    {"type": "reasoning.encrypted", "data": "gAAAA", "index": 0}],
                "tool_calls": [{"id": "call_1", "index": 0, "type": "function",
                    "function": {"name": "divide", "arguments": "{\"a\":1}"}}],
                "annotations": [{"type": "url_citation", "url_citation": {"url": "https://a.example"}}]}}],
        "usage": usage_json()
    });
    let events = decode_json_body(body.to_string().as_bytes());
    assert_eq!(
        events,
        vec![
            meta(),
            StreamEvent::Reasoning("**Plan**".into()),
            StreamEvent::ReasoningDetail(
                json!({"type": "reasoning.summary", "summary": "**Plan**", "index": 0})
            ),
            StreamEvent::ReasoningDetail(
                json!({"type": "reasoning.encrypted", "data": "gAAAA", "index": 0})
            ),
            StreamEvent::Content("Let me check.".into()),
            StreamEvent::ToolCall {
                index: 0,
                id: Some("call_1".into()),
                name: Some("divide".into()),
                arguments_delta: "{\"a\":1}".into(),
            },
            StreamEvent::Annotation(Annotation::UrlCitation(UrlCitation {
                url: "https://a.example".into(),
                ..UrlCitation::default()
            })),
            finish("tool_calls", "tool_use"),
            StreamEvent::Usage(usage()),
            StreamEvent::Done,
        ]
    );
}

#[test]
fn a_json_completion_with_think_tags_splits_them() {
    let body =
        br#"{"choices":[{"message":{"content":"<think>hm</think>42"},"finish_reason":"stop"}]}"#;
    let events = decode_json_body(body);
    assert_eq!(reasoning_text(&events), "hm");
    assert_eq!(content_text(&events), "42");
}

#[test]
fn a_json_error_body_gives_an_error() {
    let body = br#"{"error":{"code":429,"message":"Provider returned error","metadata":{"provider_name":"Google","raw":"rate-limited"}},"user_id":"user_1"}"#;
    assert_eq!(
        decode_json_body(body),
        vec![
            StreamEvent::Error {
                code: ErrorCode::Int(429),
                message: "Provider returned error".into(),
                metadata: Some(json!({"provider_name": "Google", "raw": "rate-limited"})),
            },
            StreamEvent::Done,
        ]
    );
}

#[test]
fn a_200_with_an_error_body_and_null_fields_gives_only_the_error() {
    let body = br#"{"id":null,"choices":null,"created":1768361801,"model":null,"object":null,"usage":null,"error":{"message":"Provider returned error","code":524,"metadata":{"raw":"error code: 524","provider_name":"Google"}},"user_id":"org_xxx"}"#;
    let events = decode_json_body(body);
    assert!(matches!(
        &events[..],
        [
            StreamEvent::Error {
                code: ErrorCode::Int(524),
                ..
            },
            StreamEvent::Done
        ]
    ));
}

#[test]
fn decode_body_sniffs_json_sse_and_neither() {
    let json_body = br#"  {"choices":[{"message":{"content":"hi"}}]}"#;
    assert_eq!(content_text(&decode_body(json_body)), "hi");

    let sse_body = sse(&[chunk(json!({"content": "hi"}), None, None)]);
    assert_eq!(content_text(&decode_body(sse_body.as_bytes())), "hi");
    assert_eq!(
        content_text(&decode_body(format!("\u{FEFF}{sse_body}").as_bytes())),
        "hi"
    );

    let html = decode_body(b"<html>502 Bad Gateway</html>");
    assert!(matches!(
        &html[..],
        [
            StreamEvent::Malformed(DecodeError::UnrecognizedBody { .. }),
            StreamEvent::Done
        ]
    ));
    assert_eq!(decode_body(b""), vec![StreamEvent::Done]);
    assert!(matches!(
        &decode_json_body(b"[1,2]")[..],
        [
            StreamEvent::Malformed(DecodeError::InvalidJson { .. }),
            StreamEvent::Done
        ]
    ));
}

#[test]
fn an_over_long_data_line_is_malformed_and_the_stream_goes_on() {
    let long = chunk(json!({"content": "x".repeat(1000)}), None, None);
    let short = chunk(json!({"content": "ok"}), None, None);
    let body = format!("data: {long}\n\ndata: {short}\n\ndata: [DONE]\n\n");
    let mut decoder = StreamDecoder::with_limit(short.to_string().len() + 100);
    let mut events = decoder.feed(body.as_bytes());
    events.extend(decoder.finish());
    assert!(matches!(
        events[0],
        StreamEvent::Malformed(DecodeError::Sse(_))
    ));
    assert_eq!(content_text(&events), "ok");
    assert!(decoder.saw_done());
}

#[test]
fn bytes_after_the_end_are_ignored() {
    let mut decoder = StreamDecoder::new();
    let mut events = decoder.feed(b"data: [DONE]\n\n");
    events.extend(
        decoder
            .feed(format!("data: {}\n\n", chunk(json!({"content": "x"}), None, None)).as_bytes()),
    );
    events.extend(decoder.finish());
    assert_eq!(events, vec![StreamEvent::Done]);
}

#[test]
fn generated_images_arrive_from_deltas_and_whole_messages() {
    let url = "data:image/png;base64,iVBORw0KGgo=";
    let delta = format!(
        "data: {}\n\ndata: [DONE]\n\n",
        json!({"id": "gen-1", "model": "mock/image", "choices": [{"index": 0,
               "delta": {"role": "assistant", "content": "",
                         "images": [{"type": "image_url", "image_url": {"url": url}}]}}]})
    );
    let events = decode(&delta);
    assert!(
        events.contains(&StreamEvent::Image(url.into())),
        "{events:?}"
    );
    let whole = json!({"id": "gen-2", "object": "chat.completion", "choices": [{"index": 0,
        "message": {"role": "assistant", "content": "here",
                    "images": [{"type": "image_url", "image_url": {"url": url}}]},
        "finish_reason": "stop"}]})
    .to_string();
    let events = switchboard_core::stream::decode_body(whole.as_bytes());
    assert!(
        events.contains(&StreamEvent::Image(url.into())),
        "{events:?}"
    );
}
