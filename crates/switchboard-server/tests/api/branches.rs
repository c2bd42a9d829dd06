//! Branches and compare through the API: regenerate and edit keep what they replace, select
//! moves the active path, the context sent upstream is the active path only, and a compare runs
//! several replies in one turn, each stoppable alone. Each check runs on SQLite and PostgreSQL.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::chats::{chat_with_one_turn, create_chat, send, settled};
use crate::helpers::{TestApp, spawn_app};

/// Generates `<name>_on_sqlite` and `<name>_on_postgres` tests that each call `<name>(app)`.
macro_rules! on_both_databases {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(crate::helpers::spawn_app(&[]).await).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    let Some(database) = crate::helpers::fresh_postgres_database().await else {
                        return;
                    };
                    let app = crate::helpers::spawn_app(&[("DATABASE_URL", &database.url)]).await;
                    super::$check(app).await;
                }
            )*
        }
    };
}

on_both_databases!(
    regenerate_keeps_the_old_reply_retrievable_and_selectable,
    edit_keeps_the_old_turn_and_upstream_sees_the_active_path_only,
    a_compare_of_three_where_one_fails_and_one_is_stopped,
);

fn messages(chat: &Value) -> &Vec<Value> {
    chat["messages"].as_array().unwrap()
}

fn contents(chat: &Value) -> Vec<&str> {
    messages(chat)
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect()
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = app
        .http
        .post(app.at(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The messages of the last streamed upstream request (title requests do not stream).
fn last_upstream_messages(app: &TestApp) -> Vec<(String, String)> {
    let requests = app.mock.requests();
    let body = &requests
        .iter()
        .rev()
        .find(|r| r.body["stream"] == true)
        .expect("a reply was requested")
        .body;
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] != "system")
        .map(|m| {
            (
                m["role"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Poll until no reply of the chat's turn is generating (a compare's included).
async fn turn_settled(app: &TestApp, chat: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let body = settled(app, chat).await;
        if body["generating_ids"].as_array().unwrap().is_empty() {
            return body;
        }
        assert!(Instant::now() < deadline, "never settled: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn regenerate_keeps_the_old_reply_retrievable_and_selectable(app: TestApp) {
    let (chat, body) = chat_with_one_turn(&app, "first").await;
    let old = messages(&body)[1]["id"].as_str().unwrap().to_string();
    assert_eq!(messages(&body)[1]["siblings"], json!([]));

    let (status, again) = post(
        &app,
        &format!("/api/chats/{chat}/messages/{old}/regenerate"),
        json!({"model": "mock/reasoning"}),
    )
    .await;
    assert_eq!(status, 202, "{again}");
    let new = again["assistant_message_id"].as_str().unwrap().to_string();
    let body = settled(&app, &chat).await;
    assert_eq!(messages(&body).len(), 2);
    let reply = &messages(&body)[1];
    assert_eq!(reply["id"], new.as_str());
    assert_eq!(reply["parent_id"], messages(&body)[0]["id"]);
    assert_eq!(
        reply["siblings"],
        json!([
            {"id": old, "model": "mock/echo", "status": "complete", "active": false},
            {"id": new, "model": "mock/reasoning", "status": "complete", "active": true},
        ])
    );

    // The old reply is selectable: the answer is the chat as it now reads.
    let (status, selected) = post(
        &app,
        &format!("/api/chats/{chat}/messages/{old}/select"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{selected}");
    assert_eq!(contents(&selected), ["first", "first"]);
    assert_eq!(messages(&selected)[1]["id"], old.as_str());
    assert_eq!(messages(&selected)[1]["siblings"][1]["active"], false);
    // Unknown messages and other chats' messages are 404.
    let (status, error) = post(
        &app,
        &format!("/api/chats/{chat}/messages/m_nope/select"),
        json!({}),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(error["error"]["code"], 404, "{error}");

    // The next message continues from the selected reply.
    send(
        &app,
        &chat,
        json!({"content": "next", "model": "mock/echo"}),
    )
    .await;
    let body = settled(&app, &chat).await;
    assert_eq!(contents(&body), ["first", "first", "next", "next"]);
    assert_eq!(messages(&body)[2]["parent_id"], old.as_str());
}

async fn edit_keeps_the_old_turn_and_upstream_sees_the_active_path_only(app: TestApp) {
    let (chat, body) = chat_with_one_turn(&app, "first").await;
    let first = messages(&body)[0]["id"].as_str().unwrap().to_string();
    let (status, edited) = post(
        &app,
        &format!("/api/chats/{chat}/messages/{first}/edit"),
        json!({"content": "second"}),
    )
    .await;
    assert_eq!(status, 202, "{edited}");
    let body = settled(&app, &chat).await;
    assert_eq!(contents(&body), ["second", "second"]);
    let siblings = messages(&body)[0]["siblings"].as_array().unwrap();
    assert_eq!(siblings.len(), 2);
    assert_eq!(siblings[0]["id"], first.as_str());

    // The context sent upstream is the active path: the edited branch, not the old turn.
    send(
        &app,
        &chat,
        json!({"content": "third", "model": "mock/echo"}),
    )
    .await;
    settled(&app, &chat).await;
    let sent = last_upstream_messages(&app);
    let expected: Vec<(String, String)> = [
        ("user", "second"),
        ("assistant", "second"),
        ("user", "third"),
    ]
    .iter()
    .map(|(r, c)| (r.to_string(), c.to_string()))
    .collect();
    assert_eq!(sent, expected);

    // The old turn is kept: selecting it shows it with its reply.
    let (status, selected) = post(
        &app,
        &format!("/api/chats/{chat}/messages/{first}/select"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(contents(&selected), ["first", "first"]);
    // And back: the edited branch comes back with its continuation.
    let edited_id = edited["user_message_id"].as_str().unwrap();
    let (_, back) = post(
        &app,
        &format!("/api/chats/{chat}/messages/{edited_id}/select"),
        json!({}),
    )
    .await;
    assert_eq!(contents(&back), ["second", "second", "third", "third"]);
}

async fn a_compare_of_three_where_one_fails_and_one_is_stopped(app: TestApp) {
    app.load_catalog().await;
    let chat = create_chat(&app, None).await;
    // Refused outright, before anything is written.
    for (body, why) in [
        (
            json!({"content": "x", "models": ["mock/echo"]}),
            "one model",
        ),
        (
            json!({"content": "x", "models": ["mock/echo", "mock/slow", "mock/long", "mock/web", "mock/reasoning"]}),
            "five models",
        ),
        (
            json!({"content": "x", "model": "mock/echo", "models": ["mock/echo", "mock/slow"]}),
            "model and models",
        ),
        (
            json!({"content": "x", "models": ["mock/echo", "mock/echo"]}),
            "the same model twice",
        ),
        (
            json!({"content": "x", "images": ["data:image/png;base64,iVBORw0KGgo="], "models": ["mock/vision", "mock/tools"]}),
            "a model that cannot see the images, after one that can",
        ),
    ] {
        let (status, error) = send(&app, &chat, body).await;
        assert_eq!(status, 400, "{why}: {error}");
    }
    let (_, body) = app.get_json(&format!("/api/chats/{chat}")).await;
    assert!(messages(&body).is_empty(), "refusals wrote nothing");

    let (status, started) = send(
        &app,
        &chat,
        json!({"content": "which?", "models": ["mock/echo", "mock/status-402", "mock/slow"]}),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let user = started["user_message_id"].as_str().unwrap().to_string();
    let ids: Vec<String> = started["assistant_message_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    let slow = ids[2].clone();

    // One turn at a time.
    let (status, _) = send(
        &app,
        &chat,
        json!({"content": "more", "model": "mock/echo"}),
    )
    .await;
    assert_eq!(status, 409);

    // Stop the slow one once it has said something; the others are not touched.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = app.get_json(&format!("/api/chats/{chat}")).await;
        let column = body["alternatives"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == slow.as_str())
            .cloned();
        if let Some(column) = column
            && !column["content"].as_str().unwrap().is_empty()
        {
            assert_eq!(column["status"], "streaming");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slow column never spoke: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let res = app
        .http
        .post(app.at(&format!("/api/chats/{chat}/messages/{slow}/stop")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let body = turn_settled(&app, &chat).await;
    assert_eq!(contents(&body), ["which?", "which?"]);
    let echo = &messages(&body)[1];
    assert_eq!(echo["id"], ids[0].as_str());
    assert_eq!(echo["status"], "complete");
    assert_eq!(echo["parent_id"], user.as_str());
    let alternatives = body["alternatives"].as_array().unwrap();
    assert_eq!(alternatives.len(), 2);
    assert_eq!(alternatives[0]["id"], ids[1].as_str());
    assert_eq!(alternatives[0]["status"], "error");
    assert_eq!(alternatives[0]["error"]["code"], 402);
    assert_eq!(alternatives[1]["status"], "stopped");
    assert!(
        alternatives[1]["content"]
            .as_str()
            .unwrap()
            .starts_with("tick 0.")
    );
    let states: Vec<(&str, &str, bool)> = echo["siblings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["model"].as_str().unwrap(),
                s["status"].as_str().unwrap(),
                s["active"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("mock/echo", "complete", true),
            ("mock/status-402", "error", false),
            ("mock/slow", "stopped", false),
        ]
    );

    // Continue with the stopped one: the next message answers its branch.
    let (status, _) = post(
        &app,
        &format!("/api/chats/{chat}/messages/{slow}/select"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    send(
        &app,
        &chat,
        json!({"content": "go on", "model": "mock/echo"}),
    )
    .await;
    let body = turn_settled(&app, &chat).await;
    assert_eq!(messages(&body)[1]["id"], slow.as_str());
    let sent = last_upstream_messages(&app);
    assert_eq!(sent.len(), 3, "{sent:?}");
    assert!(sent[1].1.starts_with("tick 0."), "{sent:?}");
    assert_eq!(sent[2].1, "go on");
}

#[tokio::test]
async fn stopping_one_reply_of_another_chat_or_an_unknown_one_is_404() {
    let app = spawn_app(&[]).await;
    let chat = create_chat(&app, None).await;
    let res = app
        .http
        .post(app.at(&format!("/api/chats/{chat}/messages/m_nope/stop")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn the_tree_lists_every_branch_and_a_fork_copies_one() {
    let app = spawn_app(&[]).await;
    let (chat, body) = chat_with_one_turn(&app, "first").await;
    let old = messages(&body)[1]["id"].as_str().unwrap().to_string();
    let (status, again) = post(
        &app,
        &format!("/api/chats/{chat}/messages/{old}/regenerate"),
        json!({}),
    )
    .await;
    assert_eq!(status, 202);
    settled(&app, &chat).await;
    let (status, tree) = app.get_json(&format!("/api/chats/{chat}/tree")).await;
    assert_eq!(status, 200);
    let shape: Vec<(&str, bool)> = tree["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap(), m["on_path"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        shape,
        [("user", true), ("assistant", false), ("assistant", true)]
    );
    assert_eq!(tree["messages"][2]["id"], again["assistant_message_id"]);
    // A fork of the old reply copies its branch: the question and that reply.
    let (status, fork) = post(
        &app,
        &format!("/api/chats/{chat}/fork"),
        json!({"message_id": old}),
    )
    .await;
    assert_eq!(status, 201);
    let (_, forked) = app
        .get_json(&format!("/api/chats/{}/tree", fork["id"].as_str().unwrap()))
        .await;
    assert_eq!(forked["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_compare_names_its_chat_once() {
    let app = spawn_app(&[]).await;
    let chat = create_chat(&app, None).await;
    let (status, _) = send(
        &app,
        &chat,
        json!({"content": "name me", "models": ["mock/echo", "mock/reasoning", "mock/web"]}),
    )
    .await;
    assert_eq!(status, 202);
    let body = turn_settled(&app, &chat).await;
    let finished: Vec<&str> = std::iter::once(&messages(&body)[1])
        .chain(body["alternatives"].as_array().unwrap())
        .map(|m| m["status"].as_str().unwrap())
        .collect();
    assert_eq!(finished, ["complete", "complete", "complete"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body) = app.get_json(&format!("/api/chats/{chat}")).await;
        if body["title"] != "New chat" {
            break;
        }
        assert!(Instant::now() < deadline, "the chat was never named");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every reply completed, and only the first asked for a title.
    let titles = app
        .mock
        .requests()
        .iter()
        .filter(|r| r.body["stream"] == false)
        .count();
    assert_eq!(titles, 1);
}
