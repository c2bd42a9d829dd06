//! Upstream calls as a self-hoster's network makes them: through a forward proxy the test starts
//! (absolute-form for http, `CONNECT` for https), and to a TLS upstream whose certificate comes
//! from a CA the test makes, over HTTP/2 where ALPN offers it.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::chats::{create_chat, send, settled};
use crate::helpers::{TestApp, spawn_app};
use mock_openrouter::{MockConfig, MockOpenRouter};

const CHAT: &str = "/api/openrouter/v1/chat/completions";

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello"}]})
}

/// A forward proxy: `CONNECT host:port` is tunnelled; any other request, in absolute form, is
/// sent on to its origin in origin form. Each request line it sees is kept.
struct ForwardProxy {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl ForwardProxy {
    /// `refuse`: answer every request with 403, as a proxy that does not allow the destination.
    async fn start(refuse: bool) -> ForwardProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(proxy_connection(client, log.clone(), refuse));
            }
        });
        ForwardProxy { url, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

async fn proxy_connection(mut client: TcpStream, seen: Arc<Mutex<Vec<String>>>, refuse: bool) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let line = head.lines().next().unwrap_or_default().to_string();
    seen.lock().unwrap().push(line.clone());
    if refuse {
        let _ = client
            .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    }
    let mut parts = line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method == "CONNECT" {
        let Ok(mut upstream) = TcpStream::connect(target).await else {
            return;
        };
        let _ = client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .await;
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        return;
    }
    // Absolute form: `http://host:port/path` → connect to host:port, send `/path`.
    let rest = target
        .strip_prefix("http://")
        .expect("absolute-form target");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Ok(mut upstream) = TcpStream::connect(authority).await else {
        return;
    };
    // One request per connection, so that each is seen here: the origin is asked to close.
    let origin_form = head
        .replacen(target, if path.is_empty() { "/" } else { path }, 1)
        .replacen("\r\n", "\r\nconnection: close\r\n", 1);
    if upstream.write_all(origin_form.as_bytes()).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// What an upstream call through each entry point asks the proxy for.
async fn call_every_entry_point(app: &TestApp) {
    app.load_catalog().await;
    let res = app
        .http
        .post(app.at(CHAT))
        .json(&hello("mock/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let res = app
        .http
        .post(app.at("/v1/chat/completions"))
        .json(&hello("mock/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let chat = create_chat(app, None).await;
    let (status, body) = send(app, &chat, json!({"content": "hi", "model": "mock/echo"})).await;
    assert_eq!(status, 202, "{body}");
    let chat = settled(app, &chat).await;
    let reply = chat["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(reply["status"], "complete", "{reply}");
}

#[tokio::test]
async fn relay_gateway_chat_engine_and_catalog_go_through_http_proxy() {
    let proxy = ForwardProxy::start(false).await;
    let app = spawn_app(&[("HTTP_PROXY", &proxy.url)]).await;
    call_every_entry_point(&app).await;
    let seen = proxy.seen();
    let mock = app.mock.base_url();
    assert!(
        seen.iter()
            .any(|l| l.starts_with(&format!("GET {mock}/api/v1/models "))),
        "{seen:?}"
    );
    let completions = seen
        .iter()
        .filter(|l| l.starts_with(&format!("POST {mock}/api/v1/chat/completions ")))
        .count();
    // The proxy, the gateway, the chat reply (and perhaps its title).
    assert!(completions >= 3, "{seen:?}");
}

#[tokio::test]
async fn no_proxy_bypasses_the_proxy() {
    let proxy = ForwardProxy::start(false).await;
    let app = spawn_app(&[("HTTP_PROXY", &proxy.url), ("NO_PROXY", "127.0.0.1")]).await;
    call_every_entry_point(&app).await;
    assert_eq!(proxy.seen(), Vec::<String>::new());
}

#[tokio::test]
async fn proxy_url_wins_over_the_standard_variables() {
    let proxy = ForwardProxy::start(false).await;
    let refusing = ForwardProxy::start(true).await;
    let app = spawn_app(&[
        ("HTTP_PROXY", &refusing.url),
        ("ALL_PROXY", &refusing.url),
        ("PROXY_URL", &proxy.url),
    ])
    .await;
    call_every_entry_point(&app).await;
    assert!(refusing.seen().is_empty(), "{:?}", refusing.seen());
    assert!(!proxy.seen().is_empty());
}

/// A CA made for this test, and `localhost`'s certificate signed by it.
struct TestCa {
    ca_pem: String,
    server: rustls::ServerConfig,
}

impl TestCa {
    fn new() -> TestCa {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Switchboard test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).unwrap();
        let mut server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)
        .unwrap();
        server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        TestCa {
            ca_pem: ca.pem(),
            server,
        }
    }
}

/// TLS in front of the plain mock, as openrouter.ai is served: each connection's bytes, after
/// the handshake, go to the mock unchanged (it speaks HTTP/1.1 and HTTP/2 alike). Keeps the
/// protocol each handshake agreed on.
struct TlsFront {
    port: u16,
    alpn: Arc<Mutex<Vec<String>>>,
}

impl TlsFront {
    async fn start(ca: &TestCa, backend: std::net::SocketAddr) -> TlsFront {
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(ca.server.clone()));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let alpn = Arc::new(Mutex::new(Vec::new()));
        let agreed = alpn.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let agreed = agreed.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let protocol = tls.get_ref().1.alpn_protocol().unwrap_or(b"none");
                    agreed
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(protocol).into_owned());
                    let Ok(mut plain) = TcpStream::connect(backend).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsFront { port, alpn }
    }

    fn api_url(&self) -> String {
        format!("https://localhost:{}/api", self.port)
    }
}

/// A TLS upstream: the app started with `env`, its `OPENROUTER_URL` pointing at the TLS front.
async fn behind_tls(env: &[(&str, &str)]) -> (TestApp, TlsFront, TestCa, tempfile::TempDir) {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), &ca.ca_pem).unwrap();
    let mock = MockOpenRouter::start(MockConfig::default()).await.unwrap();
    let front = TlsFront::start(&ca, mock.addr()).await;
    let api = front.api_url();
    let ca_path = dir.path().join("ca.pem").display().to_string();
    let mut vars: Vec<(&str, String)> = vec![("OPENROUTER_URL", api)];
    for (k, v) in env {
        vars.push((k, v.replace("{ca}", &ca_path)));
    }
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut app = spawn_app(&vars).await;
    // The mock behind the front is the one the app under test talks to.
    app.mock = mock;
    (app, front, ca, dir)
}

