//! Branches: regenerate and edit add siblings and move the active path, nothing is deleted, a
//! select moves the path back, and a compare streams several replies in one turn.

use switchboard_store::{
    ChatSettings, Message, MessageStatus, NewMessage, NewTurn, Store, StoreError, TurnParent,
};

use crate::helpers::{OWNER, finish, start_reply, user};

on_both_backends!(
    regenerate_keeps_the_old_reply_and_select_brings_it_back,
    edit_keeps_the_old_turn_and_its_continuation,
    a_compare_is_one_turn_of_several_replies,
    deleting_a_message_keeps_the_branch_below_it,
    a_fork_copies_the_branch_only,
);

async fn chat(store: &Store) -> String {
    store
        .create_chat("default", "tree", &ChatSettings::default())
        .await
        .unwrap()
        .id
}

fn ids(messages: &[Message]) -> Vec<&str> {
    messages.iter().map(|m| m.id.as_str()).collect()
}

/// Starts `messages` under `parent` and returns them as stored.
async fn turn(
    store: &Store,
    chat: &str,
    parent: TurnParent,
    messages: Vec<NewMessage>,
) -> Vec<Message> {
    let turn = NewTurn {
        parent,
        messages,
        owner: OWNER.into(),
        settings: None,
        files: Vec::new(),
    };
    store
        .start_turn("default", chat, &turn, |_, _| Vec::new())
        .await
        .unwrap()
        .expect("chat exists")
        .messages
}

async fn complete(store: &Store, reply: &Message, text: &str) {
    store
        .finish_message(&finish(reply, MessageStatus::Complete, text))
        .await
        .unwrap()
        .expect("finished");
}

async fn path(store: &Store, chat: &str) -> Vec<Message> {
    store.list_messages("default", chat).await.unwrap()
}

async fn regenerate_keeps_the_old_reply_and_select_brings_it_back(store: Store) {
    let chat = chat(&store).await;
    let first = start_reply(&store, &chat, "hello").await;
    complete(&store, &first, "old answer").await;
    let question = first.parent_id.clone().expect("a reply has a parent");
    let again = turn(
        &store,
        &chat,
        TurnParent::Under(Some(question.clone())),
        vec![NewMessage::streaming_reply("m")],
    )
    .await
    .remove(0);
    assert_eq!(again.parent_id.as_deref(), Some(question.as_str()));
    assert_eq!(
        ids(&path(&store, &chat).await),
        [question.as_str(), again.id.as_str()]
    );
    // The old reply is kept, and shown beside the new one.
    let old = store
        .get_message("default", &chat, &first.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.content, "old answer");
    let snapshot = store
        .chat_snapshot("default", &chat, None, 50)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snapshot.siblings.len(), 1);
    assert_eq!(snapshot.siblings[0].id, first.id);
    assert!(!snapshot.siblings[0].active);
    // The new reply answers the question alone.
    let branch = store
        .ancestors("default", &chat, &again.id, 50)
        .await
        .unwrap();
    assert_eq!(ids(&branch), [question.as_str()]);
    complete(&store, &again, "new answer").await;

    let change = store
        .select_message("default", &chat, &first.id, |joined, left| {
            assert_eq!(joined, std::slice::from_ref(&first.id));
            assert_eq!(left, std::slice::from_ref(&again.id));
            Vec::new()
        })
        .await
        .unwrap()
        .expect("selected");
    assert_eq!(change.joined, std::slice::from_ref(&first.id));
    assert_eq!(
        ids(&path(&store, &chat).await),
        [question.as_str(), first.id.as_str()]
    );
    // The next message continues from the selected reply.
    let next = start_reply(&store, &chat, "and then?").await;
    let next_question = next.parent_id.clone().unwrap();
    let asked = store
        .get_message("default", &chat, &next_question)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(asked.parent_id.as_deref(), Some(first.id.as_str()));
    // Another workspace cannot select.
    assert!(
        store
            .select_message("other", &chat, &again.id, |_, _| Vec::new())
            .await
            .unwrap()
            .is_none()
    );
}

