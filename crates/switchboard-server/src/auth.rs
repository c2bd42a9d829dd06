//! Admission at the HTTP edge: reads the credential the way each entry point receives it, applies
//! the core [`AccessPolicy`](switchboard_core::access::AccessPolicy), and throttles wrong codes per
//! client address. Every entry point (proxy, gateway, chat API, UI, metrics) calls [`admit`].

use std::net::IpAddr;
use std::time::Instant;

use axum::http::{HeaderMap, header};
use switchboard_core::access::{AccessError, Credential, Principal};

use crate::error::ApiError;
use crate::state::AppState;

/// The web UI's header for the user's own provider key. Unlike `Authorization`, it does not
/// change who the user is: chats stay in the workspace of the login cookie (or the anonymous
/// one), which is what the server-rendered pages show; the key only pays upstream.
pub const USER_KEY_HEADER: &str = "x-switchboard-user-key";

/// No `Authorization` header: the browser's login cookie, or anonymous; plus the user's own key
/// when the UI sends one.
fn admit_browser(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let user_key = headers
        .get(USER_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty());
    let base = match crate::session::principal_from_cookie(state, headers) {
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
pub fn admit(
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
        return admit_browser(state, headers);
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
