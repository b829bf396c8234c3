//! The strict baseline: scenarios expected to fail on a given deployment.
//!
//! File format (TOML):
//!
//! ```toml
//! # Why each entry is here, one comment per line.
//! failing = ["session/ttl-expiry", "auth/insufficient-scope-403"]
//! ```
//!
//! A listed scenario that fails is an expected failure; an unlisted failure fails the run; a listed
//! scenario that passes (or only warns) fails the run as a stale entry. Listed scenarios that were
//! skipped or not selected are ignored.

use crate::report::{BaselineMark, Outcome, Report};
use std::collections::BTreeSet;
use std::path::Path;

/// A baseline could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// Unreadable file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Malformed file.
    #[error("{path}:{line}:{col}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBaseline {
    #[serde(default)]
    failing: Vec<String>,
}

/// Expected failures by scenario id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Baseline {
    /// Scenario ids expected to fail.
    pub failing: BTreeSet<String>,
}

impl Baseline {
    /// Reads a baseline file.
    pub fn load(path: &Path) -> Result<Baseline, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Baseline::parse(&text, &path.display().to_string())
    }

    /// Parses baseline text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Baseline, BaselineError> {
        let raw: RawBaseline = toml::from_str(text).map_err(|e| {
            let (line, col) = e
                .span()
                .map(|s| crate::scenario::line_col(text, s.start))
                .unwrap_or((1, 1));
            BaselineError::Invalid {
                path: origin.to_string(),
                line,
                col,
                message: e.message().trim().to_string(),
            }
        })?;
        Ok(Baseline {
            failing: raw
                .failing
                .into_iter()
                .map(|id| id.trim_end_matches(".toml").to_string())
                .collect(),
        })
    }

    /// Marks the report's scenarios and records entries that name no scenario of the run.
    pub fn apply(&self, report: &mut Report) {
        let mut seen = BTreeSet::new();
        for scenario in &mut report.scenarios {
            scenario.baseline = None;
            if !self.failing.contains(&scenario.id) {
                continue;
            }
            seen.insert(scenario.id.clone());
            scenario.baseline = match scenario.outcome {
                Outcome::Fail => Some(BaselineMark::ExpectedFailure),
                Outcome::Pass | Outcome::Warn => Some(BaselineMark::Stale),
                Outcome::Skip => None,
            };
        }
        report.unknown_baseline_entries = self.failing.difference(&seen).cloned().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_strips_extensions_and_reports_lines() {
        let baseline = Baseline::parse("# why\nfailing = [\"a/b.toml\", \"c\"]\n", "x").unwrap();
        assert_eq!(
            baseline.failing.iter().cloned().collect::<Vec<_>>(),
            ["a/b", "c"]
        );
        let err = Baseline::parse("failing = \"a\"\n", "x.toml").unwrap_err();
        assert!(err.to_string().starts_with("x.toml:1:"), "{err}");
        let err = Baseline::parse("expected = []\n", "x.toml").unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        assert_eq!(Baseline::parse("", "x").unwrap(), Baseline::default());
    }
}
