//! The load client: hyper's HTTP/1.1 client used directly, one keep-alive connection per worker,
//! TCP_NODELAY, request bodies built once as `Bytes`. Nothing here allocates per request beyond
//! what hyper itself needs, so the client stays far from being the bottleneck.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Something to send requests to: the mock, Switchboard on one route, or a peer gateway.
#[derive(Clone)]
pub struct Target {
    /// Shown in the report: `direct`, `proxy`, `gateway`, or a peer's name.
    pub name: String,
    pub addr: SocketAddr,
    pub host: HeaderValue,
    /// Path of the chat completions endpoint on this target.
    pub path: String,
    pub auth: Option<HeaderValue>,
    /// More headers for every request (a peer that routes by header, as Portkey does).
    pub extra: Vec<(hyper::header::HeaderName, HeaderValue)>,
}

impl Target {
    /// `base` is `http://host:port[/prefix]`; `path` is appended to it.
    pub fn new(name: &str, base: &str, path: &str, key: Option<&str>) -> anyhow::Result<Target> {
        let rest = base
            .strip_prefix("http://")
            .with_context(|| format!("{base}: only http:// URLs are supported"))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let authority = authority.replace("localhost", "127.0.0.1");
        let addr: SocketAddr = authority
            .parse()
            .with_context(|| format!("{base}: expected http://IP:PORT"))?;
        Ok(Target {
            name: name.to_owned(),
            addr,
            host: HeaderValue::from_str(&authority)?,
            path: format!("{prefix}{path}"),
            auth: key
                .map(|k| HeaderValue::from_str(&format!("Bearer {k}")))
                .transpose()?,
            extra: Vec::new(),
        })
    }
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
}

/// Opens a connection to `addr` with TCP_NODELAY.
pub async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(Conn { sender })
}

impl Conn {
    /// Sends one request and returns the response with its body still unread.
    pub async fn send(
        &mut self,
        target: &Target,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<hyper::Response<hyper::body::Incoming>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, target.host.clone());
        if !body.is_empty() {
            builder = builder.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        if let Some(auth) = &target.auth {
            builder = builder.header(AUTHORIZATION, auth.clone());
        }
        for (name, value) in &target.extra {
            builder = builder.header(name.clone(), value.clone());
        }
        let request = builder.body(Full::new(body))?;
        self.sender.ready().await?;
        Ok(self.sender.send_request(request).await?)
    }

    /// Sends one request and reads the whole answer.
    pub async fn call(
        &mut self,
        target: &Target,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let response = self.send(target, method, path, body).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok((status, bytes))
    }

    /// One non-streamed completion; the time until the last byte of the body.
    pub async fn completion(&mut self, target: &Target, body: &Bytes) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let (status, bytes) = self
            .call(target, Method::POST, &target.path, body.clone())
            .await?;
        let took = started.elapsed();
        if status != StatusCode::OK {
            bail!(
                "{} answered {status}: {}",
                target.name,
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            );
        }
        Ok(took)
    }
}

/// How one streamed answer went.
#[derive(Debug, Default, Clone)]
pub struct StreamReport {
    /// From sending the request to the first `data:` line.
    pub ttfb: Option<Duration>,
    /// `data:` lines seen, `[DONE]` included.
    pub data_lines: u64,
    /// Gaps between consecutive reads that carried `data:` lines, in nanoseconds.
    pub gaps: Vec<u64>,
    /// Whether the body ended normally (as opposed to an error or being cut).
    pub complete: bool,
    /// Everything received, kept only when asked for (validation).
    pub body: Option<Vec<u8>>,
}

/// Counts `data:` lines across chunk boundaries.
#[derive(Default)]
struct LineScanner {
    /// Bytes matched of `data:` at the start of the current line; `None` once it cannot match.
    matched: Option<usize>,
}

impl LineScanner {
    fn new() -> LineScanner {
        LineScanner { matched: Some(0) }
    }

    fn count(&mut self, chunk: &[u8]) -> u64 {
        const PREFIX: &[u8] = b"data:";
        let mut found = 0;
        for &byte in chunk {
            if byte == b'\n' {
                self.matched = Some(0);
                continue;
            }
            if let Some(n) = self.matched {
                if n < PREFIX.len() && byte == PREFIX[n] {
                    self.matched = Some(n + 1);
                    if n + 1 == PREFIX.len() {
                        found += 1;
                        self.matched = None;
                    }
                } else {
                    self.matched = None;
                }
            }
        }
        found
    }
}

