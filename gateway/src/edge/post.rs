//! `POST /mcp`: one JSON-RPC message (or a 2025-03-26 batch) in, JSON or SSE out.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::{json, Map, Value};

use super::accept::{self, Wants};
use super::auth::Caller;
use super::headers::{self, PROTOCOL_VERSION, SESSION_ID};
use super::reply::{Fault, Reject};
use super::sse::{self, SseSpec};
use super::{AppState, RequestId};
use crate::audit::{Event, EventType};
use crate::config::ChildScope;
use crate::core::router::Router;
use crate::core::session::{short, EndReason, Lookup, Session, SessionStore};
use crate::core::stream::EventStream;
use crate::jsonrpc::{self, Kind};
use crate::protocol;

type Result<T> = std::result::Result<T, Reject>;

pub async fn handle(
    State(state): State<Arc<AppState>>,
    Extension(request_id): Extension<RequestId>,
    Extension(caller): Extension<Caller>,
    request_headers: HeaderMap,
    body: Body,
) -> Response {
    let rid = request_id.0.clone();
    let Some(wants) = accept::negotiate(&request_headers) else {
        return Reject::client(
            StatusCode::NOT_ACCEPTABLE,
            jsonrpc::TRANSPORT_ERROR,
            "Not Acceptable: Accept excludes both application/json and text/event-stream, the only types this endpoint answers with",
        )
        .request_id(&rid)
        .into_response();
    };
    let context = Context {
        caller,
        request_id: rid.clone(),
        wants,
    };
    match handle_inner(&state, &context, &request_headers, body).await {
        Ok(response) => response,
        Err(reject) => reject.request_id(&rid).into_response(),
    }
}

/// Who asks, the request id to name in audit events, and what the answer may be.
struct Context {
    caller: Caller,
    request_id: String,
    wants: Wants,
}

async fn handle_inner(
    state: &Arc<AppState>,
    context: &Context,
    request_headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    if !headers::is_json(request_headers) {
        return Err(Reject::client(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            jsonrpc::TRANSPORT_ERROR,
            "Unsupported Media Type: Content-Type must be application/json",
        ));
    }
    let parsed = {
        // Held while the body is read and parsed: concurrent large bodies cannot take the memory.
        let _permit = state.bodies.try_acquire().map_err(|_| {
            Reject::at_capacity(
                "too many request bodies are being read at once (MAX_CONCURRENT_BODIES)",
            )
        })?;
        let limit = state.config.http.max_body_bytes;
        let bytes = to_bytes(body, limit).await.map_err(|_| {
            Reject::client(
                StatusCode::PAYLOAD_TOO_LARGE,
                jsonrpc::TRANSPORT_ERROR,
                format!("Payload Too Large: the body exceeds MAX_BODY_BYTES ({limit} bytes)"),
            )
        })?;
        parse_body(&bytes, state.config.http.max_batch_members)?
    };
    match parsed {
        Parsed::Single(message) => single(state, request_headers, context, message).await,
        Parsed::Batch(items) => batch(state, request_headers, context, items).await,
    }
}

/// A POST body: one message object, or the members of a batch.
enum Parsed {
    Single(Map<String, Value>),
    Batch(Vec<Value>),
}

/// Parses a body; a batch is refused as soon as it has more than `max_members` members, before
/// the rest is parsed, so a body of 90,000 tiny members costs no more than one of 256.
fn parse_body(bytes: &[u8], max_members: usize) -> Result<Parsed> {
    let parse_error = || {
        Reject::client(
            StatusCode::BAD_REQUEST,
            jsonrpc::PARSE_ERROR,
            "Parse error: the body is not valid JSON",
        )
    };
    let is_batch = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'[');
    if !is_batch {
        return match serde_json::from_slice::<Value>(bytes).map_err(|_| parse_error())? {
            Value::Object(message) => Ok(Parsed::Single(message)),
            _ => Err(invalid_request(
                "Invalid Request: the body must be a JSON-RPC message object",
            )),
        };
    }
    let over = std::cell::Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let items = BoundedBatch {
        max: max_members,
        over: &over,
    }
    .deserialize(&mut deserializer);
    if over.get() {
        return Err(Reject::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            jsonrpc::INVALID_REQUEST,
            format!(
                "Content Too Large: a batch may have at most MAX_BATCH_MEMBERS ({max_members}) members; send the rest in further batches"
            ),
        ));
    }
    let items = items.map_err(|_| parse_error())?;
    deserializer.end().map_err(|_| parse_error())?;
    Ok(Parsed::Batch(items))
}

