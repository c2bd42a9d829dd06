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

use crate::db::{Conn, Sql, Tx, json_text, push_placeholder_rows};
use crate::ids::now_ms;
use crate::messages::{message_columns, message_from_row, streaming_text};
use crate::{Message, MessageFinish, Store, StoreError, StoredEvent};

/// The channel on which PostgreSQL announces stored events: payload `<chat id> <last seq>`.
pub(crate) const EVENTS_CHANNEL: &str = "switchboard_events";
/// The channel on which a stop request travels to the reply's owner: payload `<chat id>` (the
/// chat's running turn) or `<chat id> <message id>` (one reply).
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

/// An automatic title for a chat that still has its default one, with the event that
/// announces it.
#[derive(Debug, Clone, PartialEq)]
pub struct TitleChange {
    pub chat_id: String,
    /// The title the chat must still have (a title a user chose is never overwritten).
    pub default_title: String,
    pub title: String,
    pub announce: EventDraft,
}

/// What the chat engine stores in one transaction: writes and ends of running replies, and
/// automatic titles. See [`Store::write_group`].
#[derive(Debug, Default, Clone, Copy)]
pub struct WriteGroup<'a> {
    pub writes: &'a [GenerationWrite],
    pub finishes: &'a [&'a MessageFinish],
    pub titles: &'a [&'a TitleChange],
}

/// The answer to each part of a [`WriteGroup`], in its order.
#[derive(Debug, Default)]
pub struct GroupStored {
    /// `None`: the reply is no longer its owner's; nothing of the write was kept.
    pub writes: Vec<Option<GenerationAck>>,
    /// The events stored with each end (its `done`); `None`: the reply was not ended here.
    pub finishes: Vec<Option<Vec<StoredEvent>>>,
    /// The event announcing each title; `None`: the chat is gone or already has a title.
    pub titles: Vec<Option<Vec<StoredEvent>>>,
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
/// (Running replies' events go through [`Store::write_group`], which checks ownership too.)
pub(crate) async fn store_events(
    tx: &mut Tx,
    chat_id: &str,
    events: &[EventDraft],
) -> Result<Option<Vec<StoredEvent>>, StoreError> {
    if events.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let reserve = Sql::new(
        "reserve chat event seqs",
        "UPDATE chats SET last_event_seq = last_event_seq + $2 WHERE id = $1
         RETURNING last_event_seq",
    )
    .text(chat_id)
    .int(events.len() as i64);
    let Some(row) = tx.fetch_optional(reserve).await? else {
        return Ok(None);
    };
    let last: i64 = row.get("last_event_seq")?;
    store_reserved_events(tx, chat_id, last, events)
        .await
        .map(Some)
}

/// Stores `events` with the seqs that end at `last`, which the caller reserved in this
/// transaction (by moving the chat's `last_event_seq` forward by `events.len()`).
pub(crate) async fn store_reserved_events(
    tx: &mut Tx,
    chat_id: &str,
    last: i64,
    events: &[EventDraft],
) -> Result<Vec<StoredEvent>, StoreError> {
    let stored = numbered(events, last);
    let rows: Vec<EventRow> = stored
        .iter()
        .zip(events)
        .map(|(event, draft)| EventRow {
            chat_id,
            event,
            part: draft.part.as_ref(),
        })
        .collect();
    insert_events(tx, &rows).await?;
    announce(tx, &[(chat_id, last)]).await?;
    Ok(stored)
}

/// Events stored by one statement at most: one statement for a write's events rather than one
/// each (every statement is a round trip), bounded so few statement shapes are prepared.
const EVENTS_PER_INSERT: usize = 32;

/// One event to insert, with its chat and the text it carries.
struct EventRow<'a> {
    chat_id: &'a str,
    event: &'a StoredEvent,
    part: Option<&'a TextPart>,
}

