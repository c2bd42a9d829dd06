//! Share links: a frozen, read-only copy of a chat that anyone with the link can read, and that
//! its owner can revoke.

use serde_json::{Value, json};

use crate::chats::create_chat;
use crate::helpers::spawn_app;

const CODE: &str = "Bearer team-code";

async fn post(app: &crate::helpers::TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = app
        .http
        .post(app.at(path))
        .header("authorization", CODE)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_shared_chat_is_readable_without_a_code_until_revoked() {
    let app = spawn_app(&[("CODE", "team-code")]).await;
    let chat = create_chat(&app, Some(CODE)).await;
    let (status, _) = post(
        &app,
        &format!("/api/chats/{chat}/messages"),
        json!({"content": "**shared** words", "model": "mock/echo"}),
    )
    .await;
    assert_eq!(status, 202);
    let res = app
        .http
        .get(app.at(&format!("/api/chats/{chat}")))
        .header("authorization", CODE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    wait_settled(&app, &chat).await;

    let (status, link) = post(&app, &format!("/api/chats/{chat}/share"), json!({})).await;
    assert_eq!(status, 201, "{link}");
    let url = link["url"].as_str().unwrap().to_string();
    let token = url.strip_prefix("/s/").expect("a /s/ link");
    assert_eq!(token.len(), 26, "130 random bits");

    // Anyone with the link reads the chat: no code, no sidebar, not indexed, no script.
    let page = reqwest::get(app.at(&url)).await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-robots-tag"], "noindex, nofollow");
    let html = page.text().await.unwrap();
    assert!(html.contains("<strong>shared</strong> words"), "{html}");
    assert!(html.contains("noindex"));
    assert!(!html.contains("<script"), "the shared page runs no script");
    assert!(
        !html.contains(&format!("/chats/{chat}")),
        "no way into the chat itself"
    );

    // Sharing again keeps the link; the copy stays as it was until then.
    let (_, again) = post(&app, &format!("/api/chats/{chat}/share"), json!({})).await;
    assert_eq!(again["url"], url.as_str());

    // Another workspace cannot share or revoke it.
    let res = app
        .http
        .delete(app.at(&format!("/api/chats/{chat}/share")))
        .header("authorization", "Bearer sk-or-someone-else")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(reqwest::get(app.at(&url)).await.unwrap().status(), 200);

    let res = app
        .http
        .delete(app.at(&format!("/api/chats/{chat}/share")))
        .header("authorization", CODE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let gone = reqwest::get(app.at(&url)).await.unwrap();
    assert_eq!(gone.status(), 404);
    let body: Value = gone.json().await.unwrap();
    assert!(body["error"]["message"].is_string());
    // A guessed token is a 404 like any other.
    let guess = reqwest::get(app.at("/s/aaaaaaaaaaaaaaaaaaaaaaaaaa"))
        .await
        .unwrap();
    assert_eq!(guess.status(), 404);
}

#[tokio::test]
async fn sharing_can_be_turned_off() {
    let app = spawn_app(&[("SWITCHBOARD_SHARING", "off")]).await;
    let chat = create_chat(&app, None).await;
    let res = app
        .http
        .post(app.at(&format!("/api/chats/{chat}/share")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SWITCHBOARD_SHARING")
    );
}

async fn wait_settled(app: &crate::helpers::TestApp, chat: &str) {
    // The chat API with the code, as the owner's browser reads it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let body: Value = app
            .http
            .get(app.at(&format!("/api/chats/{chat}")))
            .header("authorization", CODE)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if body["generating"].is_null() && body["messages"].as_array().is_some_and(|m| m.len() == 2)
        {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
