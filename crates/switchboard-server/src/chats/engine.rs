//! The chat engine's shared state: one [`ChatHub`] per chat that has been opened or is generating.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use switchboard_store::StoreError;

use super::generate::new_events;
use super::hub::ChatHub;
use crate::state::AppState;

#[derive(Default)]
pub struct ChatEngine {
    hubs: Mutex<HashMap<String, Arc<ChatHub>>>,
}

impl ChatEngine {
    /// The chat's hub, created on first use with the seq counter where the database left it.
    pub async fn hub(&self, state: &AppState, chat_id: &str) -> Result<Arc<ChatHub>, StoreError> {
        if let Some(hub) = self.lock().get(chat_id) {
            return Ok(hub.clone());
        }
        let last = state.store().max_event_seq(chat_id).await?;
        let mut hubs = self.lock();
        // Another request may have created it meanwhile; theirs wins so seqs stay unique.
        Ok(hubs
            .entry(chat_id.to_string())
            .or_insert_with(|| Arc::new(ChatHub::new(last)))
            .clone())
    }

    /// Forget a deleted chat's hub.
    pub fn remove(&self, chat_id: &str) {
        self.lock().remove(chat_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<ChatHub>>> {
        self.hubs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Emit an event that belongs to no generation and write it at once.
pub async fn emit_stored(
    state: &AppState,
    hub: &Arc<ChatHub>,
    chat_id: &str,
    kind: &'static str,
    message_id: &str,
    data: String,
) {
    let event = hub.emit(kind, message_id, |_| data);
    let events = [event];
    match state
        .store()
        .append_chat_events(chat_id, message_id, &new_events(&events))
        .await
    {
        Ok(()) => hub.persisted(&events),
        Err(e) => tracing::warn!(error = %e, kind, "could not store a chat event"),
    }
}
