//! Real clients: the official `openai` Python SDK through the gateway and the proxy, and the
//! recorded OpenRouter traffic in ../shared.

use std::path::PathBuf;

use crate::helpers::spawn_app;

/// The Python with the `openai` package: `SWITCHBOARD_TEST_PYTHON`, or the virtualenv `.ci/run`
/// makes. `None` (skip) only outside CI; in CI a missing SDK fails the test.
fn python_with_openai() -> Option<PathBuf> {
    let candidate = std::env::var_os("SWITCHBOARD_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../target/ci-venv/bin/python"
            ))
        });
    let ok = std::process::Command::new(&candidate)
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(candidate);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must have the openai SDK ({}); .ci/run installs it",
        candidate.display()
    );
    eprintln!("openai Python SDK not installed: skipped (bash .ci/run installs it)");
    None
}

const SCRIPT: &str = r#"
import sys, openai
base, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base, api_key=key, max_retries=0)
msgs = [{"role": "user", "content": "hello from the sdk"}]
r = client.chat.completions.create(model="mock/echo", messages=msgs)
print("NONSTREAM:" + r.choices[0].message.content)
print("USAGE:" + str(r.usage.total_tokens > 0))
s = client.chat.completions.create(model="mock/echo", messages=msgs, stream=True)
print("STREAM:" + "".join((c.choices[0].delta.content or "") for c in s if c.choices))
try:
    client.chat.completions.create(model="mock/status-402", messages=msgs)
    print("ERROR:none")
except openai.APIStatusError as e:
    print("ERROR:" + str(e.status_code))
"#;

#[tokio::test]
async fn openai_python_sdk_streams_and_non_streams() {
    let Some(python) = python_with_openai() else {
        return;
    };
    let app = spawn_app(&[("CODE", "sdk-code")]).await;
    for (base, key) in [
        (app.at("/v1"), "sdk-code"),
        (app.at("/v1"), "nk-sdk-code"),
        (app.at("/api/openrouter/v1"), "nk-sdk-code"),
    ] {
        let out = tokio::process::Command::new(&python)
            .args(["-c", SCRIPT, &base, key])
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{base}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("NONSTREAM:hello from the sdk\n"),
            "{base}: {stdout}"
        );
        assert!(stdout.contains("USAGE:True\n"), "{base}: {stdout}");
        assert!(
            stdout.contains("STREAM:hello from the sdk\n"),
            "{base}: {stdout}"
        );
        assert!(stdout.contains("ERROR:402\n"), "{base}: {stdout}");
    }
}

/// `tests/sdk` with `@openrouter/sdk` installed, and `node`. `None` (skip) only outside CI.
fn openrouter_sdk_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/sdk"));
    let ok = dir.join("node_modules/@openrouter/sdk").exists()
        && std::process::Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if ok {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must have @openrouter/sdk in tests/sdk; .ci/run installs it"
    );
    eprintln!("@openrouter/sdk not installed: skipped (npm ci --prefix tests/sdk)");
    None
}

/// The official TypeScript SDK validates every answer against OpenRouter's schemas: its chat
/// (whole and streamed), model list and key calls pass against the mock, through the proxy, and
/// through the proxy with `CUSTOM_MODELS` filtering the list.
#[tokio::test]
async fn openrouter_typescript_sdk_passes_against_the_mock_and_through_the_proxy() {
    let Some(dir) = openrouter_sdk_dir() else {
        return;
    };
    let app = spawn_app(&[("CODE", "sdk-code")]).await;
    let restricted = spawn_app(&[("CODE", "sdk-code"), ("CUSTOM_MODELS", "-all,+mock/echo")]).await;
    for (base, key) in [
        (app.mock.api_url() + "/v1", "sk-or-v1-sdk"),
        (app.at("/api/openrouter/v1"), "nk-sdk-code"),
        (restricted.at("/api/openrouter/v1"), "nk-sdk-code"),
    ] {
        let out = tokio::process::Command::new("node")
            .args(["check.mjs", &base, key])
            .current_dir(&dir)
            .output()
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{base}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in [
            "NONSTREAM:hello from the sdk",
            "USAGE:true",
            "STREAM:hello from the sdk",
            "MODELS:true",
            "TOTAL:true",
            "KEY:true",
        ] {
            assert!(
                stdout.lines().any(|l| l == line),
                "{base}: no {line} in {stdout}"
            );
        }
    }
    // The key's secret never reached the mock from the proxy: the server's key did.
    assert!(
        app.mock
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/key"))
            .any(|r| r.headers["authorization"] == format!("Bearer {}", crate::helpers::SERVER_KEY))
    );
}

/// `(file name, SSE body)` of every recorded streamed response, or `None` when ../shared is absent.
pub fn recorded_sse_bodies() -> Option<Vec<(String, String)>> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/openrouter/recorded"
    ));
    let entries = std::fs::read_dir(&dir).ok()?;
    let mut out = Vec::new();
    let mut names: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    names.sort();
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap();
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let Some(interactions) = doc["interactions"].as_sequence() else {
            continue;
        };
        for (i, it) in interactions.iter().enumerate() {
            let Some(body) = it["response"]["body"]["string"].as_str() else {
                continue;
            };
            let head = body.trim_start();
            if head.starts_with("data:") || head.starts_with(':') {
                let name = path.file_name().unwrap().to_string_lossy();
                out.push((format!("{name}#{i}"), body.to_string()));
            }
        }
    }
    Some(out)
}
