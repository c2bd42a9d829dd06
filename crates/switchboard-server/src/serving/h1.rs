//! HTTP/1.1 for the connections clients open to us, without I/O: parsing a request head, deciding
//! a response's framing and encoding its head (RFC 9112). Body framing itself is the same in both
//! directions and lives with the upstream side ([`crate::upstream_pool::h1::BodyDecoder`]).
//!
//! Strict where two parsers could disagree about where a request ends (request smuggling): a
//! request framed both by `Content-Length` and `Transfer-Encoding`, conflicting lengths, a
//! transfer coding other than a final `chunked`, or `Transfer-Encoding` in HTTP/1.0 is refused
//! with 400 and the connection is closed.

use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, Version, header};

use crate::upstream_pool::h1::{Framing, connection_persists, content_length, header_map};

/// The largest request head we buffer; larger is answered 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_HEADERS: usize = 100;
/// What a client speaking HTTP/2 without negotiation (h2c, "prior knowledge") sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// A parsed request head.
#[derive(Debug)]
pub struct RequestHead {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    /// `Empty`, `Length` or `Chunked`: a request body never runs until the connection closes.
    pub framing: Framing,
    /// The client allows another request on this connection after this one.
    pub keep_alive: bool,
    /// The client waits for `100 Continue` before it sends the body.
    pub expect_continue: bool,
}

/// What the bytes at the start of a read buffer are.
// Returned once per request and taken apart at once: boxing the head would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Parsed {
    /// A complete head, and the number of bytes it took.
    Head(RequestHead, usize),
    /// Not complete yet: read more.
    Partial,
    /// The HTTP/2 connection preface.
    Http2Preface,
}

/// Why a request cannot be served; answered with [`RequestError::status`], then the connection
/// is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request head is larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("the request has more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("transfer codings other than chunked are not supported")]
    UnsupportedCoding,
    #[error("the request head took longer than {0} s to arrive")]
    Timeout(u64),
}

impl RequestError {
    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::HeadTooLarge | RequestError::TooManyHeaders => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            RequestError::Malformed(_) => StatusCode::BAD_REQUEST,
            RequestError::UnsupportedCoding => StatusCode::NOT_IMPLEMENTED,
            RequestError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

/// Parses the request head at the start of `buf` (empty lines before it are skipped, as RFC 9112
/// §2.2 asks).
pub fn parse_request_head(buf: &[u8]) -> Result<Parsed, RequestError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut slots);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD_BYTES => {
            return Err(RequestError::HeadTooLarge);
        }
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return Err(RequestError::TooManyHeaders),
        Err(httparse::Error::Version) if buf.starts_with(H2_PREFACE) => {
            return Ok(Parsed::Http2Preface);
        }
        // The preface's line cut short by the network.
        Err(httparse::Error::Version) if H2_PREFACE.starts_with(buf) => return Ok(Parsed::Partial),
        Err(httparse::Error::Version) => {
            return Err(RequestError::Malformed(
                "not an HTTP/1.0 or HTTP/1.1 request",
            ));
        }
        Err(_) => return Err(RequestError::Malformed("invalid request line or header")),
    };
    if len > MAX_HEAD_BYTES {
        return Err(RequestError::HeadTooLarge);
    }
    let method = Method::from_bytes(request.method.unwrap_or("").as_bytes())
        .map_err(|_| RequestError::Malformed("invalid method"))?;
    let uri: Uri = request
        .path
        .unwrap_or("")
        .parse()
        .map_err(|_| RequestError::Malformed("invalid request target"))?;
    let http11 = request.version == Some(1);
    let headers = header_map(request.headers).map_err(RequestError::Malformed)?;
    let framing = request_framing(&headers, http11)?;
    let expect_continue = http11
        && framing != Framing::Empty
        && headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let head = RequestHead {
        method,
        uri,
        version: if http11 {
            Version::HTTP_11
        } else {
            Version::HTTP_10
        },
        keep_alive: connection_persists(&headers, http11),
        headers,
        framing,
        expect_continue,
    };
    Ok(Parsed::Head(head, len))
}

