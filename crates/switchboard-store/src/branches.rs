//! Branches: a chat is a tree of messages with one active path.
//!
//! Every message but a chat's first has a `parent_id`. Among the children of one parent exactly
//! one is `active`: the branch that switching back to that point shows. The chat's active path —
//! what pages show and what is sent to the model — is the chain of active children from the
//! root; it is stored as a flag (`on_path`), kept in step by the writes that change it (a turn,
//! [`Store::select_message`]), so reading it is one indexed query, never a walk of the tree.
//! Regenerate and edit add siblings and move the path; nothing is deleted by either.
//!
//! A compare turn adds several replies under one user message: the first is on the path, the
//! others are its siblings until one is selected.

use crate::db::{Conn, DbRow, Sql, Tx};
use crate::generation::{EventDraft, store_events};
use crate::messages::{fill_streaming_text, message_columns, message_from_row};
use crate::{Message, MessageStatus, Role, Sibling, Store, StoreError, StoredEvent};

/// The ancestors of message `$2` in chat `$1`, itself included (`up`), as a CTE for the
/// statements below.
macro_rules! up_cte {
    () => {
        "up(id, parent_id) AS (
            SELECT id, parent_id FROM messages WHERE id = $2 AND chat_id = $1
            UNION ALL
            SELECT m.id, m.parent_id FROM messages m JOIN up ON m.id = up.parent_id
         )"
    };
}

/// Makes `message_id` (of `chat_id`) part of the active path: it and each of its ancestors
/// become the active child of their parents, and the path runs from the root through it and on
/// down its active children. Returns the messages that joined (`true`) or left (`false`) the
/// path. Caller holds the chat row lock.
pub(crate) async fn put_on_path(
    tx: &mut Tx,
    chat_id: &str,
    message_id: &str,
) -> Result<Vec<(String, bool)>, StoreError> {
    tx.execute(
        Sql::new(
            "make a branch the active child of each of its ancestors",
            concat!(
                "WITH RECURSIVE ",
                up_cte!(),
                " UPDATE messages SET active = CASE WHEN id IN (SELECT id FROM up) THEN 1 ELSE 0 END
                  WHERE chat_id = $1
                    AND (parent_id IN (SELECT parent_id FROM up)
                         OR (parent_id IS NULL AND EXISTS (SELECT 1 FROM up WHERE up.parent_id IS NULL)))
                    AND active <> CASE WHEN id IN (SELECT id FROM up) THEN 1 ELSE 0 END"
            ),
        )
        .text(chat_id)
        .text(message_id),
    )
    .await?;
    let rows = tx
        .fetch_all(
            Sql::new(
                "mark the active path",
                concat!(
                    "WITH RECURSIVE ",
                    up_cte!(),
                    ", down(id) AS (
                        SELECT id FROM messages WHERE id = $2 AND chat_id = $1
                        UNION ALL
                        SELECT m.id FROM messages m JOIN down ON m.parent_id = down.id
                        WHERE m.chat_id = $1 AND m.active = 1
                     ),
                     path(id) AS (SELECT id FROM up UNION SELECT id FROM down)
                     UPDATE messages SET on_path = CASE WHEN id IN (SELECT id FROM path) THEN 1 ELSE 0 END
                     WHERE chat_id = $1
                       AND on_path <> CASE WHEN id IN (SELECT id FROM path) THEN 1 ELSE 0 END
                     RETURNING id, on_path"
                ),
            )
            .text(chat_id)
            .text(message_id),
        )
        .await?;
    rows.iter()
        .map(|row| Ok((row.get::<String>("id")?, row.get::<i64>("on_path")? == 1)))
        .collect()
}

/// `message_id` and its ancestors in chat `$1` of workspace `$2`, at most `$4` of them (the
/// nearest), in seq order: the branch a reply answers.
fn path_to_sql(chat_id: &str, ws: &str, message_id: &str, limit: i64) -> Sql {
    Sql::new(
        "read a branch",
        concat!(
            "WITH RECURSIVE up(id, parent_id, depth) AS (
                SELECT id, parent_id, CAST(1 AS BIGINT) FROM messages WHERE id = $3 AND chat_id = $1
                UNION ALL
                SELECT m.id, m.parent_id, up.depth + 1 FROM messages m JOIN up ON m.id = up.parent_id
                WHERE up.depth < $4
             )
             SELECT ",
            message_columns!(),
            " FROM messages WHERE chat_id = $1 AND id IN (SELECT id FROM up)
               AND EXISTS (SELECT 1 FROM chats WHERE chats.id = $1 AND chats.workspace = $2)
             ORDER BY seq"
        ),
    )
    .text(chat_id)
    .text(ws)
    .text(message_id)
    .int(limit)
}

pub(crate) async fn read_path_to(
    mut conn: Conn<'_>,
    chat_id: &str,
    ws: &str,
    message_id: &str,
    limit: i64,
) -> Result<Vec<Message>, StoreError> {
    let rows = conn
        .fetch_all(path_to_sql(chat_id, ws, message_id, limit))
        .await?;
    rows.iter().map(message_from_row).collect()
}

