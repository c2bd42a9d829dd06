//! Login sessions: found until they expire or are deleted.

use switchboard_store::Store;

async fn sessions_live_until_they_expire_or_are_deleted(store: Store) {
    let now = 1_000_000;
    store
        .create_session("s1", "code-a", now, now + 100)
        .await
        .unwrap();
    store
        .create_session("s2", "code-b", now, now + 100)
        .await
        .unwrap();
    assert_eq!(
        store.session_workspace("s1", now).await.unwrap().as_deref(),
        Some("code-a")
    );
    assert_eq!(store.session_workspace("nope", now).await.unwrap(), None);
    // Expired: refused by reads and renewals, then deleted.
    assert_eq!(
        store.session_workspace("s1", now + 100).await.unwrap(),
        None
    );
    assert!(
        !store
            .renew_session("s1", now + 100, now + 500)
            .await
            .unwrap()
    );
    // Renewed while alive: good for longer.
    assert!(
        store
            .renew_session("s2", now + 50, now + 500)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .session_workspace("s2", now + 200)
            .await
            .unwrap()
            .as_deref(),
        Some("code-b")
    );
    assert_eq!(store.delete_expired_sessions(now + 200).await.unwrap(), 1);
    // Logout.
    assert!(store.delete_session("s2").await.unwrap());
    assert_eq!(
        store.session_workspace("s2", now + 200).await.unwrap(),
        None
    );
    assert!(!store.delete_session("s2").await.unwrap());
}

on_both_backends!(sessions_live_until_they_expire_or_are_deleted);
