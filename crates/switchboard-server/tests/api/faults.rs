//! Faults: an upstream that refuses, resets, stalls, truncates or talks nonsense; a client that
//! leaves at every stage; a database that cannot be written. Each must end with a clear error to
//! the user (the right status and a JSON error body, or mid-stream an OpenRouter-shaped error
//! chunk), keep the partial reply, and leak nothing: no relayed stream, no upstream connection and
//! no task outlives the request.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mock_openrouter::{MockConfig, MockOpenRouter};
use serde_json::{Value, json};

use crate::chats::{events_until, settled};
use crate::fault_proxy::{Fault, FaultProxy, raw_response};
use crate::helpers::{TestApp, spawn_app, spawn_app_tuned, spawn_app_with_mock};

const PROXY_CHAT: &str = "/api/openrouter/v1/chat/completions";

/// Tasks alive in this test's runtime: the app ([`spawn_counted`]), the mock and the fault proxy
/// all run in it.
fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// An app whose connections are served on the test's runtime (not on connection threads of
/// their own), so that [`alive_tasks`] counts every task of it.
async fn spawn_counted(mock: MockConfig, env: &[(&str, &str)]) -> TestApp {
    spawn_app_tuned(mock, env, |_, limits| limits.connection_threads = 0).await
}

/// The tasks alive once the app is up and the test's own client (`app.http`, used by the chat
/// helpers) holds its pooled connection: what must be alive again after each test.
async fn baseline(app: &TestApp) -> usize {
    app.get_json("/healthz").await;
    alive_tasks()
}

/// A fresh client whose connections die with it, so the server's connection tasks can be counted.
fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Wait until no relayed stream is in flight, every connection through `proxy` is closed and no
/// more tasks are alive than at `baseline`.
async fn assert_nothing_leaks(app: &TestApp, proxy: Option<&FaultProxy>, baseline: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let streams = app.state.metrics().in_flight_streams();
        let conns = proxy.map_or(0, FaultProxy::open_connections);
        // Lookups of what a cut-off call cost are tracked tasks that end on their own (the ledger
        // retries them for a while): not leaks, and not what these tests are about.
        let lookups = app.state.chats().ledger().lookups_in_flight();
        let tasks = alive_tasks().saturating_sub(lookups);
        if streams == 0 && conns == 0 && tasks <= baseline {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "leak: {streams} stream(s) in flight, {conns} upstream connection(s) open, \
             {tasks} tasks alive (baseline {baseline})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The app behind a fault proxy in front of a mock; `app.mock` is that mock.
async fn app_behind(fault: Fault, env: &[(&str, &str)]) -> (TestApp, FaultProxy) {
    let mock = MockOpenRouter::start(MockConfig::default()).await.unwrap();
    let proxy = FaultProxy::start(mock.addr(), fault).await;
    let url = proxy.api_url();
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("OPENROUTER_URL", &url));
    let mut app = spawn_counted(MockConfig::default(), &env).await;
    // spawn_app's own mock is not used: the app talks to this one, through the proxy.
    app.mock = mock;
    (app, proxy)
}

async fn post_proxy(client: &reqwest::Client, app: &TestApp, body: &Value) -> reqwest::Response {
    client
        .post(app.at(PROXY_CHAT))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// A JSON error answer: its status, and `error.code` equal to it with a non-empty message.
async fn json_error(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let ct = res.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.starts_with("application/json"), "{status} {ct}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], status, "{body}");
    let message = body["error"]["message"].as_str().unwrap().to_string();
    assert!(!message.is_empty(), "{body}");
    (status, message)
}

/// Read an SSE relay to its end; returns the text and the last `data:` chunk as JSON.
async fn sse_to_end(res: reqwest::Response) -> (String, Value) {
    assert_eq!(res.status(), 200);
    let text = String::from_utf8_lossy(&res.bytes().await.unwrap()).into_owned();
    let last = text
        .trim_end()
        .rsplit("\n\n")
        .next()
        .and_then(|l| l.strip_prefix("data: "))
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or(Value::Null);
    (text, last)
}

/// The streamed text of an OpenAI-shaped SSE body.
fn streamed_content(sse: &str) -> String {
    sse.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect()
}

fn slow_stream() -> Value {
    json!({"model": "mock/slow", "stream": true, "messages": [{"role": "user", "content": "x"}]})
}

/// A chat with a title (so no title request follows the reply), through `client`.
async fn titled_chat(app: &TestApp) -> String {
    let res = client()
        .post(app.at("/api/chats"))
        .json(&json!({"title": "faults"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn send_message(app: &TestApp, chat: &str, model: &str, content: &str) -> Value {
    let res = client()
        .post(app.at(&format!("/api/chats/{chat}/messages")))
        .json(&json!({"content": content, "model": model}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    res.json().await.unwrap()
}

/// Send and wait for the reply to settle; returns (user message, reply) as stored.
async fn reply_to(app: &TestApp, model: &str) -> (Value, Value) {
    let chat = titled_chat(app).await;
    send_message(app, &chat, model, "hello there").await;
    let body = settled(app, &chat).await;
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{body}");
    (msgs[0].clone(), msgs[1].clone())
}

fn assert_failed_reply(reply: &Value, code: u16, message_part: &str) {
    assert_eq!(reply["status"], "error", "{reply}");
    assert_eq!(reply["error"]["code"], code, "{reply}");
    let message = reply["error"]["message"].as_str().unwrap();
    assert!(message.contains(message_part), "{reply}");
}

fn fixture(dir: &tempfile::TempDir, name: &str, body: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, body).unwrap();
    path
}

/// An app whose mock answers each `fx/<name>` model with `body`, byte for byte.
async fn app_replaying<'a>(
    dir: &tempfile::TempDir,
    fixtures: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> TestApp {
    let fixtures = fixtures
        .map(|(model, body)| (model.to_string(), fixture(dir, &model[3..], body)))
        .collect();
    spawn_counted(
        MockConfig {
            fixtures,
            ..MockConfig::default()
        },
        &[],
    )
    .await
}

/// Two tool calls that share index 0 and differ by id (as some providers send them) stay two
/// calls: not one named `get_weatherget_time`.
#[tokio::test]
async fn tool_calls_sharing_an_index_stay_apart() {
    let chunk = |delta: Value| {
        format!(
            "data: {}\n\n",
            json!({"choices": [{"index": 0, "delta": delta}]})
        )
    };
    let body = [
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":"}}]}),
        ),
        chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Oslo\"}"}}]})),
        chunk(
            json!({"tool_calls": [{"index": 0, "id": "call_b", "type": "function",
            "function": {"name": "get_time", "arguments": "{}"}}]}),
        ),
        format!(
            "data: {}\n\ndata: [DONE]\n\n",
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        ),
    ]
    .concat();
    let dir = tempfile::tempdir().unwrap();
    let app = app_replaying(&dir, [("fx/two-calls", body.as_bytes())].into_iter()).await;
    let (_, reply) = reply_to(&app, "fx/two-calls").await;
    assert_eq!(reply["status"], "complete", "{reply}");
    assert_eq!(
        reply["tool_calls"],
        json!([
            {"id": "call_a", "name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"},
            {"id": "call_b", "name": "get_time", "arguments": "{}"},
        ])
    );
}

