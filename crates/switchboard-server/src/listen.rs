//! Client connections, on hyper-util's server: HTTP/1.1 and HTTP/2 with prior knowledge (as a
//! reverse proxy may speak it), told apart by the HTTP/2 preface.
//!
//! Limits, so that slow or many clients cannot take the server down:
//! - a request head must arrive within [`HEAD_TIMEOUT`] (which is also how long an HTTP/1.1
//!   connection may sit idle between requests); its size is bounded by [`MAX_HEAD_BYTES`]
//!   (hyper answers 431 past it; the `edge` layer answers 431 JSON past `MAX_HEADER_BYTES`);
//! - a request body must keep coming: a gap longer than `SWITCHBOARD_BODY_TIMEOUT` between two
//!   reads of it ends the request with 408 JSON and closes the connection;
//! - at most `SWITCHBOARD_MAX_CONNECTIONS` connections are served normally. Past that, a small
//!   reserve is served one request each, with short timeouts, and then closed, so `/healthz` and a
//!   new user still get an answer while the kept-alive or slow ones hold the rest; past the
//!   reserve, new connections wait in the kernel's backlog until one closes;
//! - an HTTP/2 connection with no request in flight for [`Limits::http2_idle_timeout`] (pings
//!   answered or not) is closed gracefully (GOAWAY), as HTTP/1.1's head timeout closes an idle one.
//!
//! Shutdown: the listener closes, idle connections close, busy ones finish their current
//! response (for at most [`SHUTDOWN_GRACE`]).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, Version, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::FutureExt;
use futures_util::task::AtomicWaker;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::Service;

use crate::connection_threads::ConnectionThreads;
use crate::error::ApiError;

/// How long a request head may take to arrive, counted from when the connection is ready for it
/// (so also the idle keep-alive timeout of an HTTP/1.1 connection).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// The most a request head may take in hyper's read buffer; hyper answers 431 past it.
pub const MAX_HEAD_BYTES: usize = crate::MAX_HEADER_BYTES + 16 * 1024;

/// Header lines per request (hyper answers 431 past it).
pub const MAX_HEADERS: usize = 128;

/// How long in-flight requests (a relayed reply still streaming, say) may take to finish once
/// shutdown has begun. Service managers kill the process after their own stop timeout (systemd:
/// 90 s); this ends cleanly before that.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// What overflow connections (past the cap) may take for their one request.
const OVERFLOW_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an HTTP/2 connection may go without a request in flight before it is closed: as
/// long as an HTTP/1.1 connection may wait for its next head.
pub const HTTP2_IDLE_TIMEOUT: Duration = HEAD_TIMEOUT;

/// How many connections to serve, and how long a body or a connection may pause.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub body_timeout: Duration,
    /// [`HTTP2_IDLE_TIMEOUT`]; tests shorten it.
    pub http2_idle_timeout: Duration,
    /// Threads that serve connections ([`crate::connection_threads`]); 0 serves them on the
    /// runtime that accepts them (tests that count that runtime's tasks).
    pub connection_threads: usize,
}

impl Limits {
    /// Connections served one request each past the cap.
    fn reserve(&self) -> usize {
        (self.max_connections / 64).clamp(4, 256)
    }
}

/// Half of the file descriptors this process may open, less a margin: a relayed stream holds a
/// client socket and an upstream one, and the database, the log and the listener need theirs.
pub fn default_max_connections() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        limit.rlim_cur as usize
    } else {
        1024
    };
    (soft.saturating_sub(256) / 2).max(32)
}

/// Serve `router` on `listener` until `shutdown` resolves, then let in-flight requests finish.
/// Connections are accepted here and served on `threads`.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    limits: Limits,
    threads: &ConnectionThreads,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let normal = Arc::new(Semaphore::new(limits.max_connections));
    let overflow = Arc::new(Semaphore::new(limits.reserve()));
    // Every connection's task, and the signal that asks them to close.
    let connections = TaskTracker::new();
    let closing = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        // A connection is accepted only when it can be served: normally, or from the reserve.
        let slot = tokio::select! {
            slot = take_slot(&normal, &overflow) => slot,
            () = &mut shutdown => break,
        };
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
        // Streams are many small writes: Nagle's algorithm would hold each delta back.
        let _ = tcp.set_nodelay(true);
        // Taken off this runtime's reactor: the connection thread registers it with its own, so
        // that the socket's readiness wakes that thread and no other.
        let tcp = match tcp.into_std() {
            Ok(tcp) => tcp,
            Err(e) => {
                tracing::debug!("could not hand over a connection from {peer}: {e}");
                continue;
            }
        };
        let closing = closing.clone();
        let router = router.clone();
        threads.spawn(&connections, async move {
            let tcp = match TcpStream::from_std(tcp) {
                Ok(tcp) => tcp,
                Err(e) => {
                    tracing::debug!("could not serve a connection from {peer}: {e}");
                    return;
                }
            };
            serve_connection(tcp, peer, slot, router, limits, closing).await;
        });
    }
    drop(listener);
    let open = connections.len();
    closing.cancel();
    connections.close();
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

