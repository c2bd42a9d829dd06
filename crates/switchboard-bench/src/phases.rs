//! The measurements. Each phase drives one or more [`Target`]s and returns plain numbers; the
//! caller subtracts the direct-to-mock figures from the through-a-gateway ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::{Barrier, Semaphore};

use crate::client::{Conn, Target, connect, read_stream, wait_for_event};
use crate::hist::{Histogram, exact_quantile};
use crate::procs;

/// A gap between two deltas longer than this is a stall.
pub const STALL: Duration = Duration::from_millis(250);

/// A small deterministic generator for jitter; quality does not matter here.
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Percentiles of one target's non-streamed latency at concurrency 1.
#[derive(Debug, Clone, Default)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub samples: usize,
    pub errors: u64,
}

/// Concurrency 1, `n` requests per target, interleaved across targets so that noise from other
/// work on the machine hits all of them alike. Each round visits the targets in a fresh random
/// order: in a fixed order a target always follows the same neighbour, and whether the previous
/// request left the gateway's threads (and the VM's vCPUs) awake or asleep moved a target's
/// figures by tens of microseconds. Every sample is kept (exact percentiles).
pub async fn latency(targets: &[Target], body: &Bytes, n: usize, warmup: usize) -> Vec<Latency> {
    let mut conns: Vec<Option<Conn>> = Vec::new();
    for t in targets {
        conns.push(connect(t.addr).await.ok());
    }
    let mut samples: Vec<Vec<u64>> = targets.iter().map(|_| Vec::with_capacity(n)).collect();
    let mut errors = vec![0u64; targets.len()];
    let mut order: Vec<usize> = (0..targets.len()).collect();
    let mut rng = XorShift::new(0x5eed_1a7e);
    for i in 0..warmup + n {
        for k in (1..order.len()).rev() {
            order.swap(k, rng.below(k as u64 + 1) as usize);
        }
        for &j in &order {
            let target = &targets[j];
            if conns[j].is_none() {
                conns[j] = connect(target.addr).await.ok();
            }
            let Some(conn) = conns[j].as_mut() else {
                errors[j] += 1;
                continue;
            };
            match conn.completion(target, body).await {
                Ok(took) if i >= warmup => samples[j].push(took.as_nanos() as u64),
                Ok(_) => {}
                Err(_) => {
                    errors[j] += 1;
                    conns[j] = None;
                }
            }
        }
    }
    samples
        .into_iter()
        .zip(errors)
        .map(|(mut s, errors)| Latency {
            p50: exact_quantile(&mut s, 0.50),
            p99: exact_quantile(&mut s, 0.99),
            p999: exact_quantile(&mut s, 0.999),
            samples: s.len(),
            errors,
        })
        .collect()
}

/// A fixed-time closed-loop load at some concurrency.
#[derive(Debug, Clone, Default)]
pub struct Load {
    pub concurrency: usize,
    pub requests: u64,
    pub errors: u64,
    pub rps: f64,
    pub p50: u64,
    pub p99: u64,
    /// CPU time of the watched process per successful request, in microseconds.
    pub cpu_us_per_req: Option<f64>,
}

/// `concurrency` workers, one connection each, sending back to back for `duration`. CPU of `pid`
/// (the gateway under test) is read right before and after the timed window.
pub async fn throughput(
    target: &Target,
    body: &Bytes,
    concurrency: usize,
    duration: Duration,
    pid: Option<u32>,
) -> Load {
    let barrier = Arc::new(Barrier::new(concurrency + 1));
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let target = target.clone();
        let body = body.clone();
        let barrier = Arc::clone(&barrier);
        workers.push(tokio::spawn(async move {
            let mut conn = connect(target.addr).await.ok();
            barrier.wait().await;
            let deadline = Instant::now() + duration;
            let mut hist = Histogram::default();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let Some(c) = conn.as_mut() else {
                    errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    conn = connect(target.addr).await.ok();
                    continue;
                };
                match c.completion(&target, &body).await {
                    Ok(took) => hist.record(took.as_nanos() as u64),
                    Err(_) => {
                        errors += 1;
                        conn = None;
                    }
                }
            }
            (hist, errors)
        }));
    }
    barrier.wait().await;
    let cpu_before = pid.and_then(procs::cpu_time);
    let started = Instant::now();
    let mut hist = Histogram::default();
    let mut errors = 0;
    for worker in workers {
        if let Ok((h, e)) = worker.await {
            hist.merge(&h);
            errors += e;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = pid.and_then(procs::cpu_time);
    let requests = hist.len();
    let cpu_us_per_req = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) if requests > 0 => Some((b - a).as_secs_f64() * 1e6 / requests as f64),
        _ => None,
    };
    Load {
        concurrency,
        requests,
        errors,
        rps: requests as f64 / elapsed,
        p50: hist.quantile(0.50),
        p99: hist.quantile(0.99),
        cpu_us_per_req,
    }
}

