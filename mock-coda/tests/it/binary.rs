use std::process::Stdio;

use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Spawns the binary and returns it with the first line it printed.
async fn spawn(args: &[&str]) -> (tokio::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mock-coda"))
        .args(args)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).await.unwrap();
    (child, line)
}

#[tokio::test]
async fn binary_prints_its_base_url_first_and_serves_whoami() {
    let (mut child, line) = spawn(&["--port", "0"]).await;
    let base = line.trim_end_matches('\n');
    let port = base
        .strip_prefix("http://127.0.0.1:")
        .and_then(|rest| rest.strip_suffix("/apis/v1"))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    assert!(port.parse::<u16>().unwrap() > 0);

    let http = reqwest::Client::new();
    let response = http
        .get(format!("{base}/whoami"))
        .bearer_auth("mock-token-operator-0003")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["loginId"], "operator@example.com");
    child.kill().await.unwrap();
}

#[tokio::test]
async fn token_flags_replace_the_default_table() {
    let (mut child, line) = spawn(&["--token", "mock-token-carol-0009=carol@example.com"]).await;
    let base = line.trim();
    let http = reqwest::Client::new();
    let carol = http
        .get(format!("{base}/whoami"))
        .bearer_auth("mock-token-carol-0009")
        .send()
        .await
        .unwrap();
    assert_eq!(carol.status(), StatusCode::OK);
    let alice = http
        .get(format!("{base}/whoami"))
        .bearer_auth("mock-token-alice-0001")
        .send()
        .await
        .unwrap();
    assert_eq!(alice.status(), StatusCode::UNAUTHORIZED);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn bad_flags_exit_with_an_error() {
    let output = Command::new(env!("CARGO_BIN_EXE_mock-coda"))
        .args(["--fixture", "/nonexistent/fixture.json"])
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read"));
}

#[tokio::test]
async fn startup_faults_apply_and_sigterm_stops_the_server_cleanly() {
    let fault = r#"{"route": "/apis/v1/whoami", "kind": "status", "status": 503, "times": 1}"#;
    let (mut child, line) = spawn(&["--fault", fault]).await;
    let base = line.trim();
    let http = reqwest::Client::new();
    let whoami = |token: &'static str| http.get(format!("{base}/whoami")).bearer_auth(token).send();
    assert_eq!(
        whoami("mock-token-bob-0002").await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(
        whoami("mock-token-bob-0002").await.unwrap().status(),
        StatusCode::OK
    );

    let pid = child.id().unwrap().to_string();
    let kill = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .expect("exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// The command-line contract with assert_cmd: `--help` and `--version` exit 0; clap's usage
/// errors exit 2; refused settings (a bad --token, --fault, --host, --fixture) exit 2 with the
/// flag named and nothing on stdout, so a parent never mistakes an error for the URL line.
#[test]
fn help_version_and_refused_settings_with_assert_cmd() {
    use assert_cmd::cargo::cargo_bin_cmd;
    use predicates::prelude::*;

    cargo_bin_cmd!("mock-coda")
        .arg("--help")
        .assert()
        .success()
        .stdout(
            predicate::str::contains("--port")
                .and(predicate::str::contains("--token"))
                .and(predicate::str::contains("--fault")),
        );
    cargo_bin_cmd!("mock-coda")
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::starts_with("mock-coda "));
    cargo_bin_cmd!("mock-coda")
        .arg("--bogus")
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("--bogus"));
    cargo_bin_cmd!("mock-coda")
        .args(["--host", "not-an-address"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--host"));
    cargo_bin_cmd!("mock-coda")
        .args(["--token", "no-equals-sign"])
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("TOKEN=loginId"));
    cargo_bin_cmd!("mock-coda")
        .args(["--fault", "{not json"])
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("invalid --fault"));
    cargo_bin_cmd!("mock-coda")
        .args(["--fixture", "/nonexistent/fixture.json"])
        .assert()
        .code(2)
        .stdout(predicate::str::is_empty())
        .stderr(predicate::str::contains("/nonexistent/fixture.json"));
}
