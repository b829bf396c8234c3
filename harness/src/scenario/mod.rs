//! Scenario files: the validated model, loading and validation.
//!
//! The format is documented in `scenarios/README.md`. Loading turns TOML into [`Scenario`] values
//! whose JSON templates are parsed and whose matchers are checked, so that a run only fails on the
//! deployment's behaviour, never on a typo; every error names `path:line:col`.
//!
//! - `model`: the validated types;
//! - `raw`: the serde mirror of the file, with spans;
//! - `build`: raw scenario and steps to model, includes, stream and level rules;
//! - `fields`: send, expect, SSE pattern and capture tables to model.

mod build;
mod fields;
mod model;
mod raw;

pub use build::{line_col, parse_duration, parse_scenario};
pub use model::*;

use crate::interp::{self, Vars};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[cfg(test)]
use fields::quote_bare_placeholders;

/// A scenario file could not be read or is malformed.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// The file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or breaks a rule of the format.
    #[error("{path}:{line}:{col}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong.
        message: String,
    },
}

/// Largest scenario file or include fragment read: a path that names a device or a huge file
/// (`include = "/dev/zero"`) gets an error instead of holding the loader forever.
pub const MAX_SCENARIO_BYTES: u64 = 1024 * 1024;

/// Reads a scenario file or fragment, at most [`MAX_SCENARIO_BYTES`].
pub(crate) fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_SCENARIO_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SCENARIO_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_SCENARIO_BYTES} bytes"),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
}

fn read(path: &Path) -> Result<String, ScenarioError> {
    read_bounded(path).map_err(|source| ScenarioError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The id of a scenario file relative to a root: `session/delete-404`.
pub fn scenario_id(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    let mut id = relative
        .with_extension("")
        .to_string_lossy()
        .replace('\\', "/");
    if id.is_empty() {
        id = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
    }
    id
}

/// Loads one scenario file; `root` only decides its id.
pub fn load_file(root: &Path, path: &Path) -> Result<Scenario, ScenarioError> {
    let text = read(path)?;
    parse_scenario(&text, path, scenario_id(root, path))
}

/// Loads every scenario under the given files and directories, sorted by id.
///
/// In directories, files and folders whose names start with `_` or `.` are not scenarios (use
/// `_lib/` for include fragments); only `*.toml` files are read.
pub fn load_paths(paths: &[PathBuf]) -> Result<Vec<Scenario>, ScenarioError> {
    let mut scenarios = Vec::new();
    for path in paths {
        // Ids are relative to the nearest enclosing `scenarios` folder, so that `scenarios/`,
        // `scenarios/session/` and `scenarios/session/x.toml` name `x` the same way.
        let named_root = path
            .ancestors()
            .skip(usize::from(!path.is_dir()))
            .find(|dir| dir.file_name().is_some_and(|n| n == "scenarios"));
        if path.is_dir() {
            let root = named_root.unwrap_or(path);
            let mut files = Vec::new();
            collect_files(path, &mut files)?;
            for file in files {
                scenarios.push(load_file(root, &file)?);
            }
        } else {
            let root = named_root.unwrap_or_else(|| path.parent().unwrap_or(Path::new("")));
            scenarios.push(load_file(root, path)?);
        }
    }
    scenarios.sort_by(|a, b| a.id.cmp(&b.id));
    scenarios.dedup_by(|a, b| a.id == b.id);
    Ok(scenarios)
}

/// Loads every scenario in a directory tree, sorted by id.
pub fn load_dir(root: &Path) -> Result<Vec<Scenario>, ScenarioError> {
    let mut files = Vec::new();
    collect_files(root, &mut files)?;
    files.sort();
    let mut scenarios = files
        .iter()
        .map(|file| load_file(root, file))
        .collect::<Result<Vec<_>, _>>()?;
    scenarios.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(scenarios)
}

/// Every scenario file path under a directory (sorted), for one-test-per-file runners.
pub fn scenario_files(root: &Path) -> Result<Vec<PathBuf>, ScenarioError> {
    let mut files = Vec::new();
    collect_files(root, &mut files)?;
    files.sort();
    Ok(files)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ScenarioError> {
    let io = |source| ScenarioError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('_') || name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            collect_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "toml") {
            out.push(path);
        }
    }
    Ok(())
}

/// Every variable name a scenario refers to that neither it nor `extra` defines and no step
/// captures (used to report missing `--var`s up front).
pub fn undefined_vars(scenario: &Scenario, extra: &Vars) -> Vec<String> {
    let mut defined: BTreeSet<String> = scenario.vars.keys().cloned().collect();
    defined.extend(extra.keys().cloned());
    defined.extend(crate::runner::BUILTIN_VARS.iter().map(|s| s.to_string()));
    for step in &scenario.steps {
        defined.extend(step.captures.iter().map(|(name, _)| name.clone()));
    }
    let mut missing = BTreeSet::new();
    for name in &scenario.needs_vars {
        if !defined.contains(name) {
            missing.insert(name.clone());
        }
    }
    for step in &scenario.steps {
        for name in step_references(step) {
            if !defined.contains(&name) {
                missing.insert(name);
            }
        }
    }
    missing.into_iter().collect()
}

fn step_references(step: &Step) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(within) = &step.within {
        names.extend(interp::references(within));
    }
    match &step.action {
        Action::Request { send, .. } => {
            for text in [&send.path, &send.url].into_iter().flatten() {
                names.extend(interp::references(text));
            }
            for (_, value) in &send.headers {
                names.extend(interp::references(&value.template));
            }
            match &send.body {
                Body::Json(value) => names.extend(interp::json_references(value)),
                Body::Raw(text) => names.extend(interp::references(text)),
                Body::None => {}
            }
        }
        Action::Wait { duration } => names.extend(interp::references(duration)),
        _ => {}
    }
    names
}

#[cfg(test)]
mod tests;
