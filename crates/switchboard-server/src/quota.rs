//! Storage quotas per workspace, checked before a write that adds data, so a refused write stores
//! nothing: how many chats a workspace holds (`SWITCHBOARD_WORKSPACE_MAX_CHATS`) and how many bytes
//! (`SWITCHBOARD_WORKSPACE_QUOTA_BYTES`; `SWITCHBOARD_UNVERIFIED_QUOTA_BYTES` for a workspace known
//! only by an own key that has not yet paid for a reply, so made-up keys cannot fill the disk).
//! Over a limit: 507 `quota_exceeded`, naming it.
//!
//! The stored figure is measured by the store (see `switchboard_store::quota`), a scan of the
//! whole workspace: measuring it for every message made a long history slow every send. So
//! [`Quotas`] keeps each workspace's last measurement for [`REMEASURE_AFTER`] and adds what it
//! admitted since, each reply it started at its cap (`SWITCHBOARD_MAX_REPLY_BYTES`: a reply is
//! not checked as it streams). A write that does not fit by that upper bound is measured afresh
//! before it is refused, so a refusal is never based on an old figure, and a workspace passes its
//! quota by one reply at most, after which its next write is refused. Other instances' writes
//! are seen when the workspace is measured again, within [`REMEASURE_AFTER`]. Imports run one at a time per workspace (on this instance), so two
//! cannot both pass the check and then both write.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchboard_core::Settings;
use switchboard_core::access::Principal;
use switchboard_store::{Store, WorkspaceUsage};

use crate::error::ApiError;

/// How long a workspace's measurement stands in for a new one.
pub const REMEASURE_AFTER: Duration = Duration::from_secs(10);

/// Workspaces measured at most; past it, measurements older than [`REMEASURE_AFTER`] go.
const MEASURED_WORKSPACES: usize = 4096;

/// What a write would add to a workspace.
#[derive(Debug, Clone, Copy, Default)]
pub struct Growth {
    pub chats: u64,
    pub bytes: u64,
    /// Replies the write starts: not checked now (the next write sees them), but counted at
    /// their cap until the workspace is measured again.
    pub replies: u64,
}

/// The quota check, with each workspace's recent measurement. Cheap to clone.
#[derive(Clone)]
pub struct Quotas {
    settings: Arc<Settings>,
    store: Store,
    measured: Arc<Mutex<HashMap<String, Measured>>>,
    /// Measurements taken (each a scan of a workspace).
    scans: Arc<std::sync::atomic::AtomicU64>,
}

/// A workspace's usage as measured at `at`, plus what was admitted since.
#[derive(Clone, Copy)]
struct Measured {
    usage: WorkspaceUsage,
    at: Instant,
}

impl Quotas {
    pub fn new(settings: Arc<Settings>, store: Store) -> Quotas {
        Quotas {
            settings,
            store,
            measured: Arc::default(),
            scans: Arc::default(),
        }
    }

