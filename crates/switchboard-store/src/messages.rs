//! Messages of a chat: insert, read, page and delete.
//!
//! A message's position is its `seq`, assigned here as the chat's largest plus one. To
//! make that safe under concurrency the insert first updates the chat row (bumping
//! `updated_at`), inside the same transaction: on PostgreSQL that row lock serialises
//! inserts into one chat, and on SQLite `BEGIN IMMEDIATE` already serialises all writers.
//! The same update doubles as the workspace check.

use crate::db::{Conn, DbRow, Sql, Tx, bump_updated_at, json_text, push_placeholder_rows};
use crate::ids::{new_message_id, now_ms};
use crate::{Message, MessageStatus, NewMessage, Role, Store, StoreError, Usage};

/// Column list for `message_from_row`; a macro so it can be spliced into SQL with
/// `concat!`.
macro_rules! message_columns {
    () => {
        "id, chat_id, seq, role, content, reasoning, reasoning_details, tool_calls, annotations, \
         attachments, model, provider, generation_id, status, error_code, error_message, \
         prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens, cost, finish_reason, \
         created_at, first_token_at, finished_at, reasoning_ended_at, parent_id"
    };
}
pub(crate) use message_columns;

/// Restricts a message query on `chat_id = $1` to chats of workspace `$2`.
macro_rules! in_workspace {
    () => {
        " AND EXISTS (SELECT 1 FROM chats WHERE chats.id = $1 AND chats.workspace = $2)"
    };
}

pub(crate) fn message_from_row(row: &DbRow) -> Result<Message, StoreError> {
    let role: String = row.get("role")?;
    let status: String = row.get("status")?;
    Ok(Message {
        id: row.get("id")?,
        chat_id: row.get("chat_id")?,
        seq: row.get("seq")?,
        role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt {
            column: "messages.role",
            detail: format!("unknown role {role:?}"),
        })?,
        content: row.get("content")?,
        reasoning: row.get("reasoning")?,
        reasoning_details: row.get_json("reasoning_details")?,
        tool_calls: row.get_json("tool_calls")?,
        annotations: row.get_json("annotations")?,
        attachments: row.get_json("attachments")?,
        model: row.get("model")?,
        provider: row.get("provider")?,
        generation_id: row.get("generation_id")?,
        status: MessageStatus::parse(&status).ok_or_else(|| StoreError::Corrupt {
            column: "messages.status",
            detail: format!("unknown status {status:?}"),
        })?,
        error_code: row.get("error_code")?,
        error_message: row.get("error_message")?,
        usage: Usage {
            prompt_tokens: row.get("prompt_tokens")?,
            completion_tokens: row.get("completion_tokens")?,
            reasoning_tokens: row.get("reasoning_tokens")?,
            cached_tokens: row.get("cached_tokens")?,
            cost: row.get("cost")?,
        },
        finish_reason: row.get("finish_reason")?,
        created_at: row.get("created_at")?,
        first_token_at: row.get("first_token_at")?,
        finished_at: row.get("finished_at")?,
        reasoning_ended_at: row.get("reasoning_ended_at")?,
        parent_id: row.get("parent_id")?,
    })
}

/// The full message a [`NewMessage`] becomes at position `seq`.
pub(crate) fn message_from_new(
    chat_id: &str,
    seq: i64,
    new: &NewMessage,
    default_created_at: i64,
) -> Message {
    Message {
        id: new.id.clone().unwrap_or_else(new_message_id),
        chat_id: chat_id.to_owned(),
        seq,
        role: new.role,
        content: new.content.clone(),
        reasoning: new.reasoning.clone(),
        reasoning_details: None,
        tool_calls: None,
        annotations: None,
        attachments: new.attachments.clone(),
        model: new.model.clone(),
        provider: new.provider.clone(),
        generation_id: None,
        status: new.status,
        error_code: None,
        error_message: None,
        usage: Usage::default(),
        finish_reason: None,
        created_at: new.created_at.unwrap_or(default_created_at),
        first_token_at: None,
        finished_at: None,
        reasoning_ended_at: None,
        parent_id: None,
    }
}

/// Writes every column of `message`; the one INSERT used by insert, fork and import.
pub(crate) async fn insert_message_row(tx: &mut Tx, message: &Message) -> Result<(), StoreError> {
    insert_message_rows(tx, std::slice::from_ref(message), None).await
}

/// Inserts `messages` in one statement; the `streaming` ones get `owner`.
pub(crate) async fn insert_message_rows(
    tx: &mut Tx,
    messages: &[Message],
    owner: Option<&str>,
) -> Result<(), StoreError> {
    const COLUMNS: usize = 28;
    let mut text = String::from(concat!(
        "INSERT INTO messages (",
        message_columns!(),
        ", owner) VALUES "
    ));
    push_placeholder_rows(&mut text, messages.len(), COLUMNS, tx.is_postgres());
    let mut sql = Sql::built("insert messages", text);
    for message in messages {
        let streaming = message.status == crate::MessageStatus::Streaming;
        sql = bind_message(sql, message).opt_text(owner.filter(|_| streaming));
    }
    tx.execute(sql).await?;
    Ok(())
}

