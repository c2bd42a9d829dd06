//! Spend control: the ledger records what the server's key paid for, `/api/usage` reports it, and a
//! workspace over its budget is refused on every entry point that spends the key.

use serde_json::{Value, json};

use crate::chats::{create_chat, send, settled};
use crate::helpers::spawn_app;

#[tokio::test]
async fn a_workspace_over_its_budget_is_refused_everywhere_with_402() {
    // Less than one mock reply costs: the first reply is allowed, and then the budget is spent.
    let app = spawn_app(&[("SWITCHBOARD_BUDGET", "0.00001/day")]).await;
    let chat = create_chat(&app, None).await;
    // Titled already, so no title request runs beside the reply.
    let res = app
        .http
        .patch(app.at(&format!("/api/chats/{chat}")))
        .json(&json!({"title": "budget"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, _) = send(
        &app,
        &chat,
        json!({"content": "hi", "model": "mock/reasoning"}),
    )
    .await;
    assert_eq!(status, 202);
    let body = settled(&app, &chat).await;
    let cost = body["messages"][1]["usage"]["cost"].as_f64().unwrap();
    assert!(cost > 0.00001, "{body}");

    // The ledger is written in batches: wait for the reply's row.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let usage = loop {
        let (status, usage) = app.get_json("/api/usage?by=model").await;
        assert_eq!(status, 200, "{usage}");
        if usage["total"]["requests"] == 1 {
            break usage;
        }
        assert!(std::time::Instant::now() < deadline, "{usage}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(usage["items"][0]["key"], "mock/reasoning");
    assert_eq!(usage["items"][0]["requests"], 1, "{usage}");
    assert!(usage["total"]["cost"].as_f64().unwrap() >= cost);
    assert_eq!(usage["budget"]["period"], "day");
    assert!(
        usage["budget"]["resets_at"]
            .as_str()
            .unwrap()
            .ends_with("T00:00:00Z")
    );
    let (_, by_day) = app.get_json("/api/usage").await;
    let today = by_day["items"][0]["key"].as_str().unwrap();
    assert_eq!(today.len(), 10, "{by_day}");

    let expect_402 = |res: reqwest::Response, what: &'static str| async move {
        assert_eq!(res.status(), 402, "{what}");
        assert!(res.headers().get("retry-after").is_some(), "{what}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "budget_exceeded", "{what}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("resets at"),
            "{what}: {body}"
        );
    };
    let chat_send = app
        .http
        .post(app.at(&format!("/api/chats/{chat}/messages")))
        .json(&json!({"content": "more", "model": "mock/echo"}))
        .send()
        .await
        .unwrap();
    expect_402(chat_send, "chat").await;
    let proxied = app
        .http
        .post(app.at("/api/openrouter/v1/chat/completions"))
        .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    expect_402(proxied, "proxy").await;
    let gateway = app
        .http
        .post(app.at("/v1/chat/completions"))
        .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    expect_402(gateway, "gateway").await;
    // Nothing reached the upstream after the budget was spent.
    let completions = app
        .mock
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .count();
    assert!(
        completions <= 2,
        "the reply and perhaps its title: {completions}"
    );

    // A user's own key is theirs: not limited.
    let own = app
        .http
        .post(app.at("/api/openrouter/v1/chat/completions"))
        .header("authorization", "Bearer sk-or-my-own")
        .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
}

#[tokio::test]
async fn usage_parameters_are_checked() {
    let app = spawn_app(&[]).await;
    for bad in [
        "/api/usage?by=week",
        "/api/usage?from=2026-13-01",
        "/api/usage?from=2026-12-05&to=2026-12-01",
    ] {
        let (status, body) = app.get_json(bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = app.get_json("/api/usage").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"items": [], "total": {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0}, "budget": null})
    );
}

#[tokio::test]
async fn a_workspace_over_its_rate_limit_gets_429_with_retry_after() {
    let app = spawn_app(&[("SWITCHBOARD_RATE_LIMIT", "3/h")]).await;
    let call = |auth: Option<&'static str>| {
        let mut req = app
            .http
            .post(app.at("/v1/chat/completions"))
            .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]}));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move { req.send().await.unwrap() }
    };
    for _ in 0..3 {
        assert_eq!(call(None).await.status(), 200);
    }
    let refused = call(None).await;
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        wait > 60,
        "the next request is some 20 minutes away: {wait}"
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // A user's own key is not held back by the server's limit.
    assert_eq!(call(Some("Bearer sk-or-my-own")).await.status(), 200);
}