async fn relay_status(app: &TestApp) -> (u16, String) {
    let res = app
        .http
        .post(app.at(CHAT))
        .json(&hello("mock/echo"))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn an_upstream_certificate_from_an_unknown_ca_is_a_502_naming_tls() {
    let (app, _front, _ca, _dir) = behind_tls(&[]).await;
    let (status, body) = relay_status(&app).await;
    assert_eq!(status, 502, "{body}");
    let message = serde_json::from_str::<Value>(&body).unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("TLS"), "{message}");
    assert!(message.contains("unknown authority"), "{message}");
    assert!(
        crate::helpers::captured_logs().contains("unknown authority"),
        "the cause is logged too"
    );
}

#[tokio::test]
async fn ssl_cert_file_trusts_the_upstream() {
    let (app, _front, _ca, _dir) = behind_tls(&[("SSL_CERT_FILE", "{ca}")]).await;
    let (status, body) = relay_status(&app).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn extra_ca_trusts_the_upstream_and_http2_is_used_over_alpn() {
    let (app, front, _ca, _dir) = behind_tls(&[("SWITCHBOARD_EXTRA_CA", "{ca}")]).await;
    for _ in 0..3 {
        let (status, body) = relay_status(&app).await;
        assert_eq!(status, 200, "{body}");
    }
    app.load_catalog().await;
    let agreed = front.alpn.lock().unwrap().clone();
    // One HTTP/2 connection per home carries its calls: the relayed ones (served on one
    // connection thread, over the test client's one connection) and the catalog's.
    assert_eq!(agreed, vec!["h2".to_string(), "h2".to_string()]);
}

#[tokio::test]
async fn https_goes_through_the_proxy_with_connect() {
    let proxy = ForwardProxy::start(false).await;
    let (app, front, _ca, _dir) = behind_tls(&[
        ("SWITCHBOARD_EXTRA_CA", "{ca}"),
        ("HTTPS_PROXY", &proxy.url),
    ])
    .await;
    let (status, body) = relay_status(&app).await;
    assert_eq!(status, 200, "{body}");
    let seen = proxy.seen();
    assert!(
        seen.iter()
            .any(|l| l.starts_with(&format!("CONNECT localhost:{} ", front.port))),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_proxy_that_refuses_the_tunnel_is_named_in_the_502() {
    let proxy = ForwardProxy::start(true).await;
    let (app, _front, _ca, _dir) = behind_tls(&[
        ("SWITCHBOARD_EXTRA_CA", "{ca}"),
        ("HTTPS_PROXY", &proxy.url),
    ])
    .await;
    let (status, body) = relay_status(&app).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("proxy refused"), "{body}");
}

#[tokio::test]
async fn an_unresolvable_upstream_is_a_502_naming_dns() {
    let app = spawn_app(&[("OPENROUTER_URL", "http://no-such-host.invalid/api")]).await;
    let (status, body) = relay_status(&app).await;
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("DNS"), "{body}");
}

/// The app with two long calls per lane, and a TLS upstream that allows two concurrent streams
/// per HTTP/2 connection and holds each chat completion open until the token is cancelled.
async fn behind_a_stream_limit_of_two() -> (
    TestApp,
    TlsFront,
    tokio_util::sync::CancellationToken,
    tempfile::TempDir,
) {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca.ca_pem).unwrap();
    let release = tokio_util::sync::CancellationToken::new();
    let backend = crate::helpers::held_streams_upstream(2, release.clone()).await;
    let front = TlsFront::start(&ca, backend).await;
    let api = front.api_url();
    let ca_path = ca_path.display().to_string();
    let app = crate::helpers::spawn_app_tuned(
        MockConfig::default(),
        &[
            ("OPENROUTER_URL", &api),
            ("SWITCHBOARD_EXTRA_CA", &ca_path),
            // A call left waiting on a full connection fails with a 504 instead of holding the
            // test for minutes.
            ("SWITCHBOARD_UPSTREAM_FIRST_BYTE_TIMEOUT", "60s"),
        ],
        |server, _| server.outbound.calls_per_lane = std::num::NonZeroUsize::new(2),
    )
    .await;
    (app, front, release, dir)
}

