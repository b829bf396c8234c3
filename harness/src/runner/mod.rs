//! Runs scenarios against a target: requests, named streams, captures, identities and pacing.

mod check;
mod request;
mod step;
mod stream;
mod transcript;

pub(crate) use check::shorten;
pub use check::Failure;

use crate::client::{Answer, Client};
use crate::eras::Eras;
use crate::interp::{self, Vars};
use crate::report::{Outcome, Report, ScenarioReport, StepOutcome, StepReport};
use crate::scenario::{self, Profile, Scenario, Step};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;
use transcript::Transcript;

/// Variables every scenario can use: `${target}` (the MCP endpoint URL), `${origin}`
/// (scheme://host[:port]), `${mcp_path}` (its path), `${i}` (the copy index in a concurrent step),
/// and `${token}` / `${token_b}` when tokens are configured (values are redacted in transcripts).
pub const BUILTIN_VARS: &[&str] = &["target", "origin", "mcp_path", "i", "token", "token_b"];

/// Everything a run needs besides the scenarios.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The MCP endpoint, e.g. `https://mcp.example.com/mcp`.
    pub target: url::Url,
    /// Token A (identity `a`).
    pub token: Option<String>,
    /// Token B (identity `b`).
    pub second_token: Option<String>,
    /// `live` runs only `profile = "live"` scenarios; `local` runs everything.
    pub profile: Profile,
    /// Run only scenarios with one of these tags (all when empty).
    pub include_tags: Vec<String>,
    /// Leave out scenarios with any of these tags.
    pub exclude_tags: Vec<String>,
    /// `--var` values; they override scenario defaults.
    pub vars: Vars,
    /// Minimum time between any two requests.
    pub min_interval: Duration,
    /// Minimum time between two `paced = true` requests (auth-related endpoints).
    pub paced_interval: Duration,
    /// Bound of every wait when neither the step nor the scenario sets one.
    pub default_timeout: Duration,
    /// Longest `Retry-After` honoured before the single retry of a 429.
    pub max_retry_wait: Duration,
    /// Print a progress line per scenario to stderr.
    pub progress: bool,
    /// Warnings (failed SHOULD/MAY checks) fail the run too; for certifying a reference
    /// deployment whose own contract is stricter than the spec.
    pub strict: bool,
    /// Probe the target's eras before the scenarios (`run`), or before a scenario about the
    /// 2026-07-28 era (`run_scenario`), unless [`RunConfig::eras`] already says.
    pub discover_eras: bool,
    /// The target's eras when known in advance (no probes then).
    pub eras: Option<Eras>,
    /// `--require-era`: eras the target must serve; scenarios for them fail instead of being
    /// skipped, and the run fails when one is missing.
    pub require_eras: Vec<String>,
}

impl RunConfig {
    /// Defaults for a profile: `live` keeps paced requests under 10 per minute and spaces all
    /// requests by 250 ms; `local` does not pace.
    pub fn new(target: url::Url, profile: Profile) -> RunConfig {
        let (min_interval, paced_interval) = match profile {
            Profile::Live => (Duration::from_millis(250), Duration::from_millis(6500)),
            Profile::Local => (Duration::ZERO, Duration::ZERO),
        };
        RunConfig {
            target,
            token: None,
            second_token: None,
            profile,
            include_tags: Vec::new(),
            exclude_tags: Vec::new(),
            vars: Vars::new(),
            min_interval,
            paced_interval,
            default_timeout: Duration::from_secs(10),
            max_retry_wait: Duration::from_secs(30),
            progress: false,
            strict: false,
            discover_eras: true,
            eras: None,
            require_eras: Vec::new(),
        }
    }

    /// True when the tag filters select the scenario.
    pub fn selects(&self, scenario: &Scenario) -> bool {
        let has = |tag: &String| scenario.tags.contains(tag);
        (self.include_tags.is_empty() || self.include_tags.iter().any(has))
            && !self.exclude_tags.iter().any(has)
    }

    /// Token values to scrub from transcripts, raw and percent-encoded (as in a query string).
    fn secrets(&self) -> Vec<String> {
        let mut secrets = Vec::new();
        for token in [&self.token, &self.second_token].into_iter().flatten() {
            if token.is_empty() {
                continue;
            }
            let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
            if encoded != *token {
                secrets.push(encoded);
            }
            secrets.push(token.clone());
        }
        secrets
    }
}

