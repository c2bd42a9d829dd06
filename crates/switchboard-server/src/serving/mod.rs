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
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use bytes::{Buf, Bytes};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::{oneshot, watch};
use tokio_util::task::TaskTracker;
use tower::Service;

mod connection;
pub mod h1;

/// Serve `router` on `listener` until `shutdown` resolves, then let in-flight requests (and
/// streams) finish, for at most [`SHUTDOWN_GRACE`]. Dropping the returned future instead stops
/// the workers at once.
pub(crate) async fn serve(
    router: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let workers = Workers::start(worker_count())?;
    let connections = TaskTracker::new();
    let (stopping, stop_signal) = watch::channel(false);
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
        let connection = serve_connection(tcp, peer, router.clone(), stop_signal.clone());
        workers.handles[turn % workers.handles.len()].spawn(connections.track_future(connection));
        turn = turn.wrapping_add(1);
    }
    drop(listener);
    // Idle connections close now; busy ones after their current response.
    let _ = stopping.send(true);
    connections.close();
    let open = connections.len();
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.wait())
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
    stopping: watch::Receiver<bool>,
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
    match connection::serve(tcp, peer, router.clone(), stopping.clone()).await {
        Ok(connection::Ended::Closed) => {}
        Ok(connection::Ended::Http2(tcp, read)) => {
            // Boxed: hyper's HTTP/2 connection state would otherwise be part of every
            // connection's task, HTTP/1 ones included.
            Box::pin(serve_http2(tcp, read, peer, router, stopping)).await
        }
        Err(e) => tracing::trace!("connection from {peer} ended: {e}"),
    }
}

/// HTTP/2 without TLS ("prior knowledge", as a reverse proxy may speak it) is hyper's.
async fn serve_http2(
    tcp: TcpStream,
    read: Bytes,
    peer: SocketAddr,
    router: Router,
    mut stopping: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        async move {
            let res: Result<_, Infallible> = router.call(req.map(Body::new)).await;
            res
        }
    });
    let io = TokioIo::new(Prefixed { read, io: tcp });
    let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(io, service);
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = stopped(&mut stopping) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = ended {
        tracing::trace!("HTTP/2 connection from {peer} ended: {e}");
    }
}

/// Resolves once shutdown has begun.
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    loop {
        let stop = *stopping.borrow_and_update();
        if stop || stopping.changed().await.is_err() {
            return;
        }
    }
}

/// A socket whose first bytes were already read: they are read again first.
struct Prefixed {
    read: Bytes,
    io: TcpStream,
}

impl AsyncRead for Prefixed {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.read.is_empty() {
            let n = self.read.len().min(buf.remaining());
            buf.put_slice(&self.read[..n]);
            self.read.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
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
