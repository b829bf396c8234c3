//! JSON-RPC 2.0 as MCP uses it: classify a message, read and replace ids, build errors.
//!
//! The gateway reads only what it needs (the kind, the id, the method) and leaves the rest alone.

use bytes::Bytes;
use serde_json::{json, Map, Value};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// 2026-07-28: a mirrored header is missing or does not match the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28: the request needs a client capability the client did not declare.
pub const MISSING_CLIENT_CAPABILITY: i64 = -32021;
/// 2026-07-28: the requested protocol version is not served.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
/// 2025-x resource not found; 2026-07-28 uses INVALID_PARAMS instead.
pub const LEGACY_RESOURCE_NOT_FOUND: i64 = -32002;
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

/// A response read without building its tree: the integer id (and where it is in the line)
/// and whether it is an error. Anything else (requests, notifications, string or odd ids,
/// duplicate members, invalid JSON) is `None`, for the general path.
#[derive(Debug, PartialEq)]
pub struct RawResponse {
    pub id: u64,
    /// Byte range of the id's value in the line.
    pub id_span: std::ops::Range<usize>,
    pub is_error: bool,
}

#[derive(serde::Deserialize)]
struct ResponseProbe<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<&'a serde_json::value::RawValue>,
    #[serde(default, deserialize_with = "present")]
    method: bool,
    #[serde(default, deserialize_with = "present")]
    result: bool,
    #[serde(default, deserialize_with = "present")]
    error: bool,
}

/// True for a member that is there, whatever its value (null included).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(deserializer).map(|_| true)
}

use serde::Deserialize as _;

/// Reads a response line the gateway only needs to re-address (see [`RawResponse`]).
/// The whole line is still checked to be valid JSON.
pub fn probe_response(line: &[u8]) -> Option<RawResponse> {
    // Lines the general path must re-serialize rather than splice as they are (found by the
    // fuzz targets): a bare CR is JSON whitespace but ends an SSE line; and what a parsed tree
    // refuses (see [`Valid`]) must not reach the client either.
    if line.contains(&b'\r') || serde_json::from_slice::<Valid>(line).is_err() {
        return None;
    }
    let probe: ResponseProbe<'_> = serde_json::from_slice(line).ok()?;
    if probe.jsonrpc.as_deref() != Some("2.0") || probe.method || probe.result == probe.error {
        return None;
    }
    let raw = probe.id?;
    let id: u64 = raw.get().parse().ok()?;
    // The raw value borrows from `line`: its offset is where the id is.
    let start = (raw.get().as_ptr() as usize).checked_sub(line.as_ptr() as usize)?;
    let end = start + raw.get().len();
    if end > line.len() || &line[start..end] != raw.get().as_bytes() {
        return None;
    }
    Some(RawResponse {
        id,
        id_span: start..end,
        is_error: probe.error,
    })
}

/// Any JSON a `Value` accepts, checked without building one. Skipping members (`IgnoredAny`)
/// is not enough: it lets through invalid UTF-8, lone surrogate escapes and numbers out of
/// range inside strings and values it skips (found by the fuzz targets).
struct Valid;

impl<'de> serde::Deserialize<'de> for Valid {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Valid, D::Error> {
        deserializer.deserialize_any(Valid)
    }
}

