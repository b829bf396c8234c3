//! Command-line interface: `run`, `discovery` and `list`.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use harness::interp::Vars;
use harness::{discovery, Baseline, Profile, RunConfig};
use std::path::PathBuf;
use std::time::Duration;

/// Certify an MCP Streamable HTTP deployment from scenario files.
#[derive(Debug, Parser)]
#[command(name = "mcp-harness", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run scenarios against a target and report pass, fail, warn or skip for each.
    Run(Box<RunArgs>),
    /// Snapshot the OAuth discovery documents and the 401 challenge of a target.
    Discovery(DiscoveryArgs),
    /// List the scenarios (id, profile, tags) without running them.
    List(ListArgs),
    /// Bounded, checked load: throughput and latency of tools/call on an http:// endpoint.
    Load(Box<harness::load::cli::LoadArgs>),
    /// Fuzz a deployment on the wire: mutated requests, every answer checked (seeded, rate-bounded).
    Fuzz(Box<harness::fuzz::cli::FuzzArgs>),
    /// The official MCP conformance suite through a loopback proxy that adds the bearer token.
    Conformance(Box<harness::conformance::cli::ConformanceArgs>),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The MCP endpoint URL, e.g. https://mcp.example.com/mcp.
    #[arg(long)]
    target: String,
    /// Environment variable holding token A (identity "a").
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
    /// Environment variable holding token B (identity "b").
    #[arg(long, value_name = "VAR")]
    second_token_env: Option<String>,
    /// live: only read-only scenarios, paced; local: everything.
    #[arg(long, value_enum, default_value_t = Profile::Live)]
    profile: Profile,
    /// Run only scenarios with this tag (repeatable; any of them).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Leave out scenarios with this tag (repeatable).
    #[arg(long = "skip-tag", value_name = "TAG")]
    skip_tags: Vec<String>,
    /// Write a JUnit XML report.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a JSON report.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Strict baseline of expected failures (TOML: failing = ["id", ...]).
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Set a scenario variable (repeatable); the value is JSON if it parses, else a string.
    #[arg(long = "var", value_name = "K=V")]
    vars: Vec<String>,
    /// Minimum milliseconds between any two requests (default: 250 live, 0 local).
    #[arg(long, value_name = "MS")]
    min_interval_ms: Option<u64>,
    /// Minimum milliseconds between two paced (auth-related) requests (default: 6500 live, 0 local).
    #[arg(long, value_name = "MS")]
    paced_interval_ms: Option<u64>,
    /// Default bound of every wait, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    timeout_secs: u64,
    /// Longest Retry-After honoured on an unexpected 429, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    max_retry_wait_secs: u64,
    /// Warnings (failed SHOULD/MAY checks) fail the run too.
    #[arg(long)]
    strict: bool,
    /// The target must serve this era (repeatable: `2026-07-28`, or `legacy` / a 2025 version
    /// for the session era): its scenarios fail instead of being skipped when it is not served,
    /// and the run fails.
    #[arg(long = "require-era", value_name = "ERA")]
    require_eras: Vec<String>,
    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Scenario files or directories.
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct DiscoveryArgs {
    /// The MCP endpoint URL.
    #[arg(long)]
    target: String,
    /// Compare with this snapshot file and fail (exit 1) on any difference.
    #[arg(long, value_name = "FILE")]
    check: Option<PathBuf>,
    /// Milliseconds between the requests (they hit auth-related endpoints).
    #[arg(long, value_name = "MS", default_value_t = 6500)]
    interval_ms: u64,
    /// Bound of each request, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 10)]
    timeout_secs: u64,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Scenario files or directories.
    #[arg(default_value = "scenarios")]
    paths: Vec<PathBuf>,
}

/// Runs a parsed command line and returns the exit code.
pub async fn execute(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Run(args) => run(*args).await,
        Command::Discovery(args) => discover(args).await,
        Command::List(args) => list(args),
        Command::Load(args) => harness::load::cli::execute(*args).await,
        Command::Fuzz(args) => harness::fuzz::cli::execute(*args).await,
        Command::Conformance(args) => harness::conformance::cli::execute(*args).await,
    }
}

