//! Persistence for running generations and the resumable browser stream.
//!
//! The generation engine streams tokens to browsers as they arrive and, every ~250 ms,
//! checkpoints here: the assistant message's full text so far plus the events it sent
//! since the last checkpoint, in one transaction. So the stored events never run ahead of
//! the stored message, and a browser that reconnects can load the messages and then
//! replay events after the seq it last saw ([`Store::events_after`]).
//!
//! Event seqs are assigned by the engine (a per-chat counter seeded from
//! [`Store::max_event_seq`]), so inserting them needs no coordination here. Events are
//! stored against the message's chat; if the message was deleted meanwhile (its chat was
//! deleted mid-stream), the checkpoint quietly stores nothing.

use crate::db::{Sql, Tx, json_text};
use crate::{GenerationFlush, MessageFinish, NewEvent, Store, StoreError, StoredEvent};

async fn insert_events(
    tx: &mut Tx,
    message_id: &str,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    for chunk in events.chunks(EVENTS_PER_INSERT) {
        let mut sql =
            Sql::built("store chat events", insert_events_sql(chunk.len())).text(message_id);
        for event in chunk {
            sql = sql
                .int(event.seq)
                .text(&event.kind)
                .text(&event.data)
                .int(event.created_at);
        }
        tx.execute(sql).await?;
    }
    Ok(())
}

/// Events stored by one statement at most. One statement for a checkpoint's events rather than
/// one each: SQLite's connection runs on a thread of its own, so every statement is a round trip
/// with two thread switches, and a checkpoint carries a dozen deltas. The bound keeps the number
/// of statement shapes (prepared and cached per connection) small.
const EVENTS_PER_INSERT: usize = 32;

/// `INSERT … SELECT` from a `VALUES` list of `rows` events (`$2` on, four placeholders each:
/// seq, kind, data, created_at), taking the chat from the message `$1`. A message that is gone
/// (its chat deleted) stores nothing. Both backends name a `VALUES` list's columns `column1`….
fn insert_events_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO chat_events (chat_id, seq, message_id, kind, data, created_at)
         SELECT m.chat_id, v.column1, m.id, v.column2, v.column3, v.column4
         FROM messages m, (VALUES ",
    );
    for row in 0..rows {
        let first = 2 + row * 4;
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!(
            "(${first}, ${}, ${}, ${})",
            first + 1,
            first + 2,
            first + 3
        ));
    }
    sql.push_str(") AS v WHERE m.id = $1");
    sql
}

impl Store {
    /// Checkpoints a running generation: stores `batch.events` and overwrites the
    /// message's text with the full current text, in one transaction. A message that is
    /// no longer `streaming` keeps its text (the events are still stored).
    pub async fn flush_generation(&self, batch: &GenerationFlush) -> Result<(), StoreError> {
        let mut tx = self.db.begin("flush a generation").await?;
        insert_events(&mut tx, &batch.message_id, &batch.events).await?;
        tx.execute(
            Sql::new(
                "checkpoint a streaming message",
                "UPDATE messages SET
                    content = $2,
                    reasoning = $3,
                    reasoning_details = COALESCE($4, reasoning_details),
                    tool_calls = COALESCE($5, tool_calls),
                    annotations = COALESCE($6, annotations),
                    first_token_at = COALESCE(first_token_at, $7),
                    generation_id = COALESCE($8, generation_id),
                    model = COALESCE($9, model),
                    provider = COALESCE($10, provider)
                 WHERE id = $1 AND status = 'streaming'",
            )
            .text(&batch.message_id)
            .text(&batch.content)
            .text(&batch.reasoning)
            .opt_text(json_text(&batch.reasoning_details))
            .opt_text(json_text(&batch.tool_calls))
            .opt_text(json_text(&batch.annotations))
            .opt_int(batch.first_token_at)
            .opt_text(batch.generation_id.as_deref())
            .opt_text(batch.model.as_deref())
            .opt_text(batch.provider.as_deref()),
        )
        .await?;
        tx.commit("flush a generation").await
    }