/// RFC 9112 §6.3, for a request: chunked, a length, or no body. Anything ambiguous is refused.
fn request_framing(headers: &HeaderMap, http11: bool) -> Result<Framing, RequestError> {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        if !http11 {
            return Err(RequestError::Malformed(
                "transfer-encoding in an HTTP/1.0 request",
            ));
        }
        if headers.contains_key(header::CONTENT_LENGTH) {
            return Err(RequestError::Malformed(
                "both content-length and transfer-encoding",
            ));
        }
        let mut codings = Vec::new();
        for value in headers.get_all(header::TRANSFER_ENCODING) {
            let text = value
                .to_str()
                .map_err(|_| RequestError::Malformed("invalid transfer-encoding"))?;
            codings.extend(
                text.split(',')
                    .map(str::trim)
                    .filter(|coding| !coding.is_empty()),
            );
        }
        let chunked = |coding: &&str| coding.eq_ignore_ascii_case("chunked");
        return match codings.as_slice() {
            [only] if chunked(only) => Ok(Framing::Chunked),
            [before @ .., last] if chunked(last) && !before.iter().any(chunked) => {
                Err(RequestError::UnsupportedCoding)
            }
            _ => Err(RequestError::Malformed(
                "transfer-encoding does not end in chunked",
            )),
        };
    }
    Ok(
        match content_length(headers).map_err(RequestError::Malformed)? {
            None | Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
        },
    )
}

/// How a response's body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body is sent (`HEAD`, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// An HTTP/1.0 client and a body of unknown length: the end of the body is the close.
    UntilClose,
}

/// The framing of a response to `method`: the application's `Content-Length` if it set one, else
/// the body's exact size, else chunked (HTTP/1.1) or until close (HTTP/1.0). For `HEAD` the
/// length is announced but nothing is sent, so it returns `(header framing, false)`.
pub fn response_framing(
    method: &Method,
    status: StatusCode,
    headers: &HeaderMap,
    exact_size: Option<u64>,
    http11: bool,
) -> (BodyFraming, bool) {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return (BodyFraming::None, false);
    }
    let declared = content_length(headers).ok().flatten();
    let framing = match declared.or(exact_size) {
        Some(n) => BodyFraming::Length(n),
        None if *method == Method::HEAD => BodyFraming::None,
        None if http11 => BodyFraming::Chunked,
        None => BodyFraming::UntilClose,
    };
    (framing, *method != Method::HEAD)
}

