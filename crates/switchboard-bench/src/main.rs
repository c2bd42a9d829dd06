//! `switchboard-bench`: what Switchboard adds on top of its upstream, measured against the mock
//! directly in the same run (and, with `--peer`, against other gateways pointed at the same mock).
//!
//! It starts `mock-openrouter` and `switchboard` as processes, then runs the phases in order:
//! start-up and idle RSS, latency at concurrency 1 (all targets interleaved), throughput at 32 and
//! 128, concurrent streams, and the chat engine. Every "added" figure is a through-the-gateway
//! percentile minus the direct percentile from the same run. See `bench/README.md`.
//!
//! The mock is started with `--delta-ms 20` (streams of 64 deltas 20 ms apart, from `mock/echo`
//! echoing a 64-word prompt) and with a JSON fixture for `bench/fast`, so non-streamed requests
//! are answered at once despite the delta spacing.

mod client;
mod engine_phases;
mod floor;
mod hist;
mod phases;
mod procs;
mod report;
mod soak;
mod tls_front;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use clap::Parser;
use hyper::{Method, StatusCode};
use tokio::process::Command;

use client::{Target, connect, read_stream};
use phases::{Chat, Latency, Load, Streams};
use procs::{FAST_FIXTURE, FAST_MODEL, Server};

/// Measures Switchboard against mock-openrouter directly (and other gateways) in one run.
#[derive(Debug, Parser)]
#[command(name = "switchboard-bench", version)]
struct Args {
    /// A short run (< 60 s): fewer requests, 128 streams only, short phases. A smoke test, not a
    /// measurement.
    #[arg(long)]
    quick: bool,
    /// Print one JSON object with stable keys instead of the table.
    #[arg(long)]
    json: bool,
    /// The switchboard binary (default: next to this one, built if missing).
    #[arg(long, value_name = "PATH")]
    switchboard_bin: Option<PathBuf>,
    /// The mock-openrouter binary (default: next to this one, built if missing).
    #[arg(long, value_name = "PATH")]
    mock_bin: Option<PathBuf>,
    /// Use an already running mock (started with `--delta-ms 20 --fixture
    /// bench/fast=crates/switchboard-bench/fixtures/fast.json`) instead of starting one.
    #[arg(long, value_name = "URL")]
    mock_url: Option<String>,
    /// Milliseconds between streamed deltas for the mock the harness starts.
    #[arg(long, default_value_t = 20)]
    delta_ms: u64,
    /// Another gateway pointed at the same mock, measured on its `/v1/chat/completions`
    /// (repeatable). Without --mock-url the harness prints the mock URL and waits for Enter.
    #[arg(long = "peer", value_name = "NAME=URL", value_parser = parse_peer)]
    peers: Vec<(String, String)>,
    /// Bearer key sent to peers.
    #[arg(long, default_value = "sk-bench")]
    peer_key: String,
    /// A header sent to every peer with each request (repeatable), e.g. Portkey's
    /// `x-portkey-provider:openai`.
    #[arg(long = "peer-header", value_name = "NAME:VALUE", value_parser = parse_header)]
    peer_headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    /// Requests per target for the concurrency-1 latency phase (default 5000, quick 500).
    #[arg(long)]
    requests: Option<usize>,
    /// Seconds per throughput phase (default 5, quick 1).
    #[arg(long)]
    phase_secs: Option<f64>,
    /// Concurrent stream counts, comma-separated (default 512,2000,10000; quick 128).
    #[arg(long, value_delimiter = ',')]
    streams: Option<Vec<usize>>,
    /// Seconds of steady state after the first burst of streams (default 8, quick 2).
    #[arg(long)]
    steady_secs: Option<f64>,
    /// Concurrent generations through the chat engine (default 128, quick 8; 0 skips).
    #[arg(long)]
    chat: Option<usize>,
    /// Words of the long replies whose CPU per delta is compared with short ones (0 skips).
    #[arg(long, default_value_t = 2000)]
    long_words: usize,
    /// Replies generated on one instance and followed on another, both on one PostgreSQL
    /// database (default 64, quick 8; 0 skips).
    #[arg(long)]
    instances: Option<usize>,
    /// The PostgreSQL admin URL for the two-instance phase (a database is made and dropped).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// Chats created and opened once each, then the server's memory (default 10000, quick 1000;
    /// 0 skips).
    #[arg(long)]
    opened_chats: Option<usize>,
    /// Soak mode: steady streams with hang-ups and upstream faults for this many minutes,
    /// sampling RSS and fds every 10 s (no other phase runs).
    #[arg(long, value_name = "MINUTES")]
    soak: Option<f64>,
    /// Concurrent streams in soak mode.
    #[arg(long, default_value_t = 256)]
    soak_streams: usize,
    /// How Switchboard reaches the mock: plain HTTP/1.1, or TLS with a CA made for the run
    /// offering HTTP/1.1 only (h1) or HTTP/2 (h2), as openrouter.ai is reached. The direct
    /// figures stay plain HTTP, so "added" includes the TLS.
    #[arg(long, value_enum, default_value = "http")]
    upstream: tls_front::UpstreamMode,
    /// Also measure two reference relays in front of the mock: a byte relay (column `floor`),
    /// what any relay adds on this machine at the least, and the least relay axum and reqwest
    /// make (column `stack`), each in a process of its own. Latency, throughput and CPU per
    /// request; not streams.
    #[arg(long)]
    floor: bool,
    /// Serve one reference relay and nothing else (how `--floor` starts each in a process of
    /// its own).
    #[arg(long, value_enum, hide = true, requires = "reference_upstream")]
    reference_relay: Option<floor::Reference>,
    /// The mock's address for `--reference-relay`.
    #[arg(long, hide = true)]
    reference_upstream: Option<std::net::SocketAddr>,
}

