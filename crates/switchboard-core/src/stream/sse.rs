//! The SSE codec: bytes in arbitrary network chunks → frames, and the small encoder the server uses
//! to re-emit events.
//!
//! Follows the WHATWG event-stream parsing rules: lines end in CRLF, LF or CR; a line starting with
//! `:` is a comment; `field: value` with one leading space stripped from the value; several `data`
//! lines join with `\n`; a blank line dispatches the event. Bytes are buffered per line and decoded as
//! UTF-8 only once the line is complete, so a character split across chunks survives. Each byte is
//! looked at once (the buffer is never re-scanned), and a line or event larger than the limit is
//! dropped with an error instead of growing memory without end.

use thiserror::Error;

/// Default limit on one line and on one event's accumulated data: 16 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One item out of [`SseDecoder`]: a comment line or a dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseFrame {
    /// A `:` comment line without the colon and the one optional space, e.g. `OPENROUTER PROCESSING`
    /// (keep-alive).
    Comment(String),
    /// An event dispatched by a blank line (or by [`SseDecoder::finish`]).
    Event(SseEvent),
}

/// A dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if the event had one.
    pub event: Option<String>,
    /// All `data:` lines of the event joined with `\n`.
    pub data: String,
    /// The `id:` field, if the event had one.
    pub id: Option<String>,
}

/// What can go wrong while framing SSE. The decoder drops the offending line or event and goes on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SseError {
    /// A line, or the data of one event, grew past the configured limit; it was dropped.
    #[error("SSE line or event longer than the limit of {limit} bytes; dropped")]
    TooLong {
        /// The limit in bytes.
        limit: usize,
    },
}

/// Incremental SSE decoder: feed it byte chunks as they arrive, get frames back.
#[derive(Debug)]
pub struct SseDecoder {
    limit: usize,
    /// Bytes of the current, not yet terminated line.
    line: Vec<u8>,
    /// The previous chunk ended in CR: an LF at the start of the next one belongs to it.
    after_cr: bool,
    /// The current line went over the limit: skip bytes until its end.
    skipping_line: bool,
    /// The current event went over the limit: ignore its fields until the blank line.
    skipping_event: bool,
    first_line: bool,
    data: String,
    has_data: bool,
    event: Option<String>,
    id: Option<String>,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder with the default 16 MiB limit.
    pub fn new() -> Self {
        Self::with_limit(DEFAULT_MAX_LINE_BYTES)
    }

    /// A decoder that refuses lines, and events' accumulated data, longer than `limit` bytes.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            limit,
            line: Vec::new(),
            after_cr: false,
            skipping_line: false,
            skipping_event: false,
            first_line: true,
            data: String::new(),
            has_data: false,
            event: None,
            id: None,
        }
    }

    /// Feeds the next chunk of bytes; returns the frames it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Result<SseFrame, SseError>> {
        let mut out = Vec::new();
        self.feed_with(chunk, &mut |frame| out.push(frame));
        out
    }

    /// Ends the stream: a last line without a terminator, and a last event without a blank line,
    /// are processed as if they had been terminated.
    pub fn finish(&mut self) -> Vec<Result<SseFrame, SseError>> {
        let mut out = Vec::new();
        self.finish_with(&mut |frame| out.push(frame));
        out
    }

    /// [`SseDecoder::feed`] without the intermediate `Vec`: frames go to `sink` as they complete.
    pub(crate) fn feed_with(
        &mut self,
        mut chunk: &[u8],
        sink: &mut dyn FnMut(Result<SseFrame, SseError>),
    ) {
        if chunk.is_empty() {
            return;
        }
        if self.after_cr {
            self.after_cr = false;
            if let Some(rest) = chunk.strip_prefix(b"\n") {
                chunk = rest;
            }
        }
        while !chunk.is_empty() {
            let Some(end) = chunk.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.buffer(chunk, sink);
                return;
            };
            let (piece, rest) = (&chunk[..end], &chunk[end..]);
            let terminator_len = if rest.starts_with(b"\r\n") { 2 } else { 1 };
            if rest == b"\r" {
                // Maybe the first half of a CRLF split across chunks.
                self.after_cr = true;
            }
            chunk = &rest[terminator_len..];
            if self.skipping_line {
                self.skipping_line = false;
                self.line.clear();
                continue;
            }
            if self.line.is_empty() {
                if piece.len() > self.limit {
                    sink(Err(SseError::TooLong { limit: self.limit }));
                    continue;
                }
                self.process_line(piece, sink);
            } else {
                self.buffer(piece, sink);
                if self.skipping_line {
                    self.skipping_line = false;
                    self.line.clear();
                    continue;
                }
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, sink);
                self.line = line;
                self.line.clear();
            }
        }
    }

    pub(crate) fn finish_with(&mut self, sink: &mut dyn FnMut(Result<SseFrame, SseError>)) {
        self.after_cr = false;
        if self.skipping_line {
            self.skipping_line = false;
        } else if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, sink);
        }
        self.line.clear();
        self.dispatch(sink);
    }

    /// Appends part of an unterminated line, enforcing the limit.
    fn buffer(&mut self, bytes: &[u8], sink: &mut dyn FnMut(Result<SseFrame, SseError>)) {
        if self.skipping_line {
            return;
        }
        if self.line.len() + bytes.len() > self.limit {
            sink(Err(SseError::TooLong { limit: self.limit }));
            self.skipping_line = true;
            self.line = Vec::new();
            return;
        }
        self.line.extend_from_slice(bytes);
    }

    fn process_line(&mut self, mut line: &[u8], sink: &mut dyn FnMut(Result<SseFrame, SseError>)) {
        if self.first_line {
            self.first_line = false;
            if let Some(rest) = line.strip_prefix(BOM) {
                line = rest;
            }
        }
        if line.is_empty() {
            self.dispatch(sink);
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"" => sink(Ok(SseFrame::Comment(value.into_owned()))),
            _ if self.skipping_event => {}
            b"data" => {
                if self.data.len() + value.len() + 1 > self.limit {
                    sink(Err(SseError::TooLong { limit: self.limit }));
                    self.skipping_event = true;
                    self.data = String::new();
                    self.has_data = false;
                    return;
                }
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.event = Some(value.into_owned()),
            b"id" if !value.contains('\0') => self.id = Some(value.into_owned()),
            // `retry` and unknown fields are ignored, as the spec says.
            _ => {}
        }
    }

    fn dispatch(&mut self, sink: &mut dyn FnMut(Result<SseFrame, SseError>)) {
        self.skipping_event = false;
        let event = self.event.take();
        let id = self.id.take();
        if !std::mem::take(&mut self.has_data) {
            return;
        }
        let data = std::mem::take(&mut self.data);
        sink(Ok(SseFrame::Event(SseEvent { event, data, id })));
    }
}

