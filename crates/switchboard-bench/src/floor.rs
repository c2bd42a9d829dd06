//! `--floor`: two reference relays in front of the mock, measured beside the gateways, each on one
//! thread with a single-threaded tokio runtime.
//! - `floor`, a byte relay. It parses nothing and decides nothing: it copies each connection's
//!   bytes to its own connection to the mock and back. Every relay makes at least its hops (wait
//!   for the client, send upstream, wait for the upstream, answer), so what this one adds is the
//!   least a relay adds on the machine of the run.
//! - `stack`, the least relay the field's HTTP stack makes, the stack Switchboard stands on: one
//!   axum route that reads the body and sends it with reqwest, and answers with reqwest's
//!   response body as it comes. No access check, no metering, no timeouts. What it adds above
//!   `floor` is the stack's own work; what a gateway on that stack adds above `stack` is its own.

use std::future::Future;
use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A running reference relay; dropping it stops the relay and waits for its thread.
pub struct ReferenceRelay {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ReferenceRelay {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the byte relay (`floor`) on a free local port, forwarding to `upstream`.
pub fn start(upstream: SocketAddr) -> std::io::Result<ReferenceRelay> {
    on_own_thread("floor-relay", move |listener| {
        accept_loop(listener, upstream)
    })
}

/// Starts the stack's least relay (`stack`) on a free local port, forwarding to `upstream`.
pub fn start_stack(upstream: SocketAddr) -> std::io::Result<ReferenceRelay> {
    // reqwest is built without a TLS provider of its own (as in Switchboard); the calls here are
    // plain HTTP, but building a client needs one. Another part of the run may have set it.
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
    on_own_thread("stack-relay", move |listener| async move {
        let app = axum::Router::new()
            .route(MOCK_CHAT_PATH, axum::routing::post(stack_relay))
            .with_state(StackRelay { client, url });
        let _ = axum::serve(listener, app).await;
    })
}

/// Runs `serve` on a thread of its own with a single-threaded runtime, until the
/// [`ReferenceRelay`] it returns is dropped.
fn on_own_thread<F, Fut>(name: &str, serve: F) -> std::io::Result<ReferenceRelay>
where
    F: FnOnce(TcpListener) -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Bound here, so the caller knows the port; registered with the relay's own runtime there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = TcpListener::from_std(listener) else {
                    return;
                };
                tokio::select! {
                    _ = stopped => {}
                    () = serve(listener) => {}
                }
            });
        })?;
    Ok(ReferenceRelay {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
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
