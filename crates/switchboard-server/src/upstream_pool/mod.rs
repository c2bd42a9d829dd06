//! The relay's upstream connections: HTTP/1.1 keep-alive connections, pooled per serving thread,
//! spoken through our own codec ([`h1`]).
//!
//! A response's body ([`UpstreamBody`]) owns its connection while it is read and reads the socket
//! itself: no connection task, no channel between the two. Once the body has been read to its end
//! (its length reached, its last chunk seen) on a connection that allows reuse, the connection
//! goes back to this thread's pool at that moment. A body dropped before its end (the client went
//! away, a timeout, a broken stream) closes the connection, which is how the upstream learns to
//! stop generating.
//!
//! An idle connection has no reader, so the upstream closing it is noticed when it is next taken
//! (a probing read that must find nothing) or by the sweeper. A connection the probe passed may
//! still be closed by the upstream while the request is on its way: then the request fails. A
//! request that may have been written is never sent twice, since a completion request is not
//! idempotent (it costs money).
//!
//! One pool per thread rather than one per process: a connection's socket is registered with the
//! runtime of the thread that opened it, and a request served on one thread never hands its
//! reads and writes to another (see `serving`).

pub mod h1;

use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, Request, Response, Uri, uri};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use h1::{BodyDecoder, ProtocolError, Step};

/// Idle connections kept per origin and thread; above the number of concurrent streams we expect
/// to relay, so a burst does not reconnect.
const MAX_IDLE_PER_ORIGIN: usize = 1024;
/// An idle connection unused for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How often a thread with idle connections looks for expired or closed ones.
const SWEEP_EVERY: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A fresh read buffer has this much room; a read that fills the room doubles the next one, up
/// to [`MAX_READ`]. Streamed deltas are a few hundred bytes, so a streaming connection stays small.
const FIRST_READ: usize = 4 * 1024;
const MAX_READ: usize = 64 * 1024;
/// Reads go into what is left of the buffer until less than this is left. The data handed out
/// before still points into the buffer (the server holds it until it is written), so reserving anew
/// for every read would allocate a new buffer for nearly every delta.
const MIN_READ_ROOM: usize = 1024;
/// Request bodies up to this size are copied after the head, to go out in one write.
const INLINE_BODY: usize = 16 * 1024;

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the request URL has no scheme or host")]
    NotAbsolute,
    #[error("could not connect: {0}")]
    Connect(io::Error),
    #[error("request failed: {0}")]
    Io(#[from] io::Error),
    #[error("the upstream closed the connection before answering")]
    ClosedBeforeAnswer,
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }
}

/// Sends requests over the calling thread's pooled connections; cheap to clone.
#[derive(Clone)]
pub struct UpstreamPool {
    tls: TlsConnector,
}

