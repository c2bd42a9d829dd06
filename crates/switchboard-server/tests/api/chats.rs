//! The chat engine end to end: generations stored before and after the provider is called,
//! errors that keep partial text, stop, resumable events, workspaces, import.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with_mock};
use mock_openrouter::MockConfig;

pub async fn create_chat(app: &TestApp, auth: Option<&str>) -> String {
    let mut req = app.http.post(app.at("/api/chats")).json(&json!({}));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

pub async fn send(app: &TestApp, chat: &str, body: Value) -> (u16, Value) {
    let res = app
        .http
        .post(app.at(&format!("/api/chats/{chat}/messages")))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A new chat with one finished turn (`content`, answered by `mock/echo`): its id and the chat.
pub async fn chat_with_one_turn(app: &TestApp, content: &str) -> (String, Value) {
    let chat = create_chat(app, None).await;
    let (status, sent) = send(
        app,
        &chat,
        json!({"content": content, "model": "mock/echo"}),
    )
    .await;
    assert_eq!(status, 202, "{sent}");
    let body = settled(app, &chat).await;
    (chat, body)
}

/// Poll until no reply is generating; returns the chat.
pub async fn settled(app: &TestApp, chat: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = app.get_json(&format!("/api/chats/{chat}")).await;
        assert_eq!(status, 200, "{body}");
        let streaming = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["status"] == "streaming");
        if body["generating"].is_null() && !streaming {
            return body;
        }
        assert!(Instant::now() < deadline, "never settled: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn last(chat: &Value) -> &Value {
    chat["messages"].as_array().unwrap().last().unwrap()
}

/// Read `GET /api/chats/{id}/events` from `after` until an event of `until` kind arrives.
pub async fn events_until(
    app: &TestApp,
    chat: &str,
    after: i64,
    until: &str,
) -> Vec<(i64, String, Value)> {
    read_events_until(open_events(app, chat, after).await, until).await
}

/// Open `GET /api/chats/{id}/events`: once this returns, the server is following the chat.
pub async fn open_events(app: &TestApp, chat: &str, after: i64) -> reqwest::Response {
    let res = app
        .http
        .get(app.at(&format!("/api/chats/{chat}/events?after={after}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    res
}

/// Read an open event stream until an event of `until` kind arrives.
pub async fn read_events_until(
    mut res: reqwest::Response,
    until: &str,
) -> Vec<(i64, String, Value)> {
    let mut buf = String::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let chunk = tokio::time::timeout(Duration::from_secs(20), res.chunk())
            .await
            .expect("events keep coming")
            .unwrap()
            .expect("stream open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let (mut id, mut kind, mut data) = (None, None, None);
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse::<i64>().ok();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    kind = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str::<Value>(v).unwrap());
                }
            }
            if let (Some(id), Some(kind), Some(data)) = (id, kind, data) {
                let done = kind == until;
                out.push((id, kind, data));
                if done {
                    return out;
                }
            }
        }
        assert!(Instant::now() < deadline);
    }
}

#[tokio::test]
async fn reasoning_reply_is_streamed_and_stored() {
    let app = spawn_app(&[]).await;
    let chat = create_chat(&app, None).await;
    let (status, ids) = send(
        &app,
        &chat,
        json!({"content": "hi", "model": "mock/reasoning"}),
    )
    .await;
    assert_eq!(status, 202, "{ids}");
    let events = events_until(&app, &chat, 0, "done").await;
    let body = settled(&app, &chat).await;
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["id"], ids["user_message_id"]);
    assert_eq!(msgs[0]["content"], "hi");
    let reply = &msgs[1];
    assert_eq!(reply["id"], ids["assistant_message_id"]);
    assert_eq!(reply["status"], "complete");
    assert!(!reply["content"].as_str().unwrap().is_empty());
    assert!(!reply["reasoning"].as_str().unwrap().is_empty());
    assert!(reply["usage"]["reasoning_tokens"].as_i64().unwrap() > 0);
    assert!(reply["usage"]["cost"].as_f64().unwrap() > 0.0);
    assert!(reply["first_token_at"].is_i64());
    // When the reasoning ended is stored, so "thought for" is right after a reload too.
    let ended = reply["reasoning_ended_at"]
        .as_i64()
        .expect("reasoning_ended_at");
    assert!(ended >= reply["first_token_at"].as_i64().unwrap());
    assert!(ended <= reply["finished_at"].as_i64().unwrap());
    assert_eq!(reply["finish_reason"], "stop");
    // Ids only increase; the deltas seen rebuild a prefix of the stored reply (a finished
    // reply's deltas are compacted away, so a late subscriber may see none), and `done` carries
    // the reply exactly as stored.
    let ids: Vec<i64> = events.iter().map(|e| e.0).collect();
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "{ids:?}");
    let (mut content, mut reasoning) = (String::new(), String::new());
    for (_, kind, data) in &events {
        if kind == "delta" {
            content.push_str(data["content"].as_str().unwrap_or(""));
            reasoning.push_str(data["reasoning"].as_str().unwrap_or(""));
        }
    }
    assert!(reply["content"].as_str().unwrap().starts_with(&content));
    assert!(reply["reasoning"].as_str().unwrap().starts_with(&reasoning));
    let done = &events.last().unwrap().2["message"];
    assert_eq!(done["content"], reply["content"]);
    assert_eq!(done["reasoning"], reply["reasoning"]);
    assert_eq!(events.last().unwrap().2["message"]["status"], "complete");
}

