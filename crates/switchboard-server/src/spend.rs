//! Spend control for teams: the budget check every key-spending entry point makes before it calls
//! upstream, and `GET /api/usage`, the caller's workspace's spend from the ledger.
//!
//! Only workspaces that spend the server's key are limited and counted; a user's own key is theirs.
//! The ledger is in the database, so instances sharing one PostgreSQL share one budget.

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_core::access::Principal;
use switchboard_core::budget::{date_of_day, day_of_date};
use switchboard_store::SpendGroup;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

const DAY_MS: i64 = 86_400_000;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/usage", get(usage))
}

/// The limits every entry point that spends the server's key checks before it calls upstream:
/// 429 with `Retry-After` over the rate limit, 402 `budget_exceeded` over the budget. A reply
/// already streaming is not affected: it was admitted before. A user's own key is theirs.
pub async fn check_budget(state: &AppState, principal: &Principal) -> Result<(), ApiError> {
    if principal.has_own_key() {
        return Ok(());
    }
    if let Some(limiter) = state.rate_limiter()
        && let Err(wait) = limiter.check(&principal.workspace())
    {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "this workspace is over its request rate (SWITCHBOARD_RATE_LIMIT); retry in {} s",
                wait.as_secs().max(1)
            ),
        );
        error.code = Some("rate_limited");
        error.retry_after_secs = Some(wait.as_secs().max(1));
        return Err(error);
    }
    check_budget_at(state, principal, state.budget_clock().now_ms()).await
}

async fn check_budget_at(
    state: &AppState,
    principal: &Principal,
    now: i64,
) -> Result<(), ApiError> {
    let workspace = principal.workspace();
    let Some(budget) = state.settings().budget_for(&workspace) else {
        return Ok(());
    };
    let spent = state
        .store()
        .spent_since(&workspace, budget.period_start(now))
        .await?;
    if spent < budget.limit {
        return Ok(());
    }
    let resets_at = budget.resets_at(now);
    let mut error = ApiError::new(
        StatusCode::PAYMENT_REQUIRED,
        format!(
            "this workspace has spent ${spent:.2} of its ${} per {} budget (SWITCHBOARD_BUDGET); it resets at {}T00:00:00Z",
            budget.limit,
            budget.period,
            date_of_day(resets_at / DAY_MS)
        ),
    );
    error.code = Some("budget_exceeded");
    error.retry_after_secs = Some(((resets_at - now) / 1000).max(1) as u64);
    Err(error)
}

#[derive(Deserialize, Default)]
pub(crate) struct UsageParams {
    pub by: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub format: Option<String>,
    /// `all`: every workspace, grouped by workspace (the admin code only).
    pub workspace: Option<String>,
}

/// One workspace's spend over a range of days, grouped.
pub(crate) struct Report {
    group: SpendGroup,
    /// Day numbers, both included.
    pub from: i64,
    pub to: i64,
    pub items: Vec<switchboard_store::SpendRow>,
    pub budget: Value,
}

impl Report {
    fn key(&self, row: &switchboard_store::SpendRow) -> String {
        match self.group {
            SpendGroup::Day => row
                .key
                .parse::<i64>()
                .map(date_of_day)
                .unwrap_or_else(|_| row.key.clone()),
            // A workspace is named by the first 8 characters of its hash, never by the code.
            SpendGroup::Workspace => match row.key.split_once('-') {
                Some((kind, hash)) => format!("{kind}-{}", &hash[..hash.len().min(8)]),
                None => row.key.clone(),
            },
            SpendGroup::Model => row.key.clone(),
        }
    }

    fn json(&self) -> Value {
        let sum =
            |f: fn(&switchboard_store::SpendRow) -> i64| self.items.iter().map(f).sum::<i64>();
        json!({
            "items": self.items.iter().map(|r| json!({
                "key": self.key(r),
                "requests": r.requests,
                "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens,
                "cost": r.cost,
            })).collect::<Vec<_>>(),
            "total": {
                "requests": sum(|r| r.requests),
                "prompt_tokens": sum(|r| r.prompt_tokens),
                "completion_tokens": sum(|r| r.completion_tokens),
                "cost": self.items.iter().map(|r| r.cost).sum::<f64>(),
            },
            "budget": self.budget,
        })
    }