/// Appends the response head to `out`. The application's headers are written as they are, except
/// the ones that frame the message or manage the connection, which are ours to set.
pub fn encode_response_head(
    status: StatusCode,
    headers: &HeaderMap,
    framing: BodyFraming,
    connection: ConnectionHeader,
    date: &[u8],
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if matches!(
            *name,
            header::CONNECTION | header::TRANSFER_ENCODING | header::CONTENT_LENGTH
        ) || name.as_str() == "keep-alive"
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match framing {
        BodyFraming::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            out.extend_from_slice(n.to_string().as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        BodyFraming::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        BodyFraming::None | BodyFraming::UntilClose => {}
    }
    match connection {
        ConnectionHeader::Close => out.extend_from_slice(b"connection: close\r\n"),
        ConnectionHeader::KeepAlive => out.extend_from_slice(b"connection: keep-alive\r\n"),
        ConnectionHeader::Default => {}
    }
    if !headers.contains_key(header::DATE) {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// What the response says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionHeader {
    /// Nothing: HTTP/1.1 persists by default.
    Default,
    /// `connection: close`: this is the last response on the connection.
    Close,
    /// `connection: keep-alive`: an HTTP/1.0 client asked to keep the connection.
    KeepAlive,
}

/// The line that starts a chunk of `len` bytes, written into `buf`.
pub fn chunk_size_line(len: usize, buf: &mut [u8; 18]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut end = 16;
    let mut n = len;
    loop {
        end -= 1;
        buf[end] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    buf[16] = b'\r';
    buf[17] = b'\n';
    &buf[end..]
}

/// The end of a chunked body (no trailers).
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// A complete error response in the app's JSON shape (`{"error":{"code":…,"message":…}}`), for
/// requests that never reach the application.
pub fn error_response(status: StatusCode, message: &str, date: &[u8]) -> Vec<u8> {
    let body = switchboard_core::error::error_json(status.as_u16(), message);
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut out = Vec::with_capacity(160 + body.len());
    encode_response_head(
        status,
        &headers,
        BodyFraming::Length(body.len() as u64),
        ConnectionHeader::Close,
        date,
        &mut out,
    );
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<RequestHead, RequestError> {
        match parse_request_head(text.as_bytes())? {
            Parsed::Head(head, len) => {
                assert_eq!(len, text.len(), "the whole text is the head");
                Ok(head)
            }
            other => panic!("not a complete head: {other:?}"),
        }
    }

    #[test]
    fn a_plain_request_head_is_parsed() {
        let h = head("\r\nPOST /v1/chat/completions?x=1 HTTP/1.1\r\nhost: a\r\ncontent-length: 12\r\nx-a: 1\r\nx-a: 2\r\n\r\n").unwrap();
        assert_eq!(h.method, Method::POST);
        assert_eq!(h.uri.path(), "/v1/chat/completions");
        assert_eq!(h.uri.query(), Some("x=1"));
        assert_eq!(h.version, Version::HTTP_11);
        assert_eq!(h.framing, Framing::Length(12));
        assert_eq!(h.headers.get_all("x-a").iter().count(), 2);
        assert!(h.keep_alive);
        assert!(!h.expect_continue);
    }

    #[test]
    fn partial_heads_ask_for_more_and_oversized_ones_are_refused() {
        let text = "GET / HTTP/1.1\r\nhost: a\r\n";
        for end in 0..text.len() {
            assert!(matches!(
                parse_request_head(&text.as_bytes()[..end]),
                Ok(Parsed::Partial)
            ));
        }
        let mut big = b"GET / HTTP/1.1\r\nx: ".to_vec();
        big.resize(MAX_HEAD_BYTES + 1, b'a');
        assert_eq!(
            parse_request_head(&big).unwrap_err(),
            RequestError::HeadTooLarge
        );
        let many: String = (0..=MAX_HEADERS).map(|i| format!("x-{i}: 1\r\n")).collect();
        let err = head(&format!("GET / HTTP/1.1\r\n{many}\r\n")).unwrap_err();
        assert_eq!(err, RequestError::TooManyHeaders);
        assert_eq!(err.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    #[test]
    fn ambiguous_framing_is_refused() {
        let both = "POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(matches!(head(both), Err(RequestError::Malformed(_))));
        let conflicting = "POST / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n";
        assert!(matches!(head(conflicting), Err(RequestError::Malformed(_))));
        let not_a_number = "POST / HTTP/1.1\r\ncontent-length: +3\r\n\r\n";
        assert!(matches!(
            head(not_a_number),
            Err(RequestError::Malformed(_))
        ));
        let old = "POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(matches!(head(old), Err(RequestError::Malformed(_))));
        let not_last = "POST / HTTP/1.1\r\ntransfer-encoding: chunked, gzip\r\n\r\n";
        assert!(matches!(head(not_last), Err(RequestError::Malformed(_))));
        let twice =
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(matches!(head(twice), Err(RequestError::Malformed(_))));
        let gzip = "POST / HTTP/1.1\r\ntransfer-encoding: gzip, chunked\r\n\r\n";
        assert_eq!(head(gzip).unwrap_err(), RequestError::UnsupportedCoding);
        let same = "POST / HTTP/1.1\r\ncontent-length: 3, 3\r\n\r\n";
        assert_eq!(head(same).unwrap().framing, Framing::Length(3));
        let chunked = "POST / HTTP/1.1\r\ntransfer-encoding: Chunked\r\n\r\n";
        assert_eq!(head(chunked).unwrap().framing, Framing::Chunked);
    }

    #[test]
    fn keep_alive_and_expect_follow_the_version_and_headers() {
        assert!(!head("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(
            head("GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(
            !head("GET / HTTP/1.1\r\nconnection: x, close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        let expect = "POST / HTTP/1.1\r\ncontent-length: 1\r\nexpect: 100-Continue\r\n\r\n";
        assert!(head(expect).unwrap().expect_continue);
        let no_body = "POST / HTTP/1.1\r\nexpect: 100-continue\r\n\r\n";
        assert!(!head(no_body).unwrap().expect_continue);
    }

    #[test]
    fn other_protocols_are_told_apart() {
        assert!(matches!(
            parse_request_head(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
            Ok(Parsed::Http2Preface)
        ));
        for cut in 1..H2_PREFACE.len() {
            assert!(matches!(
                parse_request_head(&H2_PREFACE[..cut]),
                Ok(Parsed::Partial)
            ));
        }
        assert!(matches!(
            parse_request_head(b"GET / HTTP/2.0\r\n\r\n"),
            Err(RequestError::Malformed(_))
        ));
        assert!(matches!(
            parse_request_head(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
            Err(RequestError::Malformed(_))
        ));
    }

    #[test]
    fn responses_are_framed_by_what_is_known_about_their_body() {
        let none = HeaderMap::new();
        let get = Method::GET;
        assert_eq!(
            response_framing(&get, StatusCode::OK, &none, Some(5), true),
            (BodyFraming::Length(5), true)
        );
        assert_eq!(
            response_framing(&get, StatusCode::OK, &none, None, true),
            (BodyFraming::Chunked, true)
        );
        assert_eq!(
            response_framing(&get, StatusCode::OK, &none, None, false),
            (BodyFraming::UntilClose, true)
        );
        assert_eq!(
            response_framing(&get, StatusCode::NO_CONTENT, &none, Some(0), true),
            (BodyFraming::None, false)
        );
        assert_eq!(
            response_framing(&Method::HEAD, StatusCode::OK, &none, Some(7), true),
            (BodyFraming::Length(7), false)
        );
        let mut declared = HeaderMap::new();
        declared.insert(header::CONTENT_LENGTH, HeaderValue::from_static("9"));
        assert_eq!(
            response_framing(&get, StatusCode::OK, &declared, None, true),
            (BodyFraming::Length(9), true)
        );
    }

    #[test]
    fn the_response_head_sets_framing_and_connection_itself() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("gzip"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        let mut out = Vec::new();
        encode_response_head(
            StatusCode::OK,
            &headers,
            BodyFraming::Chunked,
            ConnectionHeader::Close,
            b"Tue, 01 Dec 2026 15:00:00 GMT",
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\
             connection: close\r\ndate: Tue, 01 Dec 2026 15:00:00 GMT\r\n\r\n"
        );
    }

    #[test]
    fn chunk_size_lines_are_hex() {
        let mut buf = [0; 18];
        assert_eq!(chunk_size_line(0, &mut buf), b"0\r\n");
        assert_eq!(chunk_size_line(255, &mut buf), b"ff\r\n");
        assert_eq!(chunk_size_line(4096, &mut buf), b"1000\r\n");
        assert_eq!(
            chunk_size_line(usize::MAX, &mut buf),
            b"ffffffffffffffff\r\n"
        );
    }

    #[test]
    fn error_responses_are_json_and_close() {
        let out = error_response(StatusCode::BAD_REQUEST, "malformed", b"d");
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(text.contains("connection: close\r\n"), "{text}");
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], 400);
        assert_eq!(json["error"]["message"], "malformed");
        assert!(text.contains(&format!("content-length: {}\r\n", body.len())));
    }
}
