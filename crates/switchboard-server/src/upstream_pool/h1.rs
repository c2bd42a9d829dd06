//! HTTP/1.1 for the relay's upstream connections, without I/O: encoding a request, parsing a
//! response head, and decoding the body's framing (RFC 9112).
//!
//! Why our own rather than hyper's client: hyper gives every upstream connection an 8 KB header
//! write buffer, a request channel whose first block holds 32 requests (~11 KB), an 8 KB read
//! buffer and a task of its own. At 512 relayed streams that was ~30 KB of the ~55 KB each stream
//! cost (heaptrack). Here a connection is a socket and one read buffer, and the response body
//! reads the socket itself.
//!
//! Strict where ambiguity could desynchronise a reused connection: conflicting `Content-Length`
//! values, a malformed chunk size or a chunk not ended by CRLF are errors, and a response framed
//! both ways is read by its chunks and then closed. Bounded everywhere a peer could make us
//! buffer: the head, chunk extensions and trailers.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use bytes::{Buf, Bytes, BytesMut};

/// The largest response head we buffer (hyper's default limit is of the same order).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
/// Chunk extensions and trailers are skipped, but only this many bytes of them per body.
const MAX_SKIPPED_BYTES: usize = 16 * 1024;

/// Why an upstream response cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("the response head is larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("malformed response head: {0}")]
    BadHead(&'static str),
    #[error("malformed chunked body: {0}")]
    BadChunk(&'static str),
    #[error("the body ended early (the connection closed before its end)")]
    Truncated,
}

/// Appends the request head to `out`: request line, `host`, `headers`, and a `content-length`
/// when there is a body (or the method usually has one). The body, `body_len` bytes, follows.
///
/// `headers` must not contain framing headers (`content-length`, `transfer-encoding`); the relay
/// builds them from an allowlist.
pub fn encode_head(
    method: &Method,
    path_and_query: &str,
    host: &HeaderValue,
    headers: &HeaderMap,
    body_len: usize,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(path_and_query.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if body_len > 0 || !matches!(*method, Method::GET | Method::HEAD) {
        out.extend_from_slice(b"content-length: ");
        out.extend_from_slice(body_len.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// How the body after a head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (a `HEAD` request, 204, 304).
    Empty,
    Length(u64),
    Chunked,
    /// Everything until the server closes the connection.
    UntilClose,
}

/// A parsed final response head.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub framing: Framing,
    /// The connection may carry another request once this body has been read to its end.
    pub keep_alive: bool,
}

/// Parses the response head at the start of `buf`, skipping interim (1xx) responses: the head and
/// the number of bytes it took, or `None` if more bytes are needed.
pub fn parse_head(
    buf: &[u8],
    request_method: &Method,
) -> Result<Option<(ResponseHead, usize)>, ProtocolError> {
    let mut offset = 0;
    loop {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut slots);
        let len = match response.parse(&buf[offset..]) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
                return Err(ProtocolError::HeadTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(ProtocolError::BadHead("more than 100 headers"));
            }
            Err(_) => return Err(ProtocolError::BadHead("not an HTTP/1 response")),
        };
        let code = response.code.unwrap_or(0);
        if code == 101 {
            return Err(ProtocolError::BadHead("an upgrade nobody asked for"));
        }
        offset += len;
        if (100..200).contains(&code) {
            continue;
        }
        let status =
            StatusCode::from_u16(code).map_err(|_| ProtocolError::BadHead("invalid status"))?;
        let headers = header_map(response.headers).map_err(ProtocolError::BadHead)?;
        let http11 = response.version == Some(1);
        let (framing, mut keep_alive) = framing(status, &headers, request_method)?;
        keep_alive &= connection_persists(&headers, http11);
        let head = ResponseHead {
            status,
            headers,
            framing,
            keep_alive,
        };
        return Ok(Some((head, offset)));
    }
}

/// RFC 9112 §6.3, for a response: its framing, and whether the framing allows reuse.
fn framing(
    status: StatusCode,
    headers: &HeaderMap,
    request_method: &Method,
) -> Result<(Framing, bool), ProtocolError> {
    if *request_method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::Empty, true));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        let chunked_last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
        if !chunked_last {
            return Ok((Framing::UntilClose, false));
        }
        // Framed both ways is a smuggling pattern: read by the chunks, then do not trust the
        // connection again.
        let reusable = !headers.contains_key(header::CONTENT_LENGTH);
        return Ok((Framing::Chunked, reusable));
    }
    Ok(
        match content_length(headers).map_err(ProtocolError::BadHead)? {
            Some(0) => (Framing::Empty, true),
            Some(n) => (Framing::Length(n), true),
            None => (Framing::UntilClose, false),
        },
    )
}

