//! `subscriptions/listen`: a long-lived POST answered with SSE. It starts with
//! `notifications/subscriptions/acknowledged` (the filter the server agreed to) and then carries
//! the notification types the client opted in to, each tagged with
//! `_meta["io.modelcontextprotocol/subscriptionId"]` = the listen request's id. When the gateway
//! shuts down the stream ends with the request's `complete` result.
//!
//! A legacy child's list changes and resource updates arrive on the identity's notification feed
//! (any of its pool children); resource subscriptions are made on the child with
//! `resources/subscribe`. A modern child gets the request itself and tags its own notifications.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, mpsc};

use super::check::{ModernRequest, META_SUBSCRIPTION_ID};
use super::{lease, shape, AppState, Asking, Result};
use crate::core::modern::{Asked, ModernCall, Outbound};
use crate::core::pool::{Entry, Era, Lease};
use crate::core::spawner;
use crate::edge::reply::Reject;
use crate::edge::session::child_gone;
use crate::jsonrpc;

/// Filter fields and the notification each opts in to.
const LIST_CHANGES: [(&str, &str, &str); 3] = [
    (
        "toolsListChanged",
        "notifications/tools/list_changed",
        "tools",
    ),
    (
        "promptsListChanged",
        "notifications/prompts/list_changed",
        "prompts",
    ),
    (
        "resourcesListChanged",
        "notifications/resources/list_changed",
        "resources",
    ),
];

/// The most resource URIs one listen request may subscribe to.
const MAX_RESOURCE_SUBSCRIPTIONS: usize = 64;

pub async fn listen(
    state: &Arc<AppState>,
    asking: &Asking<'_>,
    request: &ModernRequest,
    message: Map<String, Value>,
    id: Value,
) -> Result<Response> {
    let filter = message
        .get("params")
        .and_then(|p| p.get("notifications"))
        .and_then(Value::as_object)
        .cloned()
        .ok_or_else(|| {
            Reject::client(
                StatusCode::BAD_REQUEST,
                jsonrpc::INVALID_PARAMS,
                "Invalid params: subscriptions/listen needs params.notifications (the notification types to receive)",
            )
        })?;
    let lease = lease(state, asking).await?;
    if lease.worker.era == Era::Modern {
        return passthrough(state, request, lease, message, id).await;
    }
    let entry = state.pool.entry(asking.owner());
    let slot = ListenerSlot::take(entry.clone(), state.config.modern.max_listen_streams)?;
    let agreed = agree(&filter, &lease.worker.info);
    let feed = entry.feed.subscribe();
    if let Some(uris) = agreed
        .get("resourceSubscriptions")
        .and_then(Value::as_array)
    {
        for uri in uris {
            let params = json!({ "uri": uri });
            let worker = &lease.worker;
            if let Err(e) = spawner::request(
                &worker.router,
                &worker.channel,
                "resources/subscribe",
                params,
                state.config.sessions.call_timeout,
            )
            .await
            {
                tracing::warn!(error = %e, "resources/subscribe for a listen stream failed");
            }
        }
    }
    let ack = json!({
        "jsonrpc": "2.0",
        "method": "notifications/subscriptions/acknowledged",
        "params": { "notifications": agreed, "_meta": { META_SUBSCRIPTION_ID: id } },
    });
    let (tx, rx) = mpsc::channel(shape::STREAM_BUFFER);
    let _ = tx.try_send(jsonrpc::to_bytes(&ack));
    let stop = state.stopping.clone();
    tokio::spawn(relay(feed, tx, agreed, id, stop, slot, lease));
    Ok(shape::stream(rx, Some(state.config.sse.keepalive)))
}

/// Counts an open listen stream of an identity (MAX_LISTEN_STREAMS_PER_IDENTITY).
struct ListenerSlot(Arc<Entry>);

impl ListenerSlot {
    fn take(entry: Arc<Entry>, max: usize) -> Result<ListenerSlot> {
        entry
            .listeners
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map_err(|_| {
                Reject::at_capacity(
                    "too many subscription streams are open for this user (MAX_LISTEN_STREAMS_PER_IDENTITY)",
                )
            })?;
        Ok(ListenerSlot(entry))
    }
}

