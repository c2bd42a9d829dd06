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
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use switchboard_chat::now_ms;
use switchboard_core::Settings;
use switchboard_core::access::{AccessError, AccessPolicy, Credential, FailureThrottle, Principal};
use switchboard_core::secret::Secret;
use switchboard_store::Store;

use crate::error::ApiError;
use crate::extract::USER_KEY_HEADER;
use crate::origin::Addressed;
use crate::session::{COOKIE_NAME, SessionCookie};

/// What admission reads: the access policy, the wrong-code throttle, the key that signs login
/// cookies, the settings (session TTL, site URL, body limit) and the store's sessions. Cheap to
/// clone; handlers that only admit take `State<Gate>` (or a [`Caller`]).
#[derive(Clone)]
pub struct Gate(Arc<GateParts>);

struct GateParts {
    policy: AccessPolicy,
    throttle: FailureThrottle,
    cookie_key: Vec<u8>,
    settings: Arc<Settings>,
    store: Store,
}

impl Gate {
    pub fn new(
        policy: AccessPolicy,
        throttle: FailureThrottle,
        cookie_key: Vec<u8>,
        settings: Arc<Settings>,
        store: Store,
    ) -> Gate {
        Gate(Arc::new(GateParts {
            policy,
            throttle,
            cookie_key,
            settings,
            store,
        }))
    }

    pub fn policy(&self) -> &AccessPolicy {
        &self.0.policy
    }

    pub fn throttle(&self) -> &FailureThrottle {
        &self.0.throttle
    }

