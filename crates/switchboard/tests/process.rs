//! The real `switchboard` binary as a process: start-up, settings errors, shutdown, and a crash
//! in the middle of a reply.

mod util;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use util::Switchboard;

#[test]
fn version_flag_prints_the_version() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("switchboard {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_invalid_setting_stops_start_up_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .current_dir(dir.path())
        .env("SWITCHBOARD_MAX_BODY_BYTES", "tiny")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("SWITCHBOARD_MAX_BODY_BYTES"), "{stderr}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .current_dir(dir.path())
        .env("CUSTOM_MODELS", "+ok,=broken")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CUSTOM_MODELS"));
}

#[tokio::test]
async fn starts_with_no_set_up_and_answers_healthz() {
    let sb = Switchboard::start(&[]).await;
    let body: Value = util::client()
        .get(format!("{}/healthz", sb.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "ok");
    // The default database file was created in the working directory.
    assert!(sb.dir.path().join("switchboard.db").is_file());
}

#[tokio::test]
async fn warns_when_open_to_the_network_without_codes() {
    let mut sb = Switchboard::start(&[("SWITCHBOARD_ADDR", "0.0.0.0:0")]).await;
    let logs = sb.stop_and_logs();
    assert!(logs.contains("anyone who can reach"), "{logs}");
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully() {
    let mut sb = Switchboard::start(&[]).await;
    sb.signal("TERM");
    sb.assert_exits_cleanly(Duration::from_secs(10), "after SIGTERM");
}

/// SIGTERM stops accepting at once but lets a relayed stream that is under way finish (it runs on a
/// worker thread; the acceptor waits for it), and only then does the process exit 0.
#[tokio::test]
async fn sigterm_lets_a_stream_under_way_finish() {
    let mock = mock_openrouter::MockOpenRouter::start(mock_openrouter::MockConfig {
        delta_ms: 100,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let api_url = mock.api_url();
    let env = [
        ("OPENROUTER_URL", api_url.as_str()),
        ("OPENROUTER_API_KEY", "sk-or-server"),
    ];
    let mut sb = Switchboard::start_in(dir.path(), &env).await;
    let http = util::client();
    let mut res = http
        .post(format!("{}/api/openrouter/v1/chat/completions", sb.url))
        .json(&json!({
            "model": "mock/echo",
            "stream": true,
            "messages": [{"role": "user", "content": "one two three four five six seven eight"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut text = String::new();
    let first = res.chunk().await.unwrap().expect("the stream has begun");
    text.push_str(&String::from_utf8_lossy(&first));

    sb.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // A fresh client, so no pooled connection is reused.
        let probe = util::client()
            .get(format!("{}/healthz", sb.url))
            .send()
            .await;
        if probe.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "still accepting after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while let Some(chunk) = res.chunk().await.expect("the stream is not cut") {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains("eight"), "{text}");
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    sb.assert_exits_cleanly(Duration::from_secs(10), "once the stream is done");
}

/// An open chat event stream (a browser tab) never ends by itself; on SIGTERM it is closed, so
/// the shutdown is not held up until the tab goes away.
#[tokio::test]
async fn sigterm_closes_open_chat_event_streams() {
    let mut sb = Switchboard::start(&[]).await;
    let http = util::client();
    let chat = sb.create_chat(&http).await;
    let mut events = http
        .get(format!("{}/api/chats/{chat}/events", sb.url))
        .send()
        .await
        .unwrap();
    assert_eq!(events.status(), 200);
    let first = events.chunk().await.unwrap().expect("the stream is open");
    assert!(String::from_utf8_lossy(&first).contains("connected"));

    sb.signal("TERM");
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while events.chunk().await.ok().flatten().is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the event stream was not closed");
    sb.assert_exits_cleanly(Duration::from_secs(5), "with an event stream open");
}

#[tokio::test]
async fn a_crash_mid_reply_leaves_it_interrupted_with_its_text() {
    let mock = mock_openrouter::MockOpenRouter::start(Default::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let env = [("OPENROUTER_URL", mock.api_url())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut sb = Switchboard::start_in(dir.path(), &env).await;
    let http = util::client();
    let chat = sb.create_chat(&http).await;
    let res = http
        .post(format!("{}/api/chats/{chat}/messages", sb.url))
        .json(&json!({"content": "take your time", "model": "mock/slow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    // Wait until some of the reply has been checkpointed, then kill -9.
    let deadline = Instant::now() + Duration::from_secs(15);
    let before = loop {
        let body: Value = http
            .get(format!("{}/api/chats/{chat}", sb.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let text = body["messages"][1]["content"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if text.len() > 20 {
            break text;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    sb.signal("KILL");
    sb.wait(Duration::from_secs(5)).expect("killed");

    let sb = Switchboard::start_in(dir.path(), &env).await;
    let body: Value = http
        .get(format!("{}/api/chats/{chat}", sb.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reply = &body["messages"][1];
    assert_eq!(reply["status"], "interrupted");
    let after = reply["content"].as_str().unwrap();
    assert!(
        after.starts_with(&before) && after.len() > before.len(),
        "the text received before the crash is kept: {before:?} → {after:?}"
    );
    assert_eq!(body["messages"][0]["content"], "take your time");
}

/// A whole session with known secrets at the most verbose log level: no log line may contain
/// any of them.
#[tokio::test]
async fn no_secret_in_any_log_line_of_a_whole_session() {
    let mock = mock_openrouter::MockOpenRouter::start(Default::default())
        .await
        .unwrap();
    let url = mock.api_url();
    let mut sb = Switchboard::start(&[
        ("OPENROUTER_URL", url.as_str()),
        ("OPENROUTER_API_KEY", "sk-or-SERVERKEY-1111"),
        ("CODE", "CODE-SECRET-2222"),
        ("RUST_LOG", "trace"),
    ])
    .await;
    let http = util::client();
    let login = http
        .post(format!("{}/api/login", sb.url))
        .json(&json!({"code": "CODE-SECRET-2222"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 204);
    for auth in [
        "Bearer nk-CODE-SECRET-2222",
        "Bearer nk-WRONG-SECRET-3333",
        "Bearer sk-or-OWNKEY-4444",
    ] {
        http.post(format!("{}/api/openrouter/v1/chat/completions", sb.url))
            .header("authorization", auth)
            .json(&json!({"model": "mock/echo", "stream": true, "messages": [{"role": "user", "content": "x"}]}))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
    }
    http.post(format!("{}/v1/chat/completions", sb.url))
        .header("authorization", "Bearer CODE-SECRET-2222")
        .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    let chat: Value = http
        .post(format!("{}/api/chats", sb.url))
        .header("authorization", "Bearer nk-CODE-SECRET-2222")
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    http.post(format!(
        "{}/api/chats/{}/messages",
        sb.url,
        chat["id"].as_str().unwrap()
    ))
    .header("authorization", "Bearer nk-CODE-SECRET-2222")
    .json(&json!({"content": "# Heading\n\n**PRIVATE-WORDS-5555** in a *chat*", "model": "mock/echo"}))
    .send()
    .await
    .unwrap();
    // Wait for the reply (its markdown rendered on the server) and its title to be stored.
    let chat_url = format!("{}/api/chats/{}", sb.url, chat["id"].as_str().unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let body: Value = http
            .get(&chat_url)
            .header("authorization", "Bearer nk-CODE-SECRET-2222")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["messages"][1]["status"] == "complete" && body["title"] != "New chat" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The page renders the chat's markdown too.
    let page = http
        .get(format!("{}/chats/{}", sb.url, chat["id"].as_str().unwrap()))
        .header("authorization", "Bearer nk-CODE-SECRET-2222")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("PRIVATE-WORDS-5555"));
    let logs = sb.stop_and_logs();
    assert!(logs.lines().count() > 20, "trace logging is on: {logs}");
    for secret in [
        "SERVERKEY-1111",
        "CODE-SECRET-2222",
        "WRONG-SECRET-3333",
        "OWNKEY-4444",
        // Users' words are not logged either, not even at trace.
        "PRIVATE-WORDS",
    ] {
        let hit = logs.lines().find(|l| l.contains(secret));
        assert!(
            hit.is_none(),
            "secret or user content in a log line: {hit:?}"
        );
    }
}

/// Start a reply that streams for a few seconds, wait until its first words are stored, and
/// return the chat id.
async fn a_reply_under_way(sb: &Switchboard, text: &str) -> String {
    let http = util::client();
    let chat = sb.create_chat(&http).await;
    let res = http
        .post(format!("{}/api/chats/{chat}/messages", sb.url))
        .json(&json!({"content": text, "model": "mock/echo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body: Value = http
            .get(format!("{}/api/chats/{chat}", sb.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if !body["messages"][1]["content"]
            .as_str()
            .unwrap_or("")
            .is_empty()
        {
            return chat;
        }
        assert!(Instant::now() < deadline, "the reply never began: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn reply_after_restart(dir: &std::path::Path, env: &[(&str, &str)], chat: &str) -> Value {
    let sb = Switchboard::start_in(dir, env).await;
    let body: Value = util::client()
        .get(format!("{}/api/chats/{chat}", sb.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["messages"][1].clone()
}

/// A deploy sends SIGTERM: the process stops taking requests but lets the reply it is generating
/// finish (within `SWITCHBOARD_SHUTDOWN_GRACE`), and only then exits.
#[tokio::test]
async fn sigterm_lets_a_running_reply_finish() {
    let mock = mock_openrouter::MockOpenRouter::start(mock_openrouter::MockConfig {
        delta_ms: 40,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let api_url = mock.api_url();
    let env = [("OPENROUTER_URL", api_url.as_str())];
    let mut sb = Switchboard::start_in(dir.path(), &env).await;
    let text: String = (0..40).map(|i| format!("w{i} ")).collect();
    let text = text.trim_end();
    let chat = a_reply_under_way(&sb, text).await;
    sb.signal("TERM");
    let status = sb.exited(Duration::from_secs(30)).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "exits 0 once the reply is finished: {status:?}"
    );
    let reply = reply_after_restart(dir.path(), &env, &chat).await;
    assert_eq!(reply["status"], "complete", "{reply}");
    assert_eq!(reply["content"], text);
}

/// When the grace period runs out, the reply still running is closed as `interrupted` with the
/// text it has, by the process itself, before it exits.
#[tokio::test]
async fn sigterm_with_a_short_grace_leaves_the_reply_interrupted_with_its_text() {
    let mock = mock_openrouter::MockOpenRouter::start(mock_openrouter::MockConfig {
        delta_ms: 40,
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let api_url = mock.api_url();
    let env = [
        ("OPENROUTER_URL", api_url.as_str()),
        ("SWITCHBOARD_SHUTDOWN_GRACE", "200ms"),
    ];
    let mut sb = Switchboard::start_in(dir.path(), &env).await;
    let text: String = (0..400).map(|i| format!("w{i} ")).collect();
    let chat = a_reply_under_way(&sb, text.trim_end()).await;
    sb.signal("TERM");
    let status = sb.exited(Duration::from_secs(30)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let logs = sb.logs();
    assert!(
        logs.contains("shutdown grace is over"),
        "the process closed the reply itself: {logs}"
    );
    let reply = reply_after_restart(dir.path(), &env, &chat).await;
    assert_eq!(reply["status"], "interrupted", "{reply}");
    let kept = reply["content"].as_str().unwrap();
    assert!(!kept.is_empty() && text.starts_with(kept), "{kept:?}");
}

/// SQLite serves one process: a second one on the same file stops at start with one line that
/// says why, instead of both writing and each closing the other's replies.
#[tokio::test]
async fn a_second_process_on_the_same_sqlite_file_is_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Switchboard::start_in(dir.path(), &[]).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .current_dir(dir.path())
        .env_clear()
        .env("SWITCHBOARD_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("another Switchboard process is using")
            && errors[0].contains("PostgreSQL"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening on"));
}
