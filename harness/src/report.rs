//! Run results and their three renderings: human text, JUnit XML and JSON.

use crate::runner::{Failure, RunConfig};
use crate::scenario::{Level, Profile, Scenario, Step};
use serde::Serialize;
use std::fmt::{self, Write as _};
use std::time::Duration;

/// A scenario's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every check passed.
    Pass,
    /// A MUST check failed.
    Fail,
    /// Only SHOULD/MAY checks failed.
    Warn,
    /// Not run (see the reason).
    Skip,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::Warn => "WARN",
            Outcome::Skip => "SKIP",
        })
    }
}

/// A step's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StepOutcome {
    /// Passed.
    Pass,
    /// Failed at MUST level.
    Fail,
    /// Failed at SHOULD/MAY level, or a cleanup step failed after a failure.
    Warn,
    /// Not run after an earlier failure.
    Skipped,
}

/// How the strict baseline judged a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineMark {
    /// Listed and failed: does not fail the run.
    ExpectedFailure,
    /// Listed but passed (or only warned): fails the run until the entry is removed.
    Stale,
}

/// One step's result.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    /// 1-based index.
    pub index: usize,
    /// Title.
    pub name: String,
    /// `file:line`.
    pub location: String,
    /// Level of its checks.
    pub level: Level,
    /// Result.
    pub outcome: StepOutcome,
    /// Why it failed.
    pub failure: Option<Failure>,
}

impl StepReport {
    pub(crate) fn new(step: &Step, outcome: StepOutcome, failure: Option<Failure>) -> StepReport {
        StepReport {
            index: step.index,
            name: step.name.clone(),
            location: step.location.clone(),
            level: step.level,
            outcome,
            failure,
        }
    }
}

/// One scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// Scenario id (path without `.toml`).
    pub id: String,
    /// Title.
    pub name: String,
    /// Source file.
    pub path: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Spec references.
    pub spec: Vec<String>,
    /// Default level.
    pub level: Level,
    /// Profile.
    pub profile: Profile,
    /// Result.
    pub outcome: Outcome,
    /// Why it was skipped.
    pub skip_reason: Option<String>,
    /// Step results.
    pub steps: Vec<StepReport>,
    /// Last transcript lines (tokens redacted).
    pub transcript: Vec<String>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Strict baseline verdict, when a baseline was applied.
    pub baseline: Option<BaselineMark>,
}

impl ScenarioReport {
    fn base(scenario: &Scenario, outcome: Outcome) -> ScenarioReport {
        ScenarioReport {
            id: scenario.id.clone(),
            name: scenario.name.clone(),
            path: scenario.path.display().to_string(),
            tags: scenario.tags.clone(),
            spec: scenario.spec.clone(),
            level: scenario.level,
            profile: scenario.profile,
            outcome,
            skip_reason: None,
            steps: Vec::new(),
            transcript: Vec::new(),
            duration_ms: 0,
            baseline: None,
        }
    }

    pub(crate) fn skipped(scenario: &Scenario, reason: String) -> ScenarioReport {
        ScenarioReport {
            skip_reason: Some(reason),
            ..ScenarioReport::base(scenario, Outcome::Skip)
        }
    }

    pub(crate) fn errored(scenario: &Scenario, message: String) -> ScenarioReport {
        let mut report = ScenarioReport::base(scenario, Outcome::Fail);
        report.steps.push(StepReport {
            index: 0,
            name: "harness".into(),
            location: report.path.clone(),
            level: Level::Must,
            outcome: StepOutcome::Fail,
            failure: Some(Failure::new(message)),
        });
        report
    }

    pub(crate) fn finished(
        scenario: &Scenario,
        outcome: Outcome,
        steps: Vec<StepReport>,
        transcript: Vec<String>,
        elapsed: Duration,
    ) -> ScenarioReport {
        ScenarioReport {
            steps,
            transcript,
            duration_ms: elapsed.as_millis() as u64,
            ..ScenarioReport::base(scenario, outcome)
        }
    }

    /// True when the scenario passed (a warning counts as passed unless `strict`), or was skipped;
    /// ignores the baseline. For one-test-per-file runners.
    pub fn passed(&self, strict: bool) -> bool {
        match self.outcome {
            Outcome::Pass | Outcome::Skip => true,
            Outcome::Warn => !strict,
            Outcome::Fail => false,
        }
    }

