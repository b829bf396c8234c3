//! The `mcp-harness` binary: exit codes 0/1/2, reports on disk, discovery snapshots.

use crate::{data, server};
use std::process::Output;

fn harness_bin(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_mcp-harness"));
    command.args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

async fn harness_async(args: Vec<String>, env: Vec<(String, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        harness_bin(&args, &env)
    })
    .await
    .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-harness-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread")]
async fn run_exit_codes_and_report_files() {
    let target = server::start().await;
    let junit = temp("junit.xml");
    let json = temp("report.json");
    let dir = data("run").display().to_string();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "run",
            "--target",
            &target,
            "--profile",
            "local",
            "--token-env",
            "IT_TOKEN",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect()
    };
    let env = vec![("IT_TOKEN".to_string(), "token-a-secret".to_string())];
    let junit_arg = junit.display().to_string();
    let json_arg = json.display().to_string();
    let output = harness_async(
        args(&["--junit", &junit_arg, "--json", &json_arg, &dir]),
        env.clone(),
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("mcp-harness: 10 passed, 2 failed, 2 skipped"),
        "{stdout}"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("[1/14] run/concurrent"));
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .starts_with("<?xml"));
    assert!(std::fs::read_to_string(&json)
        .unwrap()
        .contains("\"exit_code\": 1"));

    let output = harness_async(
        args(&["--tag", "sse", "--skip-tag", "SHOULD", "-q", &dir]),
        env.clone(),
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    let baseline = temp("baseline.toml");
    std::fs::write(
        &baseline,
        "failing = [\"run/wrong-status\", \"run/wrong-text\"]\n",
    )
    .unwrap();
    let baseline_arg = baseline.display().to_string();
    let output = harness_async(
        args(&["--baseline", &baseline_arg, "-q", &dir]),
        env.clone(),
    )
    .await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let output = harness_async(
        args(&["--baseline", &baseline_arg, "--strict", "-q", &dir]),
        env,
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
}

#[test]
fn configuration_errors_exit_2() {
    let bad = data("bad").display().to_string();
    let output = harness_bin(&["run", "--target", "http://127.0.0.1:9/mcp", &bad], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken-json.toml:4:"), "{stderr}");
    assert!(stderr.contains("send.json is not valid JSON"), "{stderr}");

    let run = data("run").display().to_string();
    let output = harness_bin(
        &[
            "run",
            "--target",
            "http://127.0.0.1:9/mcp",
            "--token-env",
            "IT_SURELY_UNSET_VAR",
            &run,
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("IT_SURELY_UNSET_VAR"));

    let output = harness_bin(&["run", "--target", "not a url", &run], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let output = harness_bin(
        &[
            "run",
            "--target",
            "http://127.0.0.1:9/mcp",
            "--tag",
            "no-such-tag",
            &run,
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("no scenario matches"));
    let output = harness_bin(&["run", "--bogus-flag"], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    let output = harness_bin(
        &[
            "run",
            "--target",
            "http://127.0.0.1:9/mcp",
            "/nonexistent/dir",
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
}

#[tokio::test(flavor = "multi_thread")]
async fn discovery_snapshot_and_check() {
    let target = server::start().await;
    let base = ["discovery", "--target", &target, "--interval-ms", "0"];
    let owned = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    let output = harness_async(owned(&[]), Vec::new()).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let snapshot = String::from_utf8_lossy(&output.stdout).into_owned();
    insta::assert_snapshot!("discovery", snapshot);

    let file = temp("discovery.txt");
    std::fs::write(&file, &snapshot).unwrap();
    let file_arg = file.display().to_string();
    let output = harness_async(owned(&["--check", &file_arg]), Vec::new()).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    std::fs::write(&file, snapshot.replace("auth.example", "other.example")).unwrap();
    let output = harness_async(owned(&["--check", &file_arg]), Vec::new()).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("-    \"https://other.example\""),
        "{stdout}"
    );
    assert!(stdout.contains("+    \"https://auth.example\""), "{stdout}");
}

/// The command-line contract with assert_cmd: `--help` on every level exits 0 and names the flags
/// that the CI example (`.github/workflows/certify-deployment.yml`) uses; usage mistakes exit 2 and
/// name the flag at fault.
#[test]
fn help_and_usage_errors_with_assert_cmd() {
    use assert_cmd::cargo::cargo_bin_cmd;
    use predicates::prelude::*;

    cargo_bin_cmd!("mcp-harness")
        .arg("--help")
        .assert()
        .success()
        .stdout(
            predicate::str::contains("run")
                .and(predicate::str::contains("discovery"))
                .and(predicate::str::contains("list")),
        );
    cargo_bin_cmd!("mcp-harness")
        .args(["run", "--help"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("--target")
                .and(predicate::str::contains("--token-env"))
                .and(predicate::str::contains("--profile"))
                .and(predicate::str::contains("--junit"))
                .and(predicate::str::contains("--json")),
        );
    cargo_bin_cmd!("mcp-harness")
        .args(["discovery", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--target").and(predicate::str::contains("--check")));

    // No subcommand, an unknown one, a missing required flag: clap's usage errors, exit 2.
    cargo_bin_cmd!("mcp-harness")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Usage"));
    cargo_bin_cmd!("mcp-harness")
        .arg("certify")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("certify"));
    cargo_bin_cmd!("mcp-harness")
        .arg("run")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--target"));
    // Refused settings name the setting: a non-HTTP target, an unknown profile.
    cargo_bin_cmd!("mcp-harness")
        .args(["discovery", "--target", "ftp://127.0.0.1/mcp"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--target"));
    cargo_bin_cmd!("mcp-harness")
        .args([
            "run",
            "--target",
            "http://127.0.0.1:9/mcp",
            "--profile",
            "prod",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--profile"));
    // A missing snapshot file for --check is named before anything is sent.
    cargo_bin_cmd!("mcp-harness")
        .args([
            "discovery",
            "--target",
            "http://127.0.0.1:9/mcp",
            "--check",
            "/nonexistent/discovery.txt",
        ])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("/nonexistent/discovery.txt"));
}

#[tokio::test(flavor = "multi_thread")]
async fn require_era_fails_a_legacy_target_and_the_era_line_is_in_every_report() {
    let target = server::start().await;
    let modern = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/modern")
        .display()
        .to_string();
    let junit = temp("eras.junit.xml").display().to_string();
    let json = temp("eras.json").display().to_string();
    let env = vec![("IT_TOKEN".to_string(), "token-a-secret".to_string())];
    let run = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "run",
            "--target",
            &target,
            "--profile",
            "local",
            "--token-env",
            "IT_TOKEN",
            "-q",
            "--junit",
            &junit,
            "--json",
            &json,
        ];
        args.extend_from_slice(extra);
        args.push(&modern);
        args.iter().map(|s| s.to_string()).collect()
    };
    let output = harness_async(run(&[]), env.clone()).await;
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.starts_with("eras: 2025-11-25 ("), "{stdout}");
    assert!(
        stdout.contains("SKIP  modern/server-discover-shape: the target does not serve 2026-07-28"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["eras"], serde_json::json!(["2025-11-25"]));
    assert!(std::fs::read_to_string(&junit)
        .unwrap()
        .contains("<property name=\"eras\" value=\"2025-11-25\"/>"));

    let output = harness_async(run(&["--require-era", "2026-07-28"]), env.clone()).await;
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("FAIL  --require-era 2026-07-28: the target does not serve it"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(
        report["missing_required_eras"],
        serde_json::json!(["2026-07-28"])
    );

    let output = harness_async(run(&["--require-era", "modern"]), env).await;
    assert_eq!(output.status.code(), Some(2), "{}", text(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--require-era \"modern\""));
}
