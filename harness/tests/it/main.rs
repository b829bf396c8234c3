//! The harness's one integration-test binary. Every test talks to a scripted server on
//! 127.0.0.1:0 (see `server.rs`); nothing leaves the loopback interface.

mod cli;
mod fuzz;
mod library;
mod modern;
mod modern_run;
mod python_modern;
mod run;
mod server;

use std::path::PathBuf;

/// `harness/tests/data/scenarios/<name>`.
pub fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/scenarios")
        .join(name)
}
