//! `mock-openrouter`: the mock as a process, for local demos and benchmarks that run Switchboard
//! as a separate binary. All behaviour lives in the library; this only parses flags and announces
//! the address.
//!
//! Stdout carries exactly one line, `listening on http://127.0.0.1:<port>`, so scripts can wait for
//! it and read the port; anything else goes to stderr.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use mock_openrouter::{MockConfig, MockOpenRouter};

/// A local stand-in for openrouter.ai.
#[derive(Debug, Parser)]
#[command(name = "mock-openrouter", version)]
struct Args {
    /// Port to listen on; 0 lets the OS choose.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// An accepted API key (repeatable). Without any, every key starting `sk-or-` is accepted.
    #[arg(long = "key", value_name = "K")]
    keys: Vec<String>,
    /// Milliseconds between streamed chunks (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    delta_ms: u64,
    /// Answer MODEL with the recorded response body in PATH (repeatable).
    #[arg(long = "fixture", value_name = "MODEL=PATH", value_parser = parse_fixture)]
    fixtures: Vec<(String, PathBuf)>,
}

fn parse_fixture(value: &str) -> Result<(String, PathBuf), String> {
    match value.split_once('=') {
        Some((model, path)) if !model.is_empty() && !path.is_empty() => {
            Ok((model.to_owned(), PathBuf::from(path)))
        }
        _ => Err(format!("expected MODEL=PATH, got {value:?}")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = MockConfig {
        keys: args.keys,
        delta_ms: args.delta_ms,
        fixtures: args.fixtures,
    };
    let mock = MockOpenRouter::start_on(SocketAddr::new(args.host, args.port), config).await?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {}", mock.base_url()).context("writing to stdout")?;
    stdout.flush().context("flushing stdout")?;
    drop(stdout);
    std::future::pending::<()>().await;
    Ok(())
}
