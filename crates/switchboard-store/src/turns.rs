//! Starting a turn, reading a chat as one snapshot, and the leases that say which instance is
//! alive.
//!
//! A turn (a user's message and the streaming replies that answer it — several in a compare —
//! or replies alone) is *claimed in the database*: at most one turn per chat streams, and
//! [`Store::start_turn`] checks and inserts in one transaction with the chat row locked. So two
//! sends to one chat on two instances get one turn and one [`StoreError::Busy`]. An edit or a
//! regenerate starts its turn as new children of an earlier message (see [`crate::branches`]):
//! what followed that message leaves the active path in the same transaction, and is kept.

use std::time::Duration;

use crate::branches::{put_on_path, sibling_from_row, siblings_sql};
use crate::chats::{chat_from_row, settings_json};
use crate::db::{Conn, Db, Sql, bump_updated_at};
use crate::generation::{EventDraft, store_events};
use crate::ids::now_ms;
use crate::messages::{
    fill_streaming_text, insert_message_rows, message_columns, message_from_new, message_from_row,
};
use crate::{
    Chat, ChatSettings, Message, MessageStatus, NewMessage, Sibling, Store, StoreError, StoredEvent,
};

/// Where a turn's first message goes in the chat's tree.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnParent {
    /// After the last message of the active path (a new message).
    End,
    /// As the newest child of this message (`None`: a new first message of the chat): an edit
    /// (beside the edited message) or a regenerate (beside the reply). What followed it on the
    /// active path leaves the path and is kept.
    Under(Option<String>),
}

/// A turn to start in a chat, fully validated by the caller.
#[derive(Debug, Clone)]
pub struct NewTurn {
    /// Where the turn goes in the chat's tree.
    pub parent: TurnParent,
    /// The messages to add, in order, each the child of the one before; `streaming` ones are the
    /// replies this turn generates, siblings under the message before them (the first of them on
    /// the active path, the others beside it: a compare).
    pub messages: Vec<NewMessage>,
    /// The instance that will generate the streaming reply.
    pub owner: String,
    /// New settings for the chat (the model a message was sent with becomes the chat's).
    pub settings: Option<ChatSettings>,
    /// Files stored with the turn's messages (each names its message's id).
    pub files: Vec<crate::NewFile>,
}

/// What [`Store::start_turn`] did.
#[derive(Debug, Clone)]
pub struct TurnStarted {
    /// Ids of the messages that left the active path (an edit or a regenerate moved it), in seq
    /// order. They are kept, as other branches.
    pub replaced: Vec<String>,
    /// The appended messages as stored.
    pub messages: Vec<Message>,
    /// The events describing both, as stored.
    pub events: Vec<StoredEvent>,
}

/// A chat with one page of its latest messages and the seq of its latest event, read in one
/// snapshot: resuming the event stream after `last_event_seq` neither skips nor repeats a change
/// relative to these messages.
#[derive(Debug, Clone)]
pub struct ChatSnapshot {
    pub chat: Chat,
    /// Ascending seq; streaming replies carry the text they have so far.
    pub messages: Vec<Message>,
    /// Whether older messages exist before this page.
    pub has_more: bool,
    /// The branches beside the page's messages: every message off the active path that shares
    /// a parent with one of them, in seq order.
    pub siblings: Vec<Sibling>,
    /// The other replies of the turn that ends the active path (a compare: replies stored
    /// together under one parent), in full, in seq order; only on the page that ends the path.
    pub alternatives: Vec<Message>,
    pub last_event_seq: i64,
}

/// A reply that is streaming, and whether its owner is still alive.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamingReply {
    pub chat_id: String,
    pub message_id: String,
    /// `None` for a reply stored by a version that recorded no owner.
    pub owner: Option<String>,
    /// The owner's lease was renewed within the lease timeout.
    pub owner_alive: bool,
}

fn is_unique_violation(e: &StoreError) -> bool {
    match e {
        StoreError::Query {
            source: sqlx::Error::Database(db),
            ..
        } => db.is_unique_violation(),
        _ => false,
    }
}

impl Store {
    /// A fresh message id, for a reply that must be known (registered as running) before it is
    /// stored.
    pub fn new_message_id() -> String {
        crate::ids::new_message_id()
    }

