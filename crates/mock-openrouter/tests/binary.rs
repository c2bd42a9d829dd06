//! The `mock-openrouter` binary as scripts use it: start it, read the single stdout line, talk to
//! the printed address.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn binary_prints_one_line_and_serves() {
    let fixture =
        std::env::temp_dir().join(format!("mock-openrouter-bin-{}.json", std::process::id()));
    std::fs::write(&fixture, b"{\"fixture\":true}").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-openrouter"))
        .args([
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--key",
            "k-bin",
            "--key",
            "k-other",
        ])
        .args(["--delta-ms", "1", "--fixture"])
        .arg(format!("fixture/bin={}", fixture.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(20), stdout.read_line(&mut line))
        .await
        .expect("announces itself in time")
        .unwrap();
    let base_url = line
        .strip_suffix('\n')
        .and_then(|l| l.strip_prefix("listening on "))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let port: u16 = base_url
        .strip_prefix("http://127.0.0.1:")
        .expect("http://127.0.0.1:<port>")
        .parse()
        .expect("a port number");
    assert_ne!(port, 0);

    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let url = format!("{base_url}/api/v1/chat/completions");
    let body =
        json!({"model": "mock/echo", "messages": [{"role": "user", "content": "from a process"}]});
    let completion: Value = client
        .post(&url)
        .bearer_auth("k-other")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "from a process"
    );

    let rejected = client
        .post(&url)
        .bearer_auth("sk-or-v1-default")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), 401, "--key replaces the sk-or- default");

    let replay = client
        .post(&url)
        .bearer_auth("k-bin")
        .json(&json!({"model": "fixture/bin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(replay.text().await.unwrap(), "{\"fixture\":true}");

    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).await.unwrap();
    assert_eq!(rest, "", "nothing else on stdout");
    let _ = std::fs::remove_file(fixture);
}