/// Serve one accepted connection until it closes: by itself, idle, or asked to by `closing`.
async fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    router: Router,
    limits: Limits,
    closing: CancellationToken,
) {
    let protocol = tokio::select! {
        protocol = tokio::time::timeout(slot.head_timeout(), protocol_of(&tcp)) => match protocol {
            Ok(Ok(Some(protocol))) => protocol,
            // Closed before a byte came, or no byte within the head timeout: nothing to answer.
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(e)) => {
                tracing::trace!("connection from {peer} failed before its first request: {e}");
                return;
            }
        },
        () = closing.cancelled() => return,
    };
    serve_protocol(tcp, protocol, peer, slot, router, limits, closing).await;
}

/// Serve a connection that speaks `protocol` (see [`serve_connection`]).
async fn serve_protocol(
    tcp: TcpStream,
    protocol: Protocol,
    peer: SocketAddr,
    slot: Slot,
    router: Router,
    limits: Limits,
    closing: CancellationToken,
) {
    let overflowing = slot.overflow;
    let head_timeout = slot.head_timeout();
    let activity = Arc::new(Activity::default());
    let service = Handler {
        activity: activity.clone(),
        router,
        peer,
        body_timeout: if overflowing {
            limits.body_timeout.min(OVERFLOW_TIMEOUT)
        } else {
            limits.body_timeout
        },
        close_after: overflowing,
    };
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(MAX_HEAD_BYTES)
        .max_headers(MAX_HEADERS)
        .keep_alive(!overflowing);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEAD_BYTES as u32)
        // A peer that stops answering pings is gone: its streams are dropped.
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20));
    let builder = match protocol {
        Protocol::Http1 => builder.http1_only(),
        Protocol::Http2 => builder.http2_only(),
        Protocol::Undecided => builder,
    };
    // The connection and the close signal are made in the call's arguments: held in locals,
    // they would be stored in this future as well as in `until_closed`'s, twice their size.
    let ended = until_closed(
        builder.serve_connection(
            TokioIo::new(tcp),
            hyper::service::service_fn(move |req| service.call(req)),
        ),
        close_signal(closing, activity, limits.http2_idle_timeout),
        auto::Connection::graceful_shutdown,
    )
    .await;
    if let Err(e) = ended {
        tracing::trace!("connection from {peer} ended: {e}");
    }
    drop(slot);
}

/// What a new connection speaks, told from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Http1,
    /// HTTP/2 with prior knowledge: the connection starts with HTTP/2's preface.
    Http2,
    /// The bytes so far begin the preface without completing it; hyper-util reads on to tell.
    Undecided,
}