    fn csv(&self) -> String {
        let mut out = String::from("key,requests,prompt_tokens,completion_tokens,cost\n");
        for r in &self.items {
            let key = self.key(r);
            // A model id never holds a quote, but a field is quoted whenever it could need it.
            let key = if key.contains([',', '"', '\n']) {
                format!("\"{}\"", key.replace('"', "\"\""))
            } else {
                key
            };
            out.push_str(&format!(
                "{key},{},{},{},{}\n",
                r.requests, r.prompt_tokens, r.completion_tokens, r.cost
            ));
        }
        out
    }
}

/// The spend report `params` ask for, as `caller` may see it.
pub(crate) async fn report(
    state: &AppState,
    caller: &Caller,
    params: &UsageParams,
) -> Result<Report, ApiError> {
    let all = match params.workspace.as_deref() {
        None | Some("") => false,
        Some("all") if state.settings().admin_workspace.as_deref() == Some(&caller.workspace) => {
            true
        }
        Some("all") => {
            return Err(ApiError::forbidden(
                "workspace=all is for the admin code (SWITCHBOARD_ADMIN_CODE)",
            ));
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "workspace must be all, not `{other}`"
            )));
        }
    };
    let group = match params.by.as_deref() {
        _ if all => SpendGroup::Workspace,
        None | Some("day") => SpendGroup::Day,
        Some("model") => SpendGroup::Model,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "by must be day or model, not `{other}`"
            )));
        }
    };
    let today = state.budget_clock().now_ms().div_euclid(DAY_MS);
    let day = |name: &str, raw: Option<&str>, default: i64| match raw {
        None | Some("") => Ok(default),
        Some(raw) => day_of_date(raw)
            .ok_or_else(|| ApiError::bad_request(format!("{name} must be a date, YYYY-MM-DD"))),
    };
    let to = day("to", params.to.as_deref(), today)?;
    let from = day("from", params.from.as_deref(), to - 29)?;
    if from > to {
        return Err(ApiError::bad_request("from is after to"));
    }
    let items = state
        .store()
        .spend_report(
            (!all).then_some(caller.workspace.as_str()),
            from * DAY_MS,
            (to + 1) * DAY_MS,
            group,
        )
        .await?;
    let budget = match state.settings().budget_for(&caller.workspace) {
        Some(b) if !caller.principal.has_own_key() && !all => {
            let now = state.budget_clock().now_ms();
            let spent = state
                .store()
                .spent_since(&caller.workspace, b.period_start(now))
                .await?;
            json!({
                "limit": b.limit,
                "period": b.period.to_string(),
                "spent": spent,
                "resets_at": format!("{}T00:00:00Z", date_of_day(b.resets_at(now) / DAY_MS)),
            })
        }
        _ => Value::Null,
    };
    Ok(Report {
        group,
        from,
        to,
        items,
        budget,
    })
}

/// `GET /api/usage?by=day|model&from=YYYY-MM-DD&to=YYYY-MM-DD[&format=csv]` (both days included;
/// the last 30 days by default) for the caller's workspace.
async fn usage(
    caller: Caller,
    State(state): State<AppState>,
    params: Result<Query<UsageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let report = report(&state, &caller, &params).await?;
    match params.format.as_deref() {
        None | Some("json") => Ok(Json(report.json()).into_response()),
        Some("csv") => Ok((
            [
                (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    axum::http::header::CONTENT_DISPOSITION,
                    "attachment; filename=\"switchboard-usage.csv\"",
                ),
            ],
            report.csv(),
        )
            .into_response()),
        Some(other) => Err(ApiError::bad_request(format!(
            "format must be json or csv, not `{other}`"
        ))),
    }
}