/// A reply over `SWITCHBOARD_MAX_REPLY_BYTES` ends there as an error that names the limit and
/// keeps the text up to it; the upstream request is dropped.
#[tokio::test]
async fn a_reply_over_the_size_cap_ends_as_an_error_with_its_text() {
    let app = spawn_app(&[("SWITCHBOARD_MAX_REPLY_BYTES", "2048")]).await;
    let words: String = (0..1000).map(|i| format!("w{i} ")).collect();
    let words = words.trim_end();
    let chat = titled_chat(&app).await;
    send_message(&app, &chat, "mock/echo", words).await;
    let body = settled(&app, &chat).await;
    let reply = &body["messages"][1];
    assert_eq!(reply["status"], "error", "{reply}");
    assert_eq!(reply["error"]["code"], "reply_too_long");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SWITCHBOARD_MAX_REPLY_BYTES"),
        "{reply}"
    );
    let kept = reply["content"].as_str().unwrap();
    assert_eq!(kept.len(), 2048, "the text up to the cap is kept");
    assert!(words.starts_with(kept));
}

// ---------------------------------------------------------------------------------------------
// The upstream fails

#[tokio::test]
async fn refused_connection_is_502_on_the_proxy_and_an_error_reply_in_the_chat() {
    let (app, proxy) = app_behind(Fault::Refuse, &[]).await;
    let baseline = baseline(&app).await;
    let c = client();
    let (status, message) = json_error(post_proxy(&c, &app, &slow_stream()).await).await;
    assert_eq!(status, 502);
    assert!(message.contains("could not connect"), "{message}");
    let gateway = c
        .post(app.at("/v1/chat/completions"))
        .json(&slow_stream())
        .send()
        .await
        .unwrap();
    assert_eq!(json_error(gateway).await.0, 502);

    let (user, reply) = reply_to(&app, "mock/echo").await;
    assert_eq!(user["content"], "hello there");
    assert_failed_reply(&reply, 502, "could not connect");
    drop(c);
    assert_nothing_leaks(&app, Some(&proxy), baseline).await;
}