/// HTTP/2's connection preface (RFC 9113, 3.4).
const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol of a new connection, from its first bytes left unread in the socket (`None`:
/// closed before sending any).
///
/// Peeked rather than read, so that hyper reads the first request into a fresh 8 KiB buffer.
/// hyper-util's own detection reads the first 24 bytes itself and hands them to hyper as a read
/// of their own, after which hyper's read buffer grows to 16 KiB for the rest of the connection
/// (8 KiB more per HTTP/1.1 connection, 4 MB at 512 streams).
async fn protocol_of(tcp: &TcpStream) -> io::Result<Option<Protocol>> {
    let mut first = [0; HTTP2_PREFACE.len()];
    let n = tcp.peek(&mut first).await?;
    Ok((n > 0).then(|| protocol_from(&first[..n])))
}

fn protocol_from(first: &[u8]) -> Protocol {
    if first.starts_with(HTTP2_PREFACE) {
        Protocol::Http2
    } else if HTTP2_PREFACE.starts_with(first) {
        Protocol::Undecided
    } else {
        Protocol::Http1
    }
}

/// Resolves when the connection is to close: at shutdown, or after `idle_timeout` with no
/// request in flight (which only HTTP/2 connections record; see [`Activity`]).
async fn close_signal(closing: CancellationToken, activity: Arc<Activity>, idle_timeout: Duration) {
    tokio::select! {
        () = closing.cancelled() => {}
        () = activity.idle_for(idle_timeout) => {}
    }
}

pin_project_lite::pin_project! {
    /// `connection` driven to its end, asked to close gracefully once `close` resolves. `close`
    /// is polled only when its own waker fired, not at each of the connection's wakes: the
    /// shutdown signal's and the idle watch's futures take a lock when polled, which every frame
    /// would pay. A struct rather than an `async fn`, which would store the connection twice
    /// (its argument and the pinned local).
    struct UntilClosed<C, S> {
        #[pin]
        connection: C,
        #[pin]
        close: S,
        graceful_shutdown: fn(Pin<&mut C>),
        woken: Arc<Woken>,
        close_waker: Waker,
        asked: bool,
    }
}

fn until_closed<C: Future, S: Future<Output = ()>>(
    connection: C,
    close: S,
    graceful_shutdown: fn(Pin<&mut C>),
) -> UntilClosed<C, S> {
    let woken = Arc::new(Woken {
        flag: AtomicBool::new(true),
        task: AtomicWaker::new(),
    });
    UntilClosed {
        connection,
        close,
        graceful_shutdown,
        close_waker: Waker::from(woken.clone()),
        woken,
        asked: false,
    }
}

impl<C: Future, S: Future<Output = ()>> Future for UntilClosed<C, S> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let mut this = self.project();
        if !*this.asked {
            // Registered before the flag is taken, so a wake in between is not lost.
            this.woken.task.register(cx.waker());
            if this.woken.flag.swap(false, Ordering::AcqRel)
                && this
                    .close
                    .as_mut()
                    .poll(&mut Context::from_waker(this.close_waker))
                    .is_ready()
            {
                *this.asked = true;
                (this.graceful_shutdown)(this.connection.as_mut());
            }
        }
        this.connection.poll(cx)
    }
}

/// The waker [`UntilClosed`] polls `close` with: it notes the wake, then wakes the task.
struct Woken {
    flag: AtomicBool,
    task: AtomicWaker,
}

impl std::task::Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.flag.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// The permit a connection holds while it is open, and whether it came from the reserve.
struct Slot {
    _permit: OwnedSemaphorePermit,
    overflow: bool,
}

impl Slot {
    /// How long the connection may take to send a request head.
    fn head_timeout(&self) -> Duration {
        if self.overflow {
            OVERFLOW_TIMEOUT
        } else {
            HEAD_TIMEOUT
        }
    }
}

async fn take_slot(normal: &Arc<Semaphore>, overflow: &Arc<Semaphore>) -> Slot {
    let slot = |permit: Result<OwnedSemaphorePermit, _>, overflow| Slot {
        _permit: permit.expect("the semaphores are never closed"),
        overflow,
    };
    if let Ok(permit) = normal.clone().try_acquire_owned() {
        return slot(Ok(permit), false);
    }
    tokio::select! {
        permit = normal.clone().acquire_owned() => slot(permit, false),
        permit = overflow.clone().acquire_owned() => slot(permit, true),
    }
}

/// What an HTTP/2 connection is doing, for its idle timeout: requests started and in flight,
/// counted by one atomic add per request and one subtract when its response body is dropped.
#[derive(Default)]
struct Activity {
    /// Requests started (high 32 bits) and in flight (low 32 bits), so that one load tells both
    /// whether any is running and whether any began since the last look.
    requests: AtomicU64,
    /// Told when the last request in flight ends.
    went_idle: Notify,
    /// The connection speaks HTTP/1.1: its head timeout closes it when idle, not this.
    http1: AtomicBool,
}

const STARTED: u64 = 1 << 32;
const IN_FLIGHT: u64 = STARTED - 1;

impl Activity {
    /// Resolves once an HTTP/2 connection has gone `period` with no request in flight; never
    /// for HTTP/1.1. Before the first request the connection counts as idle.
    async fn idle_for(&self, period: Duration) {
        let mut seen = self.requests.load(Ordering::Acquire);
        loop {
            if seen & IN_FLIGHT > 0 {
                self.went_idle.notified().await;
                seen = self.requests.load(Ordering::Acquire);
                continue;
            }
            tokio::time::sleep(period).await;
            if self.http1.load(Ordering::Relaxed) {
                return std::future::pending().await;
            }
            let now = self.requests.load(Ordering::Acquire);
            if now == seen {
                return;
            }
            seen = now;
        }
    }

