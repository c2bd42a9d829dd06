//! SQLite-only behaviour: opening files, WAL, in-memory databases, many writers at once.

use std::time::Duration;

use sqlx::{Connection, SqliteConnection};
use switchboard_store::{Backend, ChatSettings, MessageStatus, Store, StoreError};

use crate::helpers::{event, user};

#[tokio::test]
async fn a_missing_database_file_is_created_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db");
    assert!(!path.exists());

    let store = Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();

    assert_eq!(store.backend(), Backend::Sqlite);
    assert!(path.exists());
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn reopening_a_database_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("again.db").display());
    let chat = {
        let store = Store::connect(&url).await.unwrap();
        let chat = store
            .create_chat("default", "kept", &ChatSettings::default())
            .await
            .unwrap();
        store
            .insert_message("default", &chat.id, &user("still here"))
            .await
            .unwrap();
        store.close().await;
        chat
    };

    let store = Store::connect(&url).await.unwrap();

    let reread = store.get_chat("default", &chat.id).await.unwrap().unwrap();
    assert_eq!(
        (reread.title, reread.created_at),
        (chat.title, chat.created_at)
    );
    assert_eq!(
        store.list_messages("default", &chat.id).await.unwrap()[0].content,
        "still here"
    );
    assert_eq!(store.search("default", "still", 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_database_upgraded_by_a_newer_build_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("newer.db").display());
    let store = Store::connect(&url).await.unwrap();
    store.close().await;
    drop(store);
    // What a newer build would leave: one more version than this build knows.
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO schema_version (version, name, applied_at)
         SELECT MAX(version) + 1, 'from the future', 0 FROM schema_version",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    const VERSIONS: &str = "SELECT COUNT(*) FROM schema_version";
    let before: i64 = sqlx::query_scalar(VERSIONS)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let refused = Store::connect(&url).await;
    let Err(e @ StoreError::SchemaTooNew { found, known }) = refused else {
        panic!("expected SchemaTooNew, got {refused:?}");
    };
    assert_eq!(found, known + 1);
    assert!(e.to_string().contains("newer than this build knows"), "{e}");
    let mut conn = SqliteConnection::connect(&url).await.unwrap();
    let after: i64 = sqlx::query_scalar(VERSIONS)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(after, before);
}

#[tokio::test]
async fn an_in_memory_database_keeps_data_across_calls() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let chat = store
        .create_chat("default", "ephemeral", &ChatSettings::default())
        .await
        .unwrap();
    store
        .insert_message("default", &chat.id, &user("hello"))
        .await
        .unwrap();

    // Outlive the pool's idle handling: the database must not vanish with a connection.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let clone = store.clone();
    assert_eq!(
        clone
            .list_messages("default", &chat.id)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(clone.search("default", "hello", 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_unknown_database_url_is_rejected_with_the_url() {
    let error = Store::connect("mysql://root:hunter2@localhost/sb")
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::UnsupportedUrl { .. }));
    let message = error.to_string();
    assert!(
        message.contains("mysql://root:***@localhost/sb"),
        "{message}"
    );
    assert!(!message.contains("hunter2"));
}

/// 100 generations checkpointing at once on one SQLite file: no "database is locked",
/// no lost rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_flushes_lose_nothing() {
    const GENERATIONS: usize = 100;
    const FLUSHES: i64 = 10;
    const EVENTS_PER_FLUSH: i64 = 5;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("busy.db").display()
    ))
    .await
    .unwrap();

    let tasks: Vec<_> = (0..GENERATIONS)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let chat = store
                    .create_chat("default", &format!("chat {i}"), &ChatSettings::default())
                    .await?;
                let reply = crate::helpers::start_reply(&store, &chat.id, "go").await;
                let mut text = String::new();
                for flush in 0..FLUSHES {
                    let piece = format!("chunk {flush} ");
                    text.push_str(&piece);
                    for _ in 1..EVENTS_PER_FLUSH {
                        store.append_chat_events(&chat.id, &[event("tick")]).await?;
                    }
                    crate::helpers::append(&store, &reply, &piece)
                        .await
                        .expect("ours");
                    tokio::task::yield_now().await;
                }
                store
                    .finish_message(&crate::helpers::finish(
                        &reply,
                        MessageStatus::Complete,
                        &text,
                    ))
                    .await?;
                Ok::<_, StoreError>((chat.id, text))
            })
        })
        .collect();

    for task in tasks {
        let (chat_id, text) = task.await.unwrap().unwrap();
        let messages = store.list_messages("default", &chat_id).await.unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[1].content, text);
        assert_eq!(messages[1].status, MessageStatus::Complete);
        let events = store.events_after(&chat_id, 0, 1_000).await.unwrap();
        // The deltas are compacted; every other event kept its seq, in order.
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
        assert_eq!(
            seqs.len() as i64,
            FLUSHES * (EVENTS_PER_FLUSH - 1) + 1,
            "{seqs:?}"
        );
        assert_eq!(*seqs.last().unwrap(), FLUSHES * EVENTS_PER_FLUSH + 1);
    }
}
