//! Message routing between HTTP sessions and one child: id translation, waiters, and the choice
//! of stream for everything the child says.
//!
//! Client request ids are replaced by the router's own integers on the way to the child, and put
//! back on the way out, so ids of different sessions (shared scope) or a careless client can never
//! collide. Requests the child sends to the client get ids of the form `gw-N` for the same reason.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use super::channel::Channel;
use super::stream::EventStream;
use crate::jsonrpc::{self, Kind};
use crate::metrics::{self, METRICS};
use crate::upstream::{Child, ChildGone, ExitReport, Lines};

/// Called once when the child is gone, after every waiter got its error.
pub type ExitHook = Box<dyn FnOnce(ExitReport) + Send>;

/// Whether one child serves one session or many.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// The router's only session is `home`; unrelated messages go to its GET stream.
    Dedicated,
    /// Many sessions; progress tokens are remapped too, and what cannot be routed is dropped.
    Shared,
}

struct PendingCall {
    /// The method as a metrics label, and when the call left for the child.
    method: &'static str,
    started: tokio::time::Instant,
    channel: Arc<Channel>,
    client_id: Value,
    stream: Arc<EventStream>,
    /// The token the child will use in progress notifications for this call.
    upstream_progress: Option<Value>,
    /// The client's own token, restored on the way back (shared scope).
    client_progress: Option<Value>,
}

struct ServerRequest {
    channel_key: u64,
    child_id: Value,
}

#[derive(Default)]
struct State {
    pending: HashMap<u64, PendingCall>,
    server_requests: HashMap<String, ServerRequest>,
    closed: bool,
}

pub struct Router {
    child: Child,
    sharing: Sharing,
    home: Option<Arc<Channel>>,
    next_id: AtomicU64,
    next_server_request: AtomicU64,
    state: Mutex<State>,
}

/// A client request on its way to the child.
pub enum Outgoing<'a> {
    /// Parsed: what must be translated is, then it is serialized.
    Message(Map<String, Value>),
    /// Read by [`jsonrpc::probe_request`] (no `_meta`, one line): forwarded as the client sent
    /// it, with only the id's bytes replaced.
    Raw {
        body: &'a [u8],
        id_span: std::ops::Range<usize>,
        method: &'a str,
    },
}

/// Why a message could not go to the child.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("the MCP server process is gone")]
    ChildGone,
}

impl From<ChildGone> for RouteError {
    fn from(_: ChildGone) -> Self {
        RouteError::ChildGone
    }
}

/// The `_meta` member that ties a notification to a `subscriptions/listen` call (2026-07-28).
const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// The error every waiter gets when the child dies: no internal detail, and what to do.
const CHILD_EXIT_MESSAGE: &str =
    "The MCP server process ended unexpectedly; this session is over. Start a new session.";

