//! Turns, running replies, the event log, stop requests and leases.

use std::time::Duration;

use switchboard_store::{
    ChatSettings, EventDraft, GenerationWrite, MessageStatus, NewMessage, NewTurn, Store,
    StoreError, TurnParent, WriteGroup,
};

use crate::helpers::{OWNER, append, event, finish, start_reply, user};

on_both_backends!(
    one_reply_per_chat_is_claimed_in_the_database,
    a_refused_turn_changes_nothing,
    an_edit_moves_the_path_in_the_same_transaction,
    a_streaming_reply_reads_with_every_appended_part,
    writes_of_a_reply_that_is_not_ours_change_nothing,
    finishing_compacts_the_deltas_and_happens_once,
    event_seqs_never_collide_between_concurrent_writers,
    a_write_stores_a_backlog_of_events_larger_than_one_statement,
    events_after_resumes_after_the_given_seq,
    a_stop_request_reaches_the_owner_at_its_next_write,
    one_group_write_answers_each_reply_on_its_own,
    replies_ended_in_one_group_each_end_on_their_own,
    leases_tell_live_owners_from_dead_ones,
    a_snapshot_agrees_with_its_last_event_seq,
    a_reply_is_searchable_once_finished,
    spend_is_summed_by_period_and_grouped,
    a_ledger_batch_is_stored_whole_whatever_its_size,
);

async fn chat(store: &Store) -> String {
    store
        .create_chat("default", "gen", &ChatSettings::default())
        .await
        .unwrap()
        .id
}

async fn one_reply_per_chat_is_claimed_in_the_database(store: Store) {
    let chat = chat(&store).await;
    let reply = start_reply(&store, &chat, "hello").await;
    assert_eq!(reply.status, MessageStatus::Streaming);
    let second = NewTurn {
        parent: TurnParent::End,
        messages: vec![user("again"), NewMessage::streaming_reply("m")],
        owner: "another-instance".into(),
        settings: None,
        files: Vec::new(),
    };
    let refused = store
        .start_turn("default", &chat, &second, |_, _| Vec::new())
        .await;
    assert!(
        matches!(refused, Err(StoreError::Busy { .. })),
        "{refused:?}"
    );
    // Once the first reply is finished, the chat takes the next turn.
    store
        .finish_message(&finish(&reply, MessageStatus::Complete, "hi"))
        .await
        .unwrap()
        .expect("finished");
    assert!(
        store
            .start_turn("default", &chat, &second, |_, _| Vec::new())
            .await
            .unwrap()
            .is_some()
    );
    // Another workspace's chat is not found.
    assert!(
        store
            .start_turn("other", &chat, &second, |_, _| Vec::new())
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_refused_turn_changes_nothing(store: Store) {
    let chat = chat(&store).await;
    let first = start_reply(&store, &chat, "hello").await;
    let before = store.list_messages("default", &chat).await.unwrap();
    let last_seq = store.last_event_seq(&chat).await.unwrap();
    // An edit of the first message while a reply streams: refused, and nothing is deleted.
    let edit = NewTurn {
        parent: TurnParent::Under(None),
        messages: vec![user("edited"), NewMessage::streaming_reply("m")],
        owner: OWNER.into(),
        settings: Some(ChatSettings {
            model: Some("changed/model".into()),
            ..ChatSettings::default()
        }),
        files: Vec::new(),
    };
    let refused = store
        .start_turn("default", &chat, &edit, |_, _| vec![event("deleted")])
        .await;
    assert!(matches!(refused, Err(StoreError::Busy { .. })));
    assert_eq!(store.list_messages("default", &chat).await.unwrap(), before);
    assert_eq!(store.last_event_seq(&chat).await.unwrap(), last_seq);
    let settings = store
        .get_chat("default", &chat)
        .await
        .unwrap()
        .unwrap()
        .settings;
    assert_eq!(settings.model, None, "the settings were not saved either");
    assert_eq!(first.seq, 2);
}

async fn an_edit_moves_the_path_in_the_same_transaction(store: Store) {
    let chat = chat(&store).await;
    let first = start_reply(&store, &chat, "hello").await;
    store
        .finish_message(&finish(&first, MessageStatus::Complete, "hi"))
        .await
        .unwrap();
    let edit = NewTurn {
        parent: TurnParent::Under(None),
        messages: vec![user("edited"), NewMessage::streaming_reply("m")],
        owner: OWNER.into(),
        settings: None,
        files: Vec::new(),
    };
    let started = store
        .start_turn("default", &chat, &edit, |replaced, added| {
            assert_eq!(replaced.len(), 2);
            assert_eq!(added.len(), 2);
            vec![event("branch"), event("message"), event("message")]
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started.replaced.len(), 2);
    let seqs: Vec<i64> = started.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs.len(), 3);
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    let messages = store.list_messages("default", &chat).await.unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].content, "edited");
    // The old turn is kept, off the path.
    let old = store
        .get_message("default", &chat, &started.replaced[1])
        .await
        .unwrap()
        .expect("the old reply is kept");
    assert_eq!(old.content, "hi");
}

