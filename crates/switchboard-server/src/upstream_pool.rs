//! The relay's upstream connections: HTTP/1 keep-alive connections, pooled per serving thread.
//!
//! A connection is *leased* to the response that uses it. The relay's response body holds the
//! [`Lease`] and gives the connection back ([`Lease::release`]) once it has read the upstream
//! body to its end; a response dropped before that (the client went away, a timeout, a broken
//! stream) drops the lease, and hyper closes the connection, which is how the upstream learns to
//! stop generating.
//!
//! Why not hyper-util's pooled client, which this replaced: per relayed request it hashed the
//! origin with SipHash several times, formatted the `Host` header, cloned the connector and
//! spawned a task just to put the connection back when the response ended; under callgrind that
//! was ~14 % of the instructions Switchboard spent on a relayed request. Here checking out is a
//! scan of the thread's few origins and a `pop`, the `Host` value is built once per origin, and
//! nothing is spawned per request.
//!
//! One pool per thread rather than one per process: hyper runs each connection as a task on the
//! runtime that opened it, so a request on one serving thread that borrowed a connection opened by
//! another would hand every read and write across threads (see `serving`).

use std::cell::RefCell;
use std::time::{Duration, Instant};

use axum::http::{HeaderValue, Request, Response, Uri, header, uri};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use tower::ServiceExt;

/// How the relay opens upstream connections: TCP (TCP_NODELAY, 10 s connect timeout), and rustls
/// for https. Shared by every thread's pool.
type RelayConnector = hyper_rustls::HttpsConnector<HttpConnector>;

/// Idle connections kept per origin and thread; above the number of concurrent streams we expect
/// to relay, so a burst does not reconnect.
const MAX_IDLE_PER_ORIGIN: usize = 1024;
/// An idle connection unused for this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How often a thread with idle connections looks for expired ones.
const SWEEP_EVERY: Duration = Duration::from_secs(15);

fn relay_connector() -> anyhow::Result<RelayConnector> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    http.enforce_http(false);
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// Why a request got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the request URL has no scheme or host")]
    NotAbsolute,
    #[error("could not connect: {0}")]
    Connect(Box<dyn std::error::Error + Send + Sync>),
    #[error("request failed: {0}")]
    Request(#[from] hyper::Error),
}

impl SendError {
    pub fn is_connect(&self) -> bool {
        matches!(self, SendError::Connect(_))
    }
}

/// Sends requests over the calling thread's pooled connections; cheap to clone.
#[derive(Clone)]
pub struct UpstreamPool {
    connector: RelayConnector,
}

impl UpstreamPool {
    pub fn new() -> anyhow::Result<UpstreamPool> {
        Ok(UpstreamPool {
            connector: relay_connector()?,
        })
    }

