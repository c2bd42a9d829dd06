//! The one HTTP client everything upstream goes through: the relay (proxy and gateway), the chat
//! engine's replies and titles, the catalog refresh, the spend ledger's cost lookups.
//!
//! Built once from [`OutboundSettings`] (part of [`crate::ServerSettings`]) by [`Outbound::new`]:
//! pooled, HTTP/2 where the upstream offers it over ALPN (HTTP/1.1 otherwise), `TCP_NODELAY`,
//! redirects never followed (the server's keys go only where configured).
//! - Proxy: `PROXY_URL` (NextChat's; http, https or socks5) when set, else `HTTPS_PROXY`,
//!   `HTTP_PROXY`, `ALL_PROXY`; `NO_PROXY` exempts hosts from either.
//! - Trust: the system's roots (or `SSL_CERT_FILE` / `SSL_CERT_DIR` instead of them; Mozilla's
//!   compiled-in list when the system has none), plus the certificates of `SWITCHBOARD_EXTRA_CA`.
//!
//! Lanes: over HTTP/2, a client puts every call to a host on one connection, and past the
//! server's limit on concurrent streams (hyper's default 200, nginx 128, Cloudflare about 256)
//! further calls wait on it instead of opening another. So the client is a few clients ("lanes",
//! each with its own pool, so its own connection), made as they are needed; [`Outbound::take`]
//! hands a long call (a relayed stream, a reply) the first lane with fewer than
//! [`CALLS_PER_LANE`] in flight, and counts it there until the [`InFlight`] it returns is dropped.
//! Over HTTP/1.1 each call has its own connection anyway: lane 0 serves until it is busy.
//! Short calls (catalog, titles, cost lookups) take [`Outbound::client`]: the first lane with
//! room, uncounted.
//!
//! Homes: each [connection thread](crate::connection_threads) has lanes of its own, and what
//! runs off them (the chat engine, the catalog refresh) has another set. A pool's connections
//! are tasks on the runtime that opened them, so a request served on a connection thread then
//! reaches its upstream without waking another thread.
//!
//! A user-set endpoint (see [`crate::ssrf`]) gets a client of its own from [`Outbound::pinned`]:
//! the same trust, connected only to the address that was vetted, and never through the proxy
//! (a proxy resolves names itself, and could reach addresses the vetting refused).

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use switchboard_core::settings::{SettingsError, Sources};

use crate::connection_threads::{self, MAX_CONNECTION_THREADS};

/// The outbound proxy and the certificates upstream TLS trusts, as the environment gave them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundSettings {
    /// NextChat's `PROXY_URL` (http, https, socks5): every upstream call goes through it.
    pub proxy_url: Option<url::Url>,
    pub https_proxy: Option<url::Url>,
    pub http_proxy: Option<url::Url>,
    pub all_proxy: Option<url::Url>,
    /// `NO_PROXY` as written (hosts, domains, IPs, CIDRs, `*`).
    pub no_proxy: Option<String>,
    /// A PEM bundle that replaces the system's roots (`SSL_CERT_FILE`).
    pub ssl_cert_file: Option<PathBuf>,
    /// A directory of PEM certificates that replaces the system's roots (`SSL_CERT_DIR`).
    pub ssl_cert_dir: Option<PathBuf>,
    /// A PEM file of certificates trusted beside the roots (`SWITCHBOARD_EXTRA_CA`).
    pub extra_ca: Option<PathBuf>,
    /// Calls in flight per lane; `None`: [`CALLS_PER_LANE`]. Not read from the environment:
    /// tests set it low to reach a server's stream limit with a few calls.
    pub calls_per_lane: Option<NonZeroUsize>,
}

/// Long calls in flight on one lane (one HTTP/2 connection): below every common server's limit on
/// concurrent streams, with room for the short calls that share lane 0.
pub const CALLS_PER_LANE: usize = 100;

/// Lanes at most; past `MAX_LANES * CALLS_PER_LANE` calls, the least busy lane takes more.
const MAX_LANES: usize = 64;