async fn a_streaming_reply_reads_with_every_appended_part(store: Store) {
    let chat = chat(&store).await;
    let reply = start_reply(&store, &chat, "hello").await;
    for word in ["one ", "two ", "three"] {
        let ack = append(&store, &reply, word).await.expect("ours");
        assert!(!ack.stop_requested);
        assert_eq!(ack.events.len(), 1);
    }
    let read = store
        .get_message("default", &chat, &reply.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.content, "one two three");
    assert_eq!(read.status, MessageStatus::Streaming);
    let page = store
        .list_messages_page("default", &chat, None, 10)
        .await
        .unwrap();
    assert_eq!(page[1].content, "one two three");
}

async fn writes_of_a_reply_that_is_not_ours_change_nothing(store: Store) {
    let chat = chat(&store).await;
    let reply = start_reply(&store, &chat, "hello").await;
    let last = store.last_event_seq(&chat).await.unwrap();
    let foreign = store
        .write_generation(&GenerationWrite {
            chat_id: chat.clone(),
            message_id: reply.id.clone(),
            owner: "somebody-else".into(),
            events: vec![event("delta")],
            ..GenerationWrite::default()
        })
        .await
        .unwrap();
    assert!(foreign.is_none());
    assert_eq!(
        store.last_event_seq(&chat).await.unwrap(),
        last,
        "its events were rolled back"
    );
    let mut theirs = finish(&reply, MessageStatus::Complete, "stolen");
    theirs.owner = Some("somebody-else".into());
    assert!(store.finish_message(&theirs).await.unwrap().is_none());
}

