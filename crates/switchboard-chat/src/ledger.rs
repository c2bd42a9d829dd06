//! Writing the spend ledger in batches. Every paid call (a reply, a title, a relayed request) hands
//! its row over without waiting; one tracked task writes what has gathered, at most every
//! [`FLUSH_EVERY`], in one transaction — a row per relayed request, one statement each, would cost
//! the relay more than the relaying. Shutdown writes what is left.
//!
//! A call whose answer carried no usage (a stream the client or the user stopped) is still paid
//! for: [`Ledger::reconcile`] asks OpenRouter's generation record what it cost, in a tracked task,
//! and records that.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use switchboard_core::secret::Secret;
use switchboard_store::{Spend, Store};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long rows wait at most before they are written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// Rows waiting at most; beyond, a row is dropped (and said so) rather than slow a request.
const CAPACITY: usize = 16_384;
const BATCH: usize = 1024;

/// Where paid calls report what they cost. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::Sender<Spend>,
    /// Generation lookups under way.
    lookups: TaskTracker,
    /// Work handed to [`Ledger::record_after`] that has not run yet.
    deferred: TaskTracker,
    /// Set at shutdown: lookups under way record what they know at once.
    hurry: CancellationToken,
    runtime: tokio::runtime::Handle,
    /// Told when a batch's worth of rows waits, so the writer need not wait out its gathering.
    full: Arc<Notify>,
    /// Told of every row as it is recorded (the server's metrics), once set.
    observer: std::sync::Arc<std::sync::OnceLock<Observer>>,
}

type Observer = Box<dyn Fn(&Spend) + Send + Sync>;

/// Where to ask what a generation cost: OpenRouter's `GET /api/v1/generation?id=…`, with the key
/// that paid for it.
#[derive(Clone)]
pub struct GenerationLookup {
    pub http: reqwest::Client,
    /// The generation endpoint's URL (`…/api/v1/generation`).
    pub url: String,
    /// The key that paid, as the `authorization` header value it was sent with.
    pub authorization: Secret,
}

impl GenerationLookup {
    /// The lookup for a call made to `completions_url` (`…/v1/chat/completions`).
    pub fn beside(
        completions_url: &str,
        http: reqwest::Client,
        authorization: Secret,
    ) -> Option<GenerationLookup> {
        let base = completions_url.split_once("/v1/")?.0;
        Some(GenerationLookup {
            http,
            url: format!("{base}/v1/generation"),
            authorization,
        })
    }
}

impl Ledger {
    /// A ledger and the task that writes it, until `stop` is cancelled (then it writes the rest).
    pub(crate) fn new(
        store: Store,
        stop: CancellationToken,
    ) -> (Ledger, impl std::future::Future<Output = ()>) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let full = Arc::new(Notify::new());
        let ledger = Ledger {
            tx,
            full: full.clone(),
            lookups: TaskTracker::new(),
            deferred: TaskTracker::new(),
            hurry: CancellationToken::new(),
            runtime: tokio::runtime::Handle::current(),
            observer: Default::default(),
        };
        (ledger, write_batches(store, rx, stop, full))
    }

    /// Records `spend` with the tokens and cost of generation `generation_id` as OpenRouter's
    /// record gives them, once it has them (they appear a moment after the generation ends), or
    /// as it is if the record never comes or the instance shuts down first.
    pub fn reconcile(&self, lookup: GenerationLookup, generation_id: String, spend: Spend) {
        let ledger = self.clone();
        self.lookups.spawn_on(
            async move {
                let data = tokio::select! {
                    data = lookup.fetch(&generation_id) => data,
                    () = ledger.hurry.cancelled() => None,
                };
                ledger.record(with_generation_record(spend, data.as_ref()));
            },
            &self.runtime,
        );
    }

    /// How many generation lookups are under way (each a tracked task that ends on its own).
    pub fn lookups_in_flight(&self) -> usize {
        self.lookups.len()
    }

    /// Runs `work`, which records rows, as a task on the caller's runtime (when there is one, so
    /// a connection thread keeps it): on a single-threaded runtime, once the calling task has
    /// yielded, so a relay reads an answer's usage after the answer has been written, not
    /// before. Tracked: shutdown runs it before the writer's last batch.
    pub fn record_after(&self, work: impl FnOnce() + Send + 'static) {
        let runtime =
            tokio::runtime::Handle::try_current().unwrap_or_else(|_| self.runtime.clone());
        self.deferred.spawn_on(async move { work() }, &runtime);
    }

    /// Runs the deferred work, then ends the lookups under way (each records what it knows) and
    /// waits for them: before the writer's last batch.
    pub(crate) async fn finish_lookups(&self) {
        // Deferred work may start a lookup, so it goes first.
        self.deferred.close();
        self.deferred.wait().await;
        self.hurry.cancel();
        self.lookups.close();
        self.lookups.wait().await;
    }

    /// Has `observer` told of every row recorded from now on; only the first observer counts.
    pub fn observe(&self, observer: impl Fn(&Spend) + Send + Sync + 'static) {
        let _ = self.observer.set(Box::new(observer));
    }

    /// Hands a row over without waiting.
    pub fn record(&self, spend: Spend) {
        if let Some(observer) = self.observer.get() {
            observer(&spend);
        }
        if self.tx.try_send(spend).is_err() {
            tracing::warn!("the spend ledger is behind; a row was dropped");
        }
        if CAPACITY - self.tx.capacity() >= BATCH {
            self.full.notify_one();
        }
    }
}

