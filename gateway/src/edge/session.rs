//! Sessions in HTTP terms: the session a request names by `Mcp-Session-Id` (every foreign id is
//! audited here, whatever the method), the `MCP-Protocol-Version` a request on it may carry, and
//! the answers for a session that could not be opened.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};

use super::auth::Caller;
use super::headers::{self, PROTOCOL_VERSION, SESSION_ID};
use super::reply::{Fault, Reject};
use super::AppState;
use crate::audit::{Event, EventType};
use crate::core::session::{short, Lookup, OpenError, Opening, Session};
use crate::core::spawner::SpawnFailure;
use crate::jsonrpc;
use crate::protocol;

/// The caller's session named by `Mcp-Session-Id`: 400 without one, 404 when unknown, expired,
/// deleted or another identity's (which is audited as a hijack attempt).
pub async fn lookup_session(
    state: &Arc<AppState>,
    request_headers: &HeaderMap,
    caller: &Caller,
    request_id: &str,
) -> Result<Arc<Session>, Reject> {
    let Some(session_id) = headers::text(request_headers, SESSION_ID) else {
        return Err(Reject::session_required());
    };
    named_session(state, session_id, caller, request_id)
        .await
        .ok_or_else(Reject::session_not_found)
}

/// The caller's live session with this id, if any. Another identity's session is never
/// returned, and naming it is audited as SESSION_HIJACK_REJECTED: every path that looks a
/// client-named session up comes through here.
pub async fn named_session(
    state: &AppState,
    session_id: &str,
    caller: &Caller,
    request_id: &str,
) -> Option<Arc<Session>> {
    match state.store.get(session_id, &caller.identity).await {
        Lookup::Found(session) => Some(session),
        Lookup::NotFound { foreign } => {
            if foreign {
                state.audit.emit(
                    Event::new(EventType::SessionHijackRejected)
                        .ip(caller.ip)
                        .identity(&caller.identity.subject)
                        .token_hash(caller.identity.token_hash.as_deref())
                        .session(short(session_id))
                        .request_id(request_id),
                );
            }
            None
        }
    }
}

/// A later request may omit `MCP-Protocol-Version`; a present one must be a version we serve.
pub fn check_protocol_header(request_headers: &HeaderMap) -> Result<(), Reject> {
    match headers::text(request_headers, PROTOCOL_VERSION) {
        Some(version) if !protocol::is_supported(version) => Err(Reject::client(
            StatusCode::BAD_REQUEST,
            jsonrpc::TRANSPORT_ERROR,
            format!(
                "Bad Request: unsupported MCP-Protocol-Version {:?} (supported: {})",
                version.chars().take(40).collect::<String>(),
                protocol::SUPPORTED.join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

/// What the core needs to open a session, from the gateway's state.
pub fn opening(state: &AppState) -> Opening<'_> {
    Opening {
        store: &state.store,
        spawner: &state.spawner,
        audit: &state.audit,
        stopping: &state.stopping,
        scope: state.scope(),
        operator_credential: state.operator_credential.as_ref(),
        max_sessions_per_identity: state.config.sessions.max_per_identity,
        start_timeout: state.config.children.start_timeout,
    }
}

/// The answer for a session that could not be opened.
pub fn open_reject(error: OpenError) -> Reject {
    match error {
        OpenError::AtCapacity => Reject::at_capacity("too many sessions (MAX_SESSIONS)"),
        OpenError::ShuttingDown => {
            Reject::at_capacity("the gateway is shutting down; connect again in a moment")
        }
        OpenError::IdentityAtCapacity => Reject::at_capacity(
            "this identity has MAX_SESSIONS_PER_IDENTITY busy sessions; end one with DELETE",
        ),
        OpenError::Spawn(failure) => spawn_reject(failure),
        OpenError::ChildGone => child_gone(),
        OpenError::InitializeTimeout => Reject::new(
            StatusCode::GATEWAY_TIMEOUT,
            jsonrpc::INTERNAL_ERROR,
            Fault::Upstream,
            "Gateway Timeout: the MCP server did not answer initialize in time",
        ),
    }
}

/// No MCP server could be provided: the operator's to fix (the details go to the log only).
pub(crate) fn spawn_reject(failure: SpawnFailure) -> Reject {
    tracing::error!(error = %failure, "could not provide an MCP server for a new session");
    match failure {
        SpawnFailure::AtCapacity => Reject::at_capacity("too many MCP server processes (MAX_CHILDREN)"),
        SpawnFailure::Start(_) | SpawnFailure::Initialize(_) => Reject::new(
            StatusCode::BAD_GATEWAY,
            jsonrpc::INTERNAL_ERROR,
            Fault::Upstream,
            "Bad Gateway: the MCP server could not be started; the operator should check the gateway logs",
        )
        .retry_after(5),
    }
}

/// The session's MCP server process ended.
pub fn child_gone() -> Reject {
    Reject::new(
        StatusCode::BAD_GATEWAY,
        jsonrpc::INTERNAL_ERROR,
        Fault::Upstream,
        "Bad Gateway: the MCP server process is gone; start a new session",
    )
}