impl<'de> serde::de::Visitor<'de> for Valid {
    type Value = Valid;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_str<E>(self, _: &str) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_unit<E>(self) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Valid, A::Error> {
        while seq.next_element::<Valid>()?.is_some() {}
        Ok(Valid)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Valid, A::Error> {
        // serde_json (with `raw_value`) reads an object whose first key is its private raw-value
        // token as a raw value, and a `Value` refuses it: so must this (found by fuzzing).
        match map.next_key::<FirstKey>()? {
            None => return Ok(Valid),
            Some(FirstKey(true)) => {
                return Err(serde::de::Error::custom(
                    "an object keyed by serde_json's private raw-value token",
                ))
            }
            Some(FirstKey(false)) => map.next_value::<Valid>()?,
        };
        while map.next_key::<Valid>()?.is_some() {
            map.next_value::<Valid>()?;
        }
        Ok(Valid)
    }
}

/// The first key of an object: whether it is serde_json's private raw-value token.
struct FirstKey(bool);

/// The key serde_json's `raw_value` feature gives a special meaning in an object.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

impl<'de> serde::Deserialize<'de> for FirstKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<FirstKey, D::Error> {
        struct Key;
        impl serde::de::Visitor<'_> for Key {
            type Value = FirstKey;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object key")
            }
            fn visit_str<E>(self, key: &str) -> Result<FirstKey, E> {
                Ok(FirstKey(key == RAW_VALUE_TOKEN))
            }
        }
        deserializer.deserialize_str(Key)
    }
}

/// `line` with the bytes in `span` replaced by `id` serialized as JSON.
pub fn splice_id(line: &[u8], span: std::ops::Range<usize>, id: &Value) -> Bytes {
    let mut out = Vec::with_capacity(line.len() + 16);
    out.extend_from_slice(&line[..span.start]);
    if serde_json::to_writer(&mut out, id).is_err() {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(&line[span.end..]);
    Bytes::from(out)
}

/// A successful response read without building its tree, for the 2026-07-28 edge: where its
/// `result` object is, whether that object has a `resultType` member, and where its id is.
/// Anything else (errors, non-object results, duplicate members, what [`probe_response`]
/// refuses) is `None`, for the general path.
#[derive(Debug, PartialEq)]
pub struct RawResult {
    /// Byte range of the id's value in the line.
    pub id_span: std::ops::Range<usize>,
    /// Byte range of the `result` object, braces included.
    pub result_span: std::ops::Range<usize>,
    /// The object has no member at all (`{}` or braces around whitespace).
    pub result_empty: bool,
    pub has_result_type: bool,
}

#[derive(serde::Deserialize)]
struct ResultProbe<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<&'a serde_json::value::RawValue>,
    #[serde(default, deserialize_with = "present")]
    method: bool,
    #[serde(borrow, default)]
    result: Option<&'a serde_json::value::RawValue>,
    #[serde(default, deserialize_with = "present")]
    error: bool,
}

/// The top-level members of a result the edge may add to.
#[derive(serde::Deserialize)]
struct ResultMembers {
    #[serde(rename = "resultType", default, deserialize_with = "present")]
    result_type: bool,
}

/// Where `raw` (borrowed from `line`) is in `line`.
fn span_in(line: &[u8], raw: &serde_json::value::RawValue) -> Option<std::ops::Range<usize>> {
    let start = (raw.get().as_ptr() as usize).checked_sub(line.as_ptr() as usize)?;
    let end = start + raw.get().len();
    (end <= line.len() && &line[start..end] == raw.get().as_bytes()).then_some(start..end)
}

/// Reads a response whose `result` object the edge completes in place (see [`RawResult`]).
pub fn probe_result(line: &[u8]) -> Option<RawResult> {
    // The same lines as for `probe_response` go to the general path (bare CR, what a tree refuses).
    if line.contains(&b'\r')
        || line.contains(&b'\n')
        || serde_json::from_slice::<Valid>(line).is_err()
    {
        return None;
    }
    let probe: ResultProbe<'_> = serde_json::from_slice(line).ok()?;
    if probe.jsonrpc.as_deref() != Some("2.0") || probe.method || probe.error {
        return None;
    }
    let id = probe.id?;
    let result = probe.result?;
    let text = result.get();
    if !text.starts_with('{') {
        return None;
    }
    let members: ResultMembers = serde_json::from_str(text).ok()?;
    let result_empty = text[1..text.len() - 1]
        .bytes()
        .all(|b| b.is_ascii_whitespace());
    Some(RawResult {
        id_span: span_in(line, id)?,
        result_span: span_in(line, result)?,
        result_empty,
        has_result_type: members.result_type,
    })
}

