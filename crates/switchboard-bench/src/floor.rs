//! `--floor`: two reference relays in front of the mock, measured beside the gateways, each a
//! process of its own (this binary with `--reference-relay`) on one thread with a
//! single-threaded tokio runtime.
//! - `floor`, a byte relay. It parses nothing and decides nothing: it copies each connection's
//!   bytes to its own connection to the mock and back. Every relay makes at least its hops (wait
//!   for the client, send upstream, wait for the upstream, answer), so what this one adds is the
//!   least a relay adds on the machine of the run.
//! - `stack`, the least relay the field's HTTP stack makes, the stack Switchboard stands on: one
//!   axum route that reads the body and sends it with reqwest, and answers with reqwest's
//!   response body as it comes. No access check, no metering, no timeouts. What it adds above
//!   `floor` is the stack's own work; what a gateway on that stack adds above `stack` is its own.

use std::io::Write;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};

/// Which reference relay a process serves (`switchboard-bench --reference-relay`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Reference {
    Floor,
    Stack,
}

impl Reference {
    /// Its column in the table and key in `--json`.
    pub fn name(self) -> &'static str {
        match self {
            Reference::Floor => crate::report::FLOOR,
            Reference::Stack => crate::report::STACK,
        }
    }
}

/// Serves `reference` on a free local port until the process is killed, forwarding to
/// `upstream`, after printing `listening on <url>` as Switchboard does.
///
/// A process of its own, as every gateway it is compared with runs in one: a thread of the
/// harness's own process would switch to and from the harness's client threads without
/// changing address spaces, which the gateways cannot.
pub fn serve(reference: Reference, upstream: SocketAddr) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let mut out = std::io::stdout();
        writeln!(out, "listening on http://{}", listener.local_addr()?)?;
        out.flush()?;
        match reference {
            Reference::Floor => accept_loop(listener, upstream).await,
            Reference::Stack => stack(listener, upstream).await?,
        }
        Ok(())
    })
}

/// The stack's least relay: one axum route, one reqwest client.
async fn stack(listener: TcpListener, upstream: SocketAddr) -> std::io::Result<()> {
    // reqwest is built without a TLS provider of its own (as in Switchboard); the calls here are
    // plain HTTP, but building a client needs one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(std::io::Error::other)?;
    let url = format!("http://{upstream}{MOCK_CHAT_PATH}")
        .parse()
        .map_err(std::io::Error::other)?;
    let app = axum::Router::new()
        .route(MOCK_CHAT_PATH, axum::routing::post(stack_relay))
        .with_state(StackRelay { client, url });
    axum::serve(listener, app).await
}

/// The one route the harness sends to a reference relay: the mock's chat completions.
pub const MOCK_CHAT_PATH: &str = "/api/v1/chat/completions";

#[derive(Clone)]
struct StackRelay {
    client: reqwest::Client,
    /// The mock's chat completions, parsed once (as a relay that knows its upstream does).
    url: reqwest::Url,
}

/// One call through the stack: what any relay on it does, and nothing else.
async fn stack_relay(
    axum::extract::State(relay): axum::extract::State<StackRelay>,
    req: axum::extract::Request,
) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;

    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut call = relay.client.post(relay.url.clone()).body(body);
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE] {
        if let Some(v) = parts.headers.get(&name) {
            call = call.header(name, v);
        }
    }
    let Ok(answer) = call.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let answer = axum::http::Response::<reqwest::Body>::from(answer);
    let (head, body) = answer.into_parts();
    let mut res = axum::response::Response::new(axum::body::Body::new(body));
    *res.status_mut() = head.status;
    if let Some(v) = head.headers.get(header::CONTENT_TYPE) {
        res.headers_mut().insert(header::CONTENT_TYPE, v.clone());
    }
    res
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr) {
    let mut connections = tokio::task::JoinSet::new();
    while let Ok((client, _)) = listener.accept().await {
        connections.spawn(relay(client, upstream));
        // Reap the finished ones so a long run does not keep every connection's result.
        while connections.try_join_next().is_some() {}
    }
}

async fn relay(client: TcpStream, upstream: SocketAddr) {
    let _ = client.set_nodelay(true);
    pipe_to(client, upstream).await;
}

/// Copies `client`'s bytes to a new connection to `upstream` and back until either side closes.
/// With `TCP_NODELAY` upstream, as every gateway measured here sets: a relay must not hold small
/// writes back. (The TLS front uses it too.)
pub async fn pipe_to(mut client: impl AsyncRead + AsyncWrite + Unpin, upstream: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
