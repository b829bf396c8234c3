//! JSON-RPC 2.0 as MCP uses it: classify a message, read and replace ids, build errors.
//!
//! The gateway reads only what it needs (the kind, the id, the method) and leaves the rest alone.

use bytes::Bytes;
use serde_json::{json, Map, Value};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INTERNAL_ERROR: i64 = -32603;
/// Transport-level errors (SDK convention, "implementation-defined" in the spec).
pub const TRANSPORT_ERROR: i64 = -32000;
/// Session not found (SDK convention).
pub const SESSION_NOT_FOUND: i64 = -32001;

/// What one JSON-RPC message is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Request { id: Value, method: String },
    Notification { method: String },
    Response { id: Value },
}

/// Why a JSON value is not a JSON-RPC message.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Invalid {
    #[error("not a JSON object")]
    NotObject,
    #[error("`jsonrpc` must be \"2.0\"")]
    Version,
    #[error("`method` must be a string")]
    Method,
    #[error("`id` must be a string or an integer")]
    Id,
    #[error("a response must carry exactly one of `result` and `error`")]
    Response,
}

/// Classifies one message, checking the rules of JSON-RPC 2.0 and MCP (ids are strings or integers).
pub fn classify(message: &Map<String, Value>) -> Result<Kind, Invalid> {
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(Invalid::Version);
    }
    let id = message.get("id");
    match message.get("method") {
        Some(Value::String(method)) => match id {
            None => Ok(Kind::Notification {
                method: method.clone(),
            }),
            Some(id) if valid_id(id) => Ok(Kind::Request {
                id: id.clone(),
                method: method.clone(),
            }),
            Some(_) => Err(Invalid::Id),
        },
        Some(_) => Err(Invalid::Method),
        None => {
            let has_result = message.contains_key("result");
            let has_error = message.contains_key("error");
            if has_result == has_error {
                return Err(Invalid::Response);
            }
            match id {
                Some(id) if valid_id(id) => Ok(Kind::Response { id: id.clone() }),
                // An error about an unreadable request may carry a null id; nobody waits for it.
                Some(Value::Null) if has_error => Ok(Kind::Response { id: Value::Null }),
                _ => Err(Invalid::Id),
            }
        }
    }
}

fn valid_id(id: &Value) -> bool {
    match id {
        Value::String(_) => true,
        Value::Number(n) => n.is_i64() || n.is_u64(),
        _ => false,
    }
}

/// A JSON-RPC error response. `id: None` leaves the member out (the spec's "error without id").
pub fn error_body(id: Option<&Value>, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = json!({ "code": code, "message": message });
    if let Some(data) = data {
        error["data"] = data;
    }
    let mut body = json!({ "jsonrpc": "2.0", "error": error });
    if let Some(id) = id {
        body["id"] = id.clone();
    }
    body
}

/// Serializes a message to bytes; serializing a `Value` cannot fail.
pub fn to_bytes(value: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

/// Serializes a message object to bytes.
pub fn map_to_bytes(map: &Map<String, Value>) -> Bytes {
    Bytes::from(serde_json::to_vec(map).unwrap_or_default())
}

/// `params._meta.progressToken` of a request, if any.
pub fn progress_token(message: &Map<String, Value>) -> Option<&Value> {
    message.get("params")?.get("_meta")?.get("progressToken")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn classifies_messages() {
        assert_eq!(
            classify(&obj(json!({"jsonrpc":"2.0","id":1,"method":"ping"}))),
            Ok(Kind::Request {
                id: json!(1),
                method: "ping".into()
            })
        );
        assert_eq!(
            classify(&obj(
                json!({"jsonrpc":"2.0","method":"notifications/initialized"})
            )),
            Ok(Kind::Notification {
                method: "notifications/initialized".into()
            })
        );
        assert_eq!(
            classify(&obj(json!({"jsonrpc":"2.0","id":"a","result":{}}))),
            Ok(Kind::Response { id: json!("a") })
        );
    }

    #[test]
    fn refuses_bad_messages() {
        assert_eq!(
            classify(&obj(json!({"id":1,"method":"ping"}))),
            Err(Invalid::Version)
        );
        assert_eq!(
            classify(&obj(json!({"jsonrpc":"2.0","id":null,"method":"x"}))),
            Err(Invalid::Id)
        );
        assert_eq!(
            classify(&obj(json!({"jsonrpc":"2.0","id":1.5,"method":"x"}))),
            Err(Invalid::Id)
        );
        assert_eq!(
            classify(&obj(json!({"jsonrpc":"2.0","id":1}))),
            Err(Invalid::Response)
        );
        assert_eq!(
            classify(&obj(json!({"jsonrpc":"2.0","method":3}))),
            Err(Invalid::Method)
        );
    }

    #[test]
    fn error_without_id_omits_member() {
        let body = error_body(None, -32000, "Forbidden", None);
        assert!(body.get("id").is_none());
        let body = error_body(Some(&Value::Null), PARSE_ERROR, "Parse error", None);
        assert_eq!(body["id"], Value::Null);
    }
}
