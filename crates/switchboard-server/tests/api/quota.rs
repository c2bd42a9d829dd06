//! Issue 20, item 6: storage quotas per workspace. Anyone with a made-up own key could fill the
//! disk on a `CODE` server with imports; now every write that adds data is checked first, and a
//! refused one writes nothing.

use serde_json::{Value, json};

use crate::chats::{create_chat, settled};
use crate::helpers::{TestApp, spawn_app};

async fn post(app: &TestApp, path: &str, auth: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = app.http.post(app.at(path)).json(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn assert_quota_exceeded(status: u16, body: &Value, var: &str) {
    assert_eq!(status, 507, "{body}");
    assert_eq!(body["error"]["code"], "quota_exceeded", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(var), "{message}");
}

fn backup(sessions: usize) -> Value {
    let sessions: Vec<Value> = (0..sessions)
        .map(|i| {
            json!({"id": format!("s{i}"), "topic": format!("Chat {i}"),
                   "messages": [{"id": "a", "role": "user", "content": "hello"}],
                   "mask": {"context": []}})
        })
        .collect();
    json!({"chat-next-web-store": {"sessions": sessions}})
}

async fn message_count(app: &TestApp, chat: &str) -> usize {
    let (status, body) = app.get_json(&format!("/api/chats/{chat}")).await;
    assert_eq!(status, 200, "{body}");
    body["messages"].as_array().unwrap().len()
}

async fn chat_count(app: &TestApp) -> usize {
    let (status, body) = app.get_json("/api/chats").await;
    assert_eq!(status, 200, "{body}");
    body["chats"].as_array().unwrap().len()
}

#[tokio::test]
async fn writes_over_a_workspace_s_quota_are_507_and_store_nothing() {
    let app = spawn_app(&[
        ("SWITCHBOARD_WORKSPACE_QUOTA_BYTES", "20000"),
        ("SWITCHBOARD_WORKSPACE_MAX_CHATS", "2"),
    ])
    .await;
    let chat = create_chat(&app, None).await;
    // Chats: two at most.
    let (status, second) = post(&app, "/api/chats", None, &json!({})).await;
    assert_eq!(status, 201, "{second}");
    let (status, body) = post(&app, "/api/chats", None, &json!({})).await;
    assert_quota_exceeded(status, &body, "SWITCHBOARD_WORKSPACE_MAX_CHATS");
    let (status, body) = post(&app, "/api/import/nextchat", None, &backup(1)).await;
    assert_quota_exceeded(status, &body, "SWITCHBOARD_WORKSPACE_MAX_CHATS");
    assert_eq!(chat_count(&app).await, 2);
    // A message that alone would pass the quota: refused before anything is written.
    let big = json!({"content": "x".repeat(25_000), "model": "mock/echo"});
    let (status, body) = post(&app, &format!("/api/chats/{chat}/messages"), None, &big).await;
    assert_quota_exceeded(status, &body, "SWITCHBOARD_WORKSPACE_QUOTA_BYTES");
    assert_eq!(message_count(&app, &chat).await, 0);
    // Within it: stored and answered.
    let small = json!({"content": "y".repeat(8_000), "model": "mock/echo"});
    let (status, body) = post(&app, &format!("/api/chats/{chat}/messages"), None, &small).await;
    assert_eq!(status, 202, "{body}");
    settled(&app, &chat).await;
    assert_eq!(message_count(&app, &chat).await, 2);
    // The echoed reply took the workspace past its quota: the next message is refused.
    let (status, body) = post(&app, &format!("/api/chats/{chat}/messages"), None, &small).await;
    assert_quota_exceeded(status, &body, "SWITCHBOARD_WORKSPACE_QUOTA_BYTES");
    assert_eq!(message_count(&app, &chat).await, 2);
    // A fork would be a third chat; with room for it, it would still copy the chat's bytes.
    let reply = app.get_json(&format!("/api/chats/{chat}")).await.1["messages"][1]["id"].clone();
    let fork_path = format!("/api/chats/{chat}/fork");
    let fork_body = json!({ "message_id": reply });
    let (status, body) = post(&app, &fork_path, None, &fork_body).await;
    assert_quota_exceeded(status, &body, "SWITCHBOARD_WORKSPACE_MAX_CHATS");
    let second = second["id"].as_str().unwrap();
    let res = app
        .http
        .delete(app.at(&format!("/api/chats/{second}")))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let (status, body) = post(&app, &fork_path, None, &fork_body).await;
    assert_quota_exceeded(status, &body, "SWITCHBOARD_WORKSPACE_QUOTA_BYTES");
    assert_eq!(chat_count(&app).await, 1);
    // Deleting the chat frees its bytes and its place.
    let res = app
        .http
        .delete(app.at(&format!("/api/chats/{chat}")))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let (status, body) = post(&app, "/api/chats", None, &json!({})).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn an_import_over_the_quota_writes_no_chat() {
    let app = spawn_app(&[("SWITCHBOARD_WORKSPACE_QUOTA_BYTES", "4096")]).await;
    let mut big = backup(3);
    big["chat-next-web-store"]["sessions"][2]["messages"][0]["content"] = json!("z".repeat(5_000));
    let (status, body) = post(&app, "/api/import/nextchat", None, &big).await;
    assert_quota_exceeded(status, &body, "SWITCHBOARD_WORKSPACE_QUOTA_BYTES");
    assert_eq!(
        chat_count(&app).await,
        0,
        "not even the chats before the big one"
    );
    let (status, body) = post(&app, "/api/import/nextchat", None, &backup(3)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(chat_count(&app).await, 3);
}

/// A made-up own key gets the small quota until a configured provider has completed a reply for
/// it; then the workspace's full quota.
#[tokio::test]
async fn an_own_key_gets_the_small_quota_until_it_has_paid_for_a_reply() {
    let app = spawn_app(&[
        ("CODE", "team-code"),
        ("SWITCHBOARD_UNVERIFIED_QUOTA_BYTES", "4096"),
    ])
    .await;
    const KEY: &str = "Bearer sk-or-made-up-key";
    let key = Some(KEY);
    let chat = create_chat(&app, key).await;
    let five_k = json!({"content": "k".repeat(5_000), "model": "mock/echo"});
    let path = format!("/api/chats/{chat}/messages");
    let (status, body) = post(&app, &path, key, &five_k).await;
    assert_quota_exceeded(status, &body, "SWITCHBOARD_UNVERIFIED_QUOTA_BYTES");
    let (status, body) = post(&app, "/api/import/nextchat", key, &{
        let mut b = backup(1);
        b["chat-next-web-store"]["sessions"][0]["messages"][0]["content"] =
            json!("i".repeat(5_000));
        b
    })
    .await;
    assert_quota_exceeded(status, &body, "SWITCHBOARD_UNVERIFIED_QUOTA_BYTES");
    // The same sizes are fine for a code's workspace.
    let code = Some("Bearer nk-team-code");
    let code_chat = create_chat(&app, code).await;
    let (status, body) = post(
        &app,
        &format!("/api/chats/{code_chat}/messages"),
        code,
        &five_k,
    )
    .await;
    assert_eq!(status, 202, "{body}");
    // A small message, answered by the provider: the key has paid for a reply.
    let (status, body) = post(
        &app,
        &path,
        key,
        &json!({"content": "hi", "model": "mock/echo"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    settled_with(&app, &chat, KEY).await;
    let (status, body) = post(&app, &path, key, &five_k).await;
    assert_eq!(status, 202, "{body}");
}

async fn settled_with(app: &TestApp, chat: &str, auth: &str) {
    for _ in 0..1000 {
        let body: Value = app
            .http
            .get(app.at(&format!("/api/chats/{chat}")))
            .header("authorization", auth)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let streaming = body["messages"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["status"] == "streaming"));
        if body["generating"].is_null() && !streaming {
            assert_eq!(body["messages"][1]["status"], "complete", "{body}");
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the reply never finished");
}

/// One import at a time per workspace: a second one while the first is reading its body is 409.
#[tokio::test]
async fn a_second_import_into_a_workspace_waits_for_the_first() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(&[]).await;
    let authority = app.url.trim_start_matches("http://").to_string();
    let body = backup(1).to_string();
    let mut first = tokio::net::TcpStream::connect(&authority).await.unwrap();
    let head = format!(
        "POST /api/import/nextchat HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
        body.len()
    );
    first.write_all(head.as_bytes()).await.unwrap();
    // `100 Continue` comes when the handler starts reading the body: it holds the import slot.
    let mut interim = [0u8; 25];
    first.read_exact(&mut interim).await.unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    let (status, second) = post(&app, "/api/import/nextchat", None, &backup(1)).await;
    assert_eq!(status, 409, "{second}");
    assert_eq!(second["error"]["code"], "import_running");
    first.write_all(body.as_bytes()).await.unwrap();
    let mut answer = String::new();
    first.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 201 "), "{answer}");
    // Once it is done, the workspace may import again.
    let (status, body) = post(&app, "/api/import/nextchat", None, &backup(1)).await;
    assert_eq!(status, 201, "{body}");
}
