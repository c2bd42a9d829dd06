//! One client connection, HTTP/1.1: read a request head, hand the request to the router, write the
//! response, and again while the client keeps the connection.
//!
//! Why our own rather than hyper's server: hyper gives every connection an 8 KB read buffer and an
//! 8 KB header write buffer for as long as it is open, which made up most of what a relayed
//! stream cost once the upstream side was ours (heaptrack). Here a connection holds a read buffer
//! only while bytes are in it: an idle connection or one streaming a reply is its socket and its
//! task. Response chunks are written from the body's own bytes (`writev`), never copied.
//!
//! While a request waits for its response, and while the response streams, the connection
//! watches the socket: a client that hangs up drops the request's future and its body, which
//! cancels the upstream call (the relay's and the chat engine's invariant: a gone client stops
//! the tokens it would have paid for, except where a generation is meant to outlive it).

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Version};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{oneshot, watch};
use tokio::time::{Instant, sleep_until};
use tower::Service;

use super::h1::{self, BodyFraming, ConnectionHeader, Parsed, RequestError, RequestHead};
use crate::upstream_pool::h1::{BodyDecoder, Framing, Step};

/// How long a connection may sit without a request before we close it (nginx's default is 75 s;
/// browsers reopen transparently).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a request head may take once its first byte arrived (slowloris).
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// A head usually fits the first read; the buffer grows for larger ones, up to the head limit.
const FIRST_READ: usize = 4 * 1024;
/// Reads of a request body reserve this much when the buffer is nearly full.
const BODY_READ: usize = 16 * 1024;
const MIN_READ_ROOM: usize = 1024;

/// How a connection ended, when not by an I/O error.
pub(super) enum Ended {
    /// Closed: by the client, by us after `connection: close`, an idle timeout or shutdown.
    Closed,
    /// The client speaks HTTP/2 (prior knowledge): the socket, with the bytes already read, goes
    /// to hyper's HTTP/2 server.
    Http2(TcpStream, Bytes),
}

/// The read side of a connection and the bytes read from it that no one has taken yet.
struct Reader {
    io: OwnedReadHalf,
    buf: BytesMut,
}

impl Reader {
    /// Reads more into `buf`; `Ok(0)` when the client closed. The buffer is allocated only once
    /// the socket is readable, so a connection waiting for its next request holds none.
    async fn read_more(&mut self) -> io::Result<usize> {
        use tokio::io::AsyncReadExt;
        if self.buf.capacity() - self.buf.len() < MIN_READ_ROOM {
            if self.buf.capacity() == 0 {
                self.io.readable().await?;
            }
            self.buf.reserve(FIRST_READ.max(self.buf.len()));
        }
        self.io.read_buf(&mut self.buf).await
    }

    /// Reads and discards what the client still sends, for a moment, before the socket closes:
    /// closing with unread bytes makes the kernel reset the connection, which can destroy the
    /// error response before the client has read it.
    async fn linger(&mut self) {
        const LINGER: Duration = Duration::from_secs(1);
        const AT_MOST: usize = 256 * 1024;
        // On the heap: a buffer held across an await would be part of every connection's task.
        let mut scratch = vec![0u8; 4096];
        let mut discarded = 0;
        let _ = tokio::time::timeout(LINGER, async {
            use tokio::io::AsyncReadExt;
            while discarded < AT_MOST {
                match self.io.read(&mut scratch).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => discarded += n,
                }
            }
        })
        .await;
    }

    /// Lets go of the buffer when it holds nothing: a connection waiting for its response, for
    /// its stream's next delta or for its next request needs none.
    fn release_if_empty(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }

    /// Ready when the client has closed (or the socket failed). Bytes that arrive meanwhile are
    /// a pipelined next request: they are kept, up to the head limit, after which this stops
    /// reading and the socket's own buffer holds the client back.
    fn poll_hang_up(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.buf.len() >= h1::MAX_HEAD_BYTES {
                return Poll::Pending;
            }
            let mut scratch = [0u8; 512];
            let mut read = ReadBuf::new(&mut scratch);
            match ready!(Pin::new(&mut self.io).poll_read(cx, &mut read)) {
                Ok(()) if read.filled().is_empty() => return Poll::Ready(()),
                Ok(()) => self.buf.extend_from_slice(read.filled()),
                Err(_) => return Poll::Ready(()),
            }
        }
    }

    /// Resolves when the client hangs up; never, when there is no reader to watch.
    async fn hang_up(reader: &mut Option<Reader>) {
        match reader {
            Some(reader) => std::future::poll_fn(|cx| reader.poll_hang_up(cx)).await,
            None => std::future::pending().await,
        }
    }
}

