//! The validated scenario model.

use crate::interp::Vars;
use serde::Serialize;
use serde_json::Value;
use std::fmt;
use std::path::PathBuf;

/// Which runs a scenario belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Read-only and safe against production.
    Live,
    /// Destructive or slow: TTL expiry, rate-limit exhaustion, oversized bodies, many sessions.
    Local,
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Profile::Live => "live",
            Profile::Local => "local",
        })
    }
}

/// Requirement level: a failing `SHOULD` or `MAY` check is a warning, not a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Level {
    /// A failure fails the run.
    #[serde(rename = "MUST")]
    Must,
    /// A failure is a warning.
    #[serde(rename = "SHOULD")]
    Should,
    /// A failure is a warning.
    #[serde(rename = "MAY")]
    May,
}

impl Level {
    pub(crate) fn parse(text: &str) -> Option<Level> {
        match text {
            "MUST" => Some(Level::Must),
            "SHOULD" => Some(Level::Should),
            "MAY" => Some(Level::May),
            _ => None,
        }
    }

    /// True when a failure at this level only warns.
    pub fn is_advisory(self) -> bool {
        self != Level::Must
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Must => "MUST",
            Level::Should => "SHOULD",
            Level::May => "MAY",
        })
    }
}

/// Who a step acts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Identity {
    /// Token A when configured, otherwise no `Authorization` header.
    A,
    /// Token B (the scenario is skipped without one).
    B,
    /// No `Authorization` header.
    None,
}

/// One loaded scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// Stable id: the path relative to the scenario root, without `.toml` (`session/delete-404`).
    pub id: String,
    /// Human title (defaults to the id).
    pub name: String,
    /// Longer explanation.
    pub description: Option<String>,
    /// The file it came from.
    pub path: PathBuf,
    /// Spec references.
    pub spec: Vec<String>,
    /// Tags: versions, level and area.
    pub tags: Vec<String>,
    /// The default level of its steps (from the `MUST`/`SHOULD`/`MAY` tag; `MUST` if none).
    pub level: Level,
    /// `live` or `local`.
    pub profile: Profile,
    /// Variable defaults (`--var` overrides them).
    pub vars: Vars,
    /// Variables that must be set (by `[vars]` or `--var`), or the scenario is skipped.
    pub needs_vars: Vec<String>,
    /// Headers added to every request step unless it says `send.defaults = false`; a header
    /// whose variables are not defined yet is left out.
    pub default_headers: Vec<(String, String)>,
    /// `[defaults] modern = true`: request steps with a JSON body use the modern `_meta` helper
    /// unless they say `send.modern = false`.
    pub modern: bool,
    /// Default bound of every wait, as a duration template (`"10s"`).
    pub timeout: Option<String>,
    /// The steps, includes expanded.
    pub steps: Vec<Step>,
}

impl Scenario {
    /// True when the scenario needs token A (tag `auth`).
    pub fn needs_token(&self) -> bool {
        self.tags.iter().any(|t| t == "auth")
    }

    /// The protocol-version tags of the scenario (`2025-11-25`, `2026-07-28`, ...).
    pub fn version_tags(&self) -> Vec<&str> {
        self.tags
            .iter()
            .map(String::as_str)
            .filter(|t| crate::modern::LEGACY_VERSIONS.contains(t) || is_version_tag(t))
            .collect()
    }

    /// True when the scenario is about the 2026-07-28 era (tags `2026-07-28`, `dual-era` or
    /// `modern-only`): runners that check one file at a time discover the target's eras first.
    pub fn concerns_modern_era(&self) -> bool {
        self.tags
            .iter()
            .any(|t| t == crate::modern::MODERN_VERSION || t == "dual-era" || t == "modern-only")
    }

    /// True when some step acts as identity B.
    pub fn needs_second_token(&self) -> bool {
        self.steps.iter().any(|s| s.identity == Identity::B)
    }
}

/// One step.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// 1-based position after include expansion.
    pub index: usize,
    /// Title shown in reports.
    pub name: String,
    /// `file:line` where the step is written.
    pub location: String,
    /// Who sends it.
    pub identity: Identity,
    /// The level of its checks.
    pub level: Level,
    /// Pace it like an auth-related request.
    pub paced: bool,
    /// Run it even after an earlier failure (cleanup); its own failure is reported but ignored.
    pub always: bool,
    /// Bound of its waits, a duration template.
    pub within: Option<String>,
    /// What it does.
    pub action: Action,
    /// What it checks.
    pub expect: Expect,
    /// What it captures.
    pub captures: Vec<(String, Capture)>,
}

/// What a step does.
// Variant sizes depend on serde_json's `preserve_order` feature, which other workspace
// members turn on; scenario models are built once per file, so boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Send a request (possibly several copies) and check the answer.
    Request {
        /// The request.
        send: Send,
        /// Keep the answer open as a named stream instead of reading it to the end.
        stream: Option<String>,
        /// Copies sent at once, each with `${i}` = 0..n.
        concurrency: u32,
        /// Sequential tries; with `until`, stop at the first matching status.
        repeat: u32,
        /// Stop repeating once the status matches.
        until: Option<StatusSpec>,
    },
    /// Read more of a named stream.
    Read {
        /// The stream name.
        stream: String,
    },
    /// Drop a named stream (the connection is closed).
    Close {
        /// The stream name.
        stream: String,
    },
    /// Wait for a duration (for TTL expiry); a duration template.
    Wait {
        /// How long.
        duration: String,
    },
}