/// `line` with `member` (a compact `"name":value`) added as the last member of the object at
/// `span` (as inserting it into the parsed object and re-serializing would place it).
pub fn append_member(
    line: &[u8],
    span: std::ops::Range<usize>,
    empty: bool,
    member: &[u8],
) -> Bytes {
    let close = span.end - 1;
    let mut out = Vec::with_capacity(line.len() + member.len() + 1);
    out.extend_from_slice(&line[..close]);
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(member);
    out.extend_from_slice(&line[close..]);
    Bytes::from(out)
}

/// A client request read without building its tree, to be forwarded with only its id replaced:
/// its id (and where it is in the body) and method. Only requests whose `params` (when present)
/// is an object without `_meta` are read here (nothing in them is translated on the way, and
/// no era is claimed); anything else, and a body holding a line break (the child reads one
/// message per line), is `None`, for the general path.
#[derive(Debug, PartialEq)]
pub struct RawRequest {
    pub id: Value,
    /// Byte range of the id's value in the body.
    pub id_span: std::ops::Range<usize>,
    pub method: String,
}

#[derive(serde::Deserialize)]
struct RequestProbe<'a> {
    #[serde(borrow, default)]
    jsonrpc: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    id: Option<&'a serde_json::value::RawValue>,
    #[serde(borrow, default)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    params: Option<&'a serde_json::value::RawValue>,
    #[serde(default, deserialize_with = "present")]
    result: bool,
    #[serde(default, deserialize_with = "present")]
    error: bool,
}

/// The members of `params` the general path looks into.
#[derive(serde::Deserialize)]
struct ParamsProbe {
    #[serde(rename = "_meta", default, deserialize_with = "present")]
    meta: bool,
}

