//! Conversations on the server: the chat API, detached generations, and the resumable event
//! stream browsers follow.
//!
//! The path of one chat message: [`api::post_message`] checks the model and stores the user's
//! message *before* anything is sent upstream, creates the assistant message as `streaming`, and
//! hands a [`generate::Generation`] to a task of its own — so the reply keeps streaming into the
//! database when the browser goes away. The generation feeds the chat's [`hub::ChatHub`], which
//! numbers every change; [`events`] serves those numbered events to any number of browsers, from
//! memory or, for older ones, from the database.

pub mod api;
pub mod context;
pub mod engine;
pub mod events;
pub mod generate;
pub mod hub;
pub mod import;
pub mod title;
pub mod view;

use std::net::SocketAddr;

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::routing::{delete, get, post};
use switchboard_core::access::Principal;

use crate::auth::{CredentialStyle, admit};
use crate::error::ApiError;
use crate::state::AppState;

/// A stored message for unit tests: `content` in chat `c`, every optional field empty.
#[cfg(test)]
pub(crate) fn test_message(
    id: &str,
    role: switchboard_store::Role,
    status: switchboard_store::MessageStatus,
    content: &str,
) -> switchboard_store::Message {
    switchboard_store::Message {
        id: id.into(),
        chat_id: "c".into(),
        seq: 0,
        role,
        content: content.into(),
        reasoning: String::new(),
        reasoning_details: None,
        tool_calls: None,
        annotations: None,
        attachments: None,
        model: None,
        provider: None,
        generation_id: None,
        status,
        error_code: None,
        error_message: None,
        usage: Default::default(),
        finish_reason: None,
        created_at: 0,
        first_token_at: None,
        finished_at: None,
    }
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/chats", post(api::create_chat).get(api::list_chats))
        .route(
            "/api/chats/{id}",
            get(api::get_chat)
                .patch(api::patch_chat)
                .delete(api::delete_chat),
        )
        .route(
            "/api/chats/{id}/messages",
            get(api::list_messages).post(api::post_message),
        )
        .route(
            "/api/chats/{id}/messages/{message_id}",
            delete(api::delete_message),
        )
        .route(
            "/api/chats/{id}/messages/{message_id}/regenerate",
            post(api::regenerate),
        )
        .route(
            "/api/chats/{id}/messages/{message_id}/edit",
            post(api::edit_message),
        )
        .route("/api/chats/{id}/stop", post(api::stop))
        .route("/api/chats/{id}/fork", post(api::fork))
        .route("/api/chats/{id}/events", get(events::events))
        .route("/api/search", get(api::search))
        .route("/api/import/nextchat", post(import::import_nextchat))
}

/// Who is calling the chat API, and which workspace their chats live in.
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
        let principal = admit(state, &parts.headers, ip, CredentialStyle::NextChat)?;
        let workspace = principal.workspace();
        Ok(Caller {
            principal,
            workspace,
        })
    }
}
