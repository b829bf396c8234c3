//! Era discovery: which protocol eras a target serves, found before the scenarios run.
//!
//! Two probes, both with token A when one is configured:
//! - `server/discover` with a modern `_meta` and the mirrored headers: a result whose
//!   `supportedVersions` lists versions of the modern era means the target serves them;
//! - `initialize` (2025-11-25, no `_meta`): a result with a `protocolVersion` means the legacy
//!   (session) era is served at that version; its session is deleted right away.
//!
//! A probe that is refused for reasons that say nothing about the era (401/403, 429, 5xx, a
//! transport error) leaves that era *unknown*, and scenarios are then not skipped for it: a
//! harness must not turn an auth problem into "not served".
//!
//! Scenario era rules (from their tags):
//! - `dual-era`: needs the legacy era and 2026-07-28;
//! - `modern-only`: needs 2026-07-28 and no legacy era;
//! - otherwise, tagged with both legacy versions and `2026-07-28`: needs either;
//! - tagged `2026-07-28` only: needs it; tagged only legacy versions: needs the legacy era;
//! - no version tag: always runs.

use crate::client::{Answer, Client, Request};
use crate::modern::{self, LEGACY_VERSIONS, MODERN_VERSION};
use crate::runner::RunConfig;
use crate::scenario::Scenario;
use serde::Serialize;
use serde_json::{json, Value};
use std::time::Duration;

/// The name of the legacy era in `--require-era` and skip reasons.
pub const LEGACY: &str = "legacy";

/// What one probe saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// `server/discover` or `initialize`.
    pub request: String,
    /// The HTTP status, when an answer came.
    pub status: Option<u16>,
    /// One line: what the answer means.
    pub summary: String,
}

/// The eras a target serves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Eras {
    /// Served protocol versions: the legacy version `initialize` negotiated, then the modern
    /// versions `server/discover` listed.
    pub served: Vec<String>,
    /// The legacy era: `Some(true)` served, `Some(false)` refused, `None` unknown.
    pub legacy: Option<bool>,
    /// The modern versions `server/discover` listed (`None`: the probe said nothing).
    pub modern: Option<Vec<String>>,
    /// The probes, in order.
    pub probes: Vec<Probe>,
}

impl Eras {
    /// Known eras without probing (tests, or a runner that knows its target).
    pub fn known(legacy: Option<&str>, modern: &[&str]) -> Eras {
        let mut served: Vec<String> = legacy.into_iter().map(str::to_string).collect();
        served.extend(modern.iter().map(|v| v.to_string()));
        Eras {
            served,
            legacy: Some(legacy.is_some()),
            modern: Some(modern.iter().map(|v| v.to_string()).collect()),
            probes: Vec::new(),
        }
    }

    /// Whether `era` (`legacy`, a legacy version, or a modern version) is served; `None` when
    /// the probes could not tell.
    pub fn serves(&self, era: &str) -> Option<bool> {
        if era == LEGACY || LEGACY_VERSIONS.contains(&era) {
            self.legacy
        } else {
            self.modern.as_ref().map(|v| v.iter().any(|m| m == era))
        }
    }

    /// One line for the human report.
    pub fn line(&self) -> String {
        let served = if self.served.is_empty() {
            "none found".to_string()
        } else {
            self.served.join(", ")
        };
        let probes: Vec<String> = self
            .probes
            .iter()
            .map(|p| format!("{}: {}", p.request, p.summary))
            .collect();
        if probes.is_empty() {
            format!("eras: {served}")
        } else {
            format!("eras: {served} ({})", probes.join("; "))
        }
    }
}

