//! Generation checkpoints, finishing, the event log and start-up recovery.

use serde_json::json;
use switchboard_store::{
    ChatSettings, GenerationFlush, Message, MessageFinish, MessageStatus, NewMessage, Store, Usage,
};

use crate::helpers::{event, user};

on_both_backends!(
    flush_stores_events_and_the_current_full_text,
    a_flush_is_one_transaction,
    a_flush_stores_a_backlog_of_events_larger_than_one_statement,
    finish_message_records_the_outcome_once,
    a_finished_message_is_never_rewritten_by_a_late_flush,
    events_after_resumes_after_the_given_seq,
    flushing_a_deleted_message_stores_nothing,
    mark_streaming_interrupted_keeps_the_text,
);

/// A chat with a user message and an empty streaming reply.
async fn streaming_reply(store: &Store) -> Message {
    let chat = store
        .create_chat("default", "gen", &ChatSettings::default())
        .await
        .unwrap();
    store
        .insert_message("default", &chat.id, &user("hello"))
        .await
        .unwrap()
        .unwrap();
    store
        .insert_message(
            "default",
            &chat.id,
            &NewMessage::streaming_reply("openai/gpt-5"),
        )
        .await
        .unwrap()
        .unwrap()
}

async fn read(store: &Store, message: &Message) -> Message {
    store
        .get_message("default", &message.chat_id, &message.id)
        .await
        .unwrap()
        .unwrap()
}

fn finish(message: &Message, status: MessageStatus, content: &str) -> MessageFinish {
    MessageFinish {
        message_id: message.id.clone(),
        status,
        content: content.into(),
        reasoning: String::new(),
        reasoning_details: None,
        tool_calls: None,
        annotations: None,
        usage: Usage::default(),
        finish_reason: None,
        error_code: None,
        error_message: None,
        finished_at: 2_000,
        generation_id: None,
        provider: None,
        model: None,
        events: Vec::new(),
    }
}

