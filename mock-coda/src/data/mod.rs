//! The data API's state and shapes, independent of HTTP routing.
//!
//! - `model`: docs, pages, tables, columns, rows as stored.
//! - `fixture`: loading and checking the documents the mock starts with.
//! - `store`: the mutable state (docs, mutation IDs, exports).
//! - `rows`: row filters, sorting and edits.
//! - `pagination`: query parameters and page tokens.
//! - `render`: Coda's JSON shapes.

pub mod fixture;
pub(crate) mod model;
pub(crate) mod pagination;
pub(crate) mod render;
pub(crate) mod rows;
pub(crate) mod store;