    /// The human report block of this scenario: its outcome line, the failing and warning
    /// steps with the first mismatch, and for a failure the last transcript lines.
    pub fn to_human(&self) -> String {
        let mut out = String::new();
        let s = self;
        let label = match s.baseline {
            Some(BaselineMark::ExpectedFailure) => "XFAIL".to_string(),
            Some(BaselineMark::Stale) => "STALE".to_string(),
            None => s.outcome.to_string(),
        };
        let _ = write!(out, "{label:<5} {}", s.id);
        if let Some(reason) = &s.skip_reason {
            let _ = write!(out, ": {reason}");
        }
        out.push('\n');
        if s.baseline == Some(BaselineMark::Stale) {
            out.push_str("      listed in the baseline but did not fail: remove the entry\n");
        }
        for step in &s.steps {
            if !matches!(step.outcome, StepOutcome::Fail | StepOutcome::Warn) {
                continue;
            }
            let _ = writeln!(
                out,
                "      step {} {:?} [{}] ({})",
                step.index, step.name, step.level, step.location
            );
            if let Some(failure) = &step.failure {
                let _ = writeln!(out, "        {}", failure.message);
                if let Some(m) = &failure.mismatch {
                    let _ = writeln!(out, "        at {}", m.path);
                    let _ = writeln!(out, "          expected: {}", m.expected);
                    let _ = writeln!(out, "          actual:   {}", m.actual);
                }
            }
        }
        if s.outcome == Outcome::Fail && s.baseline.is_none() && !s.transcript.is_empty() {
            out.push_str("      transcript (last lines):\n");
            for line in s.transcript.iter().rev().take(20).rev() {
                let _ = writeln!(out, "        {line}");
            }
        }
        out
    }

    /// The first MUST-level failing step.
    pub fn first_failure(&self) -> Option<&StepReport> {
        self.steps.iter().find(|s| s.outcome == StepOutcome::Fail)
    }

    /// True when this scenario makes the run fail (an unexpected failure or a stale entry).
    pub fn fails_run(&self) -> bool {
        match self.baseline {
            Some(BaselineMark::ExpectedFailure) => false,
            Some(BaselineMark::Stale) => true,
            None => self.outcome == Outcome::Fail,
        }
    }
}

/// Counts by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Passed.
    pub passed: usize,
    /// Failed and not expected to.
    pub failed: usize,
    /// Warned.
    pub warned: usize,
    /// Skipped.
    pub skipped: usize,
    /// Failed as the baseline expects.
    pub expected_failures: usize,
    /// Listed in the baseline but passing.
    pub stale: usize,
}

/// A whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The target URL.
    pub target: String,
    /// The profile.
    pub profile: Profile,
    /// Scenario results, in run order.
    pub scenarios: Vec<ScenarioReport>,
    /// Baseline entries that name no scenario of this run (informational).
    pub unknown_baseline_entries: Vec<String>,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Warnings fail the run too (`--strict`).
    pub strict: bool,
    /// The protocol versions the target serves, as discovered before the scenarios (empty when
    /// no discovery ran or nothing was found).
    pub eras: Vec<String>,
    /// The era probes in detail.
    pub era_discovery: Option<crate::eras::Eras>,
    /// `--require-era` values the target does not serve: each fails the run.
    pub missing_required_eras: Vec<String>,
}

impl Report {
    pub(crate) fn new(
        config: &RunConfig,
        scenarios: Vec<ScenarioReport>,
        elapsed: Duration,
    ) -> Report {
        Report {
            target: config.target.to_string(),
            profile: config.profile,
            scenarios,
            unknown_baseline_entries: Vec::new(),
            duration_ms: elapsed.as_millis() as u64,
            strict: config.strict,
            eras: Vec::new(),
            era_discovery: None,
            missing_required_eras: Vec::new(),
        }
    }

