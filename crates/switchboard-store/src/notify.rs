//! What other instances announce through PostgreSQL: stored events and stop requests.
//!
//! A transaction that stores chat events calls `pg_notify` (delivered only if it commits), and a
//! stop request does the same on its own channel. Each instance keeps one listening connection
//! and wakes the subscribers of the chats named. A notification can be lost while that connection
//! is being re-established; [`Notice::Resync`] says so, and listeners then re-read what they
//! follow from the database, which always has everything.

use sqlx::postgres::PgListener;

use crate::db::{Db, query_error};
use crate::generation::{EVENTS_CHANNEL, STOP_CHANNEL};
use crate::{Store, StoreError};

/// One announcement from some instance (this one included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The chat's events up to `seq` are stored.
    Events { chat_id: String, seq: i64 },
    /// Someone asked the chat's running replies to stop: all of them, or only `message_id`.
    Stop {
        chat_id: String,
        message_id: Option<String>,
    },
    /// The listening connection was re-established: announcements may have been missed.
    Resync,
}

/// The stream of [`Notice`]s of a PostgreSQL store.
pub struct Notifications {
    listener: PgListener,
}

impl Notifications {
    /// The next notice. Errors only when the database cannot be reached again; callers retry.
    pub async fn recv(&mut self) -> Result<Notice, StoreError> {
        loop {
            let next = self
                .listener
                .try_recv()
                .await
                .map_err(|e| query_error("listen for notifications", e))?;
            let Some(n) = next else {
                // The connection dropped; the next call reconnects and listens again.
                return Ok(Notice::Resync);
            };
            let payload = n.payload();
            match n.channel() {
                EVENTS_CHANNEL => {
                    if let Some((chat_id, seq)) = payload.rsplit_once(' ')
                        && let Ok(seq) = seq.parse()
                    {
                        return Ok(Notice::Events {
                            chat_id: chat_id.to_owned(),
                            seq,
                        });
                    }
                }
                STOP_CHANNEL => {
                    let (chat_id, message_id) = match payload.split_once(' ') {
                        Some((chat, message)) => (chat, Some(message.to_owned())),
                        None => (payload, None),
                    };
                    return Ok(Notice::Stop {
                        chat_id: chat_id.to_owned(),
                        message_id,
                    });
                }
                _ => {}
            }
        }
    }
}

impl Store {
    /// Listens for other instances' announcements; `None` on SQLite, where one process owns the
    /// database and has nobody to hear from.
    pub async fn listen(&self) -> Result<Option<Notifications>, StoreError> {
        let Db::Postgres(pool) = &self.db else {
            return Ok(None);
        };
        let error = |e| query_error("listen for notifications", e);
        let mut listener = PgListener::connect_with(pool).await.map_err(error)?;
        listener
            .listen_all([EVENTS_CHANNEL, STOP_CHANNEL])
            .await
            .map_err(error)?;
        Ok(Some(Notifications { listener }))
    }
}
