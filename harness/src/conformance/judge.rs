//! Judging: the suite's checks turned into harness scenario reports, with the suite's own rules
//! (warnings, `not_scored`, the expected-failures baseline) and failing entries for what the suite
//! itself got wrong.

use super::process::{log_tail, SuiteRun};
use super::results::{result_files, Check};
use super::{yaml, ConformanceConfig, Suite};
use crate::report::{BaselineMark, Outcome, ScenarioReport, StepOutcome, StepReport};
use crate::runner::Failure;
use crate::scenario::{Level, Profile};
use anyhow::{bail, Context};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

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

/// Judges one suite's output directory and process result.
pub(super) fn judge_suite(
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
