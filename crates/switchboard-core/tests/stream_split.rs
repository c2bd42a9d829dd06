//! Property: how the network happens to cut a stream into chunks never changes what it means.
//!
//! For every valid stream below and any split of its bytes into chunks, the decoded events are
//! *exactly* equal to those of the stream fed in one piece — not merely equal after coalescing
//! text. That holds even for `<think>` tags, because delta boundaries come from the JSON chunks,
//! which byte splits cannot move; the second property covers tags cut across deltas, where only
//! the coalesced reasoning and content are asserted (the split decides the delta boundaries).

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};
use switchboard_core::stream::{StreamDecoder, StreamEvent};

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "gen-1", "provider": "P", "model": "m/x", "object": "chat.completion.chunk",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                        "native_finish_reason": finish}]})
}

fn usage() -> Value {
    json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7, "cost": 0.5,
           "prompt_tokens_details": {"cached_tokens": 1},
           "completion_tokens_details": {"reasoning_tokens": 2}})
}

/// SSE with keep-alives before and between the data lines, ending in `[DONE]`.
fn sse(chunks: &[Value]) -> String {
    let mut body = String::from(": OPENROUTER PROCESSING\n\n");
    for chunk in chunks {
        body.push_str(&format!("data: {chunk}\n\n: OPENROUTER PROCESSING\n\n"));
    }
    body + "data: [DONE]\n\n"
}

/// The valid streams, with the reasoning and content each must decode to.
fn streams() -> Vec<(&'static str, String, &'static str, &'static str)> {
    let reasoning = sse(&[
        chunk(
            json!({"content": "", "reasoning": "Let me", "reasoning_details": [
                {"type": "reasoning.text", "text": "Let me", "index": 0}]}),
            None,
        ),
        chunk(
            json!({"reasoning": null, "reasoning_details": [
                {"type": "reasoning.text", "signature": "sig", "index": 0}]}),
            None,
        ),
        chunk(json!({"content": "Hi"}), None),
        chunk(json!({"content": ""}), Some("stop")),
        {
            let mut c = chunk(json!({"content": ""}), None);
            c["usage"] = usage();
            c
        },
    ]);
    let tools = sse(&[
        chunk(
            json!({"content": null, "tool_calls": [{"index": 0, "id": "call_1",
                "function": {"name": "f", "arguments": ""}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":"}}]}),
            None,
        ),
        chunk(
            json!({"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}),
            None,
        ),
        chunk(json!({"content": ""}), Some("tool_calls")),
    ]);
    let usage_2026 = sse(&[
        chunk(json!({"content": "ok"}), None),
        chunk(json!({"content": ""}), Some("stop")),
        json!({"id": "gen-1", "choices": [], "usage": usage()}),
    ]);
    let usage_merged = sse(&[chunk(json!({"content": "ok"}), None), {
        let mut c = chunk(json!({"content": ""}), Some("stop"));
        c["usage"] = usage();
        c
    }]);
    let error = sse(&[chunk(json!({"reasoning": "We need"}), Some("length")), {
        let mut c = chunk(json!({"content": ""}), None);
        c["error"] = json!({"code": 400, "message": "Token limit reached"});
        c["usage"] = usage();
        c
    }]);
    let think = sse(&[
        chunk(json!({"content": "<th"}), None),
        chunk(json!({"content": "ink>plan 🎉</th"}), None),
        chunk(json!({"content": "ink>done"}), Some("stop")),
    ]);
    let utf8 = sse(&[
        chunk(json!({"content": "héllo "}), None),
        chunk(
            json!({"content": "世界 🎉", "reasoning": "ü"}),
            Some("stop"),
        ),
    ]);
    vec![
        ("reasoning+signature", reasoning.clone(), "Let me", "Hi"),
        (
            "reasoning, CRLF",
            reasoning.replace('\n', "\r\n"),
            "Let me",
            "Hi",
        ),
        (
            "reasoning, CR",
            reasoning.replace('\n', "\r"),
            "Let me",
            "Hi",
        ),
        ("tools", tools, "", ""),
        ("usage 2026", usage_2026, "", "ok"),
        ("usage merged", usage_merged, "", "ok"),
        ("error on usage chunk", error, "We need", ""),
        ("think tags", think, "plan 🎉", "done"),
        ("utf-8", utf8.clone(), "ü", "héllo 世界 🎉"),
        (
            "utf-8 with BOM",
            format!("\u{FEFF}{utf8}"),
            "ü",
            "héllo 世界 🎉",
        ),
    ]
}

fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<StreamEvent> {
    let mut decoder = StreamDecoder::new();
    let mut events: Vec<_> = chunks.into_iter().flat_map(|c| decoder.feed(c)).collect();
    events.extend(decoder.finish());
    events
}

/// (reasoning, content) with adjacent deltas coalesced.
fn texts(events: &[StreamEvent]) -> (String, String) {
    let (mut reasoning, mut content) = (String::new(), String::new());
    for event in events {
        match event {
            StreamEvent::Reasoning(t) => reasoning.push_str(t),
            StreamEvent::Content(t) => content.push_str(t),
            _ => {}
        }
    }
    (reasoning, content)
}

/// Cuts `bytes` at the given points (any byte offset, even inside a UTF-8 character or a CRLF).
fn split<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut from = 0;
    for point in points {
        pieces.push(&bytes[from..point]);
        from = point;
    }
    pieces.push(&bytes[from..]);
    pieces
}