/// A request's body, read from the connection as the handler asks for it. It owns the read side
/// while it lives and gives it back when it has been read to its end (or is dropped there), so
/// the connection can take its next request; a body left unread closes the connection.
///
/// A client that sent `Expect: 100-continue` is told to go on only when the handler first reads
/// the body: a handler that refuses the request first (a declared length over its limit, no
/// credential) answers at once, and the client never sends the body.
struct RequestBody {
    reader: Option<Reader>,
    decoder: BodyDecoder,
    back: Option<oneshot::Sender<Reader>>,
    /// Fired on the first read when the client waits for `100 Continue`.
    go_on: Option<oneshot::Sender<()>>,
}

impl RequestBody {
    fn give_back(&mut self) {
        if self.decoder.is_done()
            && let (Some(reader), Some(back)) = (self.reader.take(), self.back.take())
        {
            let _ = back.send(reader);
        }
    }
}

impl Drop for RequestBody {
    fn drop(&mut self) {
        self.give_back();
    }
}

impl hyper::body::Body for RequestBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Some(go_on) = this.go_on.take() {
            let _ = go_on.send(());
        }
        loop {
            let Some(reader) = this.reader.as_mut() else {
                return Poll::Ready(None);
            };
            match this.decoder.step(&mut reader.buf) {
                Ok(Step::Data(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Ok(Step::End) => {
                    this.give_back();
                    return Poll::Ready(None);
                }
                Ok(Step::NeedMore) => {}
                Err(e) => {
                    this.reader = None;
                    return Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::InvalidData, e))));
                }
            }
            if reader.buf.capacity() - reader.buf.len() < MIN_READ_ROOM {
                reader.buf.reserve(BODY_READ);
            }
            let n = ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut reader.io),
                cx,
                &mut reader.buf
            ))?;
            if n == 0 {
                this.reader = None;
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the connection before the end of the request body",
                ))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.decoder.is_done()
    }

    fn size_hint(&self) -> SizeHint {
        match self.decoder.remaining() {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// Serves HTTP/1 requests on `tcp` until the client or we close it.
pub(super) async fn serve(
    tcp: TcpStream,
    peer: SocketAddr,
    router: Router,
    shutdown: watch::Receiver<bool>,
) -> io::Result<Ended> {
    let (read, write) = tcp.into_split();
    let mut conn = Connection {
        reader: Some(Reader {
            io: read,
            buf: BytesMut::new(),
        }),
        write,
        peer,
        router,
        shutdown,
    };
    let mut first = true;
    loop {
        let head = match conn.read_head(first).await? {
            Head::Request(head) => head,
            Head::None => return Ok(Ended::Closed),
            Head::Http2 => {
                let reader = conn
                    .reader
                    .take()
                    .expect("the reader is home between requests");
                let tcp = reader
                    .io
                    .reunite(conn.write)
                    .map_err(|_| io::Error::other("the halves of one socket"))?;
                return Ok(Ended::Http2(tcp, reader.buf.freeze()));
            }
            // Boxed: the error path's state stays out of every connection's task.
            Head::Refused(e) => return Box::pin(conn.refuse(e)).await,
        };
        if !conn.exchange(head).await? {
            let _ = conn.write.shutdown().await;
            return Ok(Ended::Closed);
        }
        first = false;
    }
}

// Returned once per request and taken apart at once: boxing the head would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Head {
    Request(RequestHead),
    /// The connection ended cleanly before a request began.
    None,
    Http2,
    Refused(RequestError),
}

struct Connection {
    /// The read side, when the connection holds it (not lent to a request body).
    reader: Option<Reader>,
    write: OwnedWriteHalf,
    peer: SocketAddr,
    router: Router,
    shutdown: watch::Receiver<bool>,
}

impl Connection {
    /// Answers a request that cannot be served with its error, and closes.
    async fn refuse(mut self, e: RequestError) -> io::Result<Ended> {
        let answer = h1::error_response(e.status(), &e.to_string(), &http_date());
        self.write.write_all(&answer).await?;
        let _ = self.write.shutdown().await;
        if let Some(reader) = self.reader.as_mut() {
            reader.linger().await;
        }
        Ok(Ended::Closed)
    }

    async fn read_head(&mut self, first: bool) -> io::Result<Head> {
        let reader = self
            .reader
            .as_mut()
            .expect("the reader is home between requests");
        let mut deadline = Instant::now() + IDLE_TIMEOUT;
        let mut started = false;
        loop {
            if !reader.buf.is_empty() {
                match h1::parse_request_head(&reader.buf) {
                    Ok(Parsed::Head(head, len)) => {
                        let _ = reader.buf.split_to(len);
                        return Ok(Head::Request(head));
                    }
                    Ok(Parsed::Partial) => {}
                    Ok(Parsed::Http2Preface) if first => return Ok(Head::Http2),
                    Ok(Parsed::Http2Preface) => {
                        return Ok(Head::Refused(RequestError::Malformed(
                            "an HTTP/2 preface after HTTP/1 requests",
                        )));
                    }
                    Err(e) => return Ok(Head::Refused(e)),
                }
                if !started {
                    started = true;
                    deadline = Instant::now() + HEAD_TIMEOUT;
                }
            }
            let idle = reader.buf.is_empty();
            if idle && *self.shutdown.borrow() {
                return Ok(Head::None);
            }
            tokio::select! {
                read = reader.read_more() => {
                    if read? == 0 {
                        return if idle {
                            Ok(Head::None)
                        } else {
                            Err(io::ErrorKind::UnexpectedEof.into())
                        };
                    }
                }
                () = sleep_until(deadline) => {
                    return Ok(if idle {
                        Head::None
                    } else {
                        Head::Refused(RequestError::Timeout(HEAD_TIMEOUT.as_secs()))
                    });
                }
                _ = self.shutdown.changed(), if idle => return Ok(Head::None),
            }
        }
    }

    /// One request and its response. True when the connection may carry another request.
    async fn exchange(&mut self, head: RequestHead) -> io::Result<bool> {
        let RequestHead {
            method,
            uri,
            version,
            headers,
            framing,
            mut keep_alive,
            expect_continue,
        } = head;
        let http11 = version == Version::HTTP_11;
        let mut continue_asked = None;
        let (body, mut lent) = match framing {
            Framing::Empty | Framing::Length(0) => {
                if let Some(reader) = self.reader.as_mut() {
                    reader.release_if_empty();
                }
                (Body::empty(), None)
            }
            framing => {
                let go_on = expect_continue.then(|| {
                    let (go_on, asked) = oneshot::channel();
                    continue_asked = Some(asked);
                    go_on
                });
                let (back, returned) = oneshot::channel();
                let body = RequestBody {
                    reader: self.reader.take(),
                    decoder: BodyDecoder::new(framing),
                    back: Some(back),
                    go_on,
                };
                (Body::new(body), Some(returned))
            }
        };
        let mut request = Request::new(body);
        *request.method_mut() = method.clone();
        *request.uri_mut() = uri;
        *request.version_mut() = version;
        *request.headers_mut() = headers;
        request.extensions_mut().insert(ConnectInfo(self.peer));

        // In a block of its own, so the router's future does not keep its room in this one's
        // state (and so in every streaming connection's task) once it has answered.
        let response = {
            let mut router = self.router.clone();
            let responding = router.call(request);
            tokio::pin!(responding);
            loop {
                tokio::select! {
                    biased;
                    response = &mut responding => break response.unwrap_or_else(|never| match never {}),
                    asked = async { continue_asked.as_mut().expect("guarded").await }, if continue_asked.is_some() => {
                        continue_asked = None;
                        if asked.is_ok() {
                            self.write
                                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                                .await?;
                        }
                    }
                    returned = async { lent.as_mut().expect("guarded").await }, if lent.is_some() => {
                        lent = None;
                        self.reader = returned.ok();
                        keep_alive &= self.reader.is_some();
                        if let Some(reader) = self.reader.as_mut() {
                            reader.release_if_empty();
                        }
                    }
                    () = Reader::hang_up(&mut self.reader), if self.reader.is_some() => {
                        return Ok(false);
                    }
                }
            }
        };
        if let Some(mut returned) = lent.take() {
            // The handler is done with the body or still holds it; only a body read to its end
            // leaves the connection in step with the client.
            self.reader = returned.try_recv().ok();
            keep_alive &= self.reader.is_some();
            if let Some(reader) = self.reader.as_mut() {
                reader.release_if_empty();
            }
        }
        keep_alive &= !*self.shutdown.borrow();

        let (parts, mut body) = response.into_parts();
        let (framing, send_body) = h1::response_framing(
            &method,
            parts.status,
            &parts.headers,
            body.size_hint().exact(),
            http11,
        );
        keep_alive &= framing != BodyFraming::UntilClose;
        let connection = match (keep_alive, http11) {
            (false, _) => ConnectionHeader::Close,
            (true, true) => ConnectionHeader::Default,
            (true, false) => ConnectionHeader::KeepAlive,
        };
        let mut head = Vec::with_capacity(256);
        h1::encode_response_head(
            parts.status,
            &parts.headers,
            framing,
            connection,
            &http_date(),
            &mut head,
        );
        drop(parts);
        if !send_body {
            drop(body);
            self.write.write_all(&head).await?;
            return Ok(keep_alive);
        }
        let mut out = BodyWriter {
            framing,
            head: Some(head),
        };
        loop {
            // The head waits for the first frame when that is ready at once, so a complete
            // answer leaves in one write; a stream's head goes out before its first delta.
            let frame = if out.head.is_some() {
                match std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx)))
                    .await
                {
                    Poll::Ready(frame) => frame,
                    Poll::Pending => {
                        out.flush_head(&mut self.write).await?;
                        continue;
                    }
                }
            } else {
                tokio::select! {
                    frame = body.frame() => frame,
                    () = Reader::hang_up(&mut self.reader), if self.reader.is_some() => {
                        return Ok(false);
                    }
                }
            };
            match frame {
                None => {
                    let complete = out.data(&mut self.write, Bytes::new(), true).await?;
                    return Ok(keep_alive && complete);
                }
                Some(Err(e)) => {
                    // Nothing can tell the client now but an incomplete body: close.
                    tracing::debug!("response body failed: {e}");
                    out.flush_head(&mut self.write).await?;
                    return Ok(false);
                }
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue; // trailers: not sent
                    };
                    let end = body.is_end_stream();
                    if !out.data(&mut self.write, data, end).await? {
                        return Ok(false);
                    }
                    if end {
                        return Ok(keep_alive);
                    }
                }
            }
        }
    }
}

