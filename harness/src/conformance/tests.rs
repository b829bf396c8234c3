use super::*;
use crate::report::{BaselineMark, Outcome};
use std::path::Path;

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