/// Spaces requests out across a whole run.
#[derive(Debug, Default)]
pub struct Pacer {
    last: Mutex<(Option<Instant>, Option<Instant>)>,
}

impl Pacer {
    pub(crate) async fn wait(&self, config: &RunConfig, paced: bool) {
        let mut last = self.last.lock().await;
        let now = Instant::now();
        let mut ready = now;
        if let Some(any) = last.0 {
            ready = ready.max(any + config.min_interval);
        }
        if paced {
            if let Some(p) = last.1 {
                ready = ready.max(p + config.paced_interval);
            }
        }
        tokio::time::sleep_until(ready).await;
        let sent = Instant::now();
        last.0 = Some(sent);
        if paced {
            last.1 = Some(sent);
        }
    }
}

/// Runs scenarios one after another and collects the report.
pub async fn run(config: &RunConfig, scenarios: &[Scenario]) -> Report {
    let started = std::time::Instant::now();
    let pacer = Pacer::default();
    let client = Client::new();
    let selected: Vec<&Scenario> = scenarios.iter().filter(|s| config.selects(s)).collect();
    let eras = match (&config.eras, &client) {
        (Some(eras), _) => Some(eras.clone()),
        (None, Ok(client)) if config.discover_eras => {
            let eras = crate::eras::discover(config, client, &pacer).await;
            if config.progress {
                eprintln!("{}", eras.line());
            }
            Some(eras)
        }
        _ => None,
    };
    let mut reports = Vec::new();
    for (n, scenario) in selected.iter().enumerate() {
        if config.progress {
            eprintln!("[{}/{}] {}", n + 1, selected.len(), scenario.id);
        }
        let report = match &client {
            Ok(client) => run_scenario_with(config, client, &pacer, eras.as_ref(), scenario).await,
            Err(e) => ScenarioReport::errored(scenario, e.to_string()),
        };
        if config.progress {
            eprintln!(
                "[{}/{}] {} {}",
                n + 1,
                selected.len(),
                report.outcome,
                scenario.id
            );
        }
        reports.push(report);
    }
    let mut report = Report::new(config, reports, started.elapsed());
    if let Some(eras) = eras {
        report.missing_required_eras = crate::eras::missing_required(&eras, &config.require_eras);
        report.eras = eras.served.clone();
        report.era_discovery = Some(eras);
    }
    report
}

/// Runs one scenario with a fresh client and pacer (for one-test-per-file runners).
///
/// Eras are probed first only when the scenario is about the 2026-07-28 era (tags `2026-07-28`,
/// `dual-era`, `modern-only`) and [`RunConfig::eras`] does not say, so legacy scenarios send
/// exactly what they did before eras existed.
pub async fn run_scenario(config: &RunConfig, scenario: &Scenario) -> ScenarioReport {
    let client = match Client::new() {
        Ok(client) => client,
        Err(e) => return ScenarioReport::errored(scenario, e.to_string()),
    };
    let pacer = Pacer::default();
    let eras = match &config.eras {
        Some(eras) => Some(eras.clone()),
        None if config.discover_eras && scenario.concerns_modern_era() => {
            Some(crate::eras::discover(config, &client, &pacer).await)
        }
        None => None,
    };
    run_scenario_with(config, &client, &pacer, eras.as_ref(), scenario).await
}

/// Loads one scenario file (its id relative to `root`) and runs it: the entry point for
/// one-test-per-file runners. A malformed file is an error, not a failed report.
pub async fn run_file(
    config: &RunConfig,
    root: &std::path::Path,
    path: &std::path::Path,
) -> Result<ScenarioReport, scenario::ScenarioError> {
    let scenario = scenario::load_file(root, path)?;
    Ok(run_scenario(config, &scenario).await)
}

/// Why a scenario cannot run under this configuration, if so.
pub fn skip_reason(config: &RunConfig, scenario: &Scenario) -> Option<String> {
    if config.profile == Profile::Live && scenario.profile == Profile::Local {
        return Some("local profile scenario (run with --profile local)".to_string());
    }
    if scenario.needs_token() && config.token.is_none() {
        return Some("needs a token (--token-env)".to_string());
    }
    if scenario.needs_second_token() && config.second_token.is_none() {
        return Some("needs a second token (--second-token-env)".to_string());
    }
    let mut extra = config.vars.clone();
    for name in ["token", "token_b"] {
        extra.remove(name);
    }
    if config.token.is_some() {
        extra.insert("token".into(), Value::Null);
    }
    if config.second_token.is_some() {
        extra.insert("token_b".into(), Value::Null);
    }
    let missing: Vec<String> = scenario::undefined_vars(scenario, &extra)
        .into_iter()
        .filter(|name| !["token", "token_b"].contains(&name.as_str()) || !extra.contains_key(name))
        .collect();
    if !missing.is_empty() {
        return Some(format!("needs --var {}", missing.join(", --var ")));
    }
    None
}