fn parse_target(text: &str) -> anyhow::Result<url::Url> {
    let url = url::Url::parse(text).with_context(|| format!("bad --target {text:?}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--target must be an http or https URL, got {text:?}");
    }
    Ok(url)
}

fn token_from_env(var: &Option<String>, flag: &str) -> anyhow::Result<Option<String>> {
    let Some(var) = var else { return Ok(None) };
    match std::env::var(var) {
        Ok(token) if !token.trim().is_empty() => Ok(Some(token.trim().to_string())),
        _ => bail!("{flag} {var}: the environment variable is not set or empty"),
    }
}

fn parse_vars(pairs: &[String]) -> anyhow::Result<Vars> {
    let mut vars = Vars::new();
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--var {pair:?}: expected K=V");
        };
        let value = serde_json::from_str(value).unwrap_or_else(|_| value.into());
        vars.insert(key.trim().to_string(), value);
    }
    Ok(vars)
}

async fn run(args: RunArgs) -> anyhow::Result<u8> {
    let target = parse_target(&args.target)?;
    let mut config = RunConfig::new(target, args.profile);
    config.token = token_from_env(&args.token_env, "--token-env")?;
    config.second_token = token_from_env(&args.second_token_env, "--second-token-env")?;
    config.include_tags = args.tags;
    config.exclude_tags = args.skip_tags;
    config.vars = parse_vars(&args.vars)?;
    if let Some(ms) = args.min_interval_ms {
        config.min_interval = Duration::from_millis(ms);
    }
    if let Some(ms) = args.paced_interval_ms {
        config.paced_interval = Duration::from_millis(ms);
    }
    config.default_timeout = Duration::from_secs(args.timeout_secs.max(1));
    config.max_retry_wait = Duration::from_secs(args.max_retry_wait_secs);
    config.progress = !args.quiet;
    config.strict = args.strict;
    for era in &args.require_eras {
        if era != harness::eras::LEGACY && !harness::scenario::is_version_tag(era) {
            bail!("--require-era {era:?}: use a protocol version like 2026-07-28, or legacy");
        }
    }
    config.require_eras = args.require_eras;
    let baseline = args.baseline.as_deref().map(Baseline::load).transpose()?;
    let scenarios = harness::load_paths(&args.paths)?;
    if scenarios.is_empty() {
        bail!("no scenario files found in {:?}", args.paths);
    }
    if !scenarios.iter().any(|s| config.selects(s)) {
        bail!(
            "no scenario matches the tag filters (--tag {:?}, --skip-tag {:?})",
            config.include_tags,
            config.exclude_tags
        );
    }
    let mut report = harness::run(&config, &scenarios).await;
    if let Some(baseline) = &baseline {
        baseline.apply(&mut report);
    }
    print!("{}", report.to_human());
    if let Some(path) = &args.junit {
        std::fs::write(path, report.to_junit())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(report.exit_code() as u8)
}

async fn discover(args: DiscoveryArgs) -> anyhow::Result<u8> {
    let target = parse_target(&args.target)?;
    let expected = args
        .check
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
        })
        .transpose()?;
    let snapshot = discovery::snapshot(
        &target,
        Duration::from_millis(args.interval_ms),
        Duration::from_secs(args.timeout_secs.max(1)),
    )
    .await?;
    match expected {
        None => {
            print!("{snapshot}");
            Ok(0)
        }
        Some(expected) => match discovery::diff(&expected, &snapshot) {
            None => {
                println!("discovery snapshot matches");
                Ok(0)
            }
            Some(diff) => {
                print!("{diff}");
                println!("discovery snapshot differs from the file");
                Ok(1)
            }
        },
    }
}

fn list(args: ListArgs) -> anyhow::Result<u8> {
    for scenario in harness::load_paths(&args.paths)? {
        println!(
            "{:<48} {:<5} [{}]",
            scenario.id,
            scenario.profile,
            scenario.tags.join(", ")
        );
    }
    Ok(0)
}
