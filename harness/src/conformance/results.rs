//! The files the suite writes: one `checks.json` per scenario, in a timestamped directory.

use anyhow::Context;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One check of a `checks.json` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// Check id.
    pub id: String,
    /// Check name.
    #[serde(default)]
    pub name: String,
    /// What it checks.
    #[serde(default)]
    pub description: String,
    /// `SUCCESS`, `FAILURE`, `WARNING`, `INFO` or `SKIPPED`.
    pub status: String,
    /// Why it failed.
    #[serde(default)]
    pub error_message: Option<String>,
    /// Spec references.
    #[serde(default)]
    pub spec_references: Vec<SpecRef>,
    /// Free-form details.
    #[serde(default)]
    pub details: Option<serde_json::Value>,
}

/// A spec reference of a check.
#[derive(Debug, Clone, Deserialize)]
pub struct SpecRef {
    /// Reference id.
    #[serde(default)]
    pub id: String,
}

/// The scenario name of a result directory `server-<scenario>-<YYYY-MM-DDTHH-MM-SS-mmmZ>`.
pub fn scenario_of_dir(dir: &str) -> Option<&str> {
    let rest = dir.strip_prefix("server-")?;
    // The timestamp is 24 characters: 2026-11-26T21-46-19-661Z, after a dash.
    if rest.len() < 26 || !rest.ends_with('Z') {
        return None;
    }
    let (name, stamp) = rest.split_at(rest.len() - 25);
    let stamp = stamp.strip_prefix('-')?;
    let shape_ok = stamp.len() == 24
        && stamp.as_bytes()[10] == b'T'
        && stamp[..4].bytes().all(|b| b.is_ascii_digit());
    (shape_ok && !name.is_empty()).then_some(name)
}

/// Every scenario's latest `checks.json` under a suite's output directory.
pub fn result_files(dir: &Path) -> anyhow::Result<BTreeMap<String, PathBuf>> {
    let mut found: BTreeMap<String, (String, PathBuf)> = BTreeMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(scenario) = scenario_of_dir(&name) else {
            continue;
        };
        let file = entry.path().join("checks.json");
        if !file.is_file() {
            continue;
        }
        // Names sort by their timestamp: keep the latest run of each scenario.
        let newer = found.get(scenario).is_none_or(|(seen, _)| *seen < name);
        if newer {
            found.insert(scenario.to_string(), (name, file));
        }
    }
    Ok(found.into_iter().map(|(k, (_, f))| (k, f)).collect())
}
