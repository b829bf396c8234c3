//! The `fuzz` subcommand's arguments and entry point (kept here so `cli.rs` only registers it).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};

use super::{FuzzConfig, FuzzReport};

#[derive(Debug, clap::Args)]
pub struct FuzzArgs {
    /// The MCP endpoint URL, e.g. http://127.0.0.1:8080/mcp. Loopback, or your own deployment
    /// with --allow-remote.
    #[arg(long)]
    target: String,
    /// Environment variable holding a bearer token sent on every request (unless a mutation drops it).
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
    /// How long to fuzz, in seconds.
    #[arg(long, value_name = "N", default_value_t = 60)]
    duration_secs: u64,
    /// The PRNG seed; the same seed against the same target sends the same requests.
    /// Without it, one is chosen and printed.
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
    /// Requests per second, at most (1..=1000).
    #[arg(long, value_name = "R", default_value_t = 50)]
    rate: u32,
    /// The bound on every answer, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 15)]
    answer_timeout_secs: u64,
    /// The target is not on loopback, and it is yours to fuzz.
    #[arg(long)]
    allow_remote: bool,
    /// Write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// Runs `fuzz`; exit code 0 when nothing was found, 1 otherwise.
pub async fn execute(args: FuzzArgs) -> anyhow::Result<u8> {
    let target =
        url::Url::parse(&args.target).with_context(|| format!("bad --target {:?}", args.target))?;
    if !matches!(target.scheme(), "http" | "https") {
        bail!(
            "--target must be an http or https URL, got {:?}",
            args.target
        );
    }
    if !is_loopback(&target) && !args.allow_remote {
        bail!("--target {} is not on loopback: fuzz only deployments you own, and say so with --allow-remote", args.target);
    }
    if !(1..=1000).contains(&args.rate) {
        bail!("--rate must be between 1 and 1000 requests per second");
    }
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let mut config = FuzzConfig::new(target, seed);
    if let Some(var) = &args.token_env {
        match std::env::var(var) {
            Ok(token) if !token.trim().is_empty() => config.token = Some(token.trim().into()),
            _ => bail!("--token-env {var}: the environment variable is not set or empty"),
        }
    }
    config.duration = Duration::from_secs(args.duration_secs);
    config.rate = args.rate;
    config.answer_timeout = Duration::from_secs(args.answer_timeout_secs.max(1));
    eprintln!(
        "mcp-harness fuzz: seed {seed}, {} s at most {} requests/s",
        args.duration_secs, args.rate
    );
    let report: FuzzReport = super::run(&config).await?;
    print!("{}", report.to_human());
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if report.passed() { 0 } else { 1 })
}