/// An HTTP request template.
#[derive(Debug, Clone, Serialize)]
pub struct Send {
    /// HTTP method.
    pub method: String,
    /// Path on the target's origin (replacing the target path), a template.
    pub path: Option<String>,
    /// Absolute URL, a template (wins over `path`).
    pub url: Option<String>,
    /// Extra headers (templates), added after the defaults and the mirrored modern headers.
    pub headers: Vec<(String, HeaderValue)>,
    /// Use the modern `_meta` helper: `None` follows the scenario's `[defaults] modern`.
    pub modern: Option<bool>,
    /// `_meta` fields (short names like `clientCapabilities`) the helper leaves out.
    pub meta_omit: Vec<String>,
    /// Send the header names in HTTP/1 Title-Case instead of lower case.
    pub title_case_headers: bool,
    /// Default headers to leave out (case-insensitive names).
    pub omit_headers: Vec<String>,
    /// Apply the scenario's `[defaults] headers`.
    pub use_defaults: bool,
    /// The body.
    pub body: Body,
    /// Spaces appended to the body (to exceed size limits with valid JSON).
    pub pad_bytes: usize,
}

/// A header value template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeaderValue {
    /// The template (`${var}` allowed).
    pub template: String,
    /// Send it as `=?base64?<base64 of the interpolated text>?=` (`{ base64 = "..." }` in the file).
    pub base64: bool,
}

/// True for a `YYYY-MM-DD` tag (a protocol revision).
pub fn is_version_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// A request body template.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Body {
    /// No body.
    None,
    /// A JSON template, sent with `Content-Type: application/json`.
    Json(Value),
    /// Raw text, sent as is (after interpolation) with `Content-Type: application/json`
    /// unless the step sets another one.
    Raw(String),
}

/// Accepted statuses: exact codes or classes like `4xx`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusSpec(pub Vec<StatusItem>);

/// One accepted status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusItem {
    /// An exact code.
    Code(u16),
    /// A class: 2 for `2xx`.
    Class(u16),
}

impl StatusSpec {
    /// True when `status` is accepted.
    pub fn accepts(&self, status: u16) -> bool {
        self.0.iter().any(|item| match item {
            StatusItem::Code(code) => *code == status,
            StatusItem::Class(class) => status / 100 == *class,
        })
    }
}

impl fmt::Display for StatusSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|item| match item {
                StatusItem::Code(code) => code.to_string(),
                StatusItem::Class(class) => format!("{class}xx"),
            })
            .collect();
        f.write_str(&parts.join(" or "))
    }
}

/// Expectations on an answer or on newly read stream data.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Expect {
    /// Accepted statuses.
    pub status: Option<StatusSpec>,
    /// Header matchers (names case-insensitive; the value is matched as a JSON string).
    pub headers: Vec<(String, Value)>,
    /// Matcher on the body text.
    pub body: Option<Value>,
    /// Matcher on the body parsed as JSON.
    pub json: Option<Value>,
    /// Matcher on the JSON-RPC response: the JSON body, or the first SSE event whose data is an
    /// object with `result` or `error`.
    pub response: Option<Value>,
    /// Ordered SSE event patterns.
    pub sse: Option<Vec<SsePattern>>,
    /// Patterns no SSE event may match.
    pub sse_none: Vec<EventPattern>,
    /// Whether the stream must have ended (`closed`) or still be open (`open`).
    pub sse_end: Option<StreamEnd>,
    /// An SSE comment must arrive (within the step's bound).
    pub comment: bool,
}

/// Stream end expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamEnd {
    /// The body ended.
    Closed,
    /// The body was still open when the step's bound ran out.
    Open,
}

/// An item of an ordered SSE expectation.
// Variant sizes depend on serde_json's `preserve_order` feature, which other workspace
// members turn on; scenario models are built once per file, so boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SsePattern {
    /// `"..."`: any number of events.
    Gap,
    /// One event.
    Event(EventPattern),
}

/// Matchers on one SSE event; a field left out matches anything.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EventPattern {
    /// Matcher on `id` (absent when the event had none).
    pub id: Option<Value>,
    /// Matcher on `event`.
    pub event: Option<Value>,
    /// Matcher on the data text.
    pub data: Option<Value>,
    /// Matcher on the data parsed as JSON.
    pub json: Option<Value>,
    /// Matcher on `retry`.
    pub retry: Option<Value>,
    /// May be missing (the pattern is skipped when the next event does not match).
    pub optional: bool,
}

/// Where a capture takes its value.
#[derive(Debug, Clone, Serialize)]
pub struct Capture {
    /// The source.
    pub source: CaptureSource,
    /// A path into the selected JSON value.
    pub path: Option<String>,
    /// A regex applied to the text form; group 1 (or the whole match) is kept.
    pub regex: Option<String>,
    /// A missing value is not a failure: the variable stays undefined, so `[defaults] headers`
    /// that use it are left out (a session id that a stateless server never issues).
    pub optional: bool,
}

/// Capture sources.
// Variant sizes depend on serde_json's `preserve_order` feature, which other workspace
// members turn on; scenario models are built once per file, so boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureSource {
    /// A response header.
    Header(String),
    /// The JSON-RPC response (see [`Expect::response`]); the string is a JSON path.
    Response(String),
    /// The body parsed as JSON; the string is a JSON path.
    Body(String),
    /// The first SSE event (of this step's data) that matches the pattern; `field` picks `json`
    /// (the default), `id`, `event`, `data` or `retry`.
    Sse {
        /// The event pattern (a JSON string in the file is shorthand for `{ json = ... }`).
        pattern: EventPattern,
        /// Which part of the event.
        field: String,
    },
}
