//! Tools through MCP, end to end: a real third-party MCP server
//! (`@modelcontextprotocol/server-everything`, installed by `npm ci --prefix tests/mcp`) started
//! by the server, the mock's `mock/use-tool` model asking for calls, and the tool loop running in
//! the detached generation. Skipped, with the reason printed, only where node is missing.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::chats::{events_until, send, settled};
use crate::helpers::{TestApp, captured_logs, spawn_app};

/// The `everything` server's entry point, or `None` (printed) when node is missing.
fn everything() -> Option<PathBuf> {
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: node is not installed (the MCP tool tests run a node MCP server)");
        return None;
    }
    let entry = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        entry.exists(),
        "{} is missing: run `npm ci --prefix tests/mcp`",
        entry.display()
    );
    Some(entry)
}

/// An app whose MCP config has the `everything` server over stdio with `entry` (extra keys
/// merged in), and the server started.
async fn app_with_everything(
    entry: &std::path::Path,
    server: Value,
    env: &[(&str, &str)],
) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = json!({
        "command": "node",
        "args": [entry, "stdio"],
        "env": {"EVERYTHING_SECRET_TOKEN": "mcp-secret-do-not-log"},
    });
    for (k, v) in server.as_object().unwrap() {
        config[k] = v.clone();
    }
    let path = dir.path().join("mcp.json");
    std::fs::write(
        &path,
        json!({"mcpServers": {"everything": config}}).to_string(),
    )
    .unwrap();
    let path = path.to_str().unwrap().to_owned();
    let mut vars = vec![("SWITCHBOARD_MCP_CONFIG", path.as_str())];
    vars.extend_from_slice(env);
    let app = spawn_app(&vars).await;
    app.state.chats().mcp().unwrap().wait_started().await;
    (app, dir)
}

