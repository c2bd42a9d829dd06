//! `--floor`: a byte relay in front of the mock, measured beside the gateways. It parses nothing
//! and decides nothing: one thread with a single-threaded tokio runtime copies each connection's
//! bytes to its own connection to the mock and back. Every relay makes at least its hops (wait
//! for the client, send upstream, wait for the upstream, answer), so what this one adds is the
//! least a relay adds on the machine of the run; a gateway's figure above it is its own work.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// The running relay; dropping it stops the relay and waits for its thread.
pub struct Floor {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Floor {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Starts the relay on a free local port, forwarding to `upstream`.
pub fn start(upstream: SocketAddr) -> std::io::Result<Floor> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Bound here, so the caller knows the port; registered with the relay's own runtime there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("floor-relay".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = TcpListener::from_std(listener) else {
                    return;
                };
                tokio::select! {
                    _ = stopped => {}
                    () = accept_loop(listener, upstream) => {}
                }
            });
        })?;
    Ok(Floor {
        addr,
        stop: Some(stop),
        thread: Some(thread),
    })
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
