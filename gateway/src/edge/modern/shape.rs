//! What a modern client receives: every result with `resultType`, caching hints on cacheable
//! results, no legacy-only error codes, and the answer as JSON or as an SSE stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::super::accept::Wants;
use super::AppState;
use crate::config::ChildScope;
use crate::jsonrpc;

/// Results that carry caching hints (`ttlMs`, `cacheScope`).
const CACHEABLE: [&str; 6] = [
    "server/discover",
    "tools/list",
    "prompts/list",
    "resources/list",
    "resources/templates/list",
    "resources/read",
];

/// Completes a result for a modern client: `resultType`, and for cacheable methods `ttlMs`
/// (CACHE_TTL_MS unless the server gave one) and `cacheScope`. Results come from per-user
/// children, so they are `private` unless the server said `public` and the child is shared.
pub fn complete(result: &mut Map<String, Value>, method: &str, state: &AppState) {
    if !result.contains_key("resultType") {
        result.insert("resultType".into(), json!("complete"));
    }
    if result.get("resultType").and_then(Value::as_str) != Some("complete")
        || !CACHEABLE.contains(&method)
    {
        return;
    }
    let ttl_ok = result.get("ttlMs").is_some_and(|t| t.as_u64().is_some());
    if !ttl_ok {
        result.insert("ttlMs".into(), json!(state.config.modern.cache_ttl_ms));
    }
    let public = result.get("cacheScope").and_then(Value::as_str) == Some("public")
        && state.config.children.scope == ChildScope::Shared;
    result.insert(
        "cacheScope".into(),
        json!(if public { "public" } else { "private" }),
    );
}

/// The child's answer to a forwarded request, made a modern response to `id`, with its status;
/// `None` when it is not a JSON-RPC object.
///
/// The common case (a result for a method without caching hints, already addressed to `id` by
/// the router) is completed in place: at most `"resultType":"complete"` is appended to the result,
/// where inserting it into the parsed result would put it. Everything else is parsed.
pub fn answer(
    response: Bytes,
    id: &Value,
    method: &str,
    state: &AppState,
) -> Option<(StatusCode, Bytes)> {
    if !CACHEABLE.contains(&method) {
        if let Some(raw) = jsonrpc::probe_result(&response) {
            if id_is(&response[raw.id_span.clone()], id) {
                let body = if raw.has_result_type {
                    response
                } else {
                    jsonrpc::append_member(
                        &response,
                        raw.result_span,
                        raw.result_empty,
                        br#""resultType":"complete""#,
                    )
                };
                return Some((StatusCode::OK, body));
            }
        }
    }
    let Ok(Value::Object(response)) = serde_json::from_slice::<Value>(&response) else {
        return None;
    };
    Some(answer_tree(response, id, method, state))
}

/// Whether `raw` is `id` exactly as serializing `id` writes it.
fn id_is(raw: &[u8], id: &Value) -> bool {
    match id {
        Value::Number(n) => n.is_u64() || n.is_i64(),
        Value::String(_) => true,
        _ => false,
    }
    .then(|| serde_json::to_vec(id).ok())
    .flatten()
    .is_some_and(|text| text == raw)
}

/// [`answer`] on the parsed response.
fn answer_tree(
    mut response: Map<String, Value>,
    id: &Value,
    method: &str,
    state: &AppState,
) -> (StatusCode, Bytes) {
    response.insert("id".into(), id.clone());
    let mut status = StatusCode::OK;
    if let Some(result) = response.get_mut("result").and_then(Value::as_object_mut) {
        complete(result, method, state);
    } else if let Some(error) = response.get_mut("error").and_then(Value::as_object_mut) {
        match error.get("code").and_then(Value::as_i64) {
            // 2026-07-28 forbids -32002; resource not found is invalid params now.
            Some(jsonrpc::LEGACY_RESOURCE_NOT_FOUND) => {
                error.insert("code".into(), json!(jsonrpc::INVALID_PARAMS));
            }
            Some(jsonrpc::METHOD_NOT_FOUND) => status = StatusCode::NOT_FOUND,
            _ => {}
        }
    }
    (status, jsonrpc::map_to_bytes(&response))
}

/// One message as the whole answer: JSON, or a one-event stream for an SSE-only client.
pub fn one(wants: Wants, status: StatusCode, body: Bytes) -> Response {
    match wants {
        Wants::Sse if status == StatusCode::OK => {
            let (tx, rx) = mpsc::channel(1);
            let _ = tx.try_send(body);
            drop(tx);
            stream(rx, None)
        }
        _ => (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
    }
}

/// An SSE response of the messages `rx` yields (each one `data:` event), with a comment every
/// `keepalive` while nothing comes; it ends when the sender is dropped. Dropping the response
/// (the client closed it) closes `rx`, which the sender sees.
pub fn stream(rx: mpsc::Receiver<Bytes>, keepalive: Option<Duration>) -> Response {
    let state = (rx, keepalive);
    let events = futures_util::stream::unfold(state, |(mut rx, keepalive)| async move {
        let next = match keepalive {
            Some(period) => match tokio::time::timeout(period, rx.recv()).await {
                Ok(message) => message.map(|m| frame(&m)),
                Err(_) => Some(Bytes::from_static(b": keepalive\n\n")),
            },
            None => rx.recv().await.map(|m| frame(&m)),
        };
        next.map(|chunk| (Ok::<Bytes, Infallible>(chunk), (rx, keepalive)))
    });
    crate::edge::sse::event_stream(Body::from_stream(events))
}

/// One SSE event carrying a JSON message (no newlines inside compact JSON).
fn frame(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(message.len() + 8);
    out.put_slice(b"data: ");
    out.put_slice(message);
    out.put_slice(b"\n\n");
    out.freeze()
}

/// Room for messages between the call's reader and a slow client; the reader waits when full.
pub const STREAM_BUFFER: usize = 64;