/// Binds the values of [`message_columns!`] in their order.
fn bind_message(sql: Sql, message: &Message) -> Sql {
    sql.text(&message.id)
        .text(&message.chat_id)
        .int(message.seq)
        .text(message.role.as_str())
        .text(&message.content)
        .text(&message.reasoning)
        .opt_text(json_text(&message.reasoning_details))
        .opt_text(json_text(&message.tool_calls))
        .opt_text(json_text(&message.annotations))
        .opt_text(json_text(&message.attachments))
        .opt_text(message.model.as_deref())
        .opt_text(message.provider.as_deref())
        .opt_text(message.generation_id.as_deref())
        .text(message.status.as_str())
        .opt_text(message.error_code.as_deref())
        .opt_text(message.error_message.as_deref())
        .opt_int(message.usage.prompt_tokens)
        .opt_int(message.usage.completion_tokens)
        .opt_int(message.usage.reasoning_tokens)
        .opt_int(message.usage.cached_tokens)
        .opt_real(message.usage.cost)
        .opt_text(message.finish_reason.as_deref())
        .int(message.created_at)
        .opt_int(message.first_token_at)
        .opt_int(message.finished_at)
        .opt_int(message.reasoning_ended_at)
        .opt_text(message.parent_id.as_deref())
}

impl Store {
    /// Appends a message to the chat and bumps the chat's `updated_at`. `None` if the chat
    /// is not in `ws`.
    pub async fn insert_message(
        &self,
        ws: &str,
        chat_id: &str,
        new: &NewMessage,
    ) -> Result<Option<Message>, StoreError> {
        Ok(self
            .insert_messages(ws, chat_id, std::slice::from_ref(new))
            .await?
            .map(|mut v| v.remove(0)))
    }

    /// Appends several messages (a user's turn and the reply that will answer it) in one
    /// transaction: either all are stored or none. `None` if the chat is not in `ws`.
    pub async fn insert_messages(
        &self,
        ws: &str,
        chat_id: &str,
        news: &[NewMessage],
    ) -> Result<Option<Vec<Message>>, StoreError> {
        let created_at = news
            .first()
            .and_then(|n| n.created_at)
            .unwrap_or_else(now_ms);
        let mut tx = self.db.begin("insert a message").await?;
        // Locks the chat row until commit (see the module docs) and checks the workspace.
        let chat = tx
            .fetch_optional(
                Sql::new(
                    "lock the chat for a new message",
                    concat!(
                        "UPDATE chats SET ",
                        bump_updated_at!("$3"),
                        " WHERE id = $1 AND workspace = $2 RETURNING id"
                    ),
                )
                .text(chat_id)
                .text(ws)
                .int(created_at),
            )
            .await?;
        if chat.is_none() {
            return Ok(None);
        }
        let row = tx
            .fetch_one(
                Sql::new(
                    "pick the next message seq",
                    "SELECT COALESCE(MAX(seq), 0) + 1 AS next,
                            (SELECT id FROM messages WHERE chat_id = $1 AND on_path = 1
                             ORDER BY seq DESC LIMIT 1) AS leaf
                     FROM messages WHERE chat_id = $1",
                )
                .text(chat_id),
            )
            .await?;
        let first_seq: i64 = row.get("next")?;
        // Appended to the active path: each message the child of the one before.
        let mut parent: Option<String> = row.get("leaf")?;
        if let Some(leaf) = &parent {
            tx.execute(
                Sql::new(
                    "make a new message the active child",
                    "UPDATE messages SET active = 0 WHERE chat_id = $1 AND parent_id = $2 AND active = 1",
                )
                .text(chat_id)
                .text(leaf),
            )
            .await?;
        }
        let mut stored = Vec::with_capacity(news.len());
        for (i, new) in news.iter().enumerate() {
            let at = new.created_at.unwrap_or(created_at);
            let mut message = message_from_new(chat_id, first_seq + i as i64, new, at);
            message.parent_id = parent.replace(message.id.clone());
            insert_message_row(&mut tx, &message).await?;
            stored.push(message);
        }
        tx.commit("insert a message").await?;
        Ok(Some(stored))
    }

