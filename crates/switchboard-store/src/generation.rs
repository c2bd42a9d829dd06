//! Running replies and the resumable event log of a chat.
//!
//! Every change to a chat is an event with the chat's next `seq`, assigned here from
//! `chats.last_event_seq` inside the transaction that stores it. The chat row stays locked until
//! commit, so seqs never collide, even between instances, and events become visible in seq
//! order: a reader of [`Store::events_after`] never sees seq `n + 1` before seq `n`.
//!
//! A streaming reply's text is not rewritten as it grows: each write appends its delta events,
//! which carry their piece of the text ([`TextPart`]). Reads of a streaming message put the pieces
//! together; [`Store::finish_message`] writes the whole text once, with the final `done` event,
//! and deletes the deltas (compaction), so a finished reply costs its text and a few events.
//!
//! A reply is owned by the instance that generates it (`messages.owner`). Writes for it name their
//! owner and change nothing once the reply is no longer theirs (finished, or recovered as
//! `interrupted` because their lease expired).
//!
//! On PostgreSQL each transaction that stores events also announces them (`pg_notify`, delivered
//! at commit), so other instances wake their subscribers (see [`crate::Notifications`]).

use crate::db::{Conn, Sql, Tx, json_text};
use crate::ids::now_ms;
use crate::messages::{message_columns, message_from_row};
use crate::{Message, MessageFinish, Store, StoreError, StoredEvent};

/// The channel on which PostgreSQL announces stored events: payload `<chat id> <last seq>`.
pub(crate) const EVENTS_CHANNEL: &str = "switchboard_events";
/// The channel on which a stop request travels to the reply's owner: payload `<chat id>`.
pub(crate) const STOP_CHANNEL: &str = "switchboard_stop";

/// A piece of a streaming reply's text, stored with the delta event that carried it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TextPart {
    pub content: String,
    pub reasoning: String,
}

/// An event to store; the store gives it the chat's next seq.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    pub kind: String,
    /// The message the event is about; empty for chat-level events.
    pub message_id: String,
    /// JSON text, stored and returned as is.
    pub data: String,
    pub created_at: i64,
    /// Text this event adds to a streaming reply.
    pub part: Option<TextPart>,
}

impl EventDraft {
    pub fn new(kind: &str, message_id: &str, data: String) -> EventDraft {
        EventDraft {
            kind: kind.to_owned(),
            message_id: message_id.to_owned(),
            data,
            created_at: now_ms(),
            part: None,
        }
    }
}

/// One write of a running generation: the events since the last write and what changed besides
/// text. `None` fields leave the stored value as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationWrite {
    pub chat_id: String,
    pub message_id: String,
    /// The instance generating the reply; nothing is written once it no longer owns it.
    pub owner: String,
    pub events: Vec<EventDraft>,
    pub tool_calls: Option<serde_json::Value>,
    pub annotations: Option<serde_json::Value>,
    /// Only the first value ever written is kept.
    pub first_token_at: Option<i64>,
    /// Only the first value ever written is kept.
    pub reasoning_ended_at: Option<i64>,
    pub generation_id: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    /// Whether anything but text changed since the last write (tool calls, annotations, the
    /// metadata): only then is the message row written.
    pub fields_changed: bool,
}

/// What a generation learns from a write.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationAck {
    /// The events as stored, with their seqs.
    pub events: Vec<StoredEvent>,
    /// Someone asked (on any instance) to stop this reply; reported by writes that touch the
    /// message row (an owner also hears of a stop at once, through the bus).
    pub stop_requested: bool,
}

/// Stores `events` for `chat_id` with the chat's next seqs. `None` when the chat is gone.
pub(crate) async fn store_events(
    tx: &mut Tx,
    chat_id: &str,
    events: &[EventDraft],
) -> Result<Option<Vec<StoredEvent>>, StoreError> {
    store_events_if(tx, chat_id, events, None).await
}

