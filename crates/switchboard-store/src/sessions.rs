//! Login sessions: which browser session is logged in to which workspace, and until when.
//!
//! The server keeps sessions so that logging out revokes one: a cookie copied before logout finds
//! no row afterwards. Ids are stored as the caller hands them (the server passes a hash of the
//! cookie's id, so the table alone cannot be turned back into cookies). Expired rows are refused
//! by every read and deleted by [`Store::delete_expired_sessions`].

use crate::db::Sql;
use crate::{Store, StoreError};

impl Store {
    /// Records session `id` for `workspace`, good until `expires_at` (ms since the epoch).
    pub async fn create_session(
        &self,
        id: &str,
        workspace: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.db
            .execute(
                Sql::new(
                    "store a login session",
                    "INSERT INTO sessions (id, workspace, created_at, expires_at)
                     VALUES ($1, $2, $3, $4)",
                )
                .text(id)
                .text(workspace)
                .int(now)
                .int(expires_at),
            )
            .await?;
        Ok(())
    }

    /// The workspace of session `id`, when it exists and has not expired at `now`.
    pub async fn session_workspace(
        &self,
        id: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "read a login session",
                    "SELECT workspace FROM sessions WHERE id = $1 AND expires_at > $2",
                )
                .text(id)
                .int(now),
            )
            .await?;
        row.map(|r| r.get("workspace")).transpose()
    }

    /// Moves a live session's expiry to `expires_at`. False when the session is gone (logged out
    /// or expired), which then stays gone.
    pub async fn renew_session(
        &self,
        id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let changed = self
            .db
            .execute(
                Sql::new(
                    "renew a login session",
                    "UPDATE sessions SET expires_at = $3 WHERE id = $1 AND expires_at > $2",
                )
                .text(id)
                .int(now)
                .int(expires_at),
            )
            .await?;
        Ok(changed > 0)
    }

    /// Ends session `id` (logout). False when there was none.
    pub async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        let deleted = self
            .db
            .execute(Sql::new("end a login session", "DELETE FROM sessions WHERE id = $1").text(id))
            .await?;
        Ok(deleted > 0)
    }

    /// Deletes the sessions that expired before `now`; returns how many.
    pub async fn delete_expired_sessions(&self, now: i64) -> Result<u64, StoreError> {
        self.db
            .execute(
                Sql::new(
                    "delete expired login sessions",
                    "DELETE FROM sessions WHERE expires_at <= $1",
                )
                .int(now),
            )
            .await
    }
}
