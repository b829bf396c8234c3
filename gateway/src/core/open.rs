//! Opening a session: a place under the caps, an MCP server for it (a child of its own, or the
//! shared one), the client's `initialize` answered, then the session in the store.
//!
//! It knows no HTTP: the edge turns an [`OpenError`] into a status code, and a future
//! sessionless per-identity pool can open children the same way. Every process started here is
//! also ended here when the opening fails, so no caller has to.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::watch;

use super::session::{short, EndReason, Session, SessionStore};
use super::spawner::{SpawnFailure, Spawner};
use crate::audit::{Audit, Event, EventType};
use crate::config::ChildScope;
use crate::identity::{Identity, Secret};
use crate::jsonrpc;
use crate::protocol;

/// What opening a session needs from the gateway around it (borrowed for one call).
pub struct Opening<'a> {
    pub store: &'a Arc<SessionStore>,
    pub spawner: &'a Spawner,
    pub audit: &'a Audit,
    /// True once the gateway drains: no new session then.
    pub stopping: &'a watch::Receiver<bool>,
    pub scope: ChildScope,
    /// The operator's credential, for the shared child.
    pub operator_credential: Option<&'a Secret>,
    /// MAX_SESSIONS_PER_IDENTITY (applies to identities with a token).
    pub max_sessions_per_identity: usize,
    /// How long a new child may take to answer `initialize` (CHILD_START_TIMEOUT_SECS).
    pub start_timeout: Duration,
}

/// What became of an `initialize`.
pub enum Opened {
    /// The session exists and is in the store.
    Created {
        session: Arc<Session>,
        /// What the MCP server said before its response (progress, logs, requests), in order.
        earlier: Vec<Bytes>,
        /// The `initialize` response.
        response: Bytes,
    },
    /// The MCP server answered `initialize` with an error: nothing was created (its child, if
    /// one was started for this session, is ended) and the error is the client's answer.
    Refused { response: Bytes },
}

/// Why no session was opened; no child started for it is left running.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("MAX_SESSIONS sessions are open")]
    AtCapacity,
    #[error("the gateway is shutting down")]
    ShuttingDown,
    #[error("the identity has MAX_SESSIONS_PER_IDENTITY busy sessions")]
    IdentityAtCapacity,
    #[error(transparent)]
    Spawn(#[from] SpawnFailure),
    #[error("the MCP server process is gone")]
    ChildGone,
    #[error("the MCP server did not answer initialize in time")]
    InitializeTimeout,
}

/// Opens a session for `identity` with the client's `initialize` request (`message`, whose id
/// is `client_id`): session scope starts a child with the identity's credential and forwards
/// the request; shared scope answers from what the shared child said to the gateway's own
/// `initialize`.
pub async fn open(
    opening: &Opening<'_>,
    identity: &Identity,
    message: Map<String, Value>,
    client_id: Value,
) -> Result<Opened, OpenError> {
    let store = opening.store;
    let reservation = store.reserve().ok_or(OpenError::AtCapacity)?;
    if *opening.stopping.borrow() {
        return Err(OpenError::ShuttingDown);
    }
    if identity.token_hash.is_some()
        && !store
            .make_room(&identity.subject, opening.max_sessions_per_identity)
            .await
    {
        return Err(OpenError::IdentityAtCapacity);
    }
    let session_id = SessionStore::new_session_id();
    let (session, answer) = match opening.scope {
        ChildScope::Session => {
            let session = dedicated(opening, identity, session_id)?;
            let answer =
                forward_initialize(&session, message, client_id, opening.start_timeout).await;
            if answer.is_err() {
                session.router.child().terminate().await;
            }
            (session, answer?)
        }
        ChildScope::Shared => shared(opening, identity, session_id, &message, client_id).await?,
    };
    let InitAnswer {
        version,
        mut events,
    } = answer;
    // The response is the last event (the stream ends with it).
    let response = events.pop().unwrap_or_default();
    let Some(version) = version else {
        if session.owns_child {
            session.router.child().terminate().await;
        }
        return Ok(Opened::Refused { response });
    };
    session.set_version(version);
    store.insert(session.clone(), reservation);
    tracing::info!(session = %short(&session.id), subject = %identity.subject, version = session.version(), "session created");
    Ok(Opened::Created {
        session,
        earlier: events,
        response,
    })
}

