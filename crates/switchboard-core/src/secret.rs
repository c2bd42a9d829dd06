//! A string that must never reach a log line: API keys, access codes, cookie secrets.

use std::fmt;

/// A secret value. `Debug` and `Display` print `<redacted>`; the value is reachable only through
/// [`Secret::expose`], so every use of it is greppable.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The secret itself: for building an upstream `Authorization` header, hashing, and little else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