/// Writes a response body in its framing, the head first.
struct BodyWriter {
    /// For `Length`, the bytes still owed.
    framing: BodyFraming,
    head: Option<Vec<u8>>,
}

impl BodyWriter {
    async fn flush_head(&mut self, write: &mut OwnedWriteHalf) -> io::Result<()> {
        if let Some(head) = self.head.take() {
            write.write_all(&head).await?;
        }
        Ok(())
    }

    /// Writes one data frame (and, when `end`, the body's end; an empty frame with `end` just
    /// ends it). False when the body broke its declared length, which leaves the connection
    /// unusable.
    async fn data(
        &mut self,
        write: &mut OwnedWriteHalf,
        mut data: Bytes,
        end: bool,
    ) -> io::Result<bool> {
        if data.is_empty() && !end {
            return Ok(true);
        }
        let head = self.head.take();
        let head = head.as_deref().unwrap_or(&[]);
        let mut size = [0u8; 18];
        let mut fits = true;
        match &mut self.framing {
            BodyFraming::Chunked => {
                let size = if data.is_empty() {
                    &[][..]
                } else {
                    h1::chunk_size_line(data.len(), &mut size)
                };
                let crlf: &[u8] = if data.is_empty() { b"" } else { b"\r\n" };
                let last = if end { h1::LAST_CHUNK } else { b"" };
                write_all_vectored(write, &mut [head, size, &data, crlf, last]).await?;
            }
            BodyFraming::Length(left) => {
                if data.len() as u64 > *left {
                    data.truncate(*left as usize);
                    fits = false;
                }
                *left -= data.len() as u64;
                fits &= !end || *left == 0;
                write_all_vectored(write, &mut [head, &data]).await?;
            }
            BodyFraming::UntilClose => {
                write_all_vectored(write, &mut [head, &data]).await?;
            }
            BodyFraming::None => write_all_vectored(write, &mut [head]).await?,
        }
        Ok(fits)
    }
}