/// The headers httparse found, as a `HeaderMap` (names lowercased, values copied).
pub fn header_map(parsed: &[httparse::Header<'_>]) -> Result<HeaderMap, &'static str> {
    let mut headers = HeaderMap::with_capacity(parsed.len());
    for h in parsed {
        let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|_| "invalid header name")?;
        let value = HeaderValue::from_bytes(h.value).map_err(|_| "invalid header value")?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// The `Content-Length`, if any. Repeated values (or a list) must agree: a disagreement is how
/// one side of a connection is made to read a different body than the other.
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, &'static str> {
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        let text = value.to_str().map_err(|_| "invalid content-length")?;
        for part in text.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err("invalid content-length");
            }
            let n: u64 = part.parse().map_err(|_| "invalid content-length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting content-length values");
            }
            length = Some(n);
        }
    }
    Ok(length)
}

/// `Connection: close` ends an HTTP/1.1 connection; HTTP/1.0 persists only with `keep-alive`.
pub fn connection_persists(headers: &HeaderMap, http11: bool) -> bool {
    let mut persists = http11;
    for value in headers.get_all(header::CONNECTION) {
        for token in value.to_str().unwrap_or("").split(',') {
            let token = token.trim();
            if token.eq_ignore_ascii_case("close") {
                return false;
            }
            if token.eq_ignore_ascii_case("keep-alive") {
                persists = true;
            }
        }
    }
    persists
}

/// What the decoder found at the front of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Body bytes, taken off the buffer.
    Data(Bytes),
    /// The body ended; the buffer holds whatever came after it.
    End,
    /// Nothing more can be decoded until more bytes are read.
    NeedMore,
}

/// Decodes a body's framing from a read buffer, handing out its data without copying.
#[derive(Debug)]
pub struct BodyDecoder {
    state: State,
    /// Extension and trailer bytes skipped so far.
    skipped: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Length(u64),
    UntilClose,
    /// Reading a chunk-size line: the size so far and how many hex digits it had.
    Size {
        size: u64,
        digits: u8,
    },
    /// Whitespace after the size; only `;` or CR may follow.
    SizeSpace {
        size: u64,
    },
    Extension {
        size: u64,
    },
    SizeLf {
        size: u64,
    },
    Chunk(u64),
    ChunkCr,
    ChunkLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

impl BodyDecoder {
    pub fn new(framing: Framing) -> BodyDecoder {
        let state = match framing {
            Framing::Empty | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Size { size: 0, digits: 0 },
            Framing::UntilClose => State::UntilClose,
        };
        BodyDecoder { state, skipped: 0 }
    }

