//! The scenario file as written: serde types mirroring the TOML, with spans for error messages.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScenario {
    pub name: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub spec: Vec<String>,
    #[serde(default)]
    pub tags: Vec<Spanned<String>>,
    pub profile: Option<Spanned<String>>,
    #[serde(default)]
    pub vars: toml::Table,
    #[serde(default)]
    pub needs_vars: Vec<String>,
    #[serde(default)]
    pub defaults: RawDefaults,
    pub timeout: Option<String>,
    #[serde(default, rename = "step")]
    pub steps: Vec<Spanned<RawStep>>,
    /// How the repository's reference run sets up its own deployment for this scenario (e.g.
    /// `[reference.gateway] env = {...}`, read by the fixtures crate). Accepted so such files
    /// stay valid scenarios, and ignored: the harness certifies whatever target it is given.
    #[serde(default, rename = "reference")]
    pub _reference: toml::Table,
}

/// A file under `_lib/`-style folders that only holds steps (and variable defaults) to include.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFragment {
    #[serde(default)]
    pub vars: toml::Table,
    #[serde(default, rename = "step")]
    pub steps: Vec<Spanned<RawStep>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDefaults {
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub modern: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawStep {
    pub name: Option<String>,
    pub include: Option<String>,
    #[serde(rename = "as")]
    pub identity: Option<String>,
    pub stream: Option<String>,
    pub read: Option<String>,
    pub close: Option<String>,
    pub wait: Option<String>,
    #[serde(default)]
    pub paced: bool,
    pub level: Option<String>,
    pub within: Option<String>,
    #[serde(default)]
    pub always: bool,
    pub concurrency: Option<u32>,
    pub repeat: Option<u32>,
    pub until: Option<RawUntil>,
    pub send: Option<RawSend>,
    pub expect: Option<RawExpect>,
    #[serde(default)]
    pub capture: BTreeMap<String, RawCapture>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUntil {
    pub status: toml::Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSend {
    pub method: Option<String>,
    pub path: Option<String>,
    pub url: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, toml::Value>,
    #[serde(default)]
    pub omit_headers: Vec<String>,
    pub modern: Option<bool>,
    #[serde(default)]
    pub meta_omit: Vec<String>,
    #[serde(default)]
    pub title_case_headers: bool,
    pub defaults: Option<bool>,
    pub json: Option<Spanned<toml::Value>>,
    pub raw: Option<String>,
    pub pad_bytes: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExpect {
    pub status: Option<toml::Value>,
    #[serde(default)]
    pub headers: BTreeMap<String, toml::Value>,
    pub body: Option<Spanned<toml::Value>>,
    pub json: Option<Spanned<toml::Value>>,
    pub response: Option<Spanned<toml::Value>>,
    pub sse: Option<Vec<Spanned<toml::Value>>>,
    pub sse_none: Option<Vec<Spanned<toml::Value>>>,
    pub sse_end: Option<String>,
    #[serde(default)]
    pub comment: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCapture {
    pub header: Option<String>,
    pub response: Option<String>,
    pub body: Option<String>,
    pub sse: Option<Spanned<toml::Value>>,
    pub sse_field: Option<String>,
    pub path: Option<String>,
    pub regex: Option<String>,
    #[serde(default)]
    pub optional: bool,
}