impl OutboundSettings {
    /// The outbound proxy and trust variables. A proxy without a scheme (`proxy:3128`) is http, as
    /// curl takes it.
    pub fn load(src: &Sources) -> Result<OutboundSettings, SettingsError> {
        fn proxy(src: &Sources, var: &'static str) -> Result<Option<url::Url>, SettingsError> {
            let Some(raw) = src.non_empty(var) else {
                return Ok(None);
            };
            let with_scheme = if raw.contains("://") {
                raw.to_string()
            } else {
                format!("http://{raw}")
            };
            let url = url::Url::parse(&with_scheme)
                .ok()
                .filter(|u| u.host().is_some())
                .ok_or_else(|| {
                    SettingsError::invalid(var, "is not a proxy URL like http://proxy.example:3128")
                })?;
            if !matches!(url.scheme(), "http" | "https" | "socks5" | "socks5h") {
                return Err(SettingsError::invalid(
                    var,
                    format!(
                        "scheme `{}` is not one of http, https, socks5, socks5h",
                        url.scheme()
                    ),
                ));
            }
            Ok(Some(url))
        }
        Ok(OutboundSettings {
            proxy_url: proxy(src, "PROXY_URL")?,
            https_proxy: proxy(src, "HTTPS_PROXY")?,
            http_proxy: proxy(src, "HTTP_PROXY")?,
            all_proxy: proxy(src, "ALL_PROXY")?,
            no_proxy: src.non_empty("NO_PROXY").map(str::to_string),
            ssl_cert_file: src.non_empty("SSL_CERT_FILE").map(PathBuf::from),
            ssl_cert_dir: src.non_empty("SSL_CERT_DIR").map(PathBuf::from),
            extra_ca: src.non_empty("SWITCHBOARD_EXTRA_CA").map(PathBuf::from),
            calls_per_lane: None,
        })
    }
}

/// Why the outbound client could not be built; each names the variable to fix.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("{var}: cannot read {path}: {problem}")]
    Certificates {
        var: &'static str,
        path: String,
        problem: String,
    },
    #[error("{var}: the proxy URL is not usable: {problem}")]
    Proxy { var: &'static str, problem: String },
    #[error("could not set up TLS for upstream calls: {0}")]
    Tls(String),
    #[error("could not build the HTTP client: {0}")]
    Client(String),
}

/// The shared upstream clients (lanes) and the TLS setup pinned clients reuse; cheap to clone.
#[derive(Clone)]
pub struct Outbound {
    lanes: Arc<Lanes>,
    tls: Arc<rustls::ClientConfig>,
}

/// Every lane of every home, made on first use; all from the same settings.
struct Lanes {
    /// Index 0: calls made off the connection threads; `i + 1`: connection thread `i`.
    homes: Box<[OnceLock<Box<HomeLanes>>]>,
    calls_per_lane: usize,
    tls: Arc<rustls::ClientConfig>,
    proxies: Vec<reqwest::Proxy>,
}

/// One home's lanes.
type HomeLanes = [OnceLock<Arc<Lane>>; MAX_LANES];

/// One client (so one pool, so one HTTP/2 connection per host) and its long calls in flight.
struct Lane {
    client: reqwest::Client,
    in_flight: AtomicUsize,
}

/// A long call counted in flight on its lane until this is dropped; hold it as long as the
/// response body.
pub struct InFlight {
    lane: Arc<Lane>,
}

impl InFlight {
    /// The lane's client, for this call.
    pub fn client(&self) -> &reqwest::Client {
        &self.lane.client
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.lane.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Outbound {
    pub fn new(settings: &OutboundSettings) -> Result<Outbound, OutboundError> {
        // Other clients in the process (the MCP SDK's) take the process default: the same ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = Arc::new(tls_config(settings)?);
        let lanes = Lanes {
            homes: (0..=MAX_CONNECTION_THREADS)
                .map(|_| OnceLock::new())
                .collect(),
            calls_per_lane: settings
                .calls_per_lane
                .map_or(CALLS_PER_LANE, NonZeroUsize::get),
            tls: tls.clone(),
            proxies: proxies(settings)?,
        };
        // One lane is built now, so that a client that cannot be built fails the start.
        let first = lanes.build()?;
        let _ = lanes.home(0)[0].set(Arc::new(first));
        Ok(Outbound {
            lanes: Arc::new(lanes),
            tls,
        })
    }

    /// A client for short calls: the first lane with room now, not counted (they end soon, and
    /// [`CALLS_PER_LANE`] leaves them room below servers' limits).
    pub fn client(&self) -> &reqwest::Client {
        let limit = self.lanes.calls_per_lane;
        let home = self.lanes.here();
        (0..MAX_LANES)
            .map(|index| self.lanes.get(home, index))
            .find(|lane| lane.in_flight.load(Ordering::Relaxed) < limit)
            .map_or(&self.lanes.get(home, 0).client, |lane| &lane.client)
    }

    /// A lane for one long call: the first with room, else the least busy.
    pub fn take(&self) -> InFlight {
        let limit = self.lanes.calls_per_lane;
        let home = self.lanes.here();
        let mut least: Option<Arc<Lane>> = None;
        for index in 0..MAX_LANES {
            let lane = self.lanes.get(home, index);
            let took = lane
                .in_flight
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < limit).then_some(n + 1)
                });
            if took.is_ok() {
                return InFlight { lane: lane.clone() };
            }
            if least.as_ref().is_none_or(|l| {
                lane.in_flight.load(Ordering::Relaxed) < l.in_flight.load(Ordering::Relaxed)
            }) {
                least = Some(lane.clone());
            }
        }
        let lane = least.expect("MAX_LANES > 0");
        lane.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight { lane }
    }

    /// A client for one vetted user-set endpoint: `host` always connects to `addr`, directly.
    pub fn pinned(&self, host: &str, addr: SocketAddr) -> Result<reqwest::Client, OutboundError> {
        base_builder(&self.tls)
            .resolve(host, addr)
            .build()
            .map_err(|e| OutboundError::Client(e.to_string()))
    }
}

