//! A tiny harness around the `switchboard` binary, in the spirit of ripgrep's `tests/util.rs`:
//! start it in a temporary directory with some environment, wait for its `listening on` line,
//! talk HTTP, stop it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub struct Switchboard {
    pub url: String,
    pub dir: tempfile::TempDir,
    child: Child,
    /// Everything written to stderr so far, read as it comes: a process that logs more than a
    /// pipe holds would otherwise block on its next log line.
    logs: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    drain: Option<std::thread::JoinHandle<()>>,
}

impl Switchboard {
    /// Start in a fresh temporary directory.
    pub async fn start(env: &[(&str, &str)]) -> Switchboard {
        let dir = tempfile::tempdir().unwrap();
        let mut sb = Self::spawn(dir.path(), env).await;
        sb.dir = dir;
        sb
    }

    /// Start in `dir` (e.g. to restart on the same database).
    pub async fn start_in(dir: &Path, env: &[(&str, &str)]) -> Switchboard {
        Self::spawn(dir, env).await
    }

    async fn spawn(dir: &Path, env: &[(&str, &str)]) -> Switchboard {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        cmd.arg("serve")
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SWITCHBOARD_ADDR", "127.0.0.1:0")
            .env("OPENROUTER_URL", "http://127.0.0.1:9/api")
            .env("OPENROUTER_API_KEY", "sk-or-process-test")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("switchboard starts");
        let logs = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = logs.clone();
        let drain = std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .replace("0.0.0.0", "127.0.0.1");
        Switchboard {
            url,
            dir: tempfile::tempdir().unwrap(),
            child,
            logs,
            drain: Some(drain),
        }
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Like [`Switchboard::wait`], but yields to the runtime while it waits, so that what the test
    /// runs in process (the mock upstream) keeps serving the process meanwhile.
    pub async fn exited(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Everything it logged to stderr; call once it has exited.
    pub fn logs(&mut self) -> String {
        if let Some(drain) = self.drain.take() {
            let _ = drain.join();
        }
        String::from_utf8_lossy(&self.logs.lock().unwrap()).into_owned()
    }

    /// Create an empty chat through the API; its id.
    pub async fn create_chat(&self, http: &reqwest::Client) -> String {
        let chat: serde_json::Value = http
            .post(format!("{}/api/chats", self.url))
            .json(&serde_json::json!({}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        chat["id"].as_str().expect("a chat id").to_string()
    }

    /// Wait up to `limit` for the process to exit, and check it exited with success.
    pub fn assert_exits_cleanly(&mut self, limit: Duration, when: &str) {
        let status = self
            .wait(limit)
            .unwrap_or_else(|| panic!("did not exit {when} within {limit:?}"));
        assert!(status.success(), "{when}: {status:?}");
    }

    /// Stop (SIGTERM) and return everything it logged.
    pub fn stop_and_logs(&mut self) -> String {
        self.signal("TERM");
        self.wait(Duration::from_secs(10));
        self.logs()
    }
}

impl Drop for Switchboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client for the tests (reqwest's TLS here brings no crypto of its own: ring, as the
/// server uses).
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}
