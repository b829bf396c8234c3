//! Which era a POST belongs to, and the 2026-07-28 rules a modern request must meet before
//! anything is forwarded: the `_meta` fields, the mirrored headers, the version, the method.
//!
//! Classification follows the reference TypeScript server (`isLegacyRequest`): a request that
//! claims a version in `params._meta` is modern, whatever else it carries (a stray
//! `Mcp-Session-Id` is ignored, a bad version gets its own error); `initialize` without that
//! claim, requests naming a session, batches and posted responses stay legacy.

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::edge::headers::{
    PROTOCOL_VERSION as MCP_PROTOCOL_VERSION, SESSION_ID as MCP_SESSION_ID,
};
use crate::edge::reply::Reject;
use crate::jsonrpc::{self, Kind};
use crate::protocol::{self, LogLevel};

pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";

const MCP_METHOD: &str = "mcp-method";
const MCP_NAME: &str = "mcp-name";

/// Methods the 2026-07-28 revision removed: 404 / -32601, never forwarded.
const REMOVED: [&str; 6] = [
    "initialize",
    "ping",
    "logging/setLevel",
    "resources/subscribe",
    "resources/unsubscribe",
    "notifications/roots/list_changed",
];

/// Methods only the modern era has: without a session they are modern even without `_meta`.
const MODERN_ONLY: [&str; 2] = ["server/discover", "subscriptions/listen"];

/// What a checked modern request told about its client.
#[derive(Clone, Debug)]
pub struct ModernRequest {
    pub version: String,
    pub capabilities: Map<String, Value>,
    /// Log messages at or above this level reach the client; none without it.
    pub log_level: Option<LogLevel>,
}