async fn flush_stores_events_and_the_current_full_text(store: Store) {
    let reply = streaming_reply(&store).await;
    assert_eq!(reply.status, MessageStatus::Streaming);
    assert_eq!(store.max_event_seq(&reply.chat_id).await.unwrap(), 0);

    store
        .flush_generation(&GenerationFlush {
            message_id: reply.id.clone(),
            content: "Hel".into(),
            reasoning: "The user".into(),
            reasoning_details: Some(json!([{"type": "reasoning.encrypted", "data": "opaque=="}])),
            first_token_at: Some(1_100),
            generation_id: Some("gen-1".into()),
            provider: Some("OpenAI".into()),
            events: vec![event(1, "reasoning"), event(2, "delta")],
            ..GenerationFlush::default()
        })
        .await
        .unwrap();
    store
        .flush_generation(&GenerationFlush {
            message_id: reply.id.clone(),
            content: "Hello there".into(),
            reasoning: "The user greets".into(),
            tool_calls: Some(json!([{"id": "call_1", "type": "function"}])),
            annotations: Some(json!([{"type": "url_citation", "url": "https://example.com"}])),
            first_token_at: Some(1_200),
            events: vec![event(3, "delta")],
            ..GenerationFlush::default()
        })
        .await
        .unwrap();

    let stored = read(&store, &reply).await;
    assert_eq!(stored.status, MessageStatus::Streaming);
    assert_eq!(stored.content, "Hello there");
    assert_eq!(stored.reasoning, "The user greets");
    // `None` fields keep what an earlier flush wrote; the first token time never moves.
    assert_eq!(
        stored.reasoning_details,
        Some(json!([{"type": "reasoning.encrypted", "data": "opaque=="}]))
    );
    assert_eq!(
        stored.tool_calls,
        Some(json!([{"id": "call_1", "type": "function"}]))
    );
    assert_eq!(
        stored.annotations,
        Some(json!([{"type": "url_citation", "url": "https://example.com"}]))
    );
    assert_eq!(stored.first_token_at, Some(1_100));
    assert_eq!(stored.generation_id.as_deref(), Some("gen-1"));
    assert_eq!(stored.provider.as_deref(), Some("OpenAI"));
    assert_eq!(stored.model.as_deref(), Some("openai/gpt-5"));

    let events = store.events_after(&reply.chat_id, 0, 100).await.unwrap();
    let kinds: Vec<(i64, &str)> = events.iter().map(|e| (e.seq, e.kind.as_str())).collect();
    assert_eq!(kinds, [(1, "reasoning"), (2, "delta"), (3, "delta")]);
    assert!(events.iter().all(|e| e.message_id == reply.id));
    assert_eq!(events[0].data, r#"{"n":1}"#);
    assert_eq!(events[0].created_at, 1_001);
    assert_eq!(store.max_event_seq(&reply.chat_id).await.unwrap(), 3);
}

/// A checkpoint that failed keeps its events for the next one, so a flush can carry more events
/// than one statement inserts: all of them are stored, each with its own fields.
async fn a_flush_stores_a_backlog_of_events_larger_than_one_statement(store: Store) {
    let reply = streaming_reply(&store).await;
    let backlog: Vec<_> = (1..=75).map(|seq| event(seq, "delta")).collect();
    store
        .flush_generation(&GenerationFlush {
            message_id: reply.id.clone(),
            content: "long".into(),
            events: backlog,
            ..GenerationFlush::default()
        })
        .await
        .unwrap();

    let events = store.events_after(&reply.chat_id, 0, 200).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=75).collect::<Vec<_>>());
    for e in &events {
        assert_eq!(e.data, format!(r#"{{"n":{}}}"#, e.seq));
        assert_eq!(e.created_at, 1_000 + e.seq);
        assert_eq!(
            (e.kind.as_str(), e.message_id.as_str()),
            ("delta", reply.id.as_str())
        );
    }
    assert_eq!(store.max_event_seq(&reply.chat_id).await.unwrap(), 75);
}

/// If any event of a batch cannot be stored, neither the events nor the text are.
async fn a_flush_is_one_transaction(store: Store) {
    let reply = streaming_reply(&store).await;
    store
        .flush_generation(&GenerationFlush {
            message_id: reply.id.clone(),
            content: "kept".into(),
            events: vec![event(1, "delta")],
            ..GenerationFlush::default()
        })
        .await
        .unwrap();

    let duplicate_seq = GenerationFlush {
        message_id: reply.id.clone(),
        content: "lost".into(),
        events: vec![event(2, "delta"), event(1, "delta")],
        ..GenerationFlush::default()
    };
    assert!(store.flush_generation(&duplicate_seq).await.is_err());

    assert_eq!(read(&store, &reply).await.content, "kept");
    assert_eq!(store.max_event_seq(&reply.chat_id).await.unwrap(), 1);

    let mut finishing = finish(&reply, MessageStatus::Complete, "lost too");
    finishing.events = vec![event(1, "done")];
    assert!(store.finish_message(&finishing).await.is_err());
    let stored = read(&store, &reply).await;
    assert_eq!(
        (stored.status, stored.content.as_str()),
        (MessageStatus::Streaming, "kept")
    );
}

async fn finish_message_records_the_outcome_once(store: Store) {
    let reply = streaming_reply(&store).await;
    store
        .flush_generation(&GenerationFlush {
            message_id: reply.id.clone(),
            content: "partial".into(),
            generation_id: Some("gen-9".into()),
            reasoning_details: Some(json!([{"type": "reasoning.text", "text": "hm"}])),
            events: vec![event(1, "delta")],
            ..GenerationFlush::default()
        })
        .await
        .unwrap();

    let mut done = finish(&reply, MessageStatus::Complete, "partial and whole");
    done.reasoning = "hm, done".into();
    done.usage = Usage {
        prompt_tokens: Some(12),
        completion_tokens: Some(34),
        reasoning_tokens: Some(5),
        cached_tokens: Some(0),
        cost: Some(0.000_42),
    };
    done.finish_reason = Some("stop".into());
    done.provider = Some("Azure".into());
    done.events = vec![event(2, "done")];
    store.finish_message(&done).await.unwrap();

    let stored = read(&store, &reply).await;
    assert_eq!(stored.status, MessageStatus::Complete);
    assert_eq!(stored.content, "partial and whole");
    assert_eq!(stored.reasoning, "hm, done");
    assert_eq!(stored.usage, done.usage);
    assert_eq!(stored.finish_reason.as_deref(), Some("stop"));
    assert_eq!(stored.finished_at, Some(2_000));
    assert_eq!(stored.provider.as_deref(), Some("Azure"));
    assert_eq!(
        stored.generation_id.as_deref(),
        Some("gen-9"),
        "kept from the flush"
    );
    assert_eq!(
        stored.reasoning_details,
        Some(json!([{"type": "reasoning.text", "text": "hm"}]))
    );
    assert_eq!(stored.error_code, None);
    assert_eq!(store.max_event_seq(&reply.chat_id).await.unwrap(), 2);

    // A second finish (say, an error racing the stop button) changes nothing.
    let mut failed = finish(&reply, MessageStatus::Error, "");
    failed.error_code = Some("429".into());
    failed.error_message = Some("rate limited".into());
    store.finish_message(&failed).await.unwrap();
    assert_eq!(read(&store, &reply).await, stored);

    // An error outcome on another message.
    let other = streaming_reply(&store).await;
    let mut failed = finish(&other, MessageStatus::Error, "so far");
    failed.error_code = Some("502".into());
    failed.error_message = Some("provider returned error".into());
    store.finish_message(&failed).await.unwrap();
    let stored = read(&store, &other).await;
    assert_eq!(stored.status, MessageStatus::Error);
    assert_eq!(stored.content, "so far");
    assert_eq!(stored.error_code.as_deref(), Some("502"));
    assert_eq!(
        stored.error_message.as_deref(),
        Some("provider returned error")
    );
}

/// Invariant: a message leaves `streaming` once; later flushes store their events but
/// never touch its text.
async fn a_finished_message_is_never_rewritten_by_a_late_flush(store: Store) {
    let reply = streaming_reply(&store).await;
    store
        .finish_message(&finish(&reply, MessageStatus::Stopped, "stopped here"))
        .await
        .unwrap();

    store
        .flush_generation(&GenerationFlush {
            message_id: reply.id.clone(),
            content: "stopped here and then some".into(),
            events: vec![event(1, "delta")],
            ..GenerationFlush::default()
        })
        .await
        .unwrap();

    let stored = read(&store, &reply).await;
    assert_eq!(stored.status, MessageStatus::Stopped);
    assert_eq!(stored.content, "stopped here");
    assert_eq!(store.max_event_seq(&reply.chat_id).await.unwrap(), 1);
}

async fn events_after_resumes_after_the_given_seq(store: Store) {
    let reply = streaming_reply(&store).await;
    let neighbour = streaming_reply(&store).await;
    for batch in [1..=4, 5..=10] {
        store
            .flush_generation(&GenerationFlush {
                message_id: reply.id.clone(),
                content: "x".into(),
                events: batch.map(|seq| event(seq, "delta")).collect(),
                ..GenerationFlush::default()
            })
            .await
            .unwrap();
    }
    store
        .flush_generation(&GenerationFlush {
            message_id: neighbour.id.clone(),
            events: vec![event(1, "delta"), event(2, "delta")],
            ..GenerationFlush::default()
        })
        .await
        .unwrap();
    let seqs = |events: Vec<switchboard_store::StoredEvent>| {
        events.iter().map(|e| e.seq).collect::<Vec<_>>()
    };

    assert_eq!(
        seqs(store.events_after(&reply.chat_id, 4, 100).await.unwrap()),
        [5, 6, 7, 8, 9, 10]
    );
    assert_eq!(
        seqs(store.events_after(&reply.chat_id, 4, 3).await.unwrap()),
        [5, 6, 7]
    );
    assert_eq!(
        seqs(store.events_after(&reply.chat_id, 7, 3).await.unwrap()),
        [8, 9, 10]
    );
    assert!(
        store
            .events_after(&reply.chat_id, 10, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        seqs(
            store
                .events_after(&neighbour.chat_id, 0, 100)
                .await
                .unwrap()
        ),
        [1, 2]
    );
    assert!(
        store
            .events_after("c_missing", 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.max_event_seq(&reply.chat_id).await.unwrap(), 10);
}

/// The user deleted the chat mid-stream: the engine's next checkpoint must not fail.
async fn flushing_a_deleted_message_stores_nothing(store: Store) {
    let reply = streaming_reply(&store).await;
    assert!(store.delete_chat("default", &reply.chat_id).await.unwrap());

    store
        .flush_generation(&GenerationFlush {
            message_id: reply.id.clone(),
            content: "orphan".into(),
            events: vec![event(1, "delta")],
            ..GenerationFlush::default()
        })
        .await
        .unwrap();
    store
        .finish_message(&finish(&reply, MessageStatus::Complete, "orphan"))
        .await
        .unwrap();

    assert!(
        store
            .events_after(&reply.chat_id, 0, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn mark_streaming_interrupted_keeps_the_text(store: Store) {
    let first = streaming_reply(&store).await;
    let second = streaming_reply(&store).await;
    let done = streaming_reply(&store).await;
    store
        .flush_generation(&GenerationFlush {
            message_id: first.id.clone(),
            content: "half an ans".into(),
            ..GenerationFlush::default()
        })
        .await
        .unwrap();
    store
        .finish_message(&finish(&done, MessageStatus::Complete, "whole"))
        .await
        .unwrap();

    assert_eq!(store.mark_streaming_interrupted().await.unwrap(), 2);

    let first = read(&store, &first).await;
    assert_eq!(
        (first.status, first.content.as_str()),
        (MessageStatus::Interrupted, "half an ans")
    );
    assert_eq!(
        read(&store, &second).await.status,
        MessageStatus::Interrupted
    );
    assert_eq!(read(&store, &done).await.status, MessageStatus::Complete);
    let user_messages = store
        .list_messages("default", &first.chat_id)
        .await
        .unwrap();
    assert_eq!(user_messages[0].status, MessageStatus::Complete);
    assert_eq!(store.mark_streaming_interrupted().await.unwrap(), 0);
}