    /// Starts a turn in one transaction (see the module docs). `Ok(None)`: the chat is not in
    /// `ws`. [`StoreError::Busy`]: another reply is streaming in the chat; nothing was changed.
    /// `describe` turns what was deleted and inserted into the events that announce it.
    pub async fn start_turn(
        &self,
        ws: &str,
        chat_id: &str,
        turn: &NewTurn,
        describe: impl FnOnce(&[String], &[Message]) -> Vec<EventDraft>,
    ) -> Result<Option<TurnStarted>, StoreError> {
        let now = now_ms();
        let mut tx = self.db.begin("start a turn").await?;
        // Locks the chat row until commit: on PostgreSQL this serialises turns of one chat.
        let chat = tx
            .fetch_optional(
                Sql::new(
                    "lock the chat for a new turn",
                    concat!(
                        "UPDATE chats SET ",
                        bump_updated_at!("$3"),
                        ", settings = COALESCE($4, settings) WHERE id = $1 AND workspace = $2 RETURNING id"
                    ),
                )
                .text(chat_id)
                .text(ws)
                .int(now)
                .opt_text(turn.settings.as_ref().map(settings_json)),
            )
            .await?;
        if chat.is_none() {
            return Ok(None);
        }
        // Whether a turn is streaming, the seq the new messages get and the end of the active
        // path, in one statement: every statement is a round trip.
        let row = tx
            .fetch_one(
                Sql::new(
                    "look for a streaming turn and pick the next message seq",
                    "SELECT COALESCE(MAX(seq), 0) + 1 AS next,
                            (SELECT COUNT(*) FROM messages
                             WHERE chat_id = $1 AND status = 'streaming') AS streaming,
                            (SELECT id FROM messages WHERE chat_id = $1 AND on_path = 1
                             ORDER BY seq DESC LIMIT 1) AS leaf
                     FROM messages WHERE chat_id = $1",
                )
                .text(chat_id),
            )
            .await?;
        if row.get::<i64>("streaming")? > 0 {
            return Err(StoreError::Busy {
                chat_id: chat_id.to_owned(),
            });
        }
        let first_seq: i64 = row.get("next")?;
        let leaf: Option<String> = row.get("leaf")?;
        let mut replaced = Vec::new();
        let parent = match &turn.parent {
            TurnParent::End => leaf,
            TurnParent::Under(parent) => {
                let after = match parent {
                    Some(parent) => {
                        let Some(row) = tx
                            .fetch_optional(
                                Sql::new(
                                    "find where a branch starts",
                                    "SELECT seq, on_path FROM messages WHERE id = $1 AND chat_id = $2",
                                )
                                .text(parent)
                                .text(chat_id),
                            )
                            .await?
                        else {
                            return Ok(None);
                        };
                        if row.get::<i64>("on_path")? == 0 {
                            // A branch off another branch: that one becomes the path first.
                            put_on_path(&mut tx, chat_id, parent).await?;
                        }
                        row.get::<i64>("seq")?
                    }
                    None => 0,
                };
                let rows = tx
                    .fetch_all(
                        Sql::new(
                            "take what follows a branch point off the active path",
                            "UPDATE messages SET on_path = 0
                             WHERE chat_id = $1 AND on_path = 1 AND seq > $2 RETURNING id, seq",
                        )
                        .text(chat_id)
                        .int(after),
                    )
                    .await?;
                let mut gone = rows
                    .iter()
                    .map(|row| Ok((row.get::<i64>("seq")?, row.get::<String>("id")?)))
                    .collect::<Result<Vec<_>, StoreError>>()?;
                gone.sort_unstable();
                replaced = gone.into_iter().map(|(_, id)| id).collect();
                parent.clone()
            }
        };
        // The turn's first message becomes its parent's active child (two statements rather
        // than an OR, so each uses the parent index).
        let deactivate = match &parent {
            Some(parent) => Sql::new(
                "make a new branch the active one",
                "UPDATE messages SET active = 0
                 WHERE chat_id = $1 AND parent_id = $2 AND active = 1",
            )
            .text(chat_id)
            .text(parent),
            None => Sql::new(
                "make a new first message the active one",
                "UPDATE messages SET active = 0
                 WHERE chat_id = $1 AND parent_id IS NULL AND active = 1",
            )
            .text(chat_id),
        };
        tx.execute(deactivate).await?;
        let mut messages: Vec<Message> = Vec::with_capacity(turn.messages.len());
        let mut beside = Vec::new();
        let mut above = parent;
        for (i, new) in turn.messages.iter().enumerate() {
            let mut message = message_from_new(chat_id, first_seq + i as i64, new, now);
            message.parent_id = above.clone();
            if new.status == MessageStatus::Streaming {
                if messages
                    .last()
                    .is_some_and(|m: &Message| m.status == MessageStatus::Streaming)
                {
                    beside.push(message.id.clone());
                }
            } else {
                above = Some(message.id.clone());
            }
            messages.push(message);
        }
        let inserted = if messages.is_empty() {
            Ok(())
        } else {
            insert_message_rows(&mut tx, &messages, Some(&turn.owner)).await
        };
        if let Err(e) = &inserted
            && is_unique_violation(e)
        {
            return Err(StoreError::Busy {
                chat_id: chat_id.to_owned(),
            });
        }
        inserted?;
        // The other replies of a compare wait beside the first, off the path.
        for chunk in beside.chunks(8) {
            let mut text = String::from(
                "UPDATE messages SET active = 0, on_path = 0 WHERE chat_id = $1 AND id IN (",
            );
            for i in 0..chunk.len() {
                if i > 0 {
                    text.push_str(", ");
                }
                text.push_str(&format!("${}", i + 2));
            }
            text.push(')');
            let mut sql =
                Sql::built("put a compare's other replies beside the first", text).text(chat_id);
            for id in chunk {
                sql = sql.text(id.as_str());
            }
            tx.execute(sql).await?;
        }
        crate::files::insert_files(&mut tx, chat_id, &turn.files, now).await?;
        let drafts = describe(&replaced, &messages);
        let events = store_events(&mut tx, chat_id, &drafts)
            .await?
            .unwrap_or_default();
        let committed = tx.commit("start a turn").await;
        if let Err(e) = &committed
            && is_unique_violation(e)
        {
            return Err(StoreError::Busy {
                chat_id: chat_id.to_owned(),
            });
        }
        committed?;
        Ok(Some(TurnStarted {
            replaced,
            messages,
            events,
        }))
    }

