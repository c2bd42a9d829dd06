//! The spend ledger: every upstream call paid with the server's key, by workspace, with its tokens
//! and OpenRouter's cost. Budgets read their period's sum from here, so several instances on one
//! PostgreSQL database enforce one shared budget.

use crate::db::{Sql, push_placeholder_rows};
use crate::{Store, StoreError};

/// One paid upstream call.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Spend {
    pub workspace: String,
    /// `chat`, `title`, `proxy` or `gateway`.
    pub entry: String,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub cached_tokens: Option<i64>,
    /// USD.
    pub cost: Option<f64>,
    /// ms since the Unix epoch.
    pub at: i64,
}

/// How a usage report groups the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendGroup {
    /// By UTC day; the key is the day's number since the Unix epoch.
    Day,
    Model,
    Workspace,
}

/// One group of a usage report.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendRow {
    /// The day number, the model or the workspace, as text.
    pub key: String,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost: f64,
}

/// Rows per INSERT when recording a batch (ten placeholders each, well under SQLite's limit).
const SPENDS_PER_INSERT: usize = 64;

impl Store {
    pub async fn record_spend(&self, spend: &Spend) -> Result<(), StoreError> {
        self.record_spends(std::slice::from_ref(spend)).await
    }

    /// Records several calls, atomically: one INSERT, or one transaction when the batch needs
    /// several (the ledger is written in batches: a row per relayed request, one statement each,
    /// would cost the relay more than the relaying).
    pub async fn record_spends(&self, spends: &[Spend]) -> Result<(), StoreError> {
        let postgres = self.backend() == crate::Backend::Postgres;
        let mut statements = spends
            .chunks(SPENDS_PER_INSERT)
            .map(|chunk| spends_insert(chunk, postgres));
        match (statements.next(), statements.len()) {
            (None, _) => Ok(()),
            // One statement is atomic alone: no transaction's round trips around it.
            (Some(only), 0) => {
                self.db.execute(only).await?;
                Ok(())
            }
            (Some(first), _) => {
                let mut tx = self.db.begin("record spend").await?;
                tx.execute(first).await?;
                for statement in statements {
                    tx.execute(statement).await?;
                }
                tx.commit("record spend").await
            }
        }
    }

    /// USD `workspace` spent from `since` (ms) on.
    pub async fn spent_since(&self, workspace: &str, since: i64) -> Result<f64, StoreError> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "sum spend",
                    "SELECT CAST(COALESCE(SUM(cost), 0) AS DOUBLE PRECISION) AS spent FROM spend
                     WHERE workspace = $1 AND at >= $2",
                )
                .text(workspace)
                .int(since),
            )
            .await?;
        match row {
            Some(row) => row.get("spent"),
            None => Ok(0.0),
        }
    }

    /// The ledger from `from` to `to` (ms, end exclusive), grouped; `workspace` `None` covers them
    /// all. Ordered by key.
    pub async fn spend_report(
        &self,
        workspace: Option<&str>,
        from: i64,
        to: i64,
        group: SpendGroup,
    ) -> Result<Vec<SpendRow>, StoreError> {
        let key = match group {
            SpendGroup::Day => "CAST(at / 86400000 AS TEXT)",
            SpendGroup::Model => "COALESCE(model, '')",
            SpendGroup::Workspace => "workspace",
        };
        let sql = format!(
            "SELECT {key} AS key, COUNT(*) AS requests,
                    CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens,
                    CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens,
                    CAST(COALESCE(SUM(cost), 0) AS DOUBLE PRECISION) AS cost
             FROM spend
             WHERE at >= $1 AND at < $2 AND ($3 = '' OR workspace = $3)
             GROUP BY {key} ORDER BY {key}"
        );
        let rows = self
            .db
            .fetch_all(
                Sql::built("report spend", sql)
                    .int(from)
                    .int(to)
                    .text(workspace.unwrap_or("")),
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SpendRow {
                    key: row.get("key")?,
                    requests: row.get("requests")?,
                    prompt_tokens: row.get("prompt_tokens")?,
                    completion_tokens: row.get("completion_tokens")?,
                    cost: row.get("cost")?,
                })
            })
            .collect()
    }
}

/// One INSERT of `spends`' rows.
fn spends_insert(spends: &[Spend], postgres: bool) -> Sql {
    let mut sql = String::from(
        "INSERT INTO spend (workspace, entry, model, provider, prompt_tokens,
            completion_tokens, reasoning_tokens, cached_tokens, cost, at) VALUES ",
    );
    push_placeholder_rows(&mut sql, spends.len(), 10, postgres);
    let mut statement = Sql::built("record spend", sql);
    for spend in spends {
        statement = statement
            .text(&spend.workspace)
            .text(&spend.entry)
            .opt_text(spend.model.as_deref())
            .opt_text(spend.provider.as_deref())
            .opt_int(spend.prompt_tokens)
            .opt_int(spend.completion_tokens)
            .opt_int(spend.reasoning_tokens)
            .opt_int(spend.cached_tokens)
            .opt_real(spend.cost)
            .int(spend.at);
    }
    statement
}