/// Where Switchboard sends upstream calls, and the CA it must trust there.
struct SbUpstream {
    url: String,
    extra_ca: Option<PathBuf>,
}

fn parse_header(
    value: &str,
) -> Result<(hyper::header::HeaderName, hyper::header::HeaderValue), String> {
    let (name, v) = value
        .split_once(':')
        .ok_or_else(|| format!("expected NAME:VALUE, got {value:?}"))?;
    Ok((
        name.trim()
            .parse()
            .map_err(|_| format!("bad header name {name:?}"))?,
        v.trim()
            .parse()
            .map_err(|_| format!("bad header value {v:?}"))?,
    ))
}

fn parse_peer(value: &str) -> Result<(String, String), String> {
    match value.split_once('=') {
        Some((name, _)) if report::REFERENCES.contains(&name) => Err(format!(
            "the name {name:?} is a reference relay's (--floor); give the peer another"
        )),
        Some((name, url)) if !name.is_empty() && url.starts_with("http://") => {
            Ok((name.to_owned(), url.trim_end_matches('/').to_owned()))
        }
        _ => Err(format!("expected NAME=http://HOST:PORT, got {value:?}")),
    }
}

/// The sizes of one run, from `--quick` and the explicit flags.
struct Plan {
    requests: usize,
    warmup: usize,
    phase: Duration,
    streams: Vec<usize>,
    steady: Duration,
    chat: usize,
    startups: usize,
}

impl Plan {
    fn from(args: &Args) -> Plan {
        let quick = args.quick;
        Plan {
            requests: args.requests.unwrap_or(if quick { 500 } else { 5_000 }),
            warmup: if quick { 50 } else { 500 },
            phase: Duration::from_secs_f64(args.phase_secs.unwrap_or(if quick {
                1.0
            } else {
                5.0
            })),
            streams: args.streams.clone().unwrap_or_else(|| {
                if quick {
                    vec![128]
                } else {
                    vec![512, 2_000, 10_000]
                }
            }),
            steady: Duration::from_secs_f64(args.steady_secs.unwrap_or(if quick {
                2.0
            } else {
                8.0
            })),
            chat: args.chat.unwrap_or(if quick { 8 } else { 128 }),
            startups: if quick { 2 } else { 5 },
        }
    }
}

/// What a start-up of Switchboard took.
#[derive(Debug, Clone, Copy)]
pub struct Startup {
    pub to_listening: Duration,
    pub to_healthy: Duration,
}

