//! Turning [`Results`] into the human table and the `--json` object. The JSON keys are a stable
//! interface (CI and scripts read them); add keys freely, never rename.

use std::fmt::Write as _;

use serde_json::{Map, Value, json};

use crate::Results;
use crate::phases::{Chat, Streams};

/// Column of the direct-to-mock figures.
const DIRECT: usize = 0;
/// Column of Switchboard's NextChat proxy route; its figures are the headline ones.
const PROXY: usize = 1;
/// Column of Switchboard's OpenAI-compatible gateway route.
const GATEWAY: usize = 2;
/// Peers start at this column.
const FIRST_PEER: usize = 3;
/// The names of the reference relays' columns (`--floor`), after the peers; not peers. `floor`
/// is the byte relay, `stack` the least relay axum and reqwest make.
pub const FLOOR: &str = "floor";
pub const STACK: &str = "stack";
pub const REFERENCES: [&str; 2] = [FLOOR, STACK];

fn us(nanos: u64) -> f64 {
    round1(nanos as f64 / 1_000.0)
}

fn added_us(through: u64, direct: u64) -> f64 {
    round1((through as f64 - direct as f64) / 1_000.0)
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn mb(bytes: Option<u64>) -> Option<f64> {
    bytes.map(|b| round1(b as f64 / 1_048_576.0))
}

fn load_of(r: &Results, concurrency: usize, column: usize) -> Option<&crate::phases::Load> {
    r.loads
        .iter()
        .find(|(c, _)| *c == concurrency)
        .and_then(|(_, row)| row.get(column))
        .and_then(Option::as_ref)
}

fn streams_of(r: &Results, k: usize, column: usize) -> Option<&Streams> {
    r.streams
        .iter()
        .find(|(kk, _)| *kk == k)
        .and_then(|(_, row)| row.get(column))
        .and_then(Option::as_ref)
}

/// Added steady-state TTFB p99 of `column` at `k`, in µs.
fn ttfb_added_p99(r: &Results, k: usize, column: usize) -> Option<f64> {
    let direct = streams_of(r, k, DIRECT)?;
    let through = streams_of(r, k, column)?;
    Some(added_us(through.ttfb_steady_p99, direct.ttfb_steady_p99))
}

fn total_stalls(r: &Results, column: usize) -> u64 {
    r.streams
        .iter()
        .filter_map(|(_, row)| row.get(column).and_then(Option::as_ref))
        .map(|s| s.stalls)
        .sum()
}

fn stream_json(s: &Streams, direct: Option<&Streams>) -> Value {
    json!({
        "completed": s.completed,
        "failed": s.failed,
        "connect_errors": s.connect_errors,
        "ttfb_burst_p50_us": us(s.ttfb_burst_p50),
        "ttfb_burst_p99_us": us(s.ttfb_burst_p99),
        "ttfb_steady_p50_us": us(s.ttfb_steady_p50),
        "ttfb_steady_p99_us": us(s.ttfb_steady_p99),
        "ttfb_burst_overhead_p99_us": direct.map(|d| added_us(s.ttfb_burst_p99, d.ttfb_burst_p99)),
        "ttfb_steady_overhead_p50_us": direct.map(|d| added_us(s.ttfb_steady_p50, d.ttfb_steady_p50)),
        "ttfb_steady_overhead_p99_us": direct.map(|d| added_us(s.ttfb_steady_p99, d.ttfb_steady_p99)),
        "steady_streams": s.steady_streams,
        "stalls": s.stalls,
        "max_gap_ms": round1(s.max_gap as f64 / 1e6),
        "data_lines_per_stream": round1(s.data_lines_per_stream),
        "peak_rss_mb": mb(s.peak_rss),
        "peak_fds": s.peak_fds,
        "cpu_us_per_delta": s.cpu_us_per_delta.map(round1),
    })
}

/// The `--json` object.
pub fn json(r: &Results) -> Value {
    let lat = |i: usize| r.latency.get(i);
    let over = |i: usize, f: fn(&crate::phases::Latency) -> u64| {
        Some(added_us(f(lat(i)?), f(lat(DIRECT)?)))
    };
    let smallest_k = r.streams.first().map(|(k, _)| *k);
    let largest_k = r.streams.last().map(|(k, _)| *k);

    let mut peers = Map::new();
    let mut references = Map::new();
    for (i, name) in r.targets.iter().enumerate().skip(FIRST_PEER) {
        if REFERENCES.contains(&name.as_str()) {
            references.insert(
                name.clone(),
                json!({
                    "overhead_p50_us": over(i, |l| l.p50),
                    "overhead_p99_us": over(i, |l| l.p99),
                    "rps_c32": load_of(r, 32, i).map(|l| round1(l.rps)),
                    "cpu_us_per_req": load_of(r, 32, i).and_then(|l| l.cpu_us_per_req).map(round1),
                }),
            );
            continue;
        }
        peers.insert(
            name.clone(),
            json!({
                "overhead_p50_us": over(i, |l| l.p50),
                "overhead_p99_us": over(i, |l| l.p99),
                "overhead_p999_us": over(i, |l| l.p999),
                "rps_c32": load_of(r, 32, i).map(|l| round1(l.rps)),
                "rps_c128": load_of(r, 128, i).map(|l| round1(l.rps)),
                "cpu_us_per_req": load_of(r, 32, i).and_then(|l| l.cpu_us_per_req).map(round1),
                "stalls": total_stalls(r, i),
                "ttfb_overhead_p99_us": smallest_k.and_then(|k| ttfb_added_p99(r, k, i)),
                "peak_rss_mb": largest_k.and_then(|k| streams_of(r, k, i)).and_then(|s| mb(s.peak_rss)),
            }),
        );
    }

    let stream_phases: Vec<Value> = r
        .streams
        .iter()
        .map(|(k, row)| {
            let direct = row.get(DIRECT).and_then(Option::as_ref);
            let mut by_target = Map::new();
            by_target.insert("k".into(), json!(k));
            for (i, s) in row.iter().enumerate() {
                if let Some(s) = s {
                    let name = if i == PROXY {
                        "switchboard"
                    } else {
                        &r.targets[i]
                    };
                    let d = (i != DIRECT).then_some(direct).flatten();
                    by_target.insert(name.to_owned(), stream_json(s, d));
                }
            }
            Value::Object(by_target)
        })
        .collect();

    let chat = match &r.chat {
        Chat::Skipped(why) => json!({"skipped": why}),
        Chat::Done(c) => json!({
            "generations": c.generations,
            "completed": c.completed,
            "failed": c.failed,
            "first_failure": c.first_failure,
            "deltas": c.deltas,
            "deltas_per_sec": round1(c.deltas_per_sec),
            "wall_ms": c.wall.as_millis() as u64,
            "generation_p50_ms": round1(c.gen_p50 as f64 / 1e6),
            "generation_p99_ms": round1(c.gen_p99 as f64 / 1e6),
            "cpu_us_per_delta": c.cpu_us_per_delta.map(round1),
            "rss_after_mb": mb(c.rss_after),
            "peak_rss_mb": mb(c.peak_rss),
        }),
    };

    json!({
        "overhead_p50_us": over(PROXY, |l| l.p50),
        "overhead_p99_us": over(PROXY, |l| l.p99),
        "overhead_p999_us": over(PROXY, |l| l.p999),
        "gateway_overhead_p50_us": over(GATEWAY, |l| l.p50),
        "gateway_overhead_p99_us": over(GATEWAY, |l| l.p99),
        "gateway_overhead_p999_us": over(GATEWAY, |l| l.p999),
        "direct_p50_us": lat(DIRECT).map(|l| us(l.p50)),
        "direct_p99_us": lat(DIRECT).map(|l| us(l.p99)),
        "latency_requests": lat(PROXY).map(|l| l.samples),
        "rps_c32": load_of(r, 32, PROXY).map(|l| round1(l.rps)),
        "direct_rps_c32": load_of(r, 32, DIRECT).map(|l| round1(l.rps)),
        "gateway_rps_c32": load_of(r, 32, GATEWAY).map(|l| round1(l.rps)),
        "rps_c128": load_of(r, 128, PROXY).map(|l| round1(l.rps)),
        "direct_rps_c128": load_of(r, 128, DIRECT).map(|l| round1(l.rps)),
        "errors_c32": load_of(r, 32, PROXY).map(|l| l.errors),
        "errors_c128": load_of(r, 128, PROXY).map(|l| l.errors),
        "p99_c32_us": load_of(r, 32, PROXY).map(|l| us(l.p99)),
        "p99_c128_us": load_of(r, 128, PROXY).map(|l| us(l.p99)),
        "cpu_us_per_req": load_of(r, 32, PROXY).and_then(|l| l.cpu_us_per_req).map(round1),
        "cpu_us_per_req_c128": load_of(r, 128, PROXY).and_then(|l| l.cpu_us_per_req).map(round1),
        "gateway_cpu_us_per_req": load_of(r, 32, GATEWAY).and_then(|l| l.cpu_us_per_req).map(round1),
        "streams": largest_k,
        "stalls": total_stalls(r, PROXY),
        "deltas_per_stream": r.deltas_per_stream,
        "ttfb_overhead_p99_us": smallest_k.and_then(|k| ttfb_added_p99(r, k, PROXY)),
        "peak_rss_mb": largest_k.and_then(|k| streams_of(r, k, PROXY)).and_then(|s| mb(s.peak_rss)),
        "idle_rss_mb": mb(r.idle_rss),
        "idle_rss_anon_mb": mb(r.idle_rss_anon),
        "final_rss_mb": mb(r.final_rss),
        "startup_ms": r.startup.map(|s| round1(s.to_healthy.as_secs_f64() * 1e3)),
        "startup_listening_ms": r.startup.map(|s| round1(s.to_listening.as_secs_f64() * 1e3)),
        "stream_phases": stream_phases,
        "chat": chat,
        "peers": peers,
        "floor": references.get(FLOOR).cloned().unwrap_or(Value::Null),
        "stack": references.get(STACK).cloned().unwrap_or(Value::Null),
        "nofile_limit": r.nofile,
        "machine": r.machine,
        "command": r.command,
        "notes": r.notes,
    })
}

/// Picks one percentile out of a latency result.
type Percentile = fn(&crate::phases::Latency) -> u64;

/// Left-aligned label column, right-aligned value columns.
struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(first: &str, columns: &[String]) -> Table {
        let mut header = vec![first.to_owned()];
        header.extend(columns.iter().cloned());
        Table {
            header,
            rows: Vec::new(),
        }
    }

    fn row(&mut self, label: &str, cells: Vec<String>) {
        let mut row = vec![label.to_owned()];
        row.extend(cells);
        self.rows.push(row);
    }

    fn render(&self, out: &mut String) {
        let n = self.header.len();
        let mut widths = vec![0; n];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate().take(n) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (i, cell) in row.iter().enumerate().take(n) {
                if i == 0 {
                    let _ = write!(out, "{cell:<w$}", w = widths[0]);
                } else {
                    let _ = write!(out, "  {cell:>w$}", w = widths[i]);
                }
            }
            out.push('\n');
        }
        out.push('\n');
    }
}