impl UpstreamPool {
    pub fn new() -> anyhow::Result<UpstreamPool> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        UpstreamPool::trusting(roots)
    }

    /// A pool whose https connections trust `roots` (Mozilla's, or a test's own CA).
    fn trusting(roots: rustls::RootCertStore) -> anyhow::Result<UpstreamPool> {
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(UpstreamPool {
            tls: TlsConnector::from(Arc::new(config)),
        })
    }

    /// Send `req` (its URI absolute; no framing headers, the body's length is added) on an idle
    /// connection to its origin, or on a new one.
    pub async fn send(&self, req: Request<Bytes>) -> Result<Response<UpstreamBody>, SendError> {
        let (parts, mut body) = req.into_parts();
        let method = parts.method.clone();
        let origin = Origin::of(&parts.uri).ok_or(SendError::NotAbsolute)?;
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let (host, mut idle) = with_entry(&origin, |e| (e.host.clone(), e.take(Instant::now())));
        // Small bodies go out with the head in one write; a large one (images) is not copied.
        let inline = body.len() <= INLINE_BODY;
        let mut request = Vec::with_capacity(256 + if inline { body.len() } else { 0 });
        h1::encode_head(
            &parts.method,
            path,
            &host,
            &parts.headers,
            body.len(),
            &mut request,
        );
        drop(parts);
        if inline {
            request.extend_from_slice(&body);
            // The body may point into the client connection's read buffer: let go of it now
            // rather than while waiting for the answer (see `relay::UpstreamRequest`).
            body = Bytes::new();
        }
        let rest: &[u8] = &body;
        let mut conn = loop {
            let (mut conn, reused) = match idle.take() {
                Some(conn) => (conn, true),
                None => (self.connect(&origin).await?, false),
            };
            match write_all(&mut conn.io, &request, rest).await {
                Ok(()) => break conn,
                // The upstream closed the connection after the probe, and the socket took none
                // of the request: it is safe to send on another one.
                Err(WriteError {
                    sent_any: false, ..
                }) if reused => {
                    idle = with_entry(&origin, |e| e.take(Instant::now()));
                }
                Err(e) => return Err(e.error.into()),
            }
        };
        drop(body);
        let head = conn.read_head(&method).await?;
        let mut response = Response::new(UpstreamBody::new(conn, origin, &head));
        *response.status_mut() = head.status;
        *response.headers_mut() = head.headers;
        Ok(response)
    }

    async fn connect(&self, origin: &Origin) -> Result<Conn, SendError> {
        let host = origin.authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = origin.port();
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, connect_tcp(host, port))
            .await
            .map_err(|_| {
                SendError::Connect(io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))
            })?
            .map_err(SendError::Connect)?;
        let io = if origin.scheme == uri::Scheme::HTTPS {
            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|e| SendError::Connect(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
            let tls = tokio::time::timeout(CONNECT_TIMEOUT, self.tls.connect(name, tcp))
                .await
                .map_err(|_| {
                    SendError::Connect(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "TLS handshake timed out",
                    ))
                })?
                .map_err(SendError::Connect)?;
            Io::Tls(Box::new(tls))
        } else {
            Io::Tcp(tcp)
        };
        Ok(Conn {
            io,
            buf: BytesMut::new(),
            next_read: FIRST_READ,
        })
    }
}

/// Each resolved address in turn, as `getaddrinfo` ordered them.
async fn connect_tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        match connect_one(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address")))
}

async fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
    let tcp = TcpStream::connect(addr).await?;
    // Deltas are small writes: Nagle's algorithm would hold them back.
    tcp.set_nodelay(true)?;
    Ok(tcp)
}

/// A request write that failed, and whether any of it had been taken by the socket.
struct WriteError {
    sent_any: bool,
    error: io::Error,
}

/// Writes `head` then `rest` (a large body, not copied into the head), in as few syscalls as the
/// socket takes.
async fn write_all(io: &mut Io, head: &[u8], rest: &[u8]) -> Result<(), WriteError> {
    let (mut head, mut rest) = (head, rest);
    let mut sent_any = false;
    let fail = |sent_any, error| WriteError { sent_any, error };
    while !head.is_empty() || !rest.is_empty() {
        let written = if rest.is_empty() {
            io.write(head).await
        } else {
            io.write_vectored(&[IoSlice::new(head), IoSlice::new(rest)])
                .await
        };
        let n = written.map_err(|e| fail(sent_any, e))?;
        if n == 0 {
            return Err(fail(sent_any, io::ErrorKind::WriteZero.into()));
        }
        sent_any = true;
        let from_head = n.min(head.len());
        head = &head[from_head..];
        rest = &rest[n - from_head..];
    }
    io.flush().await.map_err(|e| fail(true, e))
}

/// A connection: its socket and the bytes read from it that nobody has taken yet.
struct Conn {
    io: Io,
    buf: BytesMut,
    /// How much the next read reserves.
    next_read: usize,
}