/// Why a scenario does not apply to a target's eras, if so.
pub fn skip_reason(eras: &Eras, scenario: &Scenario) -> Option<EraMiss> {
    let tags = &scenario.tags;
    let has = |t: &str| tags.iter().any(|x| x == t);
    let legacy_tagged = tags.iter().any(|t| LEGACY_VERSIONS.contains(&t.as_str()));
    let modern_tagged = has(MODERN_VERSION);
    let legacy = eras.serves(LEGACY);
    let modern = eras.serves(MODERN_VERSION);
    let listed = if eras.served.is_empty() {
        "none found".to_string()
    } else {
        eras.served.join(", ")
    };
    let miss = |era: &str, why: String| {
        Some(EraMiss {
            era: era.to_string(),
            reason: format!("{why} (eras: {listed})"),
        })
    };
    if has("dual-era") {
        if modern == Some(false) {
            return miss(
                MODERN_VERSION,
                format!("dual-era scenario; the target does not serve {MODERN_VERSION}"),
            );
        }
        if legacy == Some(false) {
            return miss(
                LEGACY,
                "dual-era scenario; the target does not serve the legacy era".to_string(),
            );
        }
        return None;
    }
    if has("modern-only") {
        if modern == Some(false) {
            return miss(
                MODERN_VERSION,
                format!("the target does not serve {MODERN_VERSION}"),
            );
        }
        if legacy == Some(true) {
            return Some(EraMiss {
                era: "modern-only".to_string(),
                reason: format!(
                    "modern-only scenario; the target also serves the legacy era (eras: {listed})"
                ),
            });
        }
        return None;
    }
    match (legacy_tagged, modern_tagged) {
        (true, true) if legacy == Some(false) && modern == Some(false) => miss(
            MODERN_VERSION,
            "the target serves neither the legacy era nor 2026-07-28".to_string(),
        ),
        (false, true) if modern == Some(false) => miss(
            MODERN_VERSION,
            format!("the target does not serve {MODERN_VERSION}"),
        ),
        (true, false) if legacy == Some(false) => miss(
            LEGACY,
            "the target does not serve the legacy era".to_string(),
        ),
        _ => None,
    }
}

/// A scenario's era is not served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EraMiss {
    /// The era it needs (`2026-07-28`, `legacy`) or `modern-only`.
    pub era: String,
    /// The skip reason.
    pub reason: String,
}

/// True when a `--require-era` value names this era.
pub fn required(require: &[String], era: &str) -> bool {
    require.iter().any(|r| {
        r == era || (era == LEGACY && (r == LEGACY || LEGACY_VERSIONS.contains(&r.as_str())))
    })
}

/// The `--require-era` values the target does not serve (unknown counts as not served).
pub fn missing_required(eras: &Eras, require: &[String]) -> Vec<String> {
    require
        .iter()
        .filter(|r| eras.serves(r) != Some(true))
        .cloned()
        .collect()
}

fn inconclusive(status: u16) -> bool {
    matches!(status, 401 | 403 | 407 | 429) || status >= 500
}

async fn send(
    client: &Client,
    request: &Request,
    within: Duration,
) -> Result<(Answer, Value), String> {
    let mut answer = client
        .send(request, within)
        .await
        .map_err(|e| e.to_string())?;
    answer
        .body
        .wait_end(tokio::time::Instant::now() + within)
        .await;
    let data = answer.body.snapshot();
    let response = if answer.is_sse {
        data.events_from(0)
            .into_iter()
            .filter_map(|e| e.data.as_deref())
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|v| v.get("result").is_some() || v.get("error").is_some())
            .unwrap_or(Value::Null)
    } else {
        serde_json::from_slice(&data.raw).unwrap_or(Value::Null)
    };
    Ok((answer, response))
}

fn base_headers(config: &RunConfig) -> Vec<(String, String)> {
    let mut headers = vec![
        (
            "Accept".to_string(),
            "application/json, text/event-stream".to_string(),
        ),
        ("Content-Type".to_string(), "application/json".to_string()),
    ];
    if let Some(token) = &config.token {
        headers.push(("Authorization".to_string(), format!("Bearer {token}")));
    }
    headers
}

