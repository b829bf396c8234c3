//! The shipped `scenarios/modern/` against the in-process modern server (`modern.rs`): a correct
//! modern-only and a correct dual-era server pass every scenario that applies to them, and each
//! planted single deviation makes its scenario fail (or warn, for a SHOULD).

use crate::modern::{self, Deviation, Options, TOKEN};
use harness::eras::Eras;
use harness::{Outcome, Profile, Report, RunConfig};
use std::path::PathBuf;

fn modern_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios/modern")
}

fn config(target: &str) -> RunConfig {
    let mut config = RunConfig::new(url::Url::parse(target).unwrap(), Profile::Local);
    config.token = Some(TOKEN.to_string());
    config.timeout_default();
    config
}

trait Quick {
    fn timeout_default(&mut self);
}

impl Quick for RunConfig {
    fn timeout_default(&mut self) {
        self.default_timeout = std::time::Duration::from_secs(5);
    }
}

async fn run_all(options: Options) -> Report {
    let target = modern::start(options).await;
    let config = config(&target);
    let scenarios = harness::load_dir(&modern_dir()).unwrap();
    harness::run(&config, &scenarios).await
}

fn not_passing(report: &Report) -> Vec<String> {
    report
        .scenarios
        .iter()
        .filter(|s| !matches!(s.outcome, Outcome::Pass | Outcome::Skip))
        .map(|s| s.to_human())
        .collect()
}

