//! Switchboard's HTTP application.
//!
//! [`app`] builds the whole router from an [`AppState`]; [`serve`] runs it on a listener until a
//! shutdown signal. Tests start the same app on port 0 (see `tests/`), so what is tested is what
//! runs.
//!
//! One module per feature, each exposing `routes()`: [`proxy`] (NextChat-compatible provider
//! proxies), the gateway, the chat API, the UI. Cross-cutting concerns are tower layers here.

pub mod auth;
pub mod catalog;
pub mod chats;
pub mod connection_threads;
pub mod error;
pub mod extract;
pub mod gateway;
pub mod listen;
pub mod metrics;
pub mod models;
pub mod origin;
pub mod outbound;
pub mod proxy;
pub mod quota;
pub mod redact;
pub mod relay;
pub mod serving;
pub mod session;
pub mod share;
pub mod spend;
pub mod spend_limits;
pub mod ssrf;
pub mod state;
pub mod ui;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use switchboard_core::Settings;
use switchboard_core::settings::{CorsOrigins, MetricsAccess};
use tokio::net::TcpListener;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

use crate::connection_threads::ConnectionThreads;

pub use error::ApiError;
pub use serving::ServerSettings;
pub use state::AppState;
/// Markdown rendering lives with the chat engine (events carry rendered messages); pages use it too.
pub use switchboard_chat::markdown;

/// The whole application.
pub fn app(state: AppState) -> Router {
    let router = Router::new()
        .route("/healthz", get(healthz))
        .route("/api/config", get(config).post(config))
        .route("/api/login", post(auth::login))
        .route("/api/logout", post(auth::logout))
        .route("/metrics", get(metrics))
        .merge(proxy::routes())
        .merge(gateway::routes())
        // Pages, assets and the JSON the UI reads are compressed (br or gzip, as the browser
        // asks); event streams are not (each event must leave at once), and neither is anything
        // the proxy or the gateway relays, which passes through byte for byte.
        .merge(
            Router::new()
                .merge(models::routes())
                .merge(ui::routes())
                .merge(chats::routes())
                .layer(tower_http::compression::CompressionLayer::new()),
        )
        .merge(share::routes())
        .merge(spend::routes())
        .merge(ui::usage::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), edge));
    let router = match cors_layer(&state.settings().cors_origins) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.with_state(state)
}

/// Start what runs beside the request handlers: the model catalog refresh.
pub fn start_background_tasks(state: &AppState) {
    state.catalog().spawn_refresh(state.http().clone());
}

/// Connections the kernel queues for `accept` (capped by `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;

/// Bind the listening socket. The backlog is set explicitly: the default one (128 here) overflowed
/// when a few hundred clients connected at once, and the kernel then dropped the handshakes it
/// could not queue, so those clients waited a full second for SYN-ACK retransmission.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Run the app on `listener` until `shutdown` resolves, then finish in-flight requests; `limits`
/// bound the client connections (see [`listen`]; [`ServerSettings::limits`] gives the configured
/// ones).
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    limits: listen::Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app(state.clone());
    let engine_state = state.clone();
    let shutdown = async move {
        shutdown.await;
        state.begin_shutdown();
    };
    let threads = ConnectionThreads::start(limits.connection_threads)?;
    let served = listen::serve(app, listener, limits, &threads, shutdown).await;
    // Connections are drained; replies run detached from them and get their grace period now.
    engine_state.chats().shutdown().await;
    threads.stop().await;
    served
}

fn cors_layer(origins: &CorsOrigins) -> Option<CorsLayer> {
    let allow = match origins {
        CorsOrigins::SameOrigin => return None,
        CorsOrigins::Any => AllowOrigin::any(),
        CorsOrigins::List(list) => AllowOrigin::list(
            list.iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        ),
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            // Whatever headers the allowed origin's preflight asks for (SDKs send their own,
            // e.g. the openai SDK's `x-stainless-*`); never with credentials (no cookies).
            .allow_headers(AllowHeaders::mirror_request())
            .expose_headers([
                "x-generation-id".parse().expect("static header name"),
                header::RETRY_AFTER,
            ]),
    )
}