/// A session with a child of its own, whose exit is audited and ends the session.
fn dedicated(
    opening: &Opening<'_>,
    identity: &Identity,
    session_id: String,
) -> Result<Arc<Session>, OpenError> {
    let channel = opening.spawner.new_channel(opening.store.next_key());
    let store = Arc::downgrade(opening.store);
    let id_for_exit = session_id.clone();
    let audit = opening.audit.clone();
    let subject = identity.subject.clone();
    let router = opening.spawner.spawn_dedicated(
        short(&session_id),
        channel.clone(),
        identity.credential.as_ref(),
        Box::new(move |report| {
            audit.emit(
                Event::new(EventType::ChildExit)
                    .identity(&subject)
                    .session(short(&id_for_exit))
                    .reason(&report.reason)
                    .detail("exitCode", report.code),
            );
            if let Some(store) = store.upgrade() {
                tokio::spawn(async move { store.end(&id_for_exit, EndReason::ChildExited).await });
            }
        }),
    )?;
    Ok(Arc::new(Session::new(
        session_id,
        identity.clone(),
        channel,
        router,
        true,
    )))
}

/// A session on the shared child, answered from the child's own `initialize` result with the
/// version the client asked for (when served).
async fn shared(
    opening: &Opening<'_>,
    identity: &Identity,
    session_id: String,
    message: &Map<String, Value>,
    client_id: Value,
) -> Result<(Arc<Session>, InitAnswer), OpenError> {
    let channel = opening.spawner.new_channel(opening.store.next_key());
    let shared = opening.spawner.shared(opening.operator_credential).await?;
    let requested = message
        .get("params")
        .and_then(|p| p.get("protocolVersion"))
        .and_then(Value::as_str);
    let version = match requested {
        Some(v) if protocol::is_supported(v) => v.to_string(),
        _ => protocol::SUPPORTED[0].to_string(),
    };
    let mut result = shared.init_result.clone();
    result["protocolVersion"] = json!(version);
    // Subscriptions cannot be kept apart per session on a shared child: do not offer them.
    if let Some(resources) = result
        .pointer_mut("/capabilities/resources")
        .and_then(Value::as_object_mut)
    {
        resources.remove("subscribe");
    }
    let session = Arc::new(Session::new(
        session_id,
        identity.clone(),
        channel,
        shared.router,
        false,
    ));
    let body = json!({ "jsonrpc": "2.0", "id": client_id, "result": result });
    Ok((
        session,
        InitAnswer {
            version: Some(version),
            events: vec![jsonrpc::to_bytes(&body)],
        },
    ))
}

struct InitAnswer {
    /// The negotiated version; None when initialize failed.
    version: Option<String>,
    /// Everything the child said, its response last.
    events: Vec<Bytes>,
}

