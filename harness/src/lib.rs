//! # mcp-harness
//!
//! Certifies any MCP Streamable HTTP deployment over HTTP only, from scenario files.
//!
//! Layout, one module per concept:
//! - [`scenario`]: the scenario file model, loading and validation (`path:line:col` errors);
//! - [`matcher`]: JSON subset matching with `$any`, `$type`, `$regex`, `$absent`, `$contains`…;
//! - [`modern`]: the 2026-07-28 `_meta` helper, mirrored headers and `=?base64?…?=` values;
//! - [`interp`]: `${var}` interpolation of captures and configured variables;
//! - [`sse`]: a byte-level incremental SSE parser;
//! - [`client`]: HTTP requests whose bodies are read chunk by chunk in the background;
//! - [`runner`]: steps, named streams, captures, identities, pacing and `Retry-After`;
//! - [`report`]: results rendered as human text, JUnit XML and JSON;
//! - [`baseline`]: the strict expected-failures list;
//! - [`eras`]: which protocol eras a target serves (`server/discover` and `initialize` probes);
//! - [`discovery`]: normalized snapshots of the OAuth discovery documents and the 401 challenge;
//! - [`fuzz`]: `fuzz`, a seeded, rate-bounded wire fuzzer that checks every answer's invariants;
//! - [`load`]: `load`, a bounded and checked throughput/latency run against one endpoint;
//! - [`conformance`]: the official MCP conformance suite through a loopback proxy that adds the token.
//!
//! **Architecture invariant:** this crate knows nothing about any particular gateway; it only
//! talks HTTP to a target URL.

pub mod baseline;
pub mod client;
pub mod conformance;
pub mod discovery;
pub mod eras;
pub mod fuzz;
pub mod interp;
pub mod load;
pub mod matcher;
pub mod modern;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod sse;

pub use baseline::Baseline;
pub use report::{Outcome, Report, ScenarioReport};
pub use runner::{run, run_file, run_scenario, RunConfig};
pub use scenario::{load_dir, load_file, load_paths, Profile, Scenario};
