//! One request forwarded to the session's MCP server (or, in shared scope, answered by the
//! gateway when a shared child cannot serve it per session).

use std::sync::Arc;

use axum::response::Response;
use serde_json::{json, Value};

use super::accept::Wants;
use super::answer::{json_response, respond, sse_from_events};
use super::timer::CallTimer;
use super::{child_gone, AppState, Result};
use crate::core::router::Outgoing;
use crate::core::session::Session;
use crate::edge::reply::Reject;
use crate::jsonrpc;

/// Methods a shared child cannot serve per session, answered by the gateway itself.
pub(super) fn shared_scope_local_answer(method: &str, id: &Value) -> Option<Value> {
    match method {
        // One log level for all sessions would be wrong for all but one: accept and keep the child's.
        "logging/setLevel" => Some(json!({ "jsonrpc": "2.0", "id": id, "result": {} })),
        "resources/subscribe" | "resources/unsubscribe" => Some(jsonrpc::error_body(
            Some(id),
            jsonrpc::METHOD_NOT_FOUND,
            "Resource subscriptions are not available when the MCP server is shared between sessions (CHILD_SCOPE=shared)",
            None,
        )),
        _ => None,
    }
}

/// Forwards one request and answers with JSON (only the response came) or SSE (anything first),
/// as the client's `Accept` allows.
pub(super) async fn call(
    state: &Arc<AppState>,
    session: &Arc<Session>,
    wants: Wants,
    message: Outgoing<'_>,
    id: Value,
    method: &str,
) -> Result<Response> {
    if !session.owns_child {
        if let Some(answer) = shared_scope_local_answer(method, &id) {
            return Ok(answer_now(
                state,
                session,
                wants,
                jsonrpc::to_bytes(&answer),
            ));
        }
    }
    let guard = session
        .begin_call(state.config.sessions.max_inflight)
        .ok_or_else(|| {
            Reject::at_capacity(
                "too many requests in flight on this session (MAX_INFLIGHT_PER_SESSION)",
            )
        })?;
    let stream = session.channel.open_stream(1);
    let upstream_id = match session
        .router
        .forward(&session.channel, message, id.clone(), &stream)
        .await
    {
        Ok(upstream_id) => upstream_id,
        Err(_) => return Err(child_gone()),
    };
    let timer = CallTimer::arm(
        state,
        session.router.clone(),
        stream.clone(),
        vec![upstream_id],
    );
    respond(state, session, wants, stream, Box::new(guard), timer).await
}

/// A response the gateway has in hand, as JSON or as a one-event SSE stream.
fn answer_now(
    state: &Arc<AppState>,
    session: &Arc<Session>,
    wants: Wants,
    body: bytes::Bytes,
) -> Response {
    match wants {
        Wants::Sse => sse_from_events(session, vec![body], state.config.sse.keepalive),
        Wants::Both | Wants::Json => json_response(body, None),
    }
}