impl Conn {
    /// Reads more into `buf`; `Ok(0)` when the upstream closed.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        // A streaming connection waits for bytes most of the time: while it waits it holds no
        // buffer (the data handed out before keeps its own part alive until it is written).
        // TLS keeps its own buffers and has no readiness to wait on, so it reads as before.
        if let Io::Tcp(tcp) = &self.io
            && self.buf.is_empty()
        {
            if self.buf.capacity() > 0 {
                self.buf = BytesMut::new();
            }
            ready!(tcp.poll_read_ready(cx))?;
        }
        if self.buf.capacity() - self.buf.len() < MIN_READ_ROOM {
            self.buf.reserve(self.next_read);
        }
        let spare = self.buf.spare_capacity_mut();
        let room = spare.len();
        let mut read = ReadBuf::uninit(spare);
        ready!(Pin::new(&mut self.io).poll_read(cx, &mut read))?;
        let n = read.filled().len();
        // SAFETY: `poll_read` initialised the first `n` bytes of the spare capacity.
        unsafe { self.buf.set_len(self.buf.len() + n) };
        if n == room {
            self.next_read = (self.next_read * 2).min(MAX_READ);
        } else if n < self.next_read / 4 {
            self.next_read = FIRST_READ.max(self.next_read / 2);
        }
        Poll::Ready(Ok(n))
    }

    async fn read_head(
        &mut self,
        method: &axum::http::Method,
    ) -> Result<h1::ResponseHead, SendError> {
        loop {
            if let Some((head, len)) = h1::parse_head(&self.buf, method)? {
                let _ = self.buf.split_to(len);
                return Ok(head);
            }
            if poll_fn(|cx| self.poll_fill(cx)).await? == 0 {
                return Err(if self.buf.is_empty() {
                    SendError::ClosedBeforeAnswer
                } else {
                    ProtocolError::Truncated.into()
                });
            }
        }
    }

    /// Whether an idle connection can carry a request: nothing unread, and the socket neither
    /// closed nor holding bytes nobody asked for. Probes with a read that must not be ready.
    fn still_open(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut probe = [0u8; 1];
        let mut read = ReadBuf::new(&mut probe);
        matches!(
            Pin::new(&mut self.io).poll_read(&mut cx, &mut read),
            Poll::Pending
        )
    }
}

enum Io {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Io::Tcp(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why a body could not be read to its end.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("reading the upstream body: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// An upstream response's body, read from its connection as it is polled. The connection returns
/// to the pool the moment the body's end is read.
pub struct UpstreamBody {
    /// `None` once the body ended (the connection went back or was closed).
    conn: Option<Conn>,
    decoder: BodyDecoder,
    origin: Origin,
    keep_alive: bool,
}

impl UpstreamBody {
    fn new(conn: Conn, origin: Origin, head: &h1::ResponseHead) -> UpstreamBody {
        let mut body = UpstreamBody {
            conn: Some(conn),
            decoder: BodyDecoder::new(head.framing),
            origin,
            keep_alive: head.keep_alive,
        };
        body.finish_if_done();
        body
    }

    /// The next data; `None` at the end.
    pub async fn data(&mut self) -> Option<Result<Bytes, BodyError>> {
        poll_fn(|cx| self.poll_data(cx)).await
    }

    pub fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        let polled = self.poll_next(cx);
        if let Poll::Ready(Some(Err(_))) = polled {
            // A connection whose body failed is never reused.
            self.conn = None;
        }
        polled
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BodyError>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Poll::Ready(None);
            };
            match self.decoder.step(&mut conn.buf)? {
                Step::Data(data) => {
                    // The end may already be in the buffer (a last chunk after the data): give
                    // the connection back now, not on a poll that may never come.
                    self.decoder.skip_framing(&mut conn.buf)?;
                    self.finish_if_done();
                    return Poll::Ready(Some(Ok(data)));
                }
                Step::End => {
                    self.finish_if_done();
                    return Poll::Ready(None);
                }
                Step::NeedMore => {}
            }
            if ready!(conn.poll_fill(cx))? == 0 {
                self.decoder.eof()?;
                // Read until close: the connection is done for.
                self.conn = None;
                return Poll::Ready(None);
            }
        }
    }

