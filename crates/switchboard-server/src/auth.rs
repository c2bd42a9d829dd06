//! Admission at the HTTP edge: reads the credential the way each entry point receives it, applies
//! the core [`AccessPolicy`](switchboard_core::access::AccessPolicy), and throttles wrong codes per
//! client address. Every entry point (proxy, gateway, chat API, UI, metrics) calls [`admit`].
//!
//! The browser's login lives here too: `POST /api/login {"code"}` starts a session (a row in the
//! store naming the code's workspace, and a cookie naming the session — see [`crate::session`]),
//! `POST /api/logout` deletes the row, so a copy of the cookie is refused from then on. A session
//! lasts `SWITCHBOARD_SESSION_TTL` from its cookie's issue; a request that shows a cookie older
//! than a tenth of that gets a fresh one ([`renew_session`]), so a session in use does not end.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use switchboard_core::access::{AccessError, Credential, Principal};
use switchboard_core::secret::Secret;

use crate::error::ApiError;
use crate::extract::USER_KEY_HEADER;
use crate::origin::Addressed;
use crate::session::{COOKIE_NAME, SessionCookie};
use crate::state::AppState;

/// No `Authorization` header: the browser's login cookie, or anonymous; plus the user's own key
/// when the UI sends one.
async fn admit_browser(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let user_key = headers
        .get(USER_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let base = match session_principal(state, headers).await? {
        Some(p) => Ok(p),
        None => state.policy().admit(&Credential::None),
    };
    match (base, user_key) {
        (_, Some(_)) if state.policy().hide_user_api_key => {
            Err(AccessError::OwnKeyNotAccepted.into())
        }
        (Ok(base), Some(key)) => Ok(Principal::WithOwnKey {
            base: Box::new(base),
            key: switchboard_core::Secret::new(key.to_string()),
        }),
        (Ok(base), None) => Ok(base),
        // A code is needed and there is no cookie: the key alone admits, as in NextChat.
        (Err(_), Some(key)) => Ok(Principal::OwnKey {
            key: switchboard_core::Secret::new(key.to_string()),
        }),
        (Err(e), None) => Err(e.into()),
    }
}

/// How an entry point's clients present credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialStyle {
    /// NextChat's: `Bearer nk-<code>` (or a bare configured code) is a code, any other bearer
    /// token an own key.
    NextChat,
    /// SDKs on the OpenAI-compatible gateway: a bare `Bearer <code>` counts as a code too.
    Gateway,
}

/// Decide whether this request may proceed, and as whom.
pub async fn admit(
    state: &AppState,
    headers: &HeaderMap,
    client_ip: IpAddr,
    style: CredentialStyle,
) -> Result<Principal, ApiError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let cred = match style {
        CredentialStyle::NextChat => Credential::from_authorization(header, &state.policy().codes),
        CredentialStyle::Gateway => {
            Credential::from_gateway_authorization(header, &state.policy().codes)
        }
    };
    if cred == Credential::None {
        return admit_browser(state, headers).await;
    }
    admit_credential(state, &cred, client_ip)
}

