//! OpenRouter's Responses API through the proxy: relayed byte for byte like chat completions,
//! metered for the spend ledger, and the proxy's model list filtered like `/v1/models`.

use std::path::PathBuf;

use mock_openrouter::MockConfig;
use serde_json::{Value, json};

use crate::helpers::{read_all, spawn_app, spawn_app_with_mock};

/// The recorded Responses API answers (streamed and not) in ../shared, by name.
fn recorded_responses() -> Option<Vec<(String, String)>> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/openrouter/recorded"
    ));
    let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for path in names {
        let doc: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for (i, it) in doc["interactions"]
            .as_sequence()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let uri = it["request"]["uri"].as_str().unwrap_or("");
            if !uri.ends_with("/v1/responses") {
                continue;
            }
            // Streams are recorded as text; JSON answers as their parsed value, served here as
            // its JSON text.
            let response = &it["response"];
            let body = match response["body"]["string"].as_str() {
                Some(text) if !text.trim().is_empty() => text.to_owned(),
                _ if !response["parsed_body"].is_null() => {
                    let value: Value =
                        serde_yaml::from_value(response["parsed_body"].clone()).unwrap();
                    value.to_string()
                }
                _ => continue,
            };
            let name = path.file_name().unwrap().to_string_lossy();
            out.push((format!("{name}#{i}"), body));
        }
    }
    Some(out)
}

#[tokio::test]
async fn recorded_responses_pass_the_proxy_byte_identical() {
    let Some(recordings) = recorded_responses() else {
        eprintln!("../shared/openrouter/recorded is absent: skipped");
        return;
    };
    assert!(recordings.len() >= 3, "{}", recordings.len());
    assert!(
        recordings
            .iter()
            .any(|(_, b)| b.trim_start().starts_with('{')),
        "a non-streamed one is among them"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut fixtures = Vec::new();
    for (i, (_, body)) in recordings.iter().enumerate() {
        let path = dir.path().join(format!("resp{i}"));
        std::fs::write(&path, body).unwrap();
        fixtures.push((format!("recorded-responses/{i}"), path));
    }
    let app = spawn_app_with_mock(
        MockConfig {
            fixtures,
            ..MockConfig::default()
        },
        &[],
    )
    .await;
    for (i, (name, body)) in recordings.iter().enumerate() {
        let stream = !body.trim_start().starts_with('{');
        let res = app
            .http
            .post(app.at("/api/openrouter/v1/responses"))
            .json(
                &json!({"model": format!("recorded-responses/{i}"), "stream": stream,
                          "input": "What is 2+2?"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{name}");
        assert_eq!(read_all(res).await, body.as_bytes(), "{name}");
    }
}

/// Streamed and not, a Responses call paid with the server's key lands in the ledger with the
/// tokens and cost of its `usage`.
#[tokio::test]
async fn responses_calls_are_metered_from_their_usage() {
    let app = spawn_app(&[]).await;
    for stream in [true, false] {
        let res = app
            .http
            .post(app.at("/api/openrouter/v1/responses"))
            .json(&json!({"model": "mock/echo", "stream": stream,
                          "input": [{"role": "user", "content": "four words right here"}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body = String::from_utf8(read_all(res).await).unwrap();
        assert!(body.contains("four words right here"), "{body}");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let usage = loop {
        let (_, usage) = app.get_json("/api/usage?by=model").await;
        if usage["total"]["requests"] == 2 {
            break usage;
        }
        assert!(std::time::Instant::now() < deadline, "{usage}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(usage["items"][0]["key"], "mock/echo", "{usage}");
    assert_eq!(usage["total"]["completion_tokens"], 8, "{usage}");
    assert!(usage["total"]["cost"].as_f64().unwrap() > 0.0, "{usage}");
    // Models CUSTOM_MODELS does not allow are refused here as on chat completions.
    let app = spawn_app(&[("CUSTOM_MODELS", "-all,+mock/echo@OpenRouter")]).await;
    let res = app
        .http
        .post(app.at("/api/openrouter/v1/responses"))
        .json(&json!({"model": "mock/slow", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mock/slow"),
        "{body}"
    );
}

/// `/api/openrouter/v1/models` lists what `/v1/models` lists when CUSTOM_MODELS restricts the
/// models, each entry as OpenRouter sent it.
#[tokio::test]
async fn the_proxied_model_list_follows_custom_models() {
    let app = spawn_app(&[("CUSTOM_MODELS", "-all,+mock/echo@OpenRouter,+mock/slow")]).await;
    let (status, proxied) = app.get_json("/api/openrouter/v1/models").await;
    assert_eq!(status, 200, "{proxied}");
    let mut ids: Vec<&str> = proxied["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["mock/echo", "mock/slow"], "{proxied}");
    assert!(
        proxied["data"][0]["pricing"].is_object(),
        "entries stay whole"
    );
    let (_, gateway) = app.get_json("/v1/models").await;
    let mut listed: Vec<&str> = gateway["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    listed.sort_unstable();
    assert_eq!(ids, listed);
    // Without CUSTOM_MODELS the list is relayed as it is.
    let app = spawn_app(&[]).await;
    let (_, all) = app.get_json("/api/openrouter/v1/models").await;
    assert!(all["data"].as_array().unwrap().len() > 2);
}
