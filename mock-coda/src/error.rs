//! Errors of the library's configuration surface (fixtures, token tables).
//!
//! Request-time failures never use this type: they become Coda error bodies
//! (see [`crate::api_error`]).

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid fixture: {0}")]
    Fixture(String),
    #[error("invalid token table: {0}")]
    Tokens(String),
}
