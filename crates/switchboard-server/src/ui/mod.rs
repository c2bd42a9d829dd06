//! The web UI: server-rendered pages (askama templates in `templates/`), one hand-written ES module
//! and one stylesheet (`assets/`), all embedded in the binary.
//!
//! Routes: `/` (opens the latest chat, or a new one), `/chats/{id}` (a chat; `/chats/new` is a
//! chat not stored yet, which app.js creates with its first message), `/assets/{name}`. app.js
//! then opens other chats in place (history API) from the chat API's JSON.
//! A page is rendered from the same JSON the chat API returns, with the last 50 messages in the
//! HTML; `app.js` then subscribes to the chat's event stream from the page's `last_event_id`, so a
//! reply that is streaming when the page loads continues where it is.
//!
//! Invariant: *pages run no script but `app.js`*. Every HTML response carries a strict
//! Content-Security-Policy; templates have no inline script or style attributes, and data for the
//! script travels in `<script type="application/json">` blocks (never executed). Message HTML is
//! rendered and sanitized by [`crate::markdown`].
//!
//! When the server needs an access code and the browser has no valid login cookie, pages render a
//! login form instead (it POSTs `/api/login`, then reloads).

pub mod assets;
mod data;
pub mod i18n;
pub mod usage;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::json;

use switchboard_core::Settings;
use switchboard_core::access::Principal;

use crate::auth::{CredentialStyle, Gate, admit};
use crate::error::ApiError;
use crate::state::AppState;
use i18n::Catalog;
use switchboard_chat::DEFAULT_TITLE;
use view::{ChatJson, ChatLine, ColumnHead, MessageCard, script_json};

/// The Content-Security-Policy of every page.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'; form-action 'self'";

/// `/chats/new`: a chat not stored yet (chat ids never take this form).
const NEW_CHAT: &str = "new";

/// The cookie the settings dialog sets for the theme, so the first paint has the right colours.
pub const THEME_COOKIE: &str = "sb_theme";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/chats/{id}", get(chat_page))
        .route("/assets/{name}", get(assets::serve))
        .route("/manifest.webmanifest", get(manifest))
        .route("/sw.js", get(service_worker))
}

/// What every page shares: language, theme, asset URLs.
pub struct Chrome {
    pub tr: &'static Catalog,
    pub theme: &'static str,
    pub css: String,
    pub js: String,
    pub icons: String,
    pub favicon: String,
}

impl Chrome {
    pub fn new(headers: &HeaderMap) -> Chrome {
        let theme = match i18n::read_cookie(headers, THEME_COOKIE) {
            Some("light") => "light",
            Some("dark") => "dark",
            _ => "system",
        };
        Chrome {
            tr: i18n::negotiate(headers),
            theme,
            css: assets::url("app.css"),
            js: assets::url("app.js"),
            icons: assets::url("icons.svg"),
            favicon: assets::url("favicon.svg"),
        }
    }

    /// The JSON every page gives the script: strings, config, languages.
    fn data(&self, gate: &Gate) -> serde_json::Value {
        let s = gate.settings();
        json!({
            "lang": self.tr.tag,
            "i18n": self.tr.json(),
            "icons": self.icons,
            "defaultTitle": DEFAULT_TITLE,
            "languages": i18n::all().iter().map(|c| json!({"tag": c.tag, "name": c.name})).collect::<Vec<_>>(),
            "config": {
                "needCode": gate.policy().needs_code(),
                "hideUserApiKey": s.hide_user_api_key,
                "hideBalanceQuery": !s.enable_balance_query,
            },
        })
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    c: &'a Chrome,
    data: String,
}

#[derive(Template)]
#[template(path = "chat.html")]
struct ChatPage<'a> {
    c: &'a Chrome,
    chat: &'a ChatJson,
    messages: Vec<MessageCard>,
    /// A compare that ends the chat: its replies side by side, in seq order.
    compare: Vec<(ColumnHead, MessageCard)>,
    chats: &'a [ChatLine],
    data: String,
}

