//! The runner end to end against the scripted server: captures, streams, SSE expectations,
//! identities, skips, outcomes, the baseline and the three report formats.

use crate::{data, server};
use harness::report::BaselineMark;
use harness::{Baseline, Outcome, Profile, Report, RunConfig};
use std::collections::BTreeMap;

const TOKEN: &str = "token-a-secret";

async fn run_dir(profile: Profile, token: Option<&str>) -> (Report, String) {
    let target = server::start().await;
    let mut config = RunConfig::new(url::Url::parse(&target).unwrap(), profile);
    config.min_interval = std::time::Duration::ZERO;
    config.paced_interval = std::time::Duration::ZERO;
    config.token = token.map(str::to_string);
    let scenarios = harness::load_dir(&data("run")).unwrap();
    (harness::run(&config, &scenarios).await, target)
}

fn outcomes(report: &Report) -> BTreeMap<String, Outcome> {
    report
        .scenarios
        .iter()
        .map(|s| (s.id.clone(), s.outcome))
        .collect()
}

#[tokio::test]
async fn outcomes_per_scenario_and_exit_code() {
    let (report, _) = run_dir(Profile::Local, Some(TOKEN)).await;
    let got = outcomes(&report);
    let want: BTreeMap<String, Outcome> = [
        ("concurrent", Outcome::Pass),
        ("get-stream", Outcome::Pass),
        ("lifecycle", Outcome::Pass),
        ("local-only", Outcome::Pass),
        ("needs-b", Outcome::Skip),
        ("needs-token", Outcome::Pass),
        ("needs-var", Outcome::Skip),
        ("progress", Outcome::Pass),
        ("retry-after", Outcome::Pass),
        ("sampling", Outcome::Pass),
        ("should-warn", Outcome::Warn),
        ("until-429", Outcome::Warn),
        ("wrong-status", Outcome::Fail),
        ("wrong-text", Outcome::Fail),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(got, want, "{}", report.to_human());
    assert_eq!(report.exit_code(), 1);
    let skip = |id: &str| {
        report
            .scenarios
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| s.skip_reason.clone())
            .unwrap()
    };
    assert_eq!(skip("needs-b"), "needs a second token (--second-token-env)");
    assert_eq!(skip("needs-var"), "needs --var ttl_wait");
    let wrong_status = report
        .scenarios
        .iter()
        .find(|s| s.id == "wrong-status")
        .unwrap();
    let steps: Vec<String> = wrong_status
        .steps
        .iter()
        .map(|s| format!("{:?}", s.outcome))
        .collect();
    assert_eq!(steps, ["Fail", "Skipped", "Pass"]);
    let retry = report
        .scenarios
        .iter()
        .find(|s| s.id == "retry-after")
        .unwrap();
    assert!(
        retry
            .transcript
            .iter()
            .any(|l| l.starts_with("# 429: waiting 0ns")),
        "{:#?}",
        retry.transcript
    );
    let until = report
        .scenarios
        .iter()
        .find(|s| s.id == "until-429")
        .unwrap();
    let failure = until.steps[3].failure.as_ref().unwrap();
    assert_eq!(
        failure.message,
        "status 429 not reached after 2 tries; last status 404"
    );
}

#[tokio::test]
async fn human_report_shows_the_mismatch_and_never_the_token() {
    let (report, target) = run_dir(Profile::Local, Some(TOKEN)).await;
    let data_dir = data("run").display().to_string();
    let human = report
        .to_human()
        .replace(&target, "<target>")
        .replace(&data_dir, "<data>");
    let date = regex::Regex::new(r"(?m)^(\s*< date: ).*$").unwrap();
    let human = date.replace_all(&human, "${1}<date>").into_owned();
    for text in [&human, &report.to_json(), &report.to_junit()] {
        assert!(!text.contains(TOKEN), "token leaked:\n{text}");
    }
    let json = report.to_json();
    assert!(json.contains("access_token=<redacted>"), "{json}");
    assert!(
        json.contains("authorization: Bearer <redacted>")
            || json.contains("Authorization: Bearer <redacted>")
    );
    insta::assert_snapshot!("human_report", human);
}

#[tokio::test]
async fn live_profile_skips_local_scenarios_and_auth_without_token() {
    let (report, _) = run_dir(Profile::Live, None).await;
    let got = outcomes(&report);
    assert_eq!(got["local-only"], Outcome::Skip);
    assert_eq!(got["needs-token"], Outcome::Skip);
    assert_eq!(got["sampling"], Outcome::Pass);
}

#[tokio::test]
async fn tag_filters_select_scenarios() {
    let target = server::start().await;
    let mut config = RunConfig::new(url::Url::parse(&target).unwrap(), Profile::Local);
    config.include_tags = vec!["sse".into()];
    config.exclude_tags = vec!["SHOULD".into()];
    let scenarios = harness::load_dir(&data("run")).unwrap();
    let report = harness::run(&config, &scenarios).await;
    let ids: Vec<&str> = report.scenarios.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["progress", "sampling"]);
    assert_eq!(report.exit_code(), 0);
}

#[tokio::test]
async fn baseline_marks_expected_and_stale() {
    let (mut report, _) = run_dir(Profile::Local, Some(TOKEN)).await;
    let baseline = Baseline::parse(
        "failing = [\"wrong-status\", \"wrong-text.toml\", \"gone\"]\n",
        "b.toml",
    )
    .unwrap();
    baseline.apply(&mut report);
    assert_eq!(report.exit_code(), 0, "{}", report.to_human());
    assert_eq!(report.unknown_baseline_entries, ["gone"]);
    let stale = Baseline::parse(
        "failing = [\"wrong-status\", \"wrong-text\", \"lifecycle\"]",
        "b",
    )
    .unwrap();
    stale.apply(&mut report);
    assert_eq!(report.exit_code(), 1);
    let lifecycle = report
        .scenarios
        .iter()
        .find(|s| s.id == "lifecycle")
        .unwrap();
    assert_eq!(lifecycle.baseline, Some(BaselineMark::Stale));
    assert!(report.to_human().contains("STALE lifecycle"));
    assert!(report.to_junit().contains("stale baseline entry"));
    report.strict = true;
    baseline.apply(&mut report);
    assert_eq!(
        report.exit_code(),
        1,
        "strict: the SHOULD warning fails the run"
    );
    let err = Baseline::parse("failing = [1]", "b.toml")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("b.toml:1:"), "{err}");
}

#[tokio::test]
async fn junit_and_json_reports() {
    let (report, target) = run_dir(Profile::Local, Some(TOKEN)).await;
    let junit = report.to_junit();
    assert!(junit
        .contains("<testsuites name=\"mcp-harness\" tests=\"14\" failures=\"2\" skipped=\"2\""));
    assert!(junit.contains("<testcase classname=\"scenarios\" name=\"wrong-status\""));
    assert!(junit.contains("<skipped message=\"needs --var ttl_wait\"/>"));
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["exit_code"], 1);
    assert_eq!(json["counts"]["failed"], 2);
    assert_eq!(json["target"], target);
    let wrong_text = json["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "wrong-text")
        .unwrap();
    assert_eq!(
        wrong_text["steps"][2]["failure"]["mismatch"]["path"],
        "$.result.content[0].text"
    );
}
