//! `spawn_app`: the real application on port 0, pointed at an in-process `mock-openrouter`, with its
//! own temporary database. Logs of every test go to one in-memory buffer, so a test can check that
//! no secret ever reaches a log line.

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

use mock_openrouter::{MockConfig, MockOpenRouter};
use switchboard_core::{Settings, Sources};
use switchboard_server::listen::Limits;
use switchboard_server::{AppState, ServerSettings};

pub const SERVER_KEY: &str = "sk-or-server-key-1";

pub struct TestApp {
    pub url: String,
    pub mock: MockOpenRouter,
    pub http: reqwest::Client,
    pub state: AppState,
    /// The database this app opened (`DATABASE_URL` as the test set it).
    pub database_url: String,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

impl TestApp {
    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub async fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let res = self.http.get(self.at(path)).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Load the catalog from the mock now, instead of waiting for the background refresh.
    pub async fn load_catalog(&self) {
        self.state
            .catalog()
            .refresh(self.state.http())
            .await
            .expect("catalog loads from the mock");
    }
}

/// Start the app with `env` over the test defaults. An empty value unsets a default.
pub async fn spawn_app(env: &[(&str, &str)]) -> TestApp {
    spawn_app_with_mock(MockConfig::default(), env).await
}

pub async fn spawn_app_with_mock(mock: MockConfig, env: &[(&str, &str)]) -> TestApp {
    spawn_app_tuned(mock, env, |_, _| {}).await
}

/// As [`spawn_app_with_mock`], with what the environment cannot set changed by `tune`: the
/// server settings, and the connection limits they gave.
pub async fn spawn_app_tuned(
    mock: MockConfig,
    env: &[(&str, &str)],
    tune: impl FnOnce(&mut ServerSettings, &mut Limits),
) -> TestApp {
    init_log_capture();
    // Test clients' TLS (reqwest brings no crypto of its own here): ring, as the server's.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mock = MockOpenRouter::start(mock).await.expect("mock starts");
    let dir = tempfile::tempdir().unwrap();
    let mut vars: HashMap<String, String> = HashMap::from([
        ("OPENROUTER_URL".into(), mock.api_url()),
        ("OPENROUTER_API_KEY".into(), SERVER_KEY.into()),
        (
            "DATABASE_URL".into(),
            format!("sqlite://{}/switchboard.db", dir.path().display()),
        ),
        ("SWITCHBOARD_ADDR".into(), "127.0.0.1:0".into()),
        // Never in the source tree, whatever database a test picks.
        (
            "SWITCHBOARD_CATALOG_CACHE".into(),
            format!("{}/openrouter-models.json", dir.path().display()),
        ),
    ]);
    for (k, v) in env {
        vars.insert(k.to_string(), v.to_string());
    }
    let sources = Sources::from_pairs(vars);
    let settings = Settings::load(&sources).expect("valid test settings");
    let mut server = ServerSettings::load(&sources).expect("valid test server settings");
    let mut limits = server.limits();
    tune(&mut server, &mut limits);
    let state = AppState::new(settings, &server)
        .await
        .expect("state builds");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_state = state.clone();
    let database_url = server.database_url;
    let server = tokio::spawn(async move {
        switchboard_server::serve(server_state, listener, limits, std::future::pending())
            .await
            .unwrap();
    });
    TestApp {
        url: format!("http://{addr}"),
        mock,
        http: reqwest::Client::builder().no_proxy().build().unwrap(),
        state,
        database_url,
        _dir: dir,
        _server: server,
    }
}

static LOGS: OnceLock<Mutex<Vec<u8>>> = OnceLock::new();

struct LogBuffer;

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.get()
            .expect("initialised")
            .lock()
            .unwrap()
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Capture every log line of every crate at TRACE level, the most a user could turn on.
fn init_log_capture() {
    if LOGS.set(Mutex::new(Vec::new())).is_ok() {
        tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_ansi(false)
            .with_writer(|| LogBuffer)
            .init();
    }
}

/// Everything logged so far by any test in this binary.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.get().expect("initialised").lock().unwrap()).into_owned()
}

/// Read an SSE response to the end, returning the raw bytes.
pub async fn read_all(res: reqwest::Response) -> Vec<u8> {
    res.bytes().await.unwrap().to_vec()
}

/// A PostgreSQL database made for one test, dropped (with its connections) when this is.
pub struct TestDatabase {
    pub url: String,
    admin: String,
    name: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // Its own thread and runtime: `drop` cannot await, and may run inside a runtime.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build a runtime");
            runtime.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(&sql).execute(&pool).await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

/// A fresh PostgreSQL database for one test (`SWITCHBOARD_TEST_POSTGRES_URL` names the admin
/// connection). `None` only when `SWITCHBOARD_SKIP_POSTGRES=1`; otherwise a missing server fails.
pub async fn fresh_postgres_database() -> Option<TestDatabase> {
    if std::env::var("SWITCHBOARD_SKIP_POSTGRES").as_deref() == Ok("1") {
        eprintln!("SWITCHBOARD_SKIP_POSTGRES=1: skipped");
        return None;
    }
    let admin = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let pool = sqlx::PgPool::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is required: {e}"));
    let name = format!("sb_server_{}", rand_suffix());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    Some(TestDatabase {
        url: format!("{base}/{name}"),
        admin,
        name,
    })
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}_{}", std::process::id(), nanos % 1_000_000_000)
}

/// An upstream that holds its streams open: each chat completion answers one SSE event at once
/// and the rest (`[DONE]`) when `release` is cancelled; anything else is a 404. HTTP/1.1, or
/// HTTP/2 (prior knowledge, or behind TLS) with at most `max_streams` concurrent streams per
/// connection, as servers limit them (hyper 200, nginx 128).
pub async fn held_streams_upstream(
    max_streams: u32,
    release: tokio_util::sync::CancellationToken,
) -> std::net::SocketAddr {
    use bytes::Bytes;
    use futures_util::StreamExt;
    use hyper::body::Frame;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    type Chunk = Result<Frame<Bytes>, std::convert::Infallible>;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let release = release.clone();
            let service = hyper::service::service_fn(move |req: hyper::Request<_>| {
                let release = release.clone();
                async move {
                    let held = req.uri().path().ends_with("/chat/completions");
                    let first = futures_util::stream::once(async {
                        Chunk::Ok(Frame::data(Bytes::from_static(
                            b"data: {\"choices\":[{\"delta\":{\"content\":\"held\"}}]}\n\n",
                        )))
                    });
                    let rest = futures_util::stream::once(async move {
                        release.cancelled().await;
                        Chunk::Ok(Frame::data(Bytes::from_static(b"data: [DONE]\n\n")))
                    });
                    let body = http_body_util::StreamBody::new(first.chain(rest).boxed());
                    let res = hyper::Response::builder()
                        .status(if held { 200 } else { 404 })
                        .header("content-type", "text/event-stream")
                        .body(body)
                        .unwrap();
                    Ok::<_, std::convert::Infallible>(res)
                }
            });
            tokio::spawn(async move {
                let mut builder =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                builder.http2().max_concurrent_streams(max_streams);
                let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
            });
        }
    });
    addr
}