    /// Send `req` (its URI absolute) on an idle connection to its origin, or on a new one.
    ///
    /// A reused connection that turns out to be closed before the request was written (the
    /// upstream dropped it while it sat idle) is discarded and the request goes out on the next
    /// one; a request that was written is never sent twice.
    pub async fn send(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<(Response<Incoming>, Lease), SendError> {
        let origin = Origin::of(req.uri()).ok_or(SendError::NotAbsolute)?;
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| uri::PathAndQuery::from_static("/"));
        let full_uri = std::mem::replace(req.uri_mut(), Uri::from(path));
        let (host, mut idle) = with_entry(&origin, |e| (e.host.clone(), e.take(Instant::now())));
        req.headers_mut().insert(header::HOST, host);
        loop {
            let (mut sender, reused) = match idle.take() {
                Some(sender) => (sender, true),
                None => (self.connect(&full_uri).await?, false),
            };
            // A connection given back at the end of its last response may need a moment to
            // finish reading it; one that closed meanwhile fails here, before anything is sent.
            if let Err(e) = sender.ready().await {
                if reused {
                    idle = with_entry(&origin, |e| e.take(Instant::now()));
                    continue;
                }
                return Err(e.into());
            }
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, Lease { sender, origin })),
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => {
                        req = unsent;
                        idle = with_entry(&origin, |e| e.take(Instant::now()));
                    }
                    _ => return Err(e.into_error().into()),
                },
            }
        }
    }

    async fn connect(&self, uri: &Uri) -> Result<http1::SendRequest<Full<Bytes>>, SendError> {
        let io = self
            .connector
            .clone()
            .oneshot(uri.clone())
            .await
            .map_err(SendError::Connect)?;
        let (sender, connection) = http1::handshake(io).await?;
        // The connection's own task, on this thread's runtime; it ends when the connection
        // closes, which a dropped lease or an expired idle entry causes.
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// A connection lent to one response. [`Lease::release`] gives it back for reuse; dropping the
/// lease instead closes the connection once hyper sees it is no longer wanted.
pub struct Lease {
    sender: http1::SendRequest<Full<Bytes>>,
    origin: Origin,
}

impl Lease {
    /// The response was read to its end: the connection can carry the next request.
    pub fn release(self) {
        checkin(self.origin, self.sender);
    }
}

/// Where a connection goes: scheme and authority.
#[derive(Clone)]
struct Origin {
    scheme: uri::Scheme,
    authority: uri::Authority,
}

impl PartialEq for Origin {
    fn eq(&self, other: &Origin) -> bool {
        // The same configured base URL gives byte-equal authorities: try that before
        // `Authority`'s own case-insensitive comparison.
        (self.authority.as_str() == other.authority.as_str() || self.authority == other.authority)
            && self.scheme == other.scheme
    }
}

impl Origin {
    fn of(uri: &Uri) -> Option<Origin> {
        Some(Origin {
            scheme: uri.scheme()?.clone(),
            authority: uri.authority()?.clone(),
        })
    }

    /// The `Host` header: the host, and the port unless it is the scheme's default.
    fn host_header(&self) -> HeaderValue {
        let host = self.authority.host();
        let default_port = match self.scheme.as_str() {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        };
        let value = match self.authority.port_u16() {
            Some(port) if Some(port) != default_port => format!("{host}:{port}"),
            _ => host.to_string(),
        };
        // An `Authority` holds only bytes valid in a header value.
        HeaderValue::from_str(&value).expect("an authority is a valid header value")
    }
}

/// One thread's idle connections, by origin. A gateway talks to a handful of origins, so a `Vec`
/// scanned with `==` beats any map.
#[derive(Default)]
struct ThreadPool {
    origins: Vec<OriginIdle>,
    sweeping: bool,
}

struct OriginIdle {
    origin: Origin,
    host: HeaderValue,
    /// Oldest first; reuse takes the newest, the least likely to have been closed upstream.
    idle: Vec<(http1::SendRequest<Full<Bytes>>, Instant)>,
}

impl ThreadPool {
    fn entry(&mut self, origin: &Origin) -> &mut OriginIdle {
        let i = match self.origins.iter().position(|o| &o.origin == origin) {
            Some(i) => i,
            None => {
                self.origins.push(OriginIdle {
                    host: origin.host_header(),
                    origin: origin.clone(),
                    idle: Vec::new(),
                });
                self.origins.len() - 1
            }
        };
        &mut self.origins[i]
    }

    /// Closes what expired; says whether anything is left to watch.
    fn drop_expired(&mut self, now: Instant) -> bool {
        for o in &mut self.origins {
            o.idle
                .retain(|(sender, since)| reusable(sender, *since, now));
        }
        self.origins.iter().any(|o| !o.idle.is_empty())
    }
}

impl OriginIdle {
    /// The newest idle connection still worth trying; older unusable ones on the way are closed.
    fn take(&mut self, now: Instant) -> Option<http1::SendRequest<Full<Bytes>>> {
        while let Some((sender, since)) = self.idle.pop() {
            if reusable(&sender, since, now) {
                return Some(sender);
            }
        }
        None
    }
}

/// Open as far as we know, and idle for less than [`IDLE_TIMEOUT`].
fn reusable(sender: &http1::SendRequest<Full<Bytes>>, idle_since: Instant, now: Instant) -> bool {
    !sender.is_closed() && now - idle_since < IDLE_TIMEOUT
}

thread_local! {
    static POOL: RefCell<ThreadPool> = RefCell::default();
}

/// `f` on this thread's entry for `origin` (made on first use).
fn with_entry<T>(origin: &Origin, f: impl FnOnce(&mut OriginIdle) -> T) -> T {
    POOL.with(|pool| f(pool.borrow_mut().entry(origin)))
}

fn checkin(origin: Origin, sender: http1::SendRequest<Full<Bytes>>) {
    if sender.is_closed() {
        return;
    }
    // During thread teardown the pool is gone; the connection just closes.
    let _ = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        let entry = pool.entry(&origin);
        if entry.idle.len() >= MAX_IDLE_PER_ORIGIN {
            entry.idle.remove(0);
        }
        entry.idle.push((sender, Instant::now()));
        if !pool.sweeping && tokio::runtime::Handle::try_current().is_ok() {
            pool.sweeping = true;
            tokio::spawn(sweep());
        }
    });
}

