//! The client-side HTTP/1 codec on arbitrary bytes: parsing a request head never panics, a head
//! that is still arriving is never mistaken for an error or a different head (the connection
//! parses again as bytes come in), and how the network cuts the body never changes it.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchboard_server::serving::h1::{Parsed, parse_request_head};
use switchboard_server::upstream_pool::h1::{BodyDecoder, ProtocolError, Step};

/// The body decoded from `rest` fed `piece` bytes at a time, and where it ended.
fn decode(decoder: &mut BodyDecoder, rest: &[u8], piece: usize) -> (Vec<u8>, Result<usize, ProtocolError>) {
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    loop {
        match decoder.step(&mut buf) {
            Ok(Step::Data(d)) => body.extend_from_slice(&d),
            Ok(Step::End) => return (body, Ok(fed - buf.len())),
            // A request body never runs until the close: running out of bytes is being cut short.
            Ok(Step::NeedMore) if fed == rest.len() => return (body, Err(ProtocolError::Truncated)),
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
    let Ok(Parsed::Head(head, len)) = parse_request_head(data) else {
        return;
    };
    assert!(len <= data.len());
    for cut in 0..len {
        assert!(
            matches!(parse_request_head(&data[..cut]), Ok(Parsed::Partial)),
            "a prefix of {cut} bytes of a {len}-byte head was not Partial"
        );
    }
    let rest = &data[len..];
    let whole = decode(&mut BodyDecoder::new(head.framing), rest, rest.len().max(1));
    let cut = decode(&mut BodyDecoder::new(head.framing), rest, piece);
    assert_eq!(whole, cut, "piece {piece}");
});
