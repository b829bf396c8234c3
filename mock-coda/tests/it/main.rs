//! Integration tests: each starts a mock on 127.0.0.1:0 and talks real HTTP to it.
//!
//! - `whoami`: the token table and Coda's 401.
//! - `faults`: every fault kind, over the library API and the control endpoint.
//! - `calls`: call counting and the request log.
//! - `data`: docs, pages, tables, rows, mutations, export, pagination.
//! - `binary`: the `mock-coda` executable's first stdout line and flags.

mod binary;
mod calls;
mod data;
mod faults;
mod support;
mod whoami;