async fn tool_chat(app: &TestApp) -> String {
    let res = app
        .http
        .post(app.at("/api/chats"))
        .json(&json!({"settings": {"mcp_servers": ["everything"], "model": "mock/use-tool"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn last(chat: &Value) -> &Value {
    chat["messages"].as_array().unwrap().last().unwrap()
}

/// The chat's latest event id, to follow its events from now on.
async fn last_event_id(app: &TestApp, chat: &str) -> i64 {
    let (_, body) = app.get_json(&format!("/api/chats/{chat}")).await;
    body["last_event_id"].as_i64().unwrap_or(0)
}

#[tokio::test]
async fn a_tool_runs_on_a_real_mcp_server_over_stdio_and_the_model_gets_its_result() {
    let Some(entry) = everything() else { return };
    let (app, _dir) = app_with_everything(&entry, json!({"approval": "auto"}), &[]).await;

    let (status, tools) = app.get_json("/api/tools").await;
    assert_eq!(status, 200);
    let server = &tools["servers"][0];
    assert_eq!(server["name"], "everything");
    assert_eq!(server["state"], "ready", "{tools}");
    assert_eq!(server["transport"], "stdio");
    let echo = server["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "echo")
        .expect("echo is listed");
    assert!(echo["input_schema"]["properties"]["message"].is_object());
    let listing = tools.to_string();
    assert!(!listing.contains("mcp-secret-do-not-log") && !listing.contains("stdio\"]"));

    let chat = tool_chat(&app).await;
    let (status, _) = send(
        &app,
        &chat,
        json!({"content": "call echo {\"message\":\"hi there\"}"}),
    )
    .await;
    assert_eq!(status, 202);
    let body = settled(&app, &chat).await;
    let reply = last(&body);
    assert_eq!(reply["status"], "complete", "{reply}");
    assert!(
        reply["content"]
            .as_str()
            .unwrap()
            .contains("Echo: hi there"),
        "{reply}"
    );
    let call = &reply["tool_calls"][0];
    assert_eq!(call["name"], "echo");
    assert_eq!(call["server"], "everything");
    assert_eq!(call["state"], "done");
    assert_eq!(call["result"], "Echo: hi there");
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"message": "hi there"}));

    // The model was offered the tool, and saw its call and result before answering.
    let upstream: Vec<Value> = app
        .mock
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/chat/completions"))
        .map(|r| r.body)
        .collect();
    let first = upstream
        .iter()
        .find(|b| b["model"] == "mock/use-tool")
        .unwrap();
    assert!(
        first["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["function"]["name"] == "echo")
    );
    let second = upstream
        .iter()
        .filter(|b| b["model"] == "mock/use-tool")
        .nth(1)
        .expect("a second request carries the result");
    let messages = second["messages"].as_array().unwrap();
    let n = messages.len();
    assert_eq!(messages[n - 2]["role"], "assistant");
    assert_eq!(messages[n - 2]["tool_calls"][0]["id"], call["id"]);
    assert_eq!(messages[n - 1]["role"], "tool");
    assert_eq!(messages[n - 1]["tool_call_id"], call["id"]);
    assert_eq!(messages[n - 1]["content"], "Echo: hi there");

    // Later turns carry the call, its result and the answer in their history.
    app.mock.clear();
    send(
        &app,
        &chat,
        json!({"content": "thanks", "model": "mock/echo"}),
    )
    .await;
    settled(&app, &chat).await;
    let later = app
        .mock
        .requests()
        .into_iter()
        .find(|r| r.body["model"] == "mock/echo")
        .unwrap()
        .body;
    let roles: Vec<&str> = later["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant", "tool", "assistant", "user"]);
    assert!(!captured_logs().contains("mcp-secret-do-not-log"));
}

#[tokio::test]
async fn ask_waits_for_a_decision_from_any_device_and_a_denial_is_told_to_the_model() {
    let Some(entry) = everything() else { return };
    let (app, _dir) = app_with_everything(&entry, json!({}), &[]).await;
    let chat = tool_chat(&app).await;

    // Denied.
    let after = last_event_id(&app, &chat).await;
    send(
        &app,
        &chat,
        json!({"content": "call echo {\"message\":\"secret plans\"}"}),
    )
    .await;
    let events = events_until(&app, &chat, after, "tool_approval").await;
    let (_, _, approval) = events.last().unwrap();
    let call_id = approval["call"]["id"].as_str().unwrap().to_owned();
    assert_eq!(approval["call"]["name"], "echo");
    assert_eq!(approval["call"]["state"], "waiting");
    // A reload shows the call waiting.
    let (_, body) = app.get_json(&format!("/api/chats/{chat}")).await;
    assert_eq!(last(&body)["status"], "streaming");
    assert_eq!(last(&body)["tool_calls"][0]["state"], "waiting");
    // Bad decisions change nothing.
    let decide = |id: &str, body: Value| {
        app.http
            .post(app.at(&format!("/api/chats/{chat}/tool-calls/{id}")))
            .json(&body)
            .send()
    };
    let res = decide(&call_id, json!({"approve": "yes"})).await.unwrap();
    assert_eq!(res.status(), 400);
    let error: Value = res.json().await.unwrap();
    assert!(error["error"]["message"].is_string());
    let res = decide("call_nope", json!({"approve": true})).await.unwrap();
    assert_eq!(res.status(), 409);
    // A second device (another client, same workspace) denies.
    let other = reqwest::Client::builder().no_proxy().build().unwrap();
    let res = other
        .post(app.at(&format!("/api/chats/{chat}/tool-calls/{call_id}")))
        .json(&json!({"approve": false}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let body = settled(&app, &chat).await;
    let reply = last(&body);
    assert_eq!(reply["tool_calls"][0]["state"], "denied");
    assert_eq!(
        reply["content"], "Tool result: the user denied this call",
        "{reply}"
    );
    // Decided once: a second decision finds nothing waiting.
    let res = decide(&call_id, json!({"approve": true})).await.unwrap();
    assert_eq!(res.status(), 409);

    // Approved.
    let after = last_event_id(&app, &chat).await;
    send(
        &app,
        &chat,
        json!({"content": "call echo {\"message\":\"go ahead\"}"}),
    )
    .await;
    let events = events_until(&app, &chat, after, "tool_approval").await;
    let call_id = events.last().unwrap().2["call"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = decide(&call_id, json!({"approve": true})).await.unwrap();
    assert_eq!(res.status(), 204);
    let body = settled(&app, &chat).await;
    let reply = last(&body);
    assert_eq!(reply["tool_calls"][0]["state"], "done");
    assert_eq!(reply["content"], "Tool result: Echo: go ahead", "{reply}");
}

#[tokio::test]
async fn refused_tools_timeouts_and_stop_go_back_to_the_model_as_results() {
    let Some(entry) = everything() else { return };
    let (app, _dir) = app_with_everything(
        &entry,
        json!({"approval": "auto", "tools": ["echo", "trigger-long-running-operation"]}),
        &[("SWITCHBOARD_TOOL_TIMEOUT", "1s")],
    )
    .await;
    let (_, tools) = app.get_json("/api/tools").await;
    let sum = tools["servers"][0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "get-sum")
        .expect("get-sum is listed");
    assert_eq!(sum["allowed"], false);
    let chat = tool_chat(&app).await;

    // Not in "tools": never offered, and refused when called anyway.
    send(
        &app,
        &chat,
        json!({"content": "call get-sum {\"a\":1,\"b\":2}"}),
    )
    .await;
    let body = settled(&app, &chat).await;
    let reply = last(&body);
    assert_eq!(reply["status"], "complete");
    assert_eq!(reply["tool_calls"][0]["state"], "refused");
    assert!(
        reply["content"]
            .as_str()
            .unwrap()
            .starts_with("Tool result: refused: the tool `get-sum` is not allowed"),
        "{reply}"
    );
    let offered = app
        .mock
        .requests()
        .into_iter()
        .find(|r| r.body["model"] == "mock/use-tool")
        .unwrap()
        .body;
    assert!(
        !offered["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["function"]["name"] == "get-sum")
    );

    // Over the timeout: the model is told.
    send(
        &app,
        &chat,
        json!({"content": "call trigger-long-running-operation {\"duration\":30,\"steps\":3}"}),
    )
    .await;
    let body = settled(&app, &chat).await;
    let reply = last(&body);
    assert_eq!(reply["status"], "complete");
    assert_eq!(reply["tool_calls"][0]["state"], "error");
    assert_eq!(
        reply["content"],
        "Tool result: error: the tool did not answer within 1s"
    );
}

#[tokio::test]
async fn stop_during_a_tool_call_cancels_it() {
    let Some(entry) = everything() else { return };
    let (app, _dir) = app_with_everything(&entry, json!({"approval": "auto"}), &[]).await;
    let chat = tool_chat(&app).await;
    let after = last_event_id(&app, &chat).await;
    send(
        &app,
        &chat,
        json!({"content": "call trigger-long-running-operation {\"duration\":60,\"steps\":2}"}),
    )
    .await;
    // Wait for the call to be running.
    let mut from = after;
    loop {
        let events = events_until(&app, &chat, from, "tool_calls").await;
        let (id, _, data) = events.last().unwrap();
        from = *id;
        if data["tool_calls"][0]["state"] == "running" {
            break;
        }
    }
    let res = app
        .http
        .post(app.at(&format!("/api/chats/{chat}/stop")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let body = settled(&app, &chat).await;
    let reply = last(&body);
    assert_eq!(reply["status"], "stopped");
    assert_eq!(reply["tool_calls"][0]["state"], "cancelled");
}

#[tokio::test]
async fn past_the_step_limit_the_model_is_told_to_answer_without_tools() {
    let Some(entry) = everything() else { return };
    let (app, _dir) = app_with_everything(
        &entry,
        json!({"approval": "auto"}),
        &[("SWITCHBOARD_MAX_TOOL_STEPS", "0")],
    )
    .await;
    let chat = tool_chat(&app).await;
    send(
        &app,
        &chat,
        json!({"content": "call echo {\"message\":\"again\"}"}),
    )
    .await;
    let body = settled(&app, &chat).await;
    let reply = last(&body);
    assert_eq!(reply["status"], "complete");
    assert_eq!(reply["tool_calls"][0]["state"], "refused");
    assert!(
        reply["content"]
            .as_str()
            .unwrap()
            .starts_with("Tool result: refused: this reply reached its limit of 0 rounds"),
        "{reply}"
    );
    let last_request = app
        .mock
        .requests()
        .into_iter()
        // (The title request that follows offers no tools.)
        .rfind(|r| r.body["model"] == "mock/use-tool" && r.body.get("tools").is_some())
        .unwrap()
        .body;
    assert_eq!(last_request["tool_choice"], "none");
}

/// `everything` serving streamable HTTP on a free port; killed when dropped.
struct HttpEverything {
    child: tokio::process::Child,
    url: String,
}

impl HttpEverything {
    async fn start(entry: &std::path::Path) -> HttpEverything {
        use tokio::io::AsyncBufReadExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = tokio::process::Command::new("node")
            .arg(entry)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // It says so on stderr once it listens.
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("listening on port") {
                break;
            }
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        HttpEverything {
            child,
            url: format!("http://127.0.0.1:{port}/mcp"),
        }
    }
}

#[tokio::test]
async fn a_tool_runs_on_a_real_mcp_server_over_streamable_http() {
    let Some(entry) = everything() else { return };
    let mut server = HttpEverything::start(&entry).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcp.json");
    let config = json!({"mcpServers": {"everything": {
        "url": server.url,
        "headers": {"X-Api-Key": "mcp-header-secret-do-not-log"},
        "approval": "auto",
    }}});
    std::fs::write(&path, config.to_string()).unwrap();
    let app = spawn_app(&[("SWITCHBOARD_MCP_CONFIG", path.to_str().unwrap())]).await;
    app.state.chats().mcp().unwrap().wait_started().await;
    let (_, tools) = app.get_json("/api/tools").await;
    assert_eq!(tools["servers"][0]["state"], "ready", "{tools}");
    assert_eq!(tools["servers"][0]["transport"], "http");
    assert!(!tools.to_string().contains(&server.url));

    let chat = tool_chat(&app).await;
    send(
        &app,
        &chat,
        json!({"content": "call echo {\"message\":\"hi there\"}"}),
    )
    .await;
    let body = settled(&app, &chat).await;
    let reply = last(&body);
    assert_eq!(reply["content"], "Tool result: Echo: hi there", "{reply}");
    assert_eq!(reply["tool_calls"][0]["state"], "done");
    assert!(!captured_logs().contains("mcp-header-secret-do-not-log"));
    server.child.kill().await.unwrap();
}

#[tokio::test]
async fn a_server_that_dies_mid_call_fails_the_call_and_is_started_again() {
    let Some(entry) = everything() else { return };
    let (app, _dir) = app_with_everything(&entry, json!({"approval": "auto"}), &[]).await;
    let mcp = app.state.chats().mcp().unwrap().clone();
    let pid = mcp.servers()[0].pid.expect("a stdio server has a process");
    let chat = tool_chat(&app).await;
    let after = last_event_id(&app, &chat).await;
    send(
        &app,
        &chat,
        json!({"content": "call trigger-long-running-operation {\"duration\":60,\"steps\":2}"}),
    )
    .await;
    let mut from = after;
    loop {
        let events = events_until(&app, &chat, from, "tool_calls").await;
        let (id, _, data) = events.last().unwrap();
        from = *id;
        if data["tool_calls"][0]["state"] == "running" {
            break;
        }
    }
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let body = settled(&app, &chat).await;
    let reply = last(&body);
    assert_eq!(reply["status"], "complete", "{reply}");
    assert_eq!(reply["tool_calls"][0]["state"], "error");
    assert!(
        reply["content"]
            .as_str()
            .unwrap()
            .starts_with("Tool result: error: "),
        "{reply}"
    );

    mcp.wait_until("everything", |state, now| {
        state == switchboard_chat::mcp::ServerState::Ready && now.is_some_and(|p| p != pid)
    })
    .await;
    send(
        &app,
        &chat,
        json!({"content": "call echo {\"message\":\"back\"}"}),
    )
    .await;
    let body = settled(&app, &chat).await;
    assert_eq!(last(&body)["content"], "Tool result: Echo: back");
}

#[tokio::test]
async fn chats_may_only_name_configured_tool_servers() {
    let app = spawn_app(&[]).await;
    let res = app
        .http
        .post(app.at("/api/chats"))
        .json(&json!({"settings": {"mcp_servers": ["nope"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let error: Value = res.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mcp_servers")
    );
    let (status, tools) = app.get_json("/api/tools").await;
    assert_eq!(status, 200);
    assert_eq!(tools, json!({"servers": []}));

    // A server the operator has since removed stays in a chat that named it: saving the chat's
    // other settings with it is not refused, and its replies just go without its tools.
    let chat = crate::chats::create_chat(&app, None).await;
    let patch = switchboard_store::ChatPatch {
        title: None,
        settings: Some(switchboard_store::ChatSettings {
            mcp_servers: Some(vec!["gone".into()]),
            ..Default::default()
        }),
    };
    app.state
        .store()
        .update_chat("default", &chat, &patch)
        .await
        .unwrap()
        .unwrap();
    let res = app
        .http
        .patch(app.at(&format!("/api/chats/{chat}")))
        .json(&json!({"settings": {"mcp_servers": ["gone"], "temperature": 0.5}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .http
        .patch(app.at(&format!("/api/chats/{chat}")))
        .json(&json!({"settings": {"mcp_servers": ["gone", "new"]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let (status, _) = send(
        &app,
        &chat,
        json!({"content": "hello", "model": "mock/echo"}),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(last(&settled(&app, &chat).await)["status"], "complete");
}
