//! A rough throughput check, ignored by default because it measures rather than verifies:
//!
//! ```text
//! cargo test -p mock-openrouter --release --test load -- --ignored --nocapture
//! ```
//!
//! It drives the mock over raw keep-alive HTTP/1.1 connections (no client library in the way) and
//! prints requests per second for the request kinds benchmarks use most.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const CONNECTIONS: usize = 32;
const RUN_FOR: Duration = Duration::from_secs(2);

/// Reads one response: up to the end of a chunked body, or `content-length` bytes of body.
async fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) {
    buffer.clear();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "server closed the connection");
        buffer.extend_from_slice(&chunk[..n]);
        let Some(head_end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = std::str::from_utf8(&buffer[..head_end])
            .unwrap()
            .to_ascii_lowercase();
        if head.contains("transfer-encoding: chunked") {
            if buffer.ends_with(b"\r\n0\r\n\r\n") {
                return;
            }
        } else {
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .expect("content-length")
                .trim()
                .parse()
                .unwrap();
            if buffer.len() >= head_end + 4 + length {
                return;
            }
        }
    }
}

async fn measure(addr: std::net::SocketAddr, label: &str, request: String) {
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let request = request.clone();
        let done = Arc::clone(&done);
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut buffer = Vec::new();
            while started.elapsed() < RUN_FOR {
                stream.write_all(request.as_bytes()).await.unwrap();
                read_response(&mut stream, &mut buffer).await;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    eprintln!("{label:<28} {rate:>10.0} req/s");
}

fn chat_request(model: &str, stream: bool) -> String {
    let body = format!(
        r#"{{"model":"{model}","stream":{stream},"messages":[{{"role":"user","content":"Hello there"}}]}}"#
    );
    format!(
        "POST /api/v1/chat/completions HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        common::KEY,
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measures throughput; run explicitly with --release"]
async fn throughput() {
    let mock = common::start().await;
    let addr = mock.addr();
    measure(
        addr,
        "GET /api/v1/models",
        "GET /api/v1/models HTTP/1.1\r\nhost: localhost\r\n\r\n".to_owned(),
    )
    .await;
    measure(
        addr,
        "chat, non-stream (echo)",
        chat_request("mock/echo", false),
    )
    .await;
    measure(
        addr,
        "chat, non-stream (default)",
        chat_request("openai/gpt-4o", false),
    )
    .await;
    measure(
        addr,
        "chat, stream (default)",
        chat_request("openai/gpt-4o", true),
    )
    .await;
}
