//! Discovery snapshots: the OAuth metadata documents and the 401 challenge of a deployment, in a
//! stable text form fit for review and for `--check` against a committed file.

use crate::client::{Client, Request};
use serde_json::Value;
use std::fmt::Write as _;
use std::time::Duration;

/// Headers worth reviewing; everything else (Date, request ids, server banners) is left out.
const KEPT_HEADERS: &[&str] = &[
    "access-control-allow-headers",
    "access-control-allow-methods",
    "access-control-allow-origin",
    "access-control-expose-headers",
    "allow",
    "cache-control",
    "content-type",
    "mcp-session-id",
    "www-authenticate",
];

/// JSON keys whose values change from run to run.
const VOLATILE_KEYS: &[&str] = &[
    "date",
    "exp",
    "expires_at",
    "iat",
    "nonce",
    "request_id",
    "requestid",
    "time",
    "timestamp",
    "trace_id",
    "traceid",
];

/// A discovery fetch failed at the transport level.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {message}")]
pub struct DiscoveryError {
    /// The URL.
    pub url: String,
    /// What failed.
    pub message: String,
}

/// The requests a snapshot is made of, for a target MCP endpoint.
pub fn requests(target: &url::Url) -> Vec<Request> {
    let origin = target.origin().ascii_serialization();
    let path = target.path().trim_end_matches('/');
    let mut urls = vec![format!("{origin}/.well-known/oauth-protected-resource")];
    if !path.is_empty() {
        urls.push(format!(
            "{origin}/.well-known/oauth-protected-resource{path}"
        ));
    }
    urls.push(format!("{origin}/.well-known/oauth-authorization-server"));
    let mut requests: Vec<Request> = urls
        .into_iter()
        .filter_map(|u| url::Url::parse(&u).ok())
        .map(|url| Request {
            method: "GET".into(),
            url,
            headers: vec![("Accept".into(), "application/json".into())],
            body: None,
            title_case: false,
        })
        .collect();
    let initialize = serde_json::json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "mcp-harness", "version": env!("CARGO_PKG_VERSION")}
        }
    });
    requests.push(Request {
        method: "POST".into(),
        url: target.clone(),
        headers: vec![
            (
                "Accept".into(),
                "application/json, text/event-stream".into(),
            ),
            ("Content-Type".into(), "application/json".into()),
        ],
        body: Some(initialize.to_string().into_bytes()),
        title_case: false,
    });
    requests
}

/// Fetches everything and renders the normalized snapshot. Requests are spaced by `interval`
/// (they hit auth-related endpoints), and each is bounded by `timeout`.
pub async fn snapshot(
    target: &url::Url,
    interval: Duration,
    timeout: Duration,
) -> Result<String, DiscoveryError> {
    let client = Client::new().map_err(|e| DiscoveryError {
        url: target.to_string(),
        message: e.to_string(),
    })?;
    let origin = target.origin().ascii_serialization();
    let mut out = String::new();
    for (n, request) in requests(target).iter().enumerate() {
        if n > 0 {
            tokio::time::sleep(interval).await;
        }
        let failed = |message: String| DiscoveryError {
            url: request.url.to_string(),
            message,
        };
        let mut answer = client
            .send(request, timeout)
            .await
            .map_err(|e| failed(e.to_string()))?;
        answer
            .body
            .wait_end(tokio::time::Instant::now() + timeout)
            .await;
        let data = answer.body.snapshot();
        let what = if request.method == "POST" {
            " (initialize without a token)"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "## {} {}{what}",
            request.method,
            normalize_text(request.url.as_str(), &origin)
        );
        out.push_str(&render(answer.status, &answer.headers, &data.raw, &origin));
        out.push('\n');
    }
    Ok(out)
}

