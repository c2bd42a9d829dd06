//! OpenRouter's own features, acted out: actionable 402s and 429s, `models` fallback, the endpoints
//! route, the key's limit, web and file annotations, image output, and routing echoed in the
//! generation record.

mod common;

use common::{chat_body, chunks, client, start};
use serde_json::{Value, json};

async fn post(
    mock: &mock_openrouter::MockOpenRouter,
    body: Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = chat_body(mock, body).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.json().await.unwrap())
}

async fn get(mock: &mock_openrouter::MockOpenRouter, path: &str) -> (u16, Value) {
    let response = client()
        .get(format!("{}/v1{path}", mock.api_url()))
        .bearer_auth("sk-or-v1-test")
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn generation(mock: &mock_openrouter::MockOpenRouter, id: &str) -> Value {
    get(mock, &format!("/generation?id={id}")).await.1["data"].clone()
}

#[tokio::test]
async fn a_402_names_what_the_credits_afford_and_a_request_within_it_is_answered() {
    let mock = start().await;
    let hi = json!({"model": "mock/status-402", "max_tokens": 8000,
                    "messages": [{"role": "user", "content": "hi there"}]});
    let (status, _, body) = post(&mock, hi.clone()).await;
    assert_eq!(status, 402);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("You requested up to 8000 tokens, but can only afford 3395."),
        "{message}"
    );
    let mut within = hi;
    within["max_tokens"] = json!(3395);
    let (status, _, body) = post(&mock, within).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "hi there");
}