    pub async fn get_message(
        &self,
        ws: &str,
        chat_id: &str,
        id: &str,
    ) -> Result<Option<Message>, StoreError> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "read a message",
                    concat!(
                        "SELECT ",
                        message_columns!(),
                        " FROM messages WHERE chat_id = $1 AND id = $3",
                        in_workspace!()
                    ),
                )
                .text(chat_id)
                .text(ws)
                .text(id),
            )
            .await?;
        let mut message = row.as_ref().map(message_from_row).transpose()?;
        if let Some(m) = message.as_mut() {
            fill_streaming_text(Conn::Pool(&self.db), std::slice::from_mut(m)).await?;
        }
        Ok(message)
    }

    /// The messages of the chat's active path in `seq` order; empty if the chat is not in `ws`.
    pub async fn list_messages(&self, ws: &str, chat_id: &str) -> Result<Vec<Message>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                Sql::new(
                    "list messages",
                    concat!(
                        "SELECT ",
                        message_columns!(),
                        " FROM messages WHERE chat_id = $1 AND on_path = 1",
                        in_workspace!(),
                        " ORDER BY seq"
                    ),
                )
                .text(chat_id)
                .text(ws),
            )
            .await?;
        let mut messages = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        fill_streaming_text(Conn::Pool(&self.db), &mut messages).await?;
        Ok(messages)
    }

    /// The last `limit` messages of the active path before `before_seq` (or the chat's end), in
    /// ascending `seq` order: a big chat is read backwards page by page from its newest message.
    pub async fn list_messages_page(
        &self,
        ws: &str,
        chat_id: &str,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Message>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                Sql::new(
                    "list a page of messages",
                    concat!(
                        "SELECT * FROM (SELECT ",
                        message_columns!(),
                        " FROM messages WHERE chat_id = $1 AND on_path = 1 AND seq < $3",
                        in_workspace!(),
                        " ORDER BY seq DESC LIMIT $4) AS page ORDER BY seq"
                    ),
                )
                .text(chat_id)
                .text(ws)
                .int(before_seq.unwrap_or(i64::MAX))
                .int(i64::from(limit)),
            )
            .await?;
        let mut messages = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        fill_streaming_text(Conn::Pool(&self.db), &mut messages).await?;
        Ok(messages)
    }

    /// `false` if no such message in a chat of `ws`, or it is a reply still streaming. Its
    /// children take its place under its parent (the branch below it stays, on the path if it
    /// was). The chat's events are kept: they are a log that resuming browsers read forward,
    /// and its seq must never go backwards.
    pub async fn delete_message(
        &self,
        ws: &str,
        chat_id: &str,
        id: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.db.begin("delete a message").await?;
        let Some(row) = tx
            .fetch_optional(
                Sql::new(
                    "find a message to delete",
                    concat!(
                        "SELECT parent_id, active FROM messages
                         WHERE chat_id = $1 AND id = $3 AND status <> 'streaming'",
                        in_workspace!()
                    ),
                )
                .text(chat_id)
                .text(ws)
                .text(id),
            )
            .await?
        else {
            return Ok(false);
        };
        let parent: Option<String> = row.get("parent_id")?;
        let active: i64 = row.get("active")?;
        tx.execute(
            Sql::new(
                "move a deleted message's children up",
                "UPDATE messages SET parent_id = $3, active = CASE WHEN $4 = 1 THEN active ELSE 0 END
                 WHERE chat_id = $1 AND parent_id = $2",
            )
            .text(chat_id)
            .text(id)
            .opt_text(parent.as_deref())
            .int(active),
        )
        .await?;
        let deleted = tx
            .execute(
                Sql::new(
                    "delete a message",
                    "DELETE FROM messages WHERE chat_id = $1 AND id = $2",
                )
                .text(chat_id)
                .text(id),
            )
            .await?;
        tx.commit("delete a message").await?;
        Ok(deleted > 0)
    }

    /// Deletes the message at `from_seq` and every later one (edit-and-resend, regenerate), in
    /// one statement. Returns the ids it deleted, in `seq` order.
    pub async fn delete_messages_from(
        &self,
        ws: &str,
        chat_id: &str,
        from_seq: i64,
    ) -> Result<Vec<String>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                Sql::new(
                    "delete messages from a seq on",
                    concat!(
                        "DELETE FROM messages WHERE chat_id = $1 AND seq >= $3",
                        in_workspace!(),
                        " RETURNING id, seq"
                    ),
                )
                .text(chat_id)
                .text(ws)
                .int(from_seq),
            )
            .await?;
        let mut deleted = rows
            .iter()
            .map(|row| Ok((row.get::<i64>("seq")?, row.get::<String>("id")?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        deleted.sort_unstable();
        Ok(deleted.into_iter().map(|(_, id)| id).collect())
    }
}

/// The text a streaming reply has so far: its stored text plus every part of its delta events.
pub(crate) async fn streaming_text(
    conn: &mut Conn<'_>,
    message: &mut Message,
) -> Result<(), StoreError> {
    let rows = conn
        .fetch_all(
            Sql::new(
                "read a streaming reply's text",
                "SELECT content_part, reasoning_part FROM chat_events
                 WHERE message_id = $1
                   AND (content_part IS NOT NULL OR reasoning_part IS NOT NULL)
                 ORDER BY seq",
            )
            .text(&message.id),
        )
        .await?;
    for row in rows {
        if let Some(c) = row.get::<Option<String>>("content_part")? {
            message.content.push_str(&c);
        }
        if let Some(r) = row.get::<Option<String>>("reasoning_part")? {
            message.reasoning.push_str(&r);
        }
    }
    Ok(())
}

/// Fills in the text of the streaming messages among `messages`.
pub(crate) async fn fill_streaming_text(
    mut conn: Conn<'_>,
    messages: &mut [Message],
) -> Result<(), StoreError> {
    for m in messages
        .iter_mut()
        .filter(|m| m.status == crate::MessageStatus::Streaming)
    {
        streaming_text(&mut conn, m).await?;
    }
    Ok(())
}