/// [`store_events`], only while `reply` (message id, owner) is still streaming under its owner:
/// the check rides on the statement that locks the chat, so a running reply's write is one
/// statement fewer. `None` when the chat is gone or the reply is no longer theirs.
async fn store_events_if(
    tx: &mut Tx,
    chat_id: &str,
    events: &[EventDraft],
    reply: Option<(&str, &str)>,
) -> Result<Option<Vec<StoredEvent>>, StoreError> {
    if events.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let reserve = match reply {
        None => Sql::new(
            "reserve chat event seqs",
            "UPDATE chats SET last_event_seq = last_event_seq + $2 WHERE id = $1
             RETURNING last_event_seq",
        )
        .text(chat_id)
        .int(events.len() as i64),
        Some((message_id, owner)) => Sql::new(
            "reserve chat event seqs for a reply",
            "UPDATE chats SET last_event_seq = last_event_seq + $2 WHERE id = $1
               AND EXISTS (SELECT 1 FROM messages
                           WHERE id = $3 AND owner = $4 AND status = 'streaming')
             RETURNING last_event_seq",
        )
        .text(chat_id)
        .int(events.len() as i64)
        .text(message_id)
        .text(owner),
    };
    let Some(row) = tx.fetch_optional(reserve).await? else {
        return Ok(None);
    };
    let last: i64 = row.get("last_event_seq")?;
    let first = last - events.len() as i64 + 1;
    let stored: Vec<StoredEvent> = events
        .iter()
        .enumerate()
        .map(|(i, e)| StoredEvent {
            seq: first + i as i64,
            message_id: e.message_id.clone(),
            kind: e.kind.clone(),
            data: e.data.clone(),
            created_at: e.created_at,
        })
        .collect();
    for (chunk, drafts) in stored
        .chunks(EVENTS_PER_INSERT)
        .zip(events.chunks(EVENTS_PER_INSERT))
    {
        let mut sql = Sql::built("store chat events", insert_events_sql(chunk.len())).text(chat_id);
        for (event, draft) in chunk.iter().zip(drafts) {
            let part = draft.part.as_ref();
            sql = sql
                .int(event.seq)
                .text(&event.message_id)
                .text(&event.kind)
                .text(&event.data)
                .int(event.created_at)
                .opt_text(part.map(|p| p.content.as_str()).filter(|c| !c.is_empty()))
                .opt_text(part.map(|p| p.reasoning.as_str()).filter(|r| !r.is_empty()));
        }
        tx.execute(sql).await?;
    }
    if tx.is_postgres() {
        tx.execute(
            Sql::new(
                "announce chat events",
                "SELECT pg_notify('switchboard_events', $1)",
            )
            .text(format!("{chat_id} {last}")),
        )
        .await?;
    }
    Ok(Some(stored))
}

/// Events stored by one statement at most: one statement for a write's events rather than one
/// each (every statement is a round trip), bounded so few statement shapes are prepared.
const EVENTS_PER_INSERT: usize = 32;

/// `INSERT … VALUES` of `rows` events for chat `$1` (`$2` on, seven placeholders each).
fn insert_events_sql(rows: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO chat_events
           (chat_id, seq, message_id, kind, data, created_at, content_part, reasoning_part)
         VALUES ",
    );
    for row in 0..rows {
        let first = 2 + row * 7;
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push_str("($1");
        for p in first..first + 7 {
            sql.push_str(&format!(", ${p}"));
        }
        sql.push(')');
    }
    sql
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

impl Store {
    /// One write of a running generation, in one transaction: its events (with seqs), and the
    /// message's metadata. `None` when the reply is no longer this owner's to write (finished
    /// elsewhere, recovered as interrupted, or its chat deleted): the generation should end.
    pub async fn write_generation(
        &self,
        write: &GenerationWrite,
    ) -> Result<Option<GenerationAck>, StoreError> {
        let mut tx = self.db.begin("write a generation").await?;
        // The chat row first, as every writer does, so two writers never wait on each other.
        let reply = Some((write.message_id.as_str(), write.owner.as_str()));
        let Some(events) = store_events_if(&mut tx, &write.chat_id, &write.events, reply).await?
        else {
            return Ok(None);
        };
        let mut stop_requested = false;
        // Text travels in the events; the message row changes only when something else did (and
        // a write without events still learns whether the reply is ours, and about a stop).
        if write.fields_changed || write.events.is_empty() {
            let row = tx
                .fetch_optional(
                    Sql::new(
                        "update a streaming message",
                        "UPDATE messages SET
                        tool_calls = COALESCE($3, tool_calls),
                        annotations = COALESCE($4, annotations),
                        first_token_at = COALESCE(first_token_at, $5),
                        generation_id = COALESCE($6, generation_id),
                        model = COALESCE($7, model),
                        provider = COALESCE($8, provider),
                        reasoning_ended_at = COALESCE(reasoning_ended_at, $9)
                     WHERE id = $1 AND owner = $2 AND status = 'streaming'
                     RETURNING stop_requested",
                    )
                    .text(&write.message_id)
                    .text(&write.owner)
                    .opt_text(json_text(&write.tool_calls))
                    .opt_text(json_text(&write.annotations))
                    .opt_int(write.first_token_at)
                    .opt_text(write.generation_id.as_deref())
                    .opt_text(write.model.as_deref())
                    .opt_text(write.provider.as_deref())
                    .opt_int(write.reasoning_ended_at),
                )
                .await?;
            let Some(row) = row else {
                // Dropping the transaction rolls the events back.
                return Ok(None);
            };
            stop_requested = row.get::<i64>("stop_requested")? != 0;
        }
        tx.commit("write a generation").await?;
        Ok(Some(GenerationAck {
            events,
            stop_requested,
        }))
    }

