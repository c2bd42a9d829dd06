use serde_json::{Value, json};

use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_reports_status_and_version() {
    let app = spawn_app(&[]).await;
    let (status, body) = app.get_json("/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})
    );
}

#[tokio::test]
async fn config_has_nextchat_keys_and_defaults() {
    let app = spawn_app(&[]).await;
    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let res = app
            .http
            .request(method, app.at("/api/config"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(
            body,
            json!({"needCode": false, "hideUserApiKey": false, "hideBalanceQuery": true,
                   "disableFastLink": false, "customModels": "", "defaultModel": "",
                   "visionModels": ""})
        );
    }
}

#[tokio::test]
async fn config_echoes_each_variable() {
    let app = spawn_app(&[
        ("CODE", "abc"),
        ("HIDE_USER_API_KEY", "1"),
        ("ENABLE_BALANCE_QUERY", "1"),
        ("DISABLE_FAST_LINK", "1"),
        ("CUSTOM_MODELS", "-all,+qwen/qwen3-32b:free@OpenRouter"),
        ("DEFAULT_MODEL", "qwen/qwen3-32b:free@OpenRouter"),
        ("VISION_MODELS", "my/vision-model"),
    ])
    .await;
    let (_, body) = app.get_json("/api/config").await;
    assert_eq!(
        body,
        json!({"needCode": true, "hideUserApiKey": true, "hideBalanceQuery": false,
               "disableFastLink": true, "customModels": "-all,+qwen/qwen3-32b:free@OpenRouter",
               "defaultModel": "qwen/qwen3-32b:free@OpenRouter", "visionModels": "my/vision-model"})
    );
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json() {
    let app = spawn_app(&[]).await;
    let (status, body) = app.get_json("/no/such/route").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], 404);
    assert!(body["error"]["message"].is_string());

    let res = app.http.delete(app.at("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 405);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], 405);
}

#[tokio::test]
async fn metrics_need_a_code_when_codes_are_set() {
    let app = spawn_app(&[("CODE", "m3trics")]).await;
    let res = app.http.get(app.at("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .get(app.at("/metrics"))
        .bearer_auth("nk-m3trics")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.contains("switchboard_proxy_overhead_seconds_count"));
    assert!(text.contains("switchboard_in_flight_streams"));
    // The unauthenticated attempt above was counted, by route template and status.
    assert!(
        text.contains("switchboard_requests_total{route=\"/metrics\",status=\"401\"} 1"),
        "{text}"
    );

    assert!(
        text.contains("switchboard_db_connections{pool=\"write\",state=\"open\"} 1"),
        "{text}"
    );

    // A call the server's key pays for shows in the token, cost and call counters.
    let res = app
        .http
        .post(app.at("/v1/chat/completions"))
        .bearer_auth("m3trics")
        .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "three little words"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let usage: Value = res.json().await.unwrap();
    let completion = usage["usage"]["completion_tokens"].as_u64().unwrap();
    // Counted when the relayed body is done with, which may be a moment after the client has it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let text = app
            .http
            .get(app.at("/metrics"))
            .bearer_auth("nk-m3trics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if text.contains("switchboard_paid_calls_total") {
            break text;
        }
        assert!(std::time::Instant::now() < deadline, "{text}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert!(
        text.contains(&format!(
            "switchboard_tokens_total{{entry=\"gateway\",kind=\"completion\"}} {completion}"
        )),
        "{text}"
    );
    assert!(
        text.contains("switchboard_paid_calls_total{entry=\"gateway\"} 1"),
        "{text}"
    );
    let cost: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("switchboard_cost_usd_total{entry=\"gateway\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no gateway cost in {text}"));
    assert!(cost > 0.0, "the call's cost is counted: {text}");

    let open = spawn_app(&[("SWITCHBOARD_METRICS", "off")]).await;
    let res = open.http.get(open.at("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn login_cookie_admits_the_browser() {
    let app = spawn_app(&[("CODE", "c00kie")]).await;
    let res = app
        .http
        .post(app.at("/api/login"))
        .json(&json!({"code": "wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .post(app.at("/api/login"))
        .json(&json!({"code": "c00kie"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let cookie = res
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    assert!(
        !cookie.contains("c00kie"),
        "the cookie never holds the code"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let res = app
        .http
        .get(app.at("/api/models"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A tampered cookie is worthless.
    let flipped = if pair.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{flipped}", &pair[..pair.len() - 1]);
    let res = app
        .http
        .get(app.at("/api/models"))
        .header("cookie", tampered)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

/// Pages, assets and the UI's JSON go out compressed when the browser asks; event streams and
/// whatever the proxy relays do not (an event must leave at once; relayed bytes pass untouched).
#[tokio::test]
async fn pages_and_json_are_compressed_streams_and_relays_are_not() {
    let app = spawn_app(&[]).await;
    app.load_catalog().await;
    let get = |path: String, encoding: &'static str| {
        let req = app
            .http
            .get(app.at(&path))
            .header("accept-encoding", encoding);
        async move { req.send().await.unwrap() }
    };
    let plain = get("/api/models".into(), "identity").await;
    assert!(plain.headers().get("content-encoding").is_none());
    let plain_len = plain.bytes().await.unwrap().len();
    for encoding in ["gzip", "br"] {
        let res = get("/api/models".into(), encoding).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-encoding"], encoding);
        let len = res.bytes().await.unwrap().len();
        assert!(
            len * 4 < plain_len,
            "{encoding}: {len} of {plain_len} bytes"
        );
    }
    let css = get(switchboard_server::ui::assets::url("app.css"), "gzip").await;
    assert_eq!(css.headers()["content-encoding"], "gzip");

    let chat = crate::chats::create_chat(&app, None).await;
    let mut events = get(format!("/api/chats/{chat}/events"), "gzip, br").await;
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    assert!(events.headers().get("content-encoding").is_none());
    let first = events.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("connected"));

    let relayed = app
        .http
        .post(app.at("/api/openrouter/v1/chat/completions"))
        .header("accept-encoding", "gzip")
        .json(&serde_json::json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(relayed.status(), 200);
    assert!(relayed.headers().get("content-encoding").is_none());
}

/// The model list carries an `ETag` and a short `Cache-Control`; asking again with the tag gets
/// `304` without the list, compressed or not; a changed list gets a new tag.
#[tokio::test]
async fn the_model_list_is_cached_with_an_etag() {
    let app = spawn_app(&[]).await;
    app.load_catalog().await;
    let res = app.http.get(app.at("/api/models")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let etag = res.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    let cache = res.headers()["cache-control"].to_str().unwrap();
    assert!(
        cache.contains("private") && cache.contains("max-age"),
        "{cache}"
    );
    assert!(!res.bytes().await.unwrap().is_empty());
    for encoding in ["identity", "gzip"] {
        let res = app
            .http
            .get(app.at("/api/models"))
            .header("if-none-match", &etag)
            .header("accept-encoding", encoding)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 304, "{encoding}");
        assert_eq!(res.headers()["etag"].to_str().unwrap(), etag);
        assert!(res.bytes().await.unwrap().is_empty());
    }
    // Another query is another list, with another tag: the old one does not match it.
    let res = app
        .http
        .get(app.at("/api/models?q=mock"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_ne!(res.headers()["etag"].to_str().unwrap(), etag);
}
