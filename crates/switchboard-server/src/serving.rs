//! Accepting connections and serving them: one acceptor hands each new connection to one of N
//! worker threads, each running its own single-threaded tokio runtime (thread-per-core, as in
//! actix-web).
//!
//! Why not tokio's work-stealing runtime: there, the thread that reads a request, the one that
//! polls the upstream connection and the one that writes the response are often different, and
//! handing a task over wakes a parked thread (a futex and an eventfd write per request, seen in
//! strace). On 2 vCPUs that measured as a quarter of the latency the relay added. Here a
//! connection, its requests and the upstream connections they borrow (see
//! [`crate::upstream_pool`]) stay on one thread from the first byte to the last.
//!
//! The trade: a connection is pinned to its worker, so CPU-heavy work in a request delays the
//! other connections of that worker instead of being stolen by an idle one. The one such work,
//! rendering a page of messages, therefore runs on tokio's blocking pool
//! (`MessageView::render_page`). Connections are dealt round-robin, which balances the many
//! similar connections a gateway sees.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tower::Service;

/// Serve `router` on `listener` until `shutdown` resolves, then let in-flight requests (and
/// streams) finish, for at most [`SHUTDOWN_GRACE`]. Dropping the returned future instead stops
/// the workers at once.
pub(crate) async fn serve(
    router: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let workers = Workers::start(worker_count())?;
    let graceful = GracefulShutdown::new();
    let mut turn = 0usize;
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    wait_after_accept_error(e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Deregister from the acceptor's reactor; the worker registers it with its own.
        let tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::debug!("dropping an accepted connection: {e}");
                continue;
            }
        };
        let connection = serve_connection(tcp, peer, router.clone(), graceful.watcher());
        workers.handles[turn % workers.handles.len()].spawn(connection);
        turn = turn.wrapping_add(1);
    }
    drop(listener);
    let open = graceful.count();
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still busy {}s after the shutdown signal are closed ({open} were open at the signal)",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    Ok(())
}

/// How long in-flight requests (a relayed reply still streaming, say) may take to finish once
/// shutdown has begun. Service managers kill the process after their own stop timeout (systemd:
/// 90 s); this ends cleanly before that.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

async fn serve_connection(
    tcp: std::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    watcher: Watcher,
) {
    let tcp = match TcpStream::from_std(tcp) {
        Ok(tcp) => tcp,
        Err(e) => {
            tracing::debug!("dropping an accepted connection: {e}");
            return;
        }
    };
    // Streams are many small writes: Nagle's algorithm would hold each delta back.
    let _ = tcp.set_nodelay(true);
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        async move {
            let res: Result<_, Infallible> = router.call(req.map(Body::new)).await;
            res
        }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::trace!("connection from {peer} ended: {e}");
    }
}

/// One worker per CPU this process may run on (`available_parallelism` honours affinity masks and
/// cgroup CPU quotas).
fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The worker threads. Dropping this stops them: each waits on the receiving end of a `stop`
/// channel, which resolves when its sender goes away.
struct Workers {
    handles: Vec<Handle>,
    _stop: Vec<oneshot::Sender<()>>,
}

impl Workers {
    fn start(count: usize) -> io::Result<Workers> {
        let mut handles = Vec::with_capacity(count);
        let mut stop = Vec::with_capacity(count);
        for i in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            handles.push(runtime.handle().clone());
            stop.push(stop_tx);
            std::thread::Builder::new()
                .name(format!("switchboard-worker-{i}"))
                .spawn(move || {
                    let _ = runtime.block_on(stop_rx);
                    // Don't wait for blocking tasks (a DNS lookup, say) that no one awaits now.
                    runtime.shutdown_background();
                })?;
        }
        Ok(Workers {
            handles,
            _stop: stop,
        })
    }
}

/// What hyper 0.14's server did: a connection that failed during its handshake is the peer's
/// problem; anything else (out of file descriptors, say) is logged, and accepting pauses for a
/// second so the process can close some rather than spin.
async fn wait_after_accept_error(e: io::Error) {
    if matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!("accept error: {e}");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Threads of this process whose name starts like the workers' (the kernel keeps 15 bytes).
    fn worker_threads() -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with("switchboard-wor"))
            .count()
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..200 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting until {what}");
    }

    #[tokio::test]
    async fn requests_are_served_and_dropping_serve_stops_its_workers() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/", axum::routing::get(|| async { "served" }));
        let server = tokio::spawn(serve(router, listener, std::future::pending()));
        until("the workers run", || worker_threads() == worker_count()).await;

        let mut tcp = TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("served"), "{answer}");

        server.abort();
        let _ = server.await;
        until("the workers stop", || worker_threads() == 0).await;
    }
}