/// Apply the policy to one credential. A client that has used up its wrong codes is refused
/// before its credential is even looked at, so a right code cannot be told from a wrong one.
pub fn admit_credential(
    state: &AppState,
    cred: &Credential,
    client_ip: IpAddr,
) -> Result<Principal, ApiError> {
    let now = Instant::now();
    if state.policy().needs_code() {
        state.throttle().check(client_ip, now)?;
    }
    match state.policy().admit(cred) {
        Ok(p) => Ok(p),
        Err(AccessError::WrongCode) => {
            state.throttle().record_failure(client_ip, now);
            Err(AccessError::WrongCode.into())
        }
        Err(e) => Err(e.into()),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The login cookie on this request, when we signed it and it has not expired.
fn live_cookie(state: &AppState, headers: &HeaderMap) -> Option<SessionCookie> {
    let value = crate::session::cookie(headers, COOKIE_NAME)?;
    let cookie = SessionCookie::decode(state.cookie_key(), value)?;
    let now = crate::session::now_secs();
    (!cookie.expired(now, state.settings().session_ttl)).then_some(cookie)
}

/// The principal the request's login cookie stands for: a cookie we signed, younger than the
/// session TTL, whose session is still in the store (not logged out) and whose code is still
/// configured (removing a code from `CODE` ends its sessions).
async fn session_principal(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, ApiError> {
    let Some(cookie) = live_cookie(state, headers) else {
        return Ok(None);
    };
    let workspace = state
        .store()
        .session_workspace(&cookie.store_id(), now_ms())
        .await?;
    Ok(workspace
        .and_then(|ws| state.policy().codes.hash_of_workspace(&ws))
        .map(|code_hash| Principal::Code { code_hash }))
}

/// A fresh `Set-Cookie` when the request's login cookie is live but older than a tenth of the
/// session TTL, after moving the session's expiry in the store; `None` otherwise (no cookie, a
/// young one, or one whose session has ended). Called by the edge layer for every request.
pub async fn renew_session(
    state: &AppState,
    headers: &HeaderMap,
    secure: bool,
) -> Option<HeaderValue> {
    let cookie = live_cookie(state, headers)?;
    let ttl = state.settings().session_ttl;
    let now = crate::session::now_secs();
    if now.saturating_sub(cookie.issued_at) < ttl.as_secs() / 10 {
        return None;
    }
    let now_ms = now_ms();
    match state
        .store()
        .renew_session(&cookie.store_id(), now_ms, now_ms.saturating_add(ms(ttl)))
        .await
    {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => {
            tracing::warn!(error = %e, "could not renew a login session");
            return None;
        }
    }
    let value = cookie.reissued(now).encode(state.cookie_key());
    Some(crate::session::set_cookie(&value, ttl, secure))
}

/// Whether the browser reached us over https: a trusted proxy said so, or the site URL does.
fn is_https(state: &AppState, addressed: Option<&Addressed>) -> bool {
    match addressed {
        Some(a) => a.is_https(state.settings()),
        None => state
            .settings()
            .site_url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://")),
    }
}

#[derive(Deserialize)]
pub struct LoginRequest {
    code: String,
}

/// `POST /api/login`: check the code (throttled like every wrong code), start a session and set
/// its cookie.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    addressed: Option<axum::Extension<Addressed>>,
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
    let principal = admit_credential(&state, &credential, peer.ip())?;
    if !matches!(principal, Principal::Code { .. }) {
        // An access code on a server that needs one admits as that code, or not at all.
        return Err(ApiError::internal("unexpected principal"));
    }
    let ttl = state.settings().session_ttl;
    let now_ms = now_ms();
    let cookie = SessionCookie::new(crate::session::now_secs());
    // Expired sessions are cleared here, where new ones are made, so the table stays small.
    state.store().delete_expired_sessions(now_ms).await?;
    state
        .store()
        .create_session(
            &cookie.store_id(),
            &principal.workspace(),
            now_ms,
            now_ms.saturating_add(ms(ttl)),
        )
        .await?;
    let secure = is_https(&state, addressed.as_deref());
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        crate::session::set_cookie(&cookie.encode(state.cookie_key()), ttl, secure),
    );
    Ok(res)
}

/// `POST /api/logout`: end the session in the store (a copy of the cookie is refused from now on)
/// and clear the cookie.
pub async fn logout(
    State(state): State<AppState>,
    addressed: Option<axum::Extension<Addressed>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let signed = crate::session::cookie(&headers, COOKIE_NAME)
        .and_then(|v| SessionCookie::decode(state.cookie_key(), v));
    if let Some(cookie) = signed {
        state.store().delete_session(&cookie.store_id()).await?;
    }
    let secure = is_https(&state, addressed.as_deref());
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut()
        .insert(header::SET_COOKIE, crate::session::clear_cookie(secure));
    Ok(res)
}

/// Who is calling (the chat API, share links, usage), and which workspace their chats live in:
/// an extractor that admits the request the NextChat way.
pub struct Caller {
    pub principal: Principal,
    pub workspace: String,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        let principal = admit(state, &parts.headers, ip, CredentialStyle::NextChat).await?;
        let workspace = principal.workspace();
        Ok(Caller {
            principal,
            workspace,
        })
    }
}
