//! Auth as OpenRouter does it, the model catalog, and the account endpoints (`/key`, `/credits`,
//! `/generation`).

mod common;

use std::collections::HashSet;

use common::{KEY, chat, client, start};
use mock_openrouter::{MockConfig, MockOpenRouter};
use serde_json::Value;

async fn get(mock: &MockOpenRouter, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut request = client().get(format!("{}{path}", mock.api_url()));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap()
}

async fn error_message(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], status);
    (
        status,
        body["error"]["message"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn missing_or_blank_credentials_are_401_no_auth() {
    let mock = start().await;
    for path in [
        "/v1/key",
        "/v1/credits",
        "/v1/models/user",
        "/v1/generation?id=x",
    ] {
        let (status, message) = error_message(get(&mock, path, None).await).await;
        assert_eq!(
            (status, message.as_str()),
            (401, "No auth credentials found"),
            "{path}"
        );
    }
    let response = client()
        .post(format!("{}/v1/chat/completions", mock.api_url()))
        .header("authorization", "Bearer ")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (status, message) = error_message(response).await;
    assert_eq!(
        (status, message.as_str()),
        (401, "No auth credentials found")
    );
}

#[tokio::test]
async fn default_accepts_any_sk_or_key_and_rejects_others() {
    let mock = start().await;
    assert_eq!(
        get(&mock, "/v1/key", Some("sk-or-v1-anything"))
            .await
            .status(),
        200
    );
    let (status, message) = error_message(get(&mock, "/v1/key", Some("sk-wrong")).await).await;
    assert_eq!((status, message.as_str()), (401, "User not found."));
}

#[tokio::test]
async fn configured_keys_are_the_only_ones_accepted() {
    let mock = MockOpenRouter::start(MockConfig {
        keys: vec!["k-one".to_owned(), "k-two".to_owned()],
        ..MockConfig::default()
    })
    .await
    .unwrap();
    assert_eq!(get(&mock, "/v1/credits", Some("k-two")).await.status(), 200);
    let (status, message) = error_message(get(&mock, "/v1/credits", Some(KEY)).await).await;
    assert_eq!((status, message.as_str()), (401, "User not found."));
}

#[tokio::test]
async fn models_need_no_auth_and_look_like_openrouter_s() {
    let mock = start().await;
    let response = get(&mock, "/v1/models", None).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    let models = body["data"].as_array().unwrap();
    assert!(models.len() >= 300, "{} models", models.len());
    let ids: HashSet<&str> = models.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), models.len(), "ids are unique");
    for required in [
        "openrouter/auto",
        "qwen/qwen3-32b:free",
        "openai/gpt-4o",
        "anthropic/claude-sonnet-4.5",
        "google/gemini-2.5-pro",
        "qwen/qwen2.5-vl-72b-instruct",
    ]
    .into_iter()
    .chain(mock_openrouter::SCENARIO_MODELS.iter().copied())
    {
        assert!(ids.contains(required), "missing {required}");
    }
    for vendor in [
        "openai/",
        "anthropic/",
        "google/gemini",
        "google/gemma",
        "meta-llama/",
        "mistralai/",
        "x-ai/",
        "qwen/",
        "deepseek/",
        "moonshotai/",
        "cohere/",
        "nvidia/",
        "microsoft/",
        "amazon/",
        "z-ai/",
        "minimax/",
    ] {
        assert!(
            ids.iter().any(|id| id.starts_with(vendor)),
            "no {vendor} model"
        );
    }

    let by_id = |id: &str| models.iter().find(|m| m["id"] == id).unwrap();
    let has_param = |id: &str, param: &str| {
        by_id(id)["supported_parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == param)
    };
    let takes_images = |id: &str| {
        by_id(id)["architecture"]["input_modalities"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "image")
    };
    for id in [
        "openai/gpt-4o",
        "anthropic/claude-sonnet-4.5",
        "google/gemini-2.5-pro",
        "qwen/qwen2.5-vl-72b-instruct",
        "mock/vision",
        "mock/echo",
    ] {
        assert!(takes_images(id), "{id} takes images");
        assert_eq!(by_id(id)["architecture"]["modality"], "text+image->text");
    }
    assert!(has_param("mock/reasoning", "reasoning"));
    assert!(has_param("mock/tools", "tools"));
    assert!(has_param("anthropic/claude-sonnet-4.5", "reasoning"));
    assert!(!takes_images("mock/long"));

    let free: Vec<&Value> = models
        .iter()
        .filter(|m| m["id"].as_str().unwrap().ends_with(":free"))
        .collect();
    assert!(free.len() >= 5);
    for model in free {
        assert_eq!(model["pricing"]["prompt"], "0");
        assert_eq!(model["pricing"]["completion"], "0");
    }

    for model in models {
        for field in [
            "id",
            "canonical_slug",
            "name",
            "description",
            "created",
            "context_length",
        ] {
            assert!(!model[field].is_null(), "{field} in {model}");
        }
        let name = model["name"].as_str().unwrap();
        assert!(
            name.contains(": ") || model["id"] == "openrouter/auto",
            "{name}"
        );
        let arch = &model["architecture"];
        assert!(arch["tokenizer"].is_string());
        assert_eq!(arch["output_modalities"][0], "text");
        for price in [
            "prompt",
            "completion",
            "request",
            "image",
            "web_search",
            "internal_reasoning",
            "input_cache_read",
        ] {
            let value = model["pricing"][price]
                .as_str()
                .unwrap_or_else(|| panic!("{price} is a string"));
            assert!(
                value.parse::<f64>().is_ok() && !value.contains('e'),
                "{value}"
            );
        }
        let top = &model["top_provider"];
        assert!(top["context_length"].is_u64());
        assert!(top["max_completion_tokens"].is_u64());
        assert!(top["is_moderated"].is_boolean());
        assert!(model["supported_parameters"].is_array());
    }
    assert_eq!(by_id("openai/gpt-4o")["pricing"]["prompt"], "0.0000025");
}

#[tokio::test]
async fn models_user_needs_auth_and_serves_the_same_list() {
    let mock = start().await;
    let all: Value = get(&mock, "/v1/models", None).await.json().await.unwrap();
    let user: Value = get(&mock, "/v1/models/user", Some(KEY))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all, user);
}