impl Lanes {
    /// The home of calls made on this thread.
    fn here(&self) -> usize {
        connection_threads::current().map_or(0, |thread| thread + 1)
    }

    fn home(&self, home: usize) -> &HomeLanes {
        self.homes[home].get_or_init(|| Box::new(std::array::from_fn(|_| OnceLock::new())))
    }

    /// Lane `index` of `home`, made now if it was never used.
    fn get(&self, home: usize, index: usize) -> &Arc<Lane> {
        self.home(home)[index].get_or_init(|| {
            // `Outbound::new` built a lane from the same settings, so this builds too.
            Arc::new(self.build().expect("the settings built the first lane"))
        })
    }

    fn build(&self) -> Result<Lane, OutboundError> {
        let mut builder = base_builder(&self.tls);
        for proxy in &self.proxies {
            builder = builder.proxy(proxy.clone());
        }
        let client = builder
            .build()
            .map_err(|e| OutboundError::Client(e.to_string()))?;
        Ok(Lane {
            client,
            in_flight: AtomicUsize::new(0),
        })
    }
}

/// What every client shares. `no_proxy` here: only [`proxies`] decides, never reqwest's own
/// reading of the environment.
fn base_builder(tls: &rustls::ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls.clone())
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
}

fn proxies(s: &OutboundSettings) -> Result<Vec<reqwest::Proxy>, OutboundError> {
    let no_proxy = || {
        s.no_proxy
            .as_deref()
            .and_then(reqwest::NoProxy::from_string)
    };
    let make =
        |var: &'static str, url: &url::Url, kind: fn(&str) -> reqwest::Result<reqwest::Proxy>| {
            kind(url.as_str())
                .map(|p| p.no_proxy(no_proxy()))
                .map_err(|e| OutboundError::Proxy {
                    var,
                    problem: e.to_string(),
                })
        };
    if let Some(url) = &s.proxy_url {
        return Ok(vec![make("PROXY_URL", url, |u| reqwest::Proxy::all(u))?]);
    }
    // The first that matches a request's scheme is used: the specific ones before ALL_PROXY.
    let mut out = Vec::new();
    if let Some(url) = &s.https_proxy {
        out.push(make("HTTPS_PROXY", url, |u| reqwest::Proxy::https(u))?);
    }
    if let Some(url) = &s.http_proxy {
        out.push(make("HTTP_PROXY", url, |u| reqwest::Proxy::http(u))?);
    }
    if let Some(url) = &s.all_proxy {
        out.push(make("ALL_PROXY", url, |u| reqwest::Proxy::all(u))?);
    }
    Ok(out)
}