/// Writes every part (at most five), in as few `writev` calls as the socket takes.
async fn write_all_vectored(write: &mut OwnedWriteHalf, parts: &mut [&[u8]]) -> io::Result<()> {
    const MAX_PARTS: usize = 5;
    debug_assert!(parts.len() <= MAX_PARTS);
    let mut first = 0;
    loop {
        while first < parts.len() && parts[first].is_empty() {
            first += 1;
        }
        if first == parts.len() {
            return Ok(());
        }
        let mut slices = [IoSlice::new(&[]); MAX_PARTS];
        let count = (parts.len() - first).min(MAX_PARTS);
        for (slice, part) in slices.iter_mut().zip(&parts[first..first + count]) {
            *slice = IoSlice::new(part);
        }
        let mut n = write.write_vectored(&slices[..count]).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        for part in &mut parts[first..] {
            let taken = n.min(part.len());
            *part = &part[taken..];
            n -= taken;
            if n == 0 {
                break;
            }
        }
    }
}

/// The `date` header's value, formatted once per second per thread.
fn http_date() -> [u8; 29] {
    use std::cell::Cell;
    use std::time::{SystemTime, UNIX_EPOCH};
    thread_local! {
        static CACHED: Cell<(u64, [u8; 29])> = const { Cell::new((u64::MAX, [0; 29])) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|cached| {
        let (at, text) = cached.get();
        if at == second {
            return text;
        }
        let mut text = [0u8; 29];
        let formatted = httpdate::fmt_http_date(now);
        text.copy_from_slice(&formatted.as_bytes()[..29]);
        cached.set((second, text));
        text
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Serves `router` with this module's connection loop (no worker threads) on a fresh port.
    async fn start(router: Router) -> (SocketAddr, watch::Sender<bool>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopping) = watch::channel(false);
        tokio::spawn(async move {
            loop {
                let (tcp, peer) = listener.accept().await.unwrap();
                let tcp = tcp.into_std().unwrap();
                tokio::spawn(super::super::serve_connection(
                    tcp,
                    peer,
                    router.clone(),
                    stopping.clone(),
                ));
            }
        });
        (addr, stop)
    }

    fn echo_router() -> Router {
        Router::new()
            .route("/", get(|| async { "served" }).head(|| async { "served" }))
            .route("/echo", post(|body: Bytes| async move { body }))
            .route("/ignore", post(|| async { "ignored" }))
    }

    /// Sends `request` and reads until the server closes the connection.
    async fn talk(addr: SocketAddr, request: &[u8]) -> String {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
            .await
            .expect("the server closes the connection")
            .unwrap();
        String::from_utf8(answer).unwrap()
    }

    fn responses(text: &str) -> usize {
        text.matches("HTTP/1.1 ").count()
    }

    #[tokio::test]
    async fn pipelined_requests_on_one_connection_are_answered_in_order() {
        let (addr, _stop) = start(echo_router()).await;
        let answer = talk(
            addr,
            b"GET / HTTP/1.1\r\nhost: x\r\n\r\n\
              POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello\
              GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(responses(&answer), 3, "{answer}");
        let served = answer.find("served").unwrap();
        let hello = answer.find("hello").unwrap();
        assert!(served < hello && answer.ends_with("served"), "{answer}");
        assert!(answer.contains("content-length: 5\r\n"), "{answer}");
        assert!(answer.contains("date: "), "{answer}");
    }

    #[tokio::test]
    async fn a_chunked_request_body_arriving_in_pieces_is_read_whole() {
        let (addr, _stop) = start(echo_router()).await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(
            b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5;ext=1\r\nhel",
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        tcp.write_all(b"lo\r\n6\r\n world\r\n0\r\ntrailer: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nhello world"), "{answer}");
    }

    #[tokio::test]
    async fn expect_continue_is_answered_before_the_body_is_sent() {
        let (addr, _stop) = start(echo_router()).await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let mut interim = [0u8; 25];
        tcp.read_exact(&mut interim).await.unwrap();
        assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
        tcp.write_all(b"ok").await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n") && answer.ends_with("ok"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn expect_continue_is_not_answered_when_the_handler_answers_without_the_body() {
        let (addr, _stop) = start(echo_router()).await;
        let answer = talk(
            addr,
            b"POST /ignore HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(!answer.contains("100 Continue"), "{answer}");
        assert!(answer.contains("connection: close\r\n"), "{answer}");
        assert!(answer.ends_with("ignored"), "{answer}");
    }

    #[tokio::test]
    async fn head_announces_the_length_and_sends_no_body() {
        let (addr, _stop) = start(echo_router()).await;
        let answer = talk(
            addr,
            b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        )
        .await;
        assert_eq!(responses(&answer), 2, "{answer}");
        assert_eq!(answer.matches("served").count(), 1, "{answer}");
        assert_eq!(
            answer.matches("content-length: 6\r\n").count(),
            2,
            "{answer}"
        );
    }

    #[tokio::test]
    async fn bad_requests_get_a_json_error_and_the_connection_closes() {
        let (addr, _stop) = start(echo_router()).await;
        let cases: [(&[u8], &str); 4] = [
            (b"GET / HTTP/1.1\r\nbad header\r\n\r\n", "400 Bad Request"),
            (
                b"POST /echo HTTP/1.1\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n",
                "400 Bad Request",
            ),
            (
                b"POST /echo HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
                "501 Not Implemented",
            ),
            (
                b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET / HTTP/9.9\r\n\r\n",
                "400 Bad Request",
            ),
        ];
        for (request, status) in cases {
            let answer = talk(addr, request).await;
            assert!(
                answer.contains(&format!("HTTP/1.1 {status}\r\n")),
                "{answer}"
            );
            assert!(answer.contains("connection: close\r\n"), "{answer}");
            let body = answer.rsplit("\r\n\r\n").next().unwrap();
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert!(json["error"]["message"].is_string(), "{answer}");
        }
        let mut huge = b"GET / HTTP/1.1\r\nx: ".to_vec();
        huge.resize(h1::MAX_HEAD_BYTES + 100, b'a');
        let answer = talk(addr, &huge).await;
        assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");
    }

    #[tokio::test]
    async fn a_body_the_handler_did_not_read_closes_the_connection() {
        let (addr, _stop) = start(echo_router()).await;
        let answer = talk(
            addr,
            b"POST /ignore HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n",
        )
        .await;
        assert_eq!(responses(&answer), 1, "{answer}");
        assert!(answer.contains("connection: close\r\n"), "{answer}");
        assert!(answer.ends_with("ignored"), "{answer}");
    }

    #[tokio::test]
    async fn http_1_0_gets_a_body_until_close() {
        let stream = || {
            let deltas =
                futures_util::stream::iter(["a", "b"].map(|s| Ok::<_, io::Error>(Bytes::from(s))));
            Body::from_stream(deltas)
        };
        let router = Router::new().route("/s", get(move || async move { stream() }));
        let (addr, _stop) = start(router).await;
        let answer = talk(addr, b"GET /s HTTP/1.0\r\n\r\n").await;
        assert!(answer.contains("connection: close\r\n"), "{answer}");
        assert!(!answer.contains("transfer-encoding"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nab"), "{answer}");
        // Asked to, an HTTP/1.0 connection persists while the length is known, and says so.
        let router = echo_router();
        let (plain, _stop) = start(router).await;
        let answer = talk(
            plain,
            b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        )
        .await;
        assert_eq!(responses(&answer), 2, "{answer}");
        let (first, second) = answer.split_at(answer.rfind("HTTP/1.1 ").unwrap());
        assert!(first.contains("connection: keep-alive\r\n"), "{answer}");
        assert!(second.contains("connection: close\r\n"), "{answer}");
        let answer = talk(addr, b"GET /s HTTP/1.1\r\nconnection: close\r\n\r\n").await;
        assert!(
            answer.contains("transfer-encoding: chunked\r\n"),
            "{answer}"
        );
        assert!(
            answer.ends_with("\r\n\r\n1\r\na\r\n1\r\nb\r\n0\r\n\r\n"),
            "{answer}"
        );
    }

    /// A body that yields one chunk and then never ends; it records being dropped.
    struct Endless(Arc<AtomicBool>, bool);

    impl hyper::body::Body for Endless {
        type Data = Bytes;
        type Error = io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
            if std::mem::replace(&mut self.1, true) {
                Poll::Pending
            } else {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"data: 1\n\n")))))
            }
        }
    }

    impl Drop for Endless {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_client_hanging_up_drops_the_streaming_response_and_the_pending_handler() {
        let stream_dropped = Arc::new(AtomicBool::new(false));
        let handler_dropped = Arc::new(AtomicBool::new(false));
        let (s, h) = (stream_dropped.clone(), handler_dropped.clone());
        let router = Router::new()
            .route(
                "/stream",
                get(move || async move { Body::new(Endless(s, false)) }),
            )
            .route(
                "/slow",
                get(move || async move {
                    let _guard = Endless(h, true);
                    std::future::pending::<()>().await;
                }),
            );
        let (addr, _stop) = start(router).await;

        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /stream HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("data: 1") {
            let mut buf = [0u8; 512];
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(n > 0);
            seen.extend_from_slice(&buf[..n]);
        }
        assert!(!stream_dropped.load(Ordering::SeqCst));
        drop(tcp);

        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!handler_dropped.load(Ordering::SeqCst));
        drop(tcp);

        for _ in 0..200 {
            if stream_dropped.load(Ordering::SeqCst) && handler_dropped.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "still running after the client left: stream dropped {}, handler dropped {}",
            stream_dropped.load(Ordering::SeqCst),
            handler_dropped.load(Ordering::SeqCst)
        );
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_lets_a_stream_finish() {
        let router = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                "finished"
            }),
        );
        let (addr, stop) = start(router).await;
        let mut idle = TcpStream::connect(addr).await.unwrap();
        let mut busy = TcpStream::connect(addr).await.unwrap();
        busy.write_all(b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.send(true).unwrap();
        let mut nothing = Vec::new();
        idle.read_to_end(&mut nothing).await.unwrap();
        assert!(nothing.is_empty());
        let mut answer = String::new();
        busy.read_to_string(&mut answer).await.unwrap();
        assert!(answer.contains("connection: close\r\n"), "{answer}");
        assert!(answer.ends_with("finished"), "{answer}");
    }

    #[tokio::test]
    async fn http2_with_prior_knowledge_is_served() {
        let (addr, _stop) = start(echo_router()).await;
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut send, connection) =
            hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                .handshake::<_, http_body_util::Empty<Bytes>>(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(connection);
        let request = Request::get(format!("http://{addr}/"))
            .body(http_body_util::Empty::new())
            .unwrap();
        let response = send.send_request(request).await.unwrap();
        assert_eq!(response.version(), Version::HTTP_2);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"served");
    }
}

