//! Writing the spend ledger in batches. Every paid call (a reply, a title, a relayed request) hands
//! its row over without waiting; one tracked task writes what has gathered, at most every
//! [`FLUSH_EVERY`], in one transaction — a row per relayed request, one statement each, would cost
//! the relay more than the relaying. Shutdown writes what is left.

use std::time::Duration;

use switchboard_store::{Spend, Store};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long rows wait at most before they are written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// Rows waiting at most; beyond, a row is dropped (and said so) rather than slow a request.
const CAPACITY: usize = 16_384;
const BATCH: usize = 1024;

/// Where paid calls report what they cost. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::Sender<Spend>,
}

impl Ledger {
    /// A ledger and the task that writes it, until `stop` is cancelled (then it writes the rest).
    pub(crate) fn new(
        store: Store,
        stop: CancellationToken,
    ) -> (Ledger, impl std::future::Future<Output = ()>) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        (Ledger { tx }, write_batches(store, rx, stop))
    }

    /// Hands a row over without waiting.
    pub fn record(&self, spend: Spend) {
        if self.tx.try_send(spend).is_err() {
            tracing::warn!("the spend ledger is behind; a row was dropped");
        }
    }
}

async fn write_batches(store: Store, mut rx: mpsc::Receiver<Spend>, stop: CancellationToken) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let more = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => n > 0,
            () = stop.cancelled() => false,
        };
        // Gather for a moment: many requests, one transaction.
        let deadline = tokio::time::Instant::now() + FLUSH_EVERY;
        while more && batch.len() < BATCH {
            let room = BATCH - batch.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut batch, room)).await {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        if !more {
            // Shutting down (or every sender gone): take what is queued, write it, end.
            rx.close();
            while let Ok(spend) = rx.try_recv() {
                batch.push(spend);
            }
        }
        if !batch.is_empty() {
            if let Err(e) = store.record_spends(&batch).await {
                tracing::warn!(error = %e, rows = batch.len(), "could not write the spend ledger");
            }
            batch.clear();
        }
        if !more {
            return;
        }
    }
}
