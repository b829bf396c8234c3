//! The `coda-mcp-gateway` binary: parse settings, set up logs, bind, serve until a signal.
//!
//! Exit codes: 0 after a clean shutdown, 2 for invalid settings, 1 for any other failure.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use gateway::config::Config;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = Config::parse();
    init_logs(&config);
    if let Err(e) = config.validate() {
        eprintln!("coda-mcp-gateway: {e}");
        return ExitCode::from(2);
    }
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("coda-mcp-gateway: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("coda-mcp-gateway: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The async runtime. On machines with two cores or fewer, one worker thread unless
/// TOKIO_WORKER_THREADS says otherwise: waking a second worker for every call cost more CPU
/// than it gained in throughput (BENCHMARKS.md).
fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    if std::env::var_os("TOKIO_WORKER_THREADS").is_none() && cores <= 2 {
        builder.worker_threads(1);
    }
    builder.build()
}

async fn run(config: Config) -> anyhow::Result<()> {
    let addr = SocketAddr::new(config.host, config.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let scope = config.child_scope;
    gateway::serve_with(config, listener, shutdown_signal(), move || {
        // The first stdout line names the endpoint once it is ready, so scripts and tests can
        // start us on port 0 and wait for this line instead of sleeping.
        println!("coda-mcp-gateway listening on http://{local}/mcp");
        tracing::info!(%local, ?scope, "listening");
    })
    .await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    // Both listeners exist from the start, so a second signal arriving right after the first is
    // never lost between the two waits.
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    // A second signal means "now": exit without draining.
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("coda-mcp-gateway: second signal, exiting at once");
        std::process::exit(130);
    });
}

fn init_logs(config: &Config) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