#[tokio::test]
async fn tool_calls_and_citations_are_kept() {
    let app = spawn_app(&[]).await;
    let chat = create_chat(&app, None).await;
    send(
        &app,
        &chat,
        json!({"content": "weather?", "model": "mock/tools"}),
    )
    .await;
    let body = settled(&app, &chat).await;
    let call = &last(&body)["tool_calls"][0];
    assert_eq!(call["name"], "get_weather");
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["city"], "Paris");
    assert_eq!(last(&body)["finish_reason"], "tool_calls");

    let chat = create_chat(&app, None).await;
    send(
        &app,
        &chat,
        json!({"content": "news?", "model": "mock/web"}),
    )
    .await;
    let body = settled(&app, &chat).await;
    let citations = last(&body)["annotations"].as_array().unwrap();
    assert_eq!(citations.len(), 2);
    assert_eq!(citations[0]["type"], "url_citation");
    assert!(citations[0]["url"].as_str().unwrap().starts_with("http"));
}

#[tokio::test]
async fn provider_refusals_are_stored_with_their_message() {
    let app = spawn_app(&[]).await;
    for code in [402, 429, 500, 502, 503] {
        let chat = create_chat(&app, None).await;
        let (status, _) = send(
            &app,
            &chat,
            json!({"content": "x", "model": format!("mock/status-{code}")}),
        )
        .await;
        assert_eq!(status, 202);
        let body = settled(&app, &chat).await;
        let reply = last(&body);
        assert_eq!(reply["status"], "error", "{code}");
        assert_eq!(reply["error"]["code"], code, "{reply}");
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(!message.is_empty());
        if code == 429 {
            // Who rate-limited the request, and the provider's own words on what to do.
            assert!(
                message.contains("Rate-limited upstream by Google"),
                "{message}"
            );
            assert!(message.contains("add your own key"), "{message}");
        }
        // The user's message was stored before the provider was called, and stays.
        assert_eq!(body["messages"][0]["content"], "x");
    }
    let chat = create_chat(&app, None).await;
    send(
        &app,
        &chat,
        json!({"content": "x", "model": "mock/status-402"}),
    )
    .await;
    let body = settled(&app, &chat).await;
    assert!(
        last(&body)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("credits")
    );
}

#[tokio::test]
async fn midstream_errors_keep_the_partial_reply() {
    let app = spawn_app(&[]).await;
    for model in ["mock/error-midstream", "mock/error-on-usage"] {
        let chat = create_chat(&app, None).await;
        send(&app, &chat, json!({"content": "x", "model": model})).await;
        let body = settled(&app, &chat).await;
        let reply = last(&body);
        assert_eq!(reply["status"], "error", "{model}: {reply}");
        assert!(
            !reply["content"].as_str().unwrap().is_empty(),
            "{model}: partial text kept"
        );
        assert!(reply["error"]["message"].is_string());
    }
}

