//! Client connections as hyper-util's server keeps them: a body that stops arriving, the
//! connection cap, and requests two parsers could frame differently, over raw sockets.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, spawn_app};

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.url.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Everything the server sends until it closes the connection. The bound only keeps a broken
/// server from hanging the suite; every case here ends with the server closing.
async fn read_to_close(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut got))
        .await
        .expect("the server closes the connection")
        .unwrap();
    String::from_utf8_lossy(&got).into_owned()
}

/// One response's head and body, read by its `content-length`.
async fn read_response(tcp: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(tcp.read(&mut byte).await.unwrap(), 1, "closed mid-head");
        got.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = vec![0u8; len];
    tcp.read_exact(&mut body).await.unwrap();
    got.extend_from_slice(&body);
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_408_json_and_the_connection_closes() {
    let app = spawn_app(&[("SWITCHBOARD_BODY_TIMEOUT", "200ms")]).await;
    let mut tcp = connect(&app).await;
    // Ten of the hundred bytes announced, then nothing.
    tcp.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
          content-length: 100\r\n\r\n{\"model\":",
    )
    .await
    .unwrap();
    let answer = read_to_close(&mut tcp).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("SWITCHBOARD_BODY_TIMEOUT"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
    assert!(app.mock.requests().is_empty(), "nothing went upstream");
}

#[tokio::test]
async fn at_the_connection_cap_a_new_client_still_gets_healthz() {
    let app = spawn_app(&[("SWITCHBOARD_MAX_CONNECTIONS", "2")]).await;
    let healthz = b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";
    // Two kept-alive connections hold the cap: each was served, and stays open.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut tcp = connect(&app).await;
        tcp.write_all(healthz).await.unwrap();
        let answer = read_response(&mut tcp).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(!answer.contains("connection: close"), "{answer}");
        held.push(tcp);
    }
    // A third is served from the reserve: its answer, then the connection closes.
    let mut third = connect(&app).await;
    third.write_all(healthz).await.unwrap();
    let answer = read_to_close(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"status\":\"ok\""), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    drop(held);
}

/// Requests a front proxy and this server could frame differently, each with a smuggled
/// `GET /healthz` where one of the readings would find a second request, followed by a last
/// request that closes the connection. Whatever the answer to the ambiguous request, the
/// smuggled one must never be answered.
#[tokio::test]
async fn smuggling_never_desyncs_a_kept_alive_connection() {
    let app = spawn_app(&[]).await;
    let smuggled = "GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n";
    let chunked_smuggle = format!("0\r\n\r\n{smuggled}");
    let cases: Vec<(&str, String)> = vec![
        (
            "CL and TE: chunked",
            format!(
                "POST /api/login HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: {}\r\n\
                 transfer-encoding: chunked\r\n\r\n{chunked_smuggle}",
                chunked_smuggle.len()
            ),
        ),
        (
            "TE: chunked, then CL",
            format!(
                "POST /api/login HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n\
                 content-length: 4\r\n\r\n{chunked_smuggle}"
            ),
        ),
        (
            "TE not ending in chunked",
            format!(
                "POST /api/login HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked, identity\r\n\
                 content-length: {}\r\n\r\n{chunked_smuggle}",
                chunked_smuggle.len()
            ),
        ),
        (
            "TE: xchunked",
            format!(
                "POST /api/login HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: xchunked\r\n\r\n\
                 {chunked_smuggle}"
            ),
        ),
        (
            "two different CLs",
            format!(
                "POST /api/login HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 0\r\n\
                 content-length: {}\r\n\r\n{smuggled}",
                smuggled.len()
            ),
        ),
        (
            "a space before the colon",
            format!(
                "POST /api/login HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding : chunked\r\n\
                 content-length: {}\r\n\r\n{chunked_smuggle}",
                chunked_smuggle.len()
            ),
        ),
        (
            "an obs-fold TE",
            format!(
                "POST /api/login HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding:\r\n chunked\r\n\
                 content-length: {}\r\n\r\n{chunked_smuggle}",
                chunked_smuggle.len()
            ),
        ),
        (
            "TE in HTTP/1.0",
            format!(
                "POST /api/login HTTP/1.0\r\nhost: 127.0.0.1\r\nconnection: keep-alive\r\n\
                 transfer-encoding: chunked\r\n\r\n{chunked_smuggle}"
            ),
        ),
        (
            "a chunk size with a sign",
            format!(
                "POST /api/login HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n\r\n\
                 +0\r\n\r\n{smuggled}"
            ),
        ),
        (
            "a bare LF line end",
            format!(
                "POST /api/login HTTP/1.1\r\nhost: 127.0.0.1\ntransfer-encoding: chunked\r\n\
                 content-length: {}\r\n\r\n{chunked_smuggle}",
                chunked_smuggle.len()
            ),
        ),
    ];
    let last = "GET /api/config HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n";
    for (what, request) in cases {
        let mut tcp = connect(&app).await;
        tcp.write_all(format!("{request}{last}").as_bytes())
            .await
            .unwrap();
        let answer = read_to_close(&mut tcp).await;
        assert!(
            !answer.contains("\"status\":\"ok\""),
            "{what}: the smuggled request was answered:\n{answer}"
        );
        assert!(answer.starts_with("HTTP/1."), "{what}: {answer}");
    }
}

/// HTTP/2 with prior knowledge (as a reverse proxy may speak it) on the same port as HTTP/1.1, a
/// relayed stream included.
#[tokio::test]
async fn http2_with_prior_knowledge_is_served() {
    let app = spawn_app(&[]).await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let res = h2.get(app.at("/healthz")).send().await.unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    let res = h2
        .post(app.at("/api/openrouter/v1/chat/completions"))
        .json(&serde_json::json!({
            "model": "mock/echo",
            "stream": true,
            "messages": [{"role": "user", "content": "one two three"}],
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    let body = res.text().await.unwrap();
    assert!(body.contains("three"), "{body}");
    assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
}

type H2Sender = hyper::client::conn::http2::SendRequest<http_body_util::Full<bytes::Bytes>>;

/// An HTTP/2 client with prior knowledge on its own connection: the handle to send requests,
/// and the connection's task, which ends when the server closes the connection.
async fn h2_connect(app: &TestApp) -> (H2Sender, tokio::task::JoinHandle<hyper::Result<()>>) {
    let tcp = connect(app).await;
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    (sender, tokio::spawn(connection))
}

/// `GET /healthz` on `sender`'s connection, read to its end.
async fn h2_healthz(app: &TestApp, sender: &mut H2Sender) -> u16 {
    use http_body_util::BodyExt;
    let req = hyper::Request::get(app.at("/healthz"))
        .body(http_body_util::Full::default())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    let status = res.status().as_u16();
    res.into_body().collect().await.unwrap();
    status
}

/// The connection's end, with the same bound as [`read_to_close`].
async fn closed_by_server(connection: tokio::task::JoinHandle<hyper::Result<()>>) {
    tokio::time::timeout(Duration::from_secs(30), connection)
        .await
        .expect("the server closes the connection")
        .unwrap()
        .expect("closed gracefully (GOAWAY), not broken off");
}

/// An HTTP/2 connection that answers pings but asks nothing gives its connection slot back
/// (GOAWAY), as an idle HTTP/1.1 one does at its head timeout; one with a response streaming is
/// left open while it streams, and closed once it has been idle in turn.
#[tokio::test]
async fn an_idle_http2_connection_is_closed_and_a_streaming_one_is_not() {
    use http_body_util::BodyExt;
    let release = tokio_util::sync::CancellationToken::new();
    let upstream = crate::helpers::held_streams_upstream(100, release.clone()).await;
    let api = format!("http://{upstream}/api");
    let app = crate::helpers::spawn_app_tuned(
        mock_openrouter::MockConfig::default(),
        &[("OPENROUTER_URL", &api)],
        |_, limits| limits.http2_idle_timeout = Duration::from_millis(200),
    )
    .await;

    // A relayed stream in flight, on its own connection.
    let (mut streaming, streaming_connection) = h2_connect(&app).await;
    let post = hyper::Request::post(app.at("/api/openrouter/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            br#"{"model":"mock/echo","stream":true,"messages":[{"role":"user","content":"hi"}]}"#,
        )))
        .unwrap();
    let res = streaming.send_request(post).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert!(
        String::from_utf8_lossy(&first).contains("held"),
        "{first:?}"
    );

    // A connection opened after the stream began, used once, then idle: once the server has
    // closed it, the streaming connection has been open for longer than the idle timeout too.
    let (mut idle, idle_connection) = h2_connect(&app).await;
    assert_eq!(h2_healthz(&app, &mut idle).await, 200);
    closed_by_server(idle_connection).await;

    // The streaming connection still takes new requests, and its stream goes on to its end.
    assert_eq!(h2_healthz(&app, &mut streaming).await, 200);
    release.cancel();
    let rest = body.collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&rest).contains("[DONE]"),
        "{rest:?}"
    );
    closed_by_server(streaming_connection).await;
}