    fn start(self: &Arc<Self>) -> Running {
        self.requests.fetch_add(STARTED + 1, Ordering::AcqRel);
        Running(self.clone())
    }
}

/// An HTTP/2 request in flight, until its response body is finished or dropped.
struct Running(Arc<Activity>);

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.requests.fetch_sub(1, Ordering::AcqRel) & IN_FLIGHT == 1 {
            // A permit is kept when no one waits, so the watcher cannot miss it.
            self.0.went_idle.notify_one();
        }
    }
}

/// A response body that keeps its request counted as in flight (see [`Activity`]).
struct Counted {
    inner: Body,
    _running: Running,
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One connection's service: the router, with the peer's address, the body timeout and, for an
/// overflow connection, `Connection: close`.
struct Handler {
    router: Router,
    activity: Arc<Activity>,
    peer: SocketAddr,
    body_timeout: Duration,
    close_after: bool,
}

impl Handler {
    /// Route `req` now and return its response's future. hyper keeps one allocation per
    /// connection the size of this future, so it holds only the router's future and what the
    /// response needs afterwards (an `async` block would also hold the request it moved on).
    fn call(
        &self,
        req: Request<Incoming>,
    ) -> impl Future<Output = Result<Response, Infallible>> + Send + use<> {
        // Counted from here, so a request whose body is still arriving is not idle.
        let running = if req.version() == Version::HTTP_2 {
            Some(self.activity.start())
        } else {
            if !self.activity.http1.load(Ordering::Relaxed) {
                self.activity.http1.store(true, Ordering::Relaxed);
            }
            None
        };
        let body_timeout = self.body_timeout;
        let close_after = self.close_after;
        let timed_out = Arc::new(AtomicBool::new(false));
        let mut req = req.map(|body| {
            Body::new(TimedBody {
                inner: body,
                timeout: body_timeout,
                timer: None,
                timed_out: timed_out.clone(),
            })
        });
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let routed = self.router.clone().call(req);
        routed.map(move |res| {
            let mut res = match res {
                Ok(res) => res,
                Err(never) => match never {},
            };
            if timed_out.load(Ordering::Relaxed) {
                // Whatever the handler made of a body that stopped coming, the client is told
                // why, and the connection (with the rest of that body unread) is not reused.
                res = ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!(
                        "the request body stopped arriving for {} s (SWITCHBOARD_BODY_TIMEOUT)",
                        body_timeout.as_secs_f32()
                    ),
                )
                .into_response();
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            } else if close_after {
                res.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(match running {
                Some(running) => res.map(|inner| {
                    Body::new(Counted {
                        inner,
                        _running: running,
                    })
                }),
                None => res,
            })
        })
    }
}

/// A request body that fails when the client pauses longer than `timeout` between two frames
/// while the handler waits for it, and says so in `timed_out`.
struct TimedBody {
    inner: Incoming,
    timeout: Duration,
    /// Armed while the handler waits; cleared by every frame.
    timer: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

impl hyper::body::Body for TimedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            this.timer = None;
            return Poll::Ready(frame.map(|f| f.map_err(io::Error::other)));
        }
        let timeout = this.timeout;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(timer.as_mut().poll(cx));
        this.timed_out.store(true, Ordering::Relaxed);
        Poll::Ready(Some(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the request body stopped arriving",
        ))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_first_bytes_tell_the_protocol() {
        assert_eq!(protocol_from(HTTP2_PREFACE), Protocol::Http2);
        let mut preface_and_frame = HTTP2_PREFACE.to_vec();
        preface_and_frame.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        assert_eq!(protocol_from(&preface_and_frame), Protocol::Http2);
        assert_eq!(protocol_from(b"GET / HTTP/1.1\r\n"), Protocol::Http1);
        assert_eq!(protocol_from(b"POST /v1/chat"), Protocol::Http1);
        // `P` may begin `POST` or the preface; `PRI * HT` can only be the preface so far.
        assert_eq!(protocol_from(b"P"), Protocol::Undecided);
        assert_eq!(protocol_from(b"PRI * HT"), Protocol::Undecided);
        assert_eq!(protocol_from(b"PRI * HTTP/1.1"), Protocol::Http1);
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn the_protocol_is_peeked_and_the_bytes_stay_for_hyper() {
        let (mut client, mut server) = pair().await;
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert_eq!(protocol_of(&server).await.unwrap(), Some(Protocol::Http1));
        let mut read = [0; 16];
        server.read_exact(&mut read).await.unwrap();
        assert_eq!(&read, b"GET / HTTP/1.1\r\n");

        let (mut client, server) = pair().await;
        client.write_all(b"PR").await.unwrap();
        assert_eq!(
            protocol_of(&server).await.unwrap(),
            Some(Protocol::Undecided)
        );
        drop(client);

        let (client, server) = pair().await;
        drop(client);
        assert_eq!(protocol_of(&server).await.unwrap(), None);
    }

    fn slot() -> Slot {
        Slot {
            _permit: Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap(),
            overflow: false,
        }
    }

    const LIMITS: Limits = Limits {
        max_connections: 4,
        body_timeout: Duration::from_secs(60),
        http2_idle_timeout: HTTP2_IDLE_TIMEOUT,
        connection_threads: 0,
    };

    /// A connection whose client sends nothing, served until it closes; `closing` is its
    /// shutdown signal.
    async fn silent_connection(
        closing: CancellationToken,
    ) -> (TcpStream, tokio::task::JoinHandle<()>) {
        let (client, server) = pair().await;
        let peer = server.peer_addr().unwrap();
        let served = tokio::spawn(serve_connection(
            server,
            peer,
            slot(),
            Router::new(),
            LIMITS,
            closing,
        ));
        (client, served)
    }

    /// Just short of the head timeout on the runtime's paused clock.
    const BEFORE_HEAD_TIMEOUT: Duration = HEAD_TIMEOUT.saturating_sub(Duration::from_millis(1));

    /// Waiting for the first bytes is bounded as hyper's wait for a head was: the connection is
    /// still open just before the head timeout and closed at it.
    #[tokio::test(start_paused = true)]
    async fn a_connection_that_never_speaks_is_closed_at_the_head_timeout() {
        let (mut client, served) = silent_connection(CancellationToken::new()).await;
        let mut byte = [0; 1];
        let early = tokio::time::timeout(BEFORE_HEAD_TIMEOUT, client.read(&mut byte)).await;
        assert!(
            early.is_err(),
            "still open before the head timeout: {early:?}"
        );
        assert_eq!(client.read(&mut byte).await.unwrap(), 0, "closed");
        served.await.unwrap();
    }

    /// Shutdown closes a connection still waiting for its first bytes, before the head timeout.
    #[tokio::test(start_paused = true)]
    async fn a_connection_that_never_speaks_is_closed_at_shutdown() {
        let closing = CancellationToken::new();
        let (mut client, served) = silent_connection(closing.clone()).await;
        closing.cancel();
        let read = tokio::time::timeout(BEFORE_HEAD_TIMEOUT, client.read(&mut [0; 1])).await;
        assert_eq!(read.ok().map(Result::unwrap), Some(0), "closed at shutdown");
        served.await.unwrap();
    }

    /// Each way a connection can start is served: told apart by us, or (undecided) by hyper-util.
    #[tokio::test]
    async fn each_protocol_choice_serves_its_clients() {
        let router = Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
        let cases = [
            (Protocol::Http1, Version::HTTP_11),
            (Protocol::Undecided, Version::HTTP_11),
            (Protocol::Http2, Version::HTTP_2),
            (Protocol::Undecided, Version::HTTP_2),
        ];
        for (protocol, version) in cases {
            let (client, server) = pair().await;
            let peer = server.peer_addr().unwrap();
            let closing = CancellationToken::new();
            let served = tokio::spawn(serve_protocol(
                server,
                protocol,
                peer,
                slot(),
                router.clone(),
                LIMITS,
                closing.clone(),
            ));
            let request = Request::get("http://127.0.0.1/ping")
                .body(http_body_util::Empty::<Bytes>::new())
                .unwrap();
            let response = if version == Version::HTTP_2 {
                let (mut sender, connection) = hyper::client::conn::http2::handshake(
                    TokioExecutor::new(),
                    TokioIo::new(client),
                )
                .await
                .unwrap();
                tokio::spawn(connection);
                sender.send_request(request).await.unwrap()
            } else {
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(TokioIo::new(client))
                        .await
                        .unwrap();
                tokio::spawn(connection);
                sender.send_request(request).await.unwrap()
            };
            assert_eq!(response.version(), version, "{protocol:?}");
            assert_eq!(response.status(), StatusCode::OK, "{protocol:?}");
            let body = http_body_util::BodyExt::collect(response.into_body())
                .await
                .unwrap()
                .to_bytes();
            assert_eq!(&body[..], b"pong", "{protocol:?} {version:?}");
            closing.cancel();
            served.await.unwrap();
        }
    }
}