    /// Closes a generation: final text, status, usage and error, plus the last events, in
    /// one transaction. Only a `streaming` message is changed, so finishing twice (or
    /// after start-up recovery marked it interrupted) keeps the first outcome.
    pub async fn finish_message(&self, finish: &MessageFinish) -> Result<(), StoreError> {
        let mut tx = self.db.begin("finish a message").await?;
        insert_events(&mut tx, &finish.message_id, &finish.events).await?;
        tx.execute(
            Sql::new(
                "finish a streaming message",
                "UPDATE messages SET
                    status = $2,
                    content = $3,
                    reasoning = $4,
                    reasoning_details = COALESCE($5, reasoning_details),
                    tool_calls = COALESCE($6, tool_calls),
                    annotations = COALESCE($7, annotations),
                    prompt_tokens = COALESCE($8, prompt_tokens),
                    completion_tokens = COALESCE($9, completion_tokens),
                    reasoning_tokens = COALESCE($10, reasoning_tokens),
                    cached_tokens = COALESCE($11, cached_tokens),
                    cost = COALESCE($12, cost),
                    finish_reason = COALESCE($13, finish_reason),
                    error_code = COALESCE($14, error_code),
                    error_message = COALESCE($15, error_message),
                    finished_at = $16,
                    generation_id = COALESCE($17, generation_id),
                    provider = COALESCE($18, provider),
                    model = COALESCE($19, model)
                 WHERE id = $1 AND status = 'streaming'",
            )
            .text(&finish.message_id)
            .text(finish.status.as_str())
            .text(&finish.content)
            .text(&finish.reasoning)
            .opt_text(json_text(&finish.reasoning_details))
            .opt_text(json_text(&finish.tool_calls))
            .opt_text(json_text(&finish.annotations))
            .opt_int(finish.usage.prompt_tokens)
            .opt_int(finish.usage.completion_tokens)
            .opt_int(finish.usage.reasoning_tokens)
            .opt_int(finish.usage.cached_tokens)
            .opt_real(finish.usage.cost)
            .opt_text(finish.finish_reason.as_deref())
            .opt_text(finish.error_code.as_deref())
            .opt_text(finish.error_message.as_deref())
            .int(finish.finished_at)
            .opt_text(finish.generation_id.as_deref())
            .opt_text(finish.provider.as_deref())
            .opt_text(finish.model.as_deref()),
        )
        .await?;
        tx.commit("finish a message").await
    }

    /// Stores chat events that belong to no running generation (a deleted message, a new title).
    /// `message_id` may be empty for chat-level events. Events of a chat that no longer exists
    /// are dropped.
    pub async fn append_chat_events(
        &self,
        chat_id: &str,
        message_id: &str,
        events: &[NewEvent],
    ) -> Result<(), StoreError> {
        let mut tx = self.db.begin("store chat events").await?;
        for event in events {
            tx.execute(
                Sql::new(
                    "store a chat event",
                    "INSERT INTO chat_events (chat_id, seq, message_id, kind, data, created_at)
                     SELECT id, $2, $3, $4, $5, $6 FROM chats WHERE id = $1",
                )
                .text(chat_id)
                .int(event.seq)
                .text(message_id)
                .text(&event.kind)
                .text(&event.data)
                .int(event.created_at),
            )
            .await?;
        }
        tx.commit("store chat events").await
    }

    /// Up to `limit` events of the chat with seq greater than `after_seq`, in seq order.
    /// Not workspace-scoped: the caller has already resolved the chat.
    pub async fn events_after(
        &self,
        chat_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let rows = self
            .db
            .fetch_all(
                Sql::new(
                    "read chat events",
                    "SELECT seq, message_id, kind, data, created_at FROM chat_events
                     WHERE chat_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                )
                .text(chat_id)
                .int(after_seq)
                .int(i64::from(limit)),
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredEvent {
                    seq: row.get("seq")?,
                    message_id: row.get("message_id")?,
                    kind: row.get("kind")?,
                    data: row.get("data")?,
                    created_at: row.get("created_at")?,
                })
            })
            .collect()
    }

    /// The chat's largest event seq, 0 when it has none: where the engine's counter
    /// starts.
    pub async fn max_event_seq(&self, chat_id: &str) -> Result<i64, StoreError> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "read the last chat event seq",
                    "SELECT COALESCE(MAX(seq), 0) AS seq FROM chat_events WHERE chat_id = $1",
                )
                .text(chat_id),
            )
            .await?;
        match row {
            Some(row) => row.get("seq"),
            None => Ok(0),
        }
    }

    /// Start-up recovery: a message still `streaming` lost its generation with the
    /// previous process. Marks each `interrupted`, keeping its text; returns how many.
    pub async fn mark_streaming_interrupted(&self) -> Result<u64, StoreError> {
        self.db
            .execute(Sql::new(
                "mark interrupted generations",
                "UPDATE messages SET status = 'interrupted' WHERE status = 'streaming'",
            ))
            .await
    }
}
