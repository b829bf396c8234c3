//! The core: sessions, message routing, id translation and event buffers.
//!
//! It knows JSON-RPC and MCP, not axum: the edge calls into it with parsed messages and reads
//! events back from [`stream::EventStream`]s. It starts and ends the MCP server processes (through
//! [`spawner`] and [`open`]); the edge never does.

pub mod channel;
pub mod modern;
pub mod mrtr;
pub mod open;
pub mod pool;
pub mod replay;
pub mod router;
pub mod session;
pub mod spawner;
pub mod stream;
