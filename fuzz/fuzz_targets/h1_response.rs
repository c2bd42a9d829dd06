//! The upstream HTTP/1 codec on arbitrary bytes: parsing a response head and decoding the body
//! that follows never panics, and how the network cuts the bytes never changes the body, the
//! outcome, or where the body ends.

#![no_main]

use bytes::BytesMut;
use http::Method;
use libfuzzer_sys::fuzz_target;
use switchboard_server::upstream_pool::h1::{BodyDecoder, ProtocolError, Step, parse_head};

/// The body decoded from `rest` fed `piece` bytes at a time, and the bytes left after its end.
fn decode(decoder: &mut BodyDecoder, rest: &[u8], piece: usize) -> (Vec<u8>, Result<usize, ProtocolError>) {
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    loop {
        match decoder.step(&mut buf) {
            Ok(Step::Data(d)) => body.extend_from_slice(&d),
            // Where the body ended, counted from the start of `rest`.
            Ok(Step::End) => return (body, Ok(fed - buf.len())),
            Ok(Step::NeedMore) if fed == rest.len() => {
                return (body, decoder.eof().map(|()| fed - buf.len()));
            }
            Ok(Step::NeedMore) => {
                let n = piece.min(rest.len() - fed);
                buf.extend_from_slice(&rest[fed..fed + n]);
                fed += n;
            }
            Err(e) => return (body, Err(e)),
        }
    }
}

fuzz_target!(|input: &[u8]| {
    let (piece, data) = match input {
        [p, rest @ ..] => ((*p as usize % 64) + 1, rest),
        _ => return,
    };
    let method = if data.first() == Some(&b'H') { Method::HEAD } else { Method::POST };
    let Ok(Some((head, len))) = parse_head(data, &method) else {
        return;
    };
    assert!(len <= data.len());
    let rest = &data[len..];
    let whole = decode(&mut BodyDecoder::new(head.framing), rest, rest.len().max(1));
    let cut = decode(&mut BodyDecoder::new(head.framing), rest, piece);
    assert_eq!(whole, cut, "piece {piece}");
});
