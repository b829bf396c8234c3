//! A 2025-03-26 batch in one POST.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::Value;

use super::answer::{json_array, respond_batch};
use super::call::shared_scope_local_answer;
use super::timer::CallTimer;
use super::{accepted, check_protocol_header, child_gone, find_session, invalid_request};
use super::{AppState, Context, Result};
use crate::edge::reply::Reject;
use crate::jsonrpc::{self, Kind};
use crate::protocol;

/// A 2025-03-26 batch: every request forwarded, the answers as one JSON array or one SSE stream.
///
/// Every member gets the rules it would get alone: invalid members and `initialize` are answered
/// with an error inside the batch's answer, and in shared scope the methods a shared child cannot
/// serve per session are answered by the gateway without reaching the child. Every request that
/// goes to the child counts against MAX_INFLIGHT_PER_SESSION until the batch is answered; a batch
/// whose requests do not all fit is refused whole (503, Retry-After: nothing was sent, the client
/// retries it as it is), and one that could never fit is refused as too large (413). A partial
/// batch is never forwarded: JSON-RPC gives a client no way to tell "not run, retry" from the
/// method's own errors inside a batch answer.
pub(super) async fn batch(
    state: &Arc<AppState>,
    request_headers: &HeaderMap,
    context: &Context,
    items: Vec<Value>,
) -> Result<Response> {
    if items.is_empty() {
        return Err(invalid_request("Invalid Request: an empty batch"));
    }
    let mut messages = Vec::with_capacity(items.len());
    // JSON-RPC 2.0 answers a batch's invalid members one by one, inside the batch's answer.
    let mut refused: Vec<bytes::Bytes> = Vec::new();
    for item in items {
        let Value::Object(message) = item else {
            refused.push(batch_refusal(
                None,
                "Invalid Request: every batch item must be a JSON-RPC message object",
            ));
            continue;
        };
        match jsonrpc::classify(&message) {
            Ok(Kind::Request { method, id }) if method == "initialize" => {
                refused.push(batch_refusal(
                    Some(&id),
                    "Invalid Request: initialize must not be part of a batch",
                ))
            }
            Ok(kind) => messages.push((kind, message)),
            Err(invalid) => {
                let id = message
                    .get("id")
                    .filter(|id| id.is_string() || id.is_i64() || id.is_u64());
                refused.push(batch_refusal(id, &format!("Invalid Request: {invalid}")));
            }
        }
    }
    let session = find_session(state, request_headers, context).await?;
    check_protocol_header(request_headers)?;
    if !protocol::allows_batch(session.version()) {
        return Err(invalid_request(format!(
            "Invalid Request: batches are not allowed in protocol version {}; send one message per POST",
            session.version()
        )));
    }
    if messages.is_empty() {
        // Nothing in the batch was a message: the whole POST is refused, member by member.
        return Ok(json_array(StatusCode::BAD_REQUEST, &refused));
    }
    // Answers in hand: refusals, then what the gateway answers itself in shared scope.
    let mut answered = refused;
    if !session.owns_child {
        messages.retain(|(kind, _)| match kind {
            Kind::Request { method, id } => match shared_scope_local_answer(method, id) {
                Some(answer) => {
                    answered.push(jsonrpc::to_bytes(&answer));
                    false
                }
                None => true,
            },
            _ => true,
        });
    }
    let requests = messages
        .iter()
        .filter(|(kind, _)| matches!(kind, Kind::Request { .. }))
        .count();
    let cap = state.config.sessions.max_inflight;
    if requests > cap {
        return Err(Reject::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            jsonrpc::INVALID_REQUEST,
            format!(
                "Content Too Large: this batch has {requests} requests for the MCP server; a session may have at most MAX_INFLIGHT_PER_SESSION ({cap}) in flight, so send fewer per batch"
            ),
        ));
    }
    let guard = if requests > 0 {
        Some(session.begin_calls(cap, requests).ok_or_else(|| {
            Reject::at_capacity(
                "this batch's requests do not fit under MAX_INFLIGHT_PER_SESSION with those already in flight on this session; nothing was sent",
            )
        })?)
    } else {
        None
    };
    // Sized to the batch: every answer is kept until it is delivered, whatever SSE_REPLAY_EVENTS.
    let stream = session
        .channel
        .open_batch_stream((requests + answered.len()).max(1));
    if requests > 0 {
        for answer in &answered {
            stream.push(answer.clone(), true);
        }
    }
    let mut upstream_ids = Vec::new();
    for (kind, message) in messages {
        let routed = match kind {
            Kind::Request { id, .. } => session
                .router
                .call(&session.channel, message, id, &stream)
                .await
                .map(|up| upstream_ids.push(up)),
            Kind::Notification { method } => {
                session
                    .router
                    .notify(&session.channel, message, &method)
                    .await
            }
            Kind::Response { id } => session
                .router
                .answer(&session.channel, message, &id)
                .await
                .map(|_| ()),
        };
        if routed.is_err() {
            return Err(child_gone());
        }
    }
    let Some(guard) = guard else {
        if !answered.is_empty() {
            return Ok(json_array(StatusCode::OK, &answered));
        }
        return Ok(accepted());
    };
    let timer = CallTimer::arm(state, session.router.clone(), stream.clone(), upstream_ids);
    respond_batch(
        state,
        &session,
        context.wants,
        stream,
        Box::new(guard),
        timer,
    )
    .await
}

/// The error answer for one invalid member of a batch.
fn batch_refusal(id: Option<&Value>, message: &str) -> bytes::Bytes {
    jsonrpc::to_bytes(&jsonrpc::error_body(
        Some(id.unwrap_or(&Value::Null)),
        jsonrpc::INVALID_REQUEST,
        message,
        None,
    ))
}
