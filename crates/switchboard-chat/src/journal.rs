//! Group commit of the writes of running replies.
//!
//! Every running reply writes what arrived since its last write about every
//! [`WRITE_EVERY`](crate::generate::WRITE_EVERY). One transaction per write made the database the
//! cost of a reply (four statements for a few words); so writes go through one [`Journal`] per
//! instance, which stores all the writes that are waiting in one transaction
//! ([`Store::write_group`]). Replies time their writes on one shared grid
//! ([`Journal::next_tick`]), so the writes of all running replies arrive together and share a
//! transaction even when the database is idle.
//!
//! A reply's end (its final text, `done` event and the compaction of its deltas) and a new
//! chat's automatic title go the same way: replies started together end together, and their
//! ends and titles share a transaction too.
//!
//! A reply still awaits its own write: nothing it shows is unstored, and each write gets its own
//! answer. When a group fails, its writes are retried one by one, so one bad write never holds
//! back the others.

use std::time::Duration;

use std::sync::Arc;

use switchboard_store::{
    GenerationAck, GenerationWrite, MessageFinish, Store, StoreError, StoredEvent, TitleChange,
    WriteGroup,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Writes stored by one transaction at most.
const GROUP: usize = 256;

type Answer = Result<Option<GenerationAck>, WriteFailed>;
/// A finish's or a title's answer: the events stored (a `done`, a `chat`), or `None` when the
/// reply was not ours or the chat has a title already.
type Ended = Result<Option<Vec<StoredEvent>>, WriteFailed>;

/// Why a write of a reply was not stored; the reply keeps its text and tries again.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WriteFailed {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The journal's task ended without answering (it panicked): nothing is known of the write.
    #[error("the journal stopped before the write was stored")]
    JournalGone,
}

// Writes are nearly all of what travels here: boxing them would cost an allocation each.
#[allow(clippy::large_enum_variant)]
enum Submission {
    Write {
        write: GenerationWrite,
        answer: oneshot::Sender<Answer>,
    },
    Finish {
        finish: Arc<MessageFinish>,
        answer: oneshot::Sender<Ended>,
    },
    Title {
        change: TitleChange,
        answer: oneshot::Sender<Ended>,
    },
}

/// Where running replies hand their writes. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Journal {
    tx: mpsc::UnboundedSender<Submission>,
    store: Store,
    /// The origin of the write grid.
    epoch: Instant,
    every: Duration,
}

impl Journal {
    /// A journal writing every `every` on a shared grid, and the task that writes, until `stop`
    /// is cancelled (then it writes what is waiting and ends; later writes go to the store
    /// directly).
    pub(crate) fn new(
        store: Store,
        every: Duration,
        stop: CancellationToken,
    ) -> (Journal, impl std::future::Future<Output = ()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let journal = Journal {
            tx,
            store: store.clone(),
            epoch: Instant::now(),
            every,
        };
        (journal, write_groups(store, rx, stop))
    }

    /// Stores one write, with whatever other writes are waiting; see [`Store::write_generation`].
    pub(crate) async fn write(&self, write: GenerationWrite) -> Answer {
        let (answer, answered) = oneshot::channel();
        if let Err(mpsc::error::SendError(Submission::Write { write, .. })) =
            self.tx.send(Submission::Write { write, answer })
        {
            // The journal has ended (shutdown): write alone.
            return Ok(self.store.write_generation(&write).await?);
        }
        answered.await.unwrap_or(Err(WriteFailed::JournalGone))
    }

    /// Ends a reply, with whatever other writes are waiting; see [`Store::finish_message`].
    pub(crate) async fn finish(&self, finish: Arc<MessageFinish>) -> Ended {
        let (answer, answered) = oneshot::channel();
        if let Err(mpsc::error::SendError(Submission::Finish { finish, .. })) =
            self.tx.send(Submission::Finish { finish, answer })
        {
            // The journal has ended (shutdown): finish alone.
            return Ok(self.store.finish_message(&finish).await?);
        }
        answered.await.unwrap_or(Err(WriteFailed::JournalGone))
    }

    /// Sets a chat's automatic title, with whatever other writes are waiting; see
    /// [`Store::set_title_if_default`].
    pub(crate) async fn title(&self, change: TitleChange) -> Ended {
        let (answer, answered) = oneshot::channel();
        if let Err(mpsc::error::SendError(Submission::Title { change, .. })) =
            self.tx.send(Submission::Title { change, answer })
        {
            // The journal has ended (shutdown): write alone.
            return Ok(title_alone(&self.store, &change).await?);
        }
        answered.await.unwrap_or(Err(WriteFailed::JournalGone))
    }