    /// Whether someone asked reply `message_id` to stop (for an owner that may have missed the
    /// announcement).
    pub async fn stop_requested(&self, message_id: &str) -> Result<bool, StoreError> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "read a stop request",
                    "SELECT stop_requested FROM messages WHERE id = $1",
                )
                .text(message_id),
            )
            .await?;
        match row {
            Some(row) => Ok(row.get::<i64>("stop_requested")? != 0),
            None => Ok(false),
        }
    }

    /// Closes a reply: final text, status, usage and error, the last events (its `done`), and the
    /// compaction of its deltas, in one transaction. Only a reply still `streaming` under
    /// `finish.owner` changes; `None` otherwise (someone else finished it), and nothing is stored.
    pub async fn finish_message(
        &self,
        finish: &MessageFinish,
    ) -> Result<Option<Vec<StoredEvent>>, StoreError> {
        let mut tx = self.db.begin("finish a message").await?;
        let Some(events) = store_events(&mut tx, &finish.chat_id, &finish.events).await? else {
            return Ok(None);
        };
        let changed = tx
            .execute(
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
                    model = COALESCE($19, model),
                    first_token_at = COALESCE(first_token_at, $21),
                    reasoning_ended_at = COALESCE(reasoning_ended_at, $22),
                    owner = NULL
                 WHERE id = $1 AND status = 'streaming' AND COALESCE(owner, '') = $20",
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
                .opt_text(finish.model.as_deref())
                .text(finish.owner.as_deref().unwrap_or(""))
                .opt_int(finish.first_token_at)
                .opt_int(finish.reasoning_ended_at),
            )
            .await?;
        if changed == 0 {
            return Ok(None);
        }
        for kind in &finish.compact {
            tx.execute(
                Sql::new(
                    "compact a finished reply's events",
                    "DELETE FROM chat_events WHERE message_id = $1 AND kind = $2",
                )
                .text(&finish.message_id)
                .text(kind),
            )
            .await?;
        }
        tx.commit("finish a message").await?;
        Ok(Some(events))
    }

    /// Stores events that belong to no running reply (a deleted message, a new title), with the
    /// chat's next seqs. Empty when the chat no longer exists.
    pub async fn append_chat_events(
        &self,
        chat_id: &str,
        events: &[EventDraft],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut tx = self.db.begin("store chat events").await?;
        let stored = store_events(&mut tx, chat_id, events).await?;
        tx.commit("store chat events").await?;
        Ok(stored.unwrap_or_default())
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

    /// The seq of the chat's latest event, 0 when it has none (or the chat does not exist).
    pub async fn last_event_seq(&self, chat_id: &str) -> Result<i64, StoreError> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "read the last chat event seq",
                    "SELECT last_event_seq FROM chats WHERE id = $1",
                )
                .text(chat_id),
            )
            .await?;
        match row {
            Some(row) => row.get("last_event_seq"),
            None => Ok(0),
        }
    }

    /// Asks whoever generates the chat's reply to stop: flags the reply (its owner sees the flag
    /// at its next write) and, on PostgreSQL, tells every instance at once. Returns the reply's
    /// id, `None` when the chat (in `ws`) has no reply streaming.
    pub async fn request_stop(
        &self,
        ws: &str,
        chat_id: &str,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.db.begin("ask a reply to stop").await?;
        let row = tx
            .fetch_optional(
                Sql::new(
                    "flag a streaming reply to stop",
                    "UPDATE messages SET stop_requested = 1
                     WHERE chat_id = $1 AND status = 'streaming'
                       AND EXISTS (SELECT 1 FROM chats WHERE chats.id = $1 AND chats.workspace = $2)
                     RETURNING id",
                )
                .text(chat_id)
                .text(ws),
            )
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let id: String = row.get("id")?;
        if tx.is_postgres() {
            tx.execute(
                Sql::new(
                    "announce a stop request",
                    "SELECT pg_notify('switchboard_stop', $1)",
                )
                .text(chat_id),
            )
            .await?;
        }
        tx.commit("ask a reply to stop").await?;
        Ok(Some(id))
    }

    /// A reply by id alone, with the text it has so far (for recovering a reply whose owner died).
    pub async fn reply(&self, message_id: &str) -> Result<Option<Message>, StoreError> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "read a reply",
                    concat!(
                        "SELECT ",
                        message_columns!(),
                        " FROM messages WHERE id = $1"
                    ),
                )
                .text(message_id),
            )
            .await?;
        let Some(mut message) = row.as_ref().map(message_from_row).transpose()? else {
            return Ok(None);
        };
        if message.status == crate::MessageStatus::Streaming {
            streaming_text(&mut Conn::Pool(&self.db), &mut message).await?;
        }
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn insert_sql_numbers_seven_placeholders_per_row() {
        let sql = super::insert_events_sql(2);
        assert!(sql.contains("($1, $2, $3, $4, $5, $6, $7, $8)"), "{sql}");
        assert!(
            sql.contains("($1, $9, $10, $11, $12, $13, $14, $15)"),
            "{sql}"
        );
    }
}
