//! One hub per chat: the ordered, resumable event stream browsers subscribe to, and the live state
//! of the message being generated.
//!
//! Every change to a chat's messages becomes an [`Event`] with the chat's next integer `seq`. An
//! event is broadcast at once and also kept in a ring until it has been written to the database;
//! only written events ever leave the ring. So a subscriber resuming after seq `n` finds every
//! later event either in the database (older ones) or in the ring (newer ones), with no gap and no
//! duplicate — and a slow subscriber, which the bounded broadcast drops, catches up the same way.
//!
//! The live message state lives here, under the same lock that assigns seqs, so a snapshot of
//! "the text so far" always corresponds exactly to "the events up to seq n".

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use switchboard_store::Message;
use tokio::sync::{Notify, broadcast};

/// Written events kept in memory for quick resumes, beyond the unwritten ones.
const RING_KEEP: usize = 512;
/// How far a subscriber may fall behind before it is dropped to catch up from the ring/database.
const BROADCAST_CAPACITY: usize = 1024;

/// One change to a chat, as sent to browsers.
#[derive(Debug)]
pub struct Event {
    pub seq: i64,
    pub kind: &'static str,
    pub message_id: String,
    /// JSON text, one line.
    pub data: String,
    pub created_at: i64,
    persisted: AtomicBool,
}

impl Event {
    pub fn mark_persisted(&self) {
        self.persisted.store(true, Ordering::Release);
    }

    fn is_persisted(&self) -> bool {
        self.persisted.load(Ordering::Acquire)
    }
}

/// The text and parts of a message while it streams.
#[derive(Debug, Default, Clone)]
pub struct LiveMessage {
    pub content: String,
    pub reasoning: String,
    /// `(id, name, arguments)` by tool-call index.
    pub tool_calls: Vec<(String, String, String)>,
    pub annotations: Vec<Value>,
    /// The message as it ends, set together with its `done` event and kept until it is written.
    /// A snapshot taken in between already counts `done` in its seq, so what it shows must be
    /// the finished message too: a page rendered then would otherwise show a reply still
    /// streaming and wait for a `done` it was told it had seen.
    pub finished: Option<Box<Message>>,
}

impl LiveMessage {
    pub fn tool_calls_json(&self) -> Option<Value> {
        (!self.tool_calls.is_empty()).then(|| {
            Value::Array(
                self.tool_calls
                    .iter()
                    .map(|(id, name, args)| {
                        serde_json::json!({"id": id, "name": name, "arguments": args})
                    })
                    .collect(),
            )
        })
    }

    pub fn annotations_json(&self) -> Option<Value> {
        (!self.annotations.is_empty()).then(|| Value::Array(self.annotations.clone()))
    }
}

/// Why the chat could not be claimed.
enum Busy {
    /// A reply is being generated.
    Generating,
    /// A reply has sent `done` and is writing its final state.
    Finishing,
}

/// A running generation's handle: which message, and how to stop it.
pub struct Running {
    pub message_id: String,
    pub stop: Arc<Notify>,
}

struct Inner {
    next_seq: i64,
    ring: VecDeque<Arc<Event>>,
    live: HashMap<String, LiveMessage>,
    running: Option<Running>,
}

impl Inner {
    /// Whether the generation holding the chat has sent `done` and is only writing its final state.
    fn finishing(&self, running: &Running) -> bool {
        self.live
            .get(&running.message_id)
            .is_some_and(|m| m.finished.is_some())
    }
}

/// What a subscriber gets: the events it missed that memory still has, where memory starts, and
/// the live feed from then on.
pub struct Subscription {
    pub backlog: Vec<Arc<Event>>,
    /// The lowest seq memory can still give; older ones come from the database.
    pub memory_from: i64,
    pub receiver: broadcast::Receiver<Arc<Event>>,
}

/// A consistent view of the chat at one seq.
pub struct Snapshot {
    pub last_seq: i64,
    pub live: HashMap<String, LiveMessage>,
    pub running: Option<String>,
}

pub struct ChatHub {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<Event>>,
    /// Notified whenever a generation releases the chat ([`ChatHub::finished`]).
    released: Notify,
}

