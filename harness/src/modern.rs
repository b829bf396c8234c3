//! The 2026-07-28 ("modern", stateless) era on the client side: the `_meta` helper that fills a
//! request's `params._meta` with the per-request fields the era requires, the headers that mirror
//! the body (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`), and the `=?base64?…?=` encoding
//! of header values that are not plain printable ASCII.
//!
//! The helper only adds what is missing: a `_meta` key written in the scenario wins, so a scenario
//! can send a wrong value on purpose, and `send.meta_omit` leaves a field out to test the
//! server's `-32602`.

use crate::interp::Vars;
use serde_json::{json, Map, Value};

/// The modern protocol revision, also the era tag of its scenarios.
pub const MODERN_VERSION: &str = "2026-07-28";

/// The namespace of the per-request `_meta` keys.
pub const META_PREFIX: &str = "io.modelcontextprotocol/";

/// The `_meta` fields the helper knows (short names, without [`META_PREFIX`]).
pub const META_FIELDS: &[&str] = &[
    "protocolVersion",
    "clientCapabilities",
    "clientInfo",
    "logLevel",
];

/// Methods whose `Mcp-Name` header mirrors `params.name` or `params.uri`.
pub const NAMED_METHODS: &[&str] = &["tools/call", "resources/read", "prompts/get"];

