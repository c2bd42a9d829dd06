//! Bad input: whatever a client throws at a JSON endpoint — malformed or non-UTF-8 JSON, wrong
//! types, missing fields, bodies over the limit, values out of range, overlong ids, odd paths,
//! wrong methods — the answer is a 4xx with a JSON error body that names the problem. Never a 500.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// The body limit the table's app runs with, so "over the limit" stays small.
const LIMIT: usize = 64 * 1024;

/// Assert a 4xx JSON error whose `error.code` is the status and whose message is not empty.
async fn assert_client_error(what: &str, res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = res.text().await.unwrap();
    assert!(
        (400..500).contains(&status),
        "{what}: expected a 4xx, got {status}: {text}"
    );
    assert!(
        ct.starts_with("application/json"),
        "{what}: {status} not JSON ({ct}): {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}: {text}"));
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(!message.is_empty(), "{what}: no error message: {body}");
    (status, message.to_string())
}

async fn request(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
) -> reqwest::Response {
    let mut req = app.http.request(method, app.at(path));
    if let Some(body) = body {
        req = req.header("content-type", "application/json").body(body);
    }
    req.send().await.unwrap()
}

/// Bodies no JSON endpoint accepts.
fn bad_bodies() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("malformed JSON", b"{\"content\": ".to_vec()),
        ("trailing garbage", b"{} }".to_vec()),
        ("invalid UTF-8", b"{\"content\": \"\xff\xfe\"}".to_vec()),
        ("a top-level array", b"[1, 2]".to_vec()),
        ("a top-level string", b"\"hello\"".to_vec()),
        ("a top-level number", b"42".to_vec()),
        ("null", b"null".to_vec()),
        ("deeply nested", {
            let mut v = "[".repeat(10_000);
            v.push_str(&"]".repeat(10_000));
            v.into_bytes()
        }),
        ("over the body limit", {
            let mut v = b"{\"content\": \"".to_vec();
            v.extend(std::iter::repeat_n(b'x', LIMIT + 1));
            v.extend_from_slice(b"\"}");
            v
        }),
    ]
}