#[tokio::test]
async fn stop_drops_the_upstream_and_keeps_the_text() {
    let app = spawn_app(&[]).await;
    let chat = create_chat(&app, None).await;
    send(&app, &chat, json!({"content": "x", "model": "mock/slow"})).await;
    // Wait until some text has streamed.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = app.get_json(&format!("/api/chats/{chat}")).await;
        if !last(&body)["content"].as_str().unwrap().is_empty() {
            assert_eq!(body["generating"], last(&body)["id"]);
            break;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A second send while generating is refused.
    let (status, _) = send(&app, &chat, json!({"content": "again"})).await;
    assert_eq!(status, 409);
    let res = app
        .http
        .post(app.at(&format!("/api/chats/{chat}/stop")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let body = settled(&app, &chat).await;
    assert_eq!(last(&body)["status"], "stopped");
    assert!(!last(&body)["content"].as_str().unwrap().is_empty());
    // The page marks the reply stopped, so it does not pass for a finished one (app.js writes
    // "Stopped · …" in its footer from this; the browser suite checks the words).
    let page = app
        .http
        .get(app.at(&format!("/chats/{chat}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let reply = last(&body)["id"].as_str().unwrap();
    let article = &page[page.find(&format!("id=\"m-{reply}\"")).unwrap()..];
    let head = &article[..article.find('>').unwrap()];
    assert!(head.contains("data-status=\"stopped\""), "{head}");
    let deadline = Instant::now() + Duration::from_secs(2);
    while !app.mock.generations().iter().any(|g| g.cancelled) {
        assert!(
            Instant::now() < deadline,
            "the upstream request was not dropped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn events_resume_from_any_id_without_gap_or_duplicate() {
    let app = spawn_app_with_mock(
        MockConfig {
            delta_ms: 2,
            ..MockConfig::default()
        },
        &[],
    )
    .await;
    let chat = create_chat(&app, None).await;
    send(&app, &chat, json!({"content": "one", "model": "mock/long"})).await;
    // Followed live from the start: the deltas as they were written, then `done`.
    let all = events_until(&app, &chat, 0, "done").await;
    assert!(
        all.iter().filter(|e| e.1 == "delta").count() > 2,
        "{}",
        all.len()
    );
    settled(&app, &chat).await;
    // Resuming after any id gives every stored event after it once, in order. The reply has
    // finished, so its deltas are compacted: `done` carries the whole reply instead.
    let kept: Vec<_> = all.iter().filter(|e| e.1 != "delta").cloned().collect();
    for cut in [1, 2, all.len() / 2, all.len() - 1] {
        let after = all[cut - 1].0;
        let rest = events_until(&app, &chat, after, "done").await;
        let expected: Vec<_> = kept.iter().filter(|e| e.0 > after).cloned().collect();
        assert_eq!(rest, expected, "after {after}");
    }
    // Last-Event-ID works like ?after=.
    let mut res = app
        .http
        .get(app.at(&format!("/api/chats/{chat}/events")))
        .header("last-event-id", all[all.len() - 2].0.to_string())
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    while !text.contains("event: done") {
        text.push_str(&String::from_utf8_lossy(
            &res.chunk().await.unwrap().unwrap(),
        ));
    }
    assert!(text.contains(&format!("id: {}\n", all.last().unwrap().0)));
}

#[tokio::test]
async fn a_reload_mid_stream_continues_where_it_is() {
    let app = spawn_app(&[]).await;
    let chat = create_chat(&app, None).await;
    send(&app, &chat, json!({"content": "x", "model": "mock/slow"})).await;
    // "Reload" once some of the reply is there: the page state, then events after its
    // last_event_id.
    let deadline = Instant::now() + Duration::from_secs(20);
    let page = loop {
        let (_, page) = app.get_json(&format!("/api/chats/{chat}")).await;
        if !last(&page)["content"].as_str().unwrap_or("").is_empty() {
            break page;
        }
        assert!(Instant::now() < deadline, "the reply never began: {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let text_then = last(&page)["content"].as_str().unwrap().to_string();
    assert!(!text_then.is_empty());
    let after = page["last_event_id"].as_i64().unwrap();
    let mut res = app
        .http
        .get(app.at(&format!("/api/chats/{chat}/events?after={after}")))
        .send()
        .await
        .unwrap();
    let mut more = String::new();
    let mut buf = String::new();
    while more.len() < 10 {
        buf.push_str(&String::from_utf8_lossy(
            &res.chunk().await.unwrap().unwrap(),
        ));
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            if let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) {
                let v: Value = serde_json::from_str(data).unwrap();
                more.push_str(v["content"].as_str().unwrap_or(""));
            }
        }
    }
    app.http
        .post(app.at(&format!("/api/chats/{chat}/stop")))
        .send()
        .await
        .unwrap();
    let body = settled(&app, &chat).await;
    let final_text = last(&body)["content"].as_str().unwrap();
    assert!(
        final_text.starts_with(&format!("{text_then}{more}")),
        "page text + later deltas = stored text, with no gap or repeat"
    );
}

#[tokio::test]
async fn refused_models_and_bad_input_store_nothing() {
    let app = spawn_app(&[("CUSTOM_MODELS", "-all,+mock/echo@OpenRouter,+mock/tools")]).await;
    app.load_catalog().await;
    let chat = create_chat(&app, None).await;
    let (status, body) = send(
        &app,
        &chat,
        json!({"content": "x", "model": "mock/reasoning"}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mock/reasoning")
    );
    let (status, body) = send(
        &app,
        &chat,
        json!({"content": "x", "model": "mock/tools", "images": ["data:image/png;base64,iVBORw0KGgo="]}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mock/tools cannot see images")
    );
    for bad in [
        json!({"content": ""}),
        json!({"content": 5}),
        json!({"nope": 1}),
        json!({"content": "x", "images": ["http://example.com/a.png"]}),
        json!({"content": "x", "reasoning": {"effort": "extreme"}}),
    ] {
        let (status, body) = send(&app, &chat, bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(body["error"]["code"], 400);
    }
    let (_, body) = app.get_json(&format!("/api/chats/{chat}")).await;
    assert!(body["messages"].as_array().unwrap().is_empty());
    let (status, _) = app.get_json("/api/chats/c_doesnotexist").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn vision_models_take_images() {
    let app = spawn_app(&[]).await;
    app.load_catalog().await;
    let chat = create_chat(&app, None).await;
    let png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    let (status, _) = send(
        &app,
        &chat,
        json!({"content": "what is this", "model": "mock/vision", "images": [png]}),
    )
    .await;
    assert_eq!(status, 202);
    let body = settled(&app, &chat).await;
    assert!(
        last(&body)["content"].as_str().unwrap().contains("1 image"),
        "{body}"
    );
    assert_eq!(body["messages"][0]["attachments"][0], png);
}

#[tokio::test]
async fn workspaces_never_see_each_others_chats() {
    let app = spawn_app(&[("CODE", "alice,bob")]).await;
    let chat = create_chat(&app, Some("Bearer nk-alice")).await;
    let get = |auth: &'static str| {
        app.http
            .get(app.at(&format!("/api/chats/{chat}")))
            .header("authorization", auth)
            .send()
    };
    assert_eq!(get("Bearer nk-alice").await.unwrap().status(), 200);
    assert_eq!(get("Bearer nk-bob").await.unwrap().status(), 404);
    assert_eq!(get("Bearer sk-or-own-key").await.unwrap().status(), 404);
    let list: Value = app
        .http
        .get(app.at("/api/chats"))
        .header("authorization", "Bearer nk-bob")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["chats"].as_array().unwrap().is_empty());
    let res = app.http.get(app.at("/api/chats")).send().await.unwrap();
    assert_eq!(res.status(), 401);
}

/// The chat's title once it has one (the title is stored after the reply).
async fn titled(app: &TestApp, chat: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, body) = app.get_json(&format!("/api/chats/{chat}")).await;
        if body["title"] != "New chat" {
            return body["title"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no title");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The title requests the mock received (they are the only ones not streamed).
fn title_requests(app: &TestApp) -> Vec<Value> {
    app.mock
        .requests()
        .iter()
        .filter(|r| r.body["stream"] == false)
        .map(|r| r.body.clone())
        .collect()
}

/// Without `SWITCHBOARD_TITLE_MODEL` a small fast model of the catalog names the chat, from an
/// instruction and the conversation quoted; never a model hard-wired whatever the catalog.
#[tokio::test]
async fn title_comes_from_a_small_catalog_model_with_the_conversation_quoted() {
    let app = spawn_app(&[]).await;
    app.load_catalog().await;
    let chat = create_chat(&app, None).await;
    send(
        &app,
        &chat,
        json!({"content": "Tell me about otters", "model": "mock/echo"}),
    )
    .await;
    settled(&app, &chat).await;
    // The mock answers openai/gpt-4o-mini with its usual sentence.
    assert!(
        titled(&app, &chat)
            .await
            .starts_with("Hello from openai/gpt-4o-mini")
    );
    let asked = title_requests(&app);
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["model"], "openai/gpt-4o-mini");
    assert!(asked[0].get("reasoning").is_none(), "{}", asked[0]);
    let messages = asked[0]["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["role"], "system");
    assert_eq!(messages[1]["role"], "user");
    let quoted = messages[1]["content"].as_str().unwrap();
    assert!(
        quoted.contains(
            "<user>\nTell me about otters\n</user>\n<assistant>\nTell me about otters\n</assistant>"
        ),
        "{quoted}"
    );
}

/// A catalog without those models: the chat's own model names it, with reasoning off.
#[tokio::test]
async fn title_falls_back_to_the_chats_own_model_with_reasoning_off() {
    let app = spawn_app(&[("CUSTOM_MODELS", "-all,+mock/echo")]).await;
    app.load_catalog().await;
    let chat = create_chat(&app, None).await;
    send(
        &app,
        &chat,
        json!({"content": "Tell me about otters", "model": "mock/echo"}),
    )
    .await;
    settled(&app, &chat).await;
    titled(&app, &chat).await;
    let asked = title_requests(&app);
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0]["model"], "mock/echo", "no hard-wired title model");
    assert_eq!(asked[0]["reasoning"], json!({"enabled": false}));
}

/// A failed reply names its chat too; when the title request fails as well, the question does.
#[tokio::test]
async fn failed_replies_get_a_title_from_their_question() {
    let app = spawn_app(&[("SWITCHBOARD_TITLE_MODEL", "mock/status-500")]).await;
    let chat = create_chat(&app, None).await;
    send(
        &app,
        &chat,
        json!({"content": "Why is the sky blue?\nAnd the sea?", "model": "mock/status-402"}),
    )
    .await;
    let done = settled(&app, &chat).await;
    assert_eq!(last(&done)["status"], "error");
    assert_eq!(titled(&app, &chat).await, "Why is the sky blue?");
    assert_eq!(title_requests(&app)[0]["model"], "mock/status-500");
}

#[tokio::test]
async fn regenerate_edit_delete_and_fork() {
    let app = spawn_app(&[]).await;
    let (chat, body) = chat_with_one_turn(&app, "first").await;
    let reply_id = last(&body)["id"].as_str().unwrap().to_string();
    let user_id = body["messages"][0]["id"].as_str().unwrap().to_string();

    let res = app
        .http
        .post(app.at(&format!("/api/chats/{chat}/messages/{reply_id}/regenerate")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let body = settled(&app, &chat).await;
    assert_eq!(body["messages"].as_array().unwrap().len(), 2);
    assert_ne!(last(&body)["id"], reply_id.as_str());
    assert_eq!(last(&body)["content"], "first");

    let res = app
        .http
        .post(app.at(&format!("/api/chats/{chat}/messages/{user_id}/edit")))
        .json(&json!({"content": "second"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let body = settled(&app, &chat).await;
    let contents: Vec<&str> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["second", "second"]);

    let first = body["messages"][0]["id"].as_str().unwrap().to_string();
    let res = app
        .http
        .post(app.at(&format!("/api/chats/{chat}/fork")))
        .json(&json!({"message_id": first}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let fork: Value = res.json().await.unwrap();
    let (_, forked) = app
        .get_json(&format!("/api/chats/{}", fork["id"].as_str().unwrap()))
        .await;
    assert_eq!(forked["messages"].as_array().unwrap().len(), 1);

    let reply = last(&body)["id"].as_str().unwrap().to_string();
    let res = app
        .http
        .delete(app.at(&format!("/api/chats/{chat}/messages/{reply}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (_, body) = app.get_json(&format!("/api/chats/{chat}")).await;
    assert_eq!(body["messages"].as_array().unwrap().len(), 1);
    let res = app
        .http
        .delete(app.at(&format!("/api/chats/{chat}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (status, _) = app.get_json(&format!("/api/chats/{chat}")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn search_finds_messages_in_the_workspace() {
    let app = spawn_app(&[]).await;
    let chat = create_chat(&app, None).await;
    send(
        &app,
        &chat,
        json!({"content": "the zanzibar archipelago", "model": "mock/echo"}),
    )
    .await;
    settled(&app, &chat).await;
    let (status, body) = app.get_json("/api/search?q=zanzib").await;
    assert_eq!(status, 200);
    let results = body["results"].as_array().unwrap();
    assert!(!results.is_empty());
    assert_eq!(results[0]["chat_id"], chat.as_str());
    let (status, _) = app.get_json("/api/search?q=%22%28*").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn patch_settings_are_validated_and_saved() {
    let app = spawn_app(&[]).await;
    let chat = create_chat(&app, None).await;
    let patch = |body: Value| {
        app.http
            .patch(app.at(&format!("/api/chats/{chat}")))
            .json(&body)
            .send()
    };
    let res = patch(json!({"title": "Mine", "settings": {"model": "mock/echo", "system_prompt": "Be terse.", "temperature": 0.3, "top_p": 0.9, "max_tokens": 100, "reasoning_effort": "low", "history_length": 4}})).await.unwrap();
    assert_eq!(res.status(), 200);
    for bad in [
        json!({"settings": {"temperature": 3}}),
        json!({"settings": {"top_p": 2}}),
        json!({"settings": {"temperature": "hot"}}),
        json!({"settings": {"reasoning_effort": "maximum"}}),
        json!({"settings": {"presence_penalty": 2.5}}),
        json!({"settings": {"frequency_penalty": -3}}),
        json!({"settings": {"no_such_setting": 1}}),
        json!({"title": "x".repeat(300)}),
    ] {
        assert_eq!(patch(bad.clone()).await.unwrap().status(), 400, "{bad}");
    }
    send(&app, &chat, json!({"content": "hello"})).await;
    settled(&app, &chat).await;
    let sent = app
        .mock
        .requests()
        .into_iter()
        .find(|r| r.body["stream"] == true)
        .unwrap();
    assert_eq!(sent.body["model"], "mock/echo");
    assert_eq!(
        sent.body["messages"][0],
        json!({"role": "system", "content": "Be terse."})
    );
    assert_eq!(sent.body["temperature"], 0.3);
    assert_eq!(sent.body["max_tokens"], 100);
    assert_eq!(sent.body["reasoning"]["effort"], "low");
}

#[tokio::test]
async fn many_concurrent_generations_lose_nothing() {
    let app = spawn_app(&[]).await;
    let mut chats = Vec::new();
    for _ in 0..100 {
        chats.push(create_chat(&app, None).await);
    }
    let sends = chats.iter().enumerate().map(|(i, chat)| {
        let app = &app;
        async move {
            let (status, _) = send(
                app,
                chat,
                json!({"content": format!("message {i}"), "model": "mock/echo"}),
            )
            .await;
            assert_eq!(status, 202);
        }
    });
    futures_util::future::join_all(sends).await;
    for (i, chat) in chats.iter().enumerate() {
        let body = settled(&app, chat).await;
        assert_eq!(last(&body)["status"], "complete");
        assert_eq!(last(&body)["content"], format!("message {i}"));
    }
}

#[tokio::test]
async fn nextchat_backup_imports_sessions_and_masks() {
    let app = spawn_app(&[]).await;
    app.load_catalog().await;
    let backup = json!({
        "chat-next-web-store": {
            "currentSessionIndex": 0,
            "sessions": [
                {
                    "id": "s1", "topic": "Otters", "memoryPrompt": "",
                    "lastUpdate": 1732521600000_i64,
                    "messages": [
                        {"id": "a", "date": "11/25/2024, 10:00:00 AM", "role": "user", "content": "Do otters hold hands?"},
                        {"id": "b", "date": "11/25/2024, 10:00:05 AM", "role": "assistant", "content": "Yes, while sleeping.", "model": "gpt-4o"},
                        {"id": "c", "role": "user", "content": [{"type": "text", "text": "Look"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}
                    ],
                    "mask": {"id": "m", "name": "Zoologist", "avatar": "1f98b",
                        "context": [{"id": "x", "role": "system", "content": "You are a zoologist."}],
                        "modelConfig": {"model": "gpt-4o", "temperature": 0.5, "top_p": 0.8, "max_tokens": 4000, "historyMessageCount": 4, "providerName": "OpenAI"}}
                },
                {"id": "s2", "topic": "", "messages": [], "mask": {"context": []}}
            ]
        },
        "mask-store": {"masks": {}},
        "app-config": {"theme": "auto"}
    });
    let res = app
        .http
        .post(app.at("/api/import/nextchat"))
        .json(&backup)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let out: Value = res.json().await.unwrap();
    assert_eq!(out["imported"], 1, "empty sessions are skipped");
    let id = out["chat_ids"][0].as_str().unwrap();
    let (_, chat) = app.get_json(&format!("/api/chats/{id}")).await;
    assert_eq!(chat["title"], "Otters");
    assert_eq!(chat["settings"]["system_prompt"], "You are a zoologist.");
    // NextChat's OpenAI name becomes the catalog's id; its snake_case fields are kept.
    assert_eq!(chat["settings"]["model"], "openai/gpt-4o");
    assert_eq!(chat["settings"]["history_length"], 4);
    assert_eq!(chat["settings"]["temperature"], 0.5);
    assert_eq!(chat["settings"]["top_p"], 0.8);
    assert_eq!(chat["settings"]["max_tokens"], 4000);
    let msgs = chat["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[1]["content"], "Yes, while sleeping.");
    assert_eq!(msgs[2]["attachments"][0], "data:image/png;base64,AAAA");
    let res = app
        .http
        .post(app.at("/api/import/nextchat"))
        .json(&json!({"x": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn cross_site_cookie_writes_are_refused() {
    let app = spawn_app(&[("CODE", "c")]).await;
    let res = app
        .http
        .post(app.at("/api/login"))
        .json(&json!({"code": "c"}))
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let res = app
        .http
        .post(app.at("/api/chats"))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .http
        .post(app.at("/api/chats"))
        .header("cookie", &cookie)
        .header("origin", app.url.clone())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

#[tokio::test]
async fn generations_work_on_postgresql_too() {
    let Some(database) = crate::helpers::fresh_postgres_database().await else {
        return;
    };
    let app = spawn_app(&[("DATABASE_URL", &database.url)]).await;
    let chat = create_chat(&app, None).await;
    send(
        &app,
        &chat,
        json!({"content": "hi", "model": "mock/reasoning"}),
    )
    .await;
    let all = events_until(&app, &chat, 0, "done").await;
    let body = settled(&app, &chat).await;
    assert_eq!(last(&body)["status"], "complete");
    assert!(!last(&body)["reasoning"].as_str().unwrap().is_empty());
    // Resuming after the new messages: the rest, the finished reply's deltas compacted.
    let rest = events_until(&app, &chat, all[1].0, "done").await;
    let kept: Vec<_> = all[2..]
        .iter()
        .filter(|e| e.1 != "delta")
        .cloned()
        .collect();
    assert_eq!(rest, kept);
    let (_, found) = app.get_json("/api/search?q=hi").await;
    assert!(!found["results"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn user_endpoints_are_vetted_and_need_an_own_key() {
    let app = spawn_app(&[("CODE", "team")]).await;
    let own = "Bearer sk-or-my-own-key";
    let chat = create_chat(&app, Some(own)).await;
    let post = |auth: &'static str, endpoint: String, chat: String| {
        app.http
            .post(app.at(&format!("/api/chats/{chat}/messages")))
            .header("authorization", auth)
            .header("x-switchboard-endpoint", endpoint)
            .json(&json!({"content": "x", "model": "mock/echo"}))
            .send()
    };
    // The mock itself is on loopback: exactly what a hostile endpoint would point at.
    for endpoint in [
        app.mock.api_url(),
        "http://169.254.169.254/latest".to_string(),
        "http://localhost:1/api".to_string(),
        "file:///etc/passwd".to_string(),
    ] {
        let res = post(own, endpoint.clone(), chat.clone()).await.unwrap();
        assert_eq!(res.status(), 400, "{endpoint}");
        let body: Value = res.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("endpoint refused")
        );
    }
    let team_chat = create_chat(&app, Some("Bearer nk-team")).await;
    let res = post(
        "Bearer nk-team",
        "https://93.184.216.34/api".into(),
        team_chat.clone(),
    )
    .await
    .unwrap();
    assert_eq!(
        res.status(),
        400,
        "the server's key never goes to a user endpoint"
    );
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("own API key")
    );
    // Nothing was stored, nothing was sent.
    assert!(app.mock.requests().is_empty());
    let res = app
        .http
        .get(app.at(&format!("/api/chats/{chat}")))
        .header("authorization", own)
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert!(body["messages"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn many_subscribers_see_the_same_events() {
    let app = spawn_app_with_mock(
        MockConfig {
            delta_ms: 2,
            ..MockConfig::default()
        },
        &[],
    )
    .await;
    let chat = create_chat(&app, None).await;
    // Every watcher follows the chat before the reply starts, so all of them see it live.
    let streams = futures_util::future::join_all((0..5).map(|_| open_events(&app, &chat, 0))).await;
    let (status, _) = send(&app, &chat, json!({"content": "hi", "model": "mock/long"})).await;
    assert_eq!(status, 202);
    let seen = futures_util::future::join_all(
        streams
            .into_iter()
            .map(|res| read_events_until(res, "done")),
    )
    .await;
    assert!(seen[0].iter().filter(|e| e.1 == "delta").count() > 2);
    for other in &seen[1..] {
        assert_eq!(other, &seen[0]);
    }
}

#[tokio::test]
async fn the_web_uis_own_key_pays_but_keeps_the_pages_workspace() {
    let app = spawn_app(&[]).await;
    let chat = create_chat(&app, None).await;
    let res = app
        .http
        .post(app.at(&format!("/api/chats/{chat}/messages")))
        .header("x-switchboard-user-key", "sk-or-browser-key")
        .json(&json!({"content": "mine", "model": "mock/echo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "same workspace as the page (default)");
    settled(&app, &chat).await;
    let sent = app
        .mock
        .requests()
        .into_iter()
        .find(|r| r.body["stream"] == true)
        .unwrap();
    assert_eq!(sent.headers["authorization"], "Bearer sk-or-browser-key");

    let hidden = spawn_app(&[("HIDE_USER_API_KEY", "1")]).await;
    let res = hidden
        .http
        .get(hidden.at("/api/chats"))
        .header("x-switchboard-user-key", "sk-or-browser-key")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

/// Plan, then act: an edit or a regenerate that is refused for any reason — no credential on this
/// device, a model the server does not offer, a reply already running — leaves the chat exactly as
/// it was (messages, settings, events).
#[tokio::test]
async fn a_refused_edit_or_regenerate_leaves_the_chat_as_it_was() {
    // No server key: only a user's own key can reach the provider.
    let app = spawn_app(&[
        ("OPENROUTER_API_KEY", ""),
        ("CUSTOM_MODELS", "-all,+mock/echo,+mock/slow"),
    ])
    .await;
    app.load_catalog().await;
    let own_key = ("x-switchboard-user-key", "sk-or-my-own-key");
    let chat = create_chat(&app, None).await;
    let post = |path: String, body: Value, with_key: bool| {
        let mut req = app.http.post(app.at(&path)).json(&body);
        if with_key {
            req = req.header(own_key.0, own_key.1);
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, ids) = post(
        format!("/api/chats/{chat}/messages"),
        json!({"content": "first question", "model": "mock/echo"}),
        true,
    )
    .await;
    assert_eq!(status, 202, "{ids}");
    // The title is stored, then announced, after the reply: wait for its event, so it does not
    // land between two of the reads below.
    events_until(&app, &chat, 0, "chat").await;
    let before = settled(&app, &chat).await;
    let user_id = ids["user_message_id"].as_str().unwrap().to_string();
    let reply_id = ids["assistant_message_id"].as_str().unwrap().to_string();
    let edit = format!("/api/chats/{chat}/messages/{user_id}/edit");
    let regenerate = format!("/api/chats/{chat}/messages/{reply_id}/regenerate");

    let refusals = [
        // Another device, without the key.
        (edit.clone(), json!({"content": "edited"}), false, 401),
        (regenerate.clone(), json!({}), false, 401),
        // A model this server does not offer.
        (
            edit.clone(),
            json!({"content": "edited", "model": "no/such-model"}),
            true,
            400,
        ),
        (
            regenerate.clone(),
            json!({"model": "no/such-model"}),
            true,
            400,
        ),
    ];
    for (path, body, with_key, expected) in refusals {
        let (status, error) = post(path.clone(), body, with_key).await;
        assert_eq!(status, expected, "{path}: {error}");
        assert!(error["error"]["message"].is_string(), "{error}");
        let (_, now) = app.get_json(&format!("/api/chats/{chat}")).await;
        assert_eq!(now, before, "{path} changed the chat");
    }

    // A reply is running: an edit or regenerate is refused and deletes nothing.
    let (status, running) = post(
        format!("/api/chats/{chat}/messages"),
        json!({"content": "take your time", "model": "mock/slow"}),
        true,
    )
    .await;
    assert_eq!(status, 202, "{running}");
    let (_, busy_before) = app.get_json(&format!("/api/chats/{chat}")).await;
    for (path, body) in [
        (edit.clone(), json!({"content": "edited"})),
        (regenerate.clone(), json!({})),
    ] {
        let (status, error) = post(path.clone(), body, true).await;
        assert_eq!(status, 409, "{path}: {error}");
        let (_, now) = app.get_json(&format!("/api/chats/{chat}")).await;
        let ids = |v: &Value| -> Vec<Value> {
            v["messages"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].clone())
                .collect()
        };
        assert_eq!(ids(&now), ids(&busy_before), "{path} deleted messages");
    }
    app.http
        .post(app.at(&format!("/api/chats/{chat}/stop")))
        .send()
        .await
        .unwrap();
    settled(&app, &chat).await;
}

/// A chat's OpenRouter routing — provider preferences over the server's `OPENROUTER_PROVIDER`,
/// fallback models, web search, reasoning budget — and the chat id as `session_id` reach the
/// upstream request, as the mock records it.
#[tokio::test]
async fn a_chat_s_routing_settings_reach_the_upstream_request() {
    let app = spawn_app(&[(
        "OPENROUTER_PROVIDER",
        r#"{"data_collection":"deny","sort":"price"}"#,
    )])
    .await;
    let chat = create_chat(&app, None).await;
    let settings = json!({
        "model": "mock/echo",
        "provider": {"sort": "latency", "zdr": true, "order": ["mock"], "max_price": {"prompt": 1}},
        "fallback_models": ["mock/reasoning"],
        "web_search": {"enabled": true, "max_results": 3, "engine": "exa"},
        "reasoning_max_tokens": 1000,
        "reasoning_exclude": true,
    });
    let res = app
        .http
        .patch(app.at(&format!("/api/chats/{chat}")))
        .json(&json!({"settings": settings}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let (status, _) = send(&app, &chat, json!({"content": "route me"})).await;
    assert_eq!(status, 202);
    settled(&app, &chat).await;
    let sent = app
        .mock
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path.ends_with("/chat/completions") && r.body["session_id"] == chat)
        .expect("the reply's request was recorded")
        .body;
    assert_eq!(
        sent["provider"],
        json!({"data_collection": "deny", "sort": "latency", "zdr": true, "order": ["mock"],
               "max_price": {"prompt": 1.0}})
    );
    assert_eq!(sent["models"], json!(["mock/echo", "mock/reasoning"]));
    assert_eq!(
        sent["plugins"],
        json!([{"id": "web", "max_results": 3, "engine": "exa"}])
    );
    assert_eq!(
        sent["reasoning"],
        json!({"max_tokens": 1000, "exclude": true})
    );
    assert_eq!(sent["usage"], json!({"include": true}));

    // Reasoning off, and a preset passed through untouched.
    let (status, _) = send(
        &app,
        &chat,
        json!({"content": "again", "model": "@preset/team-default", "reasoning": {"effort": "off"}}),
    )
    .await;
    assert_eq!(status, 202);
    settled(&app, &chat).await;
    let sent = app
        .mock
        .requests()
        .into_iter()
        .rev()
        .find(|r| {
            r.path.ends_with("/chat/completions") && r.body["model"] == "@preset/team-default"
        })
        .expect("the preset reached the upstream")
        .body;
    assert_eq!(sent["reasoning"], json!({"enabled": false}));
}

#[tokio::test]
async fn routing_settings_outside_openrouter_s_schema_are_refused() {
    let app = spawn_app(&[]).await;
    let chat = create_chat(&app, None).await;
    for bad in [
        json!({"provider": {"sort": "cheapest"}}),
        json!({"provider": {"orderr": ["openai"]}}),
        json!({"provider": {"data_collection": "sometimes"}}),
        json!({"fallback_models": ["a/1", "b/2", "c/3", "d/4"]}),
        json!({"fallback_models": [""]}),
        json!({"web_search": {"enabled": true, "max_results": 0}}),
        json!({"web_search": {"enabled": true, "engine": "bing"}}),
        json!({"web_search": {"enabled": true, "pages": 2}}),
        json!({"reasoning_max_tokens": 0}),
        json!({"reasoning_effort": "maximum"}),
    ] {
        let res = app
            .http
            .patch(app.at(&format!("/api/chats/{chat}")))
            .json(&json!({"settings": bad}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad}");
        let body: Value = res.json().await.unwrap();
        assert!(body["error"]["message"].is_string(), "{body}");
    }
    let (_, now) = app.get_json(&format!("/api/chats/{chat}")).await;
    assert_eq!(now["settings"], json!({}), "nothing was saved");
}

/// `POST /api/render` is the renderer stored messages use: the page sends a streaming reply's
/// text through it, so what it shows live is sanitized exactly as the finished reply.
#[tokio::test]
async fn live_markdown_renders_like_a_stored_message() {
    let app = spawn_app(&[("SWITCHBOARD_MAX_REPLY_BYTES", "2048")]).await;
    let markdown = "# Title\n\n| a | b |\n| --- | --- |\n| $3/$15 | <img src=x onerror=alert(1)> |\n\n```rust\nfn main() {}\n";
    let res = app
        .http
        .post(app.at("/api/render"))
        .json(&json!({"markdown": markdown}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let html = body["html"].as_str().unwrap();
    assert_eq!(html, switchboard_chat::markdown::render(markdown));
    assert!(
        html.contains("<h1>Title</h1>") && html.contains("<table>"),
        "{html}"
    );
    assert!(html.contains("$3/$15") && !html.contains("<img"), "{html}");
    // An unclosed fence (a reply mid-stream) is a code block up to the end.
    assert!(html.contains("class=\"code\""), "{html}");
    let res = app
        .http
        .post(app.at("/api/render"))
        .json(&json!({"markdown": "x".repeat(4096)}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SWITCHBOARD_MAX_REPLY_BYTES")
    );
    let res = app
        .http
        .post(app.at("/api/render"))
        .json(&json!({"text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

/// A message carries its images: the chat API takes bodies up to `SWITCHBOARD_MAX_UPLOAD_BYTES`
/// while the proxy keeps `SWITCHBOARD_MAX_BODY_BYTES`.
#[tokio::test]
async fn the_chat_api_takes_uploads_the_proxy_would_refuse() {
    let app = spawn_app(&[("SWITCHBOARD_MAX_UPLOAD_BYTES", "4194304")]).await;
    app.load_catalog().await;
    let chat = create_chat(&app, None).await;
    // 2 MiB of base64: over the 1 MiB default body limit, under the upload limit.
    let image = format!("data:image/jpeg;base64,{}", "A".repeat(2 << 20));
    let (status, body) = send(
        &app,
        &chat,
        json!({"content": "what is this?", "model": "mock/vision", "images": [image]}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let done = settled(&app, &chat).await;
    assert_eq!(done["messages"][0]["attachments"][0], json!(image));
    assert_eq!(last(&done)["content"], "what is this? I see 1 image(s).");
    // The proxy's limit is its own.
    let res = app
        .http
        .post(app.at("/api/openrouter/v1/chat/completions"))
        .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": image}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SWITCHBOARD_MAX_BODY_BYTES"),
        "{body}"
    );
    // Over the upload limit: 413 naming it, and nothing stored.
    let huge = format!("data:image/jpeg;base64,{}", "A".repeat(5 << 20));
    let (status, body) = send(
        &app,
        &chat,
        json!({"content": "and this?", "model": "mock/vision", "images": [huge]}),
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SWITCHBOARD_MAX_UPLOAD_BYTES"),
        "{body}"
    );
    let (_, after) = app.get_json(&format!("/api/chats/{chat}")).await;
    assert_eq!(after["messages"].as_array().unwrap().len(), 2);
}

/// Pinning is its own change (no activity, no title or settings touched); the first page of the
/// list brings the pinned chats; search gives one row per chat, title matches first, in pages.
#[tokio::test]
async fn chats_pin_and_search_by_title_one_row_per_chat() {
    let app = spawn_app(&[]).await;
    let old = create_chat(&app, None).await;
    let patch = |id: String, body: Value| {
        let app = &app;
        async move {
            let res = app
                .http
                .patch(app.at(&format!("/api/chats/{id}")))
                .json(&body)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = patch(old.clone(), json!({"title": "Walrus facts"})).await;
    assert_eq!(status, 200, "{body}");
    let newer = create_chat(&app, None).await;
    // A chosen title, so the one made from the message does not match too.
    patch(newer.clone(), json!({"title": "Sea mammals"})).await;
    send(
        &app,
        &newer,
        json!({"content": "tell me about the walrus", "model": "mock/echo"}),
    )
    .await;
    settled(&app, &newer).await;
    let (_, before) = app.get_json(&format!("/api/chats/{old}")).await;
    let (status, body) = patch(old.clone(), json!({"pinned": true})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["pinned"], true);
    assert_eq!(
        body["updated_at"], before["updated_at"],
        "pinning is not activity"
    );
    assert_eq!(body["title"], "Walrus facts");
    let (status, _) = patch("nope".into(), json!({"pinned": true})).await;
    assert_eq!(status, 404);
    let (status, _) = patch(old.clone(), json!({"pinned": "yes"})).await;
    assert_eq!(status, 400);

    let (_, list) = app.get_json("/api/chats?limit=1").await;
    assert_eq!(list["chats"][0]["id"], newer.as_str());
    assert_eq!(list["chats"][0]["pinned"], false);
    assert_eq!(list["pinned"][0]["id"], old.as_str());
    let cursor = list["next"].as_str().unwrap().to_string();
    let (_, page2) = app
        .get_json(&format!("/api/chats?limit=1&before={cursor}"))
        .await;
    assert_eq!(page2["chats"][0]["id"], old.as_str());
    assert_eq!(page2["chats"][0]["pinned"], true);
    assert!(page2.get("pinned").is_none(), "{page2}");

    let (status, found) = app.get_json("/api/search?q=walrus").await;
    assert_eq!(status, 200);
    let rows = found["results"].as_array().unwrap();
    let ids: Vec<_> = rows
        .iter()
        .map(|r| r["chat_id"].as_str().unwrap())
        .collect();
    // The title match first; the other chat once, although two of its messages match.
    assert_eq!(ids, [old.as_str(), newer.as_str()], "{found}");
    assert_eq!(rows[0]["message_id"], Value::Null);
    assert!(rows[1]["snippet"].as_str().unwrap().contains("walrus"));
    assert_eq!(found["next"], Value::Null);
    let (status, _) = app.get_json("/api/search?q=walrus&offset=-1").await;
    assert_eq!(status, 400);
}