/// Inserts events (of any chats) with as few statements as [`EVENTS_PER_INSERT`] allows.
async fn insert_events(tx: &mut Tx, rows: &[EventRow<'_>]) -> Result<(), StoreError> {
    for chunk in rows.chunks(EVENTS_PER_INSERT) {
        let mut sql = Sql::built(
            "store chat events",
            insert_events_sql(chunk.len(), tx.is_postgres()),
        );
        for row in chunk {
            sql = sql
                .text(row.chat_id)
                .int(row.event.seq)
                .text(&row.event.message_id)
                .text(&row.event.kind)
                .text(&row.event.data)
                .int(row.event.created_at)
                .opt_text(
                    row.part
                        .map(|p| p.content.as_str())
                        .filter(|c| !c.is_empty()),
                )
                .opt_text(
                    row.part
                        .map(|p| p.reasoning.as_str())
                        .filter(|r| !r.is_empty()),
                );
        }
        tx.execute(sql).await?;
    }
    Ok(())
}

/// `INSERT … VALUES` of `rows` events, eight placeholders each.
fn insert_events_sql(rows: usize, numbered: bool) -> String {
    let mut sql = String::from(
        "INSERT INTO chat_events
           (chat_id, seq, message_id, kind, data, created_at, content_part, reasoning_part)
         VALUES ",
    );
    push_placeholder_rows(&mut sql, rows, 8, numbered);
    sql
}

/// Chats whose seqs one statement reserves at most.
const RESERVATIONS_PER_STATEMENT: usize = 64;

/// Seqs one reply asks for: `events` of its chat's next ones, granted only while the reply is
/// still streaming under `owner` (`""`: a reply stored without an owner).
struct Reservation<'a> {
    chat_id: &'a str,
    events: usize,
    message_id: &'a str,
    owner: &'a str,
}