fn json(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

/// Wrong types, missing fields, unknown fields and values out of range, per endpoint.
fn specific(path: &str) -> Vec<(&'static str, Vec<u8>)> {
    let long_model = "m".repeat(300);
    match path {
        "/api/chats" | "PATCH" => vec![
            ("title of the wrong type", json(json!({"title": 5}))),
            (
                "settings of the wrong type",
                json(json!({"settings": "hot"})),
            ),
            ("an unknown field", json(json!({"titel": "x"}))),
            (
                "temperature above 2",
                json(json!({"settings": {"temperature": 2.5}})),
            ),
            (
                "temperature below 0",
                json(json!({"settings": {"temperature": -0.1}})),
            ),
            ("top_p above 1", json(json!({"settings": {"top_p": 1.01}}))),
            ("max_tokens 0", json(json!({"settings": {"max_tokens": 0}}))),
            (
                "max_tokens negative",
                json(json!({"settings": {"max_tokens": -1}})),
            ),
            (
                "max_tokens not an integer",
                json(json!({"settings": {"max_tokens": 1.5}})),
            ),
            (
                "history_length 0",
                json(json!({"settings": {"history_length": 0}})),
            ),
            (
                "an unknown reasoning effort",
                json(json!({"settings": {"reasoning_effort": "maximum"}})),
            ),
            (
                "an overlong model id",
                json(json!({"settings": {"model": long_model}})),
            ),
            ("an overlong title", json(json!({"title": "t".repeat(201)}))),
        ],
        "messages" => vec![
            ("missing content", json(json!({"model": "mock/echo"}))),
            ("an empty body", Vec::new()),
            ("content of the wrong type", json(json!({"content": 5}))),
            ("blank content", json(json!({"content": "  "}))),
            (
                "model of the wrong type",
                json(json!({"content": "hi", "model": 7})),
            ),
            (
                "an overlong model id",
                json(json!({"content": "hi", "model": long_model})),
            ),
            (
                "a malformed model id",
                json(json!({"content": "hi", "model": "x@"})),
            ),
            (
                "images not data URLs",
                json(json!({"content": "hi", "images": ["http://x/y.png"]})),
            ),
            (
                "an unknown reasoning effort",
                json(json!({"content": "hi", "reasoning": {"effort": "maximum"}})),
            ),
            (
                "an unknown field",
                json(json!({"content": "hi", "temperature": 1})),
            ),
        ],
        "/api/login" => vec![
            ("missing code", json(json!({}))),
            ("code of the wrong type", json(json!({"code": 5}))),
        ],
        "/api/import/nextchat" => vec![
            ("not a backup", json(json!({"hello": "world"}))),
            (
                "sessions of the wrong type",
                json(json!({"chat-next-web-store": {"sessions": 5}})),
            ),
        ],
        "/v1/chat/completions" => vec![
            ("missing model", json(json!({"messages": []}))),
            (
                "model of the wrong type",
                json(json!({"model": 5, "messages": []})),
            ),
            (
                "models of the wrong type",
                json(json!({"model": "mock/echo", "models": "x"})),
            ),
            (
                "an empty provider",
                json(json!({"model": "mock/echo@", "messages": []})),
            ),
            (
                "an unknown provider",
                json(json!({"model": "mock/echo@nowhere", "messages": []})),
            ),
        ],
        _ => Vec::new(),
    }
}

/// Every bad body at every JSON endpoint: a 4xx JSON error naming the problem, never a 500.
#[tokio::test]
async fn bad_bodies_at_every_json_endpoint_are_4xx_json() {
    let limit = LIMIT.to_string();
    let app = spawn_app(&[
        ("SWITCHBOARD_MAX_BODY_BYTES", &limit),
        ("SWITCHBOARD_MAX_UPLOAD_BYTES", &limit),
    ])
    .await;
    let chat = crate::chats::create_chat(&app, None).await;
    let endpoints: Vec<(Method, String, &str)> = vec![
        (Method::POST, "/api/chats".into(), "/api/chats"),
        (
            Method::POST,
            format!("/api/chats/{chat}/messages"),
            "messages",
        ),
        (Method::PATCH, format!("/api/chats/{chat}"), "PATCH"),
        (
            Method::POST,
            format!("/api/chats/{chat}/tool-calls/call_1"),
            "tool-calls",
        ),
        (Method::POST, "/api/login".into(), "/api/login"),
        (
            Method::POST,
            "/api/import/nextchat".into(),
            "/api/import/nextchat",
        ),
        (
            Method::POST,
            "/v1/chat/completions".into(),
            "/v1/chat/completions",
        ),
        (
            Method::POST,
            "/api/openrouter/v1/chat/completions".into(),
            "proxy",
        ),
    ];
    let mut problems = Vec::new();
    for (method, path, kind) in &endpoints {
        let mut cases = bad_bodies();
        if *kind == "/api/import/nextchat" {
            // Imports take backups up to 64 MiB whatever the limit; not worth sending here.
            cases.retain(|(name, _)| *name != "over the body limit");
        }
        cases.extend(specific(kind));
        for (name, body) in cases {
            let what = format!("{method} {path} with {name}");
            let res = request(&app, method.clone(), path, Some(body)).await;
            let status = res.status().as_u16();
            let ct = res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let text = res.text().await.unwrap();
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|b| b["error"]["message"].as_str().map(str::to_string))
                .unwrap_or_default();
            let ok = (400..500).contains(&status)
                && ct.starts_with("application/json")
                && !message.is_empty();
            if !ok {
                let excerpt: String = text.chars().take(200).collect();
                problems.push(format!("{what}: {status} {ct} {excerpt}"));
            }
        }
    }
    // Nothing a client sent was stored.
    let (_, body) = app.get_json(&format!("/api/chats/{chat}")).await;
    assert_eq!(body["messages"], json!([]), "{body}");
    assert!(
        problems.is_empty(),
        "not a 4xx JSON error:\n{}",
        problems.join("\n")
    );
}

#[tokio::test]
async fn bad_query_strings_are_4xx_json() {
    let app = spawn_app(&[]).await;
    let cases = [
        "/api/models?free=maybe",
        "/api/models?vision=2",
        "/api/chats?limit=-1",
        "/api/chats?limit=many",
        "/api/chats?before=nonsense",
    ];
    let long_search = format!("/api/search?q={}", "a".repeat(1001));
    for path in cases.iter().copied().chain([long_search.as_str()]) {
        let res = request(&app, Method::GET, path, None).await;
        assert_client_error(path, res).await;
    }
    // Percent-encoded invalid UTF-8 in a search is decoded lossily (U+FFFD): it finds nothing,
    // and is no error.
    for path in ["/api/models?q=%FF%FE", "/api/search?q=%FF%FE"] {
        let (status, body) = app.get_json(path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
}

/// Send `path` as written: reqwest (the URL standard) would resolve `..` and `%2e%2e` before
/// sending, and the point is what the server does with them.
async fn raw_get(app: &TestApp, path: &str) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.url.strip_prefix("http://").unwrap();
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n");
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head[9..12].parse().unwrap();
    let ct = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(String::from)
        })
        .unwrap_or_default();
    (status, ct, body.to_string())
}