    /// The body has been read to its end.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The body bytes still to come, when the framing says so.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Length(n) => Some(n),
            State::Done => Some(0),
            _ => None,
        }
    }

    /// Takes the next body data off the front of `buf`, or consumes framing until there is some.
    pub fn step(&mut self, buf: &mut BytesMut) -> Result<Step, ProtocolError> {
        if !self.skip_framing(buf)? {
            return Ok(if self.is_done() {
                Step::End
            } else {
                Step::NeedMore
            });
        }
        let take = |buf: &mut BytesMut, left: u64| {
            let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
            (buf.split_to(n).freeze(), left - n as u64)
        };
        let data = match self.state {
            State::Length(left) => {
                let (data, left) = take(buf, left);
                self.state = if left == 0 {
                    State::Done
                } else {
                    State::Length(left)
                };
                data
            }
            State::Chunk(left) => {
                let (data, left) = take(buf, left);
                self.state = if left == 0 {
                    State::ChunkCr
                } else {
                    State::Chunk(left)
                };
                data
            }
            State::UntilClose => buf.split().freeze(),
            _ => unreachable!("skip_framing stops only where data can be taken"),
        };
        Ok(Step::Data(data))
    }

    /// Consumes framing bytes (chunk sizes, line ends, trailers) off the front of `buf`. True when
    /// data can be taken now; false when the body is done or more bytes are needed.
    pub fn skip_framing(&mut self, buf: &mut BytesMut) -> Result<bool, ProtocolError> {
        loop {
            match self.state {
                State::Done => return Ok(false),
                State::Length(_) | State::Chunk(_) | State::UntilClose => {
                    return Ok(!buf.is_empty());
                }
                _ => {}
            }
            let Some(&byte) = buf.first() else {
                return Ok(false);
            };
            buf.advance(1);
            self.state = self.framing_byte(byte)?;
        }
    }

    fn framing_byte(&mut self, b: u8) -> Result<State, ProtocolError> {
        let bad = |why| Err(ProtocolError::BadChunk(why));
        Ok(match self.state {
            State::Size { size, digits } => match b {
                b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                    if digits == 16 {
                        return bad("chunk size too large");
                    }
                    let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                    State::Size {
                        size: size << 4 | digit,
                        digits: digits + 1,
                    }
                }
                _ if digits == 0 => return bad("chunk size missing"),
                _ => after_size(size, b)?,
            },
            State::SizeSpace { size } => after_size(size, b)?,
            State::Extension { size } => {
                self.count_skipped()?;
                match b {
                    b'\r' => State::SizeLf { size },
                    b'\n' => return bad("bare LF in a chunk extension"),
                    _ => State::Extension { size },
                }
            }
            State::SizeLf { size } => match b {
                b'\n' if size == 0 => State::TrailerStart,
                b'\n' => State::Chunk(size),
                _ => return bad("chunk size line not ended by CRLF"),
            },
            State::ChunkCr => match b {
                b'\r' => State::ChunkLf,
                _ => return bad("chunk data not followed by CRLF"),
            },
            State::ChunkLf => match b {
                b'\n' => State::Size { size: 0, digits: 0 },
                _ => return bad("chunk data not followed by CRLF"),
            },
            State::TrailerStart => match b {
                b'\r' => State::EndLf,
                _ => {
                    self.count_skipped()?;
                    State::Trailer
                }
            },
            State::Trailer => {
                self.count_skipped()?;
                match b {
                    b'\r' => State::TrailerLf,
                    _ => State::Trailer,
                }
            }
            State::TrailerLf => match b {
                b'\n' => State::TrailerStart,
                _ => return bad("trailer line not ended by CRLF"),
            },
            State::EndLf => match b {
                b'\n' => State::Done,
                _ => return bad("chunked body not ended by CRLF"),
            },
            State::Length(_) | State::Chunk(_) | State::UntilClose | State::Done => {
                unreachable!("not a framing state")
            }
        })
    }

    fn count_skipped(&mut self) -> Result<(), ProtocolError> {
        self.skipped += 1;
        if self.skipped > MAX_SKIPPED_BYTES {
            return Err(ProtocolError::BadChunk("extensions or trailers too large"));
        }
        Ok(())
    }

    /// The connection closed: fine for a body that runs until then, otherwise it was cut short.
    pub fn eof(&mut self) -> Result<(), ProtocolError> {
        match self.state {
            State::UntilClose | State::Done => {
                self.state = State::Done;
                Ok(())
            }
            _ => Err(ProtocolError::Truncated),
        }
    }
}

