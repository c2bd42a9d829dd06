//! Storage quotas per workspace, checked before a write that adds data, so a refused write stores
//! nothing: how many chats a workspace holds (`SWITCHBOARD_WORKSPACE_MAX_CHATS`) and how many bytes
//! (`SWITCHBOARD_WORKSPACE_QUOTA_BYTES`; `SWITCHBOARD_UNVERIFIED_QUOTA_BYTES` for a workspace known
//! only by an own key that has not yet paid for a reply, so made-up keys cannot fill the disk).
//! Over a limit: 507 `quota_exceeded`, naming it.
//!
//! The stored figure is measured by the store when asked (see `switchboard_store::quota`). A
//! reply is not checked as it streams: it is bounded by `SWITCHBOARD_MAX_REPLY_BYTES`, so a
//! workspace can pass its quota by at most one reply, after which its next message is refused.
//! Imports run one at a time per workspace (on this instance), so two cannot both pass the
//! check and then both write.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use switchboard_core::Settings;
use switchboard_core::access::Principal;
use switchboard_store::Store;

use crate::error::ApiError;

/// What a write would add to a workspace.
#[derive(Debug, Clone, Copy, Default)]
pub struct Growth {
    pub chats: u64,
    pub bytes: u64,
}

/// 507 unless `workspace` can take `growth` within its quotas.
pub async fn check(
    settings: &Settings,
    store: &Store,
    principal: &Principal,
    workspace: &str,
    growth: Growth,
) -> Result<(), ApiError> {
    let usage = store.workspace_usage(workspace).await?;
    if growth.chats > 0 && usage.chats + growth.chats > settings.workspace_max_chats {
        return Err(ApiError::quota_exceeded(format!(
            "this workspace holds {} chats; the most it may hold is {} \
             (SWITCHBOARD_WORKSPACE_MAX_CHATS): delete some first",
            usage.chats, settings.workspace_max_chats
        )));
    }
    let unverified = matches!(principal, Principal::OwnKey { .. })
        && !store.workspace_verified(workspace).await?;
    let (limit, var) = if unverified {
        (
            settings.unverified_quota_bytes,
            "SWITCHBOARD_UNVERIFIED_QUOTA_BYTES, the quota of an own key that has not yet paid \
             for a reply",
        )
    } else {
        (
            settings.workspace_quota_bytes,
            "SWITCHBOARD_WORKSPACE_QUOTA_BYTES",
        )
    };
    if usage.bytes.saturating_add(growth.bytes) > limit {
        return Err(ApiError::quota_exceeded(format!(
            "this workspace stores {} bytes and this would add {}; its quota is {limit} bytes \
             ({var})",
            usage.bytes, growth.bytes
        )));
    }
    Ok(())
}

/// The workspaces importing right now on this instance.
#[derive(Debug, Default, Clone)]
pub struct Imports(Arc<Mutex<HashSet<String>>>);

/// Held while an import runs; lets the workspace import again when dropped.
#[derive(Debug)]
pub struct ImportSlot {
    imports: Imports,
    workspace: String,
}

impl Imports {
    /// The workspace's import slot, or 409 when another import into it is running.
    pub fn begin(&self, workspace: &str) -> Result<ImportSlot, ApiError> {
        let mut running = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !running.insert(workspace.to_string()) {
            return Err(ApiError {
                code: Some("import_running"),
                ..ApiError::new(
                    axum::http::StatusCode::CONFLICT,
                    "an import into this workspace is already running; one at a time",
                )
            });
        }
        Ok(ImportSlot {
            imports: self.clone(),
            workspace: workspace.to_string(),
        })
    }
}

impl Drop for ImportSlot {
    fn drop(&mut self) {
        let mut running = self.imports.0.lock().unwrap_or_else(|e| e.into_inner());
        running.remove(&self.workspace);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_import_at_a_time_per_workspace() {
        let imports = Imports::default();
        let a = imports.begin("a").unwrap();
        assert_eq!(imports.begin("a").unwrap_err().status, 409);
        let b = imports.begin("b").unwrap();
        drop(a);
        let _again = imports.begin("a").unwrap();
        drop(b);
    }
}
