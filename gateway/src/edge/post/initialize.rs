//! `initialize`: the core opens the session; this file answers in HTTP terms (JSON or SSE, the
//! `Mcp-Session-Id` header, SESSION_CREATED in the audit trail).

use std::sync::Arc;

use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value};

use super::accept::Wants;
use super::answer::{json_response, set_session_header, sse_from_events};
use super::{invalid_request, AppState, Context, Result};
use crate::audit::{Event, EventType};
use crate::core::session::{self, short, EndReason, Opened, Session};
use crate::edge::headers::{self, SESSION_ID};
use crate::edge::session::{named_session, open_reject, opening};

/// Starts a session: a child of its own (session scope) or the shared one.
///
/// An `Mcp-Session-Id` naming one of the caller's live sessions: that session is initialized
/// already (400). Any other id (stale, invented such as `test-session-123`, or another user's)
/// is ignored and a new session with a fresh id starts; another user's session is never adopted
/// nor touched, and naming it is audited as a hijack attempt like on every other path.
pub(super) async fn initialize(
    state: &Arc<AppState>,
    request_headers: &HeaderMap,
    context: &Context,
    message: Map<String, Value>,
    client_id: Value,
) -> Result<Response> {
    if let Some(session_id) = headers::text(request_headers, SESSION_ID) {
        if named_session(state, session_id, &context.caller, &context.request_id)
            .await
            .is_some()
        {
            return Err(invalid_request(
                "Invalid Request: this session is already initialized",
            ));
        }
        tracing::debug!(
            named = %short(session_id),
            "initialize named no live session of the caller; starting a new one"
        );
    }
    let identity = &context.caller.identity;
    let opened = session::open(&opening(state), identity, message, client_id)
        .await
        .map_err(open_reject)?;
    let (session, mut events, response_body) = match opened {
        // The child refused initialize: pass its error on; nothing was created.
        Opened::Refused { response } => return Ok(json_response(response, None)),
        Opened::Created {
            session,
            earlier,
            response,
        } => (session, earlier, response),
    };
    // Replicas: the directory names this replica as the owner before the client learns the id,
    // since its next request may reach any replica. Without Redis the session would be
    // unreachable elsewhere: it ends and the client retries (503).
    if let Some(forwarder) = &state.forwarder {
        if let Err(error) = forwarder
            .directory
            .register(&session.id, &identity.subject)
            .await
        {
            tracing::warn!(%error, session = %short(&session.id), "could not register a new session in the session directory");
            state.store.end(&session.id, EndReason::Shutdown).await;
            return Err(crate::edge::forward::redis_unavailable());
        }
    }
    state.audit.emit(
        Event::new(EventType::SessionCreated)
            .ip(context.caller.ip)
            .identity(&identity.subject)
            .token_hash(identity.token_hash.as_deref())
            .session(short(&session.id))
            .request_id(&context.request_id)
            .detail("protocolVersion", session.version()),
    );
    let sse = match context.wants {
        Wants::Both => !events.is_empty(),
        Wants::Json => false,
        Wants::Sse => true,
    };
    if sse {
        events.push(response_body);
        let mut response = sse_from_events(&session, events, state.config.sse.keepalive);
        set_session_header(&mut response, &session.id);
        return Ok(response);
    }
    // A JSON-only client: what the child said before its response waits for the GET stream.
    relay_to_standalone(&session, events);
    Ok(json_response(response_body, Some(&session.id)))
}

/// Messages a JSON-only client cannot take on its POST answer (progress, log messages, requests
/// of the server) go to the session's GET stream, kept there (SSE_PENDING_EVENTS) until one is
/// open, as the transport allows for messages from the server outside a request's stream.
fn relay_to_standalone(session: &Session, events: Vec<bytes::Bytes>) {
    for data in events {
        session.channel.standalone.push(data, false);
    }
}
