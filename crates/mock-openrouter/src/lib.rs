//! A faithful stand-in for openrouter.ai, for Switchboard's tests, benchmarks and local demos.
//!
//! No machine that runs Switchboard's tests can reach the internet, yet the gateway's whole job is
//! to talk to OpenRouter. This crate serves the same wire format from `127.0.0.1`: chat completions
//! (streamed and not) whose behaviour is picked by the model id (`mock/reasoning`, `mock/tools`,
//! `mock/status-429`, …; see [`SCENARIO_MODELS`]), a synthesized catalog of several hundred models,
//! the account endpoints, and replay of recorded response bodies (`fixtures`).
//!
//! Everything it receives is recorded so tests can assert on what reached "OpenRouter", and every
//! completion it serves gets a live [`GenerationRecord`] that tells whether the client hung up.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use mock_openrouter::{MockConfig, MockOpenRouter};
//! let mock = MockOpenRouter::start(MockConfig::default()).await?;
//! // Point Switchboard's OPENROUTER_URL here:
//! println!("{}", mock.api_url());
//! # Ok(()) }
//! ```
//!
//! Code map: `app` holds the routes and the streaming body, `scenarios` decides what each model
//! answers and renders it, `catalog` builds the model list, `recording` keeps the logs.

mod app;
mod catalog;
mod recording;
mod scenarios;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt as _;

pub use recording::{GenerationRecord, RecordedRequest};
pub use scenarios::{AFFORDABLE_TOKENS, MOCK_PNG_BASE64, SCENARIO_MODELS};

use app::{AppState, Fixture};
use recording::Recorder;

/// How the mock behaves.
#[derive(Debug, Clone, Default)]
pub struct MockConfig {
    /// The accepted API keys. When empty, any key starting with `sk-or-` is accepted.
    pub keys: Vec<String>,
    /// Milliseconds between two streamed data chunks; 0 sends them as fast as possible.
    /// (`mock/slow` always uses 200 ms.)
    pub delta_ms: u64,
    /// `(model, path)`: answer requests for `model` with the response body recorded in `path`,
    /// byte for byte (SSE or JSON, decided by the content).
    pub fixtures: Vec<(String, PathBuf)>,
}

/// A running mock server. Dropping it stops the server.
pub struct MockOpenRouter {
    addr: SocketAddr,
    recorder: Arc<Recorder>,
    task: JoinHandle<()>,
}

impl MockOpenRouter {
    /// Starts on `127.0.0.1` with a port chosen by the OS, serving in a background tokio task.
    pub async fn start(config: MockConfig) -> anyhow::Result<MockOpenRouter> {
        MockOpenRouter::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Starts on `addr` (port 0 lets the OS choose), serving in a background tokio task.
    pub async fn start_on(addr: SocketAddr, config: MockConfig) -> anyhow::Result<MockOpenRouter> {
        let mut fixtures = HashMap::new();
        for (model, path) in &config.fixtures {
            let body = std::fs::read(path)
                .with_context(|| format!("reading fixture for {model} from {}", path.display()))?;
            fixtures.insert(model.clone(), Fixture::new(Bytes::from(body)));
        }
        let catalog = serde_json::to_vec(&catalog::catalog_json())
            .context("serializing the model catalog")?;
        let recorder = Arc::new(Recorder::default());
        let state = AppState {
            keys: Arc::new(config.keys),
            spacing: Duration::from_millis(config.delta_ms),
            fixtures: Arc::new(fixtures),
            catalog: Bytes::from(catalog),
            recorder: Arc::clone(&recorder),
        };

        let listener = bind(addr).with_context(|| format!("binding {addr}"))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let task = tokio::spawn(serve(listener, app::router(state)));
        Ok(MockOpenRouter {
            addr,
            recorder,
            task,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:<port>/api`: what Switchboard's `OPENROUTER_URL` is set to.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// Every request received under `/api`, oldest first (the last 10,000 are kept); the same data
    /// as `GET /__mock/requests`.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.recorder.requests()
    }

    /// Every completion served, oldest first, with live `cancelled` and `chunks_sent`; the same
    /// data as `GET /__mock/generations`.
    pub fn generations(&self) -> Vec<GenerationRecord> {
        self.recorder.generations()
    }

    /// Forgets all recorded requests and generations, like `DELETE /__mock/requests`.
    pub fn clear(&self) {
        self.recorder.clear();
    }
}

/// Like a real provider's front end, queue a burst of connections rather than drop them: the
/// default backlog (128) made a gateway's 512 simultaneous upstream connects wait a second for
/// SYN-ACK retransmission.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Accepts connections and serves each in a task of its own `JoinSet`.
///
/// This is `axum::serve` minus one thing: there, connection tasks outlive the accept loop, so a
/// dropped mock would keep answering on open keep-alive connections and finish its streams. Here
/// aborting this task drops the `JoinSet`, which aborts every connection, so dropping the mock
/// cuts streams mid-way exactly like an upstream that went away.
async fn serve(listener: TcpListener, router: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Usually out of file descriptors; back off instead of spinning.
                        eprintln!("mock-openrouter: accept failed: {error}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Small SSE writes must leave at once, and benchmarks must not wait on Nagle.
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        router.clone().oneshot(request.map(Body::new))
                    });
                    // Errors here are clients hanging up; nothing to report.
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
            // Reap finished connections so the set does not grow without bound.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

impl Drop for MockOpenRouter {
    fn drop(&mut self) {
        self.task.abort();
    }
}
