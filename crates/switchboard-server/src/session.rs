//! The browser's login: `POST /api/login {"code"}` sets a signed, HttpOnly, SameSite=Lax cookie that
//! stands for the access code, so the web UI never keeps the code in script-readable storage.
//!
//! The cookie holds the code's SHA-256 hash and an HMAC over it; the code itself never leaves the
//! request that presented it. Removing a code from `CODE` ends its sessions, since the hash must
//! still be one of the configured ones.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use switchboard_core::access::{Credential, Principal};
use switchboard_core::secret::Secret;

use crate::error::ApiError;
use crate::state::AppState;

pub const COOKIE_NAME: &str = "sb_session";

fn sign(key: &[u8], payload: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(payload.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn cookie_value(key: &[u8], code_hash: &[u8; 32]) -> String {
    let payload = format!("v1.{}", hex::encode(code_hash));
    let sig = hex::encode(sign(key, &payload));
    format!("{payload}.{sig}")
}

/// The principal a valid session cookie stands for.
pub fn principal_from_cookie(state: &AppState, headers: &HeaderMap) -> Option<Principal> {
    let value = cookie(headers, COOKIE_NAME)?;
    let mut parts = value.split('.');
    let (v, hash_hex, sig_hex) = (parts.next()?, parts.next()?, parts.next()?);
    if v != "v1" || parts.next().is_some() {
        return None;
    }
    let sig = hex::decode(sig_hex).ok()?;
    let mut mac = Hmac::<Sha256>::new_from_slice(state.cookie_key()).ok()?;
    mac.update(format!("v1.{hash_hex}").as_bytes());
    mac.verify_slice(&sig).ok()?;
    let code_hash: [u8; 32] = hex::decode(hash_hex).ok()?.try_into().ok()?;
    state
        .policy()
        .codes
        .contains_hash(&code_hash)
        .then_some(Principal::Code { code_hash })
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

#[derive(Deserialize)]
pub struct LoginRequest {
    code: String,
}

/// `POST /api/login`: check the code (throttled like every wrong code) and set the cookie.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = crate::extract::read_body(&headers, body, state.settings().max_body_bytes).await?;
    let req: LoginRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("expected {{\"code\":\"…\"}}: {e}")))?;
    if !state.policy().needs_code() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let code = req.code.trim();
    let code = code.strip_prefix("nk-").unwrap_or(code);
    let credential = Credential::AccessCode(Secret::new(code.to_string()));
    let principal = crate::auth::admit_credential(&state, &credential, peer.ip())?;
    let Principal::Code { code_hash } = principal else {
        // An access code on a server that needs one admits as that code, or not at all.
        return Err(ApiError::internal("unexpected principal"));
    };
    let secure = is_https(&state, &headers);
    let cookie = format!(
        "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=2592000{}",
        cookie_value(state.cookie_key(), &code_hash),
        if secure { "; Secure" } else { "" }
    );
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("cookie is ASCII"),
    );
    Ok(res)
}

/// `POST /api/logout`: clear the cookie.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let secure = is_https(&state, &headers);
    let cookie = format!(
        "{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    );
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("cookie is ASCII"),
    );
    res
}

/// Behind https: the site URL says so, or the reverse proxy does.
fn is_https(state: &AppState, headers: &HeaderMap) -> bool {
    state
        .settings()
        .site_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
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