/// How many response bytes (head included) reach the client before a mid-stream fault: enough
/// for the head and a few of `mock/slow`'s deltas, far less than the whole stream.
const MID_STREAM: usize = 1500;

/// An upstream that breaks off mid-stream: the proxied stream ends with an error chunk carrying
/// `code`, and the chat engine keeps the partial reply, marked failed with `reason`.
async fn mid_stream_fault_keeps_the_partial_reply(
    fault: Fault,
    env: &[(&str, &str)],
    code: u16,
    reason: &str,
) {
    let (app, proxy) = app_behind(fault, env).await;
    let baseline = baseline(&app).await;
    let c = client();
    let (text, last) = sse_to_end(post_proxy(&c, &app, &slow_stream()).await).await;
    assert!(!streamed_content(&text).is_empty(), "{text}");
    assert_eq!(last["error"]["code"], code, "{text}");
    assert_eq!(last["choices"][0]["finish_reason"], "error");

    let (_, reply) = reply_to(&app, "mock/slow").await;
    assert_failed_reply(&reply, code, reason);
    assert!(reply["content"].as_str().unwrap().starts_with("tick 0. "));
    drop(c);
    assert_nothing_leaks(&app, Some(&proxy), baseline).await;
}

#[tokio::test]
async fn reset_mid_stream_ends_with_an_error_chunk_and_keeps_the_partial_reply() {
    mid_stream_fault_keeps_the_partial_reply(
        Fault::ResetAfter(MID_STREAM),
        &[],
        502,
        "broke mid-reply",
    )
    .await;
}

#[tokio::test]
async fn truncated_stream_ends_with_an_error_chunk_and_keeps_the_partial_reply() {
    mid_stream_fault_keeps_the_partial_reply(
        Fault::TruncateAfter(MID_STREAM),
        &[],
        502,
        "broke mid-reply",
    )
    .await;
}

#[tokio::test]
async fn stall_before_the_first_byte_is_504_json() {
    let env = [("SWITCHBOARD_UPSTREAM_FIRST_BYTE_TIMEOUT", "300ms")];
    let (app, proxy) = app_behind(Fault::StallAfter(0), &env).await;
    let baseline = baseline(&app).await;
    let c = client();
    let (status, message) = json_error(post_proxy(&c, &app, &slow_stream()).await).await;
    assert_eq!(status, 504);
    assert!(
        message.contains("SWITCHBOARD_UPSTREAM_FIRST_BYTE_TIMEOUT"),
        "{message}"
    );

    let (_, reply) = reply_to(&app, "mock/echo").await;
    assert_failed_reply(&reply, 504, "no response in time");
    drop(c);
    assert_nothing_leaks(&app, Some(&proxy), baseline).await;
}

#[tokio::test]
async fn stall_mid_stream_ends_with_a_504_error_chunk_and_keeps_the_partial_reply() {
    mid_stream_fault_keeps_the_partial_reply(
        Fault::StallAfter(MID_STREAM),
        &[("SWITCHBOARD_UPSTREAM_IDLE_TIMEOUT", "500ms")],
        504,
        "went silent",
    )
    .await;
}

#[tokio::test]
async fn html_error_page_keeps_its_status_and_becomes_a_readable_chat_error() {
    let page = raw_response(
        "502 Bad Gateway",
        "text/html",
        b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    );
    let (app, proxy) = app_behind(Fault::Respond(page), &[]).await;
    let baseline = baseline(&app).await;
    let c = client();
    // The proxy passes the upstream's status and body through untouched (README: "errors keep the
    // upstream's status"), so a NextChat client sees the provider's own page.
    let res = post_proxy(&c, &app, &slow_stream()).await;
    assert_eq!(res.status(), 502);
    assert!(res.text().await.unwrap().contains("502 Bad Gateway"));

    let (_, reply) = reply_to(&app, "mock/echo").await;
    assert_failed_reply(&reply, 502, "HTTP 502");
    drop(c);
    assert_nothing_leaks(&app, Some(&proxy), baseline).await;
}

