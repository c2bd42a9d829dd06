//! Admission at the HTTP edge: reads the credential the way each entry point receives it, applies
//! the core [`AccessPolicy`](switchboard_core::access::AccessPolicy), and throttles wrong codes per
//! client address. Every entry point (proxy, gateway, chat API, UI, metrics) calls [`admit`].

use std::net::IpAddr;
use std::time::Instant;

use axum::http::{HeaderMap, header};
use switchboard_core::access::{AccessError, Credential, Principal};

use crate::error::ApiError;
use crate::state::AppState;

/// How an entry point's clients present credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialStyle {
    /// NextChat's: `Bearer nk-<code>` is a code, any other bearer token an own key.
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
        CredentialStyle::NextChat => Credential::from_authorization(header),
        CredentialStyle::Gateway => {
            Credential::from_gateway_authorization(header, &state.policy().codes)
        }
    };
    if cred == Credential::None
        && let Some(principal) = crate::session::principal_from_cookie(state, headers)
    {
        return Ok(principal);
    }
    match state.policy().admit(&cred) {
        Ok(p) => Ok(p),
        Err(AccessError::WrongCode) => {
            let now = Instant::now();
            state.throttle().check(client_ip, now)?;
            state.throttle().record_failure(client_ip, now);
            Err(AccessError::WrongCode.into())
        }
        Err(e) => Err(e.into()),
    }
}