/// The siblings off the active path of the path messages with seq in `[from, before)`.
pub(crate) fn siblings_sql(chat_id: &str, from: i64, before: i64) -> Sql {
    Sql::new(
        "list the other branches beside a page",
        "SELECT s.id, s.parent_id, s.seq, s.role, s.model, s.status, s.on_path FROM messages s
         WHERE s.chat_id = $1 AND s.on_path = 0
           AND EXISTS (SELECT 1 FROM messages p
                       WHERE p.chat_id = $1 AND p.on_path = 1 AND p.seq >= $2 AND p.seq < $3
                         AND (p.parent_id = s.parent_id
                              OR (p.parent_id IS NULL AND s.parent_id IS NULL)))
         ORDER BY s.seq",
    )
    .text(chat_id)
    .int(from)
    .int(before)
}

pub(crate) fn sibling_from_row(row: &DbRow) -> Result<Sibling, StoreError> {
    let role: String = row.get("role")?;
    let status: String = row.get("status")?;
    Ok(Sibling {
        id: row.get("id")?,
        parent_id: row.get("parent_id")?,
        seq: row.get("seq")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt {
            column: "messages.role",
            detail: format!("unknown role {role:?}"),
        })?,
        model: row.get("model")?,
        status: MessageStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
            column: "messages.status",
            detail: format!("unknown status {status:?}"),
        })?,
        active: row.get::<i64>("on_path")? == 1,
    })
}

/// What [`Store::select_message`] changed.
#[derive(Debug, Clone, PartialEq)]
pub struct PathChange {
    /// Messages that joined the active path, in no particular order.
    pub joined: Vec<String>,
    /// Messages that left it.
    pub left: Vec<String>,
    /// The events announcing the change, as stored.
    pub events: Vec<StoredEvent>,
}

impl Store {
    /// Makes `message_id` part of the chat's active path (see the module docs): the next message
    /// continues from it, or from the end of its own active branch. `describe` turns what joined
    /// and left the path into the events that announce it, stored in the same transaction.
    /// `None` when no such message is in a chat of `ws`.
    pub async fn select_message(
        &self,
        ws: &str,
        chat_id: &str,
        message_id: &str,
        describe: impl FnOnce(&[String], &[String]) -> Vec<EventDraft>,
    ) -> Result<Option<PathChange>, StoreError> {
        let mut tx = self.db.begin("select a branch").await?;
        // Locks the chat row: a turn and a select of one chat never interleave.
        let found = tx
            .fetch_optional(
                Sql::new(
                    "lock the chat to select a branch",
                    "UPDATE chats SET last_event_seq = last_event_seq
                     WHERE id = $1 AND workspace = $2
                       AND EXISTS (SELECT 1 FROM messages WHERE id = $3 AND chat_id = $1)
                     RETURNING id",
                )
                .text(chat_id)
                .text(ws)
                .text(message_id),
            )
            .await?;
        if found.is_none() {
            return Ok(None);
        }
        let changed = put_on_path(&mut tx, chat_id, message_id).await?;
        let (joined, left): (Vec<_>, Vec<_>) = changed.into_iter().partition(|(_, on)| *on);
        let joined: Vec<String> = joined.into_iter().map(|(id, _)| id).collect();
        let left: Vec<String> = left.into_iter().map(|(id, _)| id).collect();
        let drafts = describe(&joined, &left);
        let events = store_events(&mut tx, chat_id, &drafts)
            .await?
            .unwrap_or_default();
        tx.commit("select a branch").await?;
        Ok(Some(PathChange {
            joined,
            left,
            events,
        }))
    }

    /// Up to `limit` of the nearest ancestors of `message_id`, in seq order: for a reply, the
    /// conversation it answers (not whatever the active path is now). Empty when no such message
    /// is in a chat of `ws`.
    pub async fn ancestors(
        &self,
        ws: &str,
        chat_id: &str,
        message_id: &str,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let mut messages = read_path_to(
            Conn::Pool(&self.db),
            chat_id,
            ws,
            message_id,
            i64::from(limit) + 1,
        )
        .await?;
        // The message itself goes before the streaming texts are read: a reply being started is
        // streaming, and its (empty) text would be one more read.
        messages.retain(|m| m.id != message_id);
        fill_streaming_text(Conn::Pool(&self.db), &mut messages).await?;
        Ok(messages)
    }

    /// Every message of the chat, on the active path or not, in seq order (the tree, for an
    /// export); empty if the chat is not in `ws`.
    pub async fn list_tree(
        &self,
        ws: &str,
        chat_id: &str,
    ) -> Result<Vec<(Message, bool)>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                Sql::new(
                    "list a chat's tree",
                    concat!(
                        "SELECT ",
                        message_columns!(),
                        ", on_path FROM messages WHERE chat_id = $1
                           AND EXISTS (SELECT 1 FROM chats WHERE chats.id = $1 AND chats.workspace = $2)
                         ORDER BY seq"
                    ),
                )
                .text(chat_id)
                .text(ws),
            )
            .await?;
        let mut messages = rows
            .iter()
            .map(|row| Ok((message_from_row(row)?, row.get::<i64>("on_path")? == 1)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        for (m, _) in messages.iter_mut() {
            fill_streaming_text(Conn::Pool(&self.db), std::slice::from_mut(m)).await?;
        }
        Ok(messages)
    }
}
