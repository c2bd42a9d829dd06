//! `switchboard`: reads settings, builds the app, runs it. Everything else lives in the libraries.
//!
//! The binary decides how the process serves: it loads the domain's [`Settings`] and the server's
//! own [`ServerSettings`] (bind address, database, cookie secret, connection limits) from the same
//! sources, binds the address and hands the rest to the server crate.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchboard_core::{Settings, Sources};
use switchboard_server::redact::Redactor;
use switchboard_server::{AppState, ServerSettings};

/// mimalloc gives memory back to the system after a burst of streams (glibc's allocator kept
/// hundreds of MB after 10,000 streams had ended) and is faster for the many small, short-lived
/// allocations of relaying.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "switchboard",
    version,
    about = "A private chat with every LLM, and an OpenAI-compatible gateway"
)]
struct Cli {
    /// A TOML file with settings (keys as the environment variables); the environment wins.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the web UI, the chat API, the proxy and the gateway (the default).
    Serve,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (settings, server) = match load_settings(&cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_logging(Redactor::for_settings(&settings, &server));
    // One worker thread per CPU serves connections, upstream calls and the chat engine alike.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => match runtime.block_on(serve(settings, server)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn load_settings(cli: &Cli) -> anyhow::Result<(Settings, ServerSettings)> {
    let dir = std::env::current_dir().context("reading the working directory")?;
    let sources = Sources::from_process(&dir, cli.config.as_deref())?;
    Ok((Settings::load(&sources)?, ServerSettings::load(&sources)?))
}

/// Crates that log the content they handle (the sanitizer's HTML parser logs every character).
const CONTENT_LOGGING_TARGETS: &[&str] = &["html5ever", "markup5ever", "ammonia", "tendril"];

/// Logs go to stderr through the redactor, so even a secret that slipped into a log line (a
/// dependency's debug output, say) is masked before it is written.
fn init_logging(redactor: Redactor) {
    use tracing_subscriber::EnvFilter;
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // HTML parsers log the text they parse at debug: that is users' chat text. Off whatever
    // RUST_LOG says.
    for quiet in CONTENT_LOGGING_TARGETS {
        if let Ok(directive) = format!("{quiet}=off").parse() {
            filter = filter.add_directive(directive);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr(std::sync::Arc::new(redactor)))
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

#[derive(Clone)]
struct RedactingStderr(std::sync::Arc<Redactor>);

/// One formatted event per `write` (tracing-subscriber formats into a buffer first), so each
/// write is scrubbed whole.
struct RedactingWriter(std::sync::Arc<Redactor>);

impl std::io::Write for RedactingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(self.0.scrub(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingWriter;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter(self.0.clone())
    }
}

async fn serve(settings: Settings, server: ServerSettings) -> anyhow::Result<()> {
    if let Some(warning) = server.open_bind_warning(&settings) {
        tracing::warn!("{warning}");
    }
    let addr = server.addr;
    let state = AppState::new(settings, &server)
        .await
        .context("starting the application")?;
    switchboard_server::start_background_tasks(&state);
    let listener = switchboard_server::bind(addr)
        .with_context(|| format!("binding {addr} (SWITCHBOARD_ADDR)"))?;
    let local = listener.local_addr()?;
    let shutdown = shutdown_signal()?;
    // Tests and scripts wait for this exact line.
    println!("listening on http://{local}");
    tracing::info!(%local, "switchboard started");
    switchboard_server::serve(state, listener, server.limits(), shutdown).await?;
    tracing::info!("switchboard stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM, so in-flight requests finish before exit.
///
/// The handlers are installed when this is *called*, not when it is first polled: the
/// `listening on` line is printed after the call, so a signal sent as soon as that line appears
/// is already a graceful shutdown rather than the default kill.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the Ctrl-C handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