fn skipped(report: &Report) -> Vec<(String, String)> {
    report
        .scenarios
        .iter()
        .filter(|s| s.outcome == Outcome::Skip)
        .map(|s| (s.id.clone(), s.skip_reason.clone().unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_modern_only_server_passes_every_modern_scenario() {
    let report = run_all(Options {
        dual_era: false,
        auth: true,
        deviation: Deviation::None,
    })
    .await;
    assert!(report.scenarios.len() >= 30, "{}", report.scenarios.len());
    assert_eq!(
        not_passing(&report),
        Vec::<String>::new(),
        "{}",
        report.to_human()
    );
    assert_eq!(report.eras, ["2026-07-28"]);
    let skips = skipped(&report);
    assert!(!skips.is_empty());
    for (id, reason) in &skips {
        assert!(id.contains("dual-era"), "{id}: {reason}");
        assert_eq!(
            reason,
            "dual-era scenario; the target does not serve the legacy era (eras: 2026-07-28)"
        );
    }
    assert_eq!(report.exit_code(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_correct_dual_era_server_passes_every_modern_scenario() {
    let report = run_all(Options {
        dual_era: true,
        auth: true,
        deviation: Deviation::None,
    })
    .await;
    assert_eq!(
        not_passing(&report),
        Vec::<String>::new(),
        "{}",
        report.to_human()
    );
    assert_eq!(report.eras, ["2025-11-25", "2026-07-28"]);
    let skips: Vec<String> = skipped(&report).into_iter().map(|(id, _)| id).collect();
    assert_eq!(
        skips,
        [
            "get-delete-405-modern-only",
            "initialize-modern-only-names-versions"
        ]
    );
}

/// One deviation, the scenario that must catch it, and the outcome it must give.
const CASES: &[(Deviation, bool, &str, Outcome)] = &[
    (
        Deviation::MetaNotChecked,
        false,
        "meta-missing-client-capabilities-32602",
        Outcome::Fail,
    ),
    (
        Deviation::ProtocolHeaderNotChecked,
        false,
        "header-protocol-version-missing-32020",
        Outcome::Fail,
    ),
    (
        Deviation::ProtocolHeaderNotChecked,
        false,
        "header-protocol-version-mismatch-32020",
        Outcome::Fail,
    ),
    (
        Deviation::MethodHeaderNotChecked,
        false,
        "header-method-missing-32020",
        Outcome::Fail,
    ),
    (
        Deviation::MethodHeaderNotChecked,
        false,
        "header-method-mismatch-32020",
        Outcome::Fail,
    ),
    (
        Deviation::NameHeaderNotChecked,
        false,
        "header-name-missing-32020",
        Outcome::Fail,
    ),
    (
        Deviation::NameHeaderNotChecked,
        false,
        "header-name-mismatch-32020",
        Outcome::Fail,
    ),
    (
        Deviation::ValuesCaseInsensitive,
        false,
        "header-values-case-sensitive-32020",
        Outcome::Fail,
    ),
    (
        Deviation::NoBase64Decode,
        false,
        "header-name-base64-accepted",
        Outcome::Fail,
    ),
    (
        Deviation::UnsupportedVersionNoData,
        false,
        "version-unsupported-32022",
        Outcome::Fail,
    ),
    (
        Deviation::PingServed,
        false,
        "removed-ping-404",
        Outcome::Fail,
    ),
    (
        Deviation::UnknownMethod200,
        false,
        "unknown-method-404",
        Outcome::Fail,
    ),
    (
        Deviation::UnknownMethod200,
        false,
        "removed-logging-set-level-404",
        Outcome::Fail,
    ),
    (
        Deviation::MintsSessionId,
        false,
        "no-session-id-on-answers",
        Outcome::Fail,
    ),
    (
        Deviation::StraySessionRejected,
        false,
        "stray-session-id-ignored",
        Outcome::Fail,
    ),
    (
        Deviation::NoResultType,
        false,
        "result-type-on-every-result",
        Outcome::Fail,
    ),
    (
        Deviation::NoResultType,
        false,
        "result-type-fixture-calls",
        Outcome::Fail,
    ),
    (
        Deviation::NoCachingHints,
        false,
        "caching-hints-tools-list",
        Outcome::Fail,
    ),
    (
        Deviation::NoCachingHints,
        false,
        "caching-hints-list-methods",
        Outcome::Fail,
    ),
    (
        Deviation::NoCachingHints,
        false,
        "caching-hints-resources-read",
        Outcome::Fail,
    ),
    (
        Deviation::NoCachingHints,
        false,
        "server-discover-caching-hints",
        Outcome::Fail,
    ),
    (
        Deviation::DiscoverWithoutVersions,
        false,
        "server-discover-shape",
        Outcome::Fail,
    ),
    (
        Deviation::Notification200,
        false,
        "notification-202",
        Outcome::Fail,
    ),
    (
        Deviation::GetServed,
        false,
        "get-delete-405-modern-only",
        Outcome::Warn,
    ),
    (
        Deviation::GetServed,
        true,
        "get-delete-dual-era",
        Outcome::Warn,
    ),
    (
        Deviation::StateNotVerified,
        false,
        "mrtr-tampered-request-state",
        Outcome::Fail,
    ),
    (
        Deviation::MissingInputsComplete,
        false,
        "mrtr-missing-input-responses",
        Outcome::Fail,
    ),
    (
        Deviation::ListenNoAck,
        false,
        "subscriptions-listen",
        Outcome::Fail,
    ),
    (
        Deviation::NoCapabilityCheck,
        false,
        "missing-capability-32021",
        Outcome::Fail,
    ),
    (
        Deviation::OriginNotChecked,
        false,
        "origin-evil-403",
        Outcome::Fail,
    ),
    (Deviation::NoAuth, false, "auth-no-token-401", Outcome::Fail),
    (
        Deviation::NoAuth,
        false,
        "auth-bad-token-401",
        Outcome::Fail,
    ),
    (
        Deviation::LogsWithoutLevel,
        false,
        "logging-only-with-log-level",
        Outcome::Fail,
    ),
    (
        Deviation::LogsWithoutLevel,
        true,
        "dual-era-legacy-log-level-invisible-to-modern",
        Outcome::Fail,
    ),
    (
        Deviation::InitializeServed,
        false,
        "initialize-modern-only-names-versions",
        Outcome::Fail,
    ),
    (
        Deviation::LegacyAnswersLeak,
        true,
        "dual-era-session-invisible-to-modern",
        Outcome::Warn,
    ),
    (
        Deviation::WedgedAfterCancel,
        false,
        "cancel-by-closing-stream",
        Outcome::Fail,
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_single_deviation_fails_its_scenario() {
    let mut wrong = Vec::new();
    for &(deviation, dual_era, id, want) in CASES {
        let target = modern::start(Options {
            dual_era,
            auth: true,
            deviation,
        })
        .await;
        let mut config = config(&target);
        // The eras are known: no probes, so each case sends only its scenario's requests.
        config.eras = Some(if dual_era {
            Eras::known(Some("2025-11-25"), &["2026-07-28"])
        } else {
            Eras::known(None, &["2026-07-28"])
        });
        let root = modern_dir();
        let path = root.join(format!("{id}.toml"));
        let report = harness::run_file(&config, &root, &path).await.unwrap();
        if report.outcome != want {
            wrong.push(format!(
                "{deviation:?} -> {id}: expected {want:?}, got {:?}\n{}",
                report.outcome,
                report.to_human()
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_only_target_skips_the_modern_scenarios_unless_the_era_is_required() {
    // The scripted legacy server of the other tests serves no 2026-07-28.
    let target = crate::server::start().await;
    let mut config = RunConfig::new(url::Url::parse(&target).unwrap(), Profile::Local);
    config.token = Some(TOKEN.to_string());
    let scenarios = harness::load_dir(&modern_dir()).unwrap();
    let report = harness::run(&config, &scenarios).await;
    assert_eq!(report.eras, ["2025-11-25"]);
    assert!(
        report.scenarios.iter().all(|s| s.outcome == Outcome::Skip),
        "{}",
        report.to_human()
    );
    let reason = report.scenarios[0].skip_reason.clone().unwrap();
    assert!(
        reason.contains("does not serve 2026-07-28 (eras: 2025-11-25)"),
        "{reason}"
    );
    assert_eq!(report.exit_code(), 0);
    assert!(report
        .to_human()
        .starts_with("eras: 2025-11-25 (server/discover: not served (HTTP 400"));

    config.require_eras = vec!["2026-07-28".into()];
    let report = harness::run(&config, &scenarios).await;
    assert_eq!(report.missing_required_eras, ["2026-07-28"]);
    assert_eq!(report.exit_code(), 1);
    let failed = report
        .scenarios
        .iter()
        .filter(|s| s.outcome == Outcome::Fail)
        .count();
    assert_eq!(
        failed,
        report.scenarios.len(),
        "every modern scenario fails"
    );
    let message = &report.scenarios[0].steps[0]
        .failure
        .as_ref()
        .unwrap()
        .message;
    assert!(
        message.starts_with("--require-era 2026-07-28: the target does not serve 2026-07-28"),
        "{message}"
    );
    assert!(report
        .to_junit()
        .contains("name=\"eras\" value=\"2025-11-25\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_optional_capture_that_finds_nothing_leaves_its_default_header_out() {
    let target = modern::start(Options {
        dual_era: false,
        auth: false,
        deviation: Deviation::None,
    })
    .await;
    let text = |optional: bool| {
        format!(
            r#"
tags = ["2026-07-28"]
[defaults]
modern = true
headers = {{ "Mcp-Session-Id" = "${{session}}" }}
[[step]]
send.json = '{{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {{}}}}'
capture.session = {{ header = "Mcp-Session-Id", optional = {optional} }}
[[step]]
send.json = '{{"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {{}}}}'
expect.status = 200
"#
        )
    };
    let mut config = config(&target);
    config.eras = Some(Eras::known(None, &["2026-07-28"]));
    let path = std::path::Path::new("x.toml");
    let optional = harness::scenario::parse_scenario(&text(true), path, "x".into()).unwrap();
    let report = harness::run_scenario(&config, &optional).await;
    assert_eq!(report.outcome, Outcome::Pass, "{}", report.to_human());
    assert!(
        !report
            .transcript
            .iter()
            .any(|l| l.to_ascii_lowercase().starts_with("> mcp-session-id")),
        "{:#?}",
        report.transcript
    );
    let required = harness::scenario::parse_scenario(&text(false), path, "x".into()).unwrap();
    let report = harness::run_scenario(&config, &required).await;
    assert_eq!(report.outcome, Outcome::Fail, "{}", report.to_human());
}
