//! Several `switchboard` processes on one PostgreSQL database, as a team runs them behind a load
//! balancer, and one process being stopped mid-reply: the conversations lose no word.
//!
//! Every test here drives real processes against the real PostgreSQL (a fresh database each,
//! dropped afterwards) and the in-process mock upstream. Waits are for an event or a state, each
//! with a generous bound; no test asserts how long anything took.

mod util;

use std::time::{Duration, Instant};

use mock_openrouter::{MockConfig, MockOpenRouter};
use serde_json::{Value, json};
use util::Switchboard;

/// How long an instance may be silent before the others presume it dead (short, so the crash
/// test does not wait the default 30 s).
const LEASE_TIMEOUT: &str = "3s";

/// A fresh PostgreSQL database, dropped when this is.
struct Database {
    admin: String,
    name: String,
    url: String,
}

impl Database {
    /// `None` only when `SWITCHBOARD_SKIP_POSTGRES=1`; a missing server fails the test.
    async fn fresh() -> Option<Database> {
        if std::env::var("SWITCHBOARD_SKIP_POSTGRES").as_deref() == Ok("1") {
            eprintln!("SWITCHBOARD_SKIP_POSTGRES=1: skipped");
            return None;
        }
        let admin = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let pool = sqlx::PgPool::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is required: {e}"));
        let name = format!(
            "sb_instances_{}",
            tempfile::Builder::new()
                .tempfile()
                .unwrap()
                .path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches('.')
                .to_ascii_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "")
        );
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        Some(Database { admin, name, url })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&pool)
                        .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

/// A mock upstream that streams one word every `delta_ms`, and the environment instances use.
struct Setup {
    mock: MockOpenRouter,
    env: Vec<(String, String)>,
}

impl Setup {
    async fn new(database: &Database, delta_ms: u64) -> Setup {
        let mock = MockOpenRouter::start(MockConfig {
            delta_ms,
            ..MockConfig::default()
        })
        .await
        .unwrap();
        let env = vec![
            ("OPENROUTER_URL".into(), mock.api_url()),
            ("DATABASE_URL".into(), database.url.clone()),
            ("SWITCHBOARD_LEASE_TIMEOUT".into(), LEASE_TIMEOUT.into()),
        ];
        Setup { mock, env }
    }

    async fn instance(&self, extra: &[(&str, &str)]) -> Switchboard {
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.extend_from_slice(extra);
        Switchboard::start(&env).await
    }
}

/// Where requests go: an instance, or a proxy in front of several.
trait Base {
    fn base(&self) -> &str;
}

impl Base for Switchboard {
    fn base(&self) -> &str {
        &self.url
    }
}

impl Base for String {
    fn base(&self) -> &str {
        self
    }
}

async fn create_chat(sb: &impl Base) -> String {
    let chat: Value = http()
        .post(format!("{}/api/chats", sb.base()))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    chat["id"].as_str().expect("a chat id").to_string()
}

fn http() -> reqwest::Client {
    util::client()
}