/// Encodes `payload` as one SSE event: `data: …\n` per line of the payload, then a blank line.
/// Splitting on CR and LF keeps a payload with line breaks from ending the event early.
pub fn encode_data(payload: &str) -> String {
    encode_event(None, None, payload)
}

/// Encodes one SSE event with an optional `id:` and `event:` line, then its data as
/// [`encode_data`] does. The one SSE encoder of the project: every event stream goes through it.
/// Line breaks in `id` or `event` would end their field early, so they are dropped.
pub fn encode_event(id: Option<&str>, event: Option<&str>, payload: &str) -> String {
    let mut out = String::with_capacity(payload.len() + 32);
    let field = |out: &mut String, name: &str, value: &str| {
        out.push_str(name);
        out.push_str(": ");
        out.extend(value.chars().filter(|c| !matches!(c, '\r' | '\n')));
        out.push('\n');
    };
    if let Some(id) = id {
        field(&mut out, "id", id);
    }
    if let Some(event) = event {
        field(&mut out, "event", event);
    }
    let mut rest = payload;
    loop {
        let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
        out.push_str("data: ");
        out.push_str(&rest[..end]);
        out.push('\n');
        if end == rest.len() {
            break;
        }
        let terminator = if rest[end..].starts_with("\r\n") {
            2
        } else {
            1
        };
        rest = &rest[end + terminator..];
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_events_decode_to_the_same_fields() {
        let text = encode_event(Some("7"), Some("delta"), "{\"a\":1}\nsecond");
        assert_eq!(
            text,
            "id: 7\nevent: delta\ndata: {\"a\":1}\ndata: second\n\n"
        );
        let frames = SseDecoder::new().feed(text.as_bytes());
        assert_eq!(
            frames,
            vec![Ok(SseFrame::Event(SseEvent {
                event: Some("delta".into()),
                data: "{\"a\":1}\nsecond".into(),
                id: Some("7".into()),
            }))]
        );
        assert_eq!(encode_event(Some("1\n2"), None, "x"), "id: 12\ndata: x\n\n");
    }

    fn event(data: &str) -> Result<SseFrame, SseError> {
        Ok(SseFrame::Event(SseEvent {
            data: data.to_owned(),
            ..SseEvent::default()
        }))
    }

    fn comment(text: &str) -> Result<SseFrame, SseError> {
        Ok(SseFrame::Comment(text.to_owned()))
    }

    /// Feeds `chunks` one by one, then finishes.
    fn decode(decoder: &mut SseDecoder, chunks: &[&[u8]]) -> Vec<Result<SseFrame, SseError>> {
        let mut frames: Vec<_> = chunks.iter().flat_map(|c| decoder.feed(c)).collect();
        frames.extend(decoder.finish());
        frames
    }

    #[test]
    fn lf_crlf_and_cr_line_endings_give_the_same_frames() {
        let expected = vec![
            comment("OPENROUTER PROCESSING"),
            event("{}"),
            event("[DONE]"),
        ];
        for newline in ["\n", "\r\n", "\r"] {
            let body = [
                ": OPENROUTER PROCESSING",
                "",
                "data: {}",
                "",
                "data: [DONE]",
                "",
                "",
            ]
            .join(newline);
            let frames = decode(&mut SseDecoder::new(), &[body.as_bytes()]);
            assert_eq!(frames, expected, "newline {newline:?}");
        }
    }

    #[test]
    fn crlf_split_between_chunks_is_one_line_end() {
        let frames = decode(
            &mut SseDecoder::new(),
            &[b"data: a\r", b"\ndata: b\r", b"\n\r\n"],
        );
        assert_eq!(frames, vec![event("a\nb")]);
    }

    #[test]
    fn empty_chunks_do_not_lose_a_pending_cr() {
        let frames = decode(&mut SseDecoder::new(), &[b"data: a\r", b"", b"\n\n"]);
        assert_eq!(frames, vec![event("a")]);
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        let frames = decode(
            &mut SseDecoder::new(),
            &[b"data: one\ndata:two\ndata: \n\n"],
        );
        assert_eq!(frames, vec![event("one\ntwo\n")]);
    }

    #[test]
    fn only_one_leading_space_is_stripped() {
        let frames = decode(&mut SseDecoder::new(), &[b"data:  two spaces\n\n:  c\n"]);
        assert_eq!(frames, vec![event(" two spaces"), comment(" c")]);
    }

    #[test]
    fn event_and_id_fields_are_kept_and_retry_is_ignored() {
        let frames = decode(
            &mut SseDecoder::new(),
            &[b"event: error\nid: 7\nretry: 10\ndata: x\n\nevent: lonely\n\ndata: y\n\n"],
        );
        let first = SseEvent {
            event: Some("error".into()),
            data: "x".into(),
            id: Some("7".into()),
        };
        // An event without data is not dispatched, and its type does not leak into the next one.
        assert_eq!(frames, vec![Ok(SseFrame::Event(first)), event("y")]);
    }

    #[test]
    fn a_bom_is_stripped_even_when_split() {
        let frames = decode(&mut SseDecoder::new(), &[b"\xEF", b"\xBB\xBFdata: x\n\n"]);
        assert_eq!(frames, vec![event("x")]);
    }

    #[test]
    fn utf8_split_across_chunks_survives() {
        let body = "data: héllo 世界 🎉\n\n".as_bytes();
        for cut in 0..=body.len() {
            let frames = decode(&mut SseDecoder::new(), &[&body[..cut], &body[cut..]]);
            assert_eq!(frames, vec![event("héllo 世界 🎉")], "cut at {cut}");
        }
    }

    #[test]
    fn finish_dispatches_a_trailing_event_without_blank_line() {
        let frames = decode(&mut SseDecoder::new(), &[b"data: a\n\ndata: b"]);
        assert_eq!(frames, vec![event("a"), event("b")]);
    }

    #[test]
    fn an_over_long_line_is_dropped_with_an_error_and_decoding_goes_on() {
        let mut decoder = SseDecoder::with_limit(16);
        let frames = decode(
            &mut decoder,
            &[b"data: 0123456789", b"abcdef\n\ndata: ok\n\n"],
        );
        assert_eq!(
            frames,
            vec![Err(SseError::TooLong { limit: 16 }), event("ok")]
        );
        // In one piece too.
        let frames = decode(
            &mut SseDecoder::with_limit(16),
            &[b"data: 0123456789abcdef\n\ndata: ok\n\n"],
        );
        assert_eq!(
            frames,
            vec![Err(SseError::TooLong { limit: 16 }), event("ok")]
        );
    }

    #[test]
    fn an_over_long_event_is_dropped_with_an_error() {
        let frames = decode(
            &mut SseDecoder::with_limit(12),
            &[b"data: 12345\ndata: 12345\ndata: 12345\n\ndata: ok\n\n"],
        );
        assert_eq!(
            frames,
            vec![Err(SseError::TooLong { limit: 12 }), event("ok")]
        );
    }

    #[test]
    fn encode_data_round_trips_payloads_with_line_breaks() {
        assert_eq!(encode_data("{}"), "data: {}\n\n");
        assert_eq!(
            encode_data("a\nb\r\nc\rd"),
            "data: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        let frames = decode(
            &mut SseDecoder::new(),
            &[encode_data("x\r\ny\n").as_bytes()],
        );
        assert_eq!(frames, vec![event("x\ny\n")]);
    }
}
