//! The OpenAI-compatible gateway: auth, routing by `model@Provider`, restriction, model list.

use serde_json::json;

use crate::helpers::{SERVER_KEY, spawn_app};

#[tokio::test]
async fn gateway_is_open_without_codes_and_ignores_sdk_placeholder_keys() {
    let app = spawn_app(&[]).await;
    let res = app
        .http
        .post(app.at("/v1/chat/completions"))
        .bearer_auth("placeholder")
        .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "yo"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = app.mock.requests().pop().unwrap();
    assert_eq!(
        seen.headers["authorization"],
        format!("Bearer {SERVER_KEY}")
    );
}

#[tokio::test]
async fn gateway_takes_bare_and_prefixed_codes() {
    let app = spawn_app(&[("CODE", "gw")]).await;
    for (auth, status) in [
        (None, 401),
        (Some("Bearer nope"), 401),
        (Some("Bearer gw"), 200),
        (Some("Bearer nk-gw"), 200),
    ] {
        let mut req = app
            .http
            .post(app.at("/v1/chat/completions"))
            .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "a"}]}));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        assert_eq!(req.send().await.unwrap().status(), status, "{auth:?}");
    }
}

#[tokio::test]
async fn model_at_provider_routes_and_is_stripped() {
    // A second mock plays the OpenAI-compatible provider, so the route is visible.
    let openai_side = mock_openrouter::MockOpenRouter::start(Default::default())
        .await
        .unwrap();
    let app = spawn_app(&[
        ("BASE_URL", &openai_side.api_url()),
        ("OPENAI_API_KEY", "sk-or-openai-side"),
    ])
    .await;
    let res = app
        .http
        .post(app.at("/v1/chat/completions"))
        .json(&json!({"model": "mock/echo@OpenAI", "messages": [{"role": "user", "content": "a"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(app.mock.requests().is_empty(), "OpenRouter was not asked");
    let seen = openai_side.requests().pop().unwrap();
    assert_eq!(seen.headers["authorization"], "Bearer sk-or-openai-side");
    assert_eq!(seen.body["model"], "mock/echo");

    // Without a suffix, a plain id goes to OpenRouter.
    let res = app
        .http
        .post(app.at("/v1/chat/completions"))
        .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "a"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.mock.requests().len(), 1);

    let res = app
        .http
        .post(app.at("/v1/chat/completions"))
        .json(&json!({"model": "x@NoSuchProvider", "messages": [{"role": "user", "content": "a"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn gateway_refuses_restricted_models_and_bad_bodies() {
    let app = spawn_app(&[("CUSTOM_MODELS", "-all,+mock/echo@OpenRouter")]).await;
    app.load_catalog().await;
    let post = |body: serde_json::Value| {
        app.http
            .post(app.at("/v1/chat/completions"))
            .json(&body)
            .send()
    };
    assert_eq!(
        post(json!({"model": "mock/echo", "messages": [{"role": "user", "content": "a"}]}))
            .await
            .unwrap()
            .status(),
        200
    );
    let res = post(json!({"model": "mock/tools", "messages": [{"role": "user", "content": "a"}]}))
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = post(json!({"messages": [{"role": "user", "content": "a"}]}))
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("model"));
    let res = app
        .http
        .post(app.at("/v1/chat/completions"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn v1_models_lists_available_models_in_openai_shape() {
    let app = spawn_app(&[(
        "CUSTOM_MODELS",
        "-all,+mock/echo@OpenRouter,+qwen/qwen3-32b:free",
    )])
    .await;
    app.load_catalog().await;
    let (status, body) = app.get_json("/v1/models").await;
    assert_eq!(status, 200);
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["mock/echo", "qwen/qwen3-32b:free"]);
    assert_eq!(body["data"][0]["object"], "model");
    assert!(body["data"][0]["owned_by"].is_string());
}

/// Issue 20, item 11: a 100,000-character model id was relayed upstream; an empty `messages` too.
#[tokio::test]
async fn oversized_model_ids_and_empty_messages_are_400() {
    let app = spawn_app(&[]).await;
    let one = json!([{"role": "user", "content": "a"}]);
    let long = "m".repeat(100_000);
    let just_over = "m".repeat(257);
    for body in [
        json!({"model": long, "messages": one}),
        json!({"model": just_over, "messages": one}),
        json!({"model": "mock/echo", "models": [long], "messages": one}),
        json!({"model": "mock/echo", "messages": []}),
        json!({"model": "mock/echo"}),
        json!({"model": "mock/echo", "messages": "hi"}),
    ] {
        let res = app
            .http
            .post(app.at("/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
        let err: serde_json::Value = res.json().await.unwrap();
        assert!(err["error"]["message"].is_string(), "{err}");
    }
    assert!(
        app.mock.requests().is_empty(),
        "nothing reached the upstream"
    );
    let ok = app
        .http
        .post(app.at("/v1/chat/completions"))
        .json(&json!({"model": "m".repeat(256), "messages": one}))
        .send()
        .await
        .unwrap();
    assert_ne!(ok.status(), 400, "256 characters are allowed");
}
