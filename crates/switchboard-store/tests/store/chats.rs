//! Chats: CRUD, listing, workspace isolation, fork and import.

use serde_json::json;
use switchboard_store::{
    ChatPage, ChatPatch, ChatSettings, MessageStatus, NewMessage, Role, Store,
};

use crate::helpers::user;

on_both_backends!(
    creating_a_chat_returns_what_get_reads_back,
    workspaces_never_see_each_others_chats,
    list_chats_pages_newest_first_without_gaps,
    update_chat_patches_only_given_fields,
    touch_chat_only_moves_forward,
    deleting_a_chat_deletes_its_messages_events_and_search_entries,
    set_title_if_default_never_overwrites_a_chosen_title,
    fork_copies_messages_up_to_the_chosen_one,
    import_chat_keeps_history_order_and_times,
    pinned_chats_are_listed_apart_and_keep_their_place,
);

fn settings() -> ChatSettings {
    ChatSettings {
        model: Some("anthropic/claude-sonnet-4".into()),
        system_prompt: Some("Be brief.".into()),
        temperature: Some(0.7),
        top_p: Some(0.95),
        max_tokens: Some(4096),
        reasoning_effort: Some("high".into()),
        history_length: Some(12),
        frequency_penalty: Some(0.5),
        presence_penalty: Some(-0.5),
        provider: Some(json!({"sort": "price", "zdr": true})),
        fallback_models: Some(vec!["openai/gpt-5".into()]),
        web_search: Some(switchboard_store::WebSearch {
            enabled: true,
            max_results: Some(5),
            engine: Some("exa".into()),
        }),
        reasoning_max_tokens: Some(2048),
        reasoning_exclude: Some(false),
        mcp_servers: Some(vec!["files".into()]),
        pdf_engine: Some("mistral-ocr".into()),
    }
}

async fn creating_a_chat_returns_what_get_reads_back(store: Store) {
    let chat = store
        .create_chat("default", "New chat", &settings())
        .await
        .unwrap();

    assert!(chat.id.starts_with("c_"));
    assert_eq!(chat.workspace, "default");
    assert_eq!(chat.created_at, chat.updated_at);
    assert_eq!(chat.forked_from, None);
    assert_eq!(
        store.get_chat("default", &chat.id).await.unwrap(),
        Some(chat.clone())
    );
    assert_eq!(store.get_chat("default", "c_missing").await.unwrap(), None);

    let plain = store
        .create_chat("default", "Plain", &ChatSettings::default())
        .await
        .unwrap();
    let plain_read = store.get_chat("default", &plain.id).await.unwrap().unwrap();
    assert_eq!(plain_read.settings, ChatSettings::default());
}