async fn finishing_compacts_the_deltas_and_happens_once(store: Store) {
    let chat = chat(&store).await;
    let reply = start_reply(&store, &chat, "hello").await;
    append(&store, &reply, "Hel").await.unwrap();
    append(&store, &reply, "lo").await.unwrap();
    let done = store
        .finish_message(&finish(&reply, MessageStatus::Complete, "Hello"))
        .await
        .unwrap()
        .expect("finished");
    assert_eq!(done.len(), 1);
    let events = store.events_after(&chat, 0, 100).await.unwrap();
    assert!(events.iter().all(|e| e.kind != "delta"), "{events:?}");
    assert_eq!(events.last().unwrap().kind, "done");
    let read = store
        .get_message("default", &chat, &reply.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.content, "Hello");
    assert_eq!(read.status, MessageStatus::Complete);
    // A second finish (a late retry, a sweeper) changes nothing and stores no event.
    assert!(
        store
            .finish_message(&finish(&reply, MessageStatus::Error, "other"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(append(&store, &reply, "late").await.is_none());
    let again = store
        .get_message("default", &chat, &reply.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.content.as_str(), again.status),
        ("Hello", MessageStatus::Complete)
    );
}

async fn event_seqs_never_collide_between_concurrent_writers(store: Store) {
    let chat = chat(&store).await;
    let writers: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            let chat = chat.clone();
            tokio::spawn(async move {
                let mut seqs = Vec::new();
                for _ in 0..10 {
                    let stored = store
                        .append_chat_events(&chat, &[event("chat"), event("chat")])
                        .await
                        .unwrap();
                    seqs.extend(stored.iter().map(|e| e.seq));
                }
                seqs
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in writers {
        all.extend(w.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=160).collect::<Vec<i64>>());
    let stored: Vec<i64> = store
        .events_after(&chat, 0, 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(stored, all);
}

async fn a_write_stores_a_backlog_of_events_larger_than_one_statement(store: Store) {
    let chat = chat(&store).await;
    let reply = start_reply(&store, &chat, "hello").await;
    let events: Vec<EventDraft> = (0..75)
        .map(|i| {
            let mut e = EventDraft::new("delta", &reply.id, format!("{{\"i\":{i}}}"));
            e.part = Some(switchboard_store::TextPart {
                content: format!("{i},"),
                reasoning: String::new(),
            });
            e
        })
        .collect();
    let ack = store
        .write_generation(&GenerationWrite {
            chat_id: chat.clone(),
            message_id: reply.id.clone(),
            owner: OWNER.into(),
            events,
            ..GenerationWrite::default()
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ack.events.len(), 75);
    let read = store.reply(&reply.id).await.unwrap().unwrap();
    let expected: String = (0..75).map(|i| format!("{i},")).collect();
    assert_eq!(read.content, expected, "parts read back in order");
}

async fn events_after_resumes_after_the_given_seq(store: Store) {
    let chat = chat(&store).await;
    let kinds = ["a", "b", "c", "d", "e"];
    for k in kinds {
        store.append_chat_events(&chat, &[event(k)]).await.unwrap();
    }
    let after_two: Vec<String> = store
        .events_after(&chat, 2, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(after_two, ["c", "d", "e"]);
    assert_eq!(store.events_after(&chat, 2, 1).await.unwrap().len(), 1);
    assert_eq!(store.last_event_seq(&chat).await.unwrap(), 5);
    // A chat that is gone stores nothing.
    store.delete_chat("default", &chat).await.unwrap();
    assert!(
        store
            .append_chat_events(&chat, &[event("x")])
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_stop_request_reaches_the_owner_at_its_next_write(store: Store) {
    let chat = chat(&store).await;
    assert!(
        store
            .request_stop("default", &chat, None)
            .await
            .unwrap()
            .is_empty()
    );
    let reply = start_reply(&store, &chat, "hello").await;
    // A write that touches the message row reports the flag (one of text only need not).
    let write = GenerationWrite {
        chat_id: chat.clone(),
        message_id: reply.id.clone(),
        owner: OWNER.into(),
        fields_changed: true,
        ..GenerationWrite::default()
    };
    let check_in = || store.write_generation(&write);
    assert!(!check_in().await.unwrap().unwrap().stop_requested);
    assert!(!store.stop_requested(&reply.id).await.unwrap());
    assert!(
        store
            .request_stop("other", &chat, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .request_stop("default", &chat, Some("m_other"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .request_stop("default", &chat, Some(&reply.id))
            .await
            .unwrap(),
        std::slice::from_ref(&reply.id)
    );
    assert!(check_in().await.unwrap().unwrap().stop_requested);
    assert!(store.stop_requested(&reply.id).await.unwrap());
    // Text-only writes carry on; the owner hears of the stop through the bus.
    assert!(append(&store, &reply, "b").await.is_some());
}

fn delta_write(reply: &switchboard_store::Message, owner: &str, texts: &[&str]) -> GenerationWrite {
    let events = texts
        .iter()
        .map(|text| {
            let mut delta =
                EventDraft::new("delta", &reply.id, format!(r#"{{"content":"{text}"}}"#));
            delta.part = Some(switchboard_store::TextPart {
                content: (*text).into(),
                reasoning: String::new(),
            });
            delta
        })
        .collect();
    GenerationWrite {
        chat_id: reply.chat_id.clone(),
        message_id: reply.id.clone(),
        owner: owner.into(),
        events,
        fields_changed: true,
        model: Some("served/model".into()),
        ..GenerationWrite::default()
    }
}

async fn replies_ended_in_one_group_each_end_on_their_own(store: Store) {
    // Two running replies with deltas and a third already ended elsewhere, in three chats; one
    // reply's write travels in the same group as the ends of the two others.
    let chats = [chat(&store).await, chat(&store).await, chat(&store).await];
    let first = start_reply(&store, &chats[0], "hello").await;
    let running = start_reply(&store, &chats[1], "hello").await;
    let lost = start_reply(&store, &chats[2], "again").await;
    store
        .write_generations(&[
            delta_write(&first, OWNER, &["a", "b"]),
            delta_write(&running, OWNER, &["c"]),
        ])
        .await
        .unwrap();
    store
        .finish_message(&finish(&lost, MessageStatus::Complete, "elsewhere"))
        .await
        .unwrap()
        .expect("finished");
    let seq_before = store.events_after(&chats[1], 0, 100).await.unwrap();
    let seq_before = seq_before.last().unwrap().seq;

    let ends = [
        finish(&first, MessageStatus::Complete, "ab"),
        finish(&lost, MessageStatus::Error, "never"),
    ];
    // A title for the chat whose reply ends, and one for a chat that has a title already.
    let title = |chat: &str| switchboard_store::TitleChange {
        chat_id: chat.to_owned(),
        default_title: "gen".into(),
        title: "Named".into(),
        announce: event("chat"),
    };
    let (titled, kept) = (title(&chats[0]), title(&chats[0]));
    let stored = store
        .write_group(WriteGroup {
            writes: &[delta_write(&running, OWNER, &["d"])],
            finishes: &[&ends[0], &ends[1]],
            titles: &[&titled, &kept],
        })
        .await
        .unwrap();
    let (acks, ended) = (&stored.writes, &stored.finishes);
    assert_eq!(acks.len(), 1);
    assert_eq!(ended.len(), 2);
    assert_eq!(acks[0].as_ref().unwrap().events[0].seq, seq_before + 1);
    let done = ended[0].as_ref().expect("ours, ended");
    assert_eq!(
        done.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
        ["done"]
    );
    let named = stored.titles[0].as_ref().expect("titled");
    assert_eq!(named[0].seq, done[0].seq + 1, "the title after the end");
    assert!(stored.titles[1].is_none(), "a chat titled once keeps it");
    let chat0 = store.get_chat("default", &chats[0]).await.unwrap().unwrap();
    assert_eq!(chat0.title, "Named");
    assert!(
        ended[1].is_none(),
        "a reply ended elsewhere is not ended again"
    );

    // The ended reply has its text and status, and only its own deltas were compacted.
    let a = store.reply(&first.id).await.unwrap().unwrap();
    assert_eq!(
        (a.content.as_str(), a.status),
        ("ab", MessageStatus::Complete)
    );
    let kinds = |events: Vec<switchboard_store::StoredEvent>, id: &str| {
        events
            .into_iter()
            .filter(|e| e.message_id == id)
            .map(|e| e.kind)
            .collect::<Vec<_>>()
    };
    let events0 = store.events_after(&chats[0], 0, 100).await.unwrap();
    assert_eq!(kinds(events0.clone(), &first.id), ["done"]);
    assert_eq!(events0.last().unwrap().seq, named[0].seq);
    let events1 = store.events_after(&chats[1], 0, 100).await.unwrap();
    assert_eq!(kinds(events1, &running.id), ["delta", "delta"]);
    let events2 = store.events_after(&chats[2], 0, 100).await.unwrap();
    assert_eq!(kinds(events2, &lost.id), ["done"], "only its first end");
    let l = store.reply(&lost.id).await.unwrap().unwrap();
    assert_eq!(
        (l.content.as_str(), l.status),
        ("elsewhere", MessageStatus::Complete)
    );
    let c = store.reply(&running.id).await.unwrap().unwrap();
    assert_eq!(
        (c.content.as_str(), c.status),
        ("cd", MessageStatus::Streaming)
    );
}

async fn one_group_write_answers_each_reply_on_its_own(store: Store) {
    // Three running replies in three chats, one of them no longer ours, written in one group.
    let chats = [chat(&store).await, chat(&store).await, chat(&store).await];
    let mut replies = Vec::new();
    for chat in &chats {
        replies.push(start_reply(&store, chat, "hello").await);
    }
    // Another chat event first, so seqs differ between chats.
    store
        .append_chat_events(&chats[1], &[event("title")])
        .await
        .unwrap();
    store
        .finish_message(&finish(
            &replies[2],
            MessageStatus::Complete,
            "done elsewhere",
        ))
        .await
        .unwrap()
        .expect("finished");
    let before = store.events_after(&chats[1], 0, 100).await.unwrap();
    let writes = [
        delta_write(&replies[0], OWNER, &["a", "b"]),
        delta_write(&replies[1], OWNER, &["c"]),
        delta_write(&replies[2], OWNER, &["lost"]),
    ];
    let acks = store.write_generations(&writes).await.unwrap();
    assert_eq!(acks.len(), 3);
    let seqs = |i: usize| -> Vec<i64> {
        acks[i]
            .as_ref()
            .unwrap()
            .events
            .iter()
            .map(|e| e.seq)
            .collect()
    };
    let last0 = store.events_after(&chats[0], 0, 100).await.unwrap();
    assert_eq!(
        seqs(0),
        last0
            .iter()
            .rev()
            .take(2)
            .rev()
            .map(|e| e.seq)
            .collect::<Vec<_>>()
    );
    assert_eq!(seqs(1), vec![before.last().unwrap().seq + 1]);
    assert!(
        acks[2].is_none(),
        "a reply finished elsewhere is not written"
    );
    // Each reply reads back with its own text, and the metadata was written.
    let a = store.reply(&replies[0].id).await.unwrap().unwrap();
    assert_eq!(
        (a.content.as_str(), a.model.as_deref()),
        ("ab", Some("served/model"))
    );
    let c = store.reply(&replies[1].id).await.unwrap().unwrap();
    assert_eq!(c.content, "c");
    let lost = store.reply(&replies[2].id).await.unwrap().unwrap();
    assert_eq!(lost.content, "done elsewhere");
    // Two writes for one chat in one group get consecutive seqs, in order.
    let acks = store
        .write_generations(&[
            delta_write(&replies[0], OWNER, &["d"]),
            delta_write(&replies[0], OWNER, &["e"]),
        ])
        .await
        .unwrap();
    let first = acks[0].as_ref().unwrap().events[0].seq;
    assert_eq!(acks[1].as_ref().unwrap().events[0].seq, first + 1);
    let a = store.reply(&replies[0].id).await.unwrap().unwrap();
    assert_eq!(a.content, "abde");
}

async fn leases_tell_live_owners_from_dead_ones(store: Store) {
    let chat_a = chat(&store).await;
    let chat_b = chat(&store).await;
    store.heartbeat(OWNER).await.unwrap();
    let mine = start_reply(&store, &chat_a, "hello").await;
    let turn = NewTurn {
        parent: TurnParent::End,
        messages: vec![NewMessage::streaming_reply("m")],
        owner: "a-dead-instance".into(),
        settings: None,
        files: Vec::new(),
    };
    let theirs = store
        .start_turn("default", &chat_b, &turn, |_, _| Vec::new())
        .await
        .unwrap()
        .unwrap()
        .messages
        .remove(0);
    let replies = store
        .streaming_replies(Duration::from_secs(30))
        .await
        .unwrap();
    let alive = |id: &str| {
        replies
            .iter()
            .find(|r| r.message_id == id)
            .unwrap()
            .owner_alive
    };
    assert!(alive(&mine.id));
    assert!(!alive(&theirs.id), "an owner with no lease is dead");
    store.release_lease(OWNER).await.unwrap();
    let replies = store
        .streaming_replies(Duration::from_secs(30))
        .await
        .unwrap();
    assert!(replies.iter().all(|r| !r.owner_alive));
}

async fn a_snapshot_agrees_with_its_last_event_seq(store: Store) {
    let chat = chat(&store).await;
    let reply = start_reply(&store, &chat, "hello").await;
    append(&store, &reply, "partial").await.unwrap();
    let snapshot = store
        .chat_snapshot("default", &chat, None, 50)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snapshot.messages.len(), 2);
    assert_eq!(snapshot.messages[1].content, "partial");
    assert_eq!(
        snapshot.last_event_seq,
        store.last_event_seq(&chat).await.unwrap()
    );
    assert!(!snapshot.has_more);
    assert!(
        store
            .chat_snapshot("other", &chat, None, 50)
            .await
            .unwrap()
            .is_none()
    );
    let one = store
        .chat_snapshot("default", &chat, None, 1)
        .await
        .unwrap()
        .unwrap();
    assert!(one.has_more);
    assert_eq!(one.messages.len(), 1);
}

async fn a_reply_is_searchable_once_finished(store: Store) {
    let chat = chat(&store).await;
    let reply = start_reply(&store, &chat, "hello").await;
    append(&store, &reply, "walrus").await.unwrap();
    assert!(
        store
            .search("default", "walrus", 10)
            .await
            .unwrap()
            .is_empty(),
        "a streaming reply is indexed once, at its end"
    );
    store
        .finish_message(&finish(&reply, MessageStatus::Complete, "walrus"))
        .await
        .unwrap();
    assert_eq!(
        store.search("default", "walrus", 10).await.unwrap().len(),
        1
    );
}

async fn spend_is_summed_by_period_and_grouped(store: Store) {
    const DAY: i64 = 86_400_000;
    let at = |day: i64, hour: i64| day * DAY + hour * 3_600_000;
    for (ws, model, cost, when) in [
        ("a", "m/one", 0.5, at(20_000, 1)),
        ("a", "m/two", 0.25, at(20_000, 23)),
        ("a", "m/one", 1.0, at(20_001, 0)),
        ("b", "m/one", 9.0, at(20_001, 2)),
    ] {
        store
            .record_spend(&switchboard_store::Spend {
                workspace: ws.into(),
                entry: "chat".into(),
                model: Some(model.into()),
                prompt_tokens: Some(10),
                completion_tokens: Some(5),
                cost: Some(cost),
                at: when,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    assert_eq!(store.spent_since("a", at(20_000, 0)).await.unwrap(), 1.75);
    assert_eq!(store.spent_since("a", at(20_001, 0)).await.unwrap(), 1.0);
    assert_eq!(store.spent_since("nobody", 0).await.unwrap(), 0.0);
    let by_day = store
        .spend_report(
            Some("a"),
            0,
            at(30_000, 0),
            switchboard_store::SpendGroup::Day,
        )
        .await
        .unwrap();
    let days: Vec<(String, i64, f64)> = by_day
        .iter()
        .map(|r| (r.key.clone(), r.requests, r.cost))
        .collect();
    assert_eq!(days, [("20000".into(), 2, 0.75), ("20001".into(), 1, 1.0)]);
    assert_eq!(by_day[0].prompt_tokens, 20);
    let by_model = store
        .spend_report(None, 0, at(30_000, 0), switchboard_store::SpendGroup::Model)
        .await
        .unwrap();
    assert_eq!(by_model[0].key, "m/one");
    assert_eq!(by_model[0].cost, 10.5);
    let by_ws = store
        .spend_report(
            None,
            at(20_001, 0),
            at(20_002, 0),
            switchboard_store::SpendGroup::Workspace,
        )
        .await
        .unwrap();
    let keys: Vec<&str> = by_ws.iter().map(|r| r.key.as_str()).collect();
    assert_eq!(keys, ["a", "b"]);
}

async fn a_ledger_batch_is_stored_whole_whatever_its_size(store: Store) {
    let spend = |i: i64| switchboard_store::Spend {
        workspace: "ledger".into(),
        entry: "chat".into(),
        model: Some("m/one".into()),
        cost: Some(0.5),
        at: 1_000 + i,
        ..Default::default()
    };
    store.record_spends(&[]).await.unwrap();
    // One row (one statement, no transaction), then more rows than one INSERT holds.
    store.record_spends(&[spend(0)]).await.unwrap();
    assert_eq!(store.spent_since("ledger", 0).await.unwrap(), 0.5);
    let batch: Vec<_> = (1..=150).map(spend).collect();
    store.record_spends(&batch).await.unwrap();
    assert_eq!(store.spent_since("ledger", 0).await.unwrap(), 75.5);
    assert_eq!(
        store.spent_since("ledger", 1_150).await.unwrap(),
        0.5,
        "the last row of the last INSERT"
    );
}