struct Stream {
    answer: Answer,
    cursor: usize,
}

struct ScenarioRun<'a> {
    config: &'a RunConfig,
    client: &'a Client,
    pacer: &'a Pacer,
    scenario: &'a Scenario,
    vars: Vars,
    streams: HashMap<String, Stream>,
    transcript: Transcript,
}

/// Runs one scenario with a shared client and pacer.
/// With `eras`, a scenario for an era the target does not serve is skipped with the reason, or
/// fails when `--require-era` names that era.
pub async fn run_scenario_with(
    config: &RunConfig,
    client: &Client,
    pacer: &Pacer,
    eras: Option<&Eras>,
    scenario: &Scenario,
) -> ScenarioReport {
    let started = std::time::Instant::now();
    if let Some(miss) = eras.and_then(|eras| crate::eras::skip_reason(eras, scenario)) {
        if crate::eras::required(&config.require_eras, &miss.era) {
            return ScenarioReport::errored(
                scenario,
                format!("--require-era {}: {}", miss.era, miss.reason),
            );
        }
        return ScenarioReport::skipped(scenario, miss.reason);
    }
    if let Some(reason) = skip_reason(config, scenario) {
        return ScenarioReport::skipped(scenario, reason);
    }
    let mut vars = scenario.vars.clone();
    vars.extend(config.vars.clone());
    vars.insert("target".into(), Value::String(config.target.to_string()));
    vars.insert(
        "origin".into(),
        Value::String(config.target.origin().ascii_serialization()),
    );
    vars.insert(
        "mcp_path".into(),
        Value::String(config.target.path().to_string()),
    );
    if let Some(token) = &config.token {
        vars.insert("token".into(), Value::String(token.clone()));
    }
    if let Some(token) = &config.second_token {
        vars.insert("token_b".into(), Value::String(token.clone()));
    }
    let mut run = ScenarioRun {
        config,
        client,
        pacer,
        scenario,
        vars,
        streams: HashMap::new(),
        transcript: Transcript {
            lines: Vec::new(),
            secrets: config.secrets(),
        },
    };
    let mut steps = Vec::new();
    let mut failed = false;
    for step in &scenario.steps {
        if failed && !step.always {
            steps.push(StepReport::new(step, StepOutcome::Skipped, None));
            continue;
        }
        run.transcript
            .push(format!("# step {}: {}", step.index, step.name));
        let result = run.step(step).await;
        let outcome = match (&result, failed) {
            (Ok(()), _) => StepOutcome::Pass,
            (Err(_), true) => StepOutcome::Warn,
            (Err(_), false) if step.level.is_advisory() => StepOutcome::Warn,
            (Err(_), false) => {
                failed = true;
                StepOutcome::Fail
            }
        };
        if let Err(failure) = &result {
            run.transcript
                .push(format!("# step {} failed: {failure}", step.index));
        }
        steps.push(StepReport::new(step, outcome, result.err()));
    }
    run.streams.clear();
    let outcome = if steps.iter().any(|s| s.outcome == StepOutcome::Fail) {
        Outcome::Fail
    } else if steps.iter().any(|s| s.outcome == StepOutcome::Warn) {
        Outcome::Warn
    } else {
        Outcome::Pass
    };
    ScenarioReport::finished(
        scenario,
        outcome,
        steps,
        run.transcript.tail(30),
        started.elapsed(),
    )
}

fn interp_text(template: &str, vars: &Vars) -> Result<String, Failure> {
    interp::text(template, vars).map_err(|e| Failure::new(e.to_string()))
}

fn has_body_checks(step: &Step) -> bool {
    let e = &step.expect;
    e.body.is_some()
        || e.json.is_some()
        || e.response.is_some()
        || e.sse.is_some()
        || !e.sse_none.is_empty()
        || e.sse_end.is_some()
        || e.comment
        || step
            .captures
            .iter()
            .any(|(_, c)| !matches!(c.source, crate::scenario::CaptureSource::Header(_)))
}

#[cfg(test)]
mod tests;
