//! The client-side HTTP/1 codec on arbitrary bytes: parsing a request head never panics, a head
//! that is still arriving is never mistaken for an error or a different head (the connection
//! parses again as bytes come in), and how the network cuts the body never changes it.

#![no_main]

mod body_decode;

use body_decode::decode;
use libfuzzer_sys::fuzz_target;
use switchboard_server::serving::h1::{Parsed, parse_request_head};
use switchboard_server::upstream_pool::h1::BodyDecoder;

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