fn error_summary(response: &Value) -> String {
    match response.get("error") {
        Some(error) => format!(
            "JSON-RPC error {} {}",
            error.get("code").unwrap_or(&Value::Null),
            crate::runner::shorten(
                error.get("message").and_then(Value::as_str).unwrap_or(""),
                80
            )
        ),
        None => "no JSON-RPC result".to_string(),
    }
}

/// Probes the target (paced like any request of the run) and returns what it serves.
pub async fn discover(config: &RunConfig, client: &Client, pacer: &crate::runner::Pacer) -> Eras {
    let within = config.default_timeout;
    let mut eras = Eras::default();

    let mut body = json!({"jsonrpc": "2.0", "id": "mcp-harness-discover", "method": "server/discover", "params": {}});
    modern::fill_meta(&mut body, &config.vars, &[]);
    let mut headers = base_headers(config);
    headers.extend(modern::mirrored_headers(&body, &config.vars));
    let request = Request {
        method: "POST".into(),
        url: config.target.clone(),
        headers,
        body: Some(body.to_string().into_bytes()),
        title_case: false,
    };
    pacer.wait(config, false).await;
    let probe = match send(client, &request, within).await {
        Err(e) => Probe {
            request: "server/discover".into(),
            status: None,
            summary: format!("unknown ({e})"),
        },
        Ok((answer, response)) => {
            let versions: Option<Vec<String>> = response
                .pointer("/result/supportedVersions")
                .and_then(Value::as_array)
                .map(|v| {
                    v.iter()
                        .filter_map(Value::as_str)
                        .filter(|v| !LEGACY_VERSIONS.contains(v))
                        .map(str::to_string)
                        .collect()
                });
            let summary = match &versions {
                Some(v) if (200..300).contains(&answer.status) => {
                    eras.modern = Some(v.clone());
                    format!("supportedVersions {v:?}")
                }
                _ if inconclusive(answer.status) => {
                    format!("unknown (HTTP {})", answer.status)
                }
                _ => {
                    eras.modern = Some(Vec::new());
                    format!(
                        "not served (HTTP {}, {})",
                        answer.status,
                        error_summary(&response)
                    )
                }
            };
            Probe {
                request: "server/discover".into(),
                status: Some(answer.status),
                summary,
            }
        }
    };
    eras.probes.push(probe);

    let body = json!({"jsonrpc": "2.0", "id": "mcp-harness-initialize", "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "mcp-harness", "version": env!("CARGO_PKG_VERSION")}}});
    let request = Request {
        method: "POST".into(),
        url: config.target.clone(),
        headers: base_headers(config),
        body: Some(body.to_string().into_bytes()),
        title_case: false,
    };
    pacer.wait(config, false).await;
    let mut legacy_version = None;
    let mut session = None;
    let probe = match send(client, &request, within).await {
        Err(e) => Probe {
            request: "initialize".into(),
            status: None,
            summary: format!("unknown ({e})"),
        },
        Ok((answer, response)) => {
            session = answer.header("mcp-session-id");
            let version = response
                .pointer("/result/protocolVersion")
                .and_then(Value::as_str);
            let summary = match version {
                Some(v) if (200..300).contains(&answer.status) => {
                    eras.legacy = Some(true);
                    legacy_version = Some(v.to_string());
                    format!("legacy session at {v}")
                }
                _ if inconclusive(answer.status) => {
                    format!("unknown (HTTP {})", answer.status)
                }
                _ => {
                    eras.legacy = Some(false);
                    format!(
                        "refused (HTTP {}, {})",
                        answer.status,
                        error_summary(&response)
                    )
                }
            };
            Probe {
                request: "initialize".into(),
                status: Some(answer.status),
                summary,
            }
        }
    };
    eras.probes.push(probe);
    if let Some(session) = session {
        // Leave nothing behind on the target; the answer does not matter.
        let mut headers = Vec::new();
        if let Some(token) = &config.token {
            headers.push(("Authorization".to_string(), format!("Bearer {token}")));
        }
        headers.push(("Mcp-Session-Id".to_string(), session));
        let request = Request {
            method: "DELETE".into(),
            url: config.target.clone(),
            headers,
            body: None,
            title_case: false,
        };
        pacer.wait(config, false).await;
        let _ = send(client, &request, within).await;
    }
    eras.served.extend(legacy_version);
    eras.served.extend(eras.modern.clone().unwrap_or_default());
    eras
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse_scenario;
    use std::path::Path;

    fn scenario(tags: &str) -> Scenario {
        let text = format!("tags = [{tags}]\n[[step]]\nsend.method = \"GET\"\n");
        parse_scenario(&text, Path::new("scenarios/x.toml"), "x".into()).unwrap()
    }

    #[test]
    fn scenarios_follow_the_served_eras() {
        let legacy_only = Eras::known(Some("2025-11-25"), &[]);
        let modern_only = Eras::known(None, &["2026-07-28"]);
        let dual = Eras::known(Some("2025-11-25"), &["2026-07-28"]);
        let unknown = Eras::default();
        let modern = scenario("\"2026-07-28\", \"MUST\"");
        let legacy = scenario("\"2025-06-18\", \"2025-11-25\"");
        let both = scenario("\"2025-11-25\", \"2026-07-28\"");
        let dual_s = scenario("\"2026-07-28\", \"dual-era\"");
        let only_s = scenario("\"2026-07-28\", \"modern-only\"");
        let untagged = scenario("\"gateway\"");
        let skipped = |eras: &Eras, s: &Scenario| skip_reason(eras, s).map(|m| m.era);
        assert_eq!(
            skipped(&legacy_only, &modern).as_deref(),
            Some("2026-07-28")
        );
        assert_eq!(
            skip_reason(&legacy_only, &modern).unwrap().reason,
            "the target does not serve 2026-07-28 (eras: 2025-11-25)"
        );
        assert_eq!(skipped(&modern_only, &legacy).as_deref(), Some("legacy"));
        assert_eq!(skipped(&dual, &modern), None);
        assert_eq!(skipped(&dual, &legacy), None);
        assert_eq!(skipped(&modern_only, &both), None);
        assert_eq!(skipped(&legacy_only, &both), None);
        assert_eq!(skipped(&dual, &dual_s), None);
        assert_eq!(skipped(&modern_only, &dual_s).as_deref(), Some("legacy"));
        assert_eq!(
            skipped(&legacy_only, &dual_s).as_deref(),
            Some("2026-07-28")
        );
        assert_eq!(skipped(&modern_only, &only_s), None);
        assert_eq!(skipped(&dual, &only_s).as_deref(), Some("modern-only"));
        for eras in [&legacy_only, &modern_only, &dual, &unknown] {
            assert_eq!(skipped(eras, &untagged), None);
        }
        // Unknown eras never skip: an auth failure is not "not served".
        for s in [&modern, &legacy, &both, &dual_s, &only_s] {
            assert_eq!(skipped(&unknown, s), None);
        }
    }

    #[test]
    fn required_eras() {
        let legacy_only = Eras::known(Some("2025-11-25"), &[]);
        let want = vec!["2026-07-28".to_string(), "legacy".to_string()];
        assert_eq!(missing_required(&legacy_only, &want), ["2026-07-28"]);
        assert_eq!(missing_required(&Eras::default(), &want), want);
        assert!(required(&["2025-11-25".into()], LEGACY));
        assert!(required(&want, MODERN_VERSION));
        assert!(!required(&["legacy".into()], MODERN_VERSION));
        assert_eq!(
            Eras::known(Some("2025-11-25"), &["2026-07-28"]).line(),
            "eras: 2025-11-25, 2026-07-28"
        );
    }
}