impl ChatHub {
    /// A hub whose next event gets `last_stored_seq + 1`.
    pub fn new(last_stored_seq: i64) -> ChatHub {
        ChatHub {
            inner: Mutex::new(Inner {
                next_seq: last_stored_seq + 1,
                ring: VecDeque::new(),
                live: HashMap::new(),
                running: None,
            }),
            tx: broadcast::channel(BROADCAST_CAPACITY).0,
            released: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Assign the next seq to an event, keep it, and broadcast it. `update` changes the live
    /// message state under the same lock — so snapshots and seqs always agree — and returns the
    /// event's JSON data.
    pub fn emit(
        &self,
        kind: &'static str,
        message_id: &str,
        update: impl FnOnce(&mut HashMap<String, LiveMessage>) -> String,
    ) -> Arc<Event> {
        let mut inner = self.lock();
        let data = update(&mut inner.live);
        let event = Arc::new(Event {
            seq: inner.next_seq,
            kind,
            message_id: message_id.to_string(),
            data,
            created_at: now_ms(),
            persisted: AtomicBool::new(false),
        });
        inner.next_seq += 1;
        inner.ring.push_back(event.clone());
        Self::trim(&mut inner);
        // No receiver is fine: nobody is watching this chat right now.
        let _ = self.tx.send(event.clone());
        event
    }

    /// Drop written events from the front of the ring beyond what quick resumes need.
    fn trim(inner: &mut Inner) {
        while inner.ring.len() > RING_KEEP && inner.ring.front().is_some_and(|e| e.is_persisted()) {
            inner.ring.pop_front();
        }
    }

    /// Call after events were written, so the ring can let them go.
    pub fn persisted(&self, events: &[Arc<Event>]) {
        for e in events {
            e.mark_persisted();
        }
        Self::trim(&mut self.lock());
    }

    pub fn subscribe(&self, after: i64) -> Subscription {
        let inner = self.lock();
        let memory_from = inner.ring.front().map_or(inner.next_seq, |e| e.seq);
        Subscription {
            backlog: inner
                .ring
                .iter()
                .filter(|e| e.seq > after)
                .cloned()
                .collect(),
            memory_from,
            receiver: self.tx.subscribe(),
        }
    }

    /// The chat as of its last event. A generation whose `done` has been emitted is not reported
    /// as running, although it keeps the chat until its final write (see [`ChatHub::finished`]).
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.lock();
        let running = inner.running.as_ref().filter(|r| !inner.finishing(r));
        Snapshot {
            last_seq: inner.next_seq - 1,
            live: inner.live.clone(),
            running: running.map(|r| r.message_id.clone()),
        }
    }

    /// The live state of one message (for checkpoints).
    pub fn live(&self, message_id: &str) -> Option<LiveMessage> {
        self.lock().live.get(message_id).cloned()
    }

    /// Claim the chat for a generation; `None` when another reply is being generated. A reply
    /// that has sent `done` and is only writing its final state is waited for, up to `patience`,
    /// rather than refused: to a client that saw `done` the chat is free, and the next message it
    /// sends must not bounce. The write takes milliseconds; it takes longer only while the
    /// database fails, when the new turn could not be stored either.
    pub async fn start_when_free(
        &self,
        message_id: &str,
        patience: std::time::Duration,
    ) -> Option<Arc<Notify>> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            // Registered before the check, so a release between the two is not missed.
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            match self.try_start(message_id) {
                Ok(stop) => return Some(stop),
                Err(Busy::Generating) => return None,
                Err(Busy::Finishing) => {}
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return None;
            }
        }
    }

    /// Claim the chat now, or say why not.
    fn try_start(&self, message_id: &str) -> Result<Arc<Notify>, Busy> {
        let mut inner = self.lock();
        if let Some(running) = &inner.running {
            return Err(if inner.finishing(running) {
                Busy::Finishing
            } else {
                Busy::Generating
            });
        }
        let stop = Arc::new(Notify::new());
        inner.running = Some(Running {
            message_id: message_id.to_string(),
            stop: stop.clone(),
        });
        inner
            .live
            .insert(message_id.to_string(), LiveMessage::default());
        Ok(stop)
    }

    /// The generation's message now exists: move the claim from the placeholder to it.
    pub fn rename_running(&self, from: &str, to: &str) {
        let mut inner = self.lock();
        if let Some(r) = inner.running.as_mut()
            && r.message_id == from
        {
            r.message_id = to.to_string();
        }
        let live = inner.live.remove(from).unwrap_or_default();
        inner.live.insert(to.to_string(), live);
    }

    /// The generation ended and its final state is written: release the chat and forget the
    /// live state. The chat stays claimed until then, so the next turn's history reads the reply
    /// as it ended, not its last checkpoint.
    pub fn finished(&self, message_id: &str) {
        let mut inner = self.lock();
        if inner
            .running
            .as_ref()
            .is_some_and(|r| r.message_id == message_id)
        {
            inner.running = None;
        }
        inner.live.remove(message_id);
        drop(inner);
        self.released.notify_waiters();
    }

    pub fn running(&self) -> Option<String> {
        self.lock().running.as_ref().map(|r| r.message_id.clone())
    }

    /// Ask the running generation to stop; false when none runs.
    pub fn stop(&self) -> bool {
        match &self.lock().running {
            Some(r) => {
                // notify_one stores a permit, so a stop that races the task's first poll still lands.
                r.stop.notify_one();
                true
            }
            None => false,
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chats::view::MessageView;
    use switchboard_store::{MessageStatus, Role};

    #[test]
    fn seqs_increase_and_ring_keeps_unwritten_events() {
        let hub = ChatHub::new(41);
        let mut events = Vec::new();
        for i in 0..(RING_KEEP + 10) {
            events.push(hub.emit("delta", "m", |_| format!("{i}")));
        }
        assert_eq!(events[0].seq, 42);
        // Nothing written yet: everything stays.
        assert_eq!(hub.subscribe(41).backlog.len(), RING_KEEP + 10);
        hub.persisted(&events[..20]);
        let sub = hub.subscribe(41);
        assert_eq!(sub.backlog.len(), RING_KEEP);
        assert_eq!(sub.memory_from, 52);
    }

    #[tokio::test]
    async fn a_lagging_subscriber_catches_up_from_the_ring() {
        let hub = ChatHub::new(0);
        let mut sub = hub.subscribe(0);
        for i in 0..(BROADCAST_CAPACITY + 100) {
            hub.emit("delta", "m", |_| format!("{i}"));
        }
        // The bounded broadcast dropped this slow subscriber instead of waiting for it…
        assert!(matches!(
            sub.receiver.recv().await,
            Err(broadcast::error::RecvError::Lagged(_))
        ));
        // …and it resubscribes from the last seq it saw, losing nothing.
        let again = hub.subscribe(0);
        let seqs: Vec<i64> = again.backlog.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=(BROADCAST_CAPACITY as i64 + 100)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn snapshot_matches_seq() {
        let hub = ChatHub::new(0);
        assert!(hub.try_start("m").is_ok());
        assert!(hub.try_start("other").is_err(), "one generation per chat");
        hub.emit("delta", "m", |live| {
            live.get_mut("m").unwrap().content.push_str("Hel");
            "{}".into()
        });
        hub.emit("delta", "m", |live| {
            live.get_mut("m").unwrap().content.push_str("lo");
            "{}".into()
        });
        let snap = hub.snapshot();
        assert_eq!(snap.last_seq, 2);
        assert_eq!(snap.live["m"].content, "Hello");
        assert!(hub.stop());
        hub.finished("m");
        assert!(!hub.stop());
        assert!(hub.try_start("next").is_ok());
    }

    fn reply(status: MessageStatus, content: &str) -> Message {
        crate::chats::test_message("m", Role::Assistant, status, content)
    }

    #[test]
    fn a_reply_whose_done_is_emitted_shows_finished_before_it_is_written() {
        // What the database holds until the final write: the last checkpoint.
        let stored = reply(MessageStatus::Streaming, "Hel");
        let hub = ChatHub::new(0);
        assert!(hub.try_start("m").is_ok());
        hub.emit("delta", "m", |live| {
            live.get_mut("m").unwrap().content.push_str("Hello");
            "{}".into()
        });
        let snap = hub.snapshot();
        assert_eq!(snap.running.as_deref(), Some("m"));
        let view = MessageView::with_live(&stored, snap.live.get("m"));
        assert_eq!(
            (view.status, view.content.as_str()),
            (MessageStatus::Streaming, "Hello")
        );

        let done = hub.emit("done", "m", |live| {
            live.get_mut("m").unwrap().finished =
                Some(Box::new(reply(MessageStatus::Complete, "Hello")));
            "{}".into()
        });
        let snap = hub.snapshot();
        assert_eq!(snap.last_seq, done.seq);
        assert_eq!(
            snap.running, None,
            "a page must not wait for a done it has seen"
        );
        let view = MessageView::with_live(&stored, snap.live.get("m"));
        assert_eq!(
            (view.status, view.content.as_str()),
            (MessageStatus::Complete, "Hello")
        );
        // Until the final write the chat stays claimed: the next turn would read a stale reply.
        assert!(hub.try_start("next").is_err());
        hub.finished("m");
        assert!(hub.try_start("next").is_ok());
    }

    #[tokio::test]
    async fn the_next_turn_waits_for_a_finishing_reply_but_not_for_a_generating_one() {
        let hub = Arc::new(ChatHub::new(0));
        assert!(hub.try_start("m").is_ok());
        let patience = std::time::Duration::from_secs(30);
        // Still generating: refused at once, not after the patience.
        let refused = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            hub.start_when_free("next", patience),
        )
        .await;
        assert!(
            matches!(refused, Ok(None)),
            "a generating reply is not waited for"
        );

        hub.emit("done", "m", |live| {
            live.get_mut("m").unwrap().finished =
                Some(Box::new(reply(MessageStatus::Complete, "Hello")));
            "{}".into()
        });
        let waiting = tokio::spawn({
            let hub = hub.clone();
            async move { hub.start_when_free("next", patience).await.is_some() }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "the final write has not landed yet");
        hub.finished("m");
        assert!(
            waiting.await.unwrap(),
            "claimed once the finishing reply released the chat"
        );
        assert_eq!(hub.running().as_deref(), Some("next"));
    }

    #[tokio::test]
    async fn waiting_for_a_finishing_reply_gives_up_after_the_patience() {
        let hub = ChatHub::new(0);
        assert!(hub.try_start("m").is_ok());
        hub.emit("done", "m", |live| {
            live.get_mut("m").unwrap().finished =
                Some(Box::new(reply(MessageStatus::Complete, "Hello")));
            "{}".into()
        });
        let patience = std::time::Duration::from_millis(50);
        assert!(hub.start_when_free("next", patience).await.is_none());
        assert_eq!(hub.running().as_deref(), Some("m"));
    }
}
