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
        // A fork shows the image too (its copy names the same file); another workspace never.
        let res = app
            .http
            .post(app.at(&format!("/api/chats/{chat}/fork")))
            .json(&json!({"message_id": reply["id"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let fork: Value = res.json().await.unwrap();
        let fork_id = fork["id"].as_str().unwrap();
        let (_, forked) = app.get_json(&format!("/api/chats/{fork_id}")).await;
        let forked_url = last(&forked)["files"][0]["url"]
            .as_str()
            .unwrap()
            .to_owned();
        let file_id = files[0]["id"].as_str().unwrap();
        assert_eq!(forked_url, format!("/api/chats/{fork_id}/files/{file_id}"));
        assert_eq!(
            app.http
                .get(app.at(&forked_url))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let res = app
            .http
            .get(app.at(url))
            .header("authorization", "Bearer sk-or-someone-else")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "another workspace does not reach it");
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

/// A small PDF as a data URL (the bytes need not be a whole PDF: the mock does not read them).
const PDF: &str =
    "data:application/pdf;base64,JVBERi0xLjQKJcOkw7zDtsOfCjEgMCBvYmoKPDw+PgplbmRvYmoK";
const TEXT: &str = "data:text/plain;base64,aGVsbG8gZmlsZQ==";

#[tokio::test]
async fn pdfs_and_text_files_go_with_the_file_parser_once_on_both_databases() {
    on_both_databases(async |app: TestApp| {
        let chat = create_chat(&app, None).await;
        let files =
            json!([{"name": "doc.pdf", "data_url": PDF}, {"name": "notes.txt", "data_url": TEXT}]);
        let (status, body) = send(
            &app,
            &chat,
            json!({"content": "read these", "model": "mock/echo", "files": files}),
        )
        .await;
        assert_eq!(status, 202, "{body}");
        let body = settled(&app, &chat).await;
        let messages = body["messages"].as_array().unwrap();
        let user = &messages[0];
        let stored = user["files"].as_array().unwrap();
        assert_eq!(stored.len(), 2, "{user}");
        assert_eq!(stored[0]["name"], "doc.pdf");
        assert_eq!(stored[0]["mime"], "application/pdf");
        assert_eq!(stored[1]["name"], "notes.txt");
        // Downloadable, byte for byte.
        let res = app
            .http
            .get(app.at(&format!(
                "{}?download=1",
                stored[1]["url"].as_str().unwrap()
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(res.text().await.unwrap(), "hello file");
        let reply = &messages[1];
        let annotations = reply["annotations"].as_array().unwrap();
        assert_eq!(annotations.len(), 2, "{reply}");
        assert!(annotations.iter().all(|a| a["type"] == "file"));

        let sent = upstream_requests(&app, &chat);
        let parts = sent[0]["messages"].as_array().unwrap().last().unwrap()["content"].clone();
        assert_eq!(parts[0], json!({"type": "text", "text": "read these"}));
        assert_eq!(
            parts[1],
            json!({"type": "file", "file": {"filename": "doc.pdf", "file_data": PDF}})
        );
        assert_eq!(parts[2]["file"]["file_data"], TEXT);
        assert_eq!(
            sent[0]["plugins"],
            json!([{"id": "file-parser", "pdf": {"engine": "pdf-text"}}])
        );

        // The next turn sends the annotations back (with the chat's engine): nothing is parsed
        // again, so the mock's reply has no new file annotations.
        let res = app
            .http
            .patch(app.at(&format!("/api/chats/{chat}")))
            .json(&json!({"settings": {"model": "mock/echo", "pdf_engine": "mistral-ocr"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let (status, _) = send(&app, &chat, json!({"content": "and again"})).await;
        assert_eq!(status, 202);
        let body = settled(&app, &chat).await;
        let second_reply = last(&body);
        assert_eq!(second_reply["status"], "complete");
        assert!(second_reply["annotations"].is_null(), "{second_reply}");
        let sent = upstream_requests(&app, &chat);
        let history = sent[1]["messages"].as_array().unwrap();
        let assistant = history.iter().find(|m| m["role"] == "assistant").unwrap();
        assert_eq!(assistant["annotations"], json!(annotations));
        assert_eq!(
            sent[1]["plugins"],
            json!([{"id": "file-parser", "pdf": {"engine": "mistral-ocr"}}])
        );

        // An edit of the message keeps its files (copied with the new message).
        let user_id = body["messages"][0]["id"].as_str().unwrap().to_owned();
        let res = app
            .http
            .post(app.at(&format!("/api/chats/{chat}/messages/{user_id}/edit")))
            .json(&json!({"content": "read these, edited"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
        let body = settled(&app, &chat).await;
        let names: Vec<&str> = body["messages"][0]["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["doc.pdf", "notes.txt"]);
        let sent = upstream_requests(&app, &chat);
        let parts = &sent[2]["messages"].as_array().unwrap().last().unwrap()["content"];
        assert_eq!(parts[1]["file"]["file_data"], PDF);

        // Files that are not documents, nameless, or too many are refused, and nothing is stored.
        for bad in [
            json!([{"name": "x.png", "data_url": "data:image/png;base64,iVBORw0KGgo="}]),
            json!([{"name": "", "data_url": TEXT}]),
            json!([{"name": "a.txt", "data_url": "data:text/plain,hello"}]),
            json!([{"name": "a.txt", "data_url": TEXT, "extra": 1}]),
            json!(
                (0..11)
                    .map(|i| json!({"name": format!("{i}.txt"), "data_url": TEXT}))
                    .collect::<Vec<_>>()
            ),
        ] {
            let (status, body) = send(&app, &chat, json!({"content": "x", "files": bad})).await;
            assert_eq!(status, 400, "{body}");
        }
        let after = settled(&app, &chat).await;
        assert_eq!(after["messages"].as_array().unwrap().len(), 2);
        let res = app
            .http
            .patch(app.at(&format!("/api/chats/{chat}")))
            .json(&json!({"settings": {"pdf_engine": "guess"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
    })
    .await;
}

#[tokio::test]
async fn a_model_s_endpoints_come_from_openrouter_for_the_routing_panel() {
    let app = spawn_app(&[]).await;
    let (status, body) = app.get_json("/api/models/openai/gpt-4o/endpoints").await;
    assert_eq!(status, 200, "{body}");
    let endpoints = body["data"]["endpoints"].as_array().unwrap();
    assert!(endpoints.len() >= 2);
    assert_eq!(endpoints[0]["provider_name"], "OpenAI");
    // A `:free` id lists its base model's endpoints.
    let (status, body) = app
        .get_json("/api/models/qwen/qwen3-32b:free/endpoints")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["id"], "qwen/qwen3-32b");
    let asked: Vec<String> = app
        .mock
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/endpoints"))
        .map(|r| r.path)
        .collect();
    assert_eq!(
        asked,
        [
            "/api/v1/models/openai/gpt-4o/endpoints",
            "/api/v1/models/qwen/qwen3-32b/endpoints"
        ]
    );
    let (status, body) = app.get_json("/api/models/nobody/nothing/endpoints").await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"].is_string());
    let (status, _) = app.get_json("/api/models/..%2F..%2Fkey/x/endpoints").await;
    assert_eq!(status, 400);

    let restricted = spawn_app(&[("CUSTOM_MODELS", "-all,+mock/echo")]).await;
    let (status, _) = restricted
        .get_json("/api/models/openai/gpt-4o/endpoints")
        .await;
    assert!(status == 403 || status == 400, "{status}");
    assert!(
        !restricted
            .mock
            .requests()
            .iter()
            .any(|r| r.path.ends_with("/endpoints")),
        "a model the server does not offer is not looked up"
    );
}