/// K concurrent streams: a first burst (all K requests at once on pre-opened connections), then
/// steady state (each worker waits a random part of one stream's length, then streams back to
/// back, so starts are spread out).
#[derive(Debug, Clone, Default)]
pub struct Streams {
    pub k: usize,
    pub completed: u64,
    pub failed: u64,
    pub connect_errors: u64,
    pub ttfb_burst_p50: u64,
    pub ttfb_burst_p99: u64,
    pub ttfb_steady_p50: u64,
    pub ttfb_steady_p99: u64,
    pub steady_streams: u64,
    pub stalls: u64,
    /// The longest gap between two deltas of a stream, nanoseconds.
    pub max_gap: u64,
    /// Mean `data:` lines per completed stream, `[DONE]` included.
    pub data_lines_per_stream: f64,
    /// Peak RSS of the watched process during the phase, bytes.
    pub peak_rss: Option<u64>,
    /// CPU time of the watched process per `data:` line relayed, microseconds.
    pub cpu_us_per_delta: Option<f64>,
    /// Open fds of the watched process at the peak of the phase.
    pub peak_fds: Option<usize>,
}

#[derive(Default)]
struct StreamTally {
    burst: Vec<u64>,
    steady: Vec<u64>,
    completed: u64,
    failed: u64,
    connect_errors: u64,
    stalls: u64,
    max_gap: u64,
    data_lines: u64,
}

impl StreamTally {
    fn add(&mut self, report: &crate::client::StreamReport, burst: bool) {
        if let Some(ttfb) = report.ttfb {
            let list = if burst {
                &mut self.burst
            } else {
                &mut self.steady
            };
            list.push(ttfb.as_nanos() as u64);
        }
        for &gap in &report.gaps {
            if gap > STALL.as_nanos() as u64 {
                self.stalls += 1;
            }
            self.max_gap = self.max_gap.max(gap);
        }
        if report.complete && report.data_lines > 0 {
            self.completed += 1;
            self.data_lines += report.data_lines;
        } else {
            self.failed += 1;
        }
    }
}