fn opt<T>(value: Option<T>, f: impl Fn(T) -> String) -> String {
    value.map_or_else(|| "-".to_owned(), f)
}

/// The human-readable report.
pub fn table(r: &Results) -> String {
    let mut out = String::new();
    let columns: Vec<String> = r
        .targets
        .iter()
        .enumerate()
        .map(|(i, n)| match i {
            DIRECT => "mock direct".to_owned(),
            PROXY => "sb proxy".to_owned(),
            GATEWAY => "sb gateway".to_owned(),
            _ => n.clone(),
        })
        .collect();
    let _ = writeln!(out, "machine: {}", r.machine);
    let _ = writeln!(out, "command: {}", r.command);
    let _ = writeln!(
        out,
        "mock: {} ({} content deltas per stream, one stream {} ms); RLIMIT_NOFILE {}",
        r.mock_url,
        r.deltas_per_stream,
        r.stream_len.as_millis(),
        r.nofile
    );
    if let Some(s) = r.startup {
        let _ = writeln!(
            out,
            "switchboard start-up: {:.1} ms to `listening on`, {:.1} ms to first /healthz 200 (median); idle RSS {} MB ({} MB anonymous, the rest mapped files)",
            s.to_listening.as_secs_f64() * 1e3,
            s.to_healthy.as_secs_f64() * 1e3,
            opt(mb(r.idle_rss), |m| format!("{m:.1}")),
            opt(mb(r.idle_rss_anon), |m| format!("{m:.1}")),
        );
    }
    out.push('\n');

    let direct = r.latency.first();
    let mut t = Table::new(
        &format!(
            "latency, concurrency 1, {} req (µs)",
            direct.map_or(0, |l| l.samples)
        ),
        &columns,
    );
    let pick: [(&str, Percentile); 3] = [
        ("p50", |l| l.p50),
        ("p99", |l| l.p99),
        ("p99.9", |l| l.p999),
    ];
    for (label, f) in pick {
        t.row(
            label,
            r.latency
                .iter()
                .map(|l| format!("{:.1}", us(f(l))))
                .collect(),
        );
    }
    for (label, f) in pick {
        t.row(
            &format!("added {label}"),
            r.latency
                .iter()
                .enumerate()
                .map(|(i, l)| match (i, direct) {
                    (DIRECT, _) | (_, None) => "-".to_owned(),
                    (_, Some(d)) => format!("{:+.1}", added_us(f(l), f(d))),
                })
                .collect(),
        );
    }
    t.row(
        "errors",
        r.latency.iter().map(|l| l.errors.to_string()).collect(),
    );
    t.render(&mut out);

    let mut t = Table::new("throughput (fixed time)", &columns);
    for (concurrency, row) in &r.loads {
        let cell = |f: &dyn Fn(&crate::phases::Load) -> String| -> Vec<String> {
            row.iter().map(|l| opt(l.as_ref(), f)).collect()
        };
        t.row(
            &format!("c={concurrency} req/s"),
            cell(&|l| format!("{:.0}", l.rps)),
        );
        t.row(
            &format!("c={concurrency} p99 µs"),
            cell(&|l| format!("{:.0}", us(l.p99))),
        );
        t.row(
            &format!("c={concurrency} errors"),
            cell(&|l| l.errors.to_string()),
        );
        t.row(
            &format!("c={concurrency} CPU µs/req"),
            cell(&|l| opt(l.cpu_us_per_req, |c| format!("{c:.1}"))),
        );
    }
    t.render(&mut out);

    for (k, row) in &r.streams {
        let d = row.get(DIRECT).and_then(Option::as_ref);
        let mut t = Table::new(&format!("{k} concurrent streams"), &columns);
        let cell = |f: &dyn Fn(&Streams) -> String| -> Vec<String> {
            row.iter().map(|s| opt(s.as_ref(), f)).collect()
        };
        t.row(
            "completed / failed",
            cell(&|s| format!("{} / {}", s.completed, s.failed + s.connect_errors)),
        );
        t.row(
            "data lines / stream",
            cell(&|s| format!("{:.1}", s.data_lines_per_stream)),
        );
        t.row(
            "TTFB burst p50/p99 ms",
            cell(&|s| {
                format!(
                    "{:.1} / {:.1}",
                    s.ttfb_burst_p50 as f64 / 1e6,
                    s.ttfb_burst_p99 as f64 / 1e6
                )
            }),
        );
        t.row(
            "TTFB steady p50/p99 ms",
            cell(&|s| {
                format!(
                    "{:.1} / {:.1}",
                    s.ttfb_steady_p50 as f64 / 1e6,
                    s.ttfb_steady_p99 as f64 / 1e6
                )
            }),
        );
        t.row(
            "added TTFB burst p99 ms",
            cell(&|s| {
                opt(d, |d| {
                    format!(
                        "{:+.2}",
                        (s.ttfb_burst_p99 as f64 - d.ttfb_burst_p99 as f64) / 1e6
                    )
                })
            }),
        );
        t.row(
            "added TTFB steady p99 ms",
            cell(&|s| {
                opt(d, |d| {
                    format!(
                        "{:+.2}",
                        (s.ttfb_steady_p99 as f64 - d.ttfb_steady_p99 as f64) / 1e6
                    )
                })
            }),
        );
        t.row(
            "stalls (>250 ms) / max gap ms",
            cell(&|s| format!("{} / {:.0}", s.stalls, s.max_gap as f64 / 1e6)),
        );
        t.row(
            "peak RSS MB",
            cell(&|s| opt(mb(s.peak_rss), |m| format!("{m:.1}"))),
        );
        t.row(
            "peak open fds",
            cell(&|s| opt(s.peak_fds, |f| f.to_string())),
        );
        t.row(
            "CPU µs/delta",
            cell(&|s| opt(s.cpu_us_per_delta, |c| format!("{c:.2}"))),
        );
        t.render(&mut out);
    }

    match &r.chat {
        Chat::Skipped(why) => {
            let _ = writeln!(out, "chat engine: skipped ({why})\n");
        }
        Chat::Done(c) => {
            let _ = writeln!(
                out,
                "chat engine: {} concurrent generations via /api/chats: {} completed, {} failed; {} deltas in {:.2} s = {:.0} deltas/s; generation p50 {:.0} ms p99 {:.0} ms; CPU {} µs/delta; RSS after {} MB (peak {} MB)",
                c.generations,
                c.completed,
                c.failed,
                c.deltas,
                c.wall.as_secs_f64(),
                c.deltas_per_sec,
                c.gen_p50 as f64 / 1e6,
                c.gen_p99 as f64 / 1e6,
                opt(c.cpu_us_per_delta, |v| format!("{v:.1}")),
                opt(mb(c.rss_after), |m| format!("{m:.1}")),
                opt(mb(c.peak_rss), |m| format!("{m:.1}")),
            );
            if let Some(f) = &c.first_failure {
                let _ = writeln!(out, "  first failure: {f}");
            }
            out.push('\n');
        }
    }
    let _ = writeln!(
        out,
        "switchboard RSS at the end: {} MB",
        opt(mb(r.final_rss), |m| format!("{m:.1}"))
    );
    for note in &r.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Startup;
    use crate::phases::{Latency, Load};

    fn latency(p50_us: u64, p99_us: u64, p999_us: u64) -> Latency {
        Latency {
            p50: p50_us * 1_000,
            p99: p99_us * 1_000,
            p999: p999_us * 1_000,
            samples: 5_000,
            errors: 0,
        }
    }

    fn load(concurrency: usize, rps: f64, cpu: f64) -> Option<Load> {
        Some(Load {
            concurrency,
            requests: 1_000,
            rps,
            cpu_us_per_req: Some(cpu),
            ..Load::default()
        })
    }

    fn streams(k: usize, stalls: u64, steady_p99_us: u64, rss_mb: u64) -> Option<Streams> {
        Some(Streams {
            k,
            stalls,
            ttfb_steady_p99: steady_p99_us * 1_000,
            peak_rss: Some(rss_mb << 20),
            ..Streams::default()
        })
    }

    /// Columns: direct, proxy, gateway, one peer. Every figure differs per column, so a key read
    /// from the wrong column fails.
    fn results() -> Results {
        let targets = ["mock direct", "sb proxy", "sb gateway", "crabllm"];
        Results {
            machine: "test".into(),
            command: "test".into(),
            nofile: 20_000,
            mock_url: "http://127.0.0.1:1".into(),
            deltas_per_stream: 64,
            stream_len: Duration::from_millis(1_400),
            startup: Some(Startup {
                to_listening: Duration::from_millis(6),
                to_healthy: Duration::from_millis(8),
            }),
            idle_rss: Some(17 << 20),
            idle_rss_anon: Some(5 << 20),
            final_rss: Some(40 << 20),
            targets: targets.iter().map(|t| t.to_string()).collect(),
            latency: vec![
                latency(100, 200, 400),
                latency(190, 350, 700),
                latency(195, 360, 800),
                latency(340, 600, 2_000),
            ],
            loads: vec![
                (
                    32,
                    vec![
                        load(32, 80_000.0, 12.0),
                        load(32, 40_000.0, 21.0),
                        load(32, 38_000.0, 23.0),
                        load(32, 14_000.0, 87.0),
                    ],
                ),
                (
                    128,
                    vec![
                        load(128, 81_000.0, 13.0),
                        load(128, 41_000.0, 22.0),
                        None,
                        load(128, 15_000.0, 80.0),
                    ],
                ),
            ],
            streams: vec![
                (
                    512,
                    vec![
                        streams(512, 0, 1_000, 100),
                        streams(512, 1, 3_000, 39),
                        None,
                        streams(512, 5, 4_000, 470),
                    ],
                ),
                (
                    2_000,
                    vec![
                        streams(2_000, 0, 9_000, 150),
                        streams(2_000, 2, 150_000, 99),
                        None,
                        streams(2_000, 200, 170_000, 1_800),
                    ],
                ),
            ],
            chat: Chat::Skipped("test".into()),
            notes: vec![],
        }
    }

    #[test]
    fn the_stable_json_keys_carry_the_right_figures() {
        let v = json(&results());
        let expected = [
            ("overhead_p50_us", json!(90.0)),
            ("overhead_p99_us", json!(150.0)),
            ("overhead_p999_us", json!(300.0)),
            ("rps_c32", json!(40_000.0)),
            ("direct_rps_c32", json!(80_000.0)),
            ("rps_c128", json!(41_000.0)),
            ("cpu_us_per_req", json!(21.0)),
            ("streams", json!(2_000)),
            ("stalls", json!(3)),
            ("ttfb_overhead_p99_us", json!(2_000.0)),
            ("peak_rss_mb", json!(99.0)),
            ("idle_rss_mb", json!(17.0)),
            ("idle_rss_anon_mb", json!(5.0)),
            ("startup_ms", json!(8.0)),
        ];
        for (key, want) in expected {
            assert_eq!(v[key], want, "{key} in {v:#}");
        }
        let peer = &v["peers"]["crabllm"];
        assert_eq!(peer["overhead_p99_us"], json!(400.0), "{v:#}");
        assert_eq!(peer["rps_c32"], json!(14_000.0), "{v:#}");
        assert_eq!(peer["stalls"], json!(205), "{v:#}");
        assert_eq!(
            v["peers"].as_object().unwrap().len(),
            1,
            "only peers are peers"
        );
        assert_eq!(v["floor"], Value::Null, "no --floor, no floor: {v:#}");
        assert_eq!(v["stack"], Value::Null, "no --floor, no stack: {v:#}");
    }

    #[test]
    fn the_reference_relays_are_their_own_keys_not_peers() {
        let mut r = results();
        r.targets.push(FLOOR.into());
        r.latency.push(latency(140, 260, 500));
        r.loads[0].1.push(load(32, 45_000.0, 13.0));
        r.targets.push(STACK.into());
        r.latency.push(latency(190, 330, 700));
        r.loads[0].1.push(load(32, 30_000.0, 25.0));
        r.loads[1].1.extend([None, None]);
        for (_, row) in &mut r.streams {
            row.extend([None, None]);
        }
        let v = json(&r);
        assert_eq!(v["floor"]["overhead_p50_us"], json!(40.0), "{v:#}");
        assert_eq!(v["floor"]["overhead_p99_us"], json!(60.0), "{v:#}");
        assert_eq!(v["floor"]["rps_c32"], json!(45_000.0), "{v:#}");
        assert_eq!(v["stack"]["overhead_p50_us"], json!(90.0), "{v:#}");
        assert_eq!(v["stack"]["overhead_p99_us"], json!(130.0), "{v:#}");
        assert_eq!(v["stack"]["rps_c32"], json!(30_000.0), "{v:#}");
        assert_eq!(v["floor"]["cpu_us_per_req"], json!(13.0), "{v:#}");
        assert_eq!(v["stack"]["cpu_us_per_req"], json!(25.0), "{v:#}");
        assert_eq!(v["peers"].as_object().unwrap().len(), 1, "{v:#}");
        let table = table(&r);
        assert!(
            table.contains(FLOOR) && table.contains(STACK),
            "the table shows both columns: {table}"
        );
    }
}
