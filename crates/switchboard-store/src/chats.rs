//! Chats: create, list, read, rename, delete, fork and import.
//!
//! Every query that a browser can reach takes the workspace key and filters by it, so a
//! chat id from another workspace is simply not found. The few methods without a
//! workspace (`touch_chat`, `set_title_if_default`) are for the server's own background
//! work on a chat it already resolved.

use crate::db::{DbRow, Sql, bump_updated_at};
use crate::ids::{new_chat_id, now_ms};
use crate::messages::insert_message_row;
use crate::{
    Chat, ChatPage, ChatPatch, ChatSettings, ChatSummary, EventDraft, MessageStatus, NewMessage,
    Store, StoreError, StoredEvent,
};

/// Column list for `chat_from_row`; a macro so it can be spliced into SQL with `concat!`.
macro_rules! chat_columns {
    () => {
        "id, workspace, title, settings, forked_from, created_at, updated_at"
    };
}

pub(crate) fn chat_from_row(row: &DbRow) -> Result<Chat, StoreError> {
    Ok(Chat {
        id: row.get("id")?,
        workspace: row.get("workspace")?,
        title: row.get("title")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        settings: parse_settings(&row.get::<String>("settings")?)?,
        forked_from: row.get("forked_from")?,
    })
}

fn parse_settings(text: &str) -> Result<ChatSettings, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt {
        column: "chats.settings",
        detail: error.to_string(),
    })
}

pub(crate) fn settings_json(settings: &ChatSettings) -> String {
    // Serialising a struct of plain options cannot fail.
    serde_json::to_string(settings).expect("ChatSettings serialises to JSON")
}

