//! The shipped scenario library must always load.

use std::path::PathBuf;

#[test]
fn every_shipped_scenario_loads() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let scenarios = harness::load_dir(&root).unwrap_or_else(|e| panic!("{e}"));
    assert!(scenarios.len() >= 10, "only {} scenarios", scenarios.len());
    for scenario in &scenarios {
        let versions = ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"];
        assert!(
            scenario.tags.iter().any(|t| versions.contains(&t.as_str())),
            "{} has no version tag",
            scenario.id
        );
        assert!(
            scenario
                .tags
                .iter()
                .any(|t| ["MUST", "SHOULD", "MAY"].contains(&t.as_str())),
            "{} has no level tag",
            scenario.id
        );
        assert!(
            !scenario.spec.is_empty(),
            "{} has no spec reference",
            scenario.id
        );
    }
    let files = harness::scenario::scenario_files(&root).unwrap();
    assert_eq!(files.len(), scenarios.len());
}

#[test]
fn every_modern_scenario_is_listed_in_the_readme() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let scenarios = harness::load_dir(&root).unwrap();
    let modern: Vec<_> = scenarios
        .iter()
        .filter(|s| s.tags.iter().any(|t| t == "2026-07-28"))
        .collect();
    assert!(modern.len() >= 30, "only {} modern scenarios", modern.len());
    for scenario in modern {
        assert!(
            readme.contains(&format!("`{}`", scenario.id)),
            "{} is not listed in scenarios/README.md",
            scenario.id
        );
    }
}
