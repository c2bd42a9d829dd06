//! A workspace's stored data, for its quota.

use switchboard_store::{ChatSettings, Store, WorkspaceUsage};

use crate::helpers::{append, start_reply};

async fn usage_counts_a_workspace_s_chats_and_bytes_only(store: Store) {
    assert_eq!(
        store.workspace_usage("default").await.unwrap(),
        WorkspaceUsage::default()
    );
    let chat = store
        .create_chat("default", "New chat", &ChatSettings::default())
        .await
        .unwrap();
    store
        .create_chat("other", "New chat", &ChatSettings::default())
        .await
        .unwrap();
    let empty = store.workspace_usage("default").await.unwrap();
    assert_eq!(empty, WorkspaceUsage { bytes: 0, chats: 1 });
    // A message of 1,000 bytes (multi-byte characters counted as bytes) and a streamed delta.
    let text = "é".repeat(500);
    let reply = start_reply(&store, &chat.id, &text).await;
    append(&store, &reply, "hello").await;
    let used = store.workspace_usage("default").await.unwrap();
    assert_eq!(used.chats, 1);
    assert!(used.bytes >= 1_000 + 5, "{used:?}");
    assert!(used.bytes < 3_000, "{used:?}");
    assert_eq!(store.chat_usage("default", &chat.id).await.unwrap(), used);
    assert_eq!(
        store.chat_usage("other", &chat.id).await.unwrap(),
        WorkspaceUsage::default()
    );
    assert_eq!(store.workspace_usage("other").await.unwrap().bytes, 0);
    // Deleting the chat frees its bytes.
    store.delete_chat("default", &chat.id).await.unwrap();
    assert_eq!(
        store.workspace_usage("default").await.unwrap(),
        WorkspaceUsage::default()
    );
}

async fn a_workspace_stays_verified_once_marked(store: Store) {
    assert!(!store.workspace_verified("key-1").await.unwrap());
    store.mark_workspace_verified("key-1").await.unwrap();
    store.mark_workspace_verified("key-1").await.unwrap();
    assert!(store.workspace_verified("key-1").await.unwrap());
    assert!(!store.workspace_verified("key-2").await.unwrap());
}

on_both_backends!(
    usage_counts_a_workspace_s_chats_and_bytes_only,
    a_workspace_stays_verified_once_marked
);
