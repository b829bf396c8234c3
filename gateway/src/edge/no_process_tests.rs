//! The edge starts and ends no processes: opening a session (and the child that goes with it),
//! ending children and holding their handles belong to the core. This reads the edge's sources
//! so that a later change cannot quietly put a spawn or a kill back into an HTTP handler.

use std::path::{Path, PathBuf};

/// What only the core may call, and why each is on the list:
const FORBIDDEN: &[(&str, &str)] = &[
    (
        "spawn_dedicated(",
        "Spawner::spawn_dedicated starts a child",
    ),
    ("spawner.shared(", "Spawner::shared starts the shared child"),
    ("end_shared(", "Spawner::end_shared ends the shared child"),
    (".terminate(", "Child::terminate ends a child"),
    (
        ".child(",
        "Router::child hands out the child process handle",
    ),
    ("Router::start(", "Router::start takes over a spawned child"),
    (
        "upstream::",
        "the upstream module spawns processes and holds their handles",
    ),
    ("std::process", "processes are the core's"),
    ("tokio::process", "processes are the core's"),
    ("libc::kill", "signals are the core's"),
    ("nix::", "signals are the core's"),
];

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/edge is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Code without its comment lines and without whitespace, so that a call split over lines by
/// rustfmt (`state\n.spawner\n.shared(`) still reads as one.
fn code_of(text: &str) -> String {
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
        .collect()
}

#[test]
fn the_edge_starts_and_ends_no_processes() {
    let edge = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/edge");
    let mut files = Vec::new();
    sources(&edge, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("post/mod.rs")),
        "the edge's sources were found: {files:?}"
    );
    let mut offences = Vec::new();
    for file in files
        .iter()
        .filter(|f| !f.ends_with(file!().rsplit('/').next().unwrap_or("")))
    {
        let code = code_of(&std::fs::read_to_string(file).expect("a readable source"));
        for (needle, why) in FORBIDDEN {
            if code.contains(needle) {
                offences.push(format!("{}: `{needle}` ({why})", file.display()));
            }
        }
    }
    assert!(offences.is_empty(), "{offences:#?}");
}
