//! Identifiers and clocks.
//!
//! Ids are made here rather than by the database so that SQLite and PostgreSQL produce the
//! same shape, and so a caller learns the id without a round trip. A short type prefix
//! (`c_`, `m_`) makes ids readable in logs and URLs.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

/// Lower-case RFC 4648 base32: safe in URLs and file names, no ambiguous case.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// 20 symbols of 5 bits = 100 random bits: collisions are not a practical concern.
const RANDOM_LEN: usize = 20;

/// A fresh id such as `c_k3j5…`.
pub(crate) fn new_id(prefix: &str) -> String {
    let mut rng = rand::rng();
    let mut id = String::with_capacity(prefix.len() + 1 + RANDOM_LEN);
    id.push_str(prefix);
    id.push('_');
    for _ in 0..RANDOM_LEN {
        id.push(ALPHABET[rng.random_range(0..ALPHABET.len())] as char);
    }
    id
}

pub(crate) fn new_chat_id() -> String {
    new_id("c")
}

pub(crate) fn new_message_id() -> String {
    new_id("m")
}

pub(crate) fn new_file_id() -> String {
    new_id("f")
}

/// Unix time in milliseconds, the unit of every timestamp in the store.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_twenty_base32_chars() {
        let id = new_chat_id();
        let (prefix, random) = id.split_once('_').unwrap();
        assert_eq!(prefix, "c");
        assert_eq!(random.len(), RANDOM_LEN);
        assert!(random.bytes().all(|b| ALPHABET.contains(&b)));
        assert_ne!(new_message_id(), new_message_id());
    }
}
