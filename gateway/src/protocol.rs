//! MCP protocol versions the gateway serves, and what each changes in the transport.

/// Versions of the legacy (session) era, newest first.
pub const SUPPORTED: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

/// The version to assume when a session's version is unknown (the spec's default).
pub const DEFAULT: &str = "2025-03-26";

pub fn is_supported(version: &str) -> bool {
    SUPPORTED.contains(&version)
}

/// Batches (JSON arrays) were allowed only in 2025-03-26.
pub fn allows_batch(version: &str) -> bool {
    version == "2025-03-26" || !is_supported(version)
}

/// 2025-11-25 asks for a priming event (id, empty data) first on every POST SSE stream.
pub fn wants_priming(version: &str) -> bool {
    version >= "2025-11-25" && is_supported(version)
}
