//! `load` against a real coda-mcp-gateway in front of fake-mcp-server, both scopes: every call
//! must succeed (ids and echoed texts checked). No assertion on time.
//!
//! The gateway is only a process here (this crate never depends on the gateway crate): its
//! binary is found next to this test's target directory, built with cargo when missing.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use harness::load::{run, LoadConfig};

fn binaries() -> (PathBuf, PathBuf) {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>")
        .to_path_buf();
    let gateway = profile_dir.join("coda-mcp-gateway");
    let fake = profile_dir.join("fake-mcp-server");
    if !gateway.exists() || !fake.exists() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(cargo);
        command
            .args(["build", "-p", "gateway", "-p", "fixtures", "--bins"])
            .arg("--target-dir")
            .arg(profile_dir.parent().unwrap())
            .current_dir(workspace);
        if profile_dir.ends_with("release") {
            command.arg("--release");
        }
        let status = command.status().expect("cargo build");
        assert!(status.success(), "building the gateway failed");
    }
    (gateway, fake)
}

/// The gateway process, killed on drop.
struct Gateway {
    child: Child,
    url: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_gateway(scope: &str) -> Gateway {
    let (gateway, fake) = binaries();
    let mut child = Command::new(gateway)
        .env("AUTH_MODE", "none")
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("MCP_COMMAND", fake)
        .env("CHILD_SCOPE", scope)
        .env("AUDIT_LOG", "off")
        .env("RUST_LOG", "warn")
        .env("IDENTITY_RATE_LIMIT_PER_MIN", "1000000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the gateway");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the gateway's first line");
    let url = line
        .trim()
        .rsplit(' ')
        .next()
        .filter(|u| u.starts_with("http://"))
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Gateway { child, url }
}

async fn load_passes(scope: &str) {
    let gateway = start_gateway(scope);
    let mut config = LoadConfig::new(url::Url::parse(&gateway.url).unwrap());
    config.concurrency = 4;
    config.requests = 200;
    config.sessions = 2;
    config.warmup = 10;
    config.timeout = Duration::from_secs(60);
    let report = run(&config).await.expect("load runs");
    assert_eq!(report.errors, 0, "{}", report.to_human());
    assert_eq!(report.ok, 200, "{}", report.to_human());
    assert_eq!(report.sessions_opened, 2);
    assert_eq!(report.sessions_deleted, 2, "{}", report.to_human());
    assert!(report.passed(), "{}", report.to_human());
    assert_eq!(report.latency.count, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_against_gateway_session_scope() {
    load_passes("session").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_against_gateway_shared_scope() {
    load_passes("shared").await;
}

/// The 2026-07-28 era through the gateway's per-identity pool: sessionless calls, every reply
/// checked for id, text and `resultType: complete`; no session opened or deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_against_gateway_modern_era() {
    let gateway = start_gateway("session");
    let mut config = LoadConfig::new(url::Url::parse(&gateway.url).unwrap());
    config.era = harness::load::Era::Modern;
    config.concurrency = 4;
    config.requests = 200;
    config.warmup = 10;
    config.timeout = Duration::from_secs(60);
    let report = run(&config).await.expect("load runs");
    assert!(report.passed(), "{}", report.to_human());
    assert_eq!(report.ok, 200);
    assert_eq!(report.initialize.count, 0);
    assert_eq!(report.sessions_deleted, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_test_server_passes_and_broken_replies_fail() {
    let server = harness::load::selftest::TrivialServer::start().unwrap();
    let mut config =
        LoadConfig::new(url::Url::parse(&format!("http://{}/mcp", server.addr)).unwrap());
    config.concurrency = 4;
    config.requests = 500;
    let report = run(&config).await.unwrap();
    assert!(report.passed(), "{}", report.to_human());
    // The trivial server cuts a message at its first quote: the reply is caught as broken.
    config.args = Some(serde_json::from_str(r#"{"message":"with \"quote"}"#).unwrap());
    let report = run(&config).await.unwrap();
    assert!(!report.passed());
    assert_eq!(report.errors, 500, "{}", report.to_human());
    assert_eq!(report.ok, 0);
}
