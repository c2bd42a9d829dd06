//! Phases for the chat engine beyond one instance's throughput: two instances on one PostgreSQL
//! database (a reply generated on A, followed on B: how late B's events are, and whether B ends
//! with exactly what A ended with), and many chats each opened once (memory after them).
//!
//! Like the rest of the harness, these measure the binaries from outside, over HTTP only.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::{Method, StatusCode};

use crate::client::{Target, connect};
use crate::hist::exact_quantile;

/// What the two-instance phase found.
#[derive(Debug, Default, Clone)]
pub struct FanOut {
    pub replies: usize,
    /// Replies B saw end (`done`), and of those, how many ended with other content than on A.
    pub completed_on_b: usize,
    pub lost: usize,
    /// Events seen on both instances, and how much later B got them than A (µs).
    pub events: usize,
    pub lag_p50_us: u64,
    pub lag_p99_us: u64,
    pub first_failure: Option<String>,
}

/// One SSE event as a follower saw it: its id, kind, data and when it arrived.
struct Seen {
    id: i64,
    kind: String,
    data: String,
    at: Instant,
}

/// Reads a chat's event stream until `done`; every event with its arrival time.
async fn follow(response: hyper::Response<hyper::body::Incoming>) -> anyhow::Result<Vec<Seen>> {
    anyhow::ensure!(
        response.status() == StatusCode::OK,
        "events answered {}",
        response.status()
    );
    let mut body = response.into_body();
    let mut buf = String::new();
    let mut seen = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        let at = Instant::now();
        buf.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            let (mut id, mut kind, mut payload) = (None, None, String::new());
            for line in event.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().ok();
                } else if let Some(v) = line.strip_prefix("event: ") {
                    kind = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    payload.push_str(v);
                }
            }
            if let (Some(id), Some(kind)) = (id, kind) {
                let done = kind == "done";
                seen.push(Seen {
                    id,
                    kind,
                    data: payload,
                    at,
                });
                if done {
                    return Ok(seen);
                }
            }
        }
    }
    anyhow::bail!("the event stream ended before `done`")
}

/// The `content` of a `done` event's message.
fn done_content(seen: &[Seen]) -> Option<String> {
    let done = seen.iter().find(|e| e.kind == "done")?;
    let value: serde_json::Value = serde_json::from_str(&done.data).ok()?;
    value["message"]["content"].as_str().map(str::to_owned)
}

/// How much later `b` saw each event than `a` (µs; events only one of them saw are left out).
pub fn lags(a: &[(i64, Instant)], b: &[(i64, Instant)]) -> Vec<u64> {
    let on_a: HashMap<i64, Instant> = a.iter().copied().collect();
    b.iter()
        .filter_map(|(id, at)| {
            let first = on_a.get(id)?;
            Some(at.saturating_duration_since(*first).as_micros() as u64)
        })
        .collect()
}

async fn new_chat(target: &Target) -> anyhow::Result<String> {
    let mut conn = connect(target.addr).await?;
    let (status, body) = conn
        .call(
            target,
            Method::POST,
            "/api/chats",
            Bytes::from_static(b"{}"),
        )
        .await?;
    anyhow::ensure!(status.is_success(), "POST /api/chats answered {status}");
    let value: serde_json::Value = serde_json::from_slice(&body)?;
    value["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no chat id"))
}

/// One reply generated on `a` and followed on both.
async fn one_reply(
    a: &Target,
    b: &Target,
    message: &Bytes,
) -> anyhow::Result<(Vec<Seen>, Vec<Seen>)> {
    let id = new_chat(a).await?;
    let path = format!("/api/chats/{id}/events?after=0");
    let mut conn_a = connect(a.addr).await?;
    let on_a = conn_a.send(a, Method::GET, &path, Bytes::new()).await?;
    let mut conn_b = connect(b.addr).await?;
    let on_b = conn_b.send(b, Method::GET, &path, Bytes::new()).await?;
    // Each follower keeps its connection for as long as it reads.
    let follow_a = tokio::spawn(async move {
        let _conn = conn_a;
        follow(on_a).await
    });
    let follow_b = tokio::spawn(async move {
        let _conn = conn_b;
        follow(on_b).await
    });
    let mut conn = connect(a.addr).await?;
    let (status, _) = conn
        .call(
            a,
            Method::POST,
            &format!("/api/chats/{id}/messages"),
            message.clone(),
        )
        .await?;
    anyhow::ensure!(status.is_success(), "POST messages answered {status}");
    let limit = Duration::from_secs(120);
    let seen_a = tokio::time::timeout(limit, follow_a)
        .await??
        .map_err(|e| anyhow::anyhow!("on A: {e}"))?;
    let seen_b = tokio::time::timeout(limit, follow_b)
        .await??
        .map_err(|e| anyhow::anyhow!("on B: {e}"))?;
    Ok((seen_a, seen_b))
}