/// Closes this thread's expired idle connections every [`SWEEP_EVERY`] until none are left (the
/// next check-in starts it again).
async fn sweep() {
    /// Clears the flag however the sweep ends, also when its runtime shuts down under it.
    struct Sweeping;
    impl Drop for Sweeping {
        fn drop(&mut self) {
            let _ = POOL.try_with(|pool| {
                if let Ok(mut pool) = pool.try_borrow_mut() {
                    pool.sweeping = false;
                }
            });
        }
    }
    let _sweeping = Sweeping;
    loop {
        tokio::time::sleep(SWEEP_EVERY).await;
        if !POOL.with(|pool| pool.borrow_mut().drop_expired(Instant::now())) {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A raw HTTP/1 upstream that counts connections and answers each request on a connection
    /// with `answer(n)`, `n` counting that connection's requests from 0; it closes the
    /// connection as soon as the next answer would be `None`.
    async fn upstream(answer: fn(usize) -> Option<&'static str>) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let (mut sock, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    for n in 0.. {
                        let mut got = Vec::new();
                        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                            match sock.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(k) => got.extend_from_slice(&buf[..k]),
                            }
                        }
                        match answer(n) {
                            Some(a) => sock.write_all(a.as_bytes()).await.unwrap(),
                            None => return,
                        }
                        // Nothing more to say on this connection: close it at once, as an
                        // upstream whose keep-alive timeout ran out would.
                        if answer(n + 1).is_none() {
                            return;
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

    fn pool() -> UpstreamPool {
        UpstreamPool::new().unwrap()
    }

    fn get(url: &str) -> Request<Full<Bytes>> {
        Request::get(format!("{url}/v1/x"))
            .body(Full::default())
            .unwrap()
    }

    async fn body(resp: Response<Incoming>) -> Bytes {
        use http_body_util::BodyExt;
        resp.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_released_connection_carries_the_next_request() {
        let (url, accepted) = upstream(|_| Some(OK)).await;
        let pool = pool();
        for _ in 0..3 {
            let (resp, lease) = pool.send(get(&url)).await.unwrap();
            assert_eq!(body(resp).await, "ok");
            lease.release();
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_dropped_lease_is_not_reused() {
        let (url, accepted) = upstream(|_| Some(OK)).await;
        let pool = pool();
        for _ in 0..2 {
            let (resp, lease) = pool.send(get(&url)).await.unwrap();
            assert_eq!(body(resp).await, "ok");
            drop(lease);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_connection_closed_while_idle_is_replaced_without_an_error() {
        // Each connection answers once, then the upstream closes it.
        let (url, accepted) = upstream(|n| (n == 0).then_some(OK)).await;
        let pool = pool();
        for _ in 0..3 {
            let (resp, lease) = pool.send(get(&url)).await.unwrap();
            assert_eq!(body(resp).await, "ok");
            lease.release();
            // Let the close arrive, as it would between two real requests.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn the_host_header_names_the_port_unless_it_is_the_default() {
        let origin = |u: &str| Origin::of(&u.parse().unwrap()).unwrap().host_header();
        assert_eq!(origin("http://127.0.0.1:8080/x"), "127.0.0.1:8080");
        assert_eq!(origin("https://openrouter.ai/api"), "openrouter.ai");
        assert_eq!(origin("https://openrouter.ai:443/api"), "openrouter.ai");
        assert_eq!(origin("http://example.com:443/"), "example.com:443");
    }

    #[tokio::test]
    async fn a_relative_url_is_refused() {
        let req = Request::get("/v1/x").body(Full::default()).unwrap();
        assert!(matches!(
            pool().send(req).await,
            Err(SendError::NotAbsolute)
        ));
    }

    #[tokio::test]
    async fn idle_connections_expire() {
        let (url, accepted) = upstream(|_| Some(OK)).await;
        let pool = pool();
        let (resp, lease) = pool.send(get(&url)).await.unwrap();
        body(resp).await;
        lease.release();
        let origin = Origin::of(&url.parse().unwrap()).unwrap();
        let idle = || with_entry(&origin, |e| e.idle.len());
        assert_eq!(idle(), 1);
        assert!(
            POOL.with(|p| p.borrow().sweeping),
            "a check-in starts the sweeper"
        );
        let now = Instant::now();
        assert!(
            POOL.with(|p| p.borrow_mut().drop_expired(now)),
            "not expired yet"
        );
        assert!(!POOL.with(|p| p.borrow_mut().drop_expired(now + IDLE_TIMEOUT)));
        assert_eq!(idle(), 0);
        let (resp, _lease) = pool.send(get(&url)).await.unwrap();
        body(resp).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }
}
