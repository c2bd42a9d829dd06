//! Shared by the HTTP/1 targets: a body decoded from the bytes after a head.

use bytes::BytesMut;
use switchboard_server::upstream_pool::h1::{BodyDecoder, ProtocolError, Step};

/// The body decoded from `rest` fed `piece` bytes at a time, and where it ended (counted from the
/// start of `rest`), or why it could not be read.
pub fn decode(
    decoder: &mut BodyDecoder,
    rest: &[u8],
    piece: usize,
) -> (Vec<u8>, Result<usize, ProtocolError>) {
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    let mut fed = 0;
    loop {
        match decoder.step(&mut buf) {
            Ok(Step::Data(d)) => body.extend_from_slice(&d),
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