/// Reads a request body the gateway only needs to re-address (see [`RawRequest`]). The whole
/// body is still checked to be valid JSON, as the general path's parse does.
pub fn probe_request(body: &[u8]) -> Option<RawRequest> {
    if body.contains(&b'\n')
        || body.contains(&b'\r')
        || serde_json::from_slice::<Valid>(body).is_err()
    {
        return None;
    }
    let probe: RequestProbe<'_> = serde_json::from_slice(body).ok()?;
    if probe.jsonrpc.as_deref() != Some("2.0") || probe.result || probe.error {
        return None;
    }
    let method = probe.method?.into_owned();
    let raw_id = probe.id?;
    let id: Value = serde_json::from_str(raw_id.get()).ok()?;
    if !valid_id(&id) {
        return None;
    }
    if let Some(params) = probe.params {
        if !params.get().starts_with('{') {
            return None;
        }
        let params: ParamsProbe = serde_json::from_str(params.get()).ok()?;
        if params.meta {
            return None;
        }
    }
    Some(RawRequest {
        id,
        id_span: span_in(body, raw_id)?,
        method,
    })
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

    /// Found by fuzz/modern_complete: serde_json's raw-value token as an object key makes a line
    /// a `Value` refuses, so the tree-free probes refuse it too (the general path then does).
    #[test]
    fn the_raw_value_token_key_is_refused_like_a_tree_refuses_it() {
        let line =
            br#"{"jsonrpc":"2.0","id":1,"result":{"$serde_json::private::RawValue":21111111111}}"#;
        assert!(serde_json::from_slice::<Value>(line).is_err());
        assert_eq!(probe_result(line), None);
        assert_eq!(probe_response(line), None);
        let later =
            br#"{"jsonrpc":"2.0","id":1,"result":{"a":1,"$serde_json::private::RawValue":2}}"#;
        assert_eq!(
            serde_json::from_slice::<Value>(later).is_ok(),
            probe_result(later).is_some(),
            "only a first key has the special meaning"
        );
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
    fn probes_responses_without_a_tree() {
        let line =
            br#"{"jsonrpc":"2.0","id":42,"result":{"content":[{"type":"text","text":"a \"q\""}]}}"#;
        let probe = probe_response(line).unwrap();
        assert_eq!(probe.id, 42);
        assert!(!probe.is_error);
        assert_eq!(&line[probe.id_span.clone()], b"42");
        let spliced = splice_id(line, probe.id_span, &json!("client-7"));
        let value: Value = serde_json::from_slice(&spliced).unwrap();
        let mut want: Value = serde_json::from_slice(line).unwrap();
        want["id"] = json!("client-7");
        assert_eq!(value, want);
        // Same bytes as re-serializing the map with the id replaced (compact input).
        let mut map: Map<String, Value> = serde_json::from_slice(line).unwrap();
        map.insert("id".into(), json!("client-7"));
        assert_eq!(spliced, map_to_bytes(&map));

        let spaced = br#" { "result" : {} , "id" : 7 , "jsonrpc" : "2.0" } "#;
        let probe = probe_response(spaced).unwrap();
        assert_eq!(&spaced[probe.id_span.clone()], b"7");
        let error = br#"{"jsonrpc":"2.0","id":3,"error":{"code":-1,"message":"x"}}"#;
        assert!(probe_response(error).unwrap().is_error);
        // An escaped key is still the id member.
        let escaped = br#"{"jsonrpc":"2.0","id":9,"result":{}}"#;
        let probe = probe_response(escaped).unwrap();
        assert_eq!(&escaped[probe.id_span], b"9");
    }

    #[test]
    fn probe_leaves_everything_else_to_the_general_path() {
        for line in [
            &br#"{"jsonrpc":"2.0","id":"s-1","result":{}}"#[..],
            br#"{"jsonrpc":"2.0","id":-1,"result":{}}"#,
            br#"{"jsonrpc":"2.0","id":1.5,"result":{}}"#,
            br#"{"jsonrpc":"2.0","id":null,"error":{}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#,
            br#"{"jsonrpc":"2.0","id":1}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{},"error":{}}"#,
            br#"{"jsonrpc":"2.0","id":1,"id":2,"result":{}}"#,
            br#"{"id":1,"result":{}}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{}"#,
            br#"[{"jsonrpc":"2.0","id":1,"result":{}}]"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{},"method":null}"#,
            // Found by fuzz/sse_roundtrip: a bare CR is JSON whitespace but ends an SSE line,
            // so a line holding one must be re-serialized, not spliced.
            b"{\"jsonrpc\":\"2.0\",\r\"id\":1,\"result\":{}}",
            // Found by fuzz/jsonrpc_classify and fuzz/jsonrpc_splice: what a parsed tree
            // refuses (invalid UTF-8, a lone surrogate) must not be spliced through.
            b"{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":{\"c\x8d\x8d\":1}}",
            b"{\"jsonrpc\":\"2.0\",\"id\":42,\"result\":{\"a\":\"\xff\"}}",
            br#"{"jsonrpc":"2.0","id":42,"result":{"a":"\ud800"}}"#,
            br#"{"jsonrpc":"2.0","id":3,"error":{"code":1E111111,"message":"x"}}"#,
        ] {
            assert_eq!(
                probe_response(line),
                None,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn completes_results_in_place() {
        let line =
            br#"{"jsonrpc":"2.0","id":"c-1","result":{"content":[{"type":"text","text":"x"}]}}"#;
        let probe = probe_result(line).unwrap();
        assert!(!probe.has_result_type && !probe.result_empty);
        assert_eq!(&line[probe.id_span.clone()], br#""c-1""#);
        let done = append_member(
            line,
            probe.result_span,
            false,
            br#""resultType":"complete""#,
        );
        // Byte for byte what inserting into the parsed result and re-serializing gives.
        let mut map: Map<String, Value> = serde_json::from_slice(line).unwrap();
        map["result"]
            .as_object_mut()
            .unwrap()
            .insert("resultType".into(), json!("complete"));
        assert_eq!(done, map_to_bytes(&map));

        let empty = br#"{"jsonrpc":"2.0","id":2,"result":{ }}"#;
        let probe = probe_result(empty).unwrap();
        assert!(probe.result_empty);
        let done = append_member(
            empty,
            probe.result_span,
            true,
            br#""resultType":"complete""#,
        );
        let value: Value = serde_json::from_slice(&done).unwrap();
        assert_eq!(
            value,
            json!({"jsonrpc":"2.0","id":2,"result":{"resultType":"complete"}})
        );

        let typed = br#" { "result" : { "resultType" : "input_required" } , "id" : 3 , "jsonrpc" : "2.0" } "#;
        assert!(probe_result(typed).unwrap().has_result_type);
    }

    #[test]
    fn result_probe_leaves_everything_else_to_the_general_path() {
        for line in [
            &br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32002,"message":"x"}}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"result":[]}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":null}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{"resultType":1,"resultType":2}}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{},"result":{}}"#,
            br#"{"jsonrpc":"2.0","result":{}}"#,
            br#"{"jsonrpc":"2.0","id":null,"result":{}}"#,
            br#"{"jsonrpc":"1.0","id":1,"result":{}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"x","result":{}}"#,
            b"{\"jsonrpc\":\"2.0\",\r\"id\":1,\"result\":{}}",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"a\":\"\xff\"}}",
            br#"{"jsonrpc":"2.0","id":1,"result":{"a":"\ud800"}}"#,
        ] {
            assert_eq!(
                probe_result(line),
                None,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn probes_plain_requests_and_splices_their_id() {
        let body = br#"{"jsonrpc":"2.0","id":"c-9","method":"tools/call","params":{"name":"echo","arguments":{"message":"\u00e9"}}}"#;
        let probe = probe_request(body).unwrap();
        assert_eq!(probe.id, json!("c-9"));
        assert_eq!(probe.method, "tools/call");
        let spliced = splice_id(body, probe.id_span, &json!(12));
        let mut want: Map<String, Value> = serde_json::from_slice(body).unwrap();
        want.insert("id".into(), json!(12));
        assert_eq!(
            serde_json::from_slice::<Map<String, Value>>(&spliced).unwrap(),
            want
        );
        let spaced = br#" { "method" : "ping" , "id" : 4 , "jsonrpc" : "2.0" } "#;
        assert_eq!(probe_request(spaced).unwrap().id, json!(4));
    }

    #[test]
    fn request_probe_leaves_everything_else_to_the_general_path() {
        for body in [
            // `_meta` may carry a progress token or claim the 2026-07-28 era.
            &br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"_meta":{"progressToken":1}}}"#[..],
            br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"x","result":{}}"#,
            br#"{"jsonrpc":"2.0","id":1.5,"method":"x"}"#,
            br#"{"jsonrpc":"2.0","id":null,"method":"x"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":3}"#,
            br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"x"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"x","params":[1]}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"_meta":1,"_meta":2}}"#,
            br#"{"id":1,"method":"x"}"#,
            br#"[{"jsonrpc":"2.0","id":1,"method":"x"}]"#,
            // The child reads one message per line.
            b"{\"jsonrpc\":\"2.0\",\n\"id\":1,\"method\":\"x\"}",
            b"{\"jsonrpc\":\"2.0\",\r\"id\":1,\"method\":\"x\"}",
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\",\"params\":{\"a\":\"\xff\"}}",
            br#"{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":"\ud800"}}"#,
        ] {
            assert_eq!(probe_request(body), None, "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn error_without_id_omits_member() {
        let body = error_body(None, -32000, "Forbidden", None);
        assert!(body.get("id").is_none());
        let body = error_body(Some(&Value::Null), PARSE_ERROR, "Parse error", None);
        assert_eq!(body["id"], Value::Null);
    }
}