/// Collects a JSON array's members, stopping with an error after `max` of them.
struct BoundedBatch<'a> {
    max: usize,
    over: &'a std::cell::Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for BoundedBatch<'_> {
    type Value = Vec<Value>;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Vec<Value>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BoundedBatch<'_> {
    type Value = Vec<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of JSON-RPC messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Vec<Value>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
        while let Some(item) = seq.next_element::<Value>()? {
            if items.len() == self.max {
                self.over.set(true);
                return Err(serde::de::Error::custom("too many batch members"));
            }
            items.push(item);
        }
        Ok(items)
    }
}

fn invalid_request(message: impl Into<String>) -> Reject {
    Reject::client(StatusCode::BAD_REQUEST, jsonrpc::INVALID_REQUEST, message)
}

fn classify(message: &Map<String, Value>) -> Result<Kind> {
    jsonrpc::classify(message)
        .map_err(|invalid| invalid_request(format!("Invalid Request: {invalid}")))
}

async fn single(
    state: &Arc<AppState>,
    request_headers: &HeaderMap,
    context: &Context,
    message: Map<String, Value>,
) -> Result<Response> {
    let identity = &context.caller.identity;
    let kind = classify(&message)?;
    if let Kind::Request { method, id } = &kind {
        if method == "initialize" {
            // An id naming one of the caller's live sessions: that session is initialized. Any
            // other id (stale, invented, like the seed's `test-session-123`, or another user's)
            // is ignored and a new session with a fresh id starts; another user's session is
            // never adopted nor touched, and naming it is audited as a hijack attempt.
            if let Some(session_id) = headers::text(request_headers, SESSION_ID) {
                match state.store.get(session_id, identity).await {
                    Lookup::Found(_) => {
                        return Err(invalid_request(
                            "Invalid Request: this session is already initialized",
                        ))
                    }
                    Lookup::NotFound { foreign } => {
                        if foreign {
                            audit_hijack(state, context, session_id);
                        }
                        tracing::debug!(
                            named = %short(session_id),
                            "initialize named no live session of the caller; starting a new one"
                        );
                    }
                }
            }
            return initialize(state, context, message, id.clone()).await;
        }
    }
    let session = find_session(state, request_headers, context).await?;
    check_protocol_header(request_headers)?;
    match kind {
        Kind::Request { id, method } => {
            call(state, &session, context.wants, message, id, &method).await
        }
        Kind::Notification { method } => {
            if session
                .router
                .notify(&session.channel, message, &method)
                .await
                .is_err()
            {
                return Err(child_gone());
            }
            Ok(accepted())
        }
        Kind::Response { id } => {
            match session.router.answer(&session.channel, message, &id).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(session = %short(&session.id), %id, "response to no pending server request; dropped")
                }
                Err(_) => return Err(child_gone()),
            }
            Ok(accepted())
        }
    }
}

/// Another identity's session id was presented (SESSION_HIJACK_REJECTED, as for GET and DELETE).
fn audit_hijack(state: &AppState, context: &Context, session_id: &str) {
    state.audit.emit(
        Event::new(EventType::SessionHijackRejected)
            .ip(context.caller.ip)
            .identity(&context.caller.identity.subject)
            .token_hash(context.caller.identity.token_hash.as_deref())
            .session(short(session_id))
            .request_id(&context.request_id),
    );
}

fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

fn child_gone() -> Reject {
    Reject::new(
        StatusCode::BAD_GATEWAY,
        jsonrpc::INTERNAL_ERROR,
        Fault::Upstream,
        "Bad Gateway: the MCP server process is gone; start a new session",
    )
}

async fn find_session(
    state: &Arc<AppState>,
    request_headers: &HeaderMap,
    context: &Context,
) -> Result<Arc<Session>> {
    super::get::lookup_session(state, request_headers, &context.caller, &context.request_id).await
}

/// A later request may omit `MCP-Protocol-Version`; a present one must be a version we serve.
pub fn check_protocol_header(request_headers: &HeaderMap) -> Result<()> {
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

/// Starts a session: a child of its own (session scope) or the shared one.
async fn initialize(
    state: &Arc<AppState>,
    context: &Context,
    message: Map<String, Value>,
    client_id: Value,
) -> Result<Response> {
    let identity = &context.caller.identity;
    let reservation = state
        .store
        .reserve()
        .ok_or_else(|| Reject::at_capacity("too many sessions (MAX_SESSIONS)"))?;
    if *state.stopping.borrow() {
        return Err(Reject::at_capacity(
            "the gateway is shutting down; connect again in a moment",
        ));
    }
    if identity.token_hash.is_some()
        && !state
            .store
            .make_room(&identity.subject, state.config.sessions.max_per_identity)
            .await
    {
        return Err(Reject::at_capacity(
            "this identity has MAX_SESSIONS_PER_IDENTITY busy sessions; end one with DELETE",
        ));
    }
    let session_id = SessionStore::new_session_id();
    let channel = state.spawner.new_channel(state.store.next_key());
    let (session, answer) = match state.scope() {
        ChildScope::Session => {
            let store = Arc::downgrade(&state.store);
            let id_for_exit = session_id.clone();
            let audit = state.audit.clone();
            let subject = identity.subject.clone();
            let router = state
                .spawner
                .spawn_dedicated(
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
                            tokio::spawn(async move {
                                store.end(&id_for_exit, EndReason::ChildExited).await
                            });
                        }
                    }),
                )
                .map_err(spawn_reject)?;
            let session = Arc::new(Session::new(
                session_id.clone(),
                identity.clone(),
                channel,
                router.clone(),
                true,
            ));
            let answer = forward_initialize(state, &session, message, client_id).await;
            if answer.is_err() {
                router.child().terminate().await;
            }
            (session, answer?)
        }
        ChildScope::Shared => {
            let shared = state
                .spawner
                .shared(state.operator_credential.as_ref())
                .await
                .map_err(spawn_reject)?;
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
                session_id.clone(),
                identity.clone(),
                channel,
                shared.router,
                false,
            ));
            let body = json!({ "jsonrpc": "2.0", "id": client_id, "result": result });
            (
                session,
                InitAnswer {
                    version: Some(version),
                    events: vec![jsonrpc::to_bytes(&body)],
                },
            )
        }
    };
    let InitAnswer {
        version,
        mut events,
    } = answer;
    // The response is the last event (the stream ends with it).
    let response_body = events.pop().unwrap_or_default();
    let Some(version) = version else {
        // The child refused initialize: pass its error on, create nothing.
        if session.owns_child {
            session.router.child().terminate().await;
        }
        return Ok(json_response(response_body, None));
    };
    session.set_version(version);
    state.store.insert(session.clone(), reservation);
    tracing::info!(session = %short(&session_id), subject = %identity.subject, version = session.version(), "session created");
    state.audit.emit(
        Event::new(EventType::SessionCreated)
            .ip(context.caller.ip)
            .identity(&identity.subject)
            .token_hash(identity.token_hash.as_deref())
            .session(short(&session_id))
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
        set_session_header(&mut response, &session_id);
        return Ok(response);
    }
    // A JSON-only client: what the child said before its response waits for the GET stream.
    relay_to_standalone(&session, events);
    Ok(json_response(response_body, Some(&session_id)))
}

