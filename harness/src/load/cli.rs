//! The `load` subcommand's arguments and entry point (kept here so `cli.rs` only registers it).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::Value;

use super::selftest::TrivialServer;
use super::{Era, LoadConfig, LoadReport};

#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The MCP endpoint URL (http:// only), e.g. http://127.0.0.1:8080/mcp.
    #[arg(long, required_unless_present = "self_test")]
    target: Option<String>,
    /// Environment variable(s) holding bearer tokens (repeatable or comma-separated): session
    /// `i` (legacy) or call `i` (modern) uses token `i mod K`.
    #[arg(long, value_name = "VAR", value_delimiter = ',')]
    token_env: Vec<String>,
    /// A file of bearer tokens: one per line, or mock-coda's JSON array (`[{"token": ...}]`).
    #[arg(long, value_name = "FILE")]
    tokens_file: Option<PathBuf>,
    /// `legacy`: sessions (initialize, DELETE); `modern`: 2026-07-28 sessionless calls with
    /// `_meta` and mirrored headers, every reply checked for `resultType: complete`.
    #[arg(long, value_enum, default_value = "legacy")]
    era: Era,
    /// Concurrent workers, each with its own keep-alive connection.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Calls measured (tools/call), in total.
    #[arg(long, default_value_t = 1000)]
    requests: u64,
    /// Sessions opened before the calls; call i goes to session i mod S (legacy era only).
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
    for var in &args.token_env {
        match std::env::var(var) {
            Ok(token) if !token.trim().is_empty() => config.tokens.push(token.trim().into()),
            _ => bail!("--token-env {var}: the environment variable is not set or empty"),
        }
    }
    if let Some(path) = &args.tokens_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read --tokens-file {}", path.display()))?;
        let tokens =
            parse_tokens(&text).with_context(|| format!("--tokens-file {}", path.display()))?;
        config.tokens.extend(tokens);
    }
    config.era = args.era;
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

/// Tokens from a tokens file: mock-coda's JSON array (`[{"token": "..."}, ...]` or plain
/// strings), else one token per line (blank lines and `#` comments skipped).
pub fn parse_tokens(text: &str) -> anyhow::Result<Vec<String>> {
    let tokens: Vec<String> = if text.trim_start().starts_with('[') {
        let items: Vec<Value> = serde_json::from_str(text).context("not a JSON array of tokens")?;
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .or_else(|| item.get("token").and_then(Value::as_str))
                    .map(str::to_string)
                    .context("an entry is neither a string nor an object with `token`")
            })
            .collect::<anyhow::Result<_>>()?
    } else {
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(str::to_string)
            .collect()
    };
    if tokens.is_empty() {
        bail!("no tokens in the file");
    }
    if tokens
        .iter()
        .any(|t| t.trim().is_empty() || t.contains(char::is_whitespace))
    {
        bail!("a token is empty or contains whitespace");
    }
    Ok(tokens)
}
