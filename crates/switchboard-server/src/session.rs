//! The browser's login cookie, encoded and decoded; nothing else (admission, the login and logout
//! handlers and the sessions' server-side records are in [`crate::auth`]).
//!
//! The cookie is `v2.<session id>.<issued at>.<HMAC>`: 128 random bits naming a session the server
//! keeps (so logging out revokes it), the Unix second the cookie was issued (so it expires, and is
//! re-issued as it is used), and an HMAC-SHA-256 over both with the cookie key. Nothing in it is
//! derived from the access code. It is HttpOnly, SameSite=Lax, and Secure when the browser uses
//! https.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue, header};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use switchboard_core::secret::Secret;

pub const COOKIE_NAME: &str = "sb_session";

/// How far in the future an issue time may lie (clocks of several instances differ a little).
const CLOCK_SKEW: u64 = 300;

/// What a login cookie says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCookie {
    /// Names the session; the server keeps only its hash ([`SessionCookie::store_id`]).
    pub id: [u8; 16],
    /// When this cookie was issued, in Unix seconds.
    pub issued_at: u64,
}

impl SessionCookie {
    /// A new session, issued at `issued_at`.
    pub fn new(issued_at: u64) -> SessionCookie {
        let mut id = [0u8; 16];
        rand::fill(&mut id);
        SessionCookie { id, issued_at }
    }

    /// The same session, issued again at `issued_at` (a renewal).
    pub fn reissued(&self, issued_at: u64) -> SessionCookie {
        SessionCookie {
            id: self.id,
            issued_at,
        }
    }

    /// The key the store knows this session by: the id's SHA-256, so the sessions table alone
    /// cannot be turned into cookies.
    pub fn store_id(&self) -> String {
        hex::encode(Sha256::digest(self.id))
    }

    /// Whether the cookie is too old for `ttl` at `now` (Unix seconds), or claims to be from the
    /// future.
    pub fn expired(&self, now: u64, ttl: Duration) -> bool {
        self.issued_at > now + CLOCK_SKEW || now >= self.issued_at.saturating_add(ttl.as_secs())
    }

    /// The cookie's value, signed with `key`.
    pub fn encode(&self, key: &[u8]) -> String {
        let payload = format!("v2.{}.{}", hex::encode(self.id), self.issued_at);
        let sig = hex::encode(mac(key, &payload).finalize().into_bytes());
        format!("{payload}.{sig}")
    }

    /// The cookie in `value`, if `key` signed it (checked in constant time).
    pub fn decode(key: &[u8], value: &str) -> Option<SessionCookie> {
        let (payload, sig_hex) = value.rsplit_once('.')?;
        let sig = hex::decode(sig_hex).ok()?;
        mac(key, payload).verify_slice(&sig).ok()?;
        let mut parts = payload.split('.');
        let (v, id_hex, issued) = (parts.next()?, parts.next()?, parts.next()?);
        if v != "v2" || parts.next().is_some() {
            return None;
        }
        Some(SessionCookie {
            id: hex::decode(id_hex).ok()?.try_into().ok()?,
            issued_at: issued.parse().ok()?,
        })
    }
}

fn mac(key: &[u8], payload: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(payload.as_bytes());
    mac
}

/// Now, in Unix seconds.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `Set-Cookie` for a login cookie with `value`, kept by the browser for `max_age`.
pub fn set_cookie(value: &str, max_age: Duration, secure: bool) -> HeaderValue {
    let cookie = format!(
        "{COOKIE_NAME}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&cookie).expect("cookie is ASCII")
}

/// `Set-Cookie` that removes the login cookie.
pub fn clear_cookie(secure: bool) -> HeaderValue {
    set_cookie("", Duration::ZERO, secure)
}

/// Whether `value` is a `Set-Cookie` for the login cookie.
pub fn sets_login_cookie(value: &HeaderValue) -> bool {
    value
        .as_bytes()
        .strip_prefix(COOKIE_NAME.as_bytes())
        .is_some_and(|rest| rest.first() == Some(&b'='))
}

/// Whether this request was authenticated by the cookie rather than a header (for CSRF checks).
pub fn uses_cookie(headers: &HeaderMap) -> bool {
    headers.get(header::AUTHORIZATION).is_none() && cookie(headers, COOKIE_NAME).is_some()
}

/// A cookie's value by name.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A fresh random cookie key, used when `SWITCHBOARD_COOKIE_SECRET` is unset.
pub fn cookie_key(secret: Option<&Secret>) -> Vec<u8> {
    match secret {
        Some(s) => s.expose().as_bytes().to_vec(),
        None => {
            let mut key = vec![0u8; 32];
            rand::fill(&mut key[..]);
            key
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_round_trip_only_with_their_key_and_expire() {
        let c = SessionCookie::new(1_000_000);
        let value = c.encode(b"key");
        assert_eq!(SessionCookie::decode(b"key", &value), Some(c.clone()));
        assert_eq!(SessionCookie::decode(b"other", &value), None);
        let forged = value.replace(".1000000.", ".2000000.");
        assert_eq!(SessionCookie::decode(b"key", &forged), None);
        let day = Duration::from_secs(86_400);
        assert!(!c.expired(1_000_000 + 86_399, day));
        assert!(c.expired(1_000_000 + 86_400, day));
        assert!(c.expired(1_000_000 - 1_000, day), "issued in the future");
    }
}
