//! MCP protocol versions the gateway serves, and what each changes in the transport.

/// Versions of the legacy (session) era, newest first.
pub const SUPPORTED: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];

/// Versions of the stateless era (no `initialize`, no sessions; `_meta` on every request).
pub const MODERN: [&str; 1] = ["2026-07-28"];

pub fn is_modern(version: &str) -> bool {
    MODERN.contains(&version)
}

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

/// Severity of a log message (RFC 5424 order, least severe first).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

impl LogLevel {
    pub fn parse(text: &str) -> Option<LogLevel> {
        Some(match text {
            "debug" => LogLevel::Debug,
            "info" => LogLevel::Info,
            "notice" => LogLevel::Notice,
            "warning" => LogLevel::Warning,
            "error" => LogLevel::Error,
            "critical" => LogLevel::Critical,
            "alert" => LogLevel::Alert,
            "emergency" => LogLevel::Emergency,
            _ => return None,
        })
    }
}
