//! Share links: `POST /api/chats/{id}/share` makes (or refreshes) a read-only copy of a chat and
//! answers its link, `DELETE /api/chats/{id}/share` revokes it, and `GET /s/{token}` shows the copy
//! to anyone who has the link — no access code, no sidebar, nothing else reachable from it, never
//! indexed. `SWITCHBOARD_SHARING=off` turns all three off.
//!
//! The token is 130 random bits; it is the only key to the copy, and the copy holds nothing but the
//! chat's title and finished messages.

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use switchboard_core::Settings;
use switchboard_store::{MessageStatus, Store};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::ui::{CSP, Chrome};

/// Lower-case base32, 26 symbols: 130 random bits.
const TOKEN_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
const TOKEN_LEN: usize = 26;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/chats/{id}/share", post(share).delete(unshare))
        .route("/s/{token}", get(shared_page))
}

fn sharing_off() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "sharing is turned off on this server (SWITCHBOARD_SHARING)",
    )
}

fn new_token() -> String {
    let mut rng = rand::rng();
    (0..TOKEN_LEN)
        .map(|_| TOKEN_ALPHABET[rng.random_range(0..TOKEN_ALPHABET.len())] as char)
        .collect()
}

/// One message of the copy.
#[derive(Serialize, Deserialize)]
struct SharedMessage {
    role: String,
    content: String,
    #[serde(default)]
    reasoning: String,
    #[serde(default)]
    model: Option<String>,
    status: String,
}

async fn share(
    caller: Caller,
    State(settings): State<Arc<Settings>>,
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if !settings.sharing {
        return Err(sharing_off());
    }
    let messages = store.list_messages(&caller.workspace, &id).await?;
    // A reply still streaming is left out: the copy holds what is finished.
    let copy: Vec<SharedMessage> = messages
        .iter()
        .filter(|m| m.status != MessageStatus::Streaming)
        .map(|m| SharedMessage {
            role: m.role.as_str().to_string(),
            content: m.content.clone(),
            reasoning: m.reasoning.clone(),
            model: m.model.clone(),
            status: m.status.as_str().to_string(),
        })
        .collect();
    let copy = serde_json::to_value(copy)
        .map_err(|e| ApiError::internal(format!("copying a chat: {e}")))?;
    let token = store
        .share_chat(&caller.workspace, &id, &new_token(), &copy)
        .await?
        .ok_or_else(|| ApiError::not_found("no such chat"))?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"url": format!("/s/{token}")})),
    )
        .into_response())
}

async fn unshare(
    caller: Caller,
    State(settings): State<Arc<Settings>>,
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    if !settings.sharing {
        return Err(sharing_off());
    }
    store
        .get_chat(&caller.workspace, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such chat"))?;
    store.unshare_chat(&caller.workspace, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

struct MessageLine {
    role: String,
    status: String,
    html: String,
    reasoning: String,
    meta: String,
}

#[derive(Template)]
#[template(path = "shared.html")]
struct SharedPage<'a> {
    c: &'a Chrome,
    title: String,
    messages: Vec<MessageLine>,
}

async fn shared_page(
    State(settings): State<Arc<Settings>>,
    State(store): State<Store>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let missing = || ApiError::not_found("no such shared chat");
    let valid = token.len() == TOKEN_LEN && token.bytes().all(|b| TOKEN_ALPHABET.contains(&b));
    if !settings.sharing || !valid {
        return Err(missing());
    }
    let shared = store.shared_chat(&token).await?.ok_or_else(missing)?;
    let copy: Vec<SharedMessage> = serde_json::from_value(shared.messages).unwrap_or_default();
    let chrome = Chrome::new(&headers);
    // Markdown of a long chat is CPU work: off the async threads.
    let messages = tokio::task::spawn_blocking(move || {
        copy.into_iter()
            .map(|m| MessageLine {
                html: switchboard_chat::rendered::render_remembered(&m.content),
                meta: m.model.unwrap_or_default(),
                role: m.role,
                status: m.status,
                reasoning: m.reasoning,
            })
            .collect::<Vec<_>>()
    })
    .await
    .map_err(|e| ApiError::internal(format!("rendering a shared chat: {e}")))?;
    let title = match shared.title.trim() {
        "" | switchboard_chat::DEFAULT_TITLE => chrome.tr.get("new_chat").to_string(),
        t => t.to_string(),
    };
    let html = SharedPage {
        c: &chrome,
        title,
        messages,
    }
    .render()
    .map_err(|e| ApiError::internal(format!("rendering a page: {e}")))?;
    let mut res = (StatusCode::OK, Html(html)).into_response();
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
    h.insert(
        "x-robots-tag",
        HeaderValue::from_static("noindex, nofollow"),
    );
    Ok(res)
}
