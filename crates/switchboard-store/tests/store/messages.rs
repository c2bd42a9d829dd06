//! Messages: seq order, paging, deletion, and every field surviving a round trip.

use serde_json::json;
use switchboard_store::{ChatSettings, MessageStatus, NewMessage, Role, Store};

use crate::helpers::user;

on_both_backends!(
    messages_get_increasing_seqs_and_bump_the_chat,
    concurrent_inserts_into_one_chat_get_distinct_seqs,
    message_fields_round_trip,
    list_messages_page_reads_backwards_in_ascending_pages,
    delete_message_and_delete_messages_from,
);

async fn messages_get_increasing_seqs_and_bump_the_chat(store: Store) {
    let chat = store
        .create_chat("default", "c", &ChatSettings::default())
        .await
        .unwrap();
    let mut inserted = Vec::new();
    for text in ["one", "two", "three"] {
        inserted.push(
            store
                .insert_message("default", &chat.id, &user(text))
                .await
                .unwrap()
                .unwrap(),
        );
    }

    let seqs: Vec<i64> = inserted.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert!(
        inserted
            .iter()
            .all(|m| m.id.starts_with("m_") && m.chat_id == chat.id)
    );
    assert_eq!(
        store.list_messages("default", &chat.id).await.unwrap(),
        inserted
    );
    assert_eq!(
        store
            .get_message("default", &chat.id, &inserted[1].id)
            .await
            .unwrap(),
        Some(inserted[1].clone())
    );
    assert_eq!(
        store
            .get_message("default", &chat.id, "m_missing")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .insert_message("default", "c_missing", &user("x"))
            .await
            .unwrap(),
        None
    );

    let mut later = user("from the future");
    later.created_at = Some(chat.updated_at + 3_600_000);
    store
        .insert_message("default", &chat.id, &later)
        .await
        .unwrap()
        .unwrap();
    let bumped = store.get_chat("default", &chat.id).await.unwrap().unwrap();
    assert_eq!(bumped.updated_at, chat.updated_at + 3_600_000);

    // After deleting the newest message the next one still sorts last.
    let fourth = store
        .list_messages("default", &chat.id)
        .await
        .unwrap()
        .pop()
        .unwrap();
    store
        .delete_message("default", &chat.id, &fourth.id)
        .await
        .unwrap();
    let fifth = store
        .insert_message("default", &chat.id, &user("five"))
        .await
        .unwrap()
        .unwrap();
    assert!(fifth.seq > inserted[2].seq);
}

async fn concurrent_inserts_into_one_chat_get_distinct_seqs(store: Store) {
    let chat = store
        .create_chat("default", "busy", &ChatSettings::default())
        .await
        .unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            let chat_id = chat.id.clone();
            tokio::spawn(async move {
                store
                    .insert_message("default", &chat_id, &user(&format!("m{i}")))
                    .await
                    .unwrap()
                    .unwrap()
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    let seqs: Vec<i64> = store
        .list_messages("default", &chat.id)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<_>>());
}

async fn message_fields_round_trip(store: Store) {
    let chat = store
        .create_chat("default", "c", &ChatSettings::default())
        .await
        .unwrap();
    let new = NewMessage {
        id: None,
        role: Role::User,
        content: "what's in these? «ünïcödé» 日本語 \"quotes\" 'single' \\ \n newline".into(),
        reasoning: "thinking".into(),
        attachments: Some(json!(["data:image/png;base64,iVBORw0KGgo=", {"ref": "file_1"}])),
        model: Some("google/gemini-2.5-pro".into()),
        provider: Some("Google".into()),
        status: MessageStatus::Complete,
        created_at: Some(1_700_000_000_123),
    };

    let stored = store
        .insert_message("default", &chat.id, &new)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(stored.role, Role::User);
    assert_eq!(stored.content, new.content);
    assert_eq!(stored.reasoning, "thinking");
    assert_eq!(stored.attachments, new.attachments);
    assert_eq!(stored.model, new.model);
    assert_eq!(stored.provider, new.provider);
    assert_eq!(stored.status, MessageStatus::Complete);
    assert_eq!(stored.created_at, 1_700_000_000_123);
    assert_eq!(stored.reasoning_details, None);
    assert_eq!(stored.usage, Default::default());
    assert_eq!(
        store
            .get_message("default", &chat.id, &stored.id)
            .await
            .unwrap(),
        Some(stored)
    );

    for role in [Role::System, Role::Assistant, Role::Tool] {
        let message = store
            .insert_message("default", &chat.id, &NewMessage::new(role, "r"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            store
                .get_message("default", &chat.id, &message.id)
                .await
                .unwrap()
                .unwrap()
                .role,
            role
        );
    }
}

async fn list_messages_page_reads_backwards_in_ascending_pages(store: Store) {
    let chat = store
        .create_chat("default", "long", &ChatSettings::default())
        .await
        .unwrap();
    for i in 1..=10 {
        store
            .insert_message("default", &chat.id, &user(&format!("m{i}")))
            .await
            .unwrap();
    }
    let seqs =
        |page: Vec<switchboard_store::Message>| page.iter().map(|m| m.seq).collect::<Vec<_>>();

    assert_eq!(
        seqs(
            store
                .list_messages_page("default", &chat.id, None, 3)
                .await
                .unwrap()
        ),
        [8, 9, 10]
    );
    assert_eq!(
        seqs(
            store
                .list_messages_page("default", &chat.id, Some(8), 3)
                .await
                .unwrap()
        ),
        [5, 6, 7]
    );
    assert_eq!(
        seqs(
            store
                .list_messages_page("default", &chat.id, Some(3), 3)
                .await
                .unwrap()
        ),
        [1, 2]
    );
    assert!(
        store
            .list_messages_page("default", &chat.id, Some(1), 3)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .list_messages_page("default", &chat.id, None, 100)
            .await
            .unwrap()
            .len(),
        10
    );
    assert!(
        store
            .list_messages_page("default", &chat.id, None, 0)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn delete_message_and_delete_messages_from(store: Store) {
    let chat = store
        .create_chat("default", "edit", &ChatSettings::default())
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 1..=5 {
        ids.push(
            store
                .insert_message("default", &chat.id, &user(&format!("m{i}")))
                .await
                .unwrap()
                .unwrap()
                .id,
        );
    }

    assert!(
        store
            .delete_message("default", &chat.id, &ids[0])
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_message("default", &chat.id, &ids[0])
            .await
            .unwrap()
    );

    // Edit-and-resend of message 3: drop it and everything after.
    assert_eq!(
        store
            .delete_messages_from("default", &chat.id, 3)
            .await
            .unwrap(),
        ids[2..]
    );
    let left: Vec<String> = store
        .list_messages("default", &chat.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(left, [ids[1].clone()]);
    assert!(
        store
            .delete_messages_from("default", &chat.id, 3)
            .await
            .unwrap()
            .is_empty()
    );

    let resent = store
        .insert_message("default", &chat.id, &user("m3 edited"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resent.seq, 3);
}