    /// How many times a workspace was measured (a scan of its data).
    pub fn scans(&self) -> u64 {
        self.scans.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn measured(&self) -> std::sync::MutexGuard<'_, HashMap<String, Measured>> {
        self.measured.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// 507 unless `workspace` can take `growth` within its quotas; the growth is then counted
    /// as stored until the workspace is measured again.
    pub async fn check(
        &self,
        principal: &Principal,
        workspace: &str,
        growth: Growth,
    ) -> Result<(), ApiError> {
        let settings = &self.settings;
        let unverified = matches!(principal, Principal::OwnKey { .. })
            && !self.store.workspace_verified(workspace).await?;
        let (limit, var) = if unverified {
            (
                settings.unverified_quota_bytes,
                "SWITCHBOARD_UNVERIFIED_QUOTA_BYTES, the quota of an own key that has not yet \
                 paid for a reply",
            )
        } else {
            (
                settings.workspace_quota_bytes,
                "SWITCHBOARD_WORKSPACE_QUOTA_BYTES",
            )
        };
        let fits = |usage: &WorkspaceUsage| {
            (growth.chats == 0 || usage.chats + growth.chats <= settings.workspace_max_chats)
                && usage.bytes.saturating_add(growth.bytes) <= limit
        };
        let recent = self
            .measured()
            .get(workspace)
            .filter(|m| m.at.elapsed() < REMEASURE_AFTER)
            .map(|m| m.usage);
        let usage = match recent {
            Some(usage) if fits(&usage) => usage,
            _ => {
                let at = Instant::now();
                let usage = self.store.workspace_usage(workspace).await?;
                self.scans
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.remember(workspace, Measured { usage, at });
                usage
            }
        };
        if growth.chats > 0 && usage.chats + growth.chats > settings.workspace_max_chats {
            return Err(ApiError::quota_exceeded(format!(
                "this workspace holds {} chats; the most it may hold is {} \
                 (SWITCHBOARD_WORKSPACE_MAX_CHATS): delete some first",
                usage.chats, settings.workspace_max_chats
            )));
        }
        if usage.bytes.saturating_add(growth.bytes) > limit {
            return Err(ApiError::quota_exceeded(format!(
                "this workspace stores {} bytes and this would add {}; its quota is {limit} bytes \
                 ({var})",
                usage.bytes, growth.bytes
            )));
        }
        // An upper bound of what this write may store, so that a figure that still fits is safe
        // to go by; one that does not is measured afresh.
        let replies = growth
            .replies
            .saturating_mul(settings.max_reply_bytes as u64);
        if let Some(m) = self.measured().get_mut(workspace) {
            m.usage.chats += growth.chats;
            m.usage.bytes = m
                .usage
                .bytes
                .saturating_add(growth.bytes)
                .saturating_add(replies);
        }
        Ok(())
    }

    fn remember(&self, workspace: &str, measured: Measured) {
        let mut map = self.measured();
        if map.len() >= MEASURED_WORKSPACES && !map.contains_key(workspace) {
            map.retain(|_, m| m.at.elapsed() < REMEASURE_AFTER);
        }
        if map.len() < MEASURED_WORKSPACES || map.contains_key(workspace) {
            map.insert(workspace.to_owned(), measured);
        }
    }
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

    fn settings(vars: &[(&str, &str)]) -> Arc<Settings> {
        let sources = switchboard_core::settings::Sources::from_pairs(vars.iter().copied());
        Arc::new(Settings::load(&sources).unwrap())
    }

    fn growth(chats: u64, bytes: u64, replies: u64) -> Growth {
        Growth {
            chats,
            bytes,
            replies,
        }
    }

    /// A write that fits by the last measurement plus what was admitted since (replies at their
    /// cap) is not a scan of the workspace; one that does not fit is measured before it is
    /// refused, so data deleted meanwhile counts.
    #[tokio::test]
    async fn a_workspace_is_measured_again_only_when_a_write_may_not_fit() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let settings = settings(&[
            ("SWITCHBOARD_WORKSPACE_QUOTA_BYTES", "100000"),
            ("SWITCHBOARD_MAX_REPLY_BYTES", "30000"),
        ]);
        let quotas = Quotas::new(settings, store.clone());
        let me = Principal::Anonymous;
        quotas.check(&me, "w", growth(1, 10, 0)).await.unwrap();
        assert_eq!(quotas.scans(), 1);
        // Each send counts 1,000 bytes and a reply at its cap: 10, 31010, 62010, 93010, 124010.
        for _ in 0..4 {
            quotas.check(&me, "w", growth(0, 1000, 1)).await.unwrap();
        }
        assert_eq!(quotas.scans(), 1, "the writes fit by the last measurement");
        // 124010 + 1000 is past the quota by the bound: measured (nothing was stored), admitted.
        quotas.check(&me, "w", growth(0, 1000, 1)).await.unwrap();
        assert_eq!(
            quotas.scans(),
            2,
            "a write past the bound is measured, not refused"
        );
        // Over the quota by a fresh measurement: refused.
        let err = quotas
            .check(&me, "w", growth(0, 100_001, 0))
            .await
            .unwrap_err();
        assert_eq!(err.status, 507);
        assert_eq!(quotas.scans(), 3);
    }

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