/// Runs one streams phase against `target` (whose chat path is posted `body`, a streaming
/// request). `stream_len` is the expected length of one stream, used to spread steady-state starts.
pub async fn streams(
    target: &Target,
    body: &Bytes,
    k: usize,
    steady: Duration,
    stream_len: Duration,
    pid: Option<u32>,
) -> Streams {
    let connecting = Arc::new(Semaphore::new(128));
    let barrier = Arc::new(Barrier::new(k + 1));
    let mut workers = Vec::with_capacity(k);
    for i in 0..k {
        let target = target.clone();
        let body = body.clone();
        let barrier = Arc::clone(&barrier);
        let connecting = Arc::clone(&connecting);
        workers.push(tokio::spawn(async move {
            let mut tally = StreamTally::default();
            let mut rng = XorShift::new(i as u64 + 1);
            let mut conn = {
                let _permit = connecting.acquire().await;
                connect(target.addr).await.ok()
            };
            barrier.wait().await;
            let deadline = Instant::now() + stream_len + steady;
            let mut first = true;
            loop {
                if !first && Instant::now() >= deadline {
                    break;
                }
                if conn.is_none() {
                    conn = connect(target.addr).await.ok();
                }
                let Some(c) = conn.as_mut() else {
                    tally.connect_errors += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    first = false;
                    continue;
                };
                let started = Instant::now();
                match c
                    .send(&target, Method::POST, &target.path, body.clone())
                    .await
                {
                    Ok(response) => {
                        let report = read_stream(response, started, false, None).await;
                        if !report.complete {
                            conn = None;
                        }
                        tally.add(&report, first);
                    }
                    Err(_) => {
                        tally.failed += 1;
                        conn = None;
                    }
                }
                if first {
                    first = false;
                    let jitter = rng.below(stream_len.as_millis() as u64 + 1);
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                }
            }
            tally
        }));
    }

    let sampling = Arc::new(AtomicBool::new(true));
    let peak_rss = Arc::new(AtomicU64::new(0));
    let peak_fds = Arc::new(AtomicU64::new(0));
    if let Some(pid) = pid {
        procs::reset_peak(pid);
        let (sampling, peak_rss, peak_fds) = (
            Arc::clone(&sampling),
            Arc::clone(&peak_rss),
            Arc::clone(&peak_fds),
        );
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(rss) = procs::rss(pid) {
                    peak_rss.fetch_max(rss, Ordering::Relaxed);
                }
                if let Some(fds) = procs::open_fds(pid) {
                    peak_fds.fetch_max(fds as u64, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
    }
    barrier.wait().await;
    let cpu_before = pid.and_then(procs::cpu_time);
    let mut tally = StreamTally::default();
    for worker in workers {
        if let Ok(t) = worker.await {
            tally.burst.extend(t.burst);
            tally.steady.extend(t.steady);
            tally.completed += t.completed;
            tally.failed += t.failed;
            tally.connect_errors += t.connect_errors;
            tally.stalls += t.stalls;
            tally.max_gap = tally.max_gap.max(t.max_gap);
            tally.data_lines += t.data_lines;
        }
    }
    sampling.store(false, Ordering::Relaxed);
    let cpu_after = pid.and_then(procs::cpu_time);
    let hwm = pid.and_then(|p| procs::status_kb(p, "VmHWM"));
    let sampled = peak_rss.load(Ordering::Relaxed);
    let peak = match (hwm, sampled) {
        (Some(h), s) => Some(h.max(s)),
        (None, 0) => None,
        (None, s) => Some(s),
    };
    let steady_streams = tally.steady.len() as u64;
    Streams {
        k,
        completed: tally.completed,
        failed: tally.failed,
        connect_errors: tally.connect_errors,
        ttfb_burst_p50: exact_quantile(&mut tally.burst, 0.50),
        ttfb_burst_p99: exact_quantile(&mut tally.burst, 0.99),
        ttfb_steady_p50: exact_quantile(&mut tally.steady, 0.50),
        ttfb_steady_p99: exact_quantile(&mut tally.steady, 0.99),
        steady_streams,
        stalls: tally.stalls,
        max_gap: tally.max_gap,
        data_lines_per_stream: if tally.completed > 0 {
            tally.data_lines as f64 / tally.completed as f64
        } else {
            0.0
        },
        peak_rss: pid.and(peak),
        cpu_us_per_delta: match (cpu_before, cpu_after) {
            (Some(a), Some(b)) if tally.data_lines > 0 => {
                Some((b - a).as_secs_f64() * 1e6 / tally.data_lines as f64)
            }
            _ => None,
        },
        peak_fds: pid.map(|_| peak_fds.load(Ordering::Relaxed) as usize),
    }
}

/// Open fds within this many of the limit count as at the limit: they are sampled, not traced.
const FD_LIMIT_SLACK: u64 = 16;

/// What one stream count's row says about the machine rather than the gateways: the mock alone
/// stalling (the machine cannot feed `k` streams, so stalls through a gateway are not its own),
/// and a gateway whose open fds reached its limit (the streams that failed there failed for want
/// of descriptors). `row[0]` is the mock directly; `names` and `fd_limits` go with `row`.
pub fn machine_limits(
    k: usize,
    row: &[Option<Streams>],
    names: &[String],
    fd_limits: &[Option<u64>],
) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(Some(direct)) = row.first()
        && direct.stalls > 0
    {
        notes.push(format!(
            "{k} streams: without a gateway, the mock and this harness stalled {} times (longest gap {:.0} ms): this machine cannot feed {k} streams, so stalls through a gateway at this count are not the gateway's",
            direct.stalls,
            direct.max_gap as f64 / 1e6
        ));
    }
    for ((cell, name), limit) in row.iter().zip(names).zip(fd_limits).skip(1) {
        if let (Some(s), Some(limit)) = (cell, limit)
            && let Some(fds) = s.peak_fds
            && fds as u64 + FD_LIMIT_SLACK >= *limit
        {
            notes.push(format!(
                "{k} streams through {name}: open fds reached the process's limit ({limit}; a relayed stream holds two), so its {} failed streams ran out of descriptors; a larger hard limit is needed to measure this count",
                s.failed + s.connect_errors
            ));
        }
    }
    notes
}

/// The chat engine under load: N conversations, each one message whose answer streams from the
/// mock and is persisted by Switchboard.
#[derive(Debug, Clone)]
pub enum Chat {
    Skipped(String),
    Done(ChatRun),
}

#[derive(Debug, Clone, Default)]
pub struct ChatRun {
    pub generations: usize,
    pub completed: usize,
    pub failed: usize,
    /// Words in the stored answers (one delta per word with `mock/echo`).
    pub deltas: u64,
    pub wall: Duration,
    pub deltas_per_sec: f64,
    pub gen_p50: u64,
    pub gen_p99: u64,
    pub cpu_us_per_delta: Option<f64>,
    pub rss_after: Option<u64>,
    pub peak_rss: Option<u64>,
    pub first_failure: Option<String>,
}

fn json_field<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.get(key)
}