impl GenerationLookup {
    /// The generation record's `data`, after a few tries further apart each time.
    async fn fetch(&self, generation_id: &str) -> Option<Value> {
        let mut wait = Duration::from_millis(500);
        for _ in 0..4 {
            let res = self
                .http
                .get(&self.url)
                .query(&[("id", generation_id)])
                .header("authorization", self.authorization.expose())
                // Rare and one-off: no idle connection is kept for it.
                .header("connection", "close")
                .timeout(Duration::from_secs(20))
                .send()
                .await;
            if let Ok(res) = res
                && res.status().is_success()
                && let Ok(body) = res.json::<Value>().await
            {
                return Some(body["data"].clone());
            }
            tokio::time::sleep(wait).await;
            wait *= 3;
        }
        None
    }
}

/// `spend` with what the generation record says, where it says it.
fn with_generation_record(mut spend: Spend, data: Option<&Value>) -> Spend {
    let Some(data) = data else {
        return spend;
    };
    let int = |key: &str| data[key].as_i64();
    if let Some(model) = data["model"].as_str() {
        spend.model = Some(model.to_owned());
    }
    if let Some(provider) = data["provider_name"].as_str() {
        spend.provider = Some(provider.to_owned());
    }
    spend.prompt_tokens = int("native_tokens_prompt")
        .or(int("tokens_prompt"))
        .or(spend.prompt_tokens);
    spend.completion_tokens = int("native_tokens_completion")
        .or(int("tokens_completion"))
        .or(spend.completion_tokens);
    spend.reasoning_tokens = int("native_tokens_reasoning").or(spend.reasoning_tokens);
    spend.cached_tokens = int("native_tokens_cached").or(spend.cached_tokens);
    spend.cost = data["total_cost"].as_f64().or(spend.cost);
    spend
}

async fn write_batches(
    store: Store,
    mut rx: mpsc::Receiver<Spend>,
    stop: CancellationToken,
    full: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        let more = tokio::select! {
            n = rx.recv_many(&mut batch, BATCH) => n > 0,
            () = stop.cancelled() => false,
        };
        // Gather for a moment: many requests, one transaction. The rows wait in the channel
        // meanwhile, so that this task is not woken for each one; a full batch ends the wait.
        if more && batch.len() < BATCH {
            tokio::select! {
                () = tokio::time::sleep(FLUSH_EVERY) => {}
                () = full.notified() => {}
                () = stop.cancelled() => {}
            }
            while batch.len() < BATCH
                && let Ok(spend) = rx.try_recv()
            {
                batch.push(spend);
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

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Waker};

    use super::*;

    /// Whether `future` is ready at its first poll.
    fn ready_now(future: impl Future) -> bool {
        let future = std::pin::pin!(future);
        future
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_ready()
    }

    /// The writer sleeps through its gathering; only a batch's worth of waiting rows ends the
    /// sleep early. (The writer is not running here: the rows stay in the channel.)
    #[tokio::test]
    async fn a_full_batch_and_only_a_full_batch_ends_the_gathering() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let (ledger, _writer) = Ledger::new(store, CancellationToken::new());
        for _ in 0..BATCH - 1 {
            ledger.record(Spend::default());
        }
        assert!(
            !ready_now(ledger.full.notified()),
            "a row short of a batch lets the writer sleep"
        );
        ledger.record(Spend::default());
        assert!(
            ready_now(ledger.full.notified()),
            "a full batch wakes the writer"
        );
    }

    /// `record_after` runs its work only once the caller has yielded, and shutdown runs it before
    /// the writer's last batch, so the row it records is written.
    #[tokio::test]
    async fn deferred_work_runs_after_the_caller_yields_and_its_row_is_written() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let stop = CancellationToken::new();
        let (ledger, writer) = Ledger::new(store.clone(), stop.clone());
        let writer = tokio::spawn(writer);
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let work = {
            let ran = ran.clone();
            let ledger = ledger.clone();
            move || {
                ran.store(true, std::sync::atomic::Ordering::SeqCst);
                ledger.record(Spend {
                    workspace: "w".into(),
                    entry: "proxy".into(),
                    cost: Some(0.25),
                    at: 1,
                    ..Spend::default()
                });
            }
        };
        ledger.record_after(work);
        assert!(
            !ran.load(std::sync::atomic::Ordering::SeqCst),
            "the work waits for the caller to yield"
        );
        ledger.finish_lookups().await;
        assert!(ran.load(std::sync::atomic::Ordering::SeqCst));
        stop.cancel();
        writer.await.unwrap();
        assert_eq!(store.spent_since("w", 0).await.unwrap(), 0.25);
    }
}
