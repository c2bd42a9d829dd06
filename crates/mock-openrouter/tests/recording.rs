//! What the mock records: every `/api` request (lower-case headers, parsed body), every generation
//! with live `chunks_sent` and `cancelled`, and clearing both.

mod common;

use std::time::{Duration, Instant};

use common::{KEY, chat, client, start, stream_events};
use mock_openrouter::GenerationRecord;
use serde_json::{Value, json};

#[tokio::test]
async fn requests_are_recorded_with_lowercase_headers_and_parsed_bodies() {
    let mock = start().await;
    let body = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}], "custom_field": {"kept": true}});
    client()
        .post(format!("{}/v1/chat/completions", mock.api_url()))
        .bearer_auth(KEY)
        .header("X-Title", "Switchboard")
        .header("HTTP-Referer", "https://example.com")
        .json(&body)
        .send()
        .await
        .unwrap();
    client()
        .get(format!(
            "{}/v1/models?supported_parameters=tools",
            mock.api_url()
        ))
        .send()
        .await
        .unwrap();
    client()
        .post(format!("{}/v1/chat/completions", mock.api_url()))
        .bearer_auth(KEY)
        .body("plain text")
        .send()
        .await
        .unwrap();

    let requests = mock.requests();
    assert_eq!(requests.len(), 3);
    let chat = &requests[0];
    assert_eq!(chat.method, "POST");
    assert_eq!(chat.path, "/api/v1/chat/completions");
    assert_eq!(chat.query, None);
    assert_eq!(chat.headers["x-title"], "Switchboard");
    assert_eq!(chat.headers["http-referer"], "https://example.com");
    assert_eq!(chat.headers["authorization"], format!("Bearer {KEY}"));
    assert!(chat.headers.keys().all(|k| k == &k.to_lowercase()));
    assert_eq!(chat.body, body, "unknown fields arrive untouched");

    assert_eq!(requests[1].method, "GET");
    assert_eq!(
        requests[1].query.as_deref(),
        Some("supported_parameters=tools")
    );
    assert_eq!(requests[1].body, Value::Null);
    assert_eq!(requests[2].body, json!("plain text"));

    // The HTTP view is the same data with the documented keys.
    let over_http: Value = client()
        .get(format!("{}/__mock/requests", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http, serde_json::to_value(&requests).unwrap());
    let first = over_http[0].as_object().unwrap();
    let mut keys: Vec<&str> = first.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["body", "headers", "method", "path", "query"]);
    assert_eq!(mock.requests().len(), 3, "/__mock itself is not recorded");
}

#[tokio::test]
async fn delete_clears_requests_and_generations() {
    let mock = start().await;
    stream_events(&mock, "mock/echo").await;
    assert_eq!(mock.requests().len(), 1);
    assert_eq!(mock.generations().len(), 1);
    let response = client()
        .delete(format!("{}/__mock/requests", mock.base_url()))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert!(mock.requests().is_empty());
    assert!(mock.generations().is_empty());

    stream_events(&mock, "mock/echo").await;
    mock.clear();
    assert!(mock.requests().is_empty() && mock.generations().is_empty());
}

#[tokio::test]
async fn generations_count_chunks_of_completed_streams() {
    let mock = start().await;
    let response = chat(&mock, "mock/tools", true).await;
    let id = response.headers()["x-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let chunks = common::chunks(&common::parse_sse(&response.text().await.unwrap()));
    chat(&mock, "mock/echo", false).await.text().await.unwrap();

    let over_http: Vec<Value> = client()
        .get(format!("{}/__mock/generations", mock.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        over_http[0],
        json!({
            "id": id, "model": "mock/tools", "stream": true, "cancelled": false,
            "chunks_sent": chunks.len(),
        })
    );
    let generations = mock.generations();
    assert_eq!(generations.len(), 2);
    assert_eq!(generations[1].model, "mock/echo");
    assert!(!generations[1].stream);
    assert!(!generations[1].cancelled);
}

async fn generation_over_http(base_url: &str) -> GenerationRecord {
    let mut list: Vec<GenerationRecord> = client()
        .get(format!("{base_url}/__mock/generations"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    list.remove(0)
}

#[tokio::test]
async fn dropping_a_slow_stream_marks_it_cancelled_promptly() {
    let mock = start().await;
    let stream_client = common::client();
    let mut response = stream_client
        .post(format!("{}/v1/chat/completions", mock.api_url()))
        .bearer_auth(KEY)
        .json(&json!({"model": "mock/slow", "stream": true, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Read until three data chunks have arrived (about 400 ms in).
    let started = Instant::now();
    let mut received = String::new();
    while received.matches("data: {").count() < 3 {
        let chunk = response.chunk().await.unwrap().expect("stream still open");
        received.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "200 ms between deltas"
    );

    let live = generation_over_http(&mock.base_url()).await;
    assert_eq!(live.model, "mock/slow");
    assert!(live.stream);
    assert!(!live.cancelled, "still running");
    assert!(
        (3..=5).contains(&live.chunks_sent),
        "live count: {}",
        live.chunks_sent
    );

    drop(response);
    drop(stream_client);
    let dropped = Instant::now();
    // Waits for the state, not for a time: how soon it comes is the machine's business (the
    // deadline only keeps a broken mock from hanging the suite).
    let cancelled_after = loop {
        if mock.generations()[0].cancelled {
            break dropped.elapsed();
        }
        assert!(
            dropped.elapsed() < Duration::from_secs(30),
            "never marked cancelled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    eprintln!("cancelled {cancelled_after:?} after the client dropped the stream");
    let record = generation_over_http(&mock.base_url()).await;
    assert!(record.cancelled);
    assert!(
        record.chunks_sent < 150,
        "the stream stopped: {}",
        record.chunks_sent
    );
}
