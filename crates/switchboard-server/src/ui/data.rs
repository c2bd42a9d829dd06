//! Where pages get their chats: the chat API's own functions, so a page shows exactly what
//! `GET /api/chats/{id}` would return (including a reply streaming right now, with the
//! `last_event_id` to resume from).

use switchboard_core::access::Principal;
use switchboard_store::ChatPage;

use super::view::{ChatJson, ChatLine};
use crate::auth::Caller;
use crate::chats::api::chat_view;
use crate::error::ApiError;
use crate::state::AppState;
use switchboard_chat::DEFAULT_TITLE;

/// How many chats the sidebar shows at first; more load as it scrolls (`GET /api/chats`).
const SIDEBAR_CHATS: u32 = 60;

fn caller(principal: Principal) -> Caller {
    let workspace = principal.workspace();
    Caller {
        principal,
        workspace,
    }
}

/// The id of the workspace's most recently updated chat, if it has one.
pub async fn latest_chat(
    state: &AppState,
    principal: Principal,
) -> Result<Option<String>, ApiError> {
    let ws = principal.workspace();
    let latest = state
        .store()
        .list_chats(
            &ws,
            ChatPage {
                limit: 1,
                before: None,
            },
        )
        .await?;
    Ok(latest.into_iter().next().map(|c| c.id))
}

/// A chat with its last page of messages, as `GET /api/chats/{id}` returns it.
pub async fn chat(
    state: &AppState,
    principal: Principal,
    id: &str,
) -> Result<Option<ChatJson>, ApiError> {
    let caller = caller(principal);
    let Some(view) = chat_view(state.chats(), &caller, id).await? else {
        return Ok(None);
    };
    let json = serde_json::to_value(&view)
        .and_then(serde_json::from_value)
        .map_err(|e| ApiError::internal(format!("chat view: {e}")))?;
    Ok(Some(json))
}

/// The first page of the sidebar: the pinned chats, the most recent others, and the cursor
/// of the next page (as `GET /api/chats` gives it).
pub struct Sidebar {
    pub pinned: Vec<ChatLine>,
    pub chats: Vec<ChatLine>,
    pub next: Option<String>,
}

pub async fn chat_list(state: &AppState, principal: &Principal) -> Result<Sidebar, ApiError> {
    let ws = principal.workspace();
    let chats = state
        .store()
        .list_chats(
            &ws,
            ChatPage {
                limit: SIDEBAR_CHATS,
                before: None,
            },
        )
        .await?;
    let next = (chats.len() == SIDEBAR_CHATS as usize)
        .then(|| chats.last().map(|c| format!("{}:{}", c.updated_at, c.id)))
        .flatten();
    let pinned = state
        .store()
        .pinned_chats(&ws, crate::chats::api::MAX_PINNED)
        .await?;
    let line = |c: switchboard_store::ChatSummary| ChatLine {
        id: c.id,
        title: if c.title == DEFAULT_TITLE {
            String::new()
        } else {
            c.title
        },
        updated_at: c.updated_at,
        model: c.model,
        pinned: c.pinned,
    };
    Ok(Sidebar {
        pinned: pinned.into_iter().map(line).collect(),
        chats: chats.into_iter().map(line).collect(),
        next,
    })
}
