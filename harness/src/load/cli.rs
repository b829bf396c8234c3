//! The `load` subcommand's arguments and entry point (kept here so `cli.rs` only registers it).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

use super::selftest::TrivialServer;
use super::{LoadConfig, LoadReport};

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The MCP endpoint URL (http:// only), e.g. http://127.0.0.1:8080/mcp.
    #[arg(long, required_unless_present = "self_test")]
    target: Option<String>,
    /// Environment variable holding a bearer token sent on every request.
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
    /// Concurrent workers, each with its own keep-alive connection.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Calls measured (tools/call), in total.
    #[arg(long, default_value_t = 1000)]
    requests: u64,
    /// Sessions opened before the calls; call i goes to session i mod S.
    #[arg(long, default_value_t = 1)]
    sessions: usize,
    /// Calls made before measuring, not counted.
    #[arg(long, default_value_t = 0)]
    warmup: u64,
    /// The tool to call.
    #[arg(long, default_value = "echo")]
    tool: String,
    /// The tool's arguments as a JSON object; without it, `echo` gets a unique message per call.
    #[arg(long, value_name = "JSON")]
    args: Option<String>,
    /// The protocol version asked for in initialize.
    #[arg(long, default_value = "2025-11-25")]
    protocol_version: String,
    /// Bound of the whole run, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout_secs: u64,
    /// Do not DELETE the sessions at the end (to measure a server holding them).
    #[arg(long)]
    keep_sessions: bool,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Measure the load generator itself against a built-in trivial server on 127.0.0.1.
    #[arg(long, conflicts_with = "target")]
    self_test: bool,
}

/// Runs `load`; exit code 0 when every call succeeded, 1 otherwise.
pub async fn execute(args: LoadArgs) -> anyhow::Result<u8> {
    let server = if args.self_test {
        Some(TrivialServer::start().context("cannot start the trivial server")?)
    } else {
        None
    };
    let target = match (&server, &args.target) {
        (Some(server), _) => format!("http://{}/mcp", server.addr),
        (None, Some(target)) => target.clone(),
        (None, None) => bail!("--target is required"),
    };
    let target = url::Url::parse(&target).with_context(|| format!("bad --target {target:?}"))?;
    let mut config = LoadConfig::new(target);
    if let Some(var) = &args.token_env {
        match std::env::var(var) {
            Ok(token) if !token.trim().is_empty() => config.token = Some(token.trim().into()),
            _ => bail!("--token-env {var}: the environment variable is not set or empty"),
        }
    }
    config.concurrency = args.concurrency;
    config.requests = args.requests;
    config.sessions = args.sessions;
    config.warmup = args.warmup;
    config.tool = args.tool;
    config.args = match &args.args {
        None => None,
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Some(map),
            _ => bail!("--args must be a JSON object, got {text:?}"),
        },
    };
    config.protocol_version = args.protocol_version;
    config.timeout = Duration::from_secs(args.timeout_secs.max(1));
    config.keep_sessions = args.keep_sessions;

    config.server_thread = server.as_ref().and_then(TrivialServer::cpu_probe);
    let report: LoadReport = super::run(&config).await?;
    drop(server);
    print!("{}", report.to_human());
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if report.passed() { 0 } else { 1 })
}