/// An HTML response with the page security headers.
pub(crate) fn page(status: StatusCode, html: String) -> Response {
    let mut res = (status, Html(html)).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

pub(crate) fn render(t: &impl Template) -> Result<String, ApiError> {
    t.render()
        .map_err(|e| ApiError::internal(format!("rendering a page: {e}")))
}

/// Admit the request, or answer with the login page when a code is needed.
pub(crate) async fn admit_page(
    gate: &Gate,
    headers: &HeaderMap,
    peer: SocketAddr,
    chrome: &Chrome,
) -> Result<Result<Principal, Response>, ApiError> {
    match admit(gate, headers, peer.ip(), CredentialStyle::NextChat).await {
        Ok(p) => Ok(Ok(p)),
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            let html = render(&LoginPage {
                c: chrome,
                data: script_json(&chrome.data(gate)),
            })?;
            Ok(Err(page(StatusCode::UNAUTHORIZED, html)))
        }
        Err(e) => Err(e),
    }
}

/// `GET /manifest.webmanifest`: what makes the web UI installable as an app.
async fn manifest(State(settings): State<Arc<Settings>>) -> Response {
    let name = settings.app_name.clone();
    let body = json!({
        "name": name,
        "short_name": name,
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": "#3b5bdb",
        "icons": [{"src": assets::url("favicon.svg"), "sizes": "any", "type": "image/svg+xml", "purpose": "any"}],
    });
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/manifest+json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body.to_string(),
    )
        .into_response()
}

/// `GET /sw.js`: the service worker, served from the root so its scope is the whole app. It
/// caches the versioned assets only, never a page or the API.
async fn service_worker() -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        include_str!("../../assets/sw.js"),
    )
        .into_response()
}

/// `GET /`: the latest chat, or a new one when there is none.
async fn home(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let chrome = Chrome::new(&headers);
    let principal = match admit_page(state.gate(), &headers, peer, &chrome).await? {
        Ok(p) => p,
        Err(login) => return Ok(login),
    };
    // Without a chat yet, a new one that is stored with its first message.
    let id = data::latest_chat(&state, principal)
        .await?
        .unwrap_or_else(|| NEW_CHAT.to_string());
    Ok(Redirect::to(&format!("/chats/{id}")).into_response())
}

/// `GET /chats/{id}`.
async fn chat_page(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let chrome = Chrome::new(&headers);
    let principal = match admit_page(state.gate(), &headers, peer, &chrome).await? {
        Ok(p) => p,
        Err(login) => return Ok(login),
    };
    let sidebar = data::chat_list(&state, &principal).await?;
    let found = if id == NEW_CHAT {
        // Nothing is stored until the first message: app.js creates the chat with it.
        Some(ChatJson::default())
    } else {
        data::chat(&state, principal, &id).await?
    };
    let Some(mut chat) = found else {
        // Another device deleted it, or it belongs to another workspace: go to the latest chat.
        return Ok(Redirect::to("/").into_response());
    };
    // The store's placeholder title shows as "New chat" in the page's language.
    if chat.title == DEFAULT_TITLE {
        chat.title.clear();
    }
    // The server draws the plain list (pinned first); app.js groups it by day and loads more.
    let chats: Vec<ChatLine> = sidebar
        .pinned
        .iter()
        .chain(sidebar.chats.iter().filter(|c| !c.pinned))
        .cloned()
        .collect();
    let mut messages: Vec<MessageCard> = chat
        .messages
        .iter()
        .map(|m| MessageCard::new(m, chrome.tr))
        .collect();
    // The compare's columns: the path's last reply and the other replies of its turn.
    let mut compare = Vec::new();
    if !chat.alternatives.is_empty()
        && let (Some(last), Some(card)) = (chat.messages.last(), messages.pop())
    {
        let mut columns: Vec<(ColumnHead, MessageCard, i64)> =
            vec![(ColumnHead::new(last, true, chrome.tr), card, last.seq)];
        for m in &chat.alternatives {
            columns.push((
                ColumnHead::new(m, false, chrome.tr),
                MessageCard::new(m, chrome.tr),
                m.seq,
            ));
        }
        columns.sort_by_key(|(_, _, seq)| *seq);
        compare = columns.into_iter().map(|(h, m, _)| (h, m)).collect();
    }
    let mut data = chrome.data(state.gate());
    data["chat"] = serde_json::to_value(&chat).unwrap_or_default();
    data["sidebar"] = json!({
        "pinned": sidebar.pinned,
        "chats": sidebar.chats,
        "next": sidebar.next,
    });
    let html = render(&ChatPage {
        c: &chrome,
        chat: &chat,
        messages,
        compare,
        chats: &chats,
        data: script_json(&data),
    })?;
    Ok(page(StatusCode::OK, html))
}