    /// The body has been read to its end.
    pub fn is_end(&self) -> bool {
        self.decoder.is_done()
    }

    /// The exact length still to come, when the upstream said it.
    pub fn remaining(&self) -> Option<u64> {
        self.decoder.remaining()
    }

    /// At the end of the body: the connection goes back if it may carry another request and
    /// nothing beyond the body was sent on it.
    fn finish_if_done(&mut self) {
        if !self.decoder.is_done() {
            return;
        }
        if let Some(mut conn) = self.conn.take()
            && self.keep_alive
            && conn.buf.is_empty()
        {
            // An idle connection keeps no buffer, nor the size a large answer grew it to.
            conn.buf = BytesMut::new();
            conn.next_read = FIRST_READ;
            checkin(self.origin.clone(), conn);
        }
    }
}

impl std::fmt::Debug for UpstreamBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamBody")
            .field("origin", &self.origin.authority)
            .field("decoder", &self.decoder)
            .field("keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
}

/// Where a connection goes: scheme and authority.
#[derive(Clone)]
struct Origin {
    scheme: uri::Scheme,
    authority: uri::Authority,
}

impl PartialEq for Origin {
    fn eq(&self, other: &Origin) -> bool {
        // The same configured base URL gives byte-equal authorities: try that before
        // `Authority`'s own case-insensitive comparison.
        (self.authority.as_str() == other.authority.as_str() || self.authority == other.authority)
            && self.scheme == other.scheme
    }
}

impl Origin {
    fn of(uri: &Uri) -> Option<Origin> {
        let scheme = uri.scheme()?.clone();
        if scheme != uri::Scheme::HTTP && scheme != uri::Scheme::HTTPS {
            return None;
        }
        Some(Origin {
            scheme,
            authority: uri.authority()?.clone(),
        })
    }

    fn default_port(&self) -> u16 {
        if self.scheme == uri::Scheme::HTTPS {
            443
        } else {
            80
        }
    }

    fn port(&self) -> u16 {
        self.authority
            .port_u16()
            .unwrap_or_else(|| self.default_port())
    }

    /// The `Host` header: the host, and the port unless it is the scheme's default.
    fn host_header(&self) -> HeaderValue {
        let host = self.authority.host();
        let value = match self.authority.port_u16() {
            Some(port) if port != self.default_port() => format!("{host}:{port}"),
            _ => host.to_string(),
        };
        // An `Authority` holds only bytes valid in a header value.
        HeaderValue::from_str(&value).expect("an authority is a valid header value")
    }
}

/// One thread's idle connections, by origin. A gateway talks to a handful of origins, so a `Vec`
/// scanned with `==` beats any map.
#[derive(Default)]
struct ThreadPool {
    origins: Vec<OriginIdle>,
    sweeping: bool,
}

struct OriginIdle {
    origin: Origin,
    host: HeaderValue,
    /// Oldest first; reuse takes the newest, the least likely to have been closed upstream.
    idle: Vec<(Conn, Instant)>,
}

impl ThreadPool {
    fn entry(&mut self, origin: &Origin) -> &mut OriginIdle {
        let i = match self.origins.iter().position(|o| &o.origin == origin) {
            Some(i) => i,
            None => {
                self.origins.push(OriginIdle {
                    host: origin.host_header(),
                    origin: origin.clone(),
                    idle: Vec::new(),
                });
                self.origins.len() - 1
            }
        };
        &mut self.origins[i]
    }

    /// Closes what expired or was closed upstream; says whether anything is left to watch.
    fn drop_unusable(&mut self, now: Instant) -> bool {
        for o in &mut self.origins {
            o.idle
                .retain_mut(|(conn, since)| reusable(conn, *since, now));
        }
        self.origins.iter().any(|o| !o.idle.is_empty())
    }
}