async fn new_chat(conn: &mut Conn, base: &Target) -> Result<String, (StatusCode, String)> {
    let (status, body) = conn
        .call(base, Method::POST, "/api/chats", Bytes::from_static(b"{}"))
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, format!("{e:#}")))?;
    if !status.is_success() {
        return Err((status, String::from_utf8_lossy(&body).into_owned()));
    }
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match json_field(&value, "id") {
        Some(Value::String(id)) => Ok(id.clone()),
        Some(Value::Number(id)) => Ok(id.to_string()),
        _ => Err((
            status,
            format!("no id in {}", String::from_utf8_lossy(&body)),
        )),
    }
}

/// One generation, followed the way the web UI follows it: create a chat, subscribe to its event
/// stream, post the message, wait for the reply's `done` event, then read the stored chat once to
/// check the reply was persisted as complete. The time is from the post to `done`.
async fn one_generation(base: &Target, message: &Bytes) -> Result<(Duration, u64), String> {
    let mut conn = connect(base.addr).await.map_err(|e| format!("{e:#}"))?;
    let id = new_chat(&mut conn, base)
        .await
        .map_err(|(s, b)| format!("POST /api/chats: {s} {b}"))?;
    let mut events = connect(base.addr).await.map_err(|e| format!("{e:#}"))?;
    let events_path = format!("/api/chats/{id}/events");
    let subscription = events
        .send(base, Method::GET, &events_path, Bytes::new())
        .await
        .map_err(|e| format!("GET {events_path}: {e:#}"))?;
    let started = Instant::now();
    let path = format!("/api/chats/{id}/messages");
    let (status, body) = conn
        .call(base, Method::POST, &path, message.clone())
        .await
        .map_err(|e| format!("{e:#}"))?;
    if !status.is_success() {
        return Err(format!(
            "POST {path}: {status} {}",
            String::from_utf8_lossy(&body)
        ));
    }
    tokio::time::timeout(
        Duration::from_secs(120),
        wait_for_event(subscription, "done"),
    )
    .await
    .map_err(|_| "no `done` event within 120 s".to_owned())?
    .map_err(|e| format!("GET {events_path}: {e:#}"))?;
    let took = started.elapsed();

    // A new connection: the first sat idle while the reply streamed, and a long reply outlasts the
    // server's keep-alive timeout (a browser reconnects too).
    drop(conn);
    let mut conn = connect(base.addr).await.map_err(|e| format!("{e:#}"))?;
    let chat_path = format!("/api/chats/{id}");
    let (status, body) = conn
        .call(base, Method::GET, &chat_path, Bytes::new())
        .await
        .map_err(|e| format!("{e:#}"))?;
    if !status.is_success() {
        return Err(format!("GET {chat_path}: {status}"));
    }
    let value: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let last = value
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .cloned()
        .unwrap_or(Value::Null);
    let state = last.get("status").and_then(Value::as_str).unwrap_or("");
    if last.get("role").and_then(Value::as_str) != Some("assistant") || state != "complete" {
        return Err(format!(
            "after `done` the reply is stored with status {state:?}"
        ));
    }
    let content = last.get("content").and_then(Value::as_str).unwrap_or("");
    Ok((took, content.split_whitespace().count() as u64))
}

