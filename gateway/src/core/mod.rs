//! The core room: sessions, message routing, id translation and event buffers.
//!
//! It knows JSON-RPC and MCP, not axum: the edge calls into it with parsed messages and reads
//! events back from [`stream::EventStream`]s.

pub mod channel;
pub mod replay;
pub mod router;
pub mod session;
pub mod spawner;
pub mod stream;