    /// When a write made at `now` should be followed by the next one: the next point of the
    /// grid shared by all replies, so their writes arrive together.
    pub(crate) fn next_tick(&self, now: Instant) -> Instant {
        let every = self.every.as_nanos().max(1);
        let since = now.saturating_duration_since(self.epoch).as_nanos();
        let ticks = since / every + 1;
        self.epoch + Duration::from_nanos((ticks * every) as u64)
    }
}

async fn write_groups(
    store: Store,
    mut rx: mpsc::UnboundedReceiver<Submission>,
    stop: CancellationToken,
) {
    let mut group = Vec::with_capacity(GROUP);
    loop {
        let more = tokio::select! {
            n = rx.recv_many(&mut group, GROUP) => n > 0,
            () = stop.cancelled() => false,
        };
        if more {
            // The other replies woken by the same tick are ready to run: let them hand over
            // their writes before this group is closed.
            tokio::task::yield_now().await;
            while group.len() < GROUP {
                match rx.try_recv() {
                    Ok(s) => group.push(s),
                    Err(_) => break,
                }
            }
        } else {
            rx.close();
            while let Ok(s) = rx.try_recv() {
                group.push(s);
            }
        }
        if !group.is_empty() {
            write_group(&store, std::mem::take(&mut group)).await;
        }
        if !more {
            return;
        }
    }
}

/// A title written in a transaction of its own (when the journal has ended or a group failed).
async fn title_alone(
    store: &Store,
    change: &TitleChange,
) -> Result<Option<Vec<StoredEvent>>, StoreError> {
    store
        .set_title_if_default(
            &change.chat_id,
            &change.default_title,
            &change.title,
            change.announce.clone(),
        )
        .await
}