/// A ledger row as the test reads it: workspace, entry, model, completion tokens, cost.
type LedgerRow = (String, String, Option<String>, Option<i64>, Option<f64>);

/// The ledger's rows by entry, once there are at least `n` (it is written in batches).
async fn ledger_rows(app: &crate::helpers::TestApp, n: usize) -> Vec<LedgerRow> {
    use sqlx::Connection;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let mut conn = sqlx::SqliteConnection::connect(&app.database_url)
            .await
            .unwrap();
        let rows: Vec<LedgerRow> = sqlx::query_as(
            "SELECT workspace, entry, model, completion_tokens, cost FROM spend ORDER BY entry",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        if rows.len() >= n {
            return rows;
        }
        assert!(std::time::Instant::now() < deadline, "{rows:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The proxy (streamed and not) and the gateway put what the server's key paid into the ledger,
/// read from the relayed answer's usage without changing a byte of it.
#[tokio::test]
async fn relayed_calls_paid_with_the_server_key_are_in_the_ledger() {
    let app = spawn_app(&[]).await;
    let ask = |path: &'static str, stream: bool, auth: Option<&'static str>| {
        let mut req = app.http.post(app.at(path)).json(&json!({
            "model": "mock/echo", "stream": stream,
            "messages": [{"role": "user", "content": "count me"}],
        }));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.bytes().await.unwrap()
        }
    };
    ask("/api/openrouter/v1/chat/completions", true, None).await;
    ask("/api/openrouter/v1/chat/completions", false, None).await;
    ask("/v1/chat/completions", true, None).await;
    // A user's own key pays for itself: not in the server's ledger.
    ask(
        "/api/openrouter/v1/chat/completions",
        true,
        Some("Bearer sk-or-mine"),
    )
    .await;

    let rows = ledger_rows(&app, 3).await;
    let entries: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(entries, ["gateway", "proxy", "proxy"], "{rows:?}");
    for (workspace, _, model, completion, cost) in &rows {
        assert_eq!(workspace, "default");
        assert_eq!(model.as_deref(), Some("mock/echo"));
        assert!(completion.is_some_and(|n| n > 0), "{rows:?}");
        assert!(cost.is_some_and(|c| c > 0.0), "{rows:?}");
    }
}

/// The Usage page draws the last 30 days as bars (an SVG made on the server) and lists the models;
/// the CSV has a row per day with spend.
#[tokio::test]
async fn the_usage_page_charts_spend_and_the_csv_lists_it() {
    let app = spawn_app(&[]).await;
    let res = app
        .http
        .post(app.at("/v1/chat/completions"))
        .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    res.bytes().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, usage) = app.get_json("/api/usage").await;
        if usage["total"]["requests"] == 1 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{usage}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let page = app.http.get(app.at("/usage")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let html = page.text().await.unwrap();
    assert_eq!(
        html.matches("<rect class=\"bar\"").count(),
        30,
        "a bar per day"
    );
    assert_eq!(
        html.matches("height=\"160\"><title>").count(),
        1,
        "today's bar is the tallest: {html}"
    );
    assert!(html.contains("<code>mock/echo</code>"));
    assert!(!html.contains("<script"));

    let csv = app
        .http
        .get(app.at("/api/usage?by=day&format=csv"))
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "key,requests,prompt_tokens,completion_tokens,cost"
    );
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[1].split(',').nth(1) == Some("1"), "{text}");
}

