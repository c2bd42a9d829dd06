//! The chat API over HTTP: handlers that check a request in full and hand it to the chat engine
//! (`switchboard_chat`), and the resumable event stream browsers follow.
//!
//! The path of one chat message: [`api::post_message`] validates the body and plans the reply
//! (model, provider, credential, endpoint) before anything is written; the engine then stores the
//! turn and generates the reply in a task of its own, so it keeps streaming into the database
//! when the browser goes away. [`events`] serves the chat's stored events to any number of
//! browsers, on any instance.

pub mod api;
pub mod events;
pub mod files;
pub mod import;

use axum::Router;
use axum::routing::{delete, get, post};

use crate::state::AppState;

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
        .route("/api/chats/{id}/files/{file_id}", get(files::get_file))
        .route("/api/chats/{id}/tree", get(api::tree))
        .route("/api/chats/{id}/stop", post(api::stop))
        .route(
            "/api/chats/{id}/messages/{message_id}/stop",
            post(api::stop_message),
        )
        .route(
            "/api/chats/{id}/messages/{message_id}/select",
            post(api::select_message),
        )
        .route(
            "/api/chats/{id}/tool-calls/{call_id}",
            post(api::decide_tool_call),
        )
        .route("/api/tools", get(api::list_tools))
        .route("/api/chats/{id}/fork", post(api::fork))
        .route("/api/chats/{id}/events", get(events::events))
        .route("/api/search", get(api::search))
        .route("/api/render", post(api::render_markdown))
        .route("/api/import/nextchat", post(import::import_nextchat))
}