async fn write_group(store: &Store, group: Vec<Submission>) {
    let mut writes = Vec::new();
    let mut write_answers = Vec::new();
    let mut finishes = Vec::new();
    let mut finish_answers = Vec::new();
    let mut titles = Vec::new();
    let mut title_answers = Vec::new();
    for submission in group {
        match submission {
            Submission::Write { write, answer } => {
                writes.push(write);
                write_answers.push(answer);
            }
            Submission::Finish { finish, answer } => {
                finishes.push(finish);
                finish_answers.push(answer);
            }
            Submission::Title { change, answer } => {
                titles.push(change);
                title_answers.push(answer);
            }
        }
    }
    let finish_refs: Vec<&MessageFinish> = finishes.iter().map(|f| &**f).collect();
    let title_refs: Vec<&TitleChange> = titles.iter().collect();
    let group = WriteGroup {
        writes: &writes,
        finishes: &finish_refs,
        titles: &title_refs,
    };
    match store.write_group(group).await {
        Ok(stored) => {
            for (answer, ack) in write_answers.into_iter().zip(stored.writes) {
                let _ = answer.send(Ok(ack));
            }
            for (answer, end) in finish_answers.into_iter().zip(stored.finishes) {
                let _ = answer.send(Ok(end));
            }
            for (answer, events) in title_answers.into_iter().zip(stored.titles) {
                let _ = answer.send(Ok(events));
            }
        }
        Err(e) if writes.len() + finishes.len() + titles.len() == 1 => {
            // One alone: its own error is the answer.
            if let Some(answer) = write_answers.pop() {
                let _ = answer.send(Err(e.into()));
            } else if let Some(answer) = finish_answers.pop().or_else(|| title_answers.pop()) {
                let _ = answer.send(Err(e.into()));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, writes = writes.len(), finishes = finishes.len(), titles = titles.len(), "a group write of replies failed; writing them one by one");
            for (write, answer) in writes.iter().zip(write_answers) {
                let _ = answer.send(store.write_generation(write).await.map_err(Into::into));
            }
            for (finish, answer) in finish_refs.iter().zip(finish_answers) {
                let _ = answer.send(store.finish_message(finish).await.map_err(Into::into));
            }
            for (change, answer) in titles.iter().zip(title_answers) {
                let _ = answer.send(title_alone(store, change).await.map_err(Into::into));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_store::{
        ChatSettings, EventDraft, Message, MessageStatus, NewMessage, NewTurn, Role, TextPart,
        TurnParent,
    };

    const OWNER: &str = "this-instance";

    async fn running_reply(store: &Store, chat_id: &str) -> Message {
        let turn = NewTurn {
            parent: TurnParent::End,
            messages: vec![
                NewMessage::new(Role::User, "hi"),
                NewMessage::streaming_reply("m"),
            ],
            owner: OWNER.into(),
            settings: None,
            files: Vec::new(),
        };
        let started = store
            .start_turn("default", chat_id, &turn, |_, _| Vec::new())
            .await
            .unwrap()
            .expect("the chat exists");
        started.messages.into_iter().last().unwrap()
    }

    /// A write, an end and a title handed over together share one group, and each gets its
    /// own answer: the write its delta, the end its `done`, the title its `chat` event.
    #[tokio::test]
    async fn a_group_of_a_write_an_end_and_a_title_answers_each_its_own() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let mut chats = Vec::new();
        for _ in 0..3 {
            let chat = store
                .create_chat("default", "New chat", &ChatSettings::default())
                .await
                .unwrap();
            chats.push(chat.id);
        }
        let writing = running_reply(&store, &chats[0]).await;
        let ending = running_reply(&store, &chats[1]).await;

        let mut delta = EventDraft::new("delta", &writing.id, r#"{"content":"so far"}"#.into());
        delta.part = Some(TextPart {
            content: "so far".into(),
            reasoning: String::new(),
        });
        let write = GenerationWrite {
            chat_id: chats[0].clone(),
            message_id: writing.id.clone(),
            owner: OWNER.into(),
            events: vec![delta],
            ..GenerationWrite::default()
        };
        let finish = Arc::new(MessageFinish {
            chat_id: chats[1].clone(),
            message_id: ending.id.clone(),
            owner: Some(OWNER.into()),
            status: MessageStatus::Complete,
            content: "the whole reply".into(),
            reasoning: String::new(),
            reasoning_details: None,
            tool_calls: None,
            annotations: None,
            usage: Default::default(),
            finish_reason: Some("stop".into()),
            error_code: None,
            error_message: None,
            finished_at: 1,
            generation_id: None,
            provider: None,
            model: None,
            first_token_at: None,
            reasoning_ended_at: None,
            events: vec![EventDraft::new("done", &ending.id, "{}".into())],
            compact: vec!["delta".into()],
            attachments: None,
            files: Vec::new(),
        });
        let title = TitleChange {
            chat_id: chats[2].clone(),
            default_title: "New chat".into(),
            title: "Named".into(),
            announce: EventDraft::new("chat", "", "{}".into()),
        };

        let stop = CancellationToken::new();
        let (journal, task) = Journal::new(store.clone(), Duration::from_millis(100), stop.clone());
        // All three are handed over before the journal's task first runs: one group.
        let answers = async {
            let answers = tokio::join!(
                journal.write(write),
                journal.finish(finish),
                journal.title(title)
            );
            stop.cancel();
            answers
        };
        let ((wrote, ended, titled), ()) = tokio::join!(answers, task);

        let kinds = |events: &[StoredEvent]| -> Vec<(String, String)> {
            events
                .iter()
                .map(|e| (e.kind.clone(), e.message_id.clone()))
                .collect()
        };
        let wrote = wrote.unwrap().expect("ours");
        assert_eq!(kinds(&wrote.events), [("delta".into(), writing.id.clone())]);
        let ended = ended.unwrap().expect("ours");
        assert_eq!(kinds(&ended), [("done".into(), ending.id.clone())]);
        let titled = titled.unwrap().expect("still the default title");
        assert_eq!(kinds(&titled), [("chat".into(), String::new())]);

        let reply = store.reply(&ending.id).await.unwrap().unwrap();
        assert_eq!(
            (reply.content.as_str(), reply.status),
            ("the whole reply", MessageStatus::Complete)
        );
        let named = store.get_chat("default", &chats[2]).await.unwrap().unwrap();
        assert_eq!(named.title, "Named");
    }

    #[tokio::test]
    async fn ticks_fall_on_one_grid_after_now() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let every = Duration::from_millis(100);
        let (journal, _task) = Journal::new(store, every, CancellationToken::new());
        let epoch = journal.epoch;
        let at = |ms: u64| epoch + Duration::from_millis(ms);
        assert_eq!(journal.next_tick(at(0)), at(100));
        assert_eq!(journal.next_tick(at(1)), at(100));
        assert_eq!(journal.next_tick(at(99)), at(100));
        assert_eq!(journal.next_tick(at(100)), at(200));
        assert_eq!(journal.next_tick(at(250)), at(300));
    }
}
