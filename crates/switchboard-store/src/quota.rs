//! What a workspace stores, for its quota.
//!
//! The figure is computed by one query when a write asks, not kept as a counter: a counter would
//! have to be kept right by every write path (turns, streaming deltas, compaction, deletes,
//! imports, shares) on both backends, and would drift the first time one forgot. The query sums
//! the stored lengths of the workspace's messages, chat events and share copies through the
//! indexes by chat, so it costs a read of the workspace's rows — paid only by writes that add data
//! (a new chat, a message, a fork, an import), not by reads or by the streaming of replies.

use crate::db::Sql;
use crate::ids::now_ms;
use crate::{Store, StoreError};

/// A workspace's stored data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkspaceUsage {
    /// Bytes of text stored for it: messages (content, reasoning, attachments, provider JSON),
    /// chat events, share copies and files (as their stored base64).
    pub bytes: u64,
    /// How many chats it holds.
    pub chats: u64,
}

/// The byte sums, for the chats that `$1` (and, in the one-chat form, `$2`) select.
macro_rules! usage_sql {
    ($chats:literal) => {
        concat!(
            "SELECT
               (SELECT COUNT(*) FROM chats c WHERE ",
            $chats,
            ") AS chats,
               (SELECT CAST(COALESCE(SUM(octet_length(m.content) + octet_length(m.reasoning)
                         + COALESCE(octet_length(m.reasoning_details), 0)
                         + COALESCE(octet_length(m.tool_calls), 0)
                         + COALESCE(octet_length(m.annotations), 0)
                         + COALESCE(octet_length(m.attachments), 0)), 0) AS BIGINT)
                  FROM messages m JOIN chats c ON c.id = m.chat_id WHERE ",
            $chats,
            ") AS messages,
               (SELECT CAST(COALESCE(SUM(octet_length(e.data)
                         + COALESCE(octet_length(e.content_part), 0)
                         + COALESCE(octet_length(e.reasoning_part), 0)), 0) AS BIGINT)
                  FROM chat_events e JOIN chats c ON c.id = e.chat_id WHERE ",
            $chats,
            ") AS events,
               (SELECT CAST(COALESCE(SUM(octet_length(s.messages)), 0) AS BIGINT)
                  FROM shares s JOIN chats c ON c.id = s.chat_id WHERE ",
            $chats,
            ") AS shares,
               (SELECT CAST(COALESCE(SUM(octet_length(f.data)), 0) AS BIGINT)
                  FROM message_files f JOIN chats c ON c.id = f.chat_id WHERE ",
            $chats,
            ") AS files"
        )
    };
}

fn usage_from(row: &crate::db::DbRow) -> Result<WorkspaceUsage, StoreError> {
    let n = |col| row.get::<i64>(col).map(|v| v.max(0) as u64);
    Ok(WorkspaceUsage {
        bytes: n("messages")? + n("events")? + n("shares")? + n("files")?,
        chats: n("chats")?,
    })
}

impl Store {
    /// What workspace `ws` stores.
    pub async fn workspace_usage(&self, ws: &str) -> Result<WorkspaceUsage, StoreError> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "measure a workspace's stored data",
                    usage_sql!("c.workspace = $1"),
                )
                .text(ws),
            )
            .await?;
        row.as_ref()
            .map_or(Ok(WorkspaceUsage::default()), usage_from)
    }

    /// What chat `chat_id` of `ws` stores (`chats` is 0 when there is no such chat).
    pub async fn chat_usage(&self, ws: &str, chat_id: &str) -> Result<WorkspaceUsage, StoreError> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "measure a chat's stored data",
                    usage_sql!("c.workspace = $1 AND c.id = $2"),
                )
                .text(ws)
                .text(chat_id),
            )
            .await?;
        row.as_ref()
            .map_or(Ok(WorkspaceUsage::default()), usage_from)
    }

    /// Notes that workspace `ws`'s own key has paid for a completed reply.
    pub async fn mark_workspace_verified(&self, ws: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                Sql::new(
                    "mark a workspace verified",
                    "INSERT INTO verified_workspaces (workspace, verified_at) VALUES ($1, $2)
                     ON CONFLICT (workspace) DO NOTHING",
                )
                .text(ws)
                .int(now_ms()),
            )
            .await?;
        Ok(())
    }

    /// Whether [`Store::mark_workspace_verified`] was called for `ws`.
    pub async fn workspace_verified(&self, ws: &str) -> Result<bool, StoreError> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "read whether a workspace is verified",
                    "SELECT 1 AS one FROM verified_workspaces WHERE workspace = $1",
                )
                .text(ws),
            )
            .await?;
        Ok(row.is_some())
    }
}