/// Inserts a chat row; shared by create, fork and import.
fn insert_chat(chat: &Chat) -> Sql {
    Sql::new(
        "insert a chat",
        "INSERT INTO chats (id, workspace, title, settings, forked_from, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .text(&chat.id)
    .text(&chat.workspace)
    .text(&chat.title)
    .text(settings_json(&chat.settings))
    .opt_text(chat.forked_from.as_deref())
    .int(chat.created_at)
    .int(chat.updated_at)
}

impl Store {
    /// Creates an empty chat in workspace `ws`.
    pub async fn create_chat(
        &self,
        ws: &str,
        title: &str,
        settings: &ChatSettings,
    ) -> Result<Chat, StoreError> {
        let now = now_ms();
        let chat = Chat {
            id: new_chat_id(),
            workspace: ws.to_owned(),
            title: title.to_owned(),
            created_at: now,
            updated_at: now,
            settings: settings.clone(),
            forked_from: None,
        };
        // One statement: no transaction around it (each statement is a round trip).
        self.db.execute(insert_chat(&chat)).await?;
        Ok(chat)
    }

    /// One page of the workspace's chats, most recently updated first.
    pub async fn list_chats(
        &self,
        ws: &str,
        page: ChatPage,
    ) -> Result<Vec<ChatSummary>, StoreError> {
        // Without a cursor, start above every possible key.
        let (before_updated, before_id) = page.before.unwrap_or((i64::MAX, String::new()));
        let rows = self
            .db
            .fetch_all(
                Sql::new(
                    "list chats",
                    "SELECT id, title, updated_at, settings, pinned_at FROM chats
                     WHERE workspace = $1
                       AND (updated_at < $2 OR (updated_at = $2 AND id < $3))
                     ORDER BY updated_at DESC, id DESC
                     LIMIT $4",
                )
                .text(ws)
                .int(before_updated)
                .text(before_id)
                .int(i64::from(page.limit)),
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ChatSummary {
                    id: row.get("id")?,
                    title: row.get("title")?,
                    updated_at: row.get("updated_at")?,
                    model: parse_settings(&row.get::<String>("settings")?)?.model,
                    pinned: row.get::<Option<i64>>("pinned_at")?.is_some(),
                })
            })
            .collect()
    }

    /// The workspace's pinned chats, the most recently pinned first (at most `limit`).
    pub async fn pinned_chats(&self, ws: &str, limit: u32) -> Result<Vec<ChatSummary>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                Sql::new(
                    "list pinned chats",
                    "SELECT id, title, updated_at, settings FROM chats
                     WHERE workspace = $1 AND pinned_at IS NOT NULL
                     ORDER BY pinned_at DESC, id DESC
                     LIMIT $2",
                )
                .text(ws)
                .int(i64::from(limit)),
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(ChatSummary {
                    id: row.get("id")?,
                    title: row.get("title")?,
                    updated_at: row.get("updated_at")?,
                    model: parse_settings(&row.get::<String>("settings")?)?.model,
                    pinned: true,
                })
            })
            .collect()
    }

    /// Pins or unpins a chat; its `updated_at` stays (pinning is not activity). `false` if it is
    /// not in `ws`.
    pub async fn set_chat_pinned(
        &self,
        ws: &str,
        id: &str,
        pinned: bool,
    ) -> Result<bool, StoreError> {
        let changed = self
            .db
            .execute(
                Sql::new(
                    "pin a chat",
                    "UPDATE chats SET pinned_at = $3 WHERE id = $1 AND workspace = $2",
                )
                .text(id)
                .text(ws)
                .opt_int(pinned.then(now_ms)),
            )
            .await?;
        Ok(changed > 0)
    }

    pub async fn get_chat(&self, ws: &str, id: &str) -> Result<Option<Chat>, StoreError> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "read a chat",
                    concat!(
                        "SELECT ",
                        chat_columns!(),
                        " FROM chats WHERE id = $1 AND workspace = $2"
                    ),
                )
                .text(id)
                .text(ws),
            )
            .await?;
        row.as_ref().map(chat_from_row).transpose()
    }

    /// Changes the title and/or settings and bumps `updated_at`. `None` if the chat is not
    /// in `ws`.
    pub async fn update_chat(
        &self,
        ws: &str,
        id: &str,
        patch: &ChatPatch,
    ) -> Result<Option<Chat>, StoreError> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "update a chat",
                    concat!(
                        "UPDATE chats SET title = COALESCE($3, title), settings = COALESCE($4, settings), ",
                        bump_updated_at!("$5"),
                        " WHERE id = $1 AND workspace = $2 RETURNING ",
                        chat_columns!()
                    ),
                )
                .text(id)
                .text(ws)
                .opt_text(patch.title.as_deref())
                .opt_text(patch.settings.as_ref().map(settings_json))
                .int(now_ms()),
            )
            .await?;
        row.as_ref().map(chat_from_row).transpose()
    }

    /// Deletes the chat with its messages and events. `false` if it is not in `ws`.
    pub async fn delete_chat(&self, ws: &str, id: &str) -> Result<bool, StoreError> {
        let deleted = self
            .db
            .execute(
                Sql::new(
                    "delete a chat",
                    "DELETE FROM chats WHERE id = $1 AND workspace = $2",
                )
                .text(id)
                .text(ws),
            )
            .await?;
        Ok(deleted > 0)
    }

    /// Moves the chat's `updated_at` forward to `at` (never backward).
    pub async fn touch_chat(&self, chat_id: &str, at: i64) -> Result<(), StoreError> {
        self.db
            .execute(
                Sql::new(
                    "touch a chat",
                    concat!(
                        "UPDATE chats SET ",
                        bump_updated_at!("$2"),
                        " WHERE id = $1"
                    ),
                )
                .text(chat_id)
                .int(at),
            )
            .await?;
        Ok(())
    }

    /// Sets the title only if it still is `default_title`, so an automatic title never
    /// overwrites one the user typed meanwhile, and stores `announce` (the event that tells the
    /// chat's followers) in the same transaction. `None` when the title did not change.
    pub async fn set_title_if_default(
        &self,
        chat_id: &str,
        default_title: &str,
        new_title: &str,
        announce: EventDraft,
    ) -> Result<Option<Vec<StoredEvent>>, StoreError> {
        let change = crate::TitleChange {
            chat_id: chat_id.to_owned(),
            default_title: default_title.to_owned(),
            title: new_title.to_owned(),
            announce,
        };
        let group = crate::WriteGroup {
            titles: &[&change],
            ..crate::WriteGroup::default()
        };
        Ok(self.write_group(group).await?.titles.pop().flatten())
    }

    /// Copies the chat up to and including message `up_to_message_id` into a new chat
    /// titled "<title> (fork)" with the same settings. `None` if the chat is not in `ws`
    /// or the message is not in the chat.
    pub async fn fork_chat(
        &self,
        ws: &str,
        chat_id: &str,
        up_to_message_id: &str,
    ) -> Result<Option<Chat>, StoreError> {
        let mut tx = self.db.begin("fork a chat").await?;
        let Some(source) = tx
            .fetch_optional(
                Sql::new(
                    "read the chat to fork",
                    concat!(
                        "SELECT ",
                        chat_columns!(),
                        " FROM chats WHERE id = $1 AND workspace = $2"
                    ),
                )
                .text(chat_id)
                .text(ws),
            )
            .await?
        else {
            return Ok(None);
        };
        let source = chat_from_row(&source)?;
        // The branch that ends at the fork point: the message and its ancestors.
        let path = crate::branches::read_path_to(
            crate::db::Conn::Tx(&mut tx),
            chat_id,
            ws,
            up_to_message_id,
            i64::MAX,
        )
        .await?;
        if path.is_empty() {
            return Ok(None);
        }

        let now = now_ms();
        let fork = Chat {
            id: new_chat_id(),
            workspace: ws.to_owned(),
            title: format!("{} (fork)", source.title),
            created_at: now,
            updated_at: now,
            settings: source.settings,
            forked_from: Some(source.id),
        };
        tx.execute(insert_chat(&fork)).await?;
        let mut parent = None;
        for mut message in path {
            message.id = crate::ids::new_message_id();
            message.chat_id = fork.id.clone();
            message.parent_id = parent.replace(message.id.clone());
            // No generation will ever finish the copy of a message that was still being
            // written; mark it like one cut off by a restart.
            if message.status == MessageStatus::Streaming {
                message.status = MessageStatus::Interrupted;
            }
            insert_message_row(&mut tx, &message).await?;
        }
        tx.commit("fork a chat").await?;
        Ok(Some(fork))
    }

    /// Creates a chat with its whole history in one transaction (e.g. a NextChat import).
    /// Messages get `seq` 1, 2, … in slice order; a message without `created_at` gets the
    /// chat's. The chat's `updated_at` is its newest message's time.
    pub async fn import_chat(
        &self,
        ws: &str,
        title: &str,
        settings: &ChatSettings,
        created_at: i64,
        messages: &[NewMessage],
    ) -> Result<Chat, StoreError> {
        let updated_at = messages
            .iter()
            .filter_map(|m| m.created_at)
            .fold(created_at, i64::max);
        let chat = Chat {
            id: new_chat_id(),
            workspace: ws.to_owned(),
            title: title.to_owned(),
            created_at,
            updated_at,
            settings: settings.clone(),
            forked_from: None,
        };
        let mut tx = self.db.begin("import a chat").await?;
        tx.execute(insert_chat(&chat)).await?;
        let mut parent = None;
        for (seq, new) in (1..).zip(messages) {
            let mut message = crate::messages::message_from_new(&chat.id, seq, new, created_at);
            message.parent_id = parent.replace(message.id.clone());
            insert_message_row(&mut tx, &message).await?;
        }
        tx.commit("import a chat").await?;
        Ok(chat)
    }
}
