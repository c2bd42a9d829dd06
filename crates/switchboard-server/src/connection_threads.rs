//! The threads that serve client connections: one per CPU, each with a single-threaded tokio
//! runtime of its own, as Pingora runs its services without work stealing.
//!
//! A relayed request is three tasks — hyper's server connection (which runs the handler), and
//! reqwest's connection to the upstream — that wake each other a few times per request. On the
//! process's multi-threaded runtime they were spread over both workers, and tokio woke the
//! sleeping one about twice per request to hand a task over (`strace`, round 2's seventh
//! session). Here a connection's task, its handlers and the upstream connections they open stay
//! on one thread: [`crate::outbound`] gives each connection thread lanes (pools) of its own.
//!
//! What runs beside the requests — the chat engine's replies, its journal and bus, the catalog
//! refresh — stays on the process's runtime, where work moves to whichever worker is free.
//!
//! A connection goes to the thread with the fewest open ones. The threads end after the chat
//! engine has shut down ([`ConnectionThreads::stop`]): a database connection a request opened
//! is driven by that request's thread, and the replies' last writes may still use it.

use std::cell::Cell;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::FutureExt;
use tokio::sync::oneshot;
use tokio_util::task::TaskTracker;

/// Connection threads at most, whatever the CPU count.
pub const MAX_CONNECTION_THREADS: usize = 64;

thread_local! {
    /// Which connection thread this is, on one.
    static CURRENT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The connection thread the caller runs on (`0..count`), or `None` off them.
pub fn current() -> Option<usize> {
    CURRENT.with(Cell::get)
}

/// One connection thread per CPU the process may use.
pub fn default_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_CONNECTION_THREADS)
}

/// The running connection threads. Dropped without [`ConnectionThreads::stop`], they are told
/// to stop and end on their own.
pub struct ConnectionThreads {
    threads: Vec<ConnectionThread>,
}

struct ConnectionThread {
    runtime: tokio::runtime::Handle,
    /// Connections open on this thread.
    open: Arc<AtomicUsize>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ConnectionThreads {
    /// Start `count` threads (at most [`MAX_CONNECTION_THREADS`]); with none, connections are
    /// served on the runtime that spawns them.
    pub fn start(count: usize) -> io::Result<ConnectionThreads> {
        let count = count.min(MAX_CONNECTION_THREADS);
        let mut threads = Vec::with_capacity(count);
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new()
                .name(format!("connections-{index}"))
                .spawn(move || {
                    CURRENT.with(|current| current.set(Some(index)));
                    // A current-thread runtime runs its tasks only inside `block_on`.
                    let _ = runtime.block_on(stopped);
                })?;
            threads.push(ConnectionThread {
                runtime: handle,
                open: Arc::new(AtomicUsize::new(0)),
                stop: Some(stop),
                thread: Some(thread),
            });
        }
        Ok(ConnectionThreads { threads })
    }

    /// Run one connection's `task` on the thread with the fewest open connections, tracked by
    /// `tracker`.
    pub fn spawn<F>(&self, tracker: &TaskTracker, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let Some(thread) = self
            .threads
            .iter()
            .min_by_key(|t| t.open.load(Ordering::Relaxed))
        else {
            tracker.spawn(task);
            return;
        };
        let open = OpenConnection::new(&thread.open);
        // `map` keeps the task inline; an `async` block awaiting it would hold it twice (rustc
        // does not overlap a captured future with its own `.await`), doubling every connection's
        // task allocation.
        tracker.spawn_on(task.map(move |()| drop(open)), &thread.runtime);
    }

    /// Stop every thread and wait for them to end. Call once nothing runs on them any more.
    pub async fn stop(mut self) {
        let threads: Vec<_> = self
            .threads
            .iter_mut()
            .filter_map(|t| {
                drop(t.stop.take());
                t.thread.take()
            })
            .collect();
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        });
        let _ = joined.await;
    }
}

impl Drop for ConnectionThreads {
    fn drop(&mut self) {
        for thread in &mut self.threads {
            drop(thread.stop.take());
        }
    }
}

/// A connection counted open on its thread until dropped (also when its task is cancelled).
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn new(open: &Arc<AtomicUsize>) -> OpenConnection {
        open.fetch_add(1, Ordering::Relaxed);
        OpenConnection(open.clone())
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_go_to_the_least_busy_thread_and_run_there() {
        let threads = ConnectionThreads::start(2).unwrap();
        let tracker = TaskTracker::new();
        let (release, held) = tokio::sync::watch::channel(false);
        let (ran_on, mut seen) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..4 {
            let ran_on = ran_on.clone();
            let mut held = held.clone();
            threads.spawn(&tracker, async move {
                ran_on.send(current()).unwrap();
                let _ = held.wait_for(|released| *released).await;
            });
        }
        let mut on = Vec::new();
        for _ in 0..4 {
            on.push(seen.recv().await.unwrap());
        }
        on.sort();
        // Two each: the count is taken when a connection is handed over, not when it starts.
        assert_eq!(on, [Some(0), Some(0), Some(1), Some(1)]);
        assert_eq!(current(), None, "the test's own thread is not one of them");
        release.send(true).unwrap();
        tracker.close();
        tracker.wait().await;
        assert!(
            threads
                .threads
                .iter()
                .all(|t| t.open.load(Ordering::Relaxed) == 0)
        );
        threads.stop().await;
    }
}