    pub fn cookie_key(&self) -> &[u8] {
        &self.0.cookie_key
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    fn store(&self) -> &Store {
        &self.0.store
    }
}

/// No `Authorization` header: the browser's login cookie, or anonymous; plus the user's own key
/// when the UI sends one.
async fn admit_browser(gate: &Gate, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let user_key = headers
        .get(USER_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let base = match session_principal(gate, headers).await? {
        Some(p) => Ok(p),
        None => gate.policy().admit(&Credential::None),
    };
    match (base, user_key) {
        (_, Some(_)) if gate.policy().hide_user_api_key => {
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
    gate: &Gate,
    headers: &HeaderMap,
    client_ip: IpAddr,
    style: CredentialStyle,
) -> Result<Principal, ApiError> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let cred = match style {
        CredentialStyle::NextChat => Credential::from_authorization(header, &gate.policy().codes),
        CredentialStyle::Gateway => {
            Credential::from_gateway_authorization(header, &gate.policy().codes)
        }
    };
    if cred == Credential::None {
        return admit_browser(gate, headers).await;
    }
    admit_credential(gate, &cred, client_ip)
}

/// Apply the policy to one credential. A client that has used up its wrong codes is refused
/// before its credential is even looked at, so a right code cannot be told from a wrong one.
pub fn admit_credential(
    gate: &Gate,
    cred: &Credential,
    client_ip: IpAddr,
) -> Result<Principal, ApiError> {
    let now = Instant::now();
    if gate.policy().needs_code() {
        gate.throttle().check(client_ip, now)?;
    }
    match gate.policy().admit(cred) {
        Ok(p) => Ok(p),
        Err(AccessError::WrongCode) => {
            gate.throttle().record_failure(client_ip, now);
            Err(AccessError::WrongCode.into())
        }
        Err(e) => Err(e.into()),
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The login cookie on this request, when we signed it and it has not expired.
fn live_cookie(gate: &Gate, headers: &HeaderMap) -> Option<SessionCookie> {
    let value = crate::session::cookie(headers, COOKIE_NAME)?;
    let cookie = SessionCookie::decode(gate.cookie_key(), value)?;
    let now = crate::session::now_secs();
    (!cookie.expired(now, gate.settings().session_ttl)).then_some(cookie)
}

/// The principal the request's login cookie stands for: a cookie we signed, younger than the
/// session TTL, whose session is still in the store (not logged out) and whose code is still
/// configured (removing a code from `CODE` ends its sessions).
async fn session_principal(
    gate: &Gate,
    headers: &HeaderMap,
) -> Result<Option<Principal>, ApiError> {
    let Some(cookie) = live_cookie(gate, headers) else {
        return Ok(None);
    };
    let workspace = gate
        .store()
        .session_workspace(&cookie.store_id(), now_ms())
        .await?;
    Ok(workspace
        .and_then(|ws| gate.policy().codes.hash_of_workspace(&ws))
        .map(|code_hash| Principal::Code { code_hash }))
}

/// A fresh `Set-Cookie` when the request's login cookie is live but older than a tenth of the
/// session TTL, after moving the session's expiry in the store; `None` otherwise (no cookie, a
/// young one, or one whose session has ended). Called by the edge layer for every request.
pub async fn renew_session(gate: &Gate, headers: &HeaderMap, secure: bool) -> Option<HeaderValue> {
    let cookie = live_cookie(gate, headers)?;
    let ttl = gate.settings().session_ttl;
    let now = crate::session::now_secs();
    if now.saturating_sub(cookie.issued_at) < ttl.as_secs() / 10 {
        return None;
    }
    let now_ms = now_ms();
    match gate
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
    let value = cookie.reissued(now).encode(gate.cookie_key());
    Some(crate::session::set_cookie(&value, ttl, secure))
}

/// Whether the browser reached us over https: a trusted proxy said so, or the site URL does.
fn is_https(gate: &Gate, addressed: Option<&Addressed>) -> bool {
    match addressed {
        Some(a) => a.is_https(gate.settings()),
        None => gate
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
    State(gate): State<Gate>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    addressed: Option<axum::Extension<Addressed>>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let body = crate::extract::read_body(&headers, body, gate.settings().max_body_bytes).await?;
    let req: LoginRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("expected {{\"code\":\"…\"}}: {e}")))?;
    if !gate.policy().needs_code() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let code = req.code.trim();
    let code = code.strip_prefix("nk-").unwrap_or(code);
    let credential = Credential::AccessCode(Secret::new(code.to_string()));
    let principal = admit_credential(&gate, &credential, peer.ip())?;
    if !matches!(principal, Principal::Code { .. }) {
        // An access code on a server that needs one admits as that code, or not at all.
        return Err(ApiError::internal("unexpected principal"));
    }
    let ttl = gate.settings().session_ttl;
    let now_ms = now_ms();
    let cookie = SessionCookie::new(crate::session::now_secs());
    // Expired sessions are cleared here, where new ones are made, so the table stays small.
    gate.store().delete_expired_sessions(now_ms).await?;
    gate.store()
        .create_session(
            &cookie.store_id(),
            &principal.workspace(),
            now_ms,
            now_ms.saturating_add(ms(ttl)),
        )
        .await?;
    let secure = is_https(&gate, addressed.as_deref());
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        crate::session::set_cookie(&cookie.encode(gate.cookie_key()), ttl, secure),
    );
    Ok(res)
}

/// `POST /api/logout`: end the session in the store (a copy of the cookie is refused from now on)
/// and clear the cookie.
pub async fn logout(
    State(gate): State<Gate>,
    addressed: Option<axum::Extension<Addressed>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let signed = crate::session::cookie(&headers, COOKIE_NAME)
        .and_then(|v| SessionCookie::decode(gate.cookie_key(), v));
    if let Some(cookie) = signed {
        gate.store().delete_session(&cookie.store_id()).await?;
    }
    let secure = is_https(&gate, addressed.as_deref());
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

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Gate: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1]));
        let gate = Gate::from_ref(state);
        let principal = admit(&gate, &parts.headers, ip, CredentialStyle::NextChat).await?;
        let workspace = principal.workspace();
        Ok(Caller {
            principal,
            workspace,
        })
    }
}