#[tokio::test]
async fn unknown_routes_path_tricks_and_wrong_methods_are_4xx_json() {
    let app = spawn_app(&[]).await;
    let not_found = [
        "/api/nope",
        "/v2/chat/completions",
        "/api/openrouter/v1/../v1/key",
        "/api/openrouter/v1/chat/../../v1/key",
        "/api/openrouter/v1/%2e%2e/v1/key",
        "/api/openrouter/v1/%2E%2E/v1/key",
        "/api/openrouter/v1%2fkey",
        "/api/openrouter/v1%2Fchat%2Fcompletions",
        "/api/openrouter/v1/chat/completions/",
        "/api/openrouter//v1/chat/completions",
        "/api/openrouter/./v1/key",
        "/api/openrouter/v1/key%00",
        "/api/openrouter/v1/key;x",
        "/api/openrouter/%76%31/key",
        "/api/chats/does-not-exist",
    ];
    for path in not_found {
        let (status, ct, body) = raw_get(&app, path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(ct.starts_with("application/json"), "{path}: {ct}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    let wrong_methods = [
        (Method::GET, "/api/login"),
        (Method::DELETE, "/v1/chat/completions"),
        (Method::PUT, "/api/openrouter/v1/chat/completions"),
        (Method::DELETE, "/api/openrouter/v1/chat/completions"),
        (Method::PUT, "/api/chats"),
        (Method::POST, "/v1/models"),
        (Method::GET, "/api/import/nextchat"),
    ];
    for (method, path) in wrong_methods {
        let what = format!("{method} {path}");
        let res = request(&app, method, path, None).await;
        let (status, _) = assert_client_error(&what, res).await;
        assert_eq!(status, 405, "{what}");
    }
}

#[tokio::test]
async fn out_of_range_max_tokens_is_clamped_by_the_chat_and_passed_through_by_the_proxy() {
    let app = spawn_app(&[]).await;
    // Chat API: the largest u32 is stored and clamped when sent.
    let res = app
        .http
        .post(app.at("/api/chats"))
        .json(&json!({"title": "t", "settings": {"max_tokens": u32::MAX, "model": "mock/echo"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let chat = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _) = crate::chats::send(&app, &chat, json!({"content": "hi"})).await;
    assert_eq!(status, 202);
    crate::chats::settled(&app, &chat).await;
    let sent = app.mock.requests().last().unwrap().body.clone();
    assert_eq!(sent["max_tokens"], 1_000_000, "{sent}");
    // Proxy: untouched, whatever the values (the provider judges them).
    let body = json!({"model": "mock/echo", "max_tokens": 1u64 << 40, "temperature": 7,
                      "top_p": -3, "frequency_penalty": 9, "presence_penalty": -9,
                      "messages": [{"role": "user", "content": "x"}]});
    let res = app
        .http
        .post(app.at("/api/openrouter/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    assert!(status < 500, "{status}");
    let forwarded = app.mock.requests().last().unwrap().body.clone();
    assert_eq!(forwarded, body);
}

/// Request headers over 64 KB in total are refused with 431 and a JSON error (a layer in
/// `lib.rs`; past hyper's own ~400 KB read buffer hyper refuses the request itself).
#[tokio::test]
async fn request_headers_over_64_kb_are_431_json() {
    let app = spawn_app(&[]).await;
    let res = app
        .http
        .get(app.at("/healthz"))
        .header("x-big", "a".repeat(70 * 1024))
        .send()
        .await
        .unwrap();
    let (status, _) = assert_client_error("70 KB of headers", res).await;
    assert_eq!(status, 431);
}

/// `/api/login`'s body limit answers 413 with the JSON error, like every other endpoint.
#[tokio::test]
async fn login_body_over_axums_limit_is_413_json() {
    let app = spawn_app(&[]).await;
    let res = request(
        &app,
        Method::POST,
        "/api/login",
        Some(vec![b' '; 3 * 1024 * 1024]),
    )
    .await;
    let (status, _) = assert_client_error("3 MB login body", res).await;
    assert_eq!(status, 413);
}

/// A chat id that is not UTF-8 once percent-decoded is refused by axum's `Path` extractor; the
/// JSON-error layer gives that rejection the project's error shape.
#[tokio::test]
async fn non_utf8_path_parameters_are_400_json() {
    let app = spawn_app(&[]).await;
    for path in [
        "/api/chats/%FF",
        "/api/chats/%FF/messages",
        "/api/chats/%C3/events",
    ] {
        let (status, ct, body) = raw_get(&app, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(ct.starts_with("application/json"), "{path}: {ct} {body}");
    }
}
