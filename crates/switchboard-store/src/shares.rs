//! Share links: a frozen, read-only copy of a chat, found by a random token.
//!
//! The copy is taken when the chat is shared (sharing again refreshes it and keeps the token), so
//! the link shows the chat as it was then, whatever happens to the chat afterwards; deleting the
//! chat or revoking the link deletes the copy. The token is the only key: whoever has it may read
//! the copy, nothing else.

use crate::db::Sql;
use crate::ids::now_ms;
use crate::{Store, StoreError};

/// A shared chat as its link shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedChat {
    pub title: String,
    /// The messages as they were when shared (JSON, as the caller wrote them).
    pub messages: serde_json::Value,
    pub created_at: i64,
}

impl Store {
    /// Shares chat `chat_id` of `ws` with a copy of `messages` under `token`, or refreshes the copy
    /// of a chat already shared (keeping its token). Returns the link's token; `None` when the
    /// chat is not in `ws`.
    pub async fn share_chat(
        &self,
        ws: &str,
        chat_id: &str,
        token: &str,
        messages: &serde_json::Value,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.db.begin("share a chat").await?;
        let Some(chat) = tx
            .fetch_optional(
                Sql::new(
                    "read the chat to share",
                    "SELECT title FROM chats WHERE id = $1 AND workspace = $2",
                )
                .text(chat_id)
                .text(ws),
            )
            .await?
        else {
            return Ok(None);
        };
        let title: String = chat.get("title")?;
        let row = tx
            .fetch_one(
                Sql::new(
                    "store a share",
                    "INSERT INTO shares (token, chat_id, title, messages, created_at)
                     VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (chat_id) DO UPDATE
                        SET title = excluded.title, messages = excluded.messages,
                            created_at = excluded.created_at
                     RETURNING token",
                )
                .text(token)
                .text(chat_id)
                .text(title)
                .text(messages.to_string())
                .int(now_ms()),
            )
            .await?;
        let token: String = row.get("token")?;
        tx.commit("share a chat").await?;
        Ok(Some(token))
    }

    /// Revokes the chat's link. `false` when it had none (or the chat is not in `ws`).
    pub async fn unshare_chat(&self, ws: &str, chat_id: &str) -> Result<bool, StoreError> {
        let deleted = self
            .db
            .execute(
                Sql::new(
                    "revoke a share",
                    "DELETE FROM shares WHERE chat_id = $1
                       AND EXISTS (SELECT 1 FROM chats WHERE chats.id = $1 AND chats.workspace = $2)",
                )
                .text(chat_id)
                .text(ws),
            )
            .await?;
        Ok(deleted > 0)
    }

    /// The chat shared under `token`, if the link exists.
    pub async fn shared_chat(&self, token: &str) -> Result<Option<SharedChat>, StoreError> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "read a share",
                    "SELECT title, messages, created_at FROM shares WHERE token = $1",
                )
                .text(token),
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(SharedChat {
            title: row.get("title")?,
            messages: row.get_json("messages")?.unwrap_or_default(),
            created_at: row.get("created_at")?,
        }))
    }
}