impl Drop for ListenerSlot {
    fn drop(&mut self) {
        self.0.listeners.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The part of the client's filter the child can honour (per its capabilities).
fn agree(filter: &Map<String, Value>, init: &Value) -> Map<String, Value> {
    let capabilities = init.get("capabilities");
    let mut agreed = Map::new();
    for (field, _, capability) in LIST_CHANGES {
        let wanted = filter.get(field).and_then(Value::as_bool) == Some(true);
        let offered = capabilities
            .and_then(|c| c.get(capability))
            .and_then(|c| c.get("listChanged"))
            .and_then(Value::as_bool)
            == Some(true);
        if wanted && offered {
            agreed.insert(field.into(), json!(true));
        }
    }
    let subscribe = capabilities
        .and_then(|c| c.get("resources"))
        .and_then(|c| c.get("subscribe"))
        .and_then(Value::as_bool)
        == Some(true);
    if let Some(uris) = filter
        .get("resourceSubscriptions")
        .and_then(Value::as_array)
    {
        if subscribe {
            let uris: Vec<Value> = uris
                .iter()
                .filter(|u| u.is_string())
                .take(MAX_RESOURCE_SUBSCRIPTIONS)
                .cloned()
                .collect();
            agreed.insert("resourceSubscriptions".into(), Value::Array(uris));
        }
    }
    agreed
}

/// Whether a feed notification passes the agreed filter.
fn wanted(message: &Map<String, Value>, agreed: &Map<String, Value>) -> bool {
    let method = message.get("method").and_then(Value::as_str).unwrap_or("");
    if let Some((field, _, _)) = LIST_CHANGES.iter().find(|(_, m, _)| *m == method) {
        return agreed.get(*field) == Some(&json!(true));
    }
    if method == "notifications/resources/updated" {
        let uri = message.get("params").and_then(|p| p.get("uri"));
        return agreed
            .get("resourceSubscriptions")
            .and_then(Value::as_array)
            .is_some_and(|uris| uri.is_some_and(|u| uris.contains(u)));
    }
    false
}

/// Feed → stream until the client leaves or the gateway stops (then the `complete` result).
async fn relay(
    mut feed: broadcast::Receiver<Bytes>,
    tx: mpsc::Sender<Bytes>,
    agreed: Map<String, Value>,
    id: Value,
    mut stop: tokio::sync::watch::Receiver<bool>,
    _slot: ListenerSlot,
    _lease: Lease,
) {
    loop {
        if *stop.borrow() {
            let done = json!({
                "jsonrpc": "2.0",
                "id": id,
                "result": { "resultType": "complete", "_meta": { META_SUBSCRIPTION_ID: id } },
            });
            let _ = tx.send(jsonrpc::to_bytes(&done)).await;
            return;
        }
        let data = tokio::select! {
            received = feed.recv() => match received {
                Ok(data) => data,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "a subscription stream fell behind; notifications were dropped");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tx.closed() => return,
            _ = stop.changed() => continue,
        };
        let Ok(Value::Object(mut message)) = serde_json::from_slice::<Value>(&data) else {
            continue;
        };
        if !wanted(&message, &agreed) {
            continue;
        }
        let params = message.entry("params").or_insert_with(|| json!({}));
        if let Some(params) = params.as_object_mut() {
            let meta = params.entry("_meta").or_insert_with(|| json!({}));
            if let Some(meta) = meta.as_object_mut() {
                meta.insert(META_SUBSCRIPTION_ID.into(), id.clone());
            }
        }
        if tx.send(jsonrpc::map_to_bytes(&message)).await.is_err() {
            return;
        }
    }
}

/// A modern child serves the subscription itself: the request goes through, and the router puts
/// the client's id back into what the child tags.
async fn passthrough(
    state: &Arc<AppState>,
    request: &ModernRequest,
    lease: Lease,
    message: Map<String, Value>,
    id: Value,
) -> Result<Response> {
    let mut call = ModernCall::start(lease, message, id.clone())
        .await
        .map_err(|_| child_gone())?;
    let (tx, rx) = mpsc::channel(shape::STREAM_BUFFER);
    let capabilities = request.capabilities.clone();
    let log_level = request.log_level;
    let gather = state.config.modern.mrtr_gather;
    tokio::spawn(async move {
        let responses = Map::new();
        let asked = Asked {
            capabilities: &capabilities,
            log_level,
            input_responses: &responses,
            gather,
            relay_all: true,
        };
        loop {
            let out = tokio::select! {
                out = call.next(&asked) => out,
                _ = tx.closed() => return,
            };
            let body = match out {
                Outbound::Notification(body) => body,
                Outbound::Final(response) => {
                    let Ok(Value::Object(mut response)) =
                        serde_json::from_slice::<Value>(&response)
                    else {
                        return;
                    };
                    response.insert("id".into(), id.clone());
                    let _ = tx.send(jsonrpc::map_to_bytes(&response)).await;
                    return;
                }
                _ => return,
            };
            if tx.send(body).await.is_err() {
                return;
            }
        }
    });
    Ok(shape::stream(rx, Some(state.config.sse.keepalive)))
}
