//! OpenRouter's features through the chat API, on SQLite and PostgreSQL: generated images stored
//! with the reply and served from a cached route, PDFs and text files sent with the file parser
//! and their annotations sent back, and errors a person can act on.

use base64::Engine;
use serde_json::{Value, json};

use crate::chats::{create_chat, send, settled};
use crate::helpers::{TestApp, spawn_app};

/// The app on SQLite, and again on a fresh PostgreSQL database.
async fn on_both_databases(test: impl AsyncFn(TestApp)) {
    test(spawn_app(&[]).await).await;
    let Some(database) = crate::helpers::fresh_postgres_database().await else {
        return;
    };
    test(spawn_app(&[("DATABASE_URL", &database.url)]).await).await;
}

fn last(chat: &Value) -> &Value {
    chat["messages"].as_array().unwrap().last().unwrap()
}

/// The chat-completion requests the mock received for `chat`, in order.
fn upstream_requests(app: &TestApp, chat: &str) -> Vec<Value> {
    app.mock
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/chat/completions") && r.body["session_id"] == chat)
        .map(|r| r.body)
        .collect()
}

#[tokio::test]
async fn a_generated_image_is_stored_with_the_reply_and_served_cached_on_both_databases() {
    on_both_databases(async |app: TestApp| {
        app.load_catalog().await;
        let chat = create_chat(&app, None).await;
        let (status, _) = send(
            &app,
            &chat,
            json!({"content": "draw", "model": "mock/image"}),
        )
        .await;
        assert_eq!(status, 202);
        let body = settled(&app, &chat).await;
        let reply = last(&body);
        assert_eq!(reply["status"], "complete", "{reply}");
        assert_eq!(reply["content"], "Here is your image.");
        // Asked for images, because the catalog says the model draws them.
        let sent = upstream_requests(&app, &chat);
        assert_eq!(sent[0]["modalities"], json!(["image", "text"]));

        let files = reply["files"].as_array().unwrap();
        assert_eq!(files.len(), 1, "{reply}");
        assert_eq!(files[0]["mime"], "image/png");
        assert_eq!(files[0]["name"], "image-1.png");
        let url = files[0]["url"].as_str().unwrap();
        assert_eq!(
            url,
            format!(
                "/api/chats/{chat}/files/{}",
                files[0]["id"].as_str().unwrap()
            )
        );
        // The page names the route; the bytes are not in it.
        assert!(!reply.to_string().contains("iVBORw0KGgo"), "{reply}");
        let page = app
            .http
            .get(app.at(&format!("/chats/{chat}")))
            .send()
            .await
            .unwrap();
        let html = page.text().await.unwrap();
        assert!(
            html.contains(url),
            "the page shows the image from its route"
        );
        assert!(!html.contains("iVBORw0KGgo"));

        let res = app.http.get(app.at(url)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "image/png");
        let cache = res.headers()["cache-control"].to_str().unwrap().to_owned();
        assert!(
            cache.contains("immutable") && cache.contains("private"),
            "{cache}"
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(mock_openrouter::MOCK_PNG_BASE64)
            .unwrap();
        assert_eq!(res.bytes().await.unwrap().to_vec(), png);
        let res = app
            .http
            .get(app.at(&format!("{url}?download=1")))
            .send()
            .await
            .unwrap();
        assert!(
            res.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .starts_with("attachment; filename=\"image-1.png\"")
        );
        // Another workspace, or another chat, does not reach it.
        let other = create_chat(&app, None).await;
        let res = app
            .http
            .get(app.at(&format!(
                "/api/chats/{other}/files/{}",
                files[0]["id"].as_str().unwrap()
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        // The image counts towards the workspace's stored bytes.
        let usage = app
            .state
            .store()
            .chat_usage("default", &chat)
            .await
            .unwrap();
        assert!(usage.bytes as usize > mock_openrouter::MOCK_PNG_BASE64.len());
    })
    .await;
}
