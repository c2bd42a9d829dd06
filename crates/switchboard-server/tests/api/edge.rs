//! Issue 20: the edge checks — Host (DNS rebinding), Origin (cross-site requests), reverse proxies.

use serde_json::json;

use crate::helpers::spawn_app;

fn chat_body() -> serde_json::Value {
    json!({"model": "mock/echo", "messages": [{"role": "user", "content": "ping"}]})
}

async fn login_cookie(app: &crate::helpers::TestApp, code: &str) -> String {
    let res = app
        .http
        .post(app.at("/api/login"))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// Item 1: a page on another localhost port made an open server spend its key and create chats;
/// on a `CODE` server a same-site page carrying the cookie did the same, and logged the user out.
#[tokio::test]
async fn cross_origin_pages_cannot_spend_keys_or_write() {
    let evil = "http://127.0.0.1:1";
    let open = spawn_app(&[]).await;
    let coded = spawn_app(&[("CODE", "c")]).await;
    let cookie = login_cookie(&coded, "c").await;
    for (app, cookie) in [(&open, None), (&coded, Some(cookie.as_str()))] {
        for path in [
            "/api/openrouter/v1/chat/completions",
            "/v1/chat/completions",
            "/api/chats",
            "/api/logout",
        ] {
            let mut req = app
                .http
                .post(app.at(path))
                .header("origin", evil)
                .header("content-type", "text/plain")
                .body(chat_body().to_string());
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 403, "{path} (cookie: {})", cookie.is_some());
            let body: serde_json::Value = res.json().await.unwrap();
            assert!(body["error"]["message"].is_string());
        }
        assert!(app.mock.requests().is_empty(), "the key was spent");
        // Without Origin, a browser's Sec-Fetch-Site still gives the other site away.
        let res = app
            .http
            .post(app.at("/api/chats"))
            .header("sec-fetch-site", "same-site")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
    }
    // The cookie still works: logout was not forged.
    let res = coded
        .http
        .get(coded.at("/api/chats"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // SDKs and NextChat with an explicit credential stay usable from any page.
    let res = open
        .http
        .post(open.at("/api/openrouter/v1/chat/completions"))
        .header("origin", evil)
        .header("authorization", "Bearer sk-or-own")
        .json(&chat_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The same origin, and the configured site URL, may write.
    let res = open
        .http
        .post(open.at("/api/chats"))
        .header("origin", open.url.clone())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

/// Item 1: DNS rebinding — a name that resolves to 127.0.0.1 reached an open server's chats.
#[tokio::test]
async fn a_host_the_server_does_not_answer_to_is_421() {
    let app = spawn_app(&[]).await;
    for path in ["/api/chats", "/", "/api/openrouter/v1/models"] {
        let res = app
            .http
            .get(app.at(path))
            .header("host", "rebind.attacker.example")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 421, "{path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("SWITCHBOARD_ALLOWED_HOSTS")
        );
    }
    let port = app.url.rsplit(':').next().unwrap();
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let res = app
            .http
            .get(app.at("/api/chats"))
            .header("host", host.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{host}");
    }
    let listed = spawn_app(&[("SWITCHBOARD_SITE_URL", "https://chat.example")]).await;
    let res = listed
        .http
        .get(listed.at("/api/chats"))
        .header("host", "chat.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