/// The protocol versions of the legacy (session) era.
pub const LEGACY_VERSIONS: &[&str] = &["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes canonical standard base64 (padding required); `None` for anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let bytes = text.as_bytes();
    for (index, chunk) in bytes.chunks(4).enumerate() {
        let last = index + 1 == bytes.len() / 4;
        let pad = chunk.iter().rev().take_while(|b| **b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for (i, b) in chunk.iter().enumerate() {
            let v = if i >= 4 - pad {
                0
            } else {
                B64.iter().position(|c| c == b)? as u32
            };
            n |= v << (18 - 6 * i);
        }
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    // Canonical form only: non-zero trailing bits would decode two texts to one value.
    (base64_encode(&out) == text).then_some(out)
}

fn is_sentinel(value: &str) -> bool {
    value.starts_with("=?base64?") && value.ends_with("?=") && value.len() >= 11
}

/// A header value as the 2026-07-28 transport sends it: printable ASCII without edge whitespace
/// as is, anything else (non-ASCII, control characters, edge spaces, or text that already looks
/// like the sentinel) as `=?base64?<base64 of the UTF-8>?=`.
pub fn encode_header_value(value: &str) -> String {
    let plain = value.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && value.trim() == value
        && !is_sentinel(value);
    if plain {
        value.to_string()
    } else {
        base64_sentinel(value)
    }
}

/// `=?base64?<base64 of the UTF-8>?=`, whatever the value.
pub fn base64_sentinel(value: &str) -> String {
    format!("=?base64?{}?=", base64_encode(value.as_bytes()))
}

/// The inverse of [`encode_header_value`]: `None` for a malformed sentinel.
pub fn decode_header_value(value: &str) -> Option<String> {
    if !is_sentinel(value) {
        return Some(value.to_string());
    }
    let payload = &value["=?base64?".len()..value.len() - 2];
    String::from_utf8(base64_decode(payload)?).ok()
}

/// The protocol version the helper claims: `${modern_version}` when set, else 2026-07-28.
pub fn claimed_version(vars: &Vars) -> String {
    match vars.get("modern_version") {
        Some(Value::String(v)) => v.clone(),
        _ => MODERN_VERSION.to_string(),
    }
}

/// Fills the missing modern `_meta` fields of a JSON-RPC request body (not of notifications'
/// absent `params` only: a notification gets them too, since every modern message carries them):
/// `protocolVersion` (`${modern_version}`), `clientCapabilities` (`${client_capabilities}`, else
/// `{}`), `clientInfo` (`mcp-harness` and its version) and, when `${log_level}` is set,
/// `logLevel`. Fields named in `omit` are removed even when the scenario wrote them.
/// A body that is not a JSON object with a `method` is left alone.
pub fn fill_meta(body: &mut Value, vars: &Vars, omit: &[String]) {
    let Some(message) = body.as_object_mut() else {
        return;
    };
    if !message.get("method").is_some_and(Value::is_string) {
        return;
    }
    let params = message
        .entry("params")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(params) = params.as_object_mut() else {
        return;
    };
    let meta = params
        .entry("_meta")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    let mut defaults = vec![
        ("protocolVersion", Value::String(claimed_version(vars))),
        (
            "clientCapabilities",
            vars.get("client_capabilities")
                .cloned()
                .unwrap_or_else(|| json!({})),
        ),
        (
            "clientInfo",
            json!({"name": "mcp-harness", "version": env!("CARGO_PKG_VERSION")}),
        ),
    ];
    if let Some(level) = vars.get("log_level") {
        defaults.push(("logLevel", level.clone()));
    }
    for (field, value) in defaults {
        meta.entry(format!("{META_PREFIX}{field}")).or_insert(value);
    }
    for field in omit {
        meta.remove(&format!("{META_PREFIX}{field}"));
    }
}

/// The headers that mirror a modern request body: `MCP-Protocol-Version` (the body's claimed
/// version, or the helper's when the body claims none), `Mcp-Method`, and for `tools/call`,
/// `resources/read` and `prompts/get` `Mcp-Name` (`params.name`, else `params.uri`), each encoded
/// with [`encode_header_value`].
pub fn mirrored_headers(body: &Value, vars: &Vars) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    let claimed = body
        .pointer(&format!(
            "/params/_meta/{}",
            format!("{META_PREFIX}protocolVersion").replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| claimed_version(vars));
    headers.push((
        "MCP-Protocol-Version".to_string(),
        encode_header_value(&claimed),
    ));
    let Some(method) = body.get("method").and_then(Value::as_str) else {
        return headers;
    };
    headers.push(("Mcp-Method".to_string(), encode_header_value(method)));
    if NAMED_METHODS.contains(&method) {
        let params = body.get("params");
        let name = params
            .and_then(|p| p.get("name"))
            .or_else(|| params.and_then(|p| p.get("uri")))
            .and_then(Value::as_str);
        if let Some(name) = name {
            headers.push(("Mcp-Name".to_string(), encode_header_value(name)));
        }
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_and_rejects_non_canonical() {
        for text in ["", "f", "fo", "foo", "foob", "fooba", "foobar", "tést ✓"] {
            let encoded = base64_encode(text.as_bytes());
            assert_eq!(base64_decode(&encoded).unwrap(), text.as_bytes(), "{text}");
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_decode("Zm9="), None, "non-zero trailing bits");
        assert_eq!(base64_decode("Zm8"), None, "no padding");
        assert_eq!(base64_decode("Z=8="), None, "padding inside");
        assert_eq!(base64_decode("Zm8*"), None, "not the alphabet");
    }

    #[test]
    fn header_values_are_encoded_only_when_needed() {
        assert_eq!(encode_header_value("tools/call"), "tools/call");
        assert_eq!(encode_header_value("a b"), "a b");
        assert_eq!(encode_header_value("café"), "=?base64?Y2Fmw6k=?=");
        assert_eq!(encode_header_value(" x"), "=?base64?IHg=?=");
        assert_eq!(encode_header_value("a\tb"), "=?base64?YQli?=");
        let sentinel_like = "=?base64?eA==?=";
        let encoded = encode_header_value(sentinel_like);
        assert_ne!(encoded, sentinel_like);
        assert_eq!(decode_header_value(&encoded).unwrap(), sentinel_like);
        assert_eq!(decode_header_value("=?base64?Y2Fmw6k=?=").unwrap(), "café");
        assert_eq!(decode_header_value("plain").unwrap(), "plain");
        assert_eq!(decode_header_value("=?base64?***?="), None);
    }

    #[test]
    fn fill_meta_adds_only_missing_fields_and_honours_omit() {
        let mut vars = Vars::new();
        vars.insert("client_capabilities".into(), json!({"elicitation": {}}));
        let mut body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
        fill_meta(&mut body, &vars, &[]);
        let meta = &body["params"]["_meta"];
        assert_eq!(
            meta["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        assert_eq!(
            meta["io.modelcontextprotocol/clientCapabilities"],
            json!({"elicitation": {}})
        );
        assert_eq!(
            meta["io.modelcontextprotocol/clientInfo"]["name"],
            "mcp-harness"
        );
        assert!(meta.get("io.modelcontextprotocol/logLevel").is_none());

        let mut body = json!({"method": "x", "params": {"a": 1, "_meta": {
            "io.modelcontextprotocol/protocolVersion": "1999-01-01", "progressToken": 3}}});
        vars.insert("log_level".into(), json!("debug"));
        fill_meta(&mut body, &vars, &["clientCapabilities".to_string()]);
        let meta = &body["params"]["_meta"];
        assert_eq!(
            meta["io.modelcontextprotocol/protocolVersion"],
            "1999-01-01"
        );
        assert_eq!(meta["progressToken"], 3);
        assert_eq!(meta["io.modelcontextprotocol/logLevel"], "debug");
        assert!(meta
            .get("io.modelcontextprotocol/clientCapabilities")
            .is_none());
        assert_eq!(body["params"]["a"], 1);

        let mut batch = json!([{"method": "x"}]);
        fill_meta(&mut batch, &vars, &[]);
        assert_eq!(batch, json!([{"method": "x"}]), "arrays are left alone");
    }

    #[test]
    fn mirrored_headers_follow_the_body() {
        let mut vars = Vars::new();
        let body = json!({"method": "tools/call", "params": {"name": "échec", "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2099-01-01"}}});
        assert_eq!(
            mirrored_headers(&body, &vars),
            vec![
                ("MCP-Protocol-Version".to_string(), "2099-01-01".to_string()),
                ("Mcp-Method".to_string(), "tools/call".to_string()),
                ("Mcp-Name".to_string(), "=?base64?w6ljaGVj?=".to_string()),
            ]
        );
        vars.insert("modern_version".into(), json!("2026-07-28"));
        let read = json!({"method": "resources/read", "params": {"uri": "test://static-text"}});
        let headers = mirrored_headers(&read, &vars);
        assert_eq!(headers[0].1, "2026-07-28");
        assert_eq!(headers[2], ("Mcp-Name".into(), "test://static-text".into()));
        let list = json!({"method": "tools/list"});
        assert_eq!(mirrored_headers(&list, &vars).len(), 2, "no Mcp-Name");
    }
}
