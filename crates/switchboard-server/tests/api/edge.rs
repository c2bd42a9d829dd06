//! Issue 20: the edge checks — Host (DNS rebinding), Origin (cross-site requests), reverse proxies.

use serde_json::json;

use crate::helpers::spawn_app;

fn chat_body() -> serde_json::Value {
    json!({"model": "mock/echo", "messages": [{"role": "user", "content": "ping"}]})
}

async fn login_cookie(app: &crate::helpers::TestApp, code: &str) -> String {
    let res = app
        .http
        .post(app.at("/api/login"))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// Item 1: a page on another localhost port made an open server spend its key and create chats;
/// on a `CODE` server a same-site page carrying the cookie did the same, and logged the user out.
#[tokio::test]
async fn cross_origin_pages_cannot_spend_keys_or_write() {
    let evil = "http://127.0.0.1:1";
    let open = spawn_app(&[]).await;
    let coded = spawn_app(&[("CODE", "c")]).await;
    let cookie = login_cookie(&coded, "c").await;
    for (app, cookie) in [(&open, None), (&coded, Some(cookie.as_str()))] {
        for path in [
            "/api/openrouter/v1/chat/completions",
            "/v1/chat/completions",
            "/api/chats",
            "/api/logout",
        ] {
            let mut req = app
                .http
                .post(app.at(path))
                .header("origin", evil)
                .header("content-type", "text/plain")
                .body(chat_body().to_string());
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 403, "{path} (cookie: {})", cookie.is_some());
            let body: serde_json::Value = res.json().await.unwrap();
            assert!(body["error"]["message"].is_string());
        }
        assert!(app.mock.requests().is_empty(), "the key was spent");
        // Without Origin, a browser's Sec-Fetch-Site still gives the other site away.
        let res = app
            .http
            .post(app.at("/api/chats"))
            .header("sec-fetch-site", "same-site")
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
    }
    // The cookie still works: logout was not forged.
    let res = coded
        .http
        .get(coded.at("/api/chats"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // SDKs and NextChat with an explicit credential stay usable from any page.
    let res = open
        .http
        .post(open.at("/api/openrouter/v1/chat/completions"))
        .header("origin", evil)
        .header("authorization", "Bearer sk-or-own")
        .json(&chat_body())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The same origin, and the configured site URL, may write.
    let res = open
        .http
        .post(open.at("/api/chats"))
        .header("origin", open.url.clone())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

/// Item 1: DNS rebinding — a name that resolves to 127.0.0.1 reached an open server's chats.
#[tokio::test]
async fn a_host_the_server_does_not_answer_to_is_421() {
    let app = spawn_app(&[]).await;
    for path in ["/api/chats", "/", "/api/openrouter/v1/models"] {
        let res = app
            .http
            .get(app.at(path))
            .header("host", "rebind.attacker.example")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 421, "{path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("SWITCHBOARD_ALLOWED_HOSTS")
        );
    }
    let port = app.url.rsplit(':').next().unwrap();
    for host in [format!("localhost:{port}"), format!("127.0.0.1:{port}")] {
        let res = app
            .http
            .get(app.at("/api/chats"))
            .header("host", host.as_str())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{host}");
    }
    let listed = spawn_app(&[("SWITCHBOARD_SITE_URL", "https://chat.example")]).await;
    let res = listed
        .http
        .get(listed.at("/api/chats"))
        .header("host", "chat.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// The nginx server block of docs/deployment.md, with `localhost`, test certificate files, the
/// app's address and a free port put in.
fn documented_nginx_server(port: u16, app_addr: &str, cert: &str, key: &str) -> String {
    let doc = include_str!("../../../../docs/deployment.md");
    let block = doc
        .split("<!-- nginx-config-begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- nginx-config-end -->").next())
        .expect("docs/deployment.md marks its nginx config");
    let block = block
        .trim()
        .trim_start_matches("```nginx")
        .trim_end_matches("```");
    let replaced = block
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
        .replace("chat.example.com;", "localhost;")
        .replace("/etc/letsencrypt/live/chat.example.com/fullchain.pem", cert)
        .replace("/etc/letsencrypt/live/chat.example.com/privkey.pem", key)
        .replace("http://127.0.0.1:3000", &format!("http://{app_addr}"));
    assert!(
        !replaced.contains("chat.example.com") && !replaced.contains(":3000;"),
        "the documented config changed shape; update this test: {replaced}"
    );
    replaced
}

/// A reverse proxy (nginx, Caddy) the test started, with the directory of its config; stopped when
/// dropped.
struct ProxyProcess {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nginx(server: impl FnOnce(&std::path::Path) -> String) -> Option<(ProxyProcess, u16)> {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(nginx) = nginx else {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx is required in CI (apt-get install nginx)"
        );
        eprintln!("skipping: nginx is not installed");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    // nginx's workers may run as another user: they need to reach the temp paths.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = dir.path().display();
    let conf = format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         {}\n}}\n",
        server(dir.path()).replace("listen 127.0.0.1:PORT", &format!("listen 127.0.0.1:{port}"))
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let child = std::process::Command::new(nginx)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(dir.path().join("nginx.conf"))
        // Never holding the test runner's output open, whatever becomes of the process.
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx starts");
    let nginx = ProxyProcess { child, _dir: dir };
    Some((nginx, port))
}

/// Item 2: behind nginx every send of the web UI was 403 "cross-site request refused". This runs
/// the config docs/deployment.md gives, TLS included, and uses the app through it as a browser
/// would: log in, create a chat, send a message, stream a reply.
#[tokio::test]
async fn the_documented_nginx_config_serves_the_web_ui() {
    let app = spawn_app(&[("CODE", "team")]).await;
    let app_addr = app.url.trim_start_matches("http://").to_string();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let Some((nginx, port)) = start_nginx(|dir| {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, certified.cert.pem()).unwrap();
        std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
        documented_nginx_server(
            0,
            &app_addr,
            &cert.display().to_string(),
            &key.display().to_string(),
        )
        .replace("listen 127.0.0.1:0 ssl;", "listen 127.0.0.1:PORT ssl;")
    }) else {
        return;
    };
    browse_through_proxy(&format!("https://localhost:{port}")).await;
    drop(nginx);
}

/// Uses the app behind a TLS reverse proxy at `site` as the web UI would: log in (the cookie is
/// `Secure`), create a chat, send a message, stream a proxied reply; a page of another origin is
/// still refused.
async fn browse_through_proxy(site: &str) {
    let browser = reqwest::Client::builder()
        .no_proxy()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    // The proxy is up once it answers; it has had no time to bind when spawn returns.
    let mut login = None;
    for _ in 0..200 {
        match browser
            .post(format!("{site}/api/login"))
            .header("origin", site)
            .json(&json!({"code": "team"}))
            .send()
            .await
        {
            Ok(res) => {
                login = Some(res);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(25)).await,
        }
    }
    let login = login.expect("the proxy answers");
    assert_eq!(login.status(), 204);
    let set_cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.contains("; Secure"),
        "behind https the cookie is Secure: {set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let res = browser
        .post(format!("{site}/api/chats"))
        .header("origin", site)
        .header("cookie", &cookie)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let chat: serde_json::Value = res.json().await.unwrap();
    let res = browser
        .post(format!(
            "{site}/api/chats/{}/messages",
            chat["id"].as_str().unwrap()
        ))
        .header("origin", site)
        .header("cookie", &cookie)
        .json(&json!({"content": "hello", "model": "mock/echo"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let res = browser
        .post(format!("{site}/api/openrouter/v1/chat/completions"))
        .header("origin", site)
        .header("cookie", &cookie)
        .json(&json!({"model": "mock/echo", "stream": true,
                      "messages": [{"role": "user", "content": "streamed"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    // A page of another origin, through the same proxy, is still refused.
    let res = browser
        .post(format!("{site}/api/chats"))
        .header("origin", "https://localhost:1")
        .header("cookie", &cookie)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

/// The Caddyfile of docs/deployment.md, with a free port on localhost and a test certificate in
/// place of the one Caddy would fetch, in front of the app.
#[tokio::test]
async fn the_documented_caddy_config_serves_the_web_ui() {
    let Some(caddy) = ["/usr/bin/caddy", "/usr/local/bin/caddy"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "caddy is required in CI (apt-get install caddy)"
        );
        eprintln!("skipping: caddy is not installed");
        return;
    };
    let app = spawn_app(&[("CODE", "team")]).await;
    let app_addr = app.url.trim_start_matches("http://").to_string();
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let doc = include_str!("../../../../docs/deployment.md");
    let block = doc
        .split("<!-- caddy-config-begin -->")
        .nth(1)
        .and_then(|rest| rest.split("<!-- caddy-config-end -->").next())
        .expect("docs/deployment.md marks its Caddy config")
        .trim()
        .trim_start_matches("```caddy")
        .trim_end_matches("```");
    let site_block = block
        .replace(
            "chat.example.com {",
            &format!(
                "https://localhost:{port} {{\n    tls {} {}",
                cert.display(),
                key.display()
            ),
        )
        .replace("127.0.0.1:3000", &app_addr);
    assert!(
        !site_block.contains("chat.example.com") && !site_block.contains(":3000"),
        "the documented config changed shape; update this test: {site_block}"
    );
    // No admin endpoint (tests run side by side), nothing bound but the site's port.
    let caddyfile =
        format!("{{\n    admin off\n    auto_https disable_redirects\n}}\n{site_block}\n");
    std::fs::write(dir.path().join("Caddyfile"), caddyfile).unwrap();
    let child = std::process::Command::new(caddy)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.path().join("Caddyfile"))
        // Caddy keeps its state under the XDG directories: keep it in the temp dir.
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .env("XDG_CONFIG_HOME", dir.path().join("config"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("caddy starts");
    let _caddy = ProxyProcess { child, _dir: dir };
    browse_through_proxy(&format!("https://localhost:{port}")).await;
}

/// Item 9: the openai JS SDK adds `x-stainless-*` headers, and its preflight from an allowed origin
/// failed on a fixed list. Requested headers are allowed for allowed origins; credentials never.
#[tokio::test]
async fn a_browser_sdk_s_preflight_from_an_allowed_origin_gets_its_headers() {
    let preflight = |app: &crate::helpers::TestApp, origin: &str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.at("/v1/chat/completions"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type,x-stainless-os,x-stainless-lang,x-stainless-retry-count",
            )
            .send()
    };
    let app = spawn_app(&[("SWITCHBOARD_CORS_ORIGINS", "https://app.example")]).await;
    let res = preflight(&app, "https://app.example").await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "https://app.example");
    let allowed = h["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in [
        "authorization",
        "content-type",
        "x-stainless-os",
        "x-stainless-retry-count",
    ] {
        assert!(allowed.contains(name), "{name} not in {allowed}");
    }
    assert!(h.get("access-control-allow-credentials").is_none());
    // Another origin is not allowed at all.
    let res = preflight(&app, "https://evil.example").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    // With `*`, any page may use the API with its own credentials, but never with cookies.
    let any = spawn_app(&[("SWITCHBOARD_CORS_ORIGINS", "*")]).await;
    let res = preflight(&any, "https://anywhere.example").await.unwrap();
    let h = res.headers();
    assert_eq!(h["access-control-allow-origin"], "*");
    assert!(
        h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("x-stainless-os")
    );
    assert!(h.get("access-control-allow-credentials").is_none());
}

/// Item 10: a client that declares a body over the limit and waits for `100 Continue` gets 413 at
/// once, and is never told to send the body.
#[tokio::test]
async fn expect_continue_over_the_limit_is_413_without_100_continue() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(&[]).await;
    let authority = app.url.trim_start_matches("http://").to_string();
    // Over the limit (1 MiB; 64 MiB for imports) by a little — a body the server would otherwise
    // read and discard — and by a lot.
    let paths = [
        ("/v1/chat/completions", 2_000_000u64),
        ("/api/openrouter/v1/chat/completions", 2_000_000),
        ("/api/import/nextchat", 70_000_000),
    ];
    for (path, a_little_over) in paths {
        for length in [a_little_over, 10_000_000_000] {
            let mut tcp = tokio::net::TcpStream::connect(&authority).await.unwrap();
            let head = format!(
                "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\
                 content-length: {length}\r\nexpect: 100-continue\r\n\r\n"
            );
            tcp.write_all(head.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            // A guard against a hang, not a timing assertion: the server answers and closes.
            tokio::time::timeout(
                std::time::Duration::from_secs(30),
                tcp.read_to_end(&mut answer),
            )
            .await
            .expect("the server answers without waiting for the body")
            .unwrap();
            let answer = String::from_utf8_lossy(&answer);
            assert!(
                !answer.contains("100 Continue"),
                "{path} {length}: {answer}"
            );
            assert!(
                answer.starts_with("HTTP/1.1 413 "),
                "{path} {length}: {answer}"
            );
            assert!(answer.contains("\"code\""), "{path} {length}: {answer}");
        }
    }
}

async fn login_set_cookie(
    app: &crate::helpers::TestApp,
    code: &str,
    proto: Option<&str>,
) -> String {
    let mut req = app
        .http
        .post(app.at("/api/login"))
        .json(&json!({ "code": code }));
    if let Some(proto) = proto {
        req = req.header("x-forwarded-proto", proto);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 204);
    res.headers()["set-cookie"].to_str().unwrap().to_string()
}

async fn chats_status(app: &crate::helpers::TestApp, cookie: &str) -> reqwest::Response {
    app.http
        .get(app.at("/api/chats"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

const COOKIE_SECRET: &str = "test-cookie-secret-0123456789";

fn value_of(cookie: &str) -> &str {
    cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("sb_session=")
        .unwrap()
}

/// Item 4: the login cookie never expired and logout did not revoke it. A cookie copied before
/// logout is refused after it; the cookie carries nothing derived from the code.
#[tokio::test]
async fn a_cookie_captured_before_logout_is_refused_after_it() {
    let app = spawn_app(&[("CODE", "session-code")]).await;
    let set_cookie = login_set_cookie(&app, "session-code", None).await;
    assert!(set_cookie.contains("Max-Age=2592000"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    // Nothing of the code's hash is in the cookie, in any length.
    let code_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"session-code"));
    assert!(!cookie.contains(&code_hash[..8]), "{cookie}");
    assert_eq!(chats_status(&app, &cookie).await.status(), 200);
    // A second login (another device) is a session of its own.
    let other = login_set_cookie(&app, "session-code", None).await;
    let other = other.split(';').next().unwrap().to_string();
    let res = app
        .http
        .post(app.at("/api/logout"))
        .header("cookie", &cookie)
        .header("origin", app.url.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let res = chats_status(&app, &cookie).await;
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], 401, "{body}");
    assert_eq!(chats_status(&app, &other).await.status(), 200);
}

/// Item 4: sessions expire (`SWITCHBOARD_SESSION_TTL`), and one in use is renewed. The cookie's
/// issue time is set by the test (it knows the cookie secret), so no test waits for a clock.
#[tokio::test]
async fn an_expired_cookie_is_refused_and_a_used_one_is_renewed() {
    use switchboard_server::session::{SessionCookie, now_secs};
    let app = spawn_app(&[
        ("CODE", "session-code"),
        ("SWITCHBOARD_COOKIE_SECRET", COOKIE_SECRET),
        ("SWITCHBOARD_SESSION_TTL", "10d"),
    ])
    .await;
    let set_cookie = login_set_cookie(&app, "session-code", None).await;
    assert!(set_cookie.contains("Max-Age=864000"), "{set_cookie}");
    let issued = SessionCookie::decode(COOKIE_SECRET.as_bytes(), value_of(&set_cookie)).unwrap();
    let with_age = |days: u64| {
        let c = issued.reissued(now_secs() - days * 86_400 - 60);
        format!("sb_session={}", c.encode(COOKIE_SECRET.as_bytes()))
    };
    // Young: accepted, not re-issued.
    let res = chats_status(&app, &with_age(0)).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("set-cookie").is_none());
    // Older than a tenth of the TTL: accepted and re-issued, fresh.
    let res = chats_status(&app, &with_age(2)).await;
    assert_eq!(res.status(), 200);
    let renewed = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        renewed.contains("Max-Age=864000") && renewed.contains("HttpOnly"),
        "{renewed}"
    );
    let renewed = SessionCookie::decode(COOKIE_SECRET.as_bytes(), value_of(&renewed)).unwrap();
    assert_eq!(renewed.id, issued.id);
    assert!(renewed.issued_at + 60 >= now_secs());
    // Past the TTL: refused, though the session was never logged out.
    let res = chats_status(&app, &with_age(10)).await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().get("set-cookie").is_none());
    // An issue time changed without the secret is no cookie at all.
    let t = now_secs();
    let fresh = format!(
        "sb_session={}",
        issued.reissued(t).encode(COOKIE_SECRET.as_bytes())
    );
    assert_eq!(chats_status(&app, &fresh).await.status(), 200);
    let tampered = fresh.replace(&format!(".{t}."), &format!(".{}.", t - 1));
    assert_ne!(tampered, fresh);
    assert_eq!(chats_status(&app, &tampered).await.status(), 401);
}

/// The cookie's `Secure` flag follows `X-Forwarded-Proto` only from a trusted proxy: a client
/// cannot drop it (or add it) by sending the header itself.
#[tokio::test]
async fn the_cookie_is_secure_only_when_a_trusted_proxy_says_https() {
    // Loopback, the test client's address, is trusted by default.
    let behind_proxy = spawn_app(&[("CODE", "c")]).await;
    assert!(
        login_set_cookie(&behind_proxy, "c", Some("https"))
            .await
            .contains("; Secure")
    );
    assert!(
        !login_set_cookie(&behind_proxy, "c", Some("http"))
            .await
            .contains("Secure")
    );
    let direct = spawn_app(&[("CODE", "c"), ("SWITCHBOARD_TRUSTED_PROXIES", "10.0.0.0/8")]).await;
    assert!(
        !login_set_cookie(&direct, "c", Some("https"))
            .await
            .contains("Secure")
    );
    // The site URL says https whatever the headers say.
    let site = spawn_app(&[
        ("CODE", "c"),
        ("SWITCHBOARD_TRUSTED_PROXIES", "10.0.0.0/8"),
        ("SWITCHBOARD_SITE_URL", "https://chat.example"),
    ])
    .await;
    assert!(
        login_set_cookie(&site, "c", Some("http"))
            .await
            .contains("; Secure")
    );
}
