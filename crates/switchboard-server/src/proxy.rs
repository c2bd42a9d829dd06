//! `/api/openrouter/{*path}` and `/api/openai/{*path}`: NextChat's provider proxies, done right.
//!
//! Differences from NextChat's `app/api/openrouter.ts`, each deliberate: only the listed API paths
//! are reachable (NextChat forwarded any subpath with the server's key); the body is read once and
//! passed through untouched; a wrong access code is refused instead of falling through; an access
//! code never leaves the server; errors are JSON with the upstream's status, never a 200.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use switchboard_core::provider::ProviderId;

use crate::auth::{CredentialStyle, admit};
use crate::error::ApiError;
use crate::extract::read_body;
use crate::relay::{UpstreamRequest, relay};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/openrouter/{*path}",
            provider_proxy(ProviderId::OpenRouter, "/api/openrouter/"),
        )
        .route(
            "/api/openai/{*path}",
            provider_proxy(ProviderId::OpenAi, "/api/openai/"),
        )
}

/// The route of one provider's proxy: every provider is the same machinery with its own data.
fn provider_proxy(
    provider: ProviderId,
    prefix: &'static str,
) -> axum::routing::MethodRouter<AppState> {
    any(
        move |State(state): State<AppState>,
              ConnectInfo(peer): ConnectInfo<SocketAddr>,
              req: Request| async move {
            // The parts are taken, not extracted: axum's `Uri` and `HeaderMap` extractors clone.
            let (parts, body) = req.into_parts();
            let call = ProxyCall {
                provider,
                prefix,
                peer,
                method: parts.method,
                uri: parts.uri,
                headers: parts.headers,
            };
            proxy(&state, call, body).await
        },
    )
}

struct ProxyCall {
    provider: ProviderId,
    prefix: &'static str,
    peer: SocketAddr,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

async fn proxy(state: &AppState, call: ProxyCall, body: Body) -> Result<Response, ApiError> {
    let started = Instant::now();
    if call.method == Method::OPTIONS {
        // A same-origin preflight never needs auth; cross-origin ones are answered by the CORS layer.
        let mut res = StatusCode::NO_CONTENT.into_response();
        res.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        return Ok(res);
    }
    if call.method != Method::GET && call.method != Method::POST {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            format!(
                "method {} is not allowed here; use GET or POST",
                call.method
            ),
        ));
    }
    let upstream = state
        .upstream(&call.provider)
        .ok_or_else(|| ApiError::not_found("unknown provider"))?;
    // The raw (still percent-encoded) path must equal an allowed path exactly, so no `..`,
    // `%2e%2e` or `%2f` trick can reach anything else.
    let path = call.uri.path().strip_prefix(call.prefix).unwrap_or("");
    let Some(url) = upstream.url_of(path, call.uri.query()) else {
        return Err(ApiError::not_found(format!(
            "{}{path} is not a proxied API path",
            call.prefix
        )));
    };
    let principal = admit(
        state.gate(),
        &call.headers,
        call.peer.ip(),
        CredentialStyle::NextChat,
    )
    .await?;
    let authorization = upstream.authorization(&principal)?;
    if call.method == Method::POST {
        crate::spend::check_budget(state, &principal).await?;
    }
    let body = if call.method == Method::POST {
        read_body(&call.headers, body, state.settings().max_body_bytes).await?
    } else {
        bytes::Bytes::new()
    };
    let checked = if call.method == Method::POST
        && (path.ends_with("completions") || path == "v1/responses")
    {
        crate::models::check_request_models(state, &call.provider, &body)?
    } else {
        None
    };
    if call.method == Method::GET
        && path == "v1/models"
        && !state.settings().custom_model_rules.is_empty()
    {
        return filtered_models(state, &call.provider, url, authorization).await;
    }
    // Like the headers, the URI points into the client connection's read buffer.
    drop(call.uri);
    let meter = (call.method == Method::POST && !principal.has_own_key()).then(|| {
        crate::relay::SpendMeter {
            ledger: state.chats().ledger().clone(),
            workspace: principal.workspace(),
            entry: "proxy",
            // Already read when `CUSTOM_MODELS` had it checked; else read only if need be.
            asked: match checked {
                Some(models) => models.model.map_or(
                    crate::relay::AskedModel::Unknown,
                    crate::relay::AskedModel::Named,
                ),
                None => crate::relay::AskedModel::InRequest(body.clone()),
            },
            lookup: upstream.generation_lookup(state.http(), &authorization),
        }
    });
    relay(
        state,
        UpstreamRequest {
            method: call.method,
            url,
            authorization,
            client_headers: call.headers,
            meter,
            body,
        },
        started,
    )
    .await
}

/// The provider's model list with only the models `CUSTOM_MODELS` lets through, as `/v1/models`
/// lists them; each entry otherwise exactly as the provider sent it.
async fn filtered_models(
    state: &AppState,
    provider: &ProviderId,
    url: reqwest::Url,
    authorization: HeaderValue,
) -> Result<Response, ApiError> {
    let res = state
        .http()
        .get(url)
        .header(header::AUTHORIZATION, authorization)
        .timeout(std::time::Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| {
            let why = crate::outbound::failure(&e);
            tracing::warn!("upstream unreachable: {why}");
            ApiError::bad_gateway(format!(
                "upstream unreachable: the model list could not be read: {why}"
            ))
        })?;
    let status = res.status();
    let mut list: serde_json::Value = res
        .json()
        .await
        .map_err(|_| ApiError::bad_gateway("the upstream's model list was not JSON"))?;
    if !status.is_success() {
        return Ok((status, axum::Json(list)).into_response());
    }
    if let Some(data) = list
        .get_mut("data")
        .and_then(serde_json::Value::as_array_mut)
    {
        data.retain(|m| {
            m.get("id")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|id| state.model_allowed(provider, id))
        });
        let kept = data.len();
        // The count OpenRouter's SDK reads must describe the list it gets.
        if let Some(total) = list.get_mut("total_count") {
            *total = serde_json::json!(kept);
        }
    }
    Ok(axum::Json(list).into_response())
}
