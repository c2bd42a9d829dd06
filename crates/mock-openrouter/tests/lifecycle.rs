//! Starting and stopping: addresses, and that dropping the mock really stops it, including
//! streams already in flight (tests use that to simulate an upstream going away).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{KEY, client, start};
use mock_openrouter::{MockConfig, MockOpenRouter};
use serde_json::json;

#[tokio::test]
async fn urls_name_the_bound_port() {
    let mock = start().await;
    let port = mock.addr().port();
    assert_ne!(port, 0);
    assert_eq!(mock.base_url(), format!("http://127.0.0.1:{port}"));
    assert_eq!(mock.api_url(), format!("http://127.0.0.1:{port}/api"));

    let explicit =
        MockOpenRouter::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), MockConfig::default())
            .await
            .unwrap();
    assert_ne!(explicit.addr().port(), port);
}

#[tokio::test]
async fn dropping_the_mock_cuts_open_streams_and_refuses_new_connections() {
    let mock = start().await;
    let api_url = mock.api_url();
    let mut response = client()
        .post(format!("{api_url}/v1/chat/completions"))
        .bearer_auth(KEY)
        .json(&json!({"model": "mock/slow", "stream": true}))
        .send()
        .await
        .unwrap();
    let first = response.chunk().await.unwrap().expect("a first chunk");
    assert!(!first.is_empty());

    drop(mock);
    let mut received = String::new();
    let outcome = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => received.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(None) => return "closed",
                Err(_) => return "error",
            }
        }
    })
    .await
    .expect("the stream ends soon after the drop");
    assert!(
        !received.contains("[DONE]"),
        "cut, not finished ({outcome})"
    );

    let refused = client()
        .get(format!("{api_url}/v1/models"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(refused.is_err(), "nothing listens any more");
}