/// The roots upstream certificates are checked against; ALPN offers HTTP/2 first.
fn tls_config(s: &OutboundSettings) -> Result<rustls::ClientConfig, OutboundError> {
    let mut roots = rustls::RootCertStore::empty();
    if s.ssl_cert_file.is_none() && s.ssl_cert_dir.is_none() {
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            // A minimal container image ships no CA bundle: Mozilla's list then, as before.
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
    }
    if let Some(file) = &s.ssl_cert_file {
        roots.add_parsable_certificates(pem_certs("SSL_CERT_FILE", file)?);
    }
    if let Some(dir) = &s.ssl_cert_dir {
        let entries = std::fs::read_dir(dir).map_err(|e| OutboundError::Certificates {
            var: "SSL_CERT_DIR",
            path: dir.display().to_string(),
            problem: e.to_string(),
        })?;
        for entry in entries.flatten() {
            // Hash links and other files sit beside the certificates: what is no PEM is skipped.
            if let Ok(certs) = pem_certs("SSL_CERT_DIR", &entry.path()) {
                roots.add_parsable_certificates(certs);
            }
        }
    }
    if let Some(extra) = &s.extra_ca {
        for cert in pem_certs("SWITCHBOARD_EXTRA_CA", extra)? {
            roots.add(cert).map_err(|e| OutboundError::Certificates {
                var: "SWITCHBOARD_EXTRA_CA",
                path: extra.display().to_string(),
                problem: e.to_string(),
            })?;
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| OutboundError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Every certificate in a PEM file; a file with none is an error.
fn pem_certs(
    var: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, OutboundError> {
    let err = |problem: String| OutboundError::Certificates {
        var,
        path: path.display().to_string(),
        problem,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in it".into()));
    }
    Ok(certs)
}

/// One line saying why an upstream call failed (see [`switchboard_chat::failure`]).
pub use switchboard_chat::failure::describe as failure;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_url_wins_over_the_others() {
        let settings = OutboundSettings {
            proxy_url: Some("socks5://127.0.0.1:1080".parse().unwrap()),
            https_proxy: Some("http://127.0.0.1:3128".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(proxies(&settings).unwrap().len(), 1);
        let settings = OutboundSettings {
            https_proxy: Some("http://127.0.0.1:3128".parse().unwrap()),
            all_proxy: Some("http://127.0.0.1:3129".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(proxies(&settings).unwrap().len(), 2);
    }

    #[test]
    fn an_extra_ca_that_is_not_pem_names_its_variable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, "not a certificate").unwrap();
        let settings = OutboundSettings {
            extra_ca: Some(path),
            ..Default::default()
        };
        let err = Outbound::new(&settings).err().unwrap().to_string();
        assert!(err.starts_with("SWITCHBOARD_EXTRA_CA:"), "{err}");
    }

    /// Long calls fill a lane up to the limit, then the next; a lane with room again takes the
    /// next call; short calls go where there is room.
    #[test]
    fn a_call_takes_the_first_lane_with_room() {
        let settings = OutboundSettings {
            calls_per_lane: NonZeroUsize::new(2),
            ..Default::default()
        };
        let outbound = Outbound::new(&settings).unwrap();
        let lane_of = |call: &InFlight| {
            (0..MAX_LANES)
                .find(|&i| Arc::ptr_eq(&call.lane, outbound.lanes.get(0, i)))
                .unwrap()
        };
        let calls: Vec<InFlight> = (0..5).map(|_| outbound.take()).collect();
        assert_eq!(
            calls.iter().map(lane_of).collect::<Vec<_>>(),
            [0, 0, 1, 1, 2]
        );
        let short = |o: &Outbound| {
            (0..MAX_LANES)
                .find(|&i| std::ptr::eq(o.client(), &o.lanes.get(0, i).client))
                .unwrap()
        };
        assert_eq!(short(&outbound), 2);
        let mut calls = calls;
        drop(calls.remove(1));
        assert_eq!(short(&outbound), 0);
        assert_eq!(lane_of(&outbound.take()), 0);
    }

    /// A vetted endpoint is reached directly even when every upstream call is to go through a
    /// proxy: here the proxy's port is closed, so a call through it would fail.
    #[tokio::test]
    async fn a_pinned_client_never_goes_through_the_proxy() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let settings = OutboundSettings {
            proxy_url: Some(proxy.parse().unwrap()),
            ..Default::default()
        };
        let outbound = Outbound::new(&settings).unwrap();
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut tcp, _) = server.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = tcp.read(&mut buf).await.unwrap();
            tcp.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\nconnection: close\r\n\r\npinned",
            )
            .await
            .unwrap();
        });
        let url = format!("http://api.example.com:{}/v1/models", addr.port());
        let through_proxy = outbound.client().get(&url).send().await.unwrap_err();
        assert!(
            failure(&through_proxy).contains("connection refused"),
            "{}",
            failure(&through_proxy)
        );
        let pinned = outbound.pinned("api.example.com", addr).unwrap();
        let body = pinned.get(&url).send().await.unwrap().text().await.unwrap();
        assert_eq!(body, "pinned");
    }
}
