//! One sessionless (2026-07-28) call on a pool child, read as the modern client must see it.
//!
//! The router delivers everything the child says about the call to the call's stream, as for a
//! session. This reader turns it into what a modern client may receive: progress (when it asked),
//! log messages (only at or above the request's `logLevel`), the answer, and, instead of the
//! child's requests to the client (sampling, elicitation, roots), an `input_required` outcome the
//! edge answers with MRTR. Requests the child sends back-to-back are gathered into one outcome;
//! an answer the client supplied in advance (`inputResponses`, keyed by the child's request id)
//! is given to the child at once.
//!
//! Dropping a call that neither finished nor was parked cancels it on the child: on HTTP a
//! modern client cancels by closing its response stream.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::pool::{capability_for, Lease};
use super::router::{RouteError, Router};
use super::stream::EventStream;
use crate::jsonrpc;
use crate::protocol::LogLevel;

/// What the client asked for, as far as reading the call goes.
pub struct Asked<'a> {
    /// Its `clientCapabilities`.
    pub capabilities: &'a Map<String, Value>,
    /// Its `logLevel`: no log messages without one.
    pub log_level: Option<LogLevel>,
    /// Answers given in advance or on a retry, keyed by the child's request id.
    pub input_responses: &'a Map<String, Value>,
    /// How long to wait for more child requests after the first (MRTR_GATHER_MS).
    pub gather: Duration,
    /// Every notification goes to the client (a modern child's `subscriptions/listen`).
    pub relay_all: bool,
}

impl Asked<'_> {
    fn declares(&self, capability: &str) -> bool {
        self.capabilities
            .get(capability)
            .is_some_and(|c| !c.is_null() && c != &Value::Bool(false))
    }
}

/// A child request the client must answer, waiting in the router under its `gw-N` id.
#[derive(Clone, Debug)]
pub struct InputRequest {
    /// The key in `inputRequests` / `inputResponses`: the child's own id, as text.
    pub key: String,
    /// The id the router knows it by.
    pub gateway_id: String,
    /// `{method, params}` as the client receives it.
    pub request: Value,
}

/// The next thing for the client.
pub enum Outbound {
    /// A notification (progress, a log message), as the child wrote it.
    Notification(Bytes),
    /// The child's answer as the router addressed it (its `id` is the one the call started
    /// with), unparsed: the edge completes it in place when it can.
    Final(Bytes),
    /// The child waits for the client.
    InputRequired(Vec<InputRequest>),
    /// The child asked only for what the client did not declare: these capabilities.
    MissingCapabilities(Vec<&'static str>),
    /// No answer will come (the child is gone, or the call was cancelled).
    Gone,
}

/// The most child requests gathered into one `input_required` answer.
const MAX_INPUT_REQUESTS: usize = 32;

pub struct ModernCall {
    pub lease: Lease,
    stream: Arc<EventStream>,
    upstream_id: u64,
    last: u64,
    queue: VecDeque<Outbound>,
    /// Ended: answered, cancelled, or the child is gone; nothing to cancel on drop.
    over: bool,
}

impl ModernCall {
    /// Forwards `message` (already in the child's era) to the lease's child.
    pub async fn start(
        lease: Lease,
        message: Map<String, Value>,
        client_id: Value,
    ) -> Result<ModernCall, RouteError> {
        let worker = lease.worker.clone();
        let stream = worker.channel.open_stream(1);
        let upstream_id = worker
            .router
            .call(&worker.channel, message, client_id, &stream)
            .await?;
        Ok(ModernCall {
            lease,
            stream,
            upstream_id,
            last: 0,
            queue: VecDeque::new(),
            over: false,
        })
    }

    pub fn router(&self) -> &Arc<Router> {
        &self.lease.worker.router
    }

    /// The next thing for the client; `Gone` once nothing more will come.
    pub async fn next(&mut self, asked: &Asked<'_>) -> Outbound {
        loop {
            if let Some(out) = self.queue.pop_front() {
                return out;
            }
            if self.over {
                return Outbound::Gone;
            }
            let mut changed = self.stream.subscribe();
            let pending = self.stream.after(self.last);
            let mut requests = Vec::new();
            for event in pending.events {
                self.last = event.seq;
                match self.read(event.data, event.is_final, asked) {
                    Read::Out(out) => self.queue.push_back(out),
                    Read::Request(request) => requests.push(request),
                    Read::Nothing => {}
                }
            }
            if !requests.is_empty() {
                self.gather(&mut requests, asked).await;
                if let Some(out) = self.settle(requests, asked).await {
                    self.queue.push_back(out);
                }
                continue;
            }
            if !self.queue.is_empty() {
                continue;
            }
            if pending.done {
                self.over = true;
                return Outbound::Gone;
            }
            if changed.changed().await.is_err() {
                self.over = true;
                return Outbound::Gone;
            }
        }
    }