async fn send(sb: &impl Base, chat: &str, content: &str) -> (u16, Value) {
    let res = http()
        .post(format!("{}/api/chats/{chat}/messages", sb.base()))
        .json(&json!({"content": content, "model": "mock/echo"}))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn chat_on(sb: &impl Base, chat: &str) -> Value {
    http()
        .get(format!("{}/api/chats/{chat}", sb.base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The chat as `sb` shows it once no reply streams in it (waits up to `limit`).
async fn settled(sb: &impl Base, chat: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let body = chat_on(sb, chat).await;
        let streaming = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["status"] == "streaming");
        if !streaming && body["generating"].is_null() {
            return body;
        }
        assert!(Instant::now() < deadline, "never settled: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `n` words, as mock/echo answers them back.
fn words(n: usize, tag: &str) -> String {
    (0..n)
        .map(|i| format!("{tag}{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A chat's event stream, read frame by frame.
struct Events {
    res: reqwest::Response,
    buf: String,
}

impl Events {
    async fn open(sb: &impl Base, chat: &str, after: i64) -> Events {
        let res = http()
            .get(format!(
                "{}/api/chats/{chat}/events?after={after}",
                sb.base()
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        Events {
            res,
            buf: String::new(),
        }
    }

    /// The next event `(id, kind, data)`, waiting up to 30 s.
    async fn next(&mut self) -> (i64, String, Value) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let frame: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (None, None, None);
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.parse().ok();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        kind = Some(v.to_string());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(v).ok();
                    }
                }
                if let (Some(id), Some(kind), Some(data)) = (id, kind, data) {
                    return (id, kind, data);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.res.chunk())
                .await
                .expect("events keep coming")
                .expect("the stream is not cut")
                .expect("the stream stays open");
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Events up to and including the first `done`.
    async fn until_done(&mut self) -> Vec<(i64, String, Value)> {
        let mut seen = Vec::new();
        loop {
            let e = self.next().await;
            let done = e.1 == "done";
            seen.push(e);
            if done {
                return seen;
            }
        }
    }
}

#[tokio::test]
async fn a_reply_generated_on_one_instance_streams_live_on_another() {
    let Some(db) = Database::fresh().await else {
        return;
    };
    let setup = Setup::new(&db, 20).await;
    let a = setup.instance(&[]).await;
    let b = setup.instance(&[]).await;
    let chat = create_chat(&a).await;
    let mut on_b = Events::open(&b, &chat, 0).await;
    let text = words(40, "w");
    let (status, ids) = send(&a, &chat, &text).await;
    assert_eq!(status, 202, "{ids}");
    let seen = on_b.until_done().await;
    let deltas: String = seen
        .iter()
        .filter(|e| e.1 == "delta")
        .filter_map(|e| e.2["content"].as_str())
        .collect();
    assert!(
        seen.iter().filter(|e| e.1 == "delta").count() > 1,
        "B saw the reply live, in several deltas: {seen:?}"
    );
    // The deltas B saw are the reply in order; the last words may come only with `done`.
    assert!(text.starts_with(&deltas), "{deltas:?}");
    let ids_seen: Vec<i64> = seen.iter().map(|e| e.0).collect();
    assert!(ids_seen.windows(2).all(|w| w[1] > w[0]), "{ids_seen:?}");
    let done = &seen.last().unwrap().2["message"];
    assert_eq!(done["status"], "complete");
    assert_eq!(done["content"], text.as_str());
    assert_eq!(done["id"], ids["assistant_message_id"]);
    // While it streamed, B also showed it as generating; now both show it complete.
    for sb in [&a, &b] {
        let body = settled(sb, &chat, Duration::from_secs(30)).await;
        assert_eq!(body["messages"][1]["content"], text.as_str());
    }
}

#[tokio::test]
async fn stop_on_any_instance_stops_the_generation_where_it_runs() {
    let Some(db) = Database::fresh().await else {
        return;
    };
    let setup = Setup::new(&db, 50).await;
    let a = setup.instance(&[]).await;
    let b = setup.instance(&[]).await;
    let chat = create_chat(&a).await;
    let mut on_b = Events::open(&b, &chat, 0).await;
    let (status, _) = send(&a, &chat, &words(400, "w")).await;
    assert_eq!(status, 202);
    // B sees the reply running, then stops it.
    loop {
        if on_b.next().await.1 == "delta" {
            break;
        }
    }
    assert!(!chat_on(&b, &chat).await["generating"].is_null());
    let res = http()
        .post(format!("{}/api/chats/{chat}/stop", b.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let seen = on_b.until_done().await;
    let done = &seen.last().unwrap().2["message"];
    assert_eq!(done["status"], "stopped", "{done}");
    assert!(!done["content"].as_str().unwrap().is_empty());
    // The owner dropped the upstream request: the mock saw its client go.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !setup.mock.generations().iter().any(|g| g.cancelled) {
        assert!(
            Instant::now() < deadline,
            "the upstream request was not dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let body = settled(&a, &chat, Duration::from_secs(10)).await;
    assert_eq!(body["messages"][1]["status"], "stopped");
}

#[tokio::test]
async fn two_sends_to_one_chat_on_two_instances_start_one_reply() {
    let Some(db) = Database::fresh().await else {
        return;
    };
    let setup = Setup::new(&db, 20).await;
    let a = setup.instance(&[]).await;
    let b = setup.instance(&[]).await;
    for round in 0..3 {
        let chat = create_chat(&a).await;
        let text = words(100, "w");
        let (first, second) = tokio::join!(send(&a, &chat, &text), send(&b, &chat, &text));
        let mut statuses = [first.0, second.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [202, 409], "round {round}: {first:?} {second:?}");
        let refused = if first.0 == 409 { &first.1 } else { &second.1 };
        assert!(refused["error"]["message"].is_string(), "{refused}");
        let body = settled(&b, &chat, Duration::from_secs(30)).await;
        let roles: Vec<&str> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["user", "assistant"], "round {round}");
        http()
            .post(format!("{}/api/chats/{chat}/stop", a.url))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn turns_alternating_between_three_instances_keep_every_word() {
    let Some(db) = Database::fresh().await else {
        return;
    };
    let setup = Setup::new(&db, 0).await;
    let instances = [
        setup.instance(&[]).await,
        setup.instance(&[]).await,
        setup.instance(&[]).await,
    ];
    let chat = create_chat(&instances[0]).await;
    // Every instance has the chat open (its event stream followed) from the start.
    let mut followers = Vec::new();
    for sb in &instances {
        followers.push(Events::open(sb, &chat, 0).await);
    }
    const TURNS: usize = 20;
    for turn in 0..TURNS {
        let sb = &instances[turn % 3];
        let text = words(12, &format!("t{turn}w"));
        let (status, body) = send(sb, &chat, &text).await;
        assert_eq!(status, 202, "turn {turn}: {body}");
        settled(&instances[(turn + 1) % 3], &chat, Duration::from_secs(30)).await;
    }
    for sb in &instances {
        let body = settled(sb, &chat, Duration::from_secs(30)).await;
        let messages = body["messages"].as_array().unwrap();
        assert_eq!(messages.len(), TURNS * 2, "{body}");
        for (turn, pair) in messages.chunks(2).enumerate() {
            let text = words(12, &format!("t{turn}w"));
            assert_eq!(pair[0]["content"], text.as_str());
            assert_eq!(pair[1]["status"], "complete", "turn {turn}: {}", pair[1]);
            assert_eq!(pair[1]["content"], text.as_str(), "turn {turn}");
        }
    }
    // Every follower saw every reply end, in order, with ids that only grow.
    for follower in &mut followers {
        let mut ids = Vec::new();
        for _ in 0..TURNS {
            ids.extend(follower.until_done().await.into_iter().map(|e| e.0));
        }
        assert!(ids.windows(2).all(|w| w[1] > w[0]), "{ids:?}");
    }
}

#[tokio::test]
async fn a_rolling_restart_of_the_other_instances_leaves_a_running_reply_whole() {
    let Some(db) = Database::fresh().await else {
        return;
    };
    let setup = Setup::new(&db, 15).await;
    let a = setup.instance(&[]).await;
    let mut b = setup.instance(&[]).await;
    let mut c = setup.instance(&[]).await;
    let chat = create_chat(&a).await;
    let mut on_a = Events::open(&a, &chat, 0).await;
    let text = words(300, "w");
    let (status, _) = send(&a, &chat, &text).await;
    assert_eq!(status, 202);
    loop {
        if on_a.next().await.1 == "delta" {
            break;
        }
    }
    // B, then C: stopped (SIGTERM) and started again, while A generates.
    for sb in [&mut b, &mut c] {
        sb.signal("TERM");
        let status = sb.exited(Duration::from_secs(30)).await;
        assert!(status.is_some_and(|s| s.success()), "{status:?}");
        *sb = setup.instance(&[]).await;
        assert_eq!(
            chat_on(sb, &chat).await["messages"][1]["status"],
            "streaming",
            "a new instance leaves a live owner's reply alone"
        );
    }
    let seen = on_a.until_done().await;
    let done = &seen.last().unwrap().2["message"];
    assert_eq!(done["status"], "complete", "{done}");
    assert_eq!(done["content"], text.as_str());
    for sb in [&a, &b, &c] {
        let body = settled(sb, &chat, Duration::from_secs(10)).await;
        assert_eq!(body["messages"][1]["content"], text.as_str());
    }
}

#[tokio::test]
async fn a_killed_instance_s_reply_becomes_interrupted_with_its_text_on_the_others() {
    let Some(db) = Database::fresh().await else {
        return;
    };
    let setup = Setup::new(&db, 30).await;
    let mut a = setup.instance(&[]).await;
    let b = setup.instance(&[]).await;
    let chat = create_chat(&a).await;
    let mut on_b = Events::open(&b, &chat, 0).await;
    let (status, _) = send(&a, &chat, &words(500, "w")).await;
    assert_eq!(status, 202);
    let mut text = String::new();
    while text.len() < 40 {
        let (_, kind, data) = on_b.next().await;
        if kind == "delta" {
            text.push_str(data["content"].as_str().unwrap_or(""));
        }
    }
    a.signal("KILL");
    a.wait(Duration::from_secs(5)).expect("killed");
    // B notices the lease expire, closes the reply, and tells its followers.
    let seen = tokio::time::timeout(Duration::from_secs(45), on_b.until_done())
        .await
        .expect("B closes the dead instance's reply within 45 s");
    for (_, kind, data) in &seen {
        if kind == "delta" {
            text.push_str(data["content"].as_str().unwrap_or(""));
        }
    }
    let done = &seen.last().unwrap().2["message"];
    assert_eq!(done["status"], "interrupted", "{done}");
    let kept = done["content"].as_str().unwrap();
    assert!(
        kept.starts_with(&text),
        "every word B was shown is kept: {kept:?}"
    );
    let body = settled(&b, &chat, Duration::from_secs(5)).await;
    assert_eq!(body["messages"][1]["status"], "interrupted");
    assert_eq!(body["messages"][1]["content"], kept);
    // And the chat takes the next message.
    let (status, body) = send(&b, &chat, "again").await;
    assert_eq!(status, 202, "{body}");
}

/// nginx, configured as docs/nginx-several-instances.conf says, in front of two instances: the
/// browser's requests land on either one, round robin, and the conversation is whole.
#[tokio::test]
async fn behind_nginx_two_instances_serve_one_conversation() {
    let Some(db) = Database::fresh().await else {
        return;
    };
    let nginx_bin = std::path::Path::new("/usr/sbin/nginx");
    if !nginx_bin.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx is missing (.ci/run installs it)"
        );
        eprintln!("nginx is not installed: skipped");
        return;
    }
    let setup = Setup::new(&db, 5).await;
    let a = setup.instance(&[]).await;
    let b = setup.instance(&[]).await;
    let port = |url: &str| url.rsplit(':').next().unwrap().to_string();
    let front = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let front_port = front.local_addr().unwrap().port();
    drop(front);
    let snippet = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/nginx-several-instances.conf"
    ))
    .unwrap()
    .replace("127.0.0.1:3001", &format!("127.0.0.1:{}", port(&a.url)))
    .replace("127.0.0.1:3002", &format!("127.0.0.1:{}", port(&b.url)))
    .replace("listen 8080", &format!("listen 127.0.0.1:{front_port}"));
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\n\
         access_log off;\nclient_body_temp_path {d}/body;\nproxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\nuwsgi_temp_path {d}/uwsgi;\nscgi_temp_path {d}/scgi;\n\
         {snippet}\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    // One process (no master and workers to orphan), and never holding the test runner's output.
    let nginx = std::process::Command::new(nginx_bin)
        .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _nginx = KillOnDrop(nginx);
    let url = format!("http://127.0.0.1:{front_port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while http().get(format!("{url}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "nginx did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let front = url;
    let chat = create_chat(&front).await;
    let mut events = Events::open(&front, &chat, 0).await;
    for turn in 0..6 {
        let text = words(10, &format!("t{turn}w"));
        let (status, body) = send(&front, &chat, &text).await;
        assert_eq!(status, 202, "{body}");
        let done = events.until_done().await;
        let message = &done.last().unwrap().2["message"];
        assert_eq!(message["status"], "complete", "{message}");
        assert_eq!(message["content"], text.as_str());
    }
    // Each instance shows the whole conversation.
    for sb in [&a, &b] {
        let body = settled(sb, &chat, Duration::from_secs(10)).await;
        assert_eq!(body["messages"].as_array().unwrap().len(), 12);
    }
}

/// Ends a child process when the test ends, however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The spend ledger is in the database: instances on one PostgreSQL enforce one shared budget.
#[tokio::test]
async fn instances_sharing_one_database_share_one_budget() {
    let Some(db) = Database::fresh().await else {
        return;
    };
    let setup = Setup::new(&db, 0).await;
    let budget = [("SWITCHBOARD_BUDGET", "0.00001/day")];
    let a = setup.instance(&budget).await;
    let b = setup.instance(&budget).await;
    let chat = create_chat(&a).await;
    let (status, _) = send(&a, &chat, "spend on A").await;
    assert_eq!(status, 202);
    settled(&a, &chat, Duration::from_secs(30)).await;
    // B refuses once A's spend is in the ledger (written in batches, within a second).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let res = http()
            .post(format!("{}/v1/chat/completions", b.url))
            .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]}))
            .send()
            .await
            .unwrap();
        if res.status() == 402 {
            let body: Value = res.json().await.unwrap();
            assert_eq!(body["error"]["code"], "budget_exceeded");
            break;
        }
        assert_eq!(res.status(), 200);
        assert!(Instant::now() < deadline, "B never saw A's spend");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A tool server config running `@modelcontextprotocol/server-everything` (installed by
/// `npm ci --prefix tests/mcp`), or `None` (printed) when node is missing.
fn everything_config(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let node = std::process::Command::new("node").arg("--version").output();
    if !node.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: node is not installed (the MCP tool tests run a node MCP server)");
        return None;
    }
    let entry = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/mcp/node_modules/@modelcontextprotocol/server-everything/dist/index.js");
    assert!(
        entry.exists(),
        "{} is missing: run `npm ci --prefix tests/mcp`",
        entry.display()
    );
    let path = dir.join("mcp.json");
    let config =
        json!({"mcpServers": {"everything": {"command": "node", "args": [entry, "stdio"]}}});
    std::fs::write(&path, config.to_string()).unwrap();
    Some(path)
}

/// Waits until `sb`'s tool server `everything` is ready.
async fn tools_ready(sb: &impl Base) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let tools: Value = http()
            .get(format!("{}/api/tools", sb.base()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if tools["servers"][0]["state"] == "ready" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the tool server never started: {tools}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_tool_call_waiting_on_one_instance_is_approved_on_another() {
    let Some(db) = Database::fresh().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(config) = everything_config(dir.path()) else {
        return;
    };
    let config = config.to_str().unwrap().to_owned();
    let setup = Setup::new(&db, 5).await;
    let a = setup
        .instance(&[("SWITCHBOARD_MCP_CONFIG", config.as_str())])
        .await;
    let b = setup
        .instance(&[("SWITCHBOARD_MCP_CONFIG", config.as_str())])
        .await;
    tools_ready(&a).await;
    let chat: Value = http()
        .post(format!("{}/api/chats", a.url))
        .json(&json!({"settings": {"mcp_servers": ["everything"]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let chat = chat["id"].as_str().unwrap().to_owned();
    let mut on_b = Events::open(&b, &chat, 0).await;
    let res = http()
        .post(format!("{}/api/chats/{chat}/messages", a.url))
        .json(
            &json!({"content": "call echo {\"message\":\"from afar\"}", "model": "mock/use-tool"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    // B hears that the call waits, and allows it; A runs it.
    let call_id = loop {
        let (_, kind, data) = on_b.next().await;
        if kind == "tool_approval" {
            break data["call"]["id"].as_str().unwrap().to_owned();
        }
    };
    let res = http()
        .post(format!("{}/api/chats/{chat}/tool-calls/{call_id}", b.url))
        .json(&json!({"approve": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let seen = on_b.until_done().await;
    let done = &seen.last().unwrap().2["message"];
    assert_eq!(done["content"], "Tool result: Echo: from afar", "{done}");
    assert_eq!(done["tool_calls"][0]["state"], "done");
}

/// Starts a compare of `models` on `sb`; returns the replies' ids in the order of `models`.
async fn compare(sb: &impl Base, chat: &str, content: &str, models: &[&str]) -> Vec<String> {
    let res = http()
        .post(format!("{}/api/chats/{chat}/messages", sb.base()))
        .json(&json!({"content": content, "models": models}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    body["assistant_message_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_compare_on_one_instance_is_stopped_column_by_column_from_another() {
    let Some(db) = Database::fresh().await else {
        return;
    };
    let setup = Setup::new(&db, 50).await;
    let a = setup.instance(&[]).await;
    let b = setup.instance(&[]).await;
    let chat = create_chat(&a).await;
    let mut on_b = Events::open(&b, &chat, 0).await;
    let ids = compare(&a, &chat, &words(400, "w"), &["mock/echo", "mock/slow"]).await;
    // B sees both replies running.
    let mut speaking = std::collections::HashSet::new();
    while speaking.len() < 2 {
        let (_, kind, data) = on_b.next().await;
        if kind == "delta" {
            speaking.insert(data["message_id"].as_str().unwrap().to_string());
        }
    }
    let running = chat_on(&b, &chat).await["generating_ids"].clone();
    assert_eq!(running, json!(ids), "B lists every reply of the turn");
    // A second turn is refused on B while the compare runs on A.
    let (status, _) = send(&b, &chat, "meanwhile").await;
    assert_eq!(status, 409);
    // Stopping one column from B stops that reply on A; the other goes on.
    let res = http()
        .post(format!(
            "{}/api/chats/{chat}/messages/{}/stop",
            b.url, ids[0]
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let seen = on_b.until_done().await;
    let done = &seen.last().unwrap().2["message"];
    assert_eq!(done["id"], ids[0].as_str());
    assert_eq!(done["status"], "stopped", "{done}");
    assert_eq!(
        chat_on(&b, &chat).await["generating_ids"],
        json!([ids[1]]),
        "the other column still runs"
    );
    // Stopping the chat from B stops the rest.
    let res = http()
        .post(format!("{}/api/chats/{chat}/stop", b.url))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let seen = on_b.until_done().await;
    let done = &seen.last().unwrap().2["message"];
    assert_eq!(done["id"], ids[1].as_str());
    assert_eq!(done["status"], "stopped", "{done}");
    let body = settled(&a, &chat, Duration::from_secs(10)).await;
    assert_eq!(body["generating_ids"], json!([]));
}

#[tokio::test]
async fn sigterm_lets_every_reply_of_a_compare_finish() {
    let Some(db) = Database::fresh().await else {
        return;
    };
    let setup = Setup::new(&db, 20).await;
    let mut a = setup.instance(&[]).await;
    let b = setup.instance(&[]).await;
    let chat = create_chat(&a).await;
    let mut on_b = Events::open(&b, &chat, 0).await;
    let text = words(60, "w");
    let ids = compare(&a, &chat, &text, &["mock/echo", "mock/reasoning"]).await;
    loop {
        if on_b.next().await.1 == "delta" {
            break;
        }
    }
    a.signal("TERM");
    let status = a.exited(Duration::from_secs(30)).await;
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    // Both replies were drained before A left, not cut off as interrupted.
    let body = settled(&b, &chat, Duration::from_secs(10)).await;
    assert_eq!(body["messages"][1]["id"], ids[0].as_str());
    assert_eq!(body["messages"][1]["status"], "complete");
    assert_eq!(body["messages"][1]["content"], text.as_str());
    assert_eq!(body["alternatives"][0]["id"], ids[1].as_str());
    assert_eq!(body["alternatives"][0]["status"], "complete");
}
