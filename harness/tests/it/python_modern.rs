//! The 2026-07-28 scenarios against software we did not write: the Python `mcp` 2.3.0 SDK's
//! stateless Streamable HTTP server with `thirdparty/python/modern_fixture.py`, judged by the
//! strict baseline `thirdparty/python-modern.baseline.toml` (as `thirdparty/run.sh` does).
//!
//! It needs the SDK: the venv `thirdparty/run.sh` installs (`target/thirdparty-venv`), or a
//! Python named by `THIRDPARTY_PYTHON`. Without one that can `import mcp`, the test says so and
//! returns (offline `cargo test` stays green; `THIRDPARTY_ONLY=python-modern bash thirdparty/run.sh`
//! installs it).

use harness::{Baseline, Profile, RunConfig};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> Option<PathBuf> {
    let python = match std::env::var_os("THIRDPARTY_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("target"))
            .join("thirdparty-venv/bin/python"),
    };
    let ok = Command::new(&python)
        .args(["-c", "import mcp.server.mcpserver, uvicorn"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(python)
}

/// Kills the server (our own child, by handle) when the test ends, whatever happens.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_modern_server_matches_its_baseline() {
    let Some(python) = python() else {
        eprintln!(
            "python_modern: skipped (no Python with the mcp 2.3.0 SDK: run \
             `THIRDPARTY_ONLY=python-modern bash thirdparty/run.sh` once to install it into \
             target/thirdparty-venv, or set THIRDPARTY_PYTHON)"
        );
        return;
    };
    let mut child = Command::new(python)
        .arg(workspace().join("thirdparty/python/modern_fixture.py"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the fixture starts");
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    // The first line is the URL; bounded, since a broken install could print nothing.
    let line = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        }),
    )
    .await
    .expect("the fixture prints its URL within 60 s")
    .unwrap()
    .unwrap();
    let target = format!("{}/mcp", line.trim());
    let mut config = RunConfig::new(url::Url::parse(&target).unwrap(), Profile::Local);
    config.include_tags = vec!["2026-07-28".into()];
    config.exclude_tags = vec!["auth".into()];
    let scenarios = harness::load_dir(&workspace().join("scenarios")).unwrap();
    let mut report = harness::run(&config, &scenarios).await;
    let baseline =
        Baseline::load(&workspace().join("thirdparty/python-modern.baseline.toml")).unwrap();
    baseline.apply(&mut report);
    drop(server);
    assert_eq!(report.eras, ["2025-11-25", "2026-07-28"]);
    assert_eq!(report.exit_code(), 0, "{}", report.to_human());
}
