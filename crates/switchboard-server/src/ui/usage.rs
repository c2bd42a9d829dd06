//! `GET /usage`: the Usage page, drawn from the same report as `GET /api/usage` ([`crate::spend`]).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde_json::Value;
use switchboard_core::budget::date_of_day;

use super::Chrome;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::spend::{UsageParams, report};
use crate::state::AppState;

/// Merged beside `/api/usage`, outside the compression layer the other pages are behind.
pub fn routes() -> Router<AppState> {
    Router::new().route("/usage", get(usage_page))
}

/// One bar of the chart: a day, its spend, and where it is drawn.
struct Bar {
    date: String,
    cost: String,
    x: usize,
    y: usize,
    height: usize,
}

#[derive(askama::Template)]
#[template(path = "usage.html")]
struct UsagePage<'a> {
    c: &'a Chrome,
    bars: Vec<Bar>,
    chart_width: usize,
    max_cost: String,
    models: Vec<(String, i64, String)>,
    total: String,
    budget: Option<String>,
    range: String,
    csv: String,
}

const CHART_HEIGHT: usize = 160;
const BAR_WIDTH: usize = 14;

/// `GET /usage`: spend per day as a bar chart drawn here (an SVG, no chart library), spend per
/// model, and the CSV.
pub async fn usage_page(
    State(state): State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let chrome = Chrome::new(&headers);
    let principal = match super::admit_page(state.gate(), &headers, peer, &chrome).await? {
        Ok(p) => p,
        Err(login) => return Ok(login),
    };
    let workspace = principal.workspace();
    let caller = Caller {
        principal,
        workspace,
    };
    let by_day = report(&state, &caller, &UsageParams::default()).await?;
    let by_model = report(
        &state,
        &caller,
        &UsageParams {
            by: Some("model".into()),
            ..UsageParams::default()
        },
    )
    .await?;
    let per_day: std::collections::HashMap<String, f64> = by_day
        .items
        .iter()
        .map(|r| (r.key.clone(), r.cost))
        .collect();
    let max = per_day.values().cloned().fold(0.0_f64, f64::max);
    let bars = (by_day.from..=by_day.to)
        .enumerate()
        .map(|(i, day)| {
            let cost = per_day.get(&day.to_string()).copied().unwrap_or(0.0);
            let height = if max > 0.0 {
                ((cost / max) * CHART_HEIGHT as f64).round() as usize
            } else {
                0
            };
            Bar {
                date: date_of_day(day),
                cost: format!("${}", chrome.tr.decimal(cost, 4)),
                x: i * (BAR_WIDTH + 4),
                y: CHART_HEIGHT - height,
                height,
            }
        })
        .collect::<Vec<_>>();
    let chart_width = bars.len() * (BAR_WIDTH + 4);
    let mut models: Vec<(String, i64, String)> = by_model
        .items
        .iter()
        .map(|r| {
            let name = if r.key.is_empty() {
                "?".to_string()
            } else {
                r.key.clone()
            };
            (
                name,
                r.requests,
                format!("${}", chrome.tr.decimal(r.cost, 4)),
            )
        })
        .collect();
    models.sort_by_key(|m| std::cmp::Reverse(m.1));
    let total = by_day.items.iter().map(|r| r.cost).sum::<f64>();
    let budget = by_day.budget.as_object().map(|b| {
        format!(
            "${:.4} of ${} per {} (resets {})",
            b.get("spent").and_then(Value::as_f64).unwrap_or(0.0),
            b.get("limit").and_then(Value::as_f64).unwrap_or(0.0),
            b.get("period").and_then(Value::as_str).unwrap_or(""),
            b.get("resets_at").and_then(Value::as_str).unwrap_or(""),
        )
    });
    let page = UsagePage {
        c: &chrome,
        bars,
        chart_width,
        max_cost: format!("${}", chrome.tr.decimal(max, 4)),
        models,
        total: format!("${}", chrome.tr.decimal(total, 4)),
        budget,
        range: format!("{} – {}", date_of_day(by_day.from), date_of_day(by_day.to)),
        csv: "/api/usage?by=day&format=csv".into(),
    };
    let html = super::render(&page)?;
    Ok(super::page(StatusCode::OK, html))
}
