//! What rendering a message's markdown costs, fresh and remembered, for a few shapes of text, and
//! following a streaming reply as it grows:
//! `cargo run --release -p switchboard-chat --example render_time` (the numbers in
//! docs/benchmarks.md). A measurement to read, not a test.

use std::hint::black_box;
use std::time::Instant;

use switchboard_chat::{markdown, rendered};

fn main() {
    let para = "Here is **some** text with `code`, a [link](https://example.com) and a list:\n\n- one\n- two\n\n";
    let code = "```python\ndef f(x):\n    return [i * 2 for i in range(x) if i % 3]\n```\n\n";
    let words: String = (1..=64).map(|i| format!("w{i} ")).collect();
    let mut prose = String::new();
    while prose.len() < 2048 {
        prose.push_str(para);
    }
    let mut mixed = String::new();
    while mixed.len() < 2048 {
        mixed.push_str(para);
        mixed.push_str(code);
    }
    let cases = [
        ("64 words", words),
        ("prose", prose[..300].to_owned()),
        ("prose", prose.clone()),
        ("one code block", code.to_owned()),
        ("prose and code", mixed),
    ];
    // The syntax set and the sanitizer are built on first use.
    markdown::render("```rust\nfn warm() {}\n```");
    for (name, text) in &cases {
        let n = 300;
        let started = Instant::now();
        for _ in 0..n {
            black_box(markdown::render(text));
        }
        let fresh = started.elapsed().as_secs_f64() / f64::from(n) * 1e6;
        let started = Instant::now();
        for _ in 0..n {
            black_box(rendered::render_remembered(text));
        }
        let remembered = started.elapsed().as_secs_f64() / f64::from(n) * 1e6;
        println!(
            "{name} ({} bytes): rendered {fresh:.1} µs, remembered {remembered:.2} µs",
            text.len()
        );
    }

    // A follower of a streaming reply asks for its text so far about every 250 ms: at 50
    // words a second, a few hundred bytes more each time.
    let mut reply = String::new();
    while reply.len() < 16 * 1024 {
        reply.push_str(para);
        reply.push_str(code);
    }
    let step = 320;
    let lengths: Vec<usize> = (1..=reply.len() / step)
        .map(|i| reply.floor_char_boundary(i * step))
        .collect();
    let started = Instant::now();
    for &n in &lengths {
        black_box(markdown::render(&reply[..n]));
    }
    let whole = started.elapsed().as_secs_f64() * 1e3;
    let started = Instant::now();
    for &n in &lengths {
        black_box(rendered::render_streaming(&reply[..n]));
    }
    let by_block = started.elapsed().as_secs_f64() * 1e3;
    println!(
        "a {} KB reply of prose and code followed in {} steps: rendered whole each time {whole:.1} ms, by block {by_block:.1} ms",
        reply.len() / 1024,
        lengths.len()
    );
}