impl OriginIdle {
    /// The newest idle connection still worth trying; older unusable ones on the way are closed.
    fn take(&mut self, now: Instant) -> Option<Conn> {
        while let Some((mut conn, since)) = self.idle.pop() {
            if reusable(&mut conn, since, now) {
                return Some(conn);
            }
        }
        None
    }
}

/// Idle for less than [`IDLE_TIMEOUT`], and still open as far as a probe can tell.
fn reusable(conn: &mut Conn, idle_since: Instant, now: Instant) -> bool {
    now - idle_since < IDLE_TIMEOUT && conn.still_open()
}

thread_local! {
    static POOL: RefCell<ThreadPool> = RefCell::default();
}

/// `f` on this thread's entry for `origin` (made on first use).
fn with_entry<T>(origin: &Origin, f: impl FnOnce(&mut OriginIdle) -> T) -> T {
    POOL.with(|pool| f(pool.borrow_mut().entry(origin)))
}

fn checkin(origin: Origin, conn: Conn) {
    // During thread teardown the pool is gone; the connection just closes.
    let _ = POOL.try_with(|pool| {
        let Ok(mut pool) = pool.try_borrow_mut() else {
            return;
        };
        let entry = pool.entry(&origin);
        if entry.idle.len() >= MAX_IDLE_PER_ORIGIN {
            entry.idle.remove(0);
        }
        entry.idle.push((conn, Instant::now()));
        if !pool.sweeping && tokio::runtime::Handle::try_current().is_ok() {
            pool.sweeping = true;
            tokio::spawn(sweep());
        }
    });
}