fn meta(message: &Map<String, Value>) -> Option<&Value> {
    message.get("params").and_then(|p| p.get("_meta"))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// True when this single message takes the modern path.
pub fn is_modern(headers: &HeaderMap, message: &Map<String, Value>, kind: &Kind) -> bool {
    let method = match kind {
        Kind::Request { method, .. } | Kind::Notification { method } => method,
        Kind::Response { .. } => return false,
    };
    let claims = meta(message)
        .and_then(Value::as_object)
        .is_some_and(|m| m.contains_key(META_PROTOCOL_VERSION));
    if claims {
        return true;
    }
    if method == "initialize" || headers.contains_key(MCP_SESSION_ID) {
        return false;
    }
    // No claim and no session: a modern version header or a modern-only method still means a
    // modern client (whose missing `_meta` is then its error), never "session required".
    header(headers, MCP_PROTOCOL_VERSION).is_some_and(protocol::is_modern)
        || MODERN_ONLY.contains(&method.as_str())
}

fn invalid_params(message: impl Into<String>) -> Reject {
    Reject::client(StatusCode::BAD_REQUEST, jsonrpc::INVALID_PARAMS, message)
}

fn mismatch(message: impl Into<String>) -> Reject {
    Reject::client(StatusCode::BAD_REQUEST, jsonrpc::HEADER_MISMATCH, message)
}

/// Checks a modern message; the error names the rule that failed. The caller echoes the id.
pub fn check(
    headers: &HeaderMap,
    message: &Map<String, Value>,
    method: &str,
) -> Result<ModernRequest, Reject> {
    let request = check_meta(message)?;
    check_headers(headers, message, method, &request.version)?;
    if !protocol::is_modern(&request.version) {
        return Err(Reject::client(
            StatusCode::BAD_REQUEST,
            jsonrpc::UNSUPPORTED_PROTOCOL_VERSION,
            format!(
                "Unsupported protocol version {:?}: this endpoint serves {} without a session (and 2025-x after initialize)",
                request.version,
                protocol::MODERN.join(", ")
            ),
        )
        .data("supported", json!(protocol::MODERN))
        .data("requested", json!(request.version)));
    }
    if REMOVED.contains(&method) {
        return Err(removed(method));
    }
    Ok(request)
}

/// 404 / -32601 for a method this era does not have.
pub fn removed(method: &str) -> Reject {
    Reject::client(
        StatusCode::NOT_FOUND,
        jsonrpc::METHOD_NOT_FOUND,
        format!("Method not found: {method} does not exist in protocol version 2026-07-28"),
    )
}

fn check_meta(message: &Map<String, Value>) -> Result<ModernRequest, Reject> {
    let Some(meta) = meta(message) else {
        return Err(invalid_params(
            "Invalid params: a 2026-07-28 request carries params._meta with io.modelcontextprotocol/protocolVersion and io.modelcontextprotocol/clientCapabilities",
        ));
    };
    let Some(meta) = meta.as_object() else {
        return Err(invalid_params(
            "Invalid params: params._meta must be an object",
        ));
    };
    let version = match meta.get(META_PROTOCOL_VERSION) {
        Some(Value::String(version)) => version.clone(),
        Some(_) => {
            return Err(invalid_params(format!(
                "Invalid params: _meta[\"{META_PROTOCOL_VERSION}\"] must be a string"
            )))
        }
        None => {
            return Err(invalid_params(format!(
                "Invalid params: _meta[\"{META_PROTOCOL_VERSION}\"] is required"
            )))
        }
    };
    let capabilities = match meta.get(META_CLIENT_CAPABILITIES) {
        Some(Value::Object(capabilities)) => capabilities.clone(),
        Some(_) => {
            return Err(invalid_params(format!(
                "Invalid params: _meta[\"{META_CLIENT_CAPABILITIES}\"] must be an object"
            )))
        }
        None => {
            return Err(invalid_params(format!(
                "Invalid params: _meta[\"{META_CLIENT_CAPABILITIES}\"] is required"
            )))
        }
    };
    if meta
        .get(META_CLIENT_INFO)
        .is_some_and(|info| !info.is_object())
    {
        return Err(invalid_params(format!(
            "Invalid params: _meta[\"{META_CLIENT_INFO}\"] must be an object"
        )));
    }
    let log_level = match meta.get(META_LOG_LEVEL) {
        None => None,
        Some(level) => Some(level.as_str().and_then(LogLevel::parse).ok_or_else(|| {
            invalid_params(format!(
                "Invalid params: _meta[\"{META_LOG_LEVEL}\"] must be one of debug, info, notice, warning, error, critical, alert, emergency"
            ))
        })?),
    };
    Ok(ModernRequest {
        version,
        capabilities,
        log_level,
    })
}

/// The mirrored headers: `MCP-Protocol-Version` = the claimed version, `Mcp-Method` = `method`,
/// and for the three named methods `Mcp-Name` = `params.name` (or `params.uri`). Names are
/// matched case-insensitively (HTTP), values exactly.
fn check_headers(
    headers: &HeaderMap,
    message: &Map<String, Value>,
    method: &str,
    version: &str,
) -> Result<(), Reject> {
    match header(headers, MCP_PROTOCOL_VERSION) {
        None => {
            return Err(mismatch(
                "Header mismatch: MCP-Protocol-Version is required and must equal _meta[\"io.modelcontextprotocol/protocolVersion\"]",
            ))
        }
        Some(value) if value != version => {
            return Err(mismatch(format!(
                "Header mismatch: MCP-Protocol-Version {value:?} differs from the body's protocol version {version:?}"
            )))
        }
        Some(_) => {}
    }
    match header(headers, MCP_METHOD) {
        None => {
            return Err(mismatch(
                "Header mismatch: Mcp-Method is required and must equal the body's method",
            ))
        }
        Some(value) if decode_value(value).as_deref() != Some(method) => {
            return Err(mismatch(format!(
                "Header mismatch: Mcp-Method {value:?} differs from the body's method {method:?}"
            )))
        }
        Some(_) => {}
    }
    let field = match method {
        "tools/call" | "prompts/get" => "name",
        "resources/read" => "uri",
        _ => return Ok(()),
    };
    let expected = message
        .get("params")
        .and_then(|p| p.get(field))
        .and_then(Value::as_str);
    let Some(expected) = expected else {
        return Err(invalid_params(format!(
            "Invalid params: {method} needs params.{field} (a string)"
        )));
    };
    match header(headers, MCP_NAME) {
        None => Err(mismatch(format!(
            "Header mismatch: Mcp-Name is required for {method} and must equal params.{field}"
        ))),
        Some(value) => match decode_value(value) {
            Some(decoded) if decoded == expected => Ok(()),
            Some(_) => Err(mismatch(format!(
                "Header mismatch: Mcp-Name differs from params.{field}"
            ))),
            None => Err(mismatch(
                "Header mismatch: Mcp-Name is not valid =?base64?...?= (base64 of UTF-8 text)",
            )),
        },
    }
}

/// A header value as text: plain ASCII as is, `=?base64?<b64>?=` decoded (UTF-8); None when the
/// encoded form is malformed.
pub fn decode_value(value: &str) -> Option<String> {
    let Some(encoded) = value
        .strip_prefix("=?base64?")
        .and_then(|rest| rest.strip_suffix("?="))
    else {
        return Some(value.to_string());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    String::from_utf8(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn body(method: &str, params: Value) -> Map<String, Value> {
        let Value::Object(map) =
            json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        else {
            unreachable!()
        };
        map
    }

    fn good_meta() -> Value {
        json!({META_PROTOCOL_VERSION: "2026-07-28", META_CLIENT_CAPABILITIES: {}})
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn request(method: &str) -> Kind {
        Kind::Request {
            id: json!(1),
            method: method.into(),
        }
    }

    #[test]
    fn classification_follows_the_claim() {
        let none = HeaderMap::new();
        let modern = body("tools/list", json!({"_meta": good_meta()}));
        assert!(is_modern(&none, &modern, &request("tools/list")));
        let with_session = headers(&[("mcp-session-id", "abc")]);
        assert!(
            is_modern(&with_session, &modern, &request("tools/list")),
            "a stray session id is ignored"
        );
        let legacy = body("tools/list", json!({}));
        assert!(!is_modern(&none, &legacy, &request("tools/list")));
        let init = body("initialize", json!({"protocolVersion": "2025-11-25"}));
        assert!(!is_modern(
            &headers(&[("mcp-protocol-version", "2026-07-28")]),
            &init,
            &request("initialize")
        ));
        let init_claim = body("initialize", json!({"_meta": good_meta()}));
        assert!(is_modern(&none, &init_claim, &request("initialize")));
        let header_only = headers(&[("mcp-protocol-version", "2026-07-28")]);
        assert!(is_modern(&header_only, &legacy, &request("tools/list")));
        assert!(is_modern(&none, &legacy, &request("server/discover")));
        assert!(!is_modern(
            &with_session,
            &legacy,
            &request("server/discover")
        ));
        let response = Kind::Response { id: json!(1) };
        assert!(!is_modern(&none, &modern, &response));
    }

    fn code_of(result: Result<ModernRequest, Reject>) -> (i64, Option<StatusCode>) {
        match result {
            Ok(_) => (0, None),
            Err(reject) => (reject.code(), Some(reject.status())),
        }
    }

    const GOOD: [(&str, &str); 2] = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/list"),
    ];

    #[test]
    fn meta_fields_are_required() {
        let h = headers(&GOOD);
        let missing = body("tools/list", json!({}));
        assert_eq!(
            code_of(check(&h, &missing, "tools/list")),
            (-32602, Some(StatusCode::BAD_REQUEST))
        );
        let no_caps = body(
            "tools/list",
            json!({"_meta": {META_PROTOCOL_VERSION: "2026-07-28"}}),
        );
        assert_eq!(code_of(check(&h, &no_caps, "tools/list")).0, -32602);
        let no_version = body(
            "tools/list",
            json!({"_meta": {META_CLIENT_CAPABILITIES: {}}}),
        );
        assert_eq!(code_of(check(&h, &no_version, "tools/list")).0, -32602);
        let bad_level = body(
            "tools/list",
            json!({"_meta": {META_PROTOCOL_VERSION: "2026-07-28", META_CLIENT_CAPABILITIES: {}, META_LOG_LEVEL: "loud"}}),
        );
        assert_eq!(code_of(check(&h, &bad_level, "tools/list")).0, -32602);
        let ok = body("tools/list", json!({"_meta": good_meta()}));
        assert_eq!(code_of(check(&h, &ok, "tools/list")), (0, None));
    }

    #[test]
    fn headers_must_mirror_the_body() {
        let ok = body("tools/list", json!({"_meta": good_meta()}));
        let no_version = headers(&[("mcp-method", "tools/list")]);
        assert_eq!(code_of(check(&no_version, &ok, "tools/list")).0, -32020);
        let wrong_method = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
        ]);
        assert_eq!(code_of(check(&wrong_method, &ok, "tools/list")).0, -32020);
        let case = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "TOOLS/LIST"),
        ]);
        assert_eq!(
            code_of(check(&case, &ok, "tools/list")).0,
            -32020,
            "values are case-sensitive"
        );
        let call = body(
            "tools/call",
            json!({"name": "échec", "arguments": {}, "_meta": good_meta()}),
        );
        let named = |name: &str| {
            headers(&[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", "tools/call"),
                ("mcp-name", name),
            ])
        };
        assert_eq!(
            code_of(check(&named("=?base64?w6ljaGVj?="), &call, "tools/call")),
            (0, None)
        );
        assert_eq!(
            code_of(check(&named("=?base64?!!!?="), &call, "tools/call")).0,
            -32020
        );
        assert_eq!(
            code_of(check(&named("other"), &call, "tools/call")).0,
            -32020
        );
        let no_name = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
        ]);
        assert_eq!(code_of(check(&no_name, &call, "tools/call")).0, -32020);
    }

    #[test]
    fn versions_and_removed_methods() {
        let v999 = body(
            "server/discover",
            json!({"_meta": {META_PROTOCOL_VERSION: "v999.0.0", META_CLIENT_CAPABILITIES: {}}}),
        );
        let h = headers(&[
            ("mcp-protocol-version", "v999.0.0"),
            ("mcp-method", "server/discover"),
        ]);
        let reject = check(&h, &v999, "server/discover").unwrap_err();
        assert_eq!(reject.code(), -32022);
        assert_eq!(reject.data_of("supported"), Some(&json!(["2026-07-28"])));
        assert_eq!(reject.data_of("requested"), Some(&json!("v999.0.0")));
        // The header is checked first: a body claiming v999 under a 2026 header is a mismatch.
        let h = headers(&[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "server/discover"),
        ]);
        assert_eq!(code_of(check(&h, &v999, "server/discover")).0, -32020);
        for method in [
            "ping",
            "logging/setLevel",
            "initialize",
            "resources/subscribe",
        ] {
            let h = headers(&[
                ("mcp-protocol-version", "2026-07-28"),
                ("mcp-method", method),
            ]);
            let ok = body(method, json!({"_meta": good_meta()}));
            assert_eq!(
                code_of(check(&h, &ok, method)),
                (-32601, Some(StatusCode::NOT_FOUND)),
                "{method}"
            );
        }
    }
}