    /// The chat, its last `limit` messages before `before_seq` (or its end), and its latest
    /// event seq, in one snapshot. `None` if the chat is not in `ws`.
    pub async fn chat_snapshot(
        &self,
        ws: &str,
        chat_id: &str,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<Option<ChatSnapshot>, StoreError> {
        let mut tx = self.db.begin_read("read a chat").await?;
        let Some(row) = tx
            .fetch_optional(
                Sql::new(
                    "read a chat",
                    "SELECT id, workspace, title, settings, forked_from, created_at, updated_at,
                            last_event_seq
                     FROM chats WHERE id = $1 AND workspace = $2",
                )
                .text(chat_id)
                .text(ws),
            )
            .await?
        else {
            return Ok(None);
        };
        let chat = chat_from_row(&row)?;
        let last_event_seq: i64 = row.get("last_event_seq")?;
        let rows = tx
            .fetch_all(
                Sql::new(
                    "list a page of messages",
                    concat!(
                        "SELECT * FROM (SELECT ",
                        message_columns!(),
                        " FROM messages WHERE chat_id = $1 AND on_path = 1 AND seq < $2",
                        " ORDER BY seq DESC LIMIT $3) AS page ORDER BY seq"
                    ),
                )
                .text(chat_id)
                .int(before_seq.unwrap_or(i64::MAX))
                .int(i64::from(limit) + 1),
            )
            .await?;
        let mut messages = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let has_more = messages.len() > limit as usize;
        if has_more {
            messages.remove(0);
        }
        let siblings = match messages.first() {
            Some(first) => tx
                .fetch_all(siblings_sql(
                    chat_id,
                    first.seq,
                    before_seq.unwrap_or(i64::MAX),
                ))
                .await?
                .iter()
                .map(sibling_from_row)
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let mut alternatives = Vec::new();
        // A compare's other replies are among the siblings just read (off the path, beside the
        // page's last message): most chats have none, and then there is nothing more to read.
        if before_seq.is_none()
            && let Some(last) = messages.last()
            && last.role == crate::Role::Assistant
            && let Some(parent) = &last.parent_id
            && siblings
                .iter()
                .any(|s| s.role == crate::Role::Assistant && s.parent_id.as_ref() == Some(parent))
        {
            let rows = tx
                .fetch_all(
                    Sql::new(
                        "read a compare's other replies",
                        concat!(
                            "SELECT ",
                            message_columns!(),
                            " FROM messages WHERE chat_id = $1 AND parent_id = $2 AND on_path = 0
                               AND role = 'assistant' AND created_at = $3 ORDER BY seq"
                        ),
                    )
                    .text(chat_id)
                    .text(parent)
                    .int(last.created_at),
                )
                .await?;
            alternatives = rows
                .iter()
                .map(message_from_row)
                .collect::<Result<Vec<_>, _>>()?;
            fill_streaming_text(Conn::Tx(&mut tx), &mut alternatives).await?;
        }
        fill_streaming_text(Conn::Tx(&mut tx), &mut messages).await?;
        // Read-only: ending it without a commit changes nothing.
        drop(tx);
        Ok(Some(ChatSnapshot {
            chat,
            messages,
            has_more,
            siblings,
            alternatives,
            last_event_seq,
        }))
    }

    /// Records that `instance` is alive, now by the database's clock. Returns that time (ms).
    pub async fn heartbeat(&self, instance: &str) -> Result<i64, StoreError> {
        let now = self.db_now_ms().await?;
        self.db
            .execute(
                Sql::new(
                    "renew an instance's lease",
                    "INSERT INTO instances (id, started_at, heartbeat_at) VALUES ($1, $2, $2)
                     ON CONFLICT (id) DO UPDATE SET heartbeat_at = $2",
                )
                .text(instance)
                .int(now),
            )
            .await?;
        Ok(now)
    }

    /// Gives up `instance`'s lease (a clean shutdown), and forgets leases long expired.
    pub async fn release_lease(&self, instance: &str) -> Result<(), StoreError> {
        self.db
            .execute(
                Sql::new("release a lease", "DELETE FROM instances WHERE id = $1").text(instance),
            )
            .await?;
        Ok(())
    }

    /// Every streaming reply, with whether its owner renewed its lease within `lease_timeout` by
    /// the database's clock. Leases expired for a day are deleted on the way.
    pub async fn streaming_replies(
        &self,
        lease_timeout: Duration,
    ) -> Result<Vec<StreamingReply>, StoreError> {
        let now = self.db_now_ms().await?;
        let cutoff = now - lease_timeout.as_millis() as i64;
        self.db
            .execute(
                Sql::new(
                    "forget long-expired leases",
                    "DELETE FROM instances WHERE heartbeat_at < $1",
                )
                .int(now - 86_400_000),
            )
            .await?;
        let rows = self
            .db
            .fetch_all(
                Sql::new(
                    "list streaming replies",
                    "SELECT m.chat_id, m.id, m.owner,
                            CAST(CASE WHEN i.heartbeat_at >= $1 THEN 1 ELSE 0 END AS BIGINT) AS alive
                     FROM messages m LEFT JOIN instances i ON i.id = m.owner
                     WHERE m.status = 'streaming'",
                )
                .int(cutoff),
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(StreamingReply {
                    chat_id: row.get("chat_id")?,
                    message_id: row.get("id")?,
                    owner: row.get("owner")?,
                    owner_alive: row.get::<i64>("alive")? == 1,
                })
            })
            .collect()
    }

    /// The database's clock in ms since the Unix epoch: leases are compared on one clock even
    /// when instances run on machines whose clocks differ.
    async fn db_now_ms(&self) -> Result<i64, StoreError> {
        let sql = match &self.db {
            Db::Sqlite(_) => {
                "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) AS now"
            }
            Db::Postgres(_) => {
                "SELECT (extract(epoch from clock_timestamp()) * 1000)::BIGINT AS now"
            }
        };
        let row = self
            .db
            .fetch_optional(Sql::new("read the database clock", sql))
            .await?;
        match row {
            Some(row) => row.get("now"),
            None => Ok(now_ms()),
        }
    }
}