#[test]
fn each_stream_decodes_to_its_expected_text_in_one_piece() {
    for (name, body, reasoning, content) in streams() {
        let events = decode_chunks([body.as_bytes()]);
        assert_eq!(texts(&events), (reasoning.into(), content.into()), "{name}");
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, StreamEvent::Malformed(_))),
            "{name}: {events:?}"
        );
        assert_eq!(events.last(), Some(&StreamEvent::Done), "{name}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_split_of_a_valid_stream_decodes_to_exactly_the_same_events(
        which in any::<Index>(),
        cuts in prop::collection::vec(any::<Index>(), 0..24),
    ) {
        let streams = streams();
        let (name, body, _, _) = &streams[which.index(streams.len())];
        let whole = decode_chunks([body.as_bytes()]);
        let pieces = split(body.as_bytes(), &cuts);
        prop_assert_eq!(decode_chunks(pieces), whole, "{}", name);
    }

    #[test]
    fn think_tags_cut_across_deltas_still_separate_reasoning_from_content(
        lead in "[ \n]{0,2}",
        reasoning in "[a<>/thinké世🎉 ]{0,24}",
        content in "[a<>/thinké世🎉 ]{0,24}",
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        prop_assume!(!reasoning.contains("</think>"));
        let text = format!("{lead}<think>{reasoning}</think>{content}");
        let mut points: Vec<usize> = cuts
            .iter()
            .map(|i| i.index(text.len() + 1))
            .filter(|&p| text.is_char_boundary(p))
            .collect();
        points.sort_unstable();
        points.push(text.len());
        let mut deltas = Vec::new();
        let mut from = 0;
        for point in points {
            deltas.push(chunk(json!({"content": &text[from..point]}), None));
            from = point;
        }
        let events = decode_chunks([sse(&deltas).as_bytes()]);
        prop_assert_eq!(texts(&events), (reasoning, content));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_end_in_one_done(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        cuts in prop::collection::vec(any::<Index>(), 0..8),
    ) {
        let events = decode_chunks(split(&bytes, &cuts));
        prop_assert_eq!(events.iter().filter(|e| **e == StreamEvent::Done).count(), 1);
        prop_assert_eq!(events.last(), Some(&StreamEvent::Done));
    }

    #[test]
    fn arbitrary_data_lines_never_panic(
        lines in prop::collection::vec("(data|:|event|id)?:? ?[{}\\[\\]\"a-z:,0-9 ]{0,40}", 0..12),
    ) {
        let body = lines.join("\n");
        let events = decode_chunks([body.as_bytes()]);
        prop_assert_eq!(events.last(), Some(&StreamEvent::Done));
    }
}
