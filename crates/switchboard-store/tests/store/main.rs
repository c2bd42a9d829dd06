//! Integration tests for `switchboard-store`.
//!
//! Each check is written once as `async fn name(store: Store)` and run by
//! [`on_both_backends!`] against a fresh temporary SQLite file and a fresh PostgreSQL
//! database (see `helpers.rs` for the environment variables). SQLite-only behaviour
//! (file creation, WAL, many concurrent writers) lives in `sqlite.rs`.

/// Generates `sqlite::<name>` and `postgres::<name>` tests that each call `<name>(store)`
/// with a store on its own empty database.
macro_rules! on_both_backends {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    let db = crate::helpers::TestDb::sqlite().await;
                    super::$check(db.store.clone()).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    let Some(db) = crate::helpers::TestDb::postgres().await else {
                        return;
                    };
                    super::$check(db.store.clone()).await;
                }
            )*
        }
    };
}

mod branches;
mod chats;
mod generation;
mod helpers;
mod messages;
mod quota;
mod search;
mod sessions;
mod sqlite;