/// A relayed stream, open, once its first bytes have come through.
async fn held_relay(app: &TestApp, n: usize) -> reqwest::Response {
    let mut res = app
        .http
        .post(app.at(CHAT))
        .json(&hello("mock/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "stream {n} while {n} are open");
    let first = res.chunk().await.unwrap().expect("a first chunk");
    assert!(
        String::from_utf8_lossy(&first).contains("held"),
        "stream {n}: {first:?}"
    );
    res
}

/// Past an HTTP/2 server's limit on concurrent streams, calls go out on another connection
/// instead of waiting on the full one: with two calls allowed per lane and per connection, five
/// streams held open at once each get their first bytes, over three HTTP/2 connections.
#[tokio::test]
async fn calls_past_an_http2_servers_stream_limit_open_another_connection() {
    let (app, front, release, _dir) = behind_a_stream_limit_of_two().await;
    let mut open = Vec::new();
    for n in 0..5 {
        open.push(held_relay(&app, n).await);
    }
    release.cancel();
    for res in open {
        let rest = res.text().await.unwrap();
        assert!(rest.contains("[DONE]"), "{rest}");
    }
    let agreed = front.alpn.lock().unwrap().clone();
    assert_eq!(agreed, vec!["h2".to_string(); 3]);
}

/// A chat reply counts on its lane as a relayed stream does: with the first connection full, the
/// reply's call goes out on a second one and streams while the others are held open.
#[tokio::test]
async fn a_chat_reply_takes_a_lane_with_room() {
    let (app, front, release, _dir) = behind_a_stream_limit_of_two().await;
    let open = [held_relay(&app, 0).await, held_relay(&app, 1).await];
    let chat = create_chat(&app, None).await;
    let (status, body) = send(&app, &chat, json!({"content": "hi", "model": "mock/echo"})).await;
    assert_eq!(status, 202, "{body}");
    let events = crate::chats::events_until(&app, &chat, 0, "delta").await;
    let (_, _, delta) = events.last().unwrap();
    assert_eq!(delta["content"], "held", "{delta}");
    release.cancel();
    for res in open {
        res.text().await.unwrap();
    }
    let chat = settled(&app, &chat).await;
    let reply = chat["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(reply["status"], "complete", "{reply}");
    let agreed = front.alpn.lock().unwrap().clone();
    assert_eq!(agreed, vec!["h2".to_string(); 2]);
}