async fn edit_keeps_the_old_turn_and_its_continuation(store: Store) {
    let chat = chat(&store).await;
    let r1 = start_reply(&store, &chat, "one").await;
    complete(&store, &r1, "reply one").await;
    let r2 = start_reply(&store, &chat, "two").await;
    complete(&store, &r2, "reply two").await;
    let u2 = r2.parent_id.clone().unwrap();
    let r3 = start_reply(&store, &chat, "three").await;
    complete(&store, &r3, "reply three").await;
    let u1 = r1.parent_id.clone().unwrap();

    // Edit "two": a new user message beside it, and its reply.
    let edited = turn(
        &store,
        &chat,
        TurnParent::Under(Some(r1.id.clone())),
        vec![user("two, edited"), NewMessage::streaming_reply("m")],
    )
    .await;
    let on_path = path(&store, &chat).await;
    assert_eq!(
        ids(&on_path),
        [
            u1.as_str(),
            r1.id.as_str(),
            edited[0].id.as_str(),
            edited[1].id.as_str()
        ]
    );
    assert_eq!(
        store
            .ancestors("default", &chat, &edited[1].id, 1)
            .await
            .unwrap()[0]
            .content,
        "two, edited",
        "the history of the new reply is its own branch"
    );
    complete(&store, &edited[1], "edited reply").await;

    // Back to the old "two": its whole continuation comes back.
    store
        .select_message("default", &chat, &u2, |_, _| Vec::new())
        .await
        .unwrap()
        .unwrap();
    let on_path = path(&store, &chat).await;
    assert_eq!(on_path.len(), 6);
    assert_eq!(on_path[5].id, r3.id);
    // And forward again: selecting the edit shows its reply.
    store
        .select_message("default", &chat, &edited[0].id, |_, _| Vec::new())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        path(&store, &chat).await.last().unwrap().content,
        "edited reply"
    );
    // A regenerate of a reply off the path puts its branch on the path first.
    let again = turn(
        &store,
        &chat,
        TurnParent::Under(Some(r2.parent_id.clone().unwrap())),
        vec![NewMessage::streaming_reply("m")],
    )
    .await;
    assert_eq!(
        ids(&path(&store, &chat).await),
        [
            u1.as_str(),
            r1.id.as_str(),
            u2.as_str(),
            again[0].id.as_str()
        ]
    );
}

async fn a_compare_is_one_turn_of_several_replies(store: Store) {
    let chat = chat(&store).await;
    let started = turn(
        &store,
        &chat,
        TurnParent::End,
        vec![
            user("which is best?"),
            NewMessage::streaming_reply("a"),
            NewMessage::streaming_reply("b"),
            NewMessage::streaming_reply("c"),
        ],
    )
    .await;
    let question = &started[0];
    for reply in &started[1..] {
        assert_eq!(reply.parent_id.as_deref(), Some(question.id.as_str()));
        assert_eq!(reply.status, MessageStatus::Streaming);
    }
    // The first reply is on the path, the others beside it.
    assert_eq!(
        ids(&path(&store, &chat).await),
        [question.id.as_str(), started[1].id.as_str()]
    );
    let snapshot = store
        .chat_snapshot("default", &chat, None, 50)
        .await
        .unwrap()
        .unwrap();
    let beside: Vec<&str> = snapshot.siblings.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(beside, [started[2].id.as_str(), started[3].id.as_str()]);
    assert_eq!(snapshot.siblings[1].model.as_deref(), Some("c"));
    // One turn at a time: nothing starts while any of them streams.
    complete(&store, &started[1], "a says").await;
    complete(&store, &started[2], "b says").await;
    let refused = store
        .start_turn(
            "default",
            &chat,
            &NewTurn {
                parent: TurnParent::End,
                messages: vec![user("next"), NewMessage::streaming_reply("a")],
                owner: "another-instance".into(),
                settings: None,
                files: Vec::new(),
            },
            |_, _| Vec::new(),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Busy { .. })),
        "{refused:?}"
    );
    complete(&store, &started[3], "c says").await;
    // Continue with the third.
    store
        .select_message("default", &chat, &started[3].id, |_, _| Vec::new())
        .await
        .unwrap()
        .unwrap();
    let next = start_reply(&store, &chat, "tell me more").await;
    let history = store
        .ancestors("default", &chat, &next.id, 50)
        .await
        .unwrap();
    let contents: Vec<&str> = history.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["which is best?", "c says", "tell me more"]);
}