#[cfg(test)]
mod timeout_tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// With the clock paused, tokio moves it to the next timer whenever the runtime would wait,
    /// so the 30 s and 60 s limits pass at once (the sockets are real).
    async fn start_paused() -> SocketAddr {
        tokio::time::pause();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopping) = watch::channel(false);
        let router = Router::new().route("/", axum::routing::get(|| async { "served" }));
        tokio::spawn(async move {
            let _stop = stop;
            loop {
                let (tcp, peer) = listener.accept().await.unwrap();
                tokio::spawn(serve(tcp, peer, router.clone(), stopping.clone()));
            }
        });
        addr
    }

    /// Without the server's limit the read would wait forever; this makes that a failure.
    async fn within_an_hour<T>(read: impl Future<Output = io::Result<T>>) {
        tokio::time::timeout(Duration::from_secs(3600), read)
            .await
            .expect("the server closes the connection by itself")
            .unwrap();
    }

    #[tokio::test]
    async fn a_head_that_stops_arriving_is_answered_408() {
        let addr = start_paused().await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        within_an_hour(tcp.read_to_string(&mut answer)).await;
        assert!(
            answer.starts_with("HTTP/1.1 408 Request Timeout\r\n"),
            "{answer}"
        );
        assert!(answer.contains("\"code\":408"), "{answer}");
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_without_an_answer() {
        let addr = start_paused().await;
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 17];
        tcp.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200 OK\r\n");
        let mut rest = String::new();
        within_an_hour(tcp.read_to_string(&mut rest)).await;
        assert!(
            rest.ends_with("served"),
            "only the one answer, then the close: {rest}"
        );
    }
}