/// Renders one response in the snapshot form.
pub fn render(status: u16, headers: &[(String, String)], body: &[u8], origin: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "status: {status}");
    let mut kept: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| KEPT_HEADERS.contains(&k.as_str()))
        .map(|(k, v)| {
            let v = if k == "mcp-session-id" {
                "<session>".to_string()
            } else {
                normalize_text(&v, origin)
            };
            (k, v)
        })
        .collect();
    kept.sort();
    for (name, value) in kept {
        let _ = writeln!(out, "{name}: {value}");
    }
    let text = String::from_utf8_lossy(body);
    match serde_json::from_slice::<Value>(body) {
        Ok(value) => {
            let value = normalize_json(value, origin);
            let _ = writeln!(
                out,
                "body:\n{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        }
        Err(_) if text.trim().is_empty() => out.push_str("body: <empty>\n"),
        Err(_) => {
            let _ = writeln!(
                out,
                "body (text):\n{}",
                normalize_text(text.trim_end(), origin)
            );
        }
    }
    out
}

fn normalize_text(text: &str, origin: &str) -> String {
    let mut text = text.replace(origin, "<origin>");
    let timestamp =
        regex::Regex::new(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?")
            .expect("static regex");
    text = timestamp.replace_all(&text, "<timestamp>").into_owned();
    let uuid =
        regex::Regex::new(r"(?i)\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
            .expect("static regex");
    uuid.replace_all(&text, "<uuid>").into_owned()
}

/// Replaces the origin, timestamps, UUIDs and volatile keys; object keys come out sorted.
pub fn normalize_json(value: Value, origin: &str) -> Value {
    match value {
        Value::String(s) => Value::String(normalize_text(&s, origin)),
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|v| normalize_json(v, origin))
                .collect(),
        ),
        Value::Object(map) => {
            // Sorted explicitly: with serde_json's `preserve_order` a map keeps arrival order.
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| {
                        let v = if VOLATILE_KEYS.contains(&k.to_ascii_lowercase().as_str()) {
                            Value::String("<volatile>".into())
                        } else {
                            normalize_json(v, origin)
                        };
                        (k, v)
                    })
                    .collect(),
            )
        }
        other => other,
    }
}

/// A unified diff from `expected` to `actual`, or `None` when they are equal.
pub fn diff(expected: &str, actual: &str) -> Option<String> {
    if expected == actual {
        return None;
    }
    Some(
        similar::TextDiff::from_lines(expected, actual)
            .unified_diff()
            .header("expected", "actual")
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_normalizes_and_sorts() {
        let headers = vec![
            ("Date".to_string(), "Thu, 26 Nov 2026 21:00:00 GMT".to_string()),
            (
                "WWW-Authenticate".to_string(),
                r#"Bearer resource_metadata="https://gw.example:8443/.well-known/oauth-protected-resource/mcp""#
                    .to_string(),
            ),
            ("content-type".to_string(), "application/json".to_string()),
            ("x-request-id".to_string(), "abc".to_string()),
        ];
        let body = br#"{"z":1,"resource":"https://gw.example:8443/mcp","timestamp":"x","at":"2026-11-26T21:00:00Z","id":"123e4567-e89b-12d3-a456-426614174000"}"#;
        let text = render(401, &headers, body, "https://gw.example:8443");
        insta::assert_snapshot!(text, @r###"
        status: 401
        content-type: application/json
        www-authenticate: Bearer resource_metadata="<origin>/.well-known/oauth-protected-resource/mcp"
        body:
        {
          "at": "<timestamp>",
          "id": "<uuid>",
          "resource": "<origin>/mcp",
          "timestamp": "<volatile>",
          "z": 1
        }
        "###);
    }

    #[test]
    fn requests_cover_both_prm_paths() {
        let target = url::Url::parse("http://127.0.0.1:9/mcp").unwrap();
        let urls: Vec<String> = requests(&target)
            .iter()
            .map(|r| r.url.to_string())
            .collect();
        assert_eq!(
            urls,
            vec![
                "http://127.0.0.1:9/.well-known/oauth-protected-resource",
                "http://127.0.0.1:9/.well-known/oauth-protected-resource/mcp",
                "http://127.0.0.1:9/.well-known/oauth-authorization-server",
                "http://127.0.0.1:9/mcp",
            ]
        );
    }

    #[test]
    fn diff_shows_changed_lines() {
        assert_eq!(diff("a\n", "a\n"), None);
        let d = diff("a\nb\n", "a\nc\n").unwrap();
        assert!(d.contains("-b\n") && d.contains("+c\n"), "{d}");
    }
}