/// Runs `n` generations at once through `/api/chats`, or explains why it cannot.
pub async fn chat(base: &Target, n: usize, message: Bytes, pid: Option<u32>) -> Chat {
    // Probe once, so a missing chat API is a clear skip rather than N failures.
    match connect(base.addr).await {
        Ok(mut conn) => {
            if let Err((status, body)) = new_chat(&mut conn, base).await {
                let what = if status == StatusCode::NOT_FOUND {
                    "the chat API is not there yet".to_owned()
                } else {
                    format!("{} {}", status, body.chars().take(200).collect::<String>())
                };
                return Chat::Skipped(format!("POST /api/chats answered {status}: {what}"));
            }
        }
        Err(e) => return Chat::Skipped(format!("{e:#}")),
    }
    if let Some(pid) = pid {
        procs::reset_peak(pid);
    }
    let cpu_before = pid.and_then(procs::cpu_time);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let base = base.clone();
        let message = message.clone();
        tasks.push(tokio::spawn(async move {
            one_generation(&base, &message).await
        }));
    }
    let mut run = ChatRun {
        generations: n,
        ..ChatRun::default()
    };
    let mut times = Vec::new();
    for task in tasks {
        match task.await {
            Ok(Ok((took, words))) => {
                run.completed += 1;
                run.deltas += words;
                times.push(took.as_nanos() as u64);
            }
            Ok(Err(e)) => {
                run.failed += 1;
                run.first_failure.get_or_insert(e);
            }
            Err(e) => {
                run.failed += 1;
                run.first_failure.get_or_insert(e.to_string());
            }
        }
    }
    run.wall = started.elapsed();
    let cpu_after = pid.and_then(procs::cpu_time);
    run.deltas_per_sec = run.deltas as f64 / run.wall.as_secs_f64();
    run.gen_p50 = exact_quantile(&mut times, 0.5);
    run.gen_p99 = exact_quantile(&mut times, 0.99);
    run.cpu_us_per_delta = match (cpu_before, cpu_after) {
        (Some(a), Some(b)) if run.deltas > 0 => {
            Some((b - a).as_secs_f64() * 1e6 / run.deltas as f64)
        }
        _ => None,
    };
    run.rss_after = pid.and_then(procs::rss);
    run.peak_rss = pid.and_then(|p| procs::status_kb(p, "VmHWM"));
    Chat::Done(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["direct", "proxy", "gateway"].map(String::from).to_vec()
    }

    #[test]
    fn a_row_within_the_machine_says_nothing() {
        let direct = Streams {
            max_gap: 30_000_000,
            ..Streams::default()
        };
        let proxy = Streams {
            peak_fds: Some(1_049),
            ..Streams::default()
        };
        let row = [Some(direct), Some(proxy), None];
        let notes = machine_limits(512, &row, &names(), &[None, Some(20_000), Some(20_000)]);
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn the_mock_stalling_alone_and_the_fd_limit_are_named() {
        let direct = Streams {
            stalls: 15_785,
            max_gap: 474_200_000,
            ..Streams::default()
        };
        let proxy = Streams {
            failed: 2,
            connect_errors: 20,
            peak_fds: Some(19_990),
            ..Streams::default()
        };
        let row = [Some(direct), Some(proxy), None];
        let notes = machine_limits(10_000, &row, &names(), &[None, Some(20_000), Some(20_000)]);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].contains("stalled 15785 times (longest gap 474 ms)"),
            "{}",
            notes[0]
        );
        assert!(
            notes[1].starts_with("10000 streams through proxy"),
            "{}",
            notes[1]
        );
        assert!(notes[1].contains("limit (20000"), "{}", notes[1]);
        assert!(notes[1].contains("its 22 failed streams"), "{}", notes[1]);
    }

    #[test]
    fn a_process_without_a_known_limit_is_not_judged() {
        let proxy = Streams {
            peak_fds: Some(30_000),
            ..Streams::default()
        };
        let row = [None, Some(proxy), None];
        assert!(machine_limits(10_000, &row, &names(), &[None, None, None]).is_empty());
    }
}