/// Reserves each reply's seqs and returns the last seq reserved per reservation: `None` for a
/// reply that is no longer streaming under its owner, or that asks for none. A chat appears once
/// per statement (`UPDATE … FROM` joins each target row once), so two reservations for one chat
/// go in two statements.
async fn reserve_seqs(
    tx: &mut Tx,
    wanted: &[Reservation<'_>],
) -> Result<Vec<Option<i64>>, StoreError> {
    let mut last = vec![None; wanted.len()];
    let mut todo: Vec<usize> = (0..wanted.len())
        .filter(|&i| wanted[i].events > 0)
        .collect();
    while !todo.is_empty() {
        let mut round = Vec::new();
        let mut later = Vec::new();
        let mut chats = std::collections::HashSet::new();
        for i in todo {
            if round.len() < RESERVATIONS_PER_STATEMENT && chats.insert(wanted[i].chat_id) {
                round.push(i);
            } else {
                later.push(i);
            }
        }
        let mut text = String::from(
            "UPDATE chats SET last_event_seq = chats.last_event_seq + reserved.column2
             FROM (VALUES ",
        );
        push_placeholder_rows(&mut text, round.len(), 4, tx.is_postgres());
        text.push_str(
            ") AS reserved
             WHERE chats.id = reserved.column1
               AND EXISTS (SELECT 1 FROM messages
                           WHERE messages.id = reserved.column3
                             AND COALESCE(messages.owner, '') = reserved.column4
                             AND messages.status = 'streaming')
             RETURNING id, last_event_seq",
        );
        let mut sql = Sql::built("reserve chat event seqs for replies", text);
        for &i in &round {
            let r = &wanted[i];
            sql = sql
                .text(r.chat_id)
                .int(r.events as i64)
                .text(r.message_id)
                .text(r.owner);
        }
        for row in tx.fetch_all(sql).await? {
            let chat: String = row.get("id")?;
            let seq: i64 = row.get("last_event_seq")?;
            if let Some(&i) = round.iter().find(|&&i| wanted[i].chat_id == chat) {
                last[i] = Some(seq);
            }
        }
        todo = later;
    }
    Ok(last)
}

/// `events` as stored with the seqs that end at `last`.
fn numbered(events: &[EventDraft], last: i64) -> Vec<StoredEvent> {
    let first = last - events.len() as i64 + 1;
    events
        .iter()
        .enumerate()
        .map(|(i, e)| StoredEvent {
            seq: first + i as i64,
            message_id: e.message_id.clone(),
            kind: e.kind.clone(),
            data: e.data.clone(),
            created_at: e.created_at,
        })
        .collect()
}

/// Tells the other instances (PostgreSQL) that these chats have events up to these seqs; the
/// announcements are delivered at commit. Nothing to do on SQLite, where one instance owns the
/// file.
async fn announce(tx: &mut Tx, stored: &[(&str, i64)]) -> Result<(), StoreError> {
    if !tx.is_postgres() {
        return Ok(());
    }
    for chunk in stored.chunks(RESERVATIONS_PER_STATEMENT) {
        let mut text =
            String::from("SELECT pg_notify('switchboard_events', column1) FROM (VALUES ");
        push_placeholder_rows(&mut text, chunk.len(), 1, true);
        text.push_str(") AS announced");
        let mut sql = Sql::built("announce chat events", text);
        for (chat_id, last) in chunk {
            sql = sql.text(format!("{chat_id} {last}"));
        }
        tx.execute(sql).await?;
    }
    Ok(())
}

/// The message row of a running write: what changed besides text, only while it is still
/// streaming under its owner; returns whether someone asked it to stop.
fn update_streaming_message(write: &GenerationWrite) -> Sql {
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
    .opt_int(write.reasoning_ended_at)
}

/// The message row of a finished reply: its final text and facts, only while it is still
/// streaming under its owner. Changes one row, or none.
fn finish_streaming_message(finish: &MessageFinish) -> Sql {
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
            attachments = COALESCE($23, attachments),
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
    .opt_int(finish.reasoning_ended_at)
    .opt_text(json_text(&finish.attachments))
}

/// Replies finished at most per compaction statement.
const COMPACTIONS_PER_STATEMENT: usize = 64;

/// Deletes the events that the finished replies' `done` supersedes (`finish.compact` kinds of
/// each reply that did finish): one statement for all replies that compact the same kinds, as
/// every statement is a round trip.
async fn compact(
    tx: &mut Tx,
    finishes: &[&MessageFinish],
    ended: &[Option<Vec<StoredEvent>>],
) -> Result<(), StoreError> {
    let mut groups: Vec<(&[String], Vec<&str>)> = Vec::new();
    for (finish, end) in finishes.iter().zip(ended) {
        if end.is_none() || finish.compact.is_empty() {
            continue;
        }
        match groups
            .iter_mut()
            .find(|(kinds, _)| *kinds == finish.compact.as_slice())
        {
            Some((_, ids)) => ids.push(&finish.message_id),
            None => groups.push((&finish.compact, vec![&finish.message_id])),
        }
    }
    for (kinds, ids) in groups {
        for chunk in ids.chunks(COMPACTIONS_PER_STATEMENT) {
            let mut text = String::from("DELETE FROM chat_events WHERE message_id IN (");
            let placeholders = |text: &mut String, from: usize, n: usize| {
                for i in 0..n {
                    if i > 0 {
                        text.push_str(", ");
                    }
                    text.push_str(&format!("${}", from + i));
                }
            };
            placeholders(&mut text, 1, chunk.len());
            text.push_str(") AND kind IN (");
            placeholders(&mut text, chunk.len() + 1, kinds.len());
            text.push(')');
            let mut sql = Sql::built("compact finished replies' events", text);
            for id in chunk {
                sql = sql.text(*id);
            }
            for kind in kinds {
                sql = sql.text(kind.as_str());
            }
            tx.execute(sql).await?;
        }
    }
    Ok(())
}

impl Store {
    /// One write of a running generation; see [`Store::write_generations`].
    pub async fn write_generation(
        &self,
        write: &GenerationWrite,
    ) -> Result<Option<GenerationAck>, StoreError> {
        let mut acks = self.write_generations(std::slice::from_ref(write)).await?;
        Ok(acks.pop().flatten())
    }

    /// Writes of several running generations in one transaction; see [`Store::write_group`].
    pub async fn write_generations(
        &self,
        writes: &[GenerationWrite],
    ) -> Result<Vec<Option<GenerationAck>>, StoreError> {
        let group = WriteGroup {
            writes,
            ..WriteGroup::default()
        };
        Ok(self.write_group(group).await?.writes)
    }

    /// Writes and ends of several running replies, and automatic titles, in one transaction
    /// (group commit): one statement reserves the seqs of all the replies' chats, one inserts all
    /// the events, one deletes all the ended replies' deltas, one announces them; each message
    /// row and title that changes is one more. Each part gets its own answer, in order: `None`
    /// when a reply is no longer its owner's (ended elsewhere, recovered, or its chat deleted) or
    /// a chat has a title already — nothing of that part is kept. See [`Store::finish_message`]
    /// for what an end does.
    pub async fn write_group(&self, group: WriteGroup<'_>) -> Result<GroupStored, StoreError> {
        let WriteGroup {
            writes,
            finishes,
            titles,
        } = group;
        let mut tx = self.db.begin("write replies").await?;
        // The chat rows first, as every writer does, so two writers never wait on each other.
        let wanted: Vec<Reservation> = writes
            .iter()
            .map(|w| Reservation {
                chat_id: &w.chat_id,
                events: w.events.len(),
                message_id: &w.message_id,
                owner: &w.owner,
            })
            .chain(finishes.iter().map(|f| Reservation {
                chat_id: &f.chat_id,
                events: f.events.len(),
                message_id: &f.message_id,
                owner: f.owner.as_deref().unwrap_or(""),
            }))
            .collect();
        let last_seqs = reserve_seqs(&mut tx, &wanted).await?;
        let (write_seqs, finish_seqs) = last_seqs.split_at(writes.len());

        let mut acks: Vec<Option<GenerationAck>> = writes
            .iter()
            .zip(write_seqs)
            .map(|(write, last)| {
                // A write without events is answered by its message update below.
                let events = match last {
                    Some(last) => numbered(&write.events, *last),
                    None if write.events.is_empty() => Vec::new(),
                    None => return None,
                };
                Some(GenerationAck {
                    events,
                    stop_requested: false,
                })
            })
            .collect();
        // Text travels in the events; the message row changes only when something else did (and
        // a write without events still learns whether the reply is ours, and about a stop).
        for (write, ack) in writes.iter().zip(acks.iter_mut()) {
            if !(write.fields_changed || write.events.is_empty()) || ack.is_none() {
                continue;
            }
            match tx.fetch_optional(update_streaming_message(write)).await? {
                Some(row) => {
                    if let Some(ack) = ack {
                        ack.stop_requested = row.get::<i64>("stop_requested")? != 0;
                    }
                }
                // Changed hands since the seqs were reserved: keep none of this write.
                None => *ack = None,
            }
        }

        let mut ended: Vec<Option<Vec<StoredEvent>>> = vec![None; finishes.len()];
        for ((finish, last), end) in finishes.iter().zip(finish_seqs).zip(ended.iter_mut()) {
            let events = match last {
                Some(last) => numbered(&finish.events, *last),
                None if finish.events.is_empty() => Vec::new(),
                None => continue,
            };
            if tx.execute(finish_streaming_message(finish)).await? == 0 {
                continue;
            }
            crate::files::insert_files(&mut tx, &finish.chat_id, &finish.files, finish.finished_at)
                .await?;
            *end = Some(events);
        }

        let mut titled: Vec<Option<Vec<StoredEvent>>> = vec![None; titles.len()];
        for (change, stored) in titles.iter().zip(titled.iter_mut()) {
            // The title and the seq of the event announcing it, in one statement.
            let row = tx
                .fetch_optional(
                    Sql::new(
                        "set an automatic chat title",
                        "UPDATE chats SET title = $3, last_event_seq = last_event_seq + 1
                         WHERE id = $1 AND title = $2 RETURNING last_event_seq",
                    )
                    .text(&change.chat_id)
                    .text(&change.default_title)
                    .text(&change.title),
                )
                .await?;
            if let Some(row) = row {
                let last: i64 = row.get("last_event_seq")?;
                *stored = Some(numbered(std::slice::from_ref(&change.announce), last));
            }
        }

        // Each part's events as drafted and as numbered, for the parts that are kept.
        let stored: Vec<(&str, &[EventDraft], &[StoredEvent])> = writes
            .iter()
            .zip(&acks)
            .filter_map(|(write, ack)| {
                Some((
                    write.chat_id.as_str(),
                    write.events.as_slice(),
                    ack.as_ref()?.events.as_slice(),
                ))
            })
            .chain(finishes.iter().zip(&ended).filter_map(|(finish, end)| {
                Some((
                    finish.chat_id.as_str(),
                    finish.events.as_slice(),
                    end.as_deref()?,
                ))
            }))
            .chain(titles.iter().zip(&titled).filter_map(|(change, events)| {
                Some((
                    change.chat_id.as_str(),
                    std::slice::from_ref(&change.announce),
                    events.as_deref()?,
                ))
            }))
            .collect();
        let rows: Vec<EventRow> = stored
            .iter()
            .flat_map(|&(chat_id, drafts, events)| {
                events
                    .iter()
                    .zip(drafts)
                    .map(move |(event, draft)| EventRow {
                        chat_id,
                        event,
                        part: draft.part.as_ref(),
                    })
            })
            .collect();
        insert_events(&mut tx, &rows).await?;
        compact(&mut tx, finishes, &ended).await?;

        // One announcement per chat, of its last seq.
        let mut announced: Vec<(&str, i64)> = Vec::new();
        for &(chat_id, _, events) in &stored {
            let Some(last) = events.last().map(|e| e.seq) else {
                continue;
            };
            match announced.iter_mut().find(|(c, _)| *c == chat_id) {
                Some((_, seq)) => *seq = (*seq).max(last),
                None => announced.push((chat_id, last)),
            }
        }
        announce(&mut tx, &announced).await?;
        tx.commit("write replies").await?;
        Ok(GroupStored {
            writes: acks,
            finishes: ended,
            titles: titled,
        })
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
        let group = WriteGroup {
            finishes: &[finish],
            ..WriteGroup::default()
        };
        Ok(self.write_group(group).await?.finishes.pop().flatten())
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

    /// The seq of the chat's latest event, `None` when the chat is not in `ws`: where a new
    /// follower of the chat starts, and the check that it may follow it, in one read.
    pub async fn followed_chat_seq(
        &self,
        ws: &str,
        chat_id: &str,
    ) -> Result<Option<i64>, StoreError> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "read where a chat's events are",
                    "SELECT last_event_seq FROM chats WHERE id = $1 AND workspace = $2",
                )
                .text(chat_id)
                .text(ws),
            )
            .await?;
        row.map(|row| row.get("last_event_seq")).transpose()
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

    /// Asks whoever generates the chat's replies to stop — all of the running turn's, or only
    /// `message_id` — : flags them (their owner sees the flag at its next write) and, on
    /// PostgreSQL, tells every instance at once. Returns the ids flagged, none when the chat (in
    /// `ws`) has no such reply streaming.
    pub async fn request_stop(
        &self,
        ws: &str,
        chat_id: &str,
        message_id: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.db.begin("ask a reply to stop").await?;
        let rows = tx
            .fetch_all(
                Sql::new(
                    "flag streaming replies to stop",
                    "UPDATE messages SET stop_requested = 1
                     WHERE chat_id = $1 AND status = 'streaming' AND ($3 IS NULL OR id = $3)
                       AND EXISTS (SELECT 1 FROM chats WHERE chats.id = $1 AND chats.workspace = $2)
                     RETURNING id",
                )
                .text(chat_id)
                .text(ws)
                .opt_text(message_id),
            )
            .await?;
        let ids = rows
            .iter()
            .map(|row| row.get::<String>("id"))
            .collect::<Result<Vec<_>, _>>()?;
        if ids.is_empty() {
            return Ok(ids);
        }
        if tx.is_postgres() {
            // `<chat id>` stops the chat's whole turn, `<chat id> <message id>` one reply.
            let payload = match message_id {
                Some(id) => format!("{chat_id} {id}"),
                None => chat_id.to_owned(),
            };
            tx.execute(
                Sql::new(
                    "announce a stop request",
                    "SELECT pg_notify('switchboard_stop', $1)",
                )
                .text(payload),
            )
            .await?;
        }
        tx.commit("ask a reply to stop").await?;
        Ok(ids)
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
    fn insert_sql_numbers_eight_placeholders_per_row() {
        let sql = super::insert_events_sql(2, true);
        assert!(
            sql.ends_with(
                "($1, $2, $3, $4, $5, $6, $7, $8), ($9, $10, $11, $12, $13, $14, $15, $16)"
            ),
            "{sql}"
        );
    }

    #[test]
    fn sqlite_gets_anonymous_placeholders() {
        let sql = super::insert_events_sql(2, false);
        assert!(
            sql.ends_with("(?, ?, ?, ?, ?, ?, ?, ?), (?, ?, ?, ?, ?, ?, ?, ?)"),
            "{sql}"
        );
    }
}
