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

use crate::chats::Caller;
use crate::error::ApiError;
use crate::state::AppState;

const DAY_MS: i64 = 86_400_000;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/usage", get(usage))
}

fn now_ms() -> i64 {
    switchboard_chat::now_ms()
}

/// Per-workspace request rate limits (`SWITCHBOARD_RATE_LIMIT`), GCRA by `governor`, per instance.
pub struct RateLimiter {
    limiter: governor::DefaultKeyedRateLimiter<String>,
    clock: governor::clock::DefaultClock,
}

impl RateLimiter {
    pub fn new(limit: switchboard_core::budget::RateLimit) -> RateLimiter {
        let burst = std::num::NonZeroU32::new(limit.requests).unwrap_or(std::num::NonZeroU32::MIN);
        let quota = governor::Quota::with_period(limit.per / limit.requests.max(1))
            .unwrap_or_else(|| governor::Quota::per_second(burst))
            .allow_burst(burst);
        RateLimiter {
            limiter: governor::RateLimiter::keyed(quota),
            clock: governor::clock::DefaultClock::default(),
        }
    }

    /// `Err(wait)` when `workspace` must wait before its next request.
    fn check(&self, workspace: &str) -> Result<(), std::time::Duration> {
        use governor::clock::Clock;
        self.limiter
            .check_key(&workspace.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
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
    check_budget_at(state, principal, now_ms()).await
}

async fn check_budget_at(
    state: &AppState,
    principal: &Principal,
    now: i64,
) -> Result<(), ApiError> {
    let Some(budget) = state.settings().budget else {
        return Ok(());
    };
    if principal.has_own_key() {
        return Ok(());
    }
    let spent = state
        .store()
        .spent_since(&principal.workspace(), budget.period_start(now))
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

#[derive(Deserialize)]
struct UsageParams {
    by: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/usage?by=day|model&from=YYYY-MM-DD&to=YYYY-MM-DD` (both days included; the last 30
/// days by default) for the caller's workspace.
async fn usage(
    caller: Caller,
    State(state): State<AppState>,
    params: Result<Query<UsageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let group = match params.by.as_deref() {
        None | Some("day") => SpendGroup::Day,
        Some("model") => SpendGroup::Model,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "by must be day or model, not `{other}`"
            )));
        }
    };
    let today = now_ms().div_euclid(DAY_MS);
    let day = |name: &str, raw: Option<&str>, default: i64| match raw {
        None => Ok(default),
        Some(raw) => day_of_date(raw)
            .ok_or_else(|| ApiError::bad_request(format!("{name} must be a date, YYYY-MM-DD"))),
    };
    let to = day("to", params.to.as_deref(), today)?;
    let from = day("from", params.from.as_deref(), to - 29)?;
    if from > to {
        return Err(ApiError::bad_request("from is after to"));
    }
    let rows = state
        .store()
        .spend_report(
            Some(&caller.workspace),
            from * DAY_MS,
            (to + 1) * DAY_MS,
            group,
        )
        .await?;
    let mut total = json!({"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0});
    let items: Vec<Value> = rows
        .into_iter()
        .map(|r| {
            total["requests"] = json!(total["requests"].as_i64().unwrap_or(0) + r.requests);
            total["prompt_tokens"] =
                json!(total["prompt_tokens"].as_i64().unwrap_or(0) + r.prompt_tokens);
            total["completion_tokens"] =
                json!(total["completion_tokens"].as_i64().unwrap_or(0) + r.completion_tokens);
            total["cost"] = json!(total["cost"].as_f64().unwrap_or(0.0) + r.cost);
            let key = match group {
                SpendGroup::Day => r.key.parse::<i64>().map(date_of_day).unwrap_or(r.key),
                _ => r.key,
            };
            json!({
                "key": key,
                "requests": r.requests,
                "prompt_tokens": r.prompt_tokens,
                "completion_tokens": r.completion_tokens,
                "cost": r.cost,
            })
        })
        .collect();
    let budget = match state.settings().budget {
        Some(b) if !caller.principal.has_own_key() => {
            let now = now_ms();
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
    Ok(Json(json!({"items": items, "total": total, "budget": budget})).into_response())
}