#[tokio::test]
async fn key_and_credits_have_openrouter_s_shape() {
    let mock = start().await;
    for path in ["/v1/key", "/v1/auth/key"] {
        let body: Value = get(&mock, path, Some(KEY)).await.json().await.unwrap();
        let data = &body["data"];
        for field in [
            "label",
            "limit",
            "limit_remaining",
            "usage",
            "is_free_tier",
            "rate_limit",
        ] {
            assert!(data.get(field).is_some(), "{field} in {path}");
        }
        assert!(data["rate_limit"]["requests"].is_i64());
        assert!(data["rate_limit"]["interval"].is_string());
    }
    let body: Value = get(&mock, "/v1/credits", Some(KEY))
        .await
        .json()
        .await
        .unwrap();
    assert!(body["data"]["total_credits"].is_number());
    assert!(body["data"]["total_usage"].is_number());
}

#[tokio::test]
async fn generation_reports_a_served_completion_and_404s_otherwise() {
    let mock = start().await;
    let response = chat(&mock, "mock/reasoning", true).await;
    let id = response.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    response.text().await.unwrap();

    let body: Value = get(&mock, &format!("/v1/generation?id={id}"), Some(KEY))
        .await
        .json()
        .await
        .unwrap();
    let data = &body["data"];
    assert_eq!(data["id"], id.as_str());
    assert_eq!(data["model"], "mock/reasoning");
    assert!(data["total_cost"].as_f64().unwrap() > 0.0);
    assert!(data["tokens_prompt"].as_u64().unwrap() > 0);
    assert!(data["tokens_completion"].as_u64().unwrap() > 0);
    assert!(data["native_tokens_reasoning"].as_u64().unwrap() > 0);
    assert!(data["created_at"].as_str().unwrap().ends_with("+00:00"));
    assert_eq!(data["streamed"], true);

    let (status, _) =
        error_message(get(&mock, "/v1/generation?id=gen-0-nope", Some(KEY)).await).await;
    assert_eq!(status, 404);

    let credits: Value = get(&mock, "/v1/credits", Some(KEY))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        credits["data"]["total_usage"].as_f64().unwrap() > 0.0,
        "usage adds up"
    );
}
