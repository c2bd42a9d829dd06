//! The stream decoder on arbitrary provider bytes: it never panics, and how the network cuts the
//! bytes into chunks never changes the events (the same property `switchboard-core`'s
//! `tests/stream_split.rs` checks for valid streams, here for any input).

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_core::stream::{StreamDecoder, StreamEvent, decode_body};

fn decode_in_pieces(data: &[u8], cuts: &[usize]) -> Vec<StreamEvent> {
    let mut decoder = StreamDecoder::new();
    let mut events = Vec::new();
    let mut start = 0;
    for &cut in cuts {
        events.extend(decoder.feed(&data[start..cut]));
        start = cut;
    }
    events.extend(decoder.feed(&data[start..]));
    events.extend(decoder.finish());
    events
}

fuzz_target!(|input: &[u8]| {
    // The first two bytes choose where to cut; the rest is the body.
    let (seed, data) = match input {
        [a, b, rest @ ..] => ((*a as usize) << 8 | *b as usize, rest),
        _ => (0, input),
    };
    let whole = decode_in_pieces(data, &[]);
    let n = data.len().max(1);
    let mut cuts = vec![seed % n, (seed * 7 + 1) % n, (seed * 31 + 3) % n];
    cuts.sort_unstable();
    let split = decode_in_pieces(data, &cuts);
    assert_eq!(whole, split, "cuts at {cuts:?} changed the events");
    // Byte by byte, the extreme split.
    if data.len() <= 4096 {
        let every: Vec<usize> = (1..data.len()).collect();
        assert_eq!(
            whole,
            decode_in_pieces(data, &every),
            "byte-by-byte changed the events"
        );
    }
    // A tiny line limit exercises the oversize-line path; only "no panic" is asserted there.
    let mut small = StreamDecoder::with_limit(64);
    let _ = small.feed(data);
    let _ = small.finish();
    let _ = decode_body(data);
});
