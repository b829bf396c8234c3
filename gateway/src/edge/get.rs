//! `GET /mcp` (the standalone stream, or a resumed one) and `DELETE /mcp`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::auth::Caller;
use super::headers::{self, LAST_EVENT_ID};
use super::reply::Reject;
use super::session::{check_protocol_header, lookup_session};
use super::sse::{self, SseSpec};
use super::{AppState, RequestId};
use crate::core::channel::STANDALONE;
use crate::core::session::{short, EndReason};
use crate::core::stream::parse_event_id;
use crate::jsonrpc;

/// A 2026-07-28 client (its version header, no session) has no GET stream and nothing to DELETE:
/// 405, as the revision asks of servers for legacy-only traffic.
fn modern_client(request_headers: &HeaderMap) -> Option<Reject> {
    let modern = headers::text(request_headers, headers::PROTOCOL_VERSION)
        .is_some_and(crate::protocol::is_modern)
        && !request_headers.contains_key(headers::SESSION_ID);
    modern.then(|| {
        Reject::client(
            StatusCode::METHOD_NOT_ALLOWED,
            jsonrpc::TRANSPORT_ERROR,
            "Method Not Allowed: protocol version 2026-07-28 has no GET stream or session to delete; POST requests (subscriptions/listen for notifications)",
        )
        .header(axum::http::header::ALLOW, "POST")
    })
}

pub async fn stream(
    State(state): State<Arc<AppState>>,
    Extension(request_id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    request_headers: HeaderMap,
) -> Response {
    if let Some(reject) = modern_client(&request_headers) {
        return reject.request_id(&request_id.0).into_response();
    }
    match open_stream(&state, &request_headers, &caller, &request_id.0).await {
        Ok(response) => response,
        Err(reject) => reject.request_id(&request_id.0).into_response(),
    }
}

async fn open_stream(
    state: &Arc<AppState>,
    request_headers: &HeaderMap,
    caller: &Caller,
    request_id: &str,
) -> Result<Response, Reject> {
    if !headers::accepts(request_headers, "text/event-stream") {
        return Err(Reject::client(
            StatusCode::NOT_ACCEPTABLE,
            jsonrpc::TRANSPORT_ERROR,
            "Not Acceptable: Accept must list text/event-stream",
        ));
    }
    let session = lookup_session(state, request_headers, caller, request_id).await?;
    check_protocol_header(request_headers)?;
    // A Last-Event-ID names its stream: resume that one, and only that one.
    let resume = headers::text(request_headers, LAST_EVENT_ID).and_then(parse_event_id);
    let (stream, after) = match resume {
        // The standalone stream carries only the server's own messages: if some were dropped
        // while nobody read them, they are lost either way, and the stream goes on from what is
        // kept rather than being refused (which would leave the client without a GET stream).
        Some((STANDALONE, seq)) => {
            let standalone = session.channel.standalone.clone();
            let after = standalone.resumable_from(seq);
            (standalone, after)
        }
        Some((stream_id, seq)) => match session.channel.find(stream_id) {
            Some(stream) if stream.can_resume_after(seq) => (stream, seq),
            // Dropped (replay budgets, resume window, retained-stream count) or never issued:
            // nothing can be replayed without a gap, and another stream must not stand in.
            _ => {
                return Err(Reject::client(
                    StatusCode::GONE,
                    jsonrpc::TRANSPORT_ERROR,
                    "Gone: the stream named by Last-Event-ID is no longer kept (see SSE_RESUME_WINDOW_SECS and the replay budgets); send the request again",
                ))
            }
        },
        None => {
            let delivered = session.channel.standalone_delivered.load(Ordering::Acquire);
            let standalone = session.channel.standalone.clone();
            let after = standalone.resumable_from(delivered);
            (standalone, after)
        }
    };
    let ticket = if resume.is_some() {
        // A client resuming a stream (the standalone one or a request's) lost its connection,
        // even if the gateway has not noticed yet (no FIN through a proxy timeout or a mobile
        // network, or simply the close not yet read on a busy machine): the resume takes the
        // stream over and the old connection ends. Refusing it would leave the client 409 until
        // the old connection's end is seen.
        stream.take_over()
    } else if stream.try_attach() {
        stream.holder()
    } else {
        return Err(Reject::client(
            StatusCode::CONFLICT,
            jsonrpc::TRANSPORT_ERROR,
            "Conflict: only one GET stream is allowed per session (or this stream is already being read)",
        ));
    };
    let standalone = stream.id() == STANDALONE;
    tracing::debug!(session = %short(&session.id), stream = stream.id(), after, "SSE stream opened");
    Ok(sse::response_attached(
        SseSpec {
            stream,
            after,
            priming: crate::protocol::wants_priming(session.version()),
            keepalive: state.config.sse.keepalive,
            stop: standalone.then(|| state.stopping.clone()),
            delivered_to: standalone.then(|| session.channel.clone()),
            guard: None,
        },
        ticket,
    ))
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(request_id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    request_headers: HeaderMap,
) -> Response {
    if let Some(reject) = modern_client(&request_headers) {
        return reject.request_id(&request_id.0).into_response();
    }
    let session = match lookup_session(&state, &request_headers, &caller, &request_id.0).await {
        Ok(session) => session,
        Err(reject) => return reject.request_id(&request_id.0).into_response(),
    };
    if let Err(reject) = check_protocol_header(&request_headers) {
        return reject.request_id(&request_id.0).into_response();
    }
    state.store.end(&session.id, EndReason::Deleted).await;
    StatusCode::OK.into_response()
}
