//! `POST /api/import/nextchat`: a NextChat backup file becomes chats in the caller's workspace
//! (the file is read by `switchboard_chat::import`).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use switchboard_chat::import::parse_nextchat_backup;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::read_body_within;
use crate::quota::Growth;
use crate::state::AppState;

/// Backups hold every chat a browser ever had, so they may be far larger than a chat request
/// (`SWITCHBOARD_IMPORT_MAX_BYTES`). One import runs at a time per workspace; the whole backup is
/// checked against the workspace's quotas before its first chat is written (its size stands for
/// the bytes it adds).
pub async fn import_nextchat(
    caller: Caller,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let _slot = state.imports().begin(&caller.workspace)?;
    let limit = state.settings().import_max_bytes;
    let bytes = read_body_within(&headers, body, limit, "SWITCHBOARD_IMPORT_MAX_BYTES").await?;
    let backup_bytes = bytes.len() as u64;
    // A backup of tens of MB takes a while to parse: not on a thread that serves connections
    // (every stream on it would wait). The raw backup is dropped once parsed.
    let mut chats = tokio::task::spawn_blocking(move || parse_nextchat_backup(&bytes))
        .await
        .map_err(|e| ApiError::internal(format!("reading the backup: {e}")))?
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    for chat in &mut chats {
        if let Some(model) = &chat.settings.model {
            chat.settings.model = Some(catalog_id(&state, model));
        }
    }
    let growth = Growth {
        chats: chats.len() as u64,
        bytes: backup_bytes,
        replies: 0,
    };
    state
        .quotas()
        .check(&caller.principal, &caller.workspace, growth)
        .await?;
    let mut chat_ids = Vec::new();
    for chat in chats {
        let stored = state
            .store()
            .import_chat(
                &caller.workspace,
                &chat.title,
                &chat.settings,
                chat.created_at,
                &chat.messages,
            )
            .await?;
        chat_ids.push(stored.id);
    }
    Ok((
        StatusCode::CREATED,
        Json(json!({"imported": chat_ids.len(), "chat_ids": chat_ids})),
    )
        .into_response())
}

/// NextChat names models as OpenAI does (`gpt-4o`); OpenRouter wants `openai/gpt-4o`. A name without
/// a vendor becomes the catalog id that ends in it, when the catalog has exactly that model.
fn catalog_id(state: &AppState, model: &str) -> String {
    if model.contains('/') || model.starts_with('@') {
        return model.to_owned();
    }
    let table = state.catalog().table();
    table
        .entries()
        .iter()
        .find(|e| e.id.rsplit_once('/').is_some_and(|(_, name)| name == model))
        .map_or_else(|| model.to_owned(), |e| e.id.clone())
}
