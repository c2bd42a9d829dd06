//! `--fixture MODEL=PATH` replay: recorded bodies come back byte for byte, SSE in several writes.
//! The last test replays every streamed body in the shared OpenRouter recordings, when that
//! folder exists on this machine.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use common::{KEY, chat, client};
use mock_openrouter::{MockConfig, MockOpenRouter};
use serde_json::json;

/// A file under the system temp dir with a name no other test (or process) uses.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &[u8]) -> TempFile {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "mock-openrouter-fixture-{}-{}.txt",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).expect("temp file is written");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const SSE: &str = concat!(
    ": OPENROUTER PROCESSING\n\n",
    "data: {\"id\":\"gen-1-abc\",\"provider\":\"Fixture\",\"model\":\"fixture/sse\",\"object\":\"chat.completion.chunk\",\"created\":1,\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hé\"},\"finish_reason\":null,\"native_finish_reason\":null}]}\n\n",
    ": OPENROUTER PROCESSING\n\n",
    "data: {\"id\":\"gen-1-abc\",\"provider\":\"Fixture\",\"model\":\"fixture/sse\",\"object\":\"chat.completion.chunk\",\"created\":1,\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"llo\"},\"finish_reason\":\"stop\",\"native_finish_reason\":\"stop\"}]}\n\n",
    "data: [DONE]\n\n",
);

#[tokio::test]
async fn sse_and_json_fixtures_replay_byte_for_byte() {
    let sse = TempFile::new(SSE.as_bytes());
    let json_body = b"{\"id\":\"gen-2-xyz\",\"object\":\"chat.completion\",  \"choices\":[]}\n";
    let json_file = TempFile::new(json_body);
    let mock = MockOpenRouter::start(MockConfig {
        delta_ms: 5,
        fixtures: vec![
            ("fixture/sse".to_owned(), sse.0.clone()),
            ("fixture/json".to_owned(), json_file.0.clone()),
        ],
        ..MockConfig::default()
    })
    .await
    .unwrap();

    let mut response = chat(&mock, "fixture/sse", true).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut received = Vec::new();
    let mut reads = 0;
    while let Some(chunk) = response.chunk().await.unwrap() {
        received.extend_from_slice(&chunk);
        reads += 1;
    }
    assert_eq!(String::from_utf8(received).unwrap(), SSE);
    assert!(reads >= 2, "SSE fixtures go out in several writes");

    // Served whatever the request says: the body decides the content type.
    let response = chat(&mock, "fixture/json", true).await;
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.bytes().await.unwrap().as_ref(), json_body);

    let generations = mock.generations();
    assert_eq!(generations[0].model, "fixture/sse");
    assert_eq!(generations[0].chunks_sent, 2);
    assert!(!generations[0].cancelled);
}

#[tokio::test]
async fn a_missing_fixture_file_fails_start() {
    let result = MockOpenRouter::start(MockConfig {
        fixtures: vec![("m".to_owned(), PathBuf::from("/nonexistent/fixture.txt"))],
        ..MockConfig::default()
    })
    .await;
    let error = result.err().expect("start fails").to_string();
    assert!(error.contains("fixture"), "{error}");
}

/// The streamed (SSE) response bodies in one VCR cassette.
fn sse_bodies(cassette: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(cassette).unwrap();
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is YAML: {e}", cassette.display()));
    let Some(interactions) = yaml["interactions"].as_sequence() else {
        return Vec::new();
    };
    interactions
        .iter()
        .filter_map(|interaction| interaction["response"]["body"]["string"].as_str())
        .filter(|body| {
            let start = body.trim_start();
            start.starts_with("data:") || start.starts_with(':')
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn recorded_openrouter_streams_replay_byte_for_byte() {
    let folder = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/openrouter/recorded"
    ));
    if !folder.is_dir() {
        eprintln!("skipping: {} is absent", folder.display());
        return;
    }
    let mut cassettes: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        })
        .collect();
    cassettes.sort();

    let mut files = Vec::new();
    let mut expected = Vec::new();
    for cassette in &cassettes {
        for body in sse_bodies(cassette) {
            let model = format!("fixture/recorded-{}", expected.len());
            files.push((model.clone(), TempFile::new(body.as_bytes())));
            expected.push((model, cassette.file_name().unwrap().to_owned(), body));
        }
    }
    let mock = MockOpenRouter::start(MockConfig {
        fixtures: files
            .iter()
            .map(|(m, f)| (m.clone(), f.0.clone()))
            .collect(),
        ..MockConfig::default()
    })
    .await
    .unwrap();

    for (model, cassette, body) in &expected {
        let response = client()
            .post(format!("{}/v1/chat/completions", mock.api_url()))
            .bearer_auth(KEY)
            .json(&json!({"model": model, "stream": true}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let received = response.bytes().await.unwrap();
        assert!(
            received.as_ref() == body.as_bytes(),
            "{cassette:?} differs after replay"
        );
    }
    eprintln!("replayed {} recorded streams", expected.len());
    assert!(!expected.is_empty(), "the recordings hold streamed bodies");
}