/// Everything measured, handed to the report.
pub struct Results {
    pub machine: String,
    pub command: String,
    pub nofile: u64,
    pub mock_url: String,
    pub deltas_per_stream: usize,
    pub stream_len: Duration,
    pub startup: Option<Startup>,
    pub idle_rss: Option<u64>,
    /// The anonymous part of `idle_rss` (heap, stacks, written data): what this process alone
    /// holds. The rest are pages of the binary and libraries, shared with the page cache.
    pub idle_rss_anon: Option<u64>,
    pub final_rss: Option<u64>,
    /// Column names in order: direct, proxy, gateway, then peers.
    pub targets: Vec<String>,
    pub latency: Vec<Latency>,
    /// Per concurrency, one result per target (None where not run).
    pub loads: Vec<(usize, Vec<Option<Load>>)>,
    /// Per K, one result per target (None where not run: the gateway column).
    pub streams: Vec<(usize, Vec<Option<Streams>>)>,
    pub chat: Chat,
    pub notes: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let (Some(reference), Some(upstream)) = (args.reference_relay, args.reference_upstream) {
        return floor::serve(reference, upstream)
            .with_context(|| format!("serving the {} relay", reference.name()));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    runtime.block_on(run(args))
}

fn stream_request(model: &str, words: usize) -> Bytes {
    let content: Vec<String> = (1..=words).map(|i| format!("w{i}")).collect();
    Bytes::from(
        serde_json::json!({
            "model": model,
            "stream": true,
            "messages": [{"role": "user", "content": content.join(" ")}],
        })
        .to_string(),
    )
}

fn fast_request() -> Bytes {
    Bytes::from(
        serde_json::json!({
            "model": FAST_MODEL,
            "messages": [{"role": "user", "content": "Say hello in five words."}],
        })
        .to_string(),
    )
}

/// Deltas the mock streams for `mock/echo`: one per word of the prompt.
const STREAM_WORDS: usize = 64;
/// The key Switchboard and the direct target use with the mock (any `sk-or-` key is accepted).
const MOCK_KEY: &str = "sk-or-bench";

fn switchboard_command(
    bin: &std::path::Path,
    upstream: &SbUpstream,
    dir: &std::path::Path,
    database_url: Option<&str>,
) -> Command {
    let mut command = Command::new(bin);
    command
        .arg("serve")
        // Keep a developer's `.env` out of the measurement.
        .current_dir(dir)
        .env("SWITCHBOARD_ADDR", "127.0.0.1:0")
        .env("OPENROUTER_URL", format!("{}/api", upstream.url))
        .env("OPENROUTER_API_KEY", MOCK_KEY)
        .env(
            "DATABASE_URL",
            database_url.map_or_else(
                || format!("sqlite://{}/bench.db", dir.display()),
                str::to_owned,
            ),
        )
        .env("RUST_LOG", "warn");
    if let Some(ca) = &upstream.extra_ca {
        command.env("SWITCHBOARD_EXTRA_CA", ca);
    }
    command
}

/// Starts Switchboard in a fresh directory and waits until `/healthz` answers 200.
async fn start_switchboard(
    bin: &std::path::Path,
    upstream: &SbUpstream,
    dir: &std::path::Path,
) -> anyhow::Result<(Server, Startup)> {
    start_switchboard_on(bin, upstream, dir, None).await
}

/// [`start_switchboard`] on a given database (`None`: SQLite in `dir`).
async fn start_switchboard_on(
    bin: &std::path::Path,
    upstream: &SbUpstream,
    dir: &std::path::Path,
    database_url: Option<&str>,
) -> anyhow::Result<(Server, Startup)> {
    std::fs::create_dir_all(dir)?;
    let server = procs::start(
        switchboard_command(bin, upstream, dir, database_url),
        &dir.join("switchboard.log"),
    )
    .await
    .context("starting switchboard")?;
    let target = Target::new("switchboard", &server.url, "/healthz", None)?;
    let deadline = server.spawned + Duration::from_secs(30);
    loop {
        if let Ok(mut conn) = connect(target.addr).await
            && let Ok((StatusCode::OK, _)) = conn
                .call(&target, Method::GET, "/healthz", Bytes::new())
                .await
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("/healthz did not answer 200 within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let startup = Startup {
        to_listening: server.to_listening,
        to_healthy: server.spawned.elapsed(),
    };
    Ok((server, startup))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = procs::status_kb_of_meminfo().unwrap_or(0);
    format!(
        "{cpu}, {cores} cores, {:.1} GiB RAM",
        mem as f64 / (1u64 << 30) as f64
    )
}

/// A streamed request read to the end with the body kept, to count content deltas and time one
/// stream.
async fn validate_stream(target: &Target, body: &Bytes) -> anyhow::Result<(usize, Duration)> {
    let mut conn = connect(target.addr).await?;
    let started = Instant::now();
    let response = conn
        .send(target, Method::POST, &target.path, body.clone())
        .await?;
    let status = response.status();
    let report = read_stream(response, started, true, None).await;
    let text = String::from_utf8_lossy(report.body.as_deref().unwrap_or_default()).into_owned();
    if status != StatusCode::OK || !report.complete {
        bail!(
            "{}: streamed request answered {status}: {}",
            target.name,
            text.chars().take(300).collect::<String>()
        );
    }
    let deltas = text
        .lines()
        .filter(|l| {
            l.starts_with("data:")
                && !l.contains("\"content\":\"\"")
                && l.contains("\"content\":\"")
        })
        .count();
    Ok((deltas, started.elapsed()))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let plan = Plan::from(&args);
    let mut notes = Vec::new();
    let max_k = plan
        .streams
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(args.soak_streams);
    // Per stream through Switchboard: client side + upstream side, plus headroom.
    let want = (max_k as u64 * 3 + 1_024).max(4_096);
    let nofile = procs::raise_nofile(want);
    if nofile < want {
        notes.push(format!(
            "RLIMIT_NOFILE could only be raised to {nofile} (wanted {want}); the largest stream phases may run out of file descriptors"
        ));
    }
    let tmp = tempfile::Builder::new()
        .prefix("switchboard-bench-")
        .tempdir()
        .context("creating a temporary directory")?;
    let fixture = tmp.path().join("fast.json");
    std::fs::write(&fixture, FAST_FIXTURE)?;
    let switchboard_bin = procs::locate("switchboard", args.switchboard_bin.as_deref())?;

    // The mock: ours, or one the user started (so peers could be pointed at it first).
    let mut own_mock = None;
    let mock_url = match &args.mock_url {
        Some(url) => url.trim_end_matches('/').to_owned(),
        None => {
            let mock_bin = procs::locate("mock-openrouter", args.mock_bin.as_deref())?;
            let mut command = Command::new(&mock_bin);
            command
                .arg("--port")
                .arg("0")
                .arg("--delta-ms")
                .arg(args.delta_ms.to_string())
                .arg("--fixture")
                .arg(format!("{FAST_MODEL}={}", fixture.display()));
            let mock = procs::start(command, &tmp.path().join("mock.log"))
                .await
                .context("starting mock-openrouter")?;
            let url = mock.url.clone();
            own_mock = Some(mock);
            url
        }
    };
    if !args.peers.is_empty() && args.mock_url.is_none() {
        eprintln!("mock-openrouter is listening on {mock_url}");
        eprintln!(
            "point each peer at {mock_url}/api/v1 (models `{FAST_MODEL}` and `mock/echo`; see bench/README.md), start it, then press Enter"
        );
        let mut line = String::new();
        let _ = std::io::stdin().read_line(&mut line);
    }

    let direct = Target::new(
        "direct",
        &mock_url,
        "/api/v1/chat/completions",
        Some(MOCK_KEY),
    )?;
    let fast = fast_request();
    let stream_body = stream_request("mock/echo", STREAM_WORDS);
    let sb_upstream = match args.upstream {
        tls_front::UpstreamMode::Http => SbUpstream {
            url: mock_url.clone(),
            extra_ca: None,
        },
        mode => {
            let front = tls_front::start(mode, direct.addr, tmp.path())
                .await
                .context("starting the TLS front of the mock")?;
            notes.push(format!(
                "Switchboard reaches the mock over TLS ({}), the direct target over plain HTTP: \"added\" includes the TLS",
                if mode == tls_front::UpstreamMode::H2 { "HTTP/2 by ALPN" } else { "HTTP/1.1" }
            ));
            SbUpstream {
                url: front.url,
                extra_ca: Some(front.ca_file),
            }
        }
    };

    // Is the mock the one we expect? The fixture must answer at once, and streams must be spaced.
    {
        let mut conn = connect(direct.addr).await?;
        let (status, body) = conn
            .call(&direct, Method::POST, &direct.path, fast.clone())
            .await?;
        if status != StatusCode::OK || !String::from_utf8_lossy(&body).contains("gen-bench-fixture")
        {
            bail!(
                "the mock at {mock_url} does not answer `{FAST_MODEL}` from the bench fixture; start it with --fixture {FAST_MODEL}=crates/switchboard-bench/fixtures/fast.json"
            );
        }
    }
    let (deltas_per_stream, stream_len) = validate_stream(&direct, &stream_body).await?;
    if stream_len < Duration::from_millis(200) {
        notes.push(format!(
            "the mock streams without spacing (one stream took {} ms); start it with --delta-ms 20",
            stream_len.as_millis()
        ));
    }

    // Start-up: a few throwaway starts, then the one that is measured on.
    let mut startups = Vec::new();
    for i in 1..plan.startups {
        let (server, startup) = start_switchboard(
            &switchboard_bin,
            &sb_upstream,
            &tmp.path().join(format!("start{i}")),
        )
        .await?;
        startups.push(startup);
        server.stop().await;
    }
    let (switchboard, startup) =
        start_switchboard(&switchboard_bin, &sb_upstream, &tmp.path().join("main")).await?;
    startups.push(startup);
    startups.sort_by_key(|s| s.to_healthy);
    let median = startups[startups.len() / 2];
    let sb_pid = switchboard.pid;
    // Idle: after the background catalog fetch has settled, before any load.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = procs::rss(sb_pid);
    let idle_rss_anon = procs::status_kb(sb_pid, "RssAnon");

    if let Some(soak_minutes) = args.soak {
        let proxy = Target::new(
            "switchboard proxy",
            &switchboard.url,
            "/api/openrouter/v1/chat/completions",
            None,
        )?;
        soak::soak(&proxy, stream_body, args.soak_streams, soak_minutes, sb_pid).await;
        switchboard.stop().await;
        if let Some(mock) = own_mock {
            mock.stop().await;
        }
        return Ok(());
    }

    let mut targets = vec![
        direct.clone(),
        Target::new(
            "proxy",
            &switchboard.url,
            "/api/openrouter/v1/chat/completions",
            None,
        )?,
        Target::new("gateway", &switchboard.url, "/v1/chat/completions", None)?,
    ];
    let mut pids: Vec<Option<u32>> =
        vec![own_mock.as_ref().map(|m| m.pid), Some(sb_pid), Some(sb_pid)];
    for (name, url) in &args.peers {
        let mut target = Target::new(name, url, "/v1/chat/completions", Some(&args.peer_key))?;
        target.extra = args.peer_headers.clone();
        let pid = procs::pid_listening_on(target.addr.port());
        if pid.is_none() {
            notes.push(format!(
                "{name}: no local process found listening on {}; its CPU and RSS are not measured",
                target.addr
            ));
        }
        targets.push(target);
        pids.push(pid);
    }
    let mut references = Vec::new();
    if args.floor {
        let harness = std::env::current_exe().context("locating this binary")?;
        for &reference in <floor::Reference as clap::ValueEnum>::value_variants() {
            let name = reference.name();
            let mut command = Command::new(&harness);
            command
                .arg("--reference-relay")
                .arg(name)
                .arg("--reference-upstream")
                .arg(direct.addr.to_string());
            let relay = procs::start(command, &tmp.path().join(format!("{name}.log")))
                .await
                .with_context(|| format!("starting the {name} relay (--floor)"))?;
            targets.push(Target::new(
                name,
                &relay.url,
                floor::MOCK_CHAT_PATH,
                Some(MOCK_KEY),
            )?);
            pids.push(Some(relay.pid));
            references.push(relay);
        }
    }
    // Every target must answer the fast request before anything is timed.
    for target in &targets {
        let mut conn = connect(target.addr).await?;
        conn.completion(target, &fast)
            .await
            .with_context(|| format!("checking {} ({})", target.name, target.path))?;
    }
    for target in targets.iter().skip(3) {
        match validate_stream(target, &stream_body).await {
            Ok((d, _)) if d != deltas_per_stream => notes.push(format!(
                "{}: streams {d} content deltas per answer, the mock directly {deltas_per_stream}",
                target.name
            )),
            Ok(_) => {}
            Err(e) => notes.push(format!("{}: stream check failed: {e:#}", target.name)),
        }
    }

    eprintln!(
        "latency: {} requests per target at concurrency 1, interleaved",
        plan.requests
    );
    let latency = phases::latency(&targets, &fast, plan.requests, plan.warmup).await;

    let mut loads = Vec::new();
    for concurrency in [32, 128] {
        eprintln!(
            "throughput: concurrency {concurrency}, {:.0} s per target",
            plan.phase.as_secs_f64()
        );
        let mut row = Vec::new();
        for (target, pid) in targets.iter().zip(&pids) {
            let load = phases::throughput(target, &fast, concurrency, plan.phase, *pid).await;
            row.push(Some(load));
        }
        loads.push((concurrency, row));
    }

    let mut streams = Vec::new();
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    let fd_limits: Vec<Option<u64>> = pids
        .iter()
        .map(|pid| pid.and_then(procs::nofile_limit))
        .collect();
    for &k in &plan.streams {
        let mut row = Vec::new();
        for (i, (target, pid)) in targets.iter().zip(&pids).enumerate() {
            // Streams go through the proxy route (the NextChat path); the gateway relays the same way.
            // The reference relays measure the hops of a relay, not how it holds many streams.
            if i == 2 || report::REFERENCES.contains(&target.name.as_str()) {
                row.push(None);
                continue;
            }
            eprintln!("streams: {k} concurrent against {}", target.name);
            let result =
                phases::streams(target, &stream_body, k, plan.steady, stream_len, *pid).await;
            row.push(Some(result));
            // Let sockets from the last phase close before the next.
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        notes.extend(phases::machine_limits(k, &row, &names, &fd_limits));
        streams.push((k, row));
    }

    let chat = if plan.chat == 0 {
        Chat::Skipped("--chat 0".into())
    } else {
        eprintln!("chat engine: {} concurrent generations", plan.chat);
        let base = Target::new("chat", &switchboard.url, "", None)?;
        let message = Bytes::from(
            serde_json::json!({
                "content": (1..=STREAM_WORDS).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" "),
                "model": "mock/echo",
            })
            .to_string(),
        );
        phases::chat(&base, plan.chat, message, Some(sb_pid)).await
    };
    let mut engine_lines = Vec::new();
    if plan.chat > 0 && args.long_words > 0 {
        let n = (plan.chat / 4).max(2);
        eprintln!(
            "chat engine: {n} concurrent long replies ({} words)",
            args.long_words
        );
        let base = Target::new("chat", &switchboard.url, "", None)?;
        let message = Bytes::from(
            serde_json::json!({
                "content": (1..=args.long_words).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" "),
                "model": "mock/echo",
            })
            .to_string(),
        );
        let long = phases::chat(&base, n, message, Some(sb_pid)).await;
        if let (Chat::Done(short), Chat::Done(long)) = (&chat, &long) {
            engine_lines.push(format!(
                "chat CPU per delta: {} µs for {STREAM_WORDS}-word replies, {} µs for {}-word replies ({} of {} long replies completed)",
                short.cpu_us_per_delta.map_or("?".into(), |c| format!("{c:.1}")),
                long.cpu_us_per_delta.map_or("?".into(), |c| format!("{c:.1}")),
                args.long_words,
                long.completed,
                long.generations,
            ));
            if let Some(failure) = &long.first_failure {
                engine_lines.push(format!("first failure of a long reply: {failure}"));
            }
        }
    }
    let opened = args
        .opened_chats
        .unwrap_or(if args.quick { 1_000 } else { 10_000 });
    if opened > 0 {
        eprintln!("chat engine: {opened} chats opened once each");
        let base = Target::new("chat", &switchboard.url, "", None)?;
        let o = engine_phases::open_chats(&base, opened, 32, sb_pid).await;
        let mb = |bytes: Option<u64>| {
            bytes.map_or("?".into(), |b| format!("{:.1} MB", b as f64 / 1_048_576.0))
        };
        let grew = match (o.rss_before, o.rss_after) {
            (Some(b), Some(a)) => format!("{:+.1} MB", (a as f64 - b as f64) / 1_048_576.0),
            _ => "?".into(),
        };
        engine_lines.push(format!(
            "{} chats opened once each ({} failed): RSS {} before, {} after ({grew})",
            o.chats,
            o.failed,
            mb(o.rss_before),
            mb(o.rss_after)
        ));
    }
    let final_rss = procs::rss(sb_pid);

    switchboard.stop().await;

    let fan_out_n = args.instances.unwrap_or(if args.quick { 8 } else { 64 });
    if fan_out_n > 0 {
        match engine_phases::Database::create(&args.postgres_url) {
            Err(e) => engine_lines.push(format!("two instances on PostgreSQL: skipped ({e:#})")),
            Ok(db) => {
                eprintln!(
                    "two instances on PostgreSQL: {fan_out_n} replies generated on A, followed on B"
                );
                let dir_a = tmp.path().join("instance-a");
                let dir_b = tmp.path().join("instance-b");
                let (a, _) =
                    start_switchboard_on(&switchboard_bin, &sb_upstream, &dir_a, Some(&db.url))
                        .await?;
                let (b, _) =
                    start_switchboard_on(&switchboard_bin, &sb_upstream, &dir_b, Some(&db.url))
                        .await?;
                let ta = Target::new("a", &a.url, "", None)?;
                let tb = Target::new("b", &b.url, "", None)?;
                let message = Bytes::from(
                    serde_json::json!({
                        "content": (1..=STREAM_WORDS).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" "),
                        "model": "mock/echo",
                    })
                    .to_string(),
                );
                let f = engine_phases::fan_out(&ta, &tb, fan_out_n, message).await;
                engine_lines.push(format!(
                    "two instances on PostgreSQL: {} replies generated on A, {} seen to the end on B, {} lost; fan-out lag over {} events p50 {:.2} ms, p99 {:.2} ms{}",
                    f.replies,
                    f.completed_on_b,
                    f.lost,
                    f.events,
                    f.lag_p50_us as f64 / 1000.0,
                    f.lag_p99_us as f64 / 1000.0,
                    f.first_failure.map(|e| format!(" (first failure: {e})")).unwrap_or_default(),
                ));
                a.stop().await;
                b.stop().await;
            }
        }
    }
    if let Some(mock) = own_mock {
        mock.stop().await;
    }