/// A code's own budget (`SWITCHBOARD_BUDGETS`) wins over the default; the admin code reads every
/// workspace's spend, each named by its hash's first characters, never by its code.
#[tokio::test]
async fn per_code_budgets_and_the_admin_view_of_every_workspace() {
    let app = spawn_app(&[
        ("CODE", "alpha-code,beta-code,boss-code"),
        ("SWITCHBOARD_BUDGETS", "alpha-code=0/day"),
        ("SWITCHBOARD_ADMIN_CODE", "boss-code"),
    ])
    .await;
    let gateway = |code: &'static str| {
        let req = app
            .http
            .post(app.at("/v1/chat/completions"))
            .header("authorization", format!("Bearer {code}"))
            .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]}));
        async move { req.send().await.unwrap() }
    };
    let refused = gateway("alpha-code").await;
    assert_eq!(refused.status(), 402);
    let ok = gateway("beta-code").await;
    assert_eq!(ok.status(), 200);
    ok.bytes().await.unwrap();

    let usage = |code: &'static str, query: &'static str| {
        let req = app
            .http
            .get(app.at(&format!("/api/usage{query}")))
            .header("authorization", format!("Bearer nk-{code}"));
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let (status, _) = usage("beta-code", "?workspace=all").await;
    assert_eq!(status, 403, "only the admin code sees every workspace");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let all = loop {
        let (status, all) = usage("boss-code", "?workspace=all").await;
        assert_eq!(status, 200, "{all}");
        if all["total"]["requests"] == 1 {
            break all;
        }
        assert!(std::time::Instant::now() < deadline, "{all}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let key = all["items"][0]["key"].as_str().unwrap();
    assert_eq!(key.len(), "code-".len() + 8, "{all}");
    assert!(
        key.starts_with("code-") && !all.to_string().contains("beta-code"),
        "{all}"
    );
}

/// A reply stopped before the provider reported usage is still in the ledger, with the cost
/// OpenRouter's generation record gives (`GET /api/v1/generation`).
#[tokio::test]
async fn a_stopped_reply_s_cost_is_reconciled_from_the_generation_record() {
    let app = spawn_app(&[]).await;
    let chat = create_chat(&app, None).await;
    let res = app
        .http
        .patch(app.at(&format!("/api/chats/{chat}")))
        .json(&json!({"title": "stopped"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, _) = send(&app, &chat, json!({"content": "x", "model": "mock/slow"})).await;
    assert_eq!(status, 202);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, body) = app.get_json(&format!("/api/chats/{chat}")).await;
        if !body["messages"][1]["content"]
            .as_str()
            .unwrap_or("")
            .is_empty()
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.http
        .post(app.at(&format!("/api/chats/{chat}/stop")))
        .send()
        .await
        .unwrap();
    let body = settled(&app, &chat).await;
    assert_eq!(body["messages"][1]["status"], "stopped");
    assert!(
        body["messages"][1]["usage"].is_null(),
        "the stream carried no usage"
    );
    let usage = loop {
        let (_, usage) = app.get_json("/api/usage").await;
        if usage["total"]["requests"] == 1 {
            break usage;
        }
        assert!(std::time::Instant::now() < deadline, "{usage}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(usage["total"]["cost"].as_f64().unwrap() > 0.0, "{usage}");
    assert!(
        app.mock
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/v1/generation")),
        "the generation record was asked for"
    );
}

/// A relayed stream the client leaves before its usage arrives is still in the ledger, with the
/// cost OpenRouter's generation record gives — on the proxy and on the gateway alike.
#[tokio::test]
async fn a_relayed_stream_left_early_is_reconciled_from_the_generation_record() {
    let app = spawn_app(&[]).await;
    for path in [
        "/api/openrouter/v1/chat/completions",
        "/v1/chat/completions",
    ] {
        let mut res = app
            .http
            .post(app.at(path))
            .json(&json!({
                "model": "mock/slow", "stream": true,
                "messages": [{"role": "user", "content": "leave early"}],
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        // The first words, then hang up: the usage would have come at the end.
        let first = res.chunk().await.unwrap().expect("a first chunk");
        assert!(!first.is_empty());
        drop(res);
    }
    let rows = ledger_rows(&app, 2).await;
    let entries: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(entries, ["gateway", "proxy"], "{rows:?}");
    for (_, _, model, _, cost) in &rows {
        assert_eq!(model.as_deref(), Some("mock/slow"), "{rows:?}");
        assert!(cost.is_some_and(|c| c > 0.0), "the record's cost: {rows:?}");
    }
    let lookups = app
        .mock
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/v1/generation"))
        .count();
    assert!(
        lookups >= 2,
        "each call's generation record was asked for: {lookups}"
    );
}

/// A daily budget spent today refuses until midnight UTC and admits again from the next day on:
/// the server's budget clock is held one second before the period's end, then one second after.
#[tokio::test]
async fn a_spent_budget_resets_at_the_end_of_its_period() {
    const DAY_MS: i64 = 86_400_000;
    let app = spawn_app(&[("SWITCHBOARD_BUDGET", "0.00001/day")]).await;
    let ask = || {
        app.http
            .post(app.at("/v1/chat/completions"))
            .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]}))
            .send()
    };
    assert_eq!(
        ask().await.unwrap().status(),
        200,
        "the first call is within budget"
    );
    // The call is recorded now (the ledger writes in batches): wait until the budget is spent.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let refused = loop {
        let res = ask().await.unwrap();
        if res.status() == 402 {
            break res;
        }
        assert_eq!(res.status(), 200);
        assert!(
            std::time::Instant::now() < deadline,
            "the budget was never spent"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let retry: i64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let midnight = (now.div_euclid(DAY_MS) + 1) * DAY_MS;
    // Retry-After points at midnight UTC (give or take the seconds this test has taken).
    assert!((retry - (midnight - now) / 1000).abs() <= 30, "{retry}");

    let clock = app.state.budget_clock();
    clock.set(Some(midnight - 1_000));
    let res = ask().await.unwrap();
    assert_eq!(
        res.status(),
        402,
        "one second before midnight the day's budget is still spent"
    );
    assert_eq!(res.headers()["retry-after"], "1");
    let (_, usage) = app.get_json("/api/usage").await;
    assert!(
        usage["budget"]["spent"].as_f64().unwrap() > 0.00001,
        "{usage}"
    );

    clock.set(Some(midnight + 1_000));
    let (_, usage) = app.get_json("/api/usage").await;
    assert_eq!(usage["budget"]["spent"].as_f64(), Some(0.0), "{usage}");
    assert_eq!(
        ask().await.unwrap().status(),
        200,
        "a new day, a new budget"
    );
}

/// An answer that names no model (some OpenAI-compatible providers leave it out) is recorded
/// under the model the request asked for, streamed or not: the relay reads the request's body
/// for it only then.
#[tokio::test]
async fn an_answer_without_its_model_is_recorded_under_the_model_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let usage =
        json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "cost": 0.00007});
    let plain = json!({
        "id": "gen-plain",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Hi."}}],
        "usage": usage,
    });
    let streamed = format!(
        "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
        json!({"id": "gen-streamed", "choices": [{"index": 0, "delta": {"content": "Hi."}}]}),
        json!({"id": "gen-streamed", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": usage}),
    );
    let mut fixtures = Vec::new();
    for (model, body) in [("fx/plain", plain.to_string()), ("fx/streamed", streamed)] {
        let path = dir.path().join(&model[3..]);
        std::fs::write(&path, body).unwrap();
        fixtures.push((model.to_string(), path));
    }
    // Without a model restriction the body is read for the model only at the end; with one
    // (`CUSTOM_MODELS`) it was read before sending, and that reading is kept.
    for env in [
        &[][..],
        &[("CUSTOM_MODELS", "-all,+fx/plain,+fx/streamed")][..],
    ] {
        let app = crate::helpers::spawn_app_with_mock(
            mock_openrouter::MockConfig {
                fixtures: fixtures.clone(),
                ..mock_openrouter::MockConfig::default()
            },
            env,
        )
        .await;
        answer_twice_without_a_model(&app).await;
    }
}

async fn answer_twice_without_a_model(app: &crate::helpers::TestApp) {
    for (model, stream) in [("fx/plain", false), ("fx/streamed", true)] {
        // The model is not the body's first field, as the OpenAI SDKs send it.
        let res = app
            .http
            .post(app.at("/api/openrouter/v1/chat/completions"))
            .json(&json!({
                "messages": [{"role": "user", "content": "hi"}],
                "model": model, "stream": stream,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{model}");
        let text = res.text().await.unwrap();
        assert!(
            !text.contains("\"model\""),
            "the fixture names no model: {text}"
        );
    }
    let rows = ledger_rows(app, 2).await;
    let mut models: Vec<Option<&str>> = rows.iter().map(|r| r.2.as_deref()).collect();
    models.sort();
    assert_eq!(models, [Some("fx/plain"), Some("fx/streamed")], "{rows:?}");
    for (_, entry, _, completion_tokens, cost) in &rows {
        assert_eq!(entry, "proxy", "{rows:?}");
        assert_eq!(*completion_tokens, Some(2), "{rows:?}");
        assert_eq!(*cost, Some(0.00007), "{rows:?}");
    }
}