/// Closes this thread's expired and upstream-closed idle connections every [`SWEEP_EVERY`] until
/// none are left (the next check-in starts it again).
async fn sweep() {
    /// Clears the flag however the sweep ends, also when its runtime shuts down under it.
    struct Sweeping;
    impl Drop for Sweeping {
        fn drop(&mut self) {
            let _ = POOL.try_with(|pool| {
                if let Ok(mut pool) = pool.try_borrow_mut() {
                    pool.sweeping = false;
                }
            });
        }
    }
    let _sweeping = Sweeping;
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        if !POOL.with(|pool| pool.borrow_mut().drop_unusable(Instant::now())) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A raw HTTP/1 upstream that counts connections and answers each request on a connection
    /// with `answer(n)`, `n` counting that connection's requests from 0; it closes the
    /// connection as soon as the next answer would be `None`.
    async fn upstream(answer: fn(usize) -> Option<&'static str>) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    for n in 0.. {
                        let mut got = Vec::new();
                        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                            match sock.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => got.extend_from_slice(&buf[..k]),
                            }
                        }
                        match answer(n) {
                            Some(a) => sock.write_all(a.as_bytes()).await.unwrap(),
                            None => return,
                        }
                        // Nothing more to say on this connection: close it at once, as an
                        // upstream whose keep-alive timeout ran out would.
                        if answer(n + 1).is_none() {
                            return;
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    fn pool() -> UpstreamPool {
        UpstreamPool::new().unwrap()
    }

    fn get(url: &str) -> Request<Bytes> {
        Request::get(format!("{url}/v1/x"))
            .body(Bytes::new())
            .unwrap()
    }

    async fn body(resp: Response<UpstreamBody>) -> Bytes {
        let mut body = resp.into_body();
        let mut all = Vec::new();
        while let Some(data) = body.data().await {
            all.extend_from_slice(&data.unwrap());
        }
        Bytes::from(all)
    }

    async fn send(url: &str) -> Response<UpstreamBody> {
        pool().send(get(url)).await.unwrap()
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_gives_its_connection_back() {
        let (url, accepted) = upstream(|_| Some(OK)).await;
        for _ in 0..3 {
            assert_eq!(body(send(&url).await).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_body_dropped_before_its_end_closes_its_connection() {
        let (url, accepted) =
            upstream(|_| Some("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n"))
                .await;
        for _ in 0..2 {
            let mut resp = send(&url).await.into_body();
            assert_eq!(resp.data().await.unwrap().unwrap(), "ok");
            drop(resp);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_last_chunk_read_with_the_data_ends_the_body_at_once() {
        let (url, accepted) = upstream(|_| {
            Some("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
        })
        .await;
        for _ in 0..2 {
            let mut resp = send(&url).await.into_body();
            assert_eq!(resp.data().await.unwrap().unwrap(), "ok");
            // Never polled to `None`, as the server does not poll a body that says it has ended.
            assert!(resp.is_end());
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn connections_the_upstream_will_not_reuse_are_closed() {
        let (url, accepted) = upstream(|_| {
            Some("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok")
        })
        .await;
        for _ in 0..2 {
            assert_eq!(body(send(&url).await).await, "ok");
        }
        // A body that runs until the connection closes, and bytes after the body.
        let (url2, accepted2) =
            upstream(|n| (n == 0).then_some("HTTP/1.1 200 OK\r\n\r\nall of it")).await;
        assert_eq!(body(send(&url2).await).await, "all of it");
        let (url3, accepted3) =
            upstream(|_| Some("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA")).await;
        for _ in 0..2 {
            assert_eq!(body(send(&url3).await).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
        assert_eq!(accepted2.load(Ordering::SeqCst), 1);
        assert_eq!(accepted3.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_replaced_without_an_error() {
        // Each connection answers once, then the upstream closes it.
        let (url, accepted) = upstream(|n| (n == 0).then_some(OK)).await;
        for _ in 0..3 {
            assert_eq!(body(send(&url).await).await, "ok");
            // Let the close arrive, as it would between two real requests.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    /// A 300 KB answer, larger than any read buffer, as one length body.
    static LARGE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let body: String = (0..300_000)
            .map(|i| (b'a' + (i % 26) as u8) as char)
            .collect();
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
    });

    #[tokio::test]
    async fn a_body_larger_than_the_buffer_arrives_whole_and_in_order() {
        let (url, accepted) = upstream(|_| Some(LARGE.as_str())).await;
        let expected = LARGE.split("\r\n\r\n").nth(1).unwrap();
        for _ in 0..2 {
            let resp = send(&url).await;
            assert_eq!(resp.body().remaining(), Some(300_000));
            assert_eq!(body(resp).await, expected.as_bytes());
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // The buffer grew for the answer; the idle connection keeps no buffer at all.
        let origin = Origin::of(&url.parse().unwrap()).unwrap();
        let kept = with_entry(&origin, |e| e.idle[0].0.buf.capacity());
        assert_eq!(kept, 0);
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error() {
        let (url, _) =
            upstream(|n| (n == 0).then_some("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"))
                .await;
        let mut resp = send(&url).await.into_body();
        assert_eq!(resp.data().await.unwrap().unwrap(), "short");
        assert!(matches!(
            resp.data().await,
            Some(Err(BodyError::Protocol(ProtocolError::Truncated)))
        ));
        let (url, _) = upstream(|n| (n == 0).then_some("HTTP/1.1 200 OK\r\ncontent-le")).await;
        assert!(matches!(
            pool().send(get(&url)).await,
            Err(SendError::Protocol(ProtocolError::Truncated))
        ));
        let (url, _) = upstream(|_| None).await;
        assert!(matches!(
            pool().send(get(&url)).await,
            Err(SendError::ClosedBeforeAnswer)
        ));
    }

    #[tokio::test]
    async fn the_request_carries_host_headers_and_body() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 65536];
            while !got.ends_with(b"}") {
                let n = sock.read(&mut buf).await.unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            sock.write_all(OK.as_bytes()).await.unwrap();
            String::from_utf8(got).unwrap()
        });
        // Larger than what is copied after the head: written from the body itself.
        let big = format!("{{\"x\":\"{}\"}}", "a".repeat(INLINE_BODY + 10));
        let req = Request::post(format!("{url}/api/v1/chat/completions?q=1"))
            .header("authorization", "Bearer k")
            .body(Bytes::from(big.clone()))
            .unwrap();
        assert_eq!(body(pool().send(req).await.unwrap()).await, "ok");
        let host = url.trim_start_matches("http://");
        assert_eq!(
            server.await.unwrap(),
            format!(
                "POST /api/v1/chat/completions?q=1 HTTP/1.1\r\nhost: {host}\r\n\
                 authorization: Bearer k\r\ncontent-length: {}\r\n\r\n{big}",
                big.len()
            )
        );
    }

    #[tokio::test]
    async fn https_upstreams_are_verified_and_their_connections_reused() {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = certified.cert.der().clone();
        let key = rustls::pki_types::PrivateKeyDer::try_from(certified.signing_key.serialize_der())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut buf = vec![0u8; 4096];
                    loop {
                        let mut got = Vec::new();
                        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                            match tls.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => got.extend_from_slice(&buf[..k]),
                            }
                        }
                        let answer = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                                      6\r\nsecure\r\n0\r\n\r\n";
                        tls.write_all(answer.as_bytes()).await.unwrap();
                    }
                });
            }
        });
        let url = format!("https://localhost:{port}");

        // Mozilla's roots do not know this certificate: no request goes out.
        let err = pool().send(get(&url)).await.unwrap_err();
        assert!(err.is_connect(), "{err}");

        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let trusting = UpstreamPool::trusting(roots).unwrap();
        for _ in 0..3 {
            let resp = trusting.send(get(&url)).await.unwrap();
            assert_eq!(body(resp).await, "secure");
            // Let the server's post-handshake messages (session tickets) arrive: the probe of
            // the idle connection must read them as nothing, not as a closed connection.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "one refused, then one reused"
        );
    }

    #[tokio::test]
    async fn the_host_header_names_the_port_unless_it_is_the_default() {
        let origin = |u: &str| Origin::of(&u.parse().unwrap()).unwrap().host_header();
        assert_eq!(origin("http://127.0.0.1:8080/x"), "127.0.0.1:8080");
        assert_eq!(origin("https://openrouter.ai/api"), "openrouter.ai");
        assert_eq!(origin("https://openrouter.ai:443/api"), "openrouter.ai");
        assert_eq!(origin("http://example.com:443/"), "example.com:443");
    }

    #[tokio::test]
    async fn a_relative_or_non_http_url_is_refused() {
        for url in ["/v1/x", "ftp://example.com/x"] {
            let req = Request::get(url).body(Bytes::new()).unwrap();
            assert!(matches!(
                pool().send(req).await,
                Err(SendError::NotAbsolute)
            ));
        }
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let err = pool().send(get(&url)).await.unwrap_err();
        assert!(err.is_connect(), "{err}");
    }

    #[tokio::test]
    async fn idle_connections_expire() {
        let (url, accepted) = upstream(|_| Some(OK)).await;
        body(send(&url).await).await;
        let origin = Origin::of(&url.parse().unwrap()).unwrap();
        let idle = || with_entry(&origin, |e| e.idle.len());
        assert_eq!(idle(), 1);
        assert!(
            POOL.with(|p| p.borrow().sweeping),
            "a check-in starts the sweeper"
        );
        let now = Instant::now();
        assert!(
            POOL.with(|p| p.borrow_mut().drop_unusable(now)),
            "not expired yet"
        );
        assert!(!POOL.with(|p| p.borrow_mut().drop_unusable(now + IDLE_TIMEOUT)));
        assert_eq!(idle(), 0);
        body(send(&url).await).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn the_sweeper_closes_what_the_upstream_closed() {
        let (url, _) = upstream(|n| (n == 0).then_some(OK)).await;
        body(send(&url).await).await;
        let origin = Origin::of(&url.parse().unwrap()).unwrap();
        assert_eq!(with_entry(&origin, |e| e.idle.len()), 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!POOL.with(|p| p.borrow_mut().drop_unusable(Instant::now())));
    }
}
