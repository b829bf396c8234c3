//! The upstream layer: child processes that speak newline-delimited JSON-RPC on stdio.
//!
//! It knows pipes, process groups and signals; it knows nothing of HTTP or sessions.
//! Lines go in through [`Child::send`] and come out of the [`Lines`] [`spawn`] returns.

mod child;
mod lines;
mod stderr;

pub use child::{spawn, Child, ChildGone, ChildSpec, ExitReport, Lines, SpawnError};
pub use lines::{read_bounded_line, LineRead};