/// Messages a JSON-only client cannot take on its POST answer (progress, log messages, requests
/// of the server) go to the session's GET stream, kept there (SSE_PENDING_EVENTS) until one is
/// open, as the transport allows for messages from the server outside a request's stream.
fn relay_to_standalone(session: &Session, events: Vec<bytes::Bytes>) {
    for data in events {
        session.channel.standalone.push(data, false);
    }
}

struct InitAnswer {
    /// The negotiated version; None when initialize failed.
    version: Option<String>,
    /// Everything the child said, its response last.
    events: Vec<bytes::Bytes>,
}

pub(crate) fn spawn_reject(failure: crate::core::spawner::SpawnFailure) -> Reject {
    use crate::core::spawner::SpawnFailure;
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

/// Sends the client's initialize to a fresh child and waits (bounded) for the whole answer, so
/// that the session exists before any header is written.
async fn forward_initialize(
    state: &Arc<AppState>,
    session: &Arc<Session>,
    message: Map<String, Value>,
    client_id: Value,
) -> Result<InitAnswer> {
    let stream = session.channel.open_stream(1);
    let mut changed = stream.subscribe();
    session
        .router
        .call(&session.channel, message, client_id, &stream)
        .await
        .map_err(|_| child_gone())?;
    let timeout = state.config.children.start_timeout;
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
        return Err(Reject::new(
            StatusCode::GATEWAY_TIMEOUT,
            jsonrpc::INTERNAL_ERROR,
            Fault::Upstream,
            "Gateway Timeout: the MCP server did not answer initialize in time",
        ));
    }
    if session.router.is_closed() {
        // The child died before or while answering: it could not be started, whatever it said.
        tracing::error!(session = %short(&session.id), "the MCP server exited during initialize");
        return Err(spawn_reject(crate::core::spawner::SpawnFailure::Start(
            "exited during initialize".into(),
        )));
    }
    let events = stream.after(0).events;
    let Some(last) = events.iter().find(|e| e.is_final) else {
        return Err(child_gone());
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

fn set_session_header(response: &mut Response, session_id: &str) {
    if let Ok(value) = HeaderValue::from_str(session_id) {
        response.headers_mut().insert(SESSION_ID, value);
    }
}

fn json_response(body: bytes::Bytes, session_id: Option<&str>) -> Response {
    let mut response = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if let Some(id) = session_id {
        set_session_header(&mut response, id);
    }
    response
}

/// An SSE answer made of messages already in hand (initialize with notifications before it).
fn sse_from_events(
    session: &Arc<Session>,
    events: Vec<bytes::Bytes>,
    keepalive: std::time::Duration,
) -> Response {
    let stream = session.channel.open_stream(1);
    let count = events.len();
    for (i, data) in events.into_iter().enumerate() {
        stream.push(data, i + 1 == count);
    }
    stream.try_attach();
    sse::response(SseSpec {
        stream,
        after: 0,
        priming: protocol::wants_priming(session.version()),
        keepalive,
        stop: None,
        delivered_to: None,
        guard: None,
    })
}

/// Methods a shared child cannot serve per session, answered by the gateway itself.
fn shared_scope_local_answer(method: &str, id: &Value) -> Option<Value> {
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
async fn call(
    state: &Arc<AppState>,
    session: &Arc<Session>,
    wants: Wants,
    message: Map<String, Value>,
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
        .call(&session.channel, message, id.clone(), &stream)
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
async fn batch(
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

/// CALL_TIMEOUT_SECS for the calls of one POST: the client gets an error, the child a cancel.
///
/// While the handler waits for the answer's shape it keeps the deadline itself (no task per
/// call); when the answer becomes an SSE stream, or the handler is dropped (the client went away)
/// before the calls ended, a task takes over the rest of the wait.
struct CallTimer {
    deadline: tokio::time::Instant,
    timeout: std::time::Duration,
    router: Arc<Router>,
    stream: Arc<EventStream>,
    upstream_ids: Vec<u64>,
    armed: bool,
}

impl CallTimer {
    fn arm(
        state: &Arc<AppState>,
        router: Arc<Router>,
        stream: Arc<EventStream>,
        upstream_ids: Vec<u64>,
    ) -> CallTimer {
        let timeout = state.config.sessions.call_timeout;
        CallTimer {
            deadline: tokio::time::Instant::now() + timeout,
            timeout,
            router,
            stream,
            upstream_ids,
            armed: true,
        }
    }

    /// Waits for the answer's shape; at the deadline the calls are abandoned (their error
    /// responses end the stream) and the wait goes on.
    async fn wait_for_shape(&mut self) -> Shape {
        if let Ok(shape) =
            tokio::time::timeout_at(self.deadline, wait_for_shape(&self.stream)).await
        {
            return shape;
        }
        self.expire().await;
        wait_for_shape(&self.stream).await
    }

    /// For a JSON-only client: waits for every response, relaying anything else the child says
    /// meanwhile to the session's GET stream; at the deadline the calls are abandoned (their
    /// error responses end the stream) and the wait goes on.
    async fn collect_responses(&mut self, session: &Session) -> Vec<bytes::Bytes> {
        let mut collected = Collected::default();
        let stream = self.stream.clone();
        if tokio::time::timeout_at(
            self.deadline,
            collect_responses(&stream, session, &mut collected),
        )
        .await
        .is_err()
        {
            self.expire().await;
            collect_responses(&stream, session, &mut collected).await;
        }
        collected.responses
    }

    async fn expire(&mut self) {
        self.armed = false;
        abandon(&self.router, &self.upstream_ids, self.timeout).await;
    }

    /// The answer is complete: nothing left to time out.
    fn disarm(&mut self) {
        self.armed = false;
    }

    /// Hands the rest of the wait to a task (the answer is streamed, or the handler is gone).
    fn hand_off(&mut self) {
        if !self.armed || self.stream.is_done() {
            self.armed = false;
            return;
        }
        self.armed = false;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let router = self.router.clone();
        let stream = self.stream.clone();
        let upstream_ids = std::mem::take(&mut self.upstream_ids);
        let (deadline, timeout) = (self.deadline, self.timeout);
        runtime.spawn(async move {
            let mut changed = stream.subscribe();
            let done = async {
                while !stream.is_done() {
                    if changed.changed().await.is_err() {
                        return;
                    }
                }
            };
            if tokio::time::timeout_at(deadline, done).await.is_err() {
                abandon(&router, &upstream_ids, timeout).await;
            }
        });
    }
}

impl Drop for CallTimer {
    fn drop(&mut self) {
        self.hand_off();
    }
}

async fn abandon(router: &Router, upstream_ids: &[u64], timeout: std::time::Duration) {
    let message = format!(
        "The MCP server did not answer within {} s (CALL_TIMEOUT_SECS)",
        timeout.as_secs()
    );
    for &id in upstream_ids {
        router.abandon(id, jsonrpc::INTERNAL_ERROR, &message).await;
    }
}

/// Waits until the answer's shape is known: all responses and nothing else (JSON), or
/// something else first (SSE).
async fn wait_for_shape(stream: &Arc<EventStream>) -> Shape {
    let mut changed = stream.subscribe();
    loop {
        let pending = stream.after(0);
        if pending.events.iter().any(|e| !e.is_final) {
            return Shape::Sse;
        }
        if pending.done {
            return if pending.events.is_empty() {
                Shape::Empty
            } else {
                Shape::Json(pending.events.into_iter().map(|e| e.data).collect())
            };
        }
        if changed.changed().await.is_err() {
            return Shape::Empty;
        }
    }
}

/// What a JSON-only answer has read of its stream so far.
#[derive(Default)]
struct Collected {
    last: u64,
    responses: Vec<bytes::Bytes>,
}

/// Reads the stream to its end: responses are kept, everything else goes to the GET stream.
async fn collect_responses(
    stream: &Arc<EventStream>,
    session: &Session,
    collected: &mut Collected,
) {
    let mut changed = stream.subscribe();
    loop {
        let pending = stream.after(collected.last);
        if pending.gap {
            tracing::warn!(
                session = %short(&session.id),
                stream = stream.id(),
                "more messages arrived at once than the answer's buffer keeps; some were lost"
            );
        }
        for event in pending.events {
            collected.last = event.seq;
            if event.is_final {
                collected.responses.push(event.data);
            } else {
                session.channel.standalone.push(event.data, false);
            }
        }
        if pending.done || changed.changed().await.is_err() {
            return;
        }
    }
}

enum Shape {
    Json(Vec<bytes::Bytes>),
    Sse,
    /// Ended without any answer (cancelled by the client).
    Empty,
}

async fn respond(
    state: &Arc<AppState>,
    session: &Arc<Session>,
    wants: Wants,
    stream: Arc<EventStream>,
    guard: Box<dyn Send + Sync>,
    mut timer: CallTimer,
) -> Result<Response> {
    match wants {
        Wants::Json => {
            let mut responses = timer.collect_responses(session).await;
            timer.disarm();
            drop(guard);
            // Cancelled by the client (notifications/cancelled): no response is due, and none
            // is made up.
            Ok(match responses.pop() {
                Some(body) => json_response(body, None),
                None => accepted(),
            })
        }
        Wants::Sse => {
            timer.hand_off();
            Ok(stream_response(state, session, stream, guard))
        }
        Wants::Both => match timer.wait_for_shape().await {
            Shape::Json(mut bodies) if bodies.len() == 1 => {
                timer.disarm();
                Ok(json_response(bodies.remove(0), None))
            }
            _ => {
                timer.hand_off();
                Ok(stream_response(state, session, stream, guard))
            }
        },
    }
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

/// Several JSON-RPC messages as one JSON array body.
fn json_array(status: StatusCode, bodies: &[bytes::Bytes]) -> Response {
    let mut array = Vec::with_capacity(bodies.iter().map(|b| b.len() + 1).sum::<usize>() + 2);
    array.push(b'[');
    for (i, body) in bodies.iter().enumerate() {
        if i > 0 {
            array.push(b',');
        }
        array.extend_from_slice(body);
    }
    array.push(b']');
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes::Bytes::from(array),
    )
        .into_response()
}

async fn respond_batch(
    state: &Arc<AppState>,
    session: &Arc<Session>,
    wants: Wants,
    stream: Arc<EventStream>,
    guard: Box<dyn Send + Sync>,
    mut timer: CallTimer,
) -> Result<Response> {
    match wants {
        Wants::Json => {
            let responses = timer.collect_responses(session).await;
            timer.disarm();
            drop(guard);
            Ok(if responses.is_empty() {
                accepted()
            } else {
                json_array(StatusCode::OK, &responses)
            })
        }
        Wants::Sse => {
            timer.hand_off();
            Ok(stream_response(state, session, stream, guard))
        }
        Wants::Both => match timer.wait_for_shape().await {
            Shape::Json(bodies) => {
                timer.disarm();
                Ok(json_array(StatusCode::OK, &bodies))
            }
            _ => {
                timer.hand_off();
                Ok(stream_response(state, session, stream, guard))
            }
        },
    }
}

fn stream_response(
    state: &Arc<AppState>,
    session: &Arc<Session>,
    stream: Arc<EventStream>,
    guard: Box<dyn Send + Sync>,
) -> Response {
    session.channel.retain(&stream);
    stream.try_attach();
    sse::response(SseSpec {
        stream,
        after: 0,
        priming: protocol::wants_priming(session.version()),
        keepalive: state.config.sse.keepalive,
        stop: None,
        delivered_to: None,
        guard: Some(guard),
    })
}