    /// Counts by outcome, with the baseline applied.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for s in &self.scenarios {
            match (s.baseline, s.outcome) {
                (Some(BaselineMark::ExpectedFailure), _) => counts.expected_failures += 1,
                (Some(BaselineMark::Stale), _) => counts.stale += 1,
                (None, Outcome::Pass) => counts.passed += 1,
                (None, Outcome::Fail) => counts.failed += 1,
                (None, Outcome::Warn) => counts.warned += 1,
                (None, Outcome::Skip) => counts.skipped += 1,
            }
        }
        counts.failed += self.missing_required_eras.len();
        counts
    }

    /// 0 when every required check passed (after the baseline), 1 otherwise. With `strict`,
    /// an unlisted warning fails the run as well.
    pub fn exit_code(&self) -> i32 {
        let warned = |s: &ScenarioReport| s.baseline.is_none() && s.outcome == Outcome::Warn;
        i32::from(
            !self.missing_required_eras.is_empty()
                || self
                    .scenarios
                    .iter()
                    .any(|s| s.fails_run() || (self.strict && warned(s))),
        )
    }

    /// The human report.
    pub fn to_human(&self) -> String {
        let mut out = String::new();
        if let Some(eras) = &self.era_discovery {
            let _ = writeln!(out, "{}", eras.line());
        }
        for era in &self.missing_required_eras {
            let _ = writeln!(
                out,
                "FAIL  --require-era {era}: the target does not serve it"
            );
        }
        for s in &self.scenarios {
            out.push_str(&s.to_human());
        }
        for entry in &self.unknown_baseline_entries {
            let _ = writeln!(
                out,
                "NOTE  baseline entry {entry:?} names no scenario of this run"
            );
        }
        let c = self.counts();
        out.push('\n');
        if c.warned + c.expected_failures + c.stale > 0 {
            let _ = writeln!(
                out,
                "{} warned, {} expected failures, {} stale baseline entries",
                c.warned, c.expected_failures, c.stale
            );
        }
        let _ = writeln!(
            out,
            "mcp-harness: {} passed, {} failed, {} skipped",
            c.passed + c.warned,
            c.failed + c.stale,
            c.skipped
        );
        out
    }

    /// JUnit XML (one testsuite; one testcase per scenario).
    pub fn to_junit(&self) -> String {
        let c = self.counts();
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let tests = self.scenarios.len() + self.missing_required_eras.len();
        let failures = c.failed + c.stale;
        let time = self.duration_ms as f64 / 1000.0;
        let _ = writeln!(
            out,
            "<testsuites name=\"mcp-harness\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{}\" time=\"{time:.3}\">",
            c.skipped
        );
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{}\" time=\"{time:.3}\">",
            xml(&self.target),
            c.skipped
        );
        if let Some(eras) = &self.era_discovery {
            out.push_str("    <properties>\n");
            let _ = writeln!(
                out,
                "      <property name=\"eras\" value=\"{}\"/>",
                xml(&eras.served.join(","))
            );
            for probe in &eras.probes {
                let _ = writeln!(
                    out,
                    "      <property name=\"era-probe {}\" value=\"{}\"/>",
                    xml(&probe.request),
                    xml(&probe.summary)
                );
            }
            out.push_str("    </properties>\n");
        }
        for era in &self.missing_required_eras {
            let _ = writeln!(
                out,
                "    <testcase classname=\"eras\" name=\"require-era {}\" time=\"0.000\">\n      <failure message=\"{}\"/>\n    </testcase>",
                xml(era),
                xml(&format!("--require-era {era}: the target does not serve it"))
            );
        }
        for s in &self.scenarios {
            let classname = s.id.rsplit_once('/').map_or("scenarios", |(dir, _)| dir);
            let _ = write!(
                out,
                "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\"",
                xml(classname),
                xml(&s.id),
                s.duration_ms as f64 / 1000.0
            );
            let mut body = String::new();
            if let Some(reason) = &s.skip_reason {
                let _ = writeln!(body, "      <skipped message=\"{}\"/>", xml(reason));
            }
            if s.fails_run() {
                let (message, detail) = match (s.baseline, s.first_failure()) {
                    (Some(BaselineMark::Stale), _) => (
                        "stale baseline entry: the scenario did not fail".to_string(),
                        String::new(),
                    ),
                    (_, Some(step)) => (
                        format!(
                            "step {} {:?}: {}",
                            step.index,
                            step.name,
                            step.failure
                                .as_ref()
                                .map_or(String::new(), |f| f.to_string())
                        ),
                        s.transcript.join("\n"),
                    ),
                    _ => ("failed".to_string(), String::new()),
                };
                let _ = writeln!(
                    body,
                    "      <failure message=\"{}\">{}</failure>",
                    xml(&message),
                    xml(&detail)
                );
            }
            let warnings: Vec<String> = s
                .steps
                .iter()
                .filter(|st| st.outcome == StepOutcome::Warn)
                .map(|st| {
                    format!(
                        "WARN step {} {:?} [{}]: {}",
                        st.index,
                        st.name,
                        st.level,
                        st.failure.as_ref().map_or(String::new(), |f| f.to_string())
                    )
                })
                .collect();
            let mut notes = warnings;
            if s.baseline == Some(BaselineMark::ExpectedFailure) {
                notes.push("expected failure (listed in the baseline)".to_string());
            }
            if !notes.is_empty() {
                let _ = writeln!(
                    body,
                    "      <system-out>{}</system-out>",
                    xml(&notes.join("\n"))
                );
            }
            if body.is_empty() {
                out.push_str("/>\n");
            } else {
                out.push_str(">\n");
                out.push_str(&body);
                out.push_str("    </testcase>\n");
            }
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }

    /// The JSON report.
    pub fn to_json(&self) -> String {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = value.as_object_mut() {
            map.insert(
                "counts".into(),
                serde_json::to_value(self.counts()).unwrap_or_default(),
            );
            map.insert("exit_code".into(), self.exit_code().into());
        }
        serde_json::to_string_pretty(&value).unwrap_or_default()
    }
}

fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' | '\t' => out.push(c),
            // Other control characters are not allowed in XML 1.0, not even as references.
            c if (c as u32) < 0x20 => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::Mismatch;
    use crate::scenario::parse_scenario;
    use std::path::Path;

    fn scenario(id: &str, tags: &str) -> Scenario {
        let text = format!("tags = [{tags}]\n[[step]]\nname = \"first\"\nsend.method = \"GET\"\n[[step]]\nname = \"second\"\nsend.method = \"GET\"\n");
        parse_scenario(&text, Path::new(&format!("scenarios/{id}.toml")), id.into()).unwrap()
    }

    fn sample() -> Report {
        let pass = scenario("core/ping", "\"MUST\"");
        let fail = scenario("session/unknown-404", "\"MUST\"");
        let warn = scenario("transport/put-405", "\"SHOULD\"");
        let skip = scenario("auth/no-token", "\"auth\"");
        let step_reports = |s: &Scenario, outcomes: [StepOutcome; 2], failure: Option<Failure>| {
            vec![
                StepReport::new(&s.steps[0], outcomes[0], failure),
                StepReport::new(&s.steps[1], outcomes[1], None),
            ]
        };
        let mismatch = Failure {
            message: "JSON-RPC response".into(),
            mismatch: Some(Mismatch {
                path: "$.error.code".into(),
                expected: "-32001".into(),
                actual: "-32000".into(),
            }),
        };
        let transcript = vec![
            "> POST http://127.0.0.1:1/mcp".to_string(),
            "> Authorization: Bearer <redacted>".to_string(),
            "< 400".to_string(),
            "< {\"error\":{\"code\":-32000},\"id\":null}".to_string(),
        ];
        let reports = vec![
            ScenarioReport::finished(
                &pass,
                Outcome::Pass,
                step_reports(&pass, [StepOutcome::Pass, StepOutcome::Pass], None),
                Vec::new(),
                Duration::ZERO,
            ),
            ScenarioReport::finished(
                &fail,
                Outcome::Fail,
                step_reports(
                    &fail,
                    [StepOutcome::Fail, StepOutcome::Skipped],
                    Some(mismatch),
                ),
                transcript,
                Duration::ZERO,
            ),
            ScenarioReport::finished(
                &warn,
                Outcome::Warn,
                step_reports(
                    &warn,
                    [StepOutcome::Warn, StepOutcome::Pass],
                    Some(Failure::new("status: expected 405, actual 404")),
                ),
                Vec::new(),
                Duration::ZERO,
            ),
            ScenarioReport::skipped(&skip, "needs a token (--token-env)".into()),
        ];
        let config = RunConfig::new(
            url::Url::parse("http://127.0.0.1:1/mcp").unwrap(),
            Profile::Local,
        );
        let mut report = Report::new(&config, reports, Duration::ZERO);
        let mut eras = crate::eras::Eras::known(Some("2025-11-25"), &[]);
        eras.probes.push(crate::eras::Probe {
            request: "server/discover".into(),
            status: Some(400),
            summary: "not served (HTTP 400, JSON-RPC error -32000 Bad Request)".into(),
        });
        report.eras = eras.served.clone();
        report.era_discovery = Some(eras);
        report
    }

    #[test]
    fn a_missing_required_era_fails_the_run_in_every_format() {
        let mut report = sample();
        report.scenarios.remove(1);
        assert_eq!(report.exit_code(), 0);
        report.missing_required_eras = vec!["2026-07-28".into()];
        assert_eq!(report.exit_code(), 1);
        assert_eq!(report.counts().failed, 1);
        assert!(report
            .to_human()
            .contains("FAIL  --require-era 2026-07-28: the target does not serve it"));
        let junit = report.to_junit();
        assert!(junit.contains("<testcase classname=\"eras\" name=\"require-era 2026-07-28\""));
        assert!(junit.contains("tests=\"4\" failures=\"1\""), "{junit}");
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["missing_required_eras"][0], "2026-07-28");
        assert_eq!(json["eras"][0], "2025-11-25");
    }

    #[test]
    fn human() {
        insta::assert_snapshot!(sample().to_human());
    }

    #[test]
    fn junit() {
        insta::assert_snapshot!(sample().to_junit());
    }

    #[test]
    fn json() {
        insta::assert_snapshot!(sample().to_json());
    }

    #[test]
    fn exit_codes_and_counts() {
        let mut report = sample();
        assert_eq!(report.exit_code(), 1);
        assert_eq!(
            report.counts(),
            Counts {
                passed: 1,
                failed: 1,
                warned: 1,
                skipped: 1,
                expected_failures: 0,
                stale: 0
            }
        );
        report.scenarios.remove(1);
        assert_eq!(report.exit_code(), 0);
        report.strict = true;
        assert_eq!(report.exit_code(), 1);
    }

    #[test]
    fn xml_escaping() {
        assert_eq!(xml("a<b>&\"c'\u{1}"), "a&lt;b&gt;&amp;&quot;c&apos;?");
    }
}