#[tokio::test]
async fn a_429_carries_the_provider_s_words_and_when_the_limit_resets() {
    let mock = start().await;
    let (status, headers, body) = post(
        &mock,
        json!({"model": "mock/status-429", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["metadata"]["provider_name"], "Google");
    assert!(
        body["error"]["metadata"]["raw"]
            .as_str()
            .unwrap()
            .starts_with("mock/status-429 is temporarily rate-limited upstream")
    );
    let reset: u128 = headers["x-ratelimit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(reset > now, "the reset is ahead: {reset} vs {now}");
    assert_eq!(headers["x-ratelimit-remaining"], "0");
    assert_eq!(headers["x-ratelimit-limit"], "20");
}

#[tokio::test]
async fn models_fall_back_in_order_and_the_answer_names_who_served() {
    let mock = start().await;
    let (status, _, body) = post(
        &mock,
        json!({"model": "mock/status-429", "models": ["mock/status-429", "mock/status-503", "mock/echo"],
               "messages": [{"role": "user", "content": "fallback works"}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "mock/echo");
    assert_eq!(body["choices"][0]["message"]["content"], "fallback works");
    // All of them failing: the last refusal is the answer.
    let (status, _, _) = post(
        &mock,
        json!({"models": ["mock/status-429", "mock/status-503"], "messages": []}),
    )
    .await;
    assert_eq!(status, 503);
}

#[tokio::test]
async fn the_endpoints_route_lists_the_providers_of_a_model() {
    let mock = start().await;
    let (status, body) = get(&mock, "/models/openai/gpt-4o/endpoints").await;
    assert_eq!(status, 200);
    let data = &body["data"];
    assert_eq!(data["id"], "openai/gpt-4o");
    let endpoints = data["endpoints"].as_array().unwrap();
    assert!(endpoints.len() >= 2, "{endpoints:?}");
    assert_eq!(endpoints[0]["provider_name"], "OpenAI");
    // The vendor's own endpoint costs what the catalog says.
    assert_eq!(endpoints[0]["pricing"]["prompt"], "0.0000025");
    for e in endpoints {
        assert!(e["tag"].is_string());
        assert!(e["pricing"]["prompt"].is_string());
        assert!(e["latency_last_30m"]["p50"].is_number());
        assert!(e["throughput_last_30m"]["p50"].is_number());
    }
    let tags: Vec<&str> = endpoints
        .iter()
        .map(|e| e["tag"].as_str().unwrap())
        .collect();
    let mut unique = tags.clone();
    unique.dedup();
    assert_eq!(tags, unique);
    assert_eq!(get(&mock, "/models/nobody/nothing/endpoints").await.0, 404);
}

#[tokio::test]
async fn the_key_has_a_limit_and_what_remains_of_it() {
    let mock = start().await;
    let (_, before) = get(&mock, "/key").await;
    assert_eq!(before["data"]["limit"], 100.0);
    assert_eq!(before["data"]["limit_remaining"], 100.0);
    assert_eq!(before["data"]["allowed_data_regions"], json!(["global"]));
    post(
        &mock,
        json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    let (_, after) = get(&mock, "/key").await;
    assert!(after["data"]["limit_remaining"].as_f64().unwrap() < 100.0);
}

#[tokio::test]
async fn the_web_plugin_cites_and_is_billed_and_provider_preferences_are_echoed() {
    let mock = start().await;
    let provider = json!({"sort": "throughput", "data_collection": "deny"});
    let (_, _, body) = post(
        &mock,
        json!({"model": "mock/echo", "plugins": [{"id": "web", "max_results": 3}],
               "provider": provider, "session_id": "chat-1",
               "messages": [{"role": "user", "content": "news"}]}),
    )
    .await;
    let annotations = body["choices"][0]["message"]["annotations"]
        .as_array()
        .unwrap();
    assert_eq!(annotations[0]["type"], "url_citation");
    let record = generation(&mock, body["id"].as_str().unwrap()).await;
    assert_eq!(record["provider_preferences"], provider);
    assert_eq!(record["session_id"], "chat-1");
    assert_eq!(record["num_search_results"], 3);
    // 3 results at $4 per thousand on top of the tokens.
    assert!(body["usage"]["cost"].as_f64().unwrap() >= 0.012);
}

#[tokio::test]
async fn a_file_is_parsed_once_and_its_annotation_spares_the_next_turn() {
    let mock = start().await;
    let file = json!({"type": "file", "file": {"filename": "notes.txt",
                      "file_data": "data:text/plain;base64,aGVsbG8gZmlsZQ=="}});
    let first = json!({"model": "mock/echo", "plugins": [{"id": "file-parser", "pdf": {"engine": "pdf-text"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "read"}, file]}]});
    let (_, _, body) = post(&mock, first).await;
    let annotations = body["choices"][0]["message"]["annotations"].clone();
    assert_eq!(annotations[0]["type"], "file");
    assert_eq!(annotations[0]["file"]["name"], "notes.txt");
    assert_eq!(annotations[0]["file"]["content"][1]["text"], "hello file");
    assert_eq!(annotations[0]["file"]["hash"].as_str().unwrap().len(), 64);
    let record = generation(&mock, body["id"].as_str().unwrap()).await;
    assert_eq!(record["num_media_prompt"], 1);

    let second = json!({"model": "mock/echo", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "read"}, file]},
        {"role": "assistant", "content": "read", "annotations": annotations},
        {"role": "user", "content": "again"}]});
    let (_, _, body) = post(&mock, second).await;
    assert!(
        body["choices"][0]["message"].get("annotations").is_none(),
        "{body}"
    );
    let record = generation(&mock, body["id"].as_str().unwrap()).await;
    assert!(record["num_media_prompt"].is_null(), "nothing parsed twice");
}

#[tokio::test]
async fn mock_image_draws_one_png_in_the_delta_and_the_message() {
    let mock = start().await;
    let (_, body) = get(&mock, "/models").await;
    let entry = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "mock/image")
        .unwrap()
        .clone();
    assert_eq!(
        entry["architecture"]["output_modalities"],
        json!(["text", "image"])
    );
    assert!(body["total_count"].as_u64().unwrap() > 300);
    assert!(body["links"].is_object());

    let response = chat_body(
        &mock,
        json!({"model": "mock/image", "stream": true, "modalities": ["image", "text"],
               "messages": [{"role": "user", "content": "draw"}]}),
    )
    .await;
    let events = common::parse_sse(&response.text().await.unwrap());
    let chunks = chunks(&events);
    let images: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("images"))
        .collect();
    assert_eq!(images.len(), 1);
    let url = images[0][0]["image_url"]["url"].as_str().unwrap();
    assert!(
        url.starts_with("data:image/png;base64,iVBORw0KGgo"),
        "{url}"
    );
    // As in real streams, chunks carry no `system_fingerprint`; whole answers carry it as null.
    assert!(chunks.iter().all(|c| c.get("system_fingerprint").is_none()));

    let (_, _, body) = post(
        &mock,
        json!({"model": "mock/image", "messages": [{"role": "user", "content": "draw"}]}),
    )
    .await;
    assert_eq!(
        body["choices"][0]["message"]["images"][0]["type"],
        "image_url"
    );
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Here is your image."
    );
}