/// Invariant: another workspace's chat id behaves exactly like an id that does not exist,
/// for every workspace-scoped call, and cannot change anything.
async fn workspaces_never_see_each_others_chats(store: Store) {
    let chat = store
        .create_chat("code-aaa", "Secret plans", &settings())
        .await
        .unwrap();
    let message = store
        .insert_message(
            "code-aaa",
            &chat.id,
            &user("the secret ingredient is basil"),
        )
        .await
        .unwrap()
        .unwrap();
    let other = "key-bbb";

    assert_eq!(store.get_chat(other, &chat.id).await.unwrap(), None);
    assert!(
        store
            .list_chats(
                other,
                ChatPage {
                    limit: 50,
                    before: None
                }
            )
            .await
            .unwrap()
            .is_empty()
    );
    let patch = ChatPatch {
        title: Some("pwned".into()),
        settings: None,
    };
    assert_eq!(
        store.update_chat(other, &chat.id, &patch).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .insert_message(other, &chat.id, &user("hi"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .get_message(other, &chat.id, &message.id)
            .await
            .unwrap(),
        None
    );
    assert!(
        store
            .list_messages(other, &chat.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .list_messages_page(other, &chat.id, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.search(other, "basil", 10).await.unwrap().is_empty());
    assert_eq!(
        store.fork_chat(other, &chat.id, &message.id).await.unwrap(),
        None
    );
    assert!(
        !store
            .delete_message(other, &chat.id, &message.id)
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_messages_from(other, &chat.id, 0)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!store.delete_chat(other, &chat.id).await.unwrap());

    // Nothing above touched the owner's data.
    let owner_view = store.get_chat("code-aaa", &chat.id).await.unwrap().unwrap();
    assert_eq!(owner_view.title, "Secret plans");
    assert_eq!(
        store.list_messages("code-aaa", &chat.id).await.unwrap(),
        vec![message]
    );
    assert_eq!(
        store.search("code-aaa", "basil", 10).await.unwrap().len(),
        1
    );
}

async fn list_chats_pages_newest_first_without_gaps(store: Store) {
    let mut ids = Vec::new();
    for i in 0..7 {
        let chat = store
            .create_chat("default", &format!("chat {i}"), &settings())
            .await
            .unwrap();
        // Two pairs share an updated_at so the id tie-break is exercised.
        store
            .touch_chat(&chat.id, 10_000_000_000_000 + i / 2)
            .await
            .unwrap();
        ids.push(chat.id);
    }
    store
        .create_chat("elsewhere", "not mine", &settings())
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_chats(
                "default",
                ChatPage {
                    limit: 3,
                    before: before.clone(),
                },
            )
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        let last = page.last().unwrap();
        before = Some((last.updated_at, last.id.clone()));
        seen.extend(page);
    }

    assert_eq!(seen.len(), 7, "every chat exactly once: {seen:?}");
    for pair in seen.windows(2) {
        assert!(
            (pair[0].updated_at, &pair[0].id) > (pair[1].updated_at, &pair[1].id),
            "not in (updated_at, id) descending order: {pair:?}"
        );
    }
    assert_eq!(seen[0].model.as_deref(), Some("anthropic/claude-sonnet-4"));
    let mut seen_ids: Vec<_> = seen.iter().map(|c| c.id.clone()).collect();
    seen_ids.sort();
    ids.sort();
    assert_eq!(seen_ids, ids);

    assert!(
        store
            .list_chats(
                "default",
                ChatPage {
                    limit: 0,
                    before: None
                }
            )
            .await
            .unwrap()
            .is_empty()
    );
}

async fn update_chat_patches_only_given_fields(store: Store) {
    let chat = store
        .create_chat("default", "Before", &settings())
        .await
        .unwrap();

    let renamed = store
        .update_chat(
            "default",
            &chat.id,
            &ChatPatch {
                title: Some("After".into()),
                settings: None,
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(renamed.title, "After");
    assert_eq!(renamed.settings, settings());
    assert!(renamed.updated_at >= chat.updated_at);

    let new_settings = ChatSettings {
        model: Some("openai/gpt-5".into()),
        ..ChatSettings::default()
    };
    let reconfigured = store
        .update_chat(
            "default",
            &chat.id,
            &ChatPatch {
                title: None,
                settings: Some(new_settings.clone()),
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reconfigured.title, "After");
    assert_eq!(reconfigured.settings, new_settings);
    assert_eq!(
        store.get_chat("default", &chat.id).await.unwrap(),
        Some(reconfigured)
    );

    let missing = store
        .update_chat("default", "c_missing", &ChatPatch::default())
        .await
        .unwrap();
    assert_eq!(missing, None);
}

async fn touch_chat_only_moves_forward(store: Store) {
    let chat = store
        .create_chat("default", "t", &settings())
        .await
        .unwrap();
    let later = chat.updated_at + 60_000;

    store.touch_chat(&chat.id, later).await.unwrap();
    store
        .touch_chat(&chat.id, chat.updated_at - 60_000)
        .await
        .unwrap();

    let read = store.get_chat("default", &chat.id).await.unwrap().unwrap();
    assert_eq!(read.updated_at, later);
    assert_eq!(read.created_at, chat.created_at);
    store.touch_chat("c_missing", later).await.unwrap();
}

async fn deleting_a_chat_deletes_its_messages_events_and_search_entries(store: Store) {
    let doomed = store
        .create_chat("default", "doomed", &settings())
        .await
        .unwrap();
    let kept = store
        .create_chat("default", "kept", &settings())
        .await
        .unwrap();
    let reply = crate::helpers::start_reply(&store, &doomed.id, "question").await;
    crate::helpers::append(&store, &reply, "ephemeral zebra").await;
    store
        .finish_message(&crate::helpers::finish(
            &reply,
            switchboard_store::MessageStatus::Complete,
            "ephemeral zebra",
        ))
        .await
        .unwrap();
    store
        .insert_message("default", &kept.id, &user("persistent zebra"))
        .await
        .unwrap();

    assert!(store.delete_chat("default", &doomed.id).await.unwrap());

    assert_eq!(store.get_chat("default", &doomed.id).await.unwrap(), None);
    assert!(
        store
            .list_messages("default", &doomed.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .events_after(&doomed.id, 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.last_event_seq(&doomed.id).await.unwrap(), 0);
    let hits = store.search("default", "zebra", 10).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].chat_id, kept.id);
    assert!(!store.delete_chat("default", &doomed.id).await.unwrap());
    assert_eq!(
        store
            .list_messages("default", &kept.id)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn set_title_if_default_never_overwrites_a_chosen_title(store: Store) {
    let chat = store
        .create_chat("default", "New chat", &settings())
        .await
        .unwrap();
    let announced = store
        .set_title_if_default(&chat.id, "New chat", "Basil recipes", title_event(&chat.id))
        .await
        .unwrap()
        .expect("the default title changes");
    assert_eq!(announced.len(), 1);
    assert_eq!(announced[0].kind, "chat");
    // The event is stored with the title: a follower resuming from before it reads it.
    let events = store.events_after(&chat.id, 0, 100).await.unwrap();
    assert_eq!(events.last().map(|e| e.seq), Some(announced[0].seq));
    assert_eq!(
        store
            .get_chat("default", &chat.id)
            .await
            .unwrap()
            .unwrap()
            .title,
        "Basil recipes"
    );

    let named = store
        .create_chat("default", "New chat", &settings())
        .await
        .unwrap();
    store
        .update_chat(
            "default",
            &named.id,
            &ChatPatch {
                title: Some("Mine".into()),
                settings: None,
            },
        )
        .await
        .unwrap();
    let before = store.last_event_seq(&named.id).await.unwrap();
    assert!(
        store
            .set_title_if_default(&named.id, "New chat", "Generated", title_event(&named.id))
            .await
            .unwrap()
            .is_none()
    );
    // Nothing is announced when nothing changed.
    assert_eq!(store.last_event_seq(&named.id).await.unwrap(), before);
    assert_eq!(
        store
            .get_chat("default", &named.id)
            .await
            .unwrap()
            .unwrap()
            .title,
        "Mine"
    );
    assert!(
        store
            .set_title_if_default("c_missing", "New chat", "x", title_event("c_missing"))
            .await
            .unwrap()
            .is_none()
    );
}

fn title_event(chat_id: &str) -> switchboard_store::EventDraft {
    switchboard_store::EventDraft::new("chat", "", format!(r#"{{"id":"{chat_id}"}}"#))
}

async fn fork_copies_messages_up_to_the_chosen_one(store: Store) {
    let chat = store
        .create_chat("default", "Origin", &settings())
        .await
        .unwrap();
    let mut asked = user("look at this");
    asked.attachments = Some(json!(["data:image/png;base64,AAAA"]));
    let first = store
        .insert_message("default", &chat.id, &asked)
        .await
        .unwrap()
        .unwrap();
    let mut answer = NewMessage::new(Role::Assistant, "a cat");
    answer.reasoning = "pixels look feline".into();
    answer.model = Some("openai/gpt-5".into());
    let second = store
        .insert_message("default", &chat.id, &answer)
        .await
        .unwrap()
        .unwrap();
    store
        .insert_message("default", &chat.id, &user("later"))
        .await
        .unwrap()
        .unwrap();

    let fork = store
        .fork_chat("default", &chat.id, &second.id)
        .await
        .unwrap()
        .unwrap();

    assert_ne!(fork.id, chat.id);
    assert_eq!(fork.title, "Origin (fork)");
    assert_eq!(fork.settings, chat.settings);
    assert_eq!(fork.forked_from.as_deref(), Some(chat.id.as_str()));
    assert_eq!(
        store.get_chat("default", &fork.id).await.unwrap(),
        Some(fork.clone())
    );
    let copies = store.list_messages("default", &fork.id).await.unwrap();
    assert_eq!(copies.len(), 2);
    for (i, (copy, original)) in copies.iter().zip([&first, &second]).enumerate() {
        assert_ne!(copy.id, original.id);
        assert_eq!(copy.chat_id, fork.id);
        // The copies form their own chain.
        let parent_id = i.checked_sub(1).map(|p| copies[p].id.clone());
        let renamed = switchboard_store::Message {
            id: copy.id.clone(),
            chat_id: copy.chat_id.clone(),
            parent_id,
            ..original.clone()
        };
        assert_eq!(copy, &renamed);
    }
    assert_eq!(
        store
            .list_messages("default", &chat.id)
            .await
            .unwrap()
            .len(),
        3
    );

    // The fork point must be a message of that chat.
    let other = store
        .create_chat("default", "Other", &settings())
        .await
        .unwrap();
    let stranger = store
        .insert_message("default", &other.id, &user("x"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store
            .fork_chat("default", &chat.id, &stranger.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .fork_chat("default", "c_missing", &first.id)
            .await
            .unwrap(),
        None
    );

    // A copy of a message still being written is marked interrupted: nothing will finish it.
    let streaming = store
        .insert_message("default", &chat.id, &NewMessage::streaming_reply("m"))
        .await
        .unwrap()
        .unwrap();
    let fork2 = store
        .fork_chat("default", &chat.id, &streaming.id)
        .await
        .unwrap()
        .unwrap();
    let copies = store.list_messages("default", &fork2.id).await.unwrap();
    assert_eq!(copies.len(), 4);
    assert_eq!(copies[3].status, MessageStatus::Interrupted);

    // Deleting the origin leaves the fork, now without a dangling reference.
    assert!(store.delete_chat("default", &chat.id).await.unwrap());
    let orphan = store.get_chat("default", &fork.id).await.unwrap().unwrap();
    assert_eq!(orphan.forked_from, None);
    assert_eq!(
        store
            .list_messages("default", &fork.id)
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn import_chat_keeps_history_order_and_times(store: Store) {
    let mut messages = Vec::new();
    for (i, role) in [Role::System, Role::User, Role::Assistant, Role::User]
        .into_iter()
        .enumerate()
    {
        let mut message = NewMessage::new(role, format!("line {i}"));
        message.created_at = Some(1_600_000_000_000 + i as i64 * 1_000);
        messages.push(message);
    }
    messages[2].created_at = None; // falls back to the chat's creation time

    let chat = store
        .import_chat(
            "default",
            "From NextChat",
            &settings(),
            1_599_999_999_000,
            &messages,
        )
        .await
        .unwrap();

    assert_eq!(chat.created_at, 1_599_999_999_000);
    assert_eq!(chat.updated_at, 1_600_000_000_000 + 3_000);
    assert_eq!(
        store.get_chat("default", &chat.id).await.unwrap(),
        Some(chat.clone())
    );
    let stored = store.list_messages("default", &chat.id).await.unwrap();
    let summary: Vec<_> = stored
        .iter()
        .map(|m| (m.seq, m.role, m.content.as_str(), m.created_at))
        .collect();
    assert_eq!(
        summary,
        [
            (1, Role::System, "line 0", 1_600_000_000_000),
            (2, Role::User, "line 1", 1_600_000_001_000),
            (3, Role::Assistant, "line 2", 1_599_999_999_000),
            (4, Role::User, "line 3", 1_600_000_003_000),
        ]
    );

    let empty = store
        .import_chat("default", "Empty", &settings(), 5, &[])
        .await
        .unwrap();
    assert_eq!(empty.updated_at, 5);
}

async fn pinned_chats_are_listed_apart_and_keep_their_place(store: Store) {
    let a = store
        .create_chat("default", "a", &ChatSettings::default())
        .await
        .unwrap();
    let b = store
        .create_chat("default", "b", &ChatSettings::default())
        .await
        .unwrap();
    store
        .touch_chat(&b.id, 9_000_000_000_000_000)
        .await
        .unwrap();
    assert!(store.pinned_chats("default", 10).await.unwrap().is_empty());
    assert!(store.set_chat_pinned("default", &a.id, true).await.unwrap());
    // Another workspace cannot pin it, nor see it pinned.
    assert!(
        !store
            .set_chat_pinned("elsewhere", &b.id, true)
            .await
            .unwrap()
    );
    assert!(
        store
            .pinned_chats("elsewhere", 10)
            .await
            .unwrap()
            .is_empty()
    );
    let pinned = store.pinned_chats("default", 10).await.unwrap();
    assert_eq!(pinned.len(), 1);
    assert_eq!(pinned[0].id, a.id);
    assert!(pinned[0].pinned);
    // Pinning is not activity: the list order stays, and says which is pinned.
    let all = store
        .list_chats(
            "default",
            ChatPage {
                limit: 10,
                before: None,
            },
        )
        .await
        .unwrap();
    let order: Vec<_> = all.iter().map(|c| (c.id.as_str(), c.pinned)).collect();
    assert_eq!(order, [(b.id.as_str(), false), (a.id.as_str(), true)]);
    assert!(
        store
            .set_chat_pinned("default", &a.id, false)
            .await
            .unwrap()
    );
    assert!(store.pinned_chats("default", 10).await.unwrap().is_empty());
    assert!(
        !store
            .set_chat_pinned("default", "nope", true)
            .await
            .unwrap()
    );
}