    /// Waits MRTR_GATHER_MS after the newest child request for more (at most
    /// MAX_INPUT_REQUESTS), keeping everything else that arrives meanwhile in order.
    async fn gather(&mut self, requests: &mut Vec<ChildRequest>, asked: &Asked<'_>) {
        let mut deadline = tokio::time::Instant::now() + asked.gather;
        while requests.len() < MAX_INPUT_REQUESTS {
            let mut changed = self.stream.subscribe();
            let pending = self.stream.after(self.last);
            for event in pending.events {
                self.last = event.seq;
                match self.read(event.data, event.is_final, asked) {
                    Read::Out(out) => self.queue.push_back(out),
                    Read::Request(request) => {
                        requests.push(request);
                        deadline = tokio::time::Instant::now() + asked.gather;
                    }
                    Read::Nothing => {}
                }
            }
            if pending.done || self.over {
                return;
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .map_or(true, |r| r.is_err())
            {
                return;
            }
        }
    }

    /// Decides what becomes of the child's requests: answered from `inputResponses`, asked of the
    /// client, or refused for a capability the client lacks.
    async fn settle(&mut self, requests: Vec<ChildRequest>, asked: &Asked<'_>) -> Option<Outbound> {
        let mut ask = Vec::new();
        let mut lacking: Vec<(ChildRequest, &'static str)> = Vec::new();
        let mut answered = 0;
        for request in requests {
            if let Some(answer) = asked.input_responses.get(&request.input.key) {
                self.reply(&request.input.gateway_id, Ok(answer.clone()))
                    .await;
                answered += 1;
                continue;
            }
            match capability_for(&request.method) {
                Some(capability) if !asked.declares(capability) => {
                    lacking.push((request, capability))
                }
                _ => ask.push(request.input),
            }
        }
        if ask.is_empty() && answered == 0 && !lacking.is_empty() {
            let mut names: Vec<&'static str> = lacking.iter().map(|(_, c)| *c).collect();
            names.dedup();
            return Some(Outbound::MissingCapabilities(names));
        }
        for (request, capability) in lacking {
            let message =
                format!("Method not found: the client did not declare the {capability} capability");
            self.reply(&request.input.gateway_id, Err(message)).await;
        }
        (!ask.is_empty()).then_some(Outbound::InputRequired(ask))
    }

    /// Answers a child request the router holds as `gateway_id`.
    pub async fn reply(&self, gateway_id: &str, answer: Result<Value, String>) {
        let id = json!(gateway_id);
        let body = match answer {
            Ok(result) => json!({ "jsonrpc": "2.0", "id": id, "result": result }),
            Err(message) => {
                jsonrpc::error_body(Some(&id), jsonrpc::METHOD_NOT_FOUND, &message, None)
            }
        };
        let Value::Object(body) = body else { return };
        let worker = &self.lease.worker;
        if worker
            .router
            .answer(&worker.channel, body, &id)
            .await
            .is_err()
        {
            tracing::debug!("the child ended before its request was answered");
        }
    }

    fn read(&mut self, data: Bytes, is_final: bool, asked: &Asked<'_>) -> Read {
        if is_final {
            self.over = true;
            return Read::Out(Outbound::Final(data));
        }
        let Ok(Value::Object(message)) = serde_json::from_slice::<Value>(&data) else {
            return Read::Nothing;
        };
        let method = message.get("method").and_then(Value::as_str).unwrap_or("");
        if let Some(id) = message.get("id").and_then(Value::as_str) {
            let key = match self.router().server_request_origin(id) {
                Some(Value::String(text)) => text,
                Some(other) => other.to_string(),
                None => return Read::Nothing,
            };
            let request = json!({
                "method": method,
                "params": message.get("params").cloned().unwrap_or_else(|| json!({})),
            });
            return Read::Request(ChildRequest {
                method: method.to_string(),
                input: InputRequest {
                    key,
                    gateway_id: id.to_string(),
                    request,
                },
            });
        }
        match method {
            "notifications/progress" => Read::Out(Outbound::Notification(data)),
            "notifications/message" => {
                let level = message
                    .get("params")
                    .and_then(|p| p.get("level"))
                    .and_then(Value::as_str)
                    .and_then(LogLevel::parse);
                match (asked.log_level, level) {
                    (Some(wanted), Some(level)) if level >= wanted => {
                        Read::Out(Outbound::Notification(data))
                    }
                    _ => Read::Nothing,
                }
            }
            _ if asked.relay_all => Read::Out(Outbound::Notification(data)),
            // Anything else (list changes, a child cancelling its own request) is not the
            // client's business on a call stream.
            _ => Read::Nothing,
        }
    }

    /// Gives up on the call: the child is told to cancel; nothing more comes.
    pub async fn cancel(&mut self, reason: &str) {
        if !self.over {
            self.over = true;
            let router = self.router().clone();
            router.cancel(self.upstream_id, reason).await;
        }
    }

    /// Gives up after CALL_TIMEOUT_SECS: the router answers the call with an error.
    pub async fn abandon(&mut self, message: &str) {
        let router = self.router().clone();
        router
            .abandon(self.upstream_id, jsonrpc::INTERNAL_ERROR, message)
            .await;
    }

    /// Whether the call ended (answered, cancelled, child gone).
    pub fn is_over(&self) -> bool {
        self.over
    }
}

impl Drop for ModernCall {
    fn drop(&mut self) {
        if self.over {
            return;
        }
        // The client went away mid-call: that is its cancel.
        let router = self.router().clone();
        let id = self.upstream_id;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                router
                    .cancel(id, "The client closed the response stream")
                    .await;
            });
        }
    }
}

struct ChildRequest {
    method: String,
    input: InputRequest,
}

enum Read {
    Out(Outbound),
    Request(ChildRequest),
    Nothing,
}