async fn deleting_a_message_keeps_the_branch_below_it(store: Store) {
    let chat = chat(&store).await;
    let r1 = start_reply(&store, &chat, "one").await;
    complete(&store, &r1, "reply one").await;
    let r2 = start_reply(&store, &chat, "two").await;
    complete(&store, &r2, "reply two").await;
    assert!(
        store
            .delete_message("default", &chat, &r1.id)
            .await
            .unwrap()
    );
    let on_path = path(&store, &chat).await;
    assert_eq!(on_path.len(), 3);
    assert_eq!(on_path[1].parent_id, r1.parent_id, "the child moved up");
    let next = start_reply(&store, &chat, "three").await;
    let history = store
        .ancestors("default", &chat, &next.id, 50)
        .await
        .unwrap();
    assert_eq!(history.len(), 4);
}

async fn a_fork_copies_the_branch_only(store: Store) {
    let chat = chat(&store).await;
    let r1 = start_reply(&store, &chat, "one").await;
    complete(&store, &r1, "old").await;
    let again = turn(
        &store,
        &chat,
        TurnParent::Under(r1.parent_id.clone()),
        vec![NewMessage::streaming_reply("m")],
    )
    .await;
    complete(&store, &again[0], "new").await;
    let fork = store
        .fork_chat("default", &chat, &r1.id)
        .await
        .unwrap()
        .unwrap();
    let copied = path(&store, &fork.id).await;
    let contents: Vec<&str> = copied.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(contents, ["one", "old"]);
    assert_eq!(copied[1].parent_id.as_deref(), Some(copied[0].id.as_str()));
}

macro_rules! old_schema {
    ($dialect:literal) => {
        [
            include_str!(concat!("../../migrations/", $dialect, "/0001_initial.sql")),
            include_str!(concat!(
                "../../migrations/",
                $dialect,
                "/0002_ownership.sql"
            )),
            include_str!(concat!("../../migrations/", $dialect, "/0003_shares.sql")),
            include_str!(concat!(
                "../../migrations/",
                $dialect,
                "/0004_reasoning_ended.sql"
            )),
            include_str!(concat!("../../migrations/", $dialect, "/0005_spend.sql")),
            include_str!(concat!("../../migrations/", $dialect, "/0006_sessions.sql")),
            include_str!(concat!("../../migrations/", $dialect, "/0007_quota.sql")),
            OLD_CHAT,
        ]
    };
}

/// A chat of three messages and one of one, as version 7 stored them.
const OLD_CHAT: &str = "
    INSERT INTO chats (id, workspace, title, settings, created_at, updated_at)
    VALUES ('c_old', 'default', 'old', '{}', 1, 1), ('c_one', 'default', 'one', '{}', 1, 1);
    INSERT INTO messages (id, chat_id, seq, role, content, reasoning, status, created_at) VALUES
        ('m_1', 'c_old', 1, 'user', 'hello', '', 'complete', 1),
        ('m_2', 'c_old', 3, 'assistant', 'hi', '', 'complete', 2),
        ('m_3', 'c_old', 4, 'user', 'again', '', 'complete', 3),
        ('m_9', 'c_one', 1, 'user', 'alone', '', 'complete', 1);
";

#[tokio::test]
async fn existing_chats_become_single_path_trees_on_sqlite() {
    let db = crate::helpers::upgraded(false, &old_schema!("sqlite"), 7)
        .await
        .unwrap();
    existing_chats_become_single_path_trees(db.store.clone()).await;
}

#[tokio::test]
async fn existing_chats_become_single_path_trees_on_postgres() {
    let Some(db) = crate::helpers::upgraded(true, &old_schema!("postgres"), 7).await else {
        return;
    };
    existing_chats_become_single_path_trees(db.store.clone()).await;
}

async fn existing_chats_become_single_path_trees(store: Store) {
    let messages = path(&store, "c_old").await;
    let parents: Vec<Option<&str>> = messages.iter().map(|m| m.parent_id.as_deref()).collect();
    assert_eq!(parents, [None, Some("m_1"), Some("m_2")]);
    assert_eq!(
        ids(&store
            .ancestors("default", "c_old", "m_3", 50)
            .await
            .unwrap()),
        ["m_1", "m_2"]
    );
    assert_eq!(path(&store, "c_one").await[0].parent_id, None);
    // The next turn continues the path.
    let reply = start_reply(&store, "c_old", "more").await;
    let question = store
        .get_message("default", "c_old", reply.parent_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(question.parent_id.as_deref(), Some("m_3"));
}