/// `n` replies at once, each generated on `a` and followed on `a` and `b`.
pub async fn fan_out(a: &Target, b: &Target, n: usize, message: Bytes) -> FanOut {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (a, b, message) = (a.clone(), b.clone(), message.clone());
            tokio::spawn(async move { one_reply(&a, &b, &message).await })
        })
        .collect();
    let mut result = FanOut {
        replies: n,
        ..FanOut::default()
    };
    let mut all_lags = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok((seen_a, seen_b))) => {
                result.completed_on_b += 1;
                if done_content(&seen_a) != done_content(&seen_b) || done_content(&seen_b).is_none()
                {
                    result.lost += 1;
                }
                let times = |s: &[Seen]| s.iter().map(|e| (e.id, e.at)).collect::<Vec<_>>();
                all_lags.extend(lags(&times(&seen_a), &times(&seen_b)));
            }
            Ok(Err(e)) => {
                result.first_failure.get_or_insert(format!("{e:#}"));
            }
            Err(e) => {
                result.first_failure.get_or_insert(e.to_string());
            }
        }
    }
    result.events = all_lags.len();
    result.lag_p50_us = exact_quantile(&mut all_lags, 0.5);
    result.lag_p99_us = exact_quantile(&mut all_lags, 0.99);
    result
}

/// What opening many chats once cost in memory.
#[derive(Debug, Default, Clone)]
pub struct Opened {
    pub chats: usize,
    pub failed: usize,
    pub rss_before: Option<u64>,
    pub rss_after: Option<u64>,
}

/// Creates `n` chats and opens each once as a browser visits it (its page data and its event
/// stream, then goes away), `concurrency` at a time.
pub async fn open_chats(target: &Target, n: usize, concurrency: usize, pid: u32) -> Opened {
    let rss_before = crate::procs::rss(pid);
    let started = Instant::now();
    let mut failed = 0;
    let mut done = 0;
    while done < n {
        let batch = concurrency.min(n - done);
        let tasks: Vec<_> = (0..batch)
            .map(|_| {
                let target = target.clone();
                tokio::spawn(async move {
                    let id = new_chat(&target).await?;
                    let mut conn = connect(target.addr).await?;
                    let (status, _) = conn
                        .call(
                            &target,
                            Method::GET,
                            &format!("/api/chats/{id}"),
                            Bytes::new(),
                        )
                        .await?;
                    anyhow::ensure!(status.is_success(), "GET chat answered {status}");
                    let mut events_conn = connect(target.addr).await?;
                    let events = events_conn
                        .send(
                            &target,
                            Method::GET,
                            &format!("/api/chats/{id}/events"),
                            Bytes::new(),
                        )
                        .await?;
                    anyhow::ensure!(
                        events.status() == StatusCode::OK,
                        "events answered {}",
                        events.status()
                    );
                    // The first bytes (": connected") arrive, then the browser goes away.
                    let mut body = events.into_body();
                    let _ = body.frame().await;
                    Ok::<_, anyhow::Error>(())
                })
            })
            .collect();
        for task in tasks {
            if !matches!(task.await, Ok(Ok(()))) {
                failed += 1;
            }
        }
        done += batch;
        if started.elapsed() > Duration::from_secs(600) {
            break;
        }
    }
    // Let the server notice the last hang-ups before measuring.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Opened {
        chats: done,
        failed,
        rss_before,
        rss_after: crate::procs::rss(pid),
    }
}

/// A fresh PostgreSQL database for the two-instance phase, made with `psql`; dropped on drop.
pub struct Database {
    admin: String,
    name: String,
    pub url: String,
}

impl Database {
    pub fn create(admin: &str) -> anyhow::Result<Database> {
        let name = format!(
            "sb_bench_{}_{}",
            std::process::id(),
            Instant::now().elapsed().as_nanos()
        );
        let out = std::process::Command::new("psql")
            .args([admin, "-q", "-c", &format!("CREATE DATABASE {name}")])
            .output()
            .map_err(|e| anyhow::anyhow!("psql is not available: {e}"))?;
        anyhow::ensure!(
            out.status.success(),
            "psql could not create a database: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
        Ok(Database {
            admin: admin.to_owned(),
            url: format!("{base}/{name}"),
            name,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                self.admin.as_str(),
                "-q",
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .output();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lags_match_events_by_id_and_never_go_negative() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let a = [(1, at(10)), (2, at(20)), (3, at(30))];
        let b = [(1, at(12)), (3, at(29)), (4, at(40))];
        // Event 2 only on A and 4 only on B are left out; B ahead of A counts as no lag.
        assert_eq!(lags(&a, &b), vec![2_000, 0]);
    }
}
