//! How instances hear of each other's events and stop requests.
//!
//! Two implementations of one small trait: [`InProcess`] for SQLite, where one process owns the
//! database and everything it must hear it said itself, and [`Postgres`], which listens to what
//! other instances announce through `LISTEN/NOTIFY` (the store announces stored events inside
//! their transaction, so an announcement is never ahead of the data). No Redis, no broker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use switchboard_store::{Notice, Notifications, Store};
use tokio_util::sync::CancellationToken;

/// What a bus delivers to this instance.
pub trait Listener: Send + Sync + 'static {
    /// Events of `chat_id` up to `seq` are stored (by some instance).
    fn stored(&self, chat_id: &str, seq: i64);
    /// Someone asked the chat's running replies to stop: all of them, or only `message_id`.
    fn stop(&self, chat_id: &str, message_id: Option<&str>);
    /// Announcements may have been lost: re-read what is followed.
    fn resync(&self);
}

/// The channel between instances. Sending is done by the store (announcements travel with the
/// transactions that store events and stop requests); a bus only delivers.
pub trait Bus: Send + Sync + 'static {
    /// Deliver announcements to `listener` until `shutdown` is cancelled.
    fn run(
        self: Box<Self>,
        listener: Arc<dyn Listener>,
        shutdown: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// One process owns the database: there is nobody else to hear from.
pub struct InProcess;

impl Bus for InProcess {
    fn run(
        self: Box<Self>,
        _listener: Arc<dyn Listener>,
        shutdown: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move { shutdown.cancelled().await })
    }
}

/// Several instances share a PostgreSQL database and announce through it.
pub struct Postgres {
    store: Store,
    notifications: Notifications,
}

impl Postgres {
    /// Listens on `store`'s database; `None` when it is not PostgreSQL.
    pub async fn connect(store: &Store) -> Result<Option<Postgres>, switchboard_store::StoreError> {
        Ok(store.listen().await?.map(|notifications| Postgres {
            store: store.clone(),
            notifications,
        }))
    }
}

/// How long to wait before listening again after the database could not be reached.
const RETRY: Duration = Duration::from_secs(1);

impl Bus for Postgres {
    fn run(
        self: Box<Self>,
        listener: Arc<dyn Listener>,
        shutdown: CancellationToken,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let Postgres {
            store,
            mut notifications,
        } = *self;
        Box::pin(async move {
            loop {
                let notice = tokio::select! {
                    () = shutdown.cancelled() => return,
                    n = notifications.recv() => n,
                };
                match notice {
                    Ok(Notice::Events { chat_id, seq }) => listener.stored(&chat_id, seq),
                    Ok(Notice::Stop {
                        chat_id,
                        message_id,
                    }) => listener.stop(&chat_id, message_id.as_deref()),
                    Ok(Notice::Resync) => listener.resync(),
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for other instances failed; retrying");
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            () = tokio::time::sleep(RETRY) => {}
                        }
                        if let Ok(Some(fresh)) = store.listen().await {
                            notifications = fresh;
                        }
                        listener.resync();
                    }
                }
            }
        })
    }
}
