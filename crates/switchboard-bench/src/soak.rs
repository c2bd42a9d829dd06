//! `--soak <minutes>`: steady streams through Switchboard for a long time, with clients hanging up
//! mid-stream and upstream faults mixed in, sampling RSS and open fds every 10 s. Not a pass/fail
//! test: it prints first vs last so a person can judge whether memory and fds stay flat.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::Method;

use crate::client::{Target, connect, read_stream};
use crate::phases::{STALL, XorShift};
use crate::procs;

/// What one soak worker asks for.
enum Kind {
    /// A normal 64-delta stream, read to the end.
    Full,
    /// The same, but the client hangs up after some deltas.
    HangUp(u64),
    /// An upstream that fails mid-stream (`mock/error-midstream`).
    MidstreamError,
    /// An upstream that answers 502 before streaming (`mock/status-502`).
    UpstreamStatus,
}

#[derive(Default)]
struct Counters {
    full: AtomicU64,
    hung_up: AtomicU64,
    faults: AtomicU64,
    errors: AtomicU64,
    stalls: AtomicU64,
}

/// One RSS / fd sample.
pub struct Sample {
    pub at: Duration,
    pub rss: u64,
    pub fds: usize,
    pub streams_done: u64,
}

/// Runs the soak against `target` (Switchboard's proxy route) with `k` workers for `minutes`.
pub async fn soak(target: &Target, stream_body: Bytes, k: usize, minutes: f64, pid: u32) {
    let stop = Arc::new(AtomicBool::new(false));
    let counters = Arc::new(Counters::default());
    let fault_body = |model: &str| {
        Bytes::from(
            serde_json::json!({
                "model": model,
                "stream": true,
                "messages": [{"role": "user", "content": "soak"}],
            })
            .to_string(),
        )
    };
    let midstream = fault_body("mock/error-midstream");
    let status = fault_body("mock/status-502");
    let mut workers = Vec::new();
    for i in 0..k {
        let (target, stop, counters) = (target.clone(), Arc::clone(&stop), Arc::clone(&counters));
        let (full_body, midstream, status) =
            (stream_body.clone(), midstream.clone(), status.clone());
        workers.push(tokio::spawn(async move {
            let mut rng = XorShift::new(i as u64 + 17);
            let mut conn = None;
            // Spread the starts over two seconds.
            tokio::time::sleep(Duration::from_millis(rng.below(2_000))).await;
            while !stop.load(Ordering::Relaxed) {
                let kind = match rng.below(100) {
                    0..=69 => Kind::Full,
                    70..=89 => Kind::HangUp(1 + rng.below(60)),
                    90..=94 => Kind::MidstreamError,
                    _ => Kind::UpstreamStatus,
                };
                if conn.is_none() {
                    conn = connect(target.addr).await.ok();
                }
                let Some(c) = conn.as_mut() else {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let body = match kind {
                    Kind::Full | Kind::HangUp(_) => full_body.clone(),
                    Kind::MidstreamError => midstream.clone(),
                    Kind::UpstreamStatus => status.clone(),
                };
                let stop_after = match kind {
                    Kind::HangUp(n) => Some(n),
                    _ => None,
                };
                let started = Instant::now();
                let Ok(response) = c.send(&target, Method::POST, &target.path, body).await else {
                    counters.errors.fetch_add(1, Ordering::Relaxed);
                    conn = None;
                    continue;
                };
                let report = read_stream(response, started, false, stop_after).await;
                let stalls = report
                    .gaps
                    .iter()
                    .filter(|&&g| g > STALL.as_nanos() as u64)
                    .count() as u64;
                counters.stalls.fetch_add(stalls, Ordering::Relaxed);
                match kind {
                    Kind::Full if report.complete => {
                        counters.full.fetch_add(1, Ordering::Relaxed);
                    }
                    Kind::Full => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                    Kind::HangUp(_) => {
                        // Dropping the connection mid-body is the hang-up.
                        counters.hung_up.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                    Kind::MidstreamError | Kind::UpstreamStatus => {
                        counters.faults.fetch_add(1, Ordering::Relaxed);
                        if !report.complete {
                            conn = None;
                        }
                    }
                }
            }
        }));
    }

    let started = Instant::now();
    let end = started + Duration::from_secs_f64(minutes * 60.0);
    let mut samples: Vec<Sample> = Vec::new();
    println!(
        "soak: {k} streams through {} for {minutes} min",
        target.name
    );
    println!(
        "{:>8} {:>10} {:>8} {:>10} {:>9} {:>8} {:>8} {:>7}",
        "t", "rss_mb", "fds", "full", "hung_up", "faults", "errors", "stalls"
    );
    loop {
        let now = Instant::now();
        let done = counters.full.load(Ordering::Relaxed)
            + counters.hung_up.load(Ordering::Relaxed)
            + counters.faults.load(Ordering::Relaxed);
        let sample = Sample {
            at: now - started,
            rss: procs::rss(pid).unwrap_or(0),
            fds: procs::open_fds(pid).unwrap_or(0),
            streams_done: done,
        };
        println!(
            "{:>7.0}s {:>10.1} {:>8} {:>10} {:>9} {:>8} {:>8} {:>7}",
            sample.at.as_secs_f64(),
            sample.rss as f64 / 1048576.0,
            sample.fds,
            counters.full.load(Ordering::Relaxed),
            counters.hung_up.load(Ordering::Relaxed),
            counters.faults.load(Ordering::Relaxed),
            counters.errors.load(Ordering::Relaxed),
            counters.stalls.load(Ordering::Relaxed),
        );
        samples.push(sample);
        if now >= end {
            break;
        }
        tokio::time::sleep(Duration::from_secs(10).min(end - now)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = tokio::time::timeout(Duration::from_secs(5), w).await;
    }
    // After every client is gone, the process should drop back near its early footprint.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled_rss = procs::rss(pid).unwrap_or(0);
    let settled_fds = procs::open_fds(pid).unwrap_or(0);
    // The first sample is taken before any stream has started; the second is the first under load.
    if let (Some(first), Some(last)) = (samples.get(1).or(samples.first()), samples.last()) {
        println!();
        println!(
            "first under load: rss {:.1} MB, fds {}   last: rss {:.1} MB, fds {}   (Δ rss {:+.1} MB, Δ fds {:+})",
            first.rss as f64 / 1048576.0,
            first.fds,
            last.rss as f64 / 1048576.0,
            last.fds,
            (last.rss as f64 - first.rss as f64) / 1048576.0,
            last.fds as i64 - first.fds as i64,
        );
        println!(
            "after all clients left: rss {:.1} MB, fds {}; {} streams in total, {} stalls (> {} ms)",
            settled_rss as f64 / 1048576.0,
            settled_fds,
            last.streams_done,
            counters.stalls.load(Ordering::Relaxed),
            STALL.as_millis()
        );
    }
}