impl Router {
    /// Wires a spawned child to a router and starts reading what it says.
    pub fn start(
        child: Child,
        lines: Lines,
        sharing: Sharing,
        home: Option<Arc<Channel>>,
        on_exit: ExitHook,
    ) -> Arc<Router> {
        let router = Arc::new(Router {
            child,
            sharing,
            home,
            next_id: AtomicU64::new(1),
            next_server_request: AtomicU64::new(1),
            state: Mutex::new(State::default()),
        });
        tokio::spawn(read_loop(router.clone(), lines, on_exit));
        router
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn child(&self) -> &Child {
        &self.child
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Forwards a client request; its response (and anything related) arrives on `stream`.
    /// Returns the upstream id, which names the call for [`Router::abandon`].
    pub async fn call(
        &self,
        channel: &Arc<Channel>,
        message: Map<String, Value>,
        client_id: Value,
        stream: &Arc<EventStream>,
    ) -> Result<u64, RouteError> {
        self.forward(channel, Outgoing::Message(message), client_id, stream)
            .await
    }

    /// [`Router::call`] for a request parsed or only probed.
    pub async fn forward(
        &self,
        channel: &Arc<Channel>,
        outgoing: Outgoing<'_>,
        client_id: Value,
        stream: &Arc<EventStream>,
    ) -> Result<u64, RouteError> {
        let upstream_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (line, method, client_progress, upstream_progress) = match outgoing {
            // No `_meta`, so no progress token: only the id changes.
            Outgoing::Raw {
                body,
                id_span,
                method,
            } => (
                jsonrpc::splice_id(body, id_span, &json!(upstream_id)),
                metrics::method_label(method),
                None,
                None,
            ),
            Outgoing::Message(mut message) => {
                let client_progress = jsonrpc::progress_token(&message).cloned();
                let method = metrics::method_label(
                    message.get("method").and_then(Value::as_str).unwrap_or(""),
                );
                let upstream_progress = match (&client_progress, self.sharing) {
                    (Some(_), Sharing::Shared) => {
                        let token = json!(format!("gw-p{upstream_id}"));
                        if let Some(meta) = message
                            .get_mut("params")
                            .and_then(|p| p.get_mut("_meta"))
                            .and_then(Value::as_object_mut)
                        {
                            meta.insert("progressToken".into(), token.clone());
                        }
                        Some(token)
                    }
                    (token, _) => token.clone(),
                };
                message.insert("id".into(), json!(upstream_id));
                (
                    jsonrpc::map_to_bytes(&message),
                    method,
                    client_progress,
                    upstream_progress,
                )
            }
        };
        {
            let mut state = self.lock();
            if state.closed {
                return Err(RouteError::ChildGone);
            }
            state.pending.insert(
                upstream_id,
                PendingCall {
                    method,
                    started: tokio::time::Instant::now(),
                    channel: channel.clone(),
                    client_id,
                    stream: stream.clone(),
                    upstream_progress,
                    client_progress,
                },
            );
        }
        if let Err(gone) = self.child.send(line).await {
            self.lock().pending.remove(&upstream_id);
            return Err(gone.into());
        }
        Ok(upstream_id)
    }

    /// Forwards a client notification, translating what must be translated.
    pub async fn notify(
        &self,
        channel: &Arc<Channel>,
        mut message: Map<String, Value>,
        method: &str,
    ) -> Result<(), RouteError> {
        match method {
            "notifications/cancelled" => {
                let Some(request_id) = message
                    .get("params")
                    .and_then(|p| p.get("requestId"))
                    .cloned()
                else {
                    return Ok(());
                };
                let found = {
                    let mut state = self.lock();
                    let upstream = state
                        .pending
                        .iter()
                        .find(|(_, p)| p.channel.key == channel.key && p.client_id == request_id)
                        .map(|(id, _)| *id);
                    upstream.and_then(|id| state.pending.remove(&id).map(|p| (id, p)))
                };
                // A cancel for a call that already finished (or another session's id) is ignored.
                let Some((upstream_id, pending)) = found else {
                    return Ok(());
                };
                record(&pending, "cancelled");
                pending.stream.finish();
                if let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) {
                    params.insert("requestId".into(), json!(upstream_id));
                }
            }
            // The gateway initialized a shared child itself; other sessions' notifications about
            // their own client (roots) cannot be told apart by a shared child.
            _ if self.sharing == Sharing::Shared => return Ok(()),
            _ => {}
        }
        self.child.send(jsonrpc::map_to_bytes(&message)).await?;
        Ok(())
    }

    /// Sends a message as is (the gateway's own notifications).
    pub async fn notify_raw(&self, message: Map<String, Value>) -> Result<(), RouteError> {
        self.child.send(jsonrpc::map_to_bytes(&message)).await?;
        Ok(())
    }

    /// Routes a client's answer to a request the child sent. False when nobody asked (stale or foreign).
    pub async fn answer(
        &self,
        channel: &Arc<Channel>,
        mut message: Map<String, Value>,
        id: &Value,
    ) -> Result<bool, RouteError> {
        let Some(key) = id.as_str() else {
            return Ok(false);
        };
        let child_id = {
            let mut state = self.lock();
            match state.server_requests.get(key) {
                Some(request) if request.channel_key == channel.key => {
                    state.server_requests.remove(key).map(|r| r.child_id)
                }
                _ => None,
            }
        };
        let Some(child_id) = child_id else {
            return Ok(false);
        };
        message.insert("id".into(), child_id);
        self.child.send(jsonrpc::map_to_bytes(&message)).await?;
        Ok(true)
    }

    /// Gives up on a call (timeout): the child is told to cancel, the client gets `error`.
    pub async fn abandon(&self, upstream_id: u64, code: i64, message: &str) {
        let Some(pending) = self.lock().pending.remove(&upstream_id) else {
            return;
        };
        record(&pending, "timeout");
        let body = jsonrpc::error_body(Some(&pending.client_id), code, message, None);
        pending.stream.push(jsonrpc::to_bytes(&body), true);
        let cancel = json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": { "requestId": upstream_id, "reason": message },
        });
        let _ = self.child.send(jsonrpc::to_bytes(&cancel)).await;
    }

    /// Cancels a call the client gave up on (a modern client closed its response stream): the
    /// client gets nothing more, the child gets `notifications/cancelled`.
    pub async fn cancel(&self, upstream_id: u64, reason: &str) {
        let Some(pending) = self.lock().pending.remove(&upstream_id) else {
            return;
        };
        record(&pending, "cancelled");
        pending.stream.finish();
        let cancel = json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": { "requestId": upstream_id, "reason": reason },
        });
        let _ = self.child.send(jsonrpc::to_bytes(&cancel)).await;
    }

    /// The child's own id of a request it sent, by the `gw-N` id the client sees.
    pub fn server_request_origin(&self, key: &str) -> Option<Value> {
        self.lock()
            .server_requests
            .get(key)
            .map(|r| r.child_id.clone())
    }

    /// Whether a call is still waiting for the child.
    pub fn is_pending(&self, upstream_id: u64) -> bool {
        self.lock().pending.contains_key(&upstream_id)
    }

    /// Drops every call and server request of a session that ended.
    pub fn forget(&self, channel_key: u64) {
        let mut state = self.lock();
        let ids: Vec<u64> = state
            .pending
            .iter()
            .filter(|(_, p)| p.channel.key == channel_key)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(pending) = state.pending.remove(&id) {
                pending.stream.finish();
            }
        }
        state
            .server_requests
            .retain(|_, r| r.channel_key != channel_key);
    }

    /// Number of calls waiting for the child.
    pub fn in_flight(&self) -> usize {
        self.lock().pending.len()
    }

    /// Handles one line from the child.
    fn inbound(&self, line: &[u8]) {
        // Most lines are responses: re-address them in place, without building a tree.
        if let Some(response) = jsonrpc::probe_response(line) {
            self.route_raw_response(line, response);
            return;
        }
        let mut message = match serde_json::from_slice::<Value>(line) {
            Ok(Value::Object(map)) => map,
            _ => {
                tracing::warn!(
                    pid = self.child.pid(),
                    bytes = line.len(),
                    "child wrote a line that is not a JSON-RPC object; ignored"
                );
                return;
            }
        };
        match jsonrpc::classify(&message) {
            Ok(Kind::Response { id }) => self.route_response(message, &id),
            Ok(Kind::Request { id, method }) => self.route_server_request(message, id, &method),
            Ok(Kind::Notification { method }) => self.route_notification(&mut message, &method),
            Err(invalid) => {
                tracing::warn!(pid = self.child.pid(), %invalid, "child wrote an invalid JSON-RPC message; ignored")
            }
        }
    }

    /// [`Router::route_response`] for a line read by [`jsonrpc::probe_response`]: only the id's
    /// bytes change.
    fn route_raw_response(&self, line: &[u8], response: jsonrpc::RawResponse) {
        let pending = self.lock().pending.remove(&response.id);
        let Some(pending) = pending else {
            tracing::debug!(
                pid = self.child.pid(),
                id = response.id,
                "response for no waiting call (cancelled or timed out); dropped"
            );
            return;
        };
        record(&pending, if response.is_error { "error" } else { "result" });
        let body = jsonrpc::splice_id(line, response.id_span, &pending.client_id);
        pending.stream.push(body, true);
    }

    fn route_response(&self, mut message: Map<String, Value>, id: &Value) {
        let pending = id.as_u64().and_then(|id| self.lock().pending.remove(&id));
        let Some(pending) = pending else {
            tracing::debug!(pid = self.child.pid(), %id, "response for no waiting call (cancelled or timed out); dropped");
            return;
        };
        record(
            &pending,
            if message.contains_key("error") {
                "error"
            } else {
                "result"
            },
        );
        message.insert("id".into(), pending.client_id);
        pending.stream.push(jsonrpc::map_to_bytes(&message), true);
    }

    /// The stream for a message related to "what the session is doing now": the newest call of
    /// the session, or its GET stream when nothing is in flight. In shared scope only a message
    /// that can belong to a single session is routed.
    fn related_target(&self, state: &State) -> Option<(Arc<Channel>, Arc<EventStream>)> {
        let newest = state
            .pending
            .iter()
            .max_by_key(|(id, _)| **id)
            .map(|(_, p)| p);
        match self.sharing {
            Sharing::Dedicated => match newest {
                Some(p) => Some((p.channel.clone(), p.stream.clone())),
                None => self
                    .home
                    .as_ref()
                    .map(|home| (home.clone(), home.standalone.clone())),
            },
            Sharing::Shared => {
                let newest = newest?;
                let single = state
                    .pending
                    .values()
                    .all(|p| p.channel.key == newest.channel.key);
                single.then(|| (newest.channel.clone(), newest.stream.clone()))
            }
        }
    }

    fn route_server_request(&self, mut message: Map<String, Value>, child_id: Value, method: &str) {
        let target = {
            let mut state = self.lock();
            let target = self.related_target(&state);
            if let Some((channel, stream)) = target {
                let key = format!(
                    "gw-{}",
                    self.next_server_request.fetch_add(1, Ordering::Relaxed)
                );
                state.server_requests.insert(
                    key.clone(),
                    ServerRequest {
                        channel_key: channel.key,
                        child_id: child_id.clone(),
                    },
                );
                Some((key, stream))
            } else {
                None
            }
        };
        match target {
            Some((key, stream)) => {
                message.insert("id".into(), json!(key));
                stream.push(jsonrpc::map_to_bytes(&message), false);
            }
            None => {
                tracing::warn!(
                    pid = self.child.pid(),
                    method,
                    "server-to-client request cannot be routed to one session; refused"
                );
                let refusal = jsonrpc::error_body(
                    Some(&child_id),
                    jsonrpc::METHOD_NOT_FOUND,
                    "The gateway cannot route this request to a single client (shared child scope)",
                    None,
                );
                self.child.try_send(jsonrpc::to_bytes(&refusal));
            }
        }
    }

    fn route_notification(&self, message: &mut Map<String, Value>, method: &str) {
        let target = {
            let state = self.lock();
            // A 2026-07-28 child tags what belongs to a `subscriptions/listen` call with that
            // call's id: ours, so it is put back to the client's.
            let subscription = message
                .get("params")
                .and_then(|p| p.get("_meta"))
                .and_then(|m| m.get(SUBSCRIPTION_ID))
                .and_then(Value::as_u64)
                .and_then(|id| state.pending.get(&id));
            if let Some(call) = subscription {
                if let Some(meta) = message
                    .get_mut("params")
                    .and_then(|p| p.get_mut("_meta"))
                    .and_then(Value::as_object_mut)
                {
                    meta.insert(SUBSCRIPTION_ID.into(), call.client_id.clone());
                }
                let stream = call.stream.clone();
                drop(state);
                stream.push(jsonrpc::map_to_bytes(message), false);
                return;
            }
            match method {
                "notifications/progress" => {
                    let token = message
                        .get("params")
                        .and_then(|p| p.get("progressToken"))
                        .cloned();
                    state
                        .pending
                        .values()
                        .find(|p| token.is_some() && p.upstream_progress == token)
                        .map(|p| (p.stream.clone(), p.client_progress.clone()))
                        .map(|(stream, client_token)| {
                            if let (Some(client_token), Sharing::Shared) =
                                (client_token, self.sharing)
                            {
                                if let Some(params) =
                                    message.get_mut("params").and_then(Value::as_object_mut)
                                {
                                    params.insert("progressToken".into(), client_token);
                                }
                            }
                            stream
                        })
                }
                "notifications/message" => self.related_target(&state).map(|(_, stream)| stream),
                "notifications/cancelled" => {
                    // The child gave up on a request it sent us: name it as the client knows it.
                    let request_id = message
                        .get("params")
                        .and_then(|p| p.get("requestId"))
                        .cloned();
                    let found = state
                        .server_requests
                        .iter()
                        .find(|(_, r)| Some(&r.child_id) == request_id.as_ref())
                        .map(|(key, r)| (key.clone(), r.channel_key));
                    match (found, &self.home) {
                        (Some((key, _)), Some(home)) => {
                            if let Some(params) =
                                message.get_mut("params").and_then(Value::as_object_mut)
                            {
                                params.insert("requestId".into(), json!(key));
                            }
                            Some(home.standalone.clone())
                        }
                        _ => None,
                    }
                }
                _ => match self.sharing {
                    Sharing::Dedicated => self.home.as_ref().map(|home| home.standalone.clone()),
                    Sharing::Shared => None,
                },
            }
        };
        match target {
            Some(stream) => {
                stream.push(jsonrpc::map_to_bytes(message), false);
            }
            None => tracing::debug!(
                pid = self.child.pid(),
                method,
                "notification with no session to go to; dropped"
            ),
        }
    }

    /// Every waiter gets an error at once; nothing more will be routed.
    fn fail_all(&self) {
        let pending: Vec<PendingCall> = {
            let mut state = self.lock();
            state.closed = true;
            state.server_requests.clear();
            state.pending.drain().map(|(_, p)| p).collect()
        };
        for call in pending {
            record(&call, "child_exit");
            let body = jsonrpc::error_body(
                Some(&call.client_id),
                jsonrpc::INTERNAL_ERROR,
                CHILD_EXIT_MESSAGE,
                None,
            );
            call.stream.push(jsonrpc::to_bytes(&body), true);
        }
        if let Some(home) = &self.home {
            home.close();
        }
    }
}

fn record(call: &PendingCall, outcome: &str) {
    METRICS.rpc_calls.inc(&[
        ("method", call.method),
        ("outcome", outcome),
        ("era", call.channel.era()),
    ]);
    METRICS.rpc_duration.observe(call.started.elapsed());
}

async fn read_loop(router: Arc<Router>, mut lines: Lines, on_exit: ExitHook) {
    while let Some(line) = lines.next().await {
        router.inbound(line);
    }
    drop(lines);
    // stdout closed: the child is exiting (or was killed for a too-long line).
    router.lock().closed = true;
    // A child that closed stdout but lingers is of no use: end its group.
    router.child.terminate().await;
    let report = router.child.exited().await;
    router.fail_all();
    on_exit(report);
}
