//! `mock-coda`: serve the fake Coda API until SIGINT/SIGTERM.
//!
//! The first stdout line is exactly the API base URL (`http://127.0.0.1:PORT/apis/v1`),
//! flushed at once, so a parent process can read it and set `CODA_API_BASE_URL`.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use mock_coda::{Fault, Fixture, MockCodaConfig, MockState};

/// An offline fake of the Coda REST API v1.
#[derive(Debug, Parser)]
#[command(name = "mock-coda", version)]
struct Cli {
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on; loopback unless told otherwise.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    host: IpAddr,
    /// Adds a token to the table (repeatable); replaces the default table.
    #[arg(long = "token", value_name = "TOKEN=loginId")]
    tokens: Vec<String>,
    /// JSON array of {"token", "loginId", "name", "tokenName"?, "scoped"?}; replaces
    /// the default table (combined with --token).
    #[arg(long, value_name = "FILE")]
    tokens_file: Option<PathBuf>,
    /// Seed documents (JSON); the embedded default fixture otherwise.
    #[arg(long, value_name = "FILE")]
    fixture: Option<PathBuf>,
    /// A fault active from the start (repeatable), in the JSON form that
    /// `POST /_mock/faults` takes, e.g. '{"kind":"latency","ms":200}'.
    #[arg(long = "fault", value_name = "JSON")]
    faults: Vec<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mock-coda: {err:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = config_from(&cli)?;
    let addr = SocketAddr::new(cli.host, cli.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let base_url = mock_coda::base_url_for(listener.local_addr()?);
    let state = Arc::new(MockState::new(config, &base_url)?);

    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{base_url}").context("cannot write to stdout")?;
    stdout.flush().context("cannot flush stdout")?;
    drop(stdout);

    mock_coda::serve(listener, state, shutdown_signal())
        .await
        .context("server failed")
}

fn config_from(cli: &Cli) -> anyhow::Result<MockCodaConfig> {
    let mut config = MockCodaConfig::default();
    if !cli.tokens.is_empty() || cli.tokens_file.is_some() {
        config.tokens.clear();
        if let Some(path) = &cli.tokens_file {
            config.tokens.extend(mock_coda::load_tokens_file(path)?);
        }
        for flag in &cli.tokens {
            config.tokens.push(mock_coda::parse_token_flag(flag)?);
        }
    }
    for raw in &cli.faults {
        let fault: Fault =
            serde_json::from_str(raw).with_context(|| format!("invalid --fault {raw}"))?;
        fault
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid --fault {raw}: {e}"))?;
        config.faults.push(fault);
    }
    if let Some(path) = &cli.fixture {
        config.fixture = Some(Fixture::from_file(path)?);
    }
    Ok(config)
}

/// Resolves on SIGINT or (on Unix) SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            // Without a SIGTERM handler, fall back to waiting for SIGINT only.
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