/// After a chunk size: whitespace, an extension, or the line's end.
fn after_size(size: u64, b: u8) -> Result<State, ProtocolError> {
    Ok(match b {
        b' ' | b'\t' => State::SizeSpace { size },
        b';' => State::Extension { size },
        b'\r' => State::SizeLf { size },
        _ => return Err(ProtocolError::BadChunk("invalid chunk size")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Result<Option<(ResponseHead, usize)>, ProtocolError> {
        parse_head(raw.as_bytes(), &Method::POST)
    }

    /// The whole body of `framing` from `raw`, fed `piece` bytes at a time, and what is left over.
    fn decode(
        framing: Framing,
        raw: &[u8],
        piece: usize,
    ) -> Result<(Vec<u8>, Vec<u8>), ProtocolError> {
        let mut decoder = BodyDecoder::new(framing);
        let mut buf = BytesMut::new();
        let mut body = Vec::new();
        let mut rest = raw;
        loop {
            match decoder.step(&mut buf)? {
                Step::Data(d) => body.extend_from_slice(&d),
                Step::End => return Ok((body, buf.to_vec())),
                Step::NeedMore if rest.is_empty() => {
                    decoder.eof()?;
                    return Ok((body, buf.to_vec()));
                }
                Step::NeedMore => {
                    let n = piece.min(rest.len());
                    buf.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                }
            }
        }
    }

    #[test]
    fn a_request_head_has_its_host_headers_and_length() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer k"));
        let mut out = Vec::new();
        let host = HeaderValue::from_static("openrouter.ai");
        encode_head(
            &Method::POST,
            "/api/v1/chat/completions",
            &host,
            &headers,
            2,
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /api/v1/chat/completions HTTP/1.1\r\nhost: openrouter.ai\r\n\
             authorization: Bearer k\r\ncontent-length: 2\r\n\r\n"
        );
        let mut out = Vec::new();
        encode_head(
            &Method::GET,
            "/v1/models?x=1",
            &host,
            &HeaderMap::new(),
            0,
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "GET /v1/models?x=1 HTTP/1.1\r\nhost: openrouter.ai\r\n\r\n"
        );
        let mut out = Vec::new();
        encode_head(&Method::POST, "/", &host, &HeaderMap::new(), 0, &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains("content-length: 0\r\n")
        );
    }

    #[test]
    fn heads_give_status_headers_and_framing() {
        let raw = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\ndata";
        let (h, len) = head(raw).unwrap().unwrap();
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.headers["content-type"], "text/event-stream");
        assert_eq!(h.framing, Framing::Chunked);
        assert!(h.keep_alive);
        assert_eq!(len, raw.len() - "data".len());

        let (h, _) = head("HTTP/1.1 429 Too Many\r\ncontent-length: 12\r\nretry-after: 3\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(h.framing, Framing::Length(12));
    }

    #[test]
    fn a_head_cut_short_asks_for_more() {
        assert!(head("HTTP/1.1 200 OK\r\ncontent-le").unwrap().is_none());
        assert!(head("").unwrap().is_none());
    }

    #[test]
    fn interim_responses_are_skipped() {
        let raw = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </x>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        let (h, len) = head(raw).unwrap().unwrap();
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(len, raw.len());
        assert!(
            head("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2")
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn what_cannot_be_framed_safely_is_refused_or_not_reused() {
        assert_eq!(
            head("HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n").unwrap_err(),
            ProtocolError::BadHead("conflicting content-length values")
        );
        assert!(head("HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n").is_err());
        assert!(head("HTTP/1.1 200 OK\r\ncontent-length: +5\r\n\r\n").is_err());
        assert!(
            head("HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n").is_err()
        );
        let (h, _) = head("HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, Framing::Length(5));
        // Both framings: read by the chunks, never reused.
        let (h, _) =
            head("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n")
                .unwrap()
                .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, false));
        let (h, _) = head("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        let (h, _) = head("HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
        assert!(head("HTTP/1.1 101 Switching\r\nupgrade: h2c\r\n\r\n").is_err());
        assert!(head("SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }

    #[test]
    fn connection_headers_decide_reuse() {
        let reuse = |raw: &str| head(raw).unwrap().unwrap().0.keep_alive;
        assert!(!reuse(
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(!reuse(
            "HTTP/1.1 200 OK\r\nconnection: x, Close\r\ncontent-length: 0\r\n\r\n"
        ));
        assert!(!reuse("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"));
        assert!(reuse(
            "HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0\r\n\r\n"
        ));
    }

    #[test]
    fn bodies_without_content() {
        let (h, _) = parse_head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n",
            &Method::HEAD,
        )
        .unwrap()
        .unwrap();
        assert_eq!(h.framing, Framing::Empty);
        let (h, _) = head("HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.framing, h.keep_alive), (Framing::Empty, true));
        assert_eq!(decode(Framing::Empty, b"", 1).unwrap(), (vec![], vec![]));
    }

    #[test]
    fn an_oversized_head_is_refused() {
        let mut raw = b"HTTP/1.1 200 OK\r\n".to_vec();
        while raw.len() <= MAX_HEAD_BYTES {
            raw.extend_from_slice(b"x-filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        let err = parse_head(&raw, &Method::GET).unwrap_err();
        assert!(matches!(
            err,
            ProtocolError::HeadTooLarge | ProtocolError::BadHead(_)
        ));
    }

    #[test]
    fn a_length_body_stops_at_its_length() {
        for piece in [1, 3, 100] {
            let (body, rest) = decode(Framing::Length(5), b"helloHTTP/1.1", piece).unwrap();
            assert_eq!(body, b"hello");
            // What follows stays in the buffer (at most one piece of it was read).
            assert!(b"HTTP/1.1".starts_with(&rest));
        }
        assert_eq!(
            decode(Framing::Length(5), b"hel", 2).unwrap_err(),
            ProtocolError::Truncated
        );
    }

    #[test]
    fn chunked_bodies_decode_however_they_are_cut() {
        let raw = b"5\r\nhello\r\n7;name=\"v\"\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        for piece in 1..raw.len() {
            let (body, rest) = decode(Framing::Chunked, raw, piece).unwrap();
            assert_eq!(body, b"hello, world", "piece {piece}");
            assert!(b"NEXT".starts_with(&rest));
        }
        let (body, _) = decode(Framing::Chunked, b"A \r\n0123456789\r\n0\r\n\r\n", 4).unwrap();
        assert_eq!(body, b"0123456789");
    }

    #[test]
    fn broken_chunked_bodies_are_errors() {
        for raw in [
            &b"5\r\nhelloX\r\n0\r\n\r\n"[..],
            b"\r\n",
            b"g\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"0\r\n\r\r",
        ] {
            assert!(
                matches!(
                    decode(Framing::Chunked, raw, 3),
                    Err(ProtocolError::BadChunk(_))
                ),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        assert_eq!(
            decode(Framing::Chunked, b"5\r\nhel", 2).unwrap_err(),
            ProtocolError::Truncated
        );
        let mut long = b"1;".to_vec();
        long.resize(MAX_SKIPPED_BYTES + 10, b'x');
        assert!(decode(Framing::Chunked, &long, 1000).is_err());
    }

    #[test]
    fn a_body_until_close_ends_with_the_connection() {
        let (body, _) = decode(Framing::UntilClose, b"all of it", 4).unwrap();
        assert_eq!(body, b"all of it");
    }

    #[test]
    fn the_remaining_length_is_known_only_for_length_bodies() {
        let mut d = BodyDecoder::new(Framing::Length(10));
        assert_eq!(d.remaining(), Some(10));
        let mut buf = BytesMut::from(&b"0123"[..]);
        assert_eq!(
            d.step(&mut buf).unwrap(),
            Step::Data(Bytes::from_static(b"0123"))
        );
        assert_eq!(d.remaining(), Some(6));
        assert_eq!(BodyDecoder::new(Framing::Chunked).remaining(), None);
        assert!(BodyDecoder::new(Framing::Empty).is_done());
    }
}
