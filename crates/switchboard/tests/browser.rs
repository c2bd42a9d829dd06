//! The web UI end to end.
//!
//! `browser_ui` runs the node tests in `tests/browser/` (playwright-core driving Debian's
//! `chromium`) against the real `switchboard` and `mock-openrouter` binaries. Without
//! `tests/browser/node_modules` or `/usr/bin/chromium` it fails, naming what is missing, unless
//! `SWITCHBOARD_SKIP_BROWSER=1` says to skip it.
//!
//! `first_page_is_under_100_kb` checks the page weight budget: every request of the first load
//! (the chat page, every asset it references, the manifest, the service worker, the model and
//! tool lists), as a browser receives them (compressed), stays under 100 KB.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn browser_ui() {
    let browser_dir = repo_root().join("tests/browser");
    let chromium = std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let mut missing = Vec::new();
    if !browser_dir.join("node_modules/playwright-core").exists() {
        missing
            .push("tests/browser/node_modules (run `npm ci --prefix tests/browser`)".to_string());
    }
    if !Path::new(&chromium).exists() {
        missing.push(format!("{chromium} (run `apt-get install -y chromium`)"));
    }
    if !missing.is_empty() {
        let msg = format!("browser tests need {}", missing.join(" and "));
        // Skipping is a choice someone makes, never a silent "ok".
        if std::env::var("SWITCHBOARD_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("SWITCHBOARD_SKIP_BROWSER=1: skipped ({msg})");
            return;
        }
        panic!("{msg}; `bash .ci/run` installs them, or set SWITCHBOARD_SKIP_BROWSER=1 to skip");
    }

    // The mock upstream's binary sits next to ours once built; a no-op when it is fresh.
    let status = Command::new(env!("CARGO"))
        .args(["build", "-p", "mock-openrouter", "--bin", "mock-openrouter"])
        .current_dir(repo_root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building mock-openrouter failed");
    let switchboard = PathBuf::from(env!("CARGO_BIN_EXE_switchboard"));
    let mock =
        switchboard.with_file_name(format!("mock-openrouter{}", std::env::consts::EXE_SUFFIX));
    assert!(mock.exists(), "{} is missing", mock.display());

    let screenshots = repo_root().join("target/browser-screenshots");
    let status = Command::new("node")
        .args(["--test", "--test-concurrency=1", "tests/"])
        .current_dir(&browser_dir)
        .env("SWITCHBOARD_BIN", &switchboard)
        .env("MOCK_OPENROUTER_BIN", &mock)
        .env("CHROMIUM_BIN", &chromium)
        .env("SCREENSHOT_DIR", &screenshots)
        .status()
        .expect("node runs");
    assert!(
        status.success(),
        "browser tests failed (screenshots in {})",
        screenshots.display()
    );
}

/// A running `switchboard serve`, killed on drop.
struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("serve")
        .env("SWITCHBOARD_ADDR", "127.0.0.1:0")
        // Nothing listens there: the page must not depend on the upstream.
        .env("OPENROUTER_URL", "http://127.0.0.1:9/api")
        .env("OPENROUTER_API_KEY", "sk-or-test")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("sb.db").display()),
        )
        .env("SWITCHBOARD_CATALOG_REFRESH", "1h")
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("switchboard starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("switchboard printed its address")
            .expect("stdout is text");
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.trim().to_string();
        }
    };
    Server {
        child,
        base,
        _dir: dir,
    }
}

/// Every `/assets/…` URL in `html`, without fragments, deduplicated.
fn asset_urls(html: &str) -> Vec<String> {
    let mut urls: Vec<String> = html
        .match_indices("/assets/")
        .map(|(i, _)| {
            let rest = &html[i..];
            let end = rest
                .find(['"', '\'', '#', ' ', '>', '\\'])
                .unwrap_or(rest.len());
            rest[..end].to_string()
        })
        .collect();
    urls.sort();
    urls.dedup();
    urls
}

#[tokio::test(flavor = "multi_thread")]
async fn first_page_is_under_100_kb() {
    let server = start_server();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    // reqwest here has no decompression: the bytes counted are the bytes on the wire.
    let get = |path: String| {
        client
            .get(format!("{}{path}", server.base))
            .header("accept-encoding", "br, gzip")
            .send()
    };
    let page = client
        .get(format!("{}/", server.base))
        .send()
        .await
        .expect("GET /");
    assert_eq!(page.status(), 200);
    assert!(page.url().path().starts_with("/chats/"), "{}", page.url());
    let csp = page
        .headers()
        .get("content-security-policy")
        .expect("pages carry a CSP")
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let path = page.url().path().to_string();
    let html = page.text().await.expect("page body");
    let mut raw = html.len();
    let mut total = get(path).await.expect("page").bytes().await.unwrap().len();
    let urls = asset_urls(&html);
    for want in ["app.js", "app.css", "icons.svg"] {
        assert!(
            urls.iter().any(|u| u.contains(want)),
            "the page references {want}: {urls:?}"
        );
    }
    for url in &urls {
        let res = get(url.clone()).await.expect("asset");
        assert_eq!(res.status(), 200, "{url}");
        assert!(
            res.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("immutable"),
            "{url} is versioned and cached"
        );
        total += res.bytes().await.expect("asset body").len();
        raw += reqwest::get(format!("{}{url}", server.base))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .len();
    }
    // What app.js asks for as it starts.
    for path in [
        "/manifest.webmanifest",
        "/sw.js",
        "/api/models",
        "/api/tools",
    ] {
        let res = get(path.to_string()).await.expect(path);
        assert_eq!(res.status(), 200, "{path}");
        total += res.bytes().await.unwrap().len();
    }
    eprintln!(
        "first load: {total} bytes on the wire ({raw} bytes of page and assets uncompressed, {} assets)",
        urls.len()
    );
    assert!(total < 100 * 1024, "the first load weighs {total} bytes");
}