/// Sends the client's initialize to a fresh child and waits (bounded) for the whole answer, so
/// that the session exists before the client hears of it.
async fn forward_initialize(
    session: &Arc<Session>,
    message: Map<String, Value>,
    client_id: Value,
    timeout: Duration,
) -> Result<InitAnswer, OpenError> {
    let stream = session.channel.open_stream(1);
    let mut changed = stream.subscribe();
    session
        .router
        .call(&session.channel, message, client_id, &stream)
        .await
        .map_err(|_| OpenError::ChildGone)?;
    let wait = async {
        loop {
            if stream.is_done() {
                return;
            }
            if changed.changed().await.is_err() {
                return;
            }
        }
    };
    if tokio::time::timeout(timeout, wait).await.is_err() {
        tracing::error!(session = %short(&session.id), "the MCP server did not answer initialize in time");
        return Err(OpenError::InitializeTimeout);
    }
    if session.router.is_closed() {
        // The child died before or while answering: it could not be started, whatever it said.
        tracing::error!(session = %short(&session.id), "the MCP server exited during initialize");
        return Err(SpawnFailure::Start("exited during initialize".into()).into());
    }
    let events = stream.after(0).events;
    let Some(last) = events.iter().find(|e| e.is_final) else {
        return Err(OpenError::ChildGone);
    };
    let answer: Value = serde_json::from_slice(&last.data).unwrap_or(Value::Null);
    let version = answer.get("result").map(|r| {
        r.get("protocolVersion")
            .and_then(Value::as_str)
            .unwrap_or(protocol::DEFAULT)
            .to_string()
    });
    Ok(InitAnswer {
        version,
        events: events.into_iter().map(|e| e.data).collect(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{json, Map, Value};
    use tokio::sync::watch;

    use super::*;
    use crate::config::Config;
    use crate::core::session::Limits;

    fn store(max_sessions: usize) -> Arc<SessionStore> {
        SessionStore::new(
            Limits {
                idle_ttl: Duration::from_secs(60),
                max_lifetime: Duration::from_secs(600),
                max_sessions,
            },
            Arc::new(|_, _| {}),
        )
    }

    fn initialize() -> Map<String, Value> {
        let Value::Object(message) = json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": { "protocolVersion": "2025-06-18", "capabilities": {},
                        "clientInfo": { "name": "t", "version": "0" } }
        }) else {
            unreachable!("a json! object literal")
        };
        message
    }

    async fn try_open(
        command: &str,
        store: &Arc<SessionStore>,
        stopping: bool,
    ) -> (Result<Opened, OpenError>, Spawner) {
        let config = Config::with_command(command);
        let spawner = Spawner::new(&config.children, &config.sse);
        let audit = Audit::off();
        let (_tx, stopping) = watch::channel(stopping);
        let opening = Opening {
            store,
            spawner: &spawner,
            audit: &audit,
            stopping: &stopping,
            scope: ChildScope::Session,
            operator_credential: None,
            max_sessions_per_identity: 4,
            start_timeout: Duration::from_secs(5),
        };
        let result = open(&opening, &Identity::anonymous(), initialize(), json!(1)).await;
        (result, spawner)
    }

    /// A draining gateway opens nothing, and the place it reserved is given back.
    #[tokio::test]
    async fn no_session_opens_while_draining_and_the_place_is_given_back() {
        let store = store(1);
        let (result, spawner) = try_open("fake-server-not-started", &store, true).await;
        assert!(matches!(result, Err(OpenError::ShuttingDown)));
        assert_eq!(spawner.children(), 0);
        assert!(store.reserve().is_some(), "the reservation was released");
    }

    #[tokio::test]
    async fn a_full_store_refuses_before_anything_starts() {
        let store = store(0);
        let (result, spawner) = try_open("fake-server-not-started", &store, false).await;
        assert!(matches!(result, Err(OpenError::AtCapacity)));
        assert_eq!(spawner.children(), 0);
    }

    /// A command that cannot start is the operator's fault (a spawn failure), not the client's;
    /// nothing is counted or kept.
    #[tokio::test]
    async fn a_server_that_cannot_start_leaves_nothing_behind() {
        let store = store(1);
        let (result, spawner) =
            try_open("/nonexistent/coda-mcp-server-binary", &store, false).await;
        assert!(
            matches!(result, Err(OpenError::Spawn(SpawnFailure::Start(_)))),
            "{:?}",
            result.err()
        );
        assert_eq!(spawner.children(), 0);
        assert!(store.is_empty());
        assert!(store.reserve().is_some(), "the reservation was released");
    }
}