/// Reads a streamed answer, timing the first `data:` line and the gaps between reads carrying data.
/// Stops early after `stop_after` data lines (a client that hangs up) when given.
pub async fn read_stream(
    response: hyper::Response<hyper::body::Incoming>,
    started: Instant,
    keep_body: bool,
    stop_after: Option<u64>,
) -> StreamReport {
    let mut report = StreamReport {
        body: keep_body.then(Vec::new),
        ..StreamReport::default()
    };
    if response.status() != StatusCode::OK {
        return report;
    }
    let mut body = response.into_body();
    let mut scanner = LineScanner::new();
    let mut last_data: Option<Instant> = None;
    loop {
        match body.frame().await {
            None => {
                report.complete = true;
                break;
            }
            Some(Err(_)) => break,
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                let now = Instant::now();
                if let Some(kept) = &mut report.body {
                    kept.extend_from_slice(&data);
                }
                let lines = scanner.count(&data);
                if lines == 0 {
                    continue;
                }
                match last_data {
                    None => report.ttfb = Some(now - started),
                    Some(previous) => report.gaps.push((now - previous).as_nanos() as u64),
                }
                last_data = Some(now);
                report.data_lines += lines;
                if stop_after.is_some_and(|n| report.data_lines >= n) {
                    break;
                }
            }
        }
    }
    report
}

/// Reads a server-sent event stream until an event named `kind` arrives (a line `event: kind`),
/// as a browser following a chat does. Errors if the stream answers other than 200 or ends first.
pub async fn wait_for_event(
    response: hyper::Response<hyper::body::Incoming>,
    kind: &str,
) -> anyhow::Result<()> {
    if response.status() != StatusCode::OK {
        bail!("the event stream answered {}", response.status());
    }
    let mut scanner = EventScanner::new(kind);
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data()
            && scanner.saw(&data)
        {
            return Ok(());
        }
    }
    bail!("the event stream ended before an `{kind}` event")
}

/// Finds the line `event: <kind>` across chunk boundaries.
struct EventScanner {
    /// `\nevent: <kind>\n`: the line with the newlines around it, so `event: done-ish` or a
    /// `data:` line that merely contains the text does not match.
    needle: Vec<u8>,
    /// The end of what was read so far, one byte shorter than the needle: enough to match a
    /// needle split across chunks. Starts as a newline, so a first line can match.
    tail: Vec<u8>,
}

impl EventScanner {
    fn new(kind: &str) -> EventScanner {
        EventScanner {
            needle: format!("\nevent: {kind}\n").into_bytes(),
            tail: b"\n".to_vec(),
        }
    }

    fn saw(&mut self, chunk: &[u8]) -> bool {
        self.tail.extend_from_slice(chunk);
        if self
            .tail
            .windows(self.needle.len())
            .any(|w| w == self.needle)
        {
            return true;
        }
        let keep = self.needle.len() - 1;
        let cut = self.tail.len().saturating_sub(keep);
        self.tail.drain(..cut);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_found_across_chunks_and_only_as_a_whole_line() {
        let mut s = EventScanner::new("done");
        assert!(!s.saw(b"id: 1\nevent: delta\ndata: {\"content\":\"event: done\"}\n\n"));
        assert!(!s.saw(b"id: 2\nevent: done-ish\ndata: {}\n\nid: 3\nevent: do"));
        assert!(s.saw(b"ne\ndata: {}\n\n"));
        assert!(EventScanner::new("done").saw(b"event: done\ndata: {}\n\n"));
    }

    #[test]
    fn data_lines_are_counted_across_chunks() {
        let mut s = LineScanner::new();
        assert_eq!(s.count(b": keep-alive\n\nda"), 0);
        assert_eq!(s.count(b"ta: {}\n\ndata: [DONE]\n\n"), 2);
        assert_eq!(s.count(b"x data: no\n"), 0);
    }

    #[test]
    fn targets_parse_base_urls() {
        let t = Target::new("m", "http://127.0.0.1:9/api", "/v1/chat/completions", None).unwrap();
        assert_eq!(t.path, "/api/v1/chat/completions");
        assert_eq!(t.addr.port(), 9);
    }
}
