//! A TCP fault proxy for tests: listens on `127.0.0.1:0`, forwards every connection to a target
//! (the mock), and breaks the answer the way real networks and providers do — a refused connection,
//! a reset or a clean cut after N response bytes, a stall before the first byte or mid-stream, or a
//! canned raw HTTP response instead of the target's.
//!
//! It counts the connections it holds open, so a test can check that nothing leaked: every
//! connection it relays ends when either side goes away, and then both sides are closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy does to the target's answer (the request always goes through untouched, except
/// with [`Fault::Refuse`] and [`Fault::Respond`], where the target is never contacted).
#[derive(Debug, Clone)]
pub enum Fault {
    /// Relay faithfully.
    None,
    /// Nothing listens: connecting fails with "connection refused".
    Refuse,
    /// Relay the first `n` response bytes, then reset the connection (RST).
    ResetAfter(usize),
    /// Relay the first `n` response bytes, then close cleanly (FIN): a truncated answer.
    TruncateAfter(usize),
    /// Relay the first `n` response bytes, then hold the connection open and send nothing more.
    /// `StallAfter(0)` stalls before the first byte.
    StallAfter(usize),
    /// Read the request, answer these raw bytes and close; the target is never contacted.
    Respond(Vec<u8>),
}

/// A running fault proxy. Dropping it stops accepting and cuts every connection it holds.
pub struct FaultProxy {
    addr: SocketAddr,
    open: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    task: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Start in front of `target` with `fault` applied to every connection.
    pub async fn start(target: SocketAddr, fault: Fault) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refuse = matches!(fault, Fault::Refuse);
        let open = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        if refuse {
            // A port that was just bound and is closed again: connecting is refused.
            drop(listener);
            return FaultProxy {
                addr,
                open,
                accepted,
                task: None,
            };
        }
        let task = tokio::spawn(accept_loop(
            listener,
            target,
            fault,
            open.clone(),
            accepted.clone(),
        ));
        FaultProxy {
            addr,
            open,
            accepted,
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:<port>/api`: what the app's `OPENROUTER_URL` is set to.
    pub fn api_url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    /// Connections relayed and still open on either side.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    fault: Fault,
    open: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
) {
    // Connections live in this set, so aborting the accept loop (dropping the proxy) cuts them.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accept = listener.accept() => {
                let Ok((client, _)) = accept else { continue };
                accepted.fetch_add(1, Ordering::SeqCst);
                let fault = fault.clone();
                let guard = OpenGuard::new(open.clone());
                conns.spawn(async move {
                    let _guard = guard;
                    relay(client, target, fault).await;
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Counts one open connection for as long as it lives.
struct OpenGuard(Arc<AtomicUsize>);

impl OpenGuard {
    fn new(open: Arc<AtomicUsize>) -> OpenGuard {
        open.fetch_add(1, Ordering::SeqCst);
        OpenGuard(open)
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How the response direction ended.
enum End {
    /// Either side closed or failed: drop both.
    Closed,
    /// Reset the client connection.
    Reset,
}

async fn relay(mut client: TcpStream, target: SocketAddr, fault: Fault) {
    if let Fault::Respond(raw) = &fault {
        read_request_head(&mut client).await;
        let _ = client.write_all(raw).await;
        let _ = client.shutdown().await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(target).await else {
        return;
    };
    let _ = upstream.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let end = {
        let (mut client_read, mut client_write) = client.split();
        let (mut upstream_read, mut upstream_write) = upstream.split();
        let requests = async {
            // Request bytes go up untouched; the client closing its side ends the connection.
            let _ = tokio::io::copy(&mut client_read, &mut upstream_write).await;
            End::Closed
        };
        let responses = respond(&mut upstream_read, &mut client_write, &fault);
        tokio::select! {
            end = requests => end,
            end = responses => end,
        }
    };
    if let End::Reset = end {
        // SO_LINGER 0: close() sends RST instead of FIN.
        let _ = socket_linger_zero(&client);
    }
}

async fn respond(
    upstream: &mut (impl AsyncReadExt + Unpin),
    client: &mut (impl AsyncWriteExt + Unpin),
    fault: &Fault,
) -> End {
    let limit = match fault {
        Fault::ResetAfter(n) | Fault::TruncateAfter(n) | Fault::StallAfter(n) => Some(*n),
        _ => None,
    };
    let mut sent = 0usize;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if limit.is_some_and(|n| sent >= n) {
            break;
        }
        let want = limit.map_or(buf.len(), |n| (n - sent).min(buf.len()));
        let read = match upstream.read(&mut buf[..want]).await {
            Ok(0) | Err(_) => return End::Closed,
            Ok(n) => n,
        };
        if client.write_all(&buf[..read]).await.is_err() {
            return End::Closed;
        }
        let _ = client.flush().await;
        sent += read;
    }
    match fault {
        Fault::ResetAfter(_) => End::Reset,
        Fault::TruncateAfter(_) => {
            let _ = client.shutdown().await;
            End::Closed
        }
        // Hold on until the client gives up (the other direction then ends the connection).
        _ => std::future::pending().await,
    }
}

/// Read until the end of the request head (and whatever body arrived with it); good enough for a
/// canned answer.
async fn read_request_head(client: &mut TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(2), client.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => seen.extend_from_slice(&buf[..n]),
            _ => return,
        }
    }
    // Give the body a moment to arrive so closing does not reset a half-read request.
    let _ = tokio::time::timeout(Duration::from_millis(50), client.read(&mut buf)).await;
}

#[allow(deprecated)]
fn socket_linger_zero(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_linger(Some(Duration::ZERO))
}

/// A raw HTTP/1.1 response with `status`, `content_type` and `body`, closing the connection.
pub fn raw_response(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}