    let results = Results {
        machine: machine(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        nofile,
        mock_url,
        deltas_per_stream,
        stream_len,
        startup: Some(median),
        idle_rss,
        idle_rss_anon,
        final_rss,
        targets: targets.iter().map(|t| t.name.clone()).collect(),
        latency,
        loads,
        streams,
        chat,
        notes,
    };
    if args.json {
        let mut json = report::json(&results);
        json["engine"] = serde_json::json!(engine_lines);
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        print!("{}", report::table(&results));
        for line in &engine_lines {
            println!("{line}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_peer;

    #[test]
    fn a_peer_cannot_take_a_reference_relays_name() {
        assert_eq!(
            parse_peer("crabllm=http://127.0.0.1:5632/"),
            Ok(("crabllm".into(), "http://127.0.0.1:5632".into()))
        );
        for name in ["floor", "stack"] {
            let refused = parse_peer(&format!("{name}=http://127.0.0.1:5632")).unwrap_err();
            assert!(refused.contains("--floor"), "{refused}");
        }
    }

    #[test]
    fn each_reference_relay_is_started_under_its_column_name() {
        use super::{floor::Reference, report::REFERENCES};
        use clap::ValueEnum;
        let names: Vec<&str> = Reference::value_variants()
            .iter()
            .map(|r| r.name())
            .collect();
        assert_eq!(names, REFERENCES);
        // `--floor` passes the column's name to `--reference-relay`.
        for reference in Reference::value_variants() {
            assert_eq!(Reference::from_str(reference.name(), false), Ok(*reference));
        }
    }
}
