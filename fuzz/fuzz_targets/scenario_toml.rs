//! The harness's scenario loader: any text either loads or is refused with a position inside
//! the text (line and column that exist), and loading is deterministic.
#![no_main]

use std::path::Path;

use harness::scenario::{parse_duration, parse_scenario, ScenarioError};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = parse_duration(text) {
        assert!(d.as_secs() <= 86_400);
    }
    // Includes resolve against a directory that does not exist, so nothing is read.
    let path = Path::new("/nonexistent-fuzz-dir/scenario.toml");
    let first = parse_scenario(text, path, "fuzz".into());
    let second = parse_scenario(text, path, "fuzz".into());
    assert_eq!(
        format!("{first:?}"),
        format!("{second:?}"),
        "loading is not deterministic"
    );
    // Positions in an included file (an absolute include path) are that file's.
    if let Err(ScenarioError::Invalid {
        path: at,
        line,
        col,
        message,
    }) = &first
    {
        if at != path {
            return;
        }
        assert!(!message.is_empty());
        let lines: Vec<&str> = text.split('\n').collect();
        assert!(
            *line >= 1 && *line <= lines.len(),
            "line {line} of {}",
            lines.len()
        );
        let width = lines[*line - 1].chars().count();
        assert!(
            *col >= 1 && *col <= width + 1,
            "col {col} of a {width}-char line"
        );
    }
});
