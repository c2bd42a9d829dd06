//! The upstream HTTP/1 codec on arbitrary bytes: parsing a response head and decoding the body
//! that follows never panics, and how the network cuts the bytes never changes the body, the
//! outcome, or where the body ends.

#![no_main]

mod body_decode;

use body_decode::decode;
use http::Method;
use libfuzzer_sys::fuzz_target;
use switchboard_server::upstream_pool::h1::{BodyDecoder, parse_head};

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