/// Request headers above this total are refused with 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// What every request passes through, in one layer (each extra `from_fn` layer costs a boxed
/// future and a service clone per request): refuse oversized headers, a host we do not answer
/// to and cross-site writes ([`origin`]), renew a login session in use ([`auth::renew_session`]),
/// give plain-text rejections the JSON error shape, count the answer for `/metrics`.
async fn edge(
    State(state): State<AppState>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let refusal = oversized_headers(req.headers()).or_else(|| check_where_from(&state, &mut req));
    let res = match refusal {
        Some(refusal) => refusal.into_response(),
        None => {
            let secure = req
                .extensions()
                .get::<origin::Addressed>()
                .is_some_and(|a| a.is_https(state.settings()));
            let renewed = auth::renew_session(state.gate(), req.headers(), secure).await;
            let mut res = json_errors(next.run(req).await).await;
            // A handler that set the cookie itself (login, logout) has the last word.
            if let Some(cookie) = renewed
                && !res
                    .headers()
                    .get_all(header::SET_COOKIE)
                    .iter()
                    .any(session::sets_login_cookie)
            {
                res.headers_mut().append(header::SET_COOKIE, cookie);
            }
            res
        }
    };
    state.metrics().count_request(
        route.as_ref().map_or("unmatched", |p| p.as_str()),
        res.status().as_u16(),
    );
    res
}

/// The [`origin`] checks. Behind a trusted proxy the peer is the proxy, so the client's address it
/// forwarded replaces the peer's in `ConnectInfo`: the wrong-code throttle then counts clients,
/// not the proxy everyone shares.
fn check_where_from(state: &AppState, req: &mut axum::extract::Request) -> Option<ApiError> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let settings = state.settings();
    let addressed = origin::Addressed::of(settings, req.headers(), req.uri(), peer.ip());
    if let Err(e) = origin::check_host(settings, state.bind_addr().ip(), &addressed)
        .and_then(|()| origin::check_origin(settings, req.method(), req.headers(), &addressed))
    {
        return Some(e);
    }
    if addressed.client_ip != peer.ip() {
        req.extensions_mut().insert(ConnectInfo(SocketAddr::new(
            addressed.client_ip,
            peer.port(),
        )));
    }
    req.extensions_mut().insert(addressed);
    None
}

/// 431 for requests whose headers add up to more than [`MAX_HEADER_BYTES`]. (Beyond hyper's own
/// read buffer, ~400 KB, hyper refuses the request before it gets here.)
fn oversized_headers(headers: &HeaderMap) -> Option<ApiError> {
    let total: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    (total > MAX_HEADER_BYTES).then(|| {
        ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("request headers add up to {total} bytes; the limit is {MAX_HEADER_BYTES}"),
        )
    })
}

/// Every error body in the project has one shape: turn the plain-text rejections of axum's
/// extractors (a malformed path parameter, a body over an extractor's own limit, …) into it.
async fn json_errors(res: Response) -> Response {
    let status = res.status();
    let plain = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|ct| ct.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return res;
    }
    let retry_after = res.headers().get(header::RETRY_AFTER).cloned();
    let body = axum::body::to_bytes(res.into_body(), 4096)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    let message = match text.trim() {
        "" => status.canonical_reason().unwrap_or("error").to_string(),
        t => t.to_string(),
    };
    let mut res = ApiError::new(status, message).into_response();
    if let Some(v) = retry_after {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

/// NextChat's `/api/config`, key for key, so NextChat clients can read it.
async fn config(
    State(s): State<Arc<Settings>>,
    State(gate): State<auth::Gate>,
) -> impl IntoResponse {
    axum::Json(json!({
        "needCode": gate.policy().needs_code(),
        "hideUserApiKey": s.hide_user_api_key,
        "hideBalanceQuery": !s.enable_balance_query,
        "disableFastLink": s.disable_fast_link,
        "customModels": s.custom_models,
        "defaultModel": s.default_model,
        "visionModels": s.vision_models,
    }))
}

async fn metrics(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    match state.settings().metrics {
        MetricsAccess::Off => return Err(ApiError::not_found("metrics are off")),
        MetricsAccess::Open => {}
        MetricsAccess::Code => {
            auth::admit(
                state.gate(),
                &headers,
                peer.ip(),
                auth::CredentialStyle::Gateway,
            )
            .await?;
        }
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        state.metrics().render(state.store()),
    )
        .into_response())
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}
