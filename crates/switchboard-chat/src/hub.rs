//! Waking the browsers that follow a chat.
//!
//! Every event is in the database before anyone hears of it, so a subscriber needs no copy of
//! the log in memory: a [`Hub`] per followed chat only holds the seq of the chat's latest stored
//! event (and the last batch, so subscribers on the instance that wrote it need not read it
//! back). Subscribers read what they have not seen from the database and wait for the hub to move.
//! Whatever order writes and wake-ups arrive in — from this instance, or from another one through
//! the [bus](crate::bus) — a subscriber resumes from its own last seq, so it never skips or repeats.
//!
//! A hub exists only while someone holds it (a subscriber or a running reply): an idle chat costs
//! no memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use switchboard_store::{Store, StoreError, StoredEvent};
use tokio::sync::watch;

/// Events read from the database per query when catching up.
const PAGE: u32 = 500;

/// The latest stored event the hub has heard of, with the batch that ended there when known.
#[derive(Clone, Default)]
struct Committed {
    seq: i64,
    batch: Option<Arc<[StoredEvent]>>,
}

/// One followed chat.
pub(crate) struct Hub {
    chat_id: String,
    tx: watch::Sender<Committed>,
    hubs: Weak<Mutex<HashMap<String, Weak<Hub>>>>,
}

impl Drop for Hub {
    fn drop(&mut self) {
        if let Some(map) = self.hubs.upgrade() {
            let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
            // A new hub for the same chat may have replaced this one already.
            if map
                .get(&self.chat_id)
                .is_some_and(|weak| weak.strong_count() == 0)
            {
                map.remove(&self.chat_id);
            }
        }
    }
}

/// The hubs of the chats someone follows on this instance.
#[derive(Default)]
pub(crate) struct Hubs {
    map: Arc<Mutex<HashMap<String, Weak<Hub>>>>,
}

impl Hubs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<Hub>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The chat's hub, made on first use.
    pub(crate) fn hub(&self, chat_id: &str) -> Arc<Hub> {
        let mut map = self.lock();
        if let Some(hub) = map.get(chat_id).and_then(Weak::upgrade) {
            return hub;
        }
        let hub = Arc::new(Hub {
            chat_id: chat_id.to_owned(),
            tx: watch::Sender::new(Committed::default()),
            hubs: Arc::downgrade(&self.map),
        });
        map.insert(chat_id.to_owned(), Arc::downgrade(&hub));
        hub
    }

    /// Events of `chat_id` up to `seq` are stored: wake its subscribers, if it has any here.
    /// `batch` is what this instance just wrote (so its subscribers need not read it back).
    pub(crate) fn advance(&self, chat_id: &str, seq: i64, batch: Option<Arc<[StoredEvent]>>) {
        let Some(hub) = self.lock().get(chat_id).and_then(Weak::upgrade) else {
            return;
        };
        hub.tx.send_if_modified(|c| {
            if seq <= c.seq {
                return false;
            }
            *c = Committed { seq, batch };
            true
        });
    }

    /// Stored events, as a writer on this instance got them back.
    pub(crate) fn stored(&self, chat_id: &str, events: Vec<StoredEvent>) {
        if let Some(last) = events.last().map(|e| e.seq) {
            self.advance(chat_id, last, Some(events.into()));
        }
    }

    /// Wake every subscriber to re-read the database (announcements may have been missed).
    pub(crate) fn resync(&self) {
        let hubs: Vec<Arc<Hub>> = self.lock().values().filter_map(Weak::upgrade).collect();
        for hub in hubs {
            hub.tx.send_modify(|c| c.batch = None);
        }
    }

    /// How many chats are followed here (for tests and metrics).
    pub(crate) fn len(&self) -> usize {
        self.lock()
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

/// One browser following one chat: [`Subscription::next`] gives the chat's events after the
/// last one it gave, in seq order, waiting until there are some.
pub struct Subscription {
    store: Store,
    chat_id: String,
    rx: watch::Receiver<Committed>,
    /// Holds the hub alive while someone follows the chat.
    _hub: Arc<Hub>,
    last: i64,
    /// The database may hold events this subscriber has not seen.
    behind: bool,
}

impl Subscription {
    pub(crate) fn new(store: Store, hub: Arc<Hub>, after: i64) -> Subscription {
        let mut rx = hub.tx.subscribe();
        // Seen before the first read: a write committed after that read wakes us.
        rx.borrow_and_update();
        Subscription {
            store,
            chat_id: hub.chat_id.clone(),
            rx,
            _hub: hub,
            last: after,
            behind: true,
        }
    }

    /// The seq of the last event given out.
    pub fn last_seq(&self) -> i64 {
        self.last
    }

    /// The next events (never empty), in seq order.
    pub async fn next(&mut self) -> Result<Vec<StoredEvent>, StoreError> {
        loop {
            if self.behind {
                let rows = self
                    .store
                    .events_after(&self.chat_id, self.last, PAGE)
                    .await?;
                if let Some(last) = rows.last() {
                    self.last = last.seq;
                    return Ok(rows);
                }
                self.behind = false;
            }
            if self.rx.changed().await.is_err() {
                // Cannot happen while we hold the hub; read again rather than spin.
                self.behind = true;
                continue;
            }
            let committed = self.rx.borrow_and_update().clone();
            if let Some(batch) = &committed.batch
                && batch.first().is_some_and(|e| e.seq == self.last + 1)
                && batch.last().is_some_and(|e| e.seq == committed.seq)
            {
                self.last = committed.seq;
                return Ok(batch.to_vec());
            }
            // A gap (another writer's events, another instance's, a missed wake-up): the
            // database has them all.
            self.behind = committed.seq > self.last || committed.batch.is_none();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hub_lives_only_while_it_is_held() {
        let hubs = Hubs::default();
        let a = hubs.hub("a");
        let again = hubs.hub("a");
        assert!(Arc::ptr_eq(&a, &again), "one hub per chat");
        assert_eq!(hubs.len(), 1);
        drop(a);
        drop(again);
        assert_eq!(hubs.len(), 0);
        assert!(
            hubs.lock().is_empty(),
            "a dropped hub leaves no entry behind"
        );
        // Advancing a chat nobody follows costs nothing and makes no hub.
        hubs.advance("a", 5, None);
        assert!(hubs.lock().is_empty());
    }

    #[test]
    fn a_hub_only_moves_forward() {
        let hubs = Hubs::default();
        let hub = hubs.hub("a");
        let rx = hub.tx.subscribe();
        hubs.advance("a", 5, None);
        hubs.advance("a", 3, None);
        assert_eq!(rx.borrow().seq, 5);
    }
}
