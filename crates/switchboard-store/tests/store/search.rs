//! Full-text search: matching, order, snippets, index maintenance and hostile input.

use switchboard_store::{ChatSettings, NewMessage, Role, Store};

use crate::helpers::user;

on_both_backends!(
    search_finds_every_word_newest_first,
    search_matches_the_last_word_as_a_prefix,
    search_survives_hostile_queries,
    search_follows_edits_and_deletes,
    chat_search_matches_titles_and_gives_one_row_per_chat,
);

async fn say(store: &Store, chat_id: &str, role: Role, text: &str, at: i64) -> String {
    let mut message = NewMessage::new(role, text);
    message.created_at = Some(at);
    store
        .insert_message("default", chat_id, &message)
        .await
        .unwrap()
        .unwrap()
        .id
}

async fn search_finds_every_word_newest_first(store: Store) {
    let pets = store
        .create_chat("default", "Pets", &ChatSettings::default())
        .await
        .unwrap();
    let food = store
        .create_chat("default", "Food", &ChatSettings::default())
        .await
        .unwrap();
    let old = say(
        &store,
        &pets.id,
        Role::User,
        "Is the quick brown fox a good pet?",
        1_000,
    )
    .await;
    let filler =
        "Some words to pad the answer so that the excerpt has to be cut somewhere. ".repeat(8);
    let long = format!("{filler} A brown fox is quick but not a pet. {filler}");
    let new = say(&store, &pets.id, Role::Assistant, &long, 2_000).await;
    say(
        &store,
        &food.id,
        Role::User,
        "brown bread, no wolves",
        3_000,
    )
    .await;
    say(&store, &food.id, Role::User, "a fox", 4_000).await;

    let hits = store.search("default", "brown fox", 10).await.unwrap();

    let found: Vec<&str> = hits.iter().map(|h| h.message_id.as_str()).collect();
    assert_eq!(found, [new.as_str(), old.as_str()]);
    assert_eq!(hits[0].chat_id, pets.id);
    assert_eq!(hits[0].chat_title, "Pets");
    assert_eq!(hits[0].role, Role::Assistant);
    assert_eq!(hits[0].created_at, 2_000);
    assert!(
        hits[0].snippet.contains("brown fox"),
        "snippet {:?}",
        hits[0].snippet
    );
    assert!(
        hits[0].snippet.len() < long.len(),
        "snippet is an excerpt: {:?}",
        hits[0].snippet
    );
    assert!(!hits[0].snippet.contains('<') && !hits[0].snippet.contains('['));
    assert_eq!(hits[1].role, Role::User);

    assert_eq!(
        store.search("default", "BROWN Fox", 1).await.unwrap().len(),
        1
    );
    assert!(
        store
            .search("default", "brown giraffe", 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn search_matches_the_last_word_as_a_prefix(store: Store) {
    let chat = store
        .create_chat("default", "c", &ChatSettings::default())
        .await
        .unwrap();
    say(
        &store,
        &chat.id,
        Role::User,
        "configuration of the reverse proxy",
        1,
    )
    .await;

    assert_eq!(
        store
            .search("default", "reverse prox", 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.search("default", "conf", 10).await.unwrap().len(), 1);
    // Only the last word is a prefix.
    assert!(
        store
            .search("default", "rev proxy", 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn search_survives_hostile_queries(store: Store) {
    let chat = store
        .create_chat("default", "c", &ChatSettings::default())
        .await
        .unwrap();
    say(
        &store,
        &chat.id,
        Role::User,
        "Grüße aus Köln: 日本語 テキスト, x-ray (a OR b) \"quoted\"",
        1,
    )
    .await;

    for query in [
        "\"",
        "*",
        "a OR",
        "OR",
        "-x",
        "(",
        ")",
        ":",
        "^",
        "NEAR(a b)",
        "a AND",
        "NOT",
        "'",
        "\\",
        "&|!<->",
        "\"unterminated",
        "col:value",
        "x-ray",
        "*a*",
        "",
        "   ",
        "\0",
        "'; DROP TABLE messages; --",
        "🦀",
        "a:*",
        "!!!",
    ] {
        let result = store.search("default", query, 10).await;
        assert!(result.is_ok(), "query {query:?} failed: {result:?}");
    }

    let found = |query: &'static str| {
        let store = store.clone();
        async move { store.search("default", query, 10).await.unwrap().len() }
    };
    assert_eq!(found("Köln").await, 1);
    assert_eq!(found("grüße").await, 1);
    assert_eq!(found("日本語").await, 1);
    assert_eq!(found("x-ray").await, 1);
    assert_eq!(found("\"quoted\"").await, 1);
    assert_eq!(found("(a OR b)").await, 1);
    assert_eq!(found("OR").await, 1, "OR is a word, not an operator");
    assert_eq!(
        store
            .list_messages("default", &chat.id)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn search_follows_edits_and_deletes(store: Store) {
    let chat = store
        .create_chat("default", "c", &ChatSettings::default())
        .await
        .unwrap();
    let reply = crate::helpers::start_reply(&store, &chat.id, "question").await;
    crate::helpers::append(&store, &reply, "first draft mentions walrus").await;
    assert!(
        store
            .search("default", "walrus", 10)
            .await
            .unwrap()
            .is_empty(),
        "not indexed while streaming"
    );
    store
        .finish_message(&crate::helpers::finish(
            &reply,
            switchboard_store::MessageStatus::Complete,
            "second draft mentions narwhal",
        ))
        .await
        .unwrap();
    assert!(
        store
            .search("default", "walrus", 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.search("default", "narwhal", 10).await.unwrap().len(),
        1
    );

    let other = store
        .insert_message("default", &chat.id, &user("another narwhal"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .delete_message("default", &chat.id, &reply.id)
            .await
            .unwrap()
    );
    let hits = store.search("default", "narwhal", 10).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].message_id, other.id);
    assert_eq!(
        store.search("default", "narwhal", 0).await.unwrap().len(),
        0
    );
}

async fn chat_search_matches_titles_and_gives_one_row_per_chat(store: Store) {
    let trip = store
        .create_chat("default", "Trip to Zanzibar", &ChatSettings::default())
        .await
        .unwrap();
    let notes = store
        .create_chat("default", "Notes", &ChatSettings::default())
        .await
        .unwrap();
    store
        .create_chat("elsewhere", "Zanzibar elsewhere", &ChatSettings::default())
        .await
        .unwrap();
    say(
        &store,
        &notes.id,
        Role::User,
        "Where is zanzibar exactly?",
        1_000,
    )
    .await;
    let best = say(
        &store,
        &notes.id,
        Role::Assistant,
        "**Zanzibar** is an archipelago; zanzibar city is on Unguja.",
        2_000,
    )
    .await;
    store
        .touch_chat(&notes.id, 9_000_000_000_000_000)
        .await
        .unwrap();

    let hits = store
        .search_chats("default", "ZANZIB", 10, 0)
        .await
        .unwrap();
    let ids: Vec<_> = hits.iter().map(|h| h.chat_id.as_str()).collect();
    // The title match first, then the chat whose messages match: each once.
    assert_eq!(ids, [trip.id.as_str(), notes.id.as_str()], "{hits:?}");
    assert_eq!(hits[0].message_id, None);
    assert_eq!(hits[0].snippet, "");
    assert_eq!(
        hits[1].message_id.as_deref(),
        Some(best.as_str()),
        "{hits:?}"
    );
    assert!(
        hits[1].snippet.contains("Zanzibar is an archipelago"),
        "{hits:?}"
    );
    assert!(!hits[1].snippet.contains("**"), "{hits:?}");
    // Every word must be in the title for a title match.
    let hits = store
        .search_chats("default", "trip zanzibar", 10, 0)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].chat_id, trip.id);
    // Pages.
    let first = store
        .search_chats("default", "zanzibar", 1, 0)
        .await
        .unwrap();
    let second = store
        .search_chats("default", "zanzibar", 1, 1)
        .await
        .unwrap();
    let third = store
        .search_chats("default", "zanzibar", 1, 2)
        .await
        .unwrap();
    assert_eq!(first[0].chat_id, trip.id);
    assert_eq!(second[0].chat_id, notes.id);
    assert!(third.is_empty());
    // Hostile input is words.
    assert!(
        store
            .search_chats("default", "%_\\'\"", 10, 0)
            .await
            .unwrap()
            .is_empty()
    );
}