#[tokio::test]
async fn html_page_with_200_is_an_error_reply_not_an_empty_success() {
    // A captive portal or a misconfigured OPENROUTER_URL: 200, but not a completion.
    let page = raw_response("200 OK", "text/html", b"<html><body>Sign in</body></html>");
    let (app, proxy) = app_behind(Fault::Respond(page), &[]).await;
    let baseline = baseline(&app).await;
    let (_, reply) = reply_to(&app, "mock/echo").await;
    assert_eq!(reply["status"], "error", "{reply}");
    assert!(!reply["error"]["message"].as_str().unwrap().is_empty());
    assert_nothing_leaks(&app, Some(&proxy), baseline).await;
}

#[tokio::test]
async fn a_200_with_an_error_body_is_an_error_reply() {
    let dir = tempfile::tempdir().unwrap();
    let body = br#"{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-day"}}"#;
    let path = fixture(&dir, "error-200.json", body);
    let app = spawn_app_with_mock(
        MockConfig {
            fixtures: vec![("fx/error-200".into(), path)],
            ..MockConfig::default()
        },
        &[],
    )
    .await;
    let c = client();
    // The proxy passes it through untouched: OpenRouter's clients handle this shape themselves.
    let res = post_proxy(
        &c,
        &app,
        &json!({"model": "fx/error-200", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().as_ref(), body);

    let (_, reply) = reply_to(&app, "fx/error-200").await;
    assert_failed_reply(&reply, 429, "Rate limit exceeded");
}

/// A stream whose connection closes cleanly is finished only if it said so, with `[DONE]` or a
/// finish reason (some OpenAI-compatible servers send just one of them). Without either it was cut
/// off: the reply keeps its text and is marked failed, not complete.
#[tokio::test]
async fn a_stream_that_ends_without_done_or_finish_reason_is_kept_as_failed() {
    let delta = |text: &str| {
        format!(
            "data: {}\n\n",
            json!({"choices": [{"index": 0, "delta": {"content": text}}]})
        )
    };
    let finish = format!(
        "data: {}\n\n",
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    );
    let done = "data: [DONE]\n\n";
    let cases = [
        (
            "fx/cut-off",
            format!("{}{}", delta("Hel"), delta("lo")),
            None,
        ),
        (
            "fx/finish-only",
            format!("{}{finish}", delta("Hi")),
            Some("stop"),
        ),
        ("fx/done-only", format!("{}{done}", delta("Yo")), None),
    ];
    let dir = tempfile::tempdir().unwrap();
    let app = app_replaying(
        &dir,
        cases
            .iter()
            .map(|(model, body, _)| (*model, body.as_bytes())),
    )
    .await;

    let (_, cut) = reply_to(&app, "fx/cut-off").await;
    assert_failed_reply(&cut, 502, "ended before the reply was finished");
    assert_eq!(cut["content"], "Hello", "{cut}");

    for (model, _, finish_reason) in &cases[1..] {
        let (_, reply) = reply_to(&app, model).await;
        assert_eq!(reply["status"], "complete", "{model}: {reply}");
        if let Some(reason) = finish_reason {
            assert_eq!(reply["finish_reason"], *reason, "{model}: {reply}");
        }
    }
}

/// Fixtures a provider should never send, replayed byte for byte by the mock: the proxy relays
/// them untouched, the chat keeps every good delta and never panics.
#[tokio::test]
async fn garbage_streams_keep_the_good_deltas() {
    let good = |text: &str| {
        format!(
            "data: {}\n\n",
            json!({"choices": [{"index": 0, "delta": {"content": text}}]})
        )
    };
    let done = "data: [DONE]\n\n";
    let invalid_json = format!(
        "{}data: {{\"choices\": [{{\"delta\"\n\n{}{done}",
        good("Hel"),
        good("lo")
    );
    let mut truncated_utf8 = good("caf").into_bytes();
    truncated_utf8
        .extend_from_slice(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\xC3");
    let mut invalid_utf8 = good("ok").into_bytes();
    invalid_utf8.extend_from_slice(
        b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\xFF\xFE\"}}]}\n\n",
    );
    invalid_utf8.extend_from_slice(done.as_bytes());
    let huge_line = format!(
        "{}data: {}\n\n{}{done}",
        good("before "),
        "x".repeat(10 * 1024 * 1024),
        good("after")
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("fx/invalid-json", invalid_json.into_bytes(), "Hello"),
        ("fx/truncated-utf8", truncated_utf8, "caf"),
        // Invalid UTF-8 is decoded lossily, as U+FFFD.
        ("fx/invalid-utf8", invalid_utf8, "ok\u{FFFD}\u{FFFD}"),
        // An over-long line cannot be trusted: the reply ends there, as an error with its text.
        ("fx/huge-line", huge_line.into_bytes(), "before "),
    ];
    let dir = tempfile::tempdir().unwrap();
    let app = app_replaying(
        &dir,
        cases
            .iter()
            .map(|(model, body, _)| (*model, body.as_slice())),
    )
    .await;
    let c = client();
    let mut baseline = None;
    for (model, body, kept) in &cases {
        let res = post_proxy(
            &c,
            &app,
            &json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
        assert_eq!(res.status(), 200, "{model}");
        assert_eq!(
            res.bytes().await.unwrap().as_ref(),
            &body[..],
            "{model}: relayed untouched"
        );

        let (_, reply) = reply_to(&app, model).await;
        assert_eq!(reply["content"], *kept, "{model}: {reply}");
        // Only the stream cut off inside a line (no `[DONE]`, no finish reason) and the one with
        // an over-long line are unfinished.
        let status = if *model == "fx/truncated-utf8" || *model == "fx/huge-line" {
            "error"
        } else {
            "complete"
        };
        assert_eq!(reply["status"], status, "{model}: {reply}");
        // The app keeps an idle keep-alive connection to the mock after a complete answer: count
        // from the first round, so what is checked is that later rounds leave nothing behind.
        if baseline.is_none() {
            baseline = Some(alive_tasks());
        }
    }
    assert_nothing_leaks(&app, None, baseline.unwrap()).await;
}

// ---------------------------------------------------------------------------------------------
// The client leaves

#[tokio::test]
async fn proxy_client_leaving_before_the_upstream_answers_drops_the_upstream() {
    let env = [("SWITCHBOARD_UPSTREAM_FIRST_BYTE_TIMEOUT", "60s")];
    let (app, proxy) = app_behind(Fault::StallAfter(0), &env).await;
    let baseline = baseline(&app).await;
    let c = client();
    let err = c
        .post(app.at(PROXY_CHAT))
        .json(&slow_stream())
        .timeout(Duration::from_millis(300))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(proxy.accepted(), 1, "the request reached the upstream");
    drop(c);
    // Not after the 60 s first-byte timeout: at once.
    assert_nothing_leaks(&app, Some(&proxy), baseline).await;
}

/// Keep-alive to the upstream: an answer read to its end, streamed or not, through either route,
/// gives its connection back for the next request (the relay's lease on it is released).
#[tokio::test]
async fn answers_read_to_the_end_leave_their_upstream_connection_for_the_next_request() {
    let (app, proxy) = app_behind(Fault::None, &[]).await;
    let c = client();
    for stream in [false, true, false, true] {
        for route in [PROXY_CHAT, "/v1/chat/completions"] {
            let body = json!({
                "model": "mock/echo", "stream": stream,
                "messages": [{"role": "user", "content": "kept alive"}],
            });
            let res = c.post(app.at(route)).json(&body).send().await.unwrap();
            assert_eq!(res.status(), 200, "{route} stream={stream}");
            let text = res.text().await.unwrap();
            assert!(text.contains("alive"), "{route} stream={stream}: {text}");
        }
    }
    assert_eq!(
        proxy.accepted(),
        1,
        "eight answers, one upstream connection"
    );
}

#[tokio::test]
async fn proxy_client_leaving_mid_stream_closes_the_upstream_connection() {
    let (app, proxy) = app_behind(Fault::None, &[]).await;
    let baseline = baseline(&app).await;
    let c = client();
    let mut res = post_proxy(&c, &app, &slow_stream()).await;
    assert_eq!(res.status(), 200);
    let mut data = 0;
    while data < 2 {
        let chunk = res.chunk().await.unwrap().unwrap();
        data += String::from_utf8_lossy(&chunk).matches("data: ").count();
    }
    assert_eq!(app.state.metrics().in_flight_streams(), 1);
    drop(res);
    drop(c);
    assert_nothing_leaks(&app, Some(&proxy), baseline).await;
    let deadline = Instant::now() + Duration::from_secs(2);
    while !app.mock.generations().last().unwrap().cancelled {
        assert!(Instant::now() < deadline, "the mock never saw the cancel");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The chat's reply is detached from HTTP: whoever leaves, at whatever stage, it completes in the
/// database exactly as if they had stayed.
#[tokio::test]
async fn chat_reply_completes_in_the_database_when_every_client_leaves() {
    let app = spawn_counted(
        MockConfig {
            delta_ms: 40,
            ..MockConfig::default()
        },
        &[],
    )
    .await;
    let words = "one two three four five six seven eight nine ten eleven twelve";
    // A first reply leaves the app an idle keep-alive connection to the mock: part of the baseline.
    reply_to(&app, "mock/echo").await;
    let baseline = baseline(&app).await;

    // Stage 1: the client leaves right after sending, before the upstream answered.
    let chat = titled_chat(&app).await;
    let c = client();
    let res = c
        .post(app.at(&format!("/api/chats/{chat}/messages")))
        .json(&json!({"content": words, "model": "mock/echo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    drop(res);
    drop(c);
    let body = settled(&app, &chat).await;
    let reply = &body["messages"][1];
    assert_eq!(reply["status"], "complete", "{reply}");
    assert_eq!(reply["content"], words);

    // Stage 2: the client follows the events and leaves mid-reply.
    let chat = titled_chat(&app).await;
    send_message(&app, &chat, "mock/echo", words).await;
    let c = client();
    let mut events = c
        .get(app.at(&format!("/api/chats/{chat}/events?after=0")))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    while !seen.contains("event: delta") {
        let chunk = events.chunk().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(events);
    drop(c);
    let body = settled(&app, &chat).await;
    let reply = &body["messages"][1];
    assert_eq!(reply["status"], "complete", "{reply}");
    assert_eq!(reply["content"], words);
    // The events are in the database, in order, ending with `done` (the finished reply's deltas
    // compacted into it).
    let all = events_until(&app, &chat, 0, "done").await;
    let ids: Vec<i64> = all.iter().map(|e| e.0).collect();
    assert!(ids.windows(2).all(|w| w[1] > w[0]), "{ids:?}");
    assert_eq!(all.last().unwrap().2["message"]["content"], words);
    assert_nothing_leaks(&app, None, baseline).await;
}

// ---------------------------------------------------------------------------------------------
// The database cannot be written

/// Hold SQLite's write lock from another connection until the returned sender is dropped or
/// fires. Returns once the lock is held.
async fn hold_write_lock(app: &TestApp) -> tokio::sync::oneshot::Sender<()> {
    use sqlx::Connection;
    let url = app.database_url.clone();
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let (locked_tx, locked_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        sqlx::query("BEGIN EXCLUSIVE")
            .execute(&mut conn)
            .await
            .unwrap();
        locked_tx.send(()).unwrap();
        let _ = release_rx.await;
        sqlx::query("COMMIT").execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    });
    locked_rx.await.unwrap();
    release_tx
}

async fn count(app: &TestApp, table: &str) -> i64 {
    use sqlx::Connection;
    let url = app.database_url.clone();
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let n: (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}"))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    n.0
}

/// A reply's `done` is stored in the same transaction as its final state, so the moment a client
/// sees it, the chat reads as finished and takes the next message: there is no window in which a
/// page shows the reply still streaming or a send bounces with 409.
#[tokio::test]
async fn a_message_sent_right_after_done_is_accepted() {
    let app = spawn_app_with_mock(
        MockConfig {
            delta_ms: 5,
            ..MockConfig::default()
        },
        &[],
    )
    .await;
    let chat = titled_chat(&app).await;
    let c = client();
    let mut events = c
        .get(app.at(&format!("/api/chats/{chat}/events?after=0")))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    for turn in 1..=5 {
        send_message(&app, &chat, "mock/echo", "one two three").await;
        while seen.matches("event: done").count() < turn {
            let chunk = tokio::time::timeout(Duration::from_secs(20), events.chunk())
                .await
                .expect("events keep coming")
                .unwrap()
                .expect("stream open");
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        let (status, shown) = app.get_json(&format!("/api/chats/{chat}")).await;
        assert_eq!(status, 200);
        let reply = shown["messages"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(reply["status"], "complete", "{shown}");
        assert_eq!(reply["content"], "one two three");
        assert!(shown["generating"].is_null(), "{shown}");
    }
    let body = settled(&app, &chat).await;
    assert_eq!(body["messages"].as_array().unwrap().len(), 10, "{body}");
}

#[tokio::test]
async fn a_locked_database_is_503_json_and_nothing_is_half_written() {
    let app = spawn_app(&[]).await;
    let chat = titled_chat(&app).await;
    let (messages, events) = (
        count(&app, "messages").await,
        count(&app, "chat_events").await,
    );
    let lock = hold_write_lock(&app).await;

    let c = client();
    let res = c
        .post(app.at("/api/chats"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let (status, message) = json_error(res).await;
    assert_eq!(status, 503);
    assert!(
        message.contains("the database is not available right now"),
        "{message}"
    );
    let res = c
        .post(app.at(&format!("/api/chats/{chat}/messages")))
        .json(&json!({"content": "hi", "model": "mock/echo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_error(res).await.0, 503);
    // Reads still work while a writer holds the lock (WAL).
    let (status, _) = app.get_json(&format!("/api/chats/{chat}")).await;
    assert_eq!(status, 200);
    drop(lock);

    // Nothing was half-written, and the chat is not left claimed by the failed send.
    assert_eq!(count(&app, "chats").await, 1);
    assert_eq!(count(&app, "messages").await, messages);
    assert_eq!(count(&app, "chat_events").await, events);
    let (_, body) = app.get_json(&format!("/api/chats/{chat}")).await;
    assert!(body["generating"].is_null(), "{body}");
    send_message(&app, &chat, "mock/echo", "again").await;
    let body = settled(&app, &chat).await;
    assert_eq!(body["messages"][1]["status"], "complete", "{body}");
}

#[tokio::test]
async fn a_client_leaving_while_the_database_is_locked_does_not_wedge_the_chat() {
    let app = spawn_app(&[]).await;
    let chat = titled_chat(&app).await;
    let lock = hold_write_lock(&app).await;
    // The send waits on the lock (busy_timeout); the client gives up first.
    let err = client()
        .post(app.at(&format!("/api/chats/{chat}/messages")))
        .json(&json!({"content": "hi", "model": "mock/echo"}))
        .timeout(Duration::from_millis(500))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err}");
    drop(lock);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Whatever happened to that send, the chat must take the next one (not 409 forever).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = client()
            .post(app.at(&format!("/api/chats/{chat}/messages")))
            .json(&json!({"content": "again", "model": "mock/echo"}))
            .send()
            .await
            .unwrap();
        match res.status().as_u16() {
            202 => break,
            409 => assert!(
                Instant::now() < deadline,
                "the chat stays claimed by a send whose client left"
            ),
            s => panic!("unexpected {s}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = settled(&app, &chat).await;
    let last = body["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["status"], "complete", "{body}");
}

#[tokio::test]
async fn a_failed_checkpoint_keeps_its_events_and_the_reply_finishes_after_the_lock() {
    let app = spawn_app_with_mock(
        MockConfig {
            delta_ms: 25,
            ..MockConfig::default()
        },
        &[],
    )
    .await;
    let words: String = (0..120).map(|i| format!("w{i} ")).collect();
    let words = words.trim_end().to_string();
    let chat = titled_chat(&app).await;
    send_message(&app, &chat, "mock/echo", &words).await;
    // Let a few checkpoints land, then lock the database past busy_timeout (5 s).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let lock = hold_write_lock(&app).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    drop(lock);

    let body = settled(&app, &chat).await;
    let reply = &body["messages"][1];
    assert_eq!(reply["status"], "complete", "{reply}");
    assert_eq!(reply["content"], words.as_str());
    // The writes that failed while the database was locked were made by later ones: nothing is
    // lost, the seqs only increase, and `done` carries the whole reply (its deltas compacted).
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&app.database_url)
        .await
        .unwrap();
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT seq, kind, data FROM chat_events WHERE chat_id = $1 ORDER BY seq")
            .bind(&chat)
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.0).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
    let done = rows.last().unwrap();
    assert_eq!(done.1, "done");
    assert!(rows.iter().all(|r| r.1 != "delta"), "{seqs:?}");
    let done: Value = serde_json::from_str(&done.2).unwrap();
    assert_eq!(done["message"]["content"], words.as_str());
}

/// Send until the database takes writes again (503 meanwhile); false if it never does.
async fn send_once_writable(app: &TestApp, chat: &str) -> bool {
    for _ in 0..20 {
        let res = client()
            .post(app.at(&format!("/api/chats/{chat}/messages")))
            .json(&json!({"content": "after", "model": "mock/echo"}))
            .send()
            .await
            .unwrap();
        if res.status() == 202 {
            return true;
        }
        assert_eq!(res.status(), 503);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Makes files immutable (`chattr +i`, which binds even root) until dropped.
struct Immutable(Vec<PathBuf>);

impl Immutable {
    /// `None` where the filesystem or the user cannot set the attribute (then the test skips,
    /// except in CI, where the machine is known to support it).
    fn set(paths: Vec<PathBuf>) -> Option<Immutable> {
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .args(&paths)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root on ext4, where chattr +i works"
            );
            eprintln!("chattr +i is not available here: skipped");
            return None;
        }
        Some(Immutable(paths))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .args(&self.0)
            .status();
    }
}

#[tokio::test]
async fn a_read_only_database_is_503_json_reads_still_work_and_writes_resume() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ro.db");
    let url = format!("sqlite://{}", db.display());
    let app = spawn_app(&[("DATABASE_URL", &url)]).await;
    let (_, reply) = reply_to(&app, "mock/echo").await;
    assert_eq!(reply["status"], "complete");
    let chat = reply["chat_id"].as_str().map(str::to_string);
    let chat = match chat {
        Some(c) => c,
        None => {
            let list: Value = client()
                .get(app.at("/api/chats"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            list["chats"][0]["id"].as_str().unwrap().to_string()
        }
    };
    let files: Vec<PathBuf> = ["ro.db", "ro.db-wal"]
        .iter()
        .map(|f| dir.path().join(f))
        .filter(|p| p.exists())
        .collect();
    let Some(guard) = Immutable::set(files) else {
        return;
    };

    // Writes are refused with the JSON error, and nothing is half-written.
    let res = client()
        .post(app.at(&format!("/api/chats/{chat}/messages")))
        .json(&json!({"content": "while read-only", "model": "mock/echo"}))
        .send()
        .await
        .unwrap();
    let (status, message) = json_error(res).await;
    assert_eq!(status, 503);
    assert!(message.contains("database"), "{message}");
    let res = client()
        .post(app.at("/api/chats"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_error(res).await.0, 503);
    // Reads still answer.
    let (status, body) = app.get_json(&format!("/api/chats/{chat}")).await;
    assert_eq!(status, 200);
    assert_eq!(body["messages"].as_array().unwrap().len(), 2);

    drop(guard);
    // Writable again: the store recycles the connections that lived through the failure, so
    // writes resume (a connection opened while the file was read-only may fail one more time),
    // and a refused send stored nothing — no user message without its reply.
    assert!(
        send_once_writable(&app, &chat).await,
        "writes resume once the disk is writable"
    );
    let body = settled(&app, &chat).await;
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 4, "{body}");
    assert_eq!(msgs[3]["status"], "complete");
}

/// A small tmpfs of its own, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    /// `None` where mounting is not permitted (not root, or a sandbox without mount).
    fn mount(dir: &std::path::Path, size: &str) -> Option<SmallDisk> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("cannot mount a tmpfs here: skipped");
            return None;
        }
        Some(SmallDisk(dir.to_path_buf()))
    }

    /// Write zeros until the filesystem is full; returns the filler file.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test]
async fn a_full_disk_is_503_json_and_writes_resume_when_space_returns() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = SmallDisk::mount(dir.path(), "4m") else {
        return;
    };
    let url = format!("sqlite://{}", dir.path().join("full.db").display());
    let app = spawn_app(&[("DATABASE_URL", &url)]).await;
    let chat = titled_chat(&app).await;
    send_message(&app, &chat, "mock/echo", "before").await;
    settled(&app, &chat).await;

    let filler = disk.fill();
    // Big enough that it cannot fit in whatever pages are left.
    let big = "x".repeat(256 * 1024);
    let res = client()
        .post(app.at(&format!("/api/chats/{chat}/messages")))
        .json(&json!({"content": big, "model": "mock/echo"}))
        .send()
        .await
        .unwrap();
    let (status, message) = json_error(res).await;
    assert_eq!(status, 503);
    assert!(message.contains("database"), "{message}");
    let (status, body) = app.get_json(&format!("/api/chats/{chat}")).await;
    assert_eq!(status, 200, "reads still work on a full disk");
    assert_eq!(body["messages"].as_array().unwrap().len(), 2);

    std::fs::remove_file(filler).unwrap();
    assert!(
        send_once_writable(&app, &chat).await,
        "writes resume once there is space again"
    );
    let body = settled(&app, &chat).await;
    let msgs = body["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 4, "the refused turn stored nothing: {body}");
    assert_eq!(msgs[3]["status"], "complete");
    drop(app);
}

/// Stored data that cannot be read back is a bug or corruption: 500 with the error shape, not
/// "the database is not available".
#[tokio::test]
async fn unreadable_stored_data_is_a_500_not_a_503() {
    let app = spawn_app(&[]).await;
    let chat = titled_chat(&app).await;
    send_message(&app, &chat, "mock/echo", "hello").await;
    settled(&app, &chat).await;
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::query("UPDATE messages SET role = 'wizard' WHERE chat_id = $1")
        .bind(&chat)
        .execute(&mut conn)
        .await
        .unwrap();
    let (status, body) = app.get_json(&format!("/api/chats/{chat}")).await;
    assert_eq!(status, 500, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("could not be read back"),
        "{body}"
    );
}
