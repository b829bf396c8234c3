//! `POST /mcp` in the 2026-07-28 era: no `initialize`, no session, `_meta` on every request.
//!
//! `check` decides the era and enforces the modern rules; this file serves what passes:
//! `server/discover` (answered from what the child said when it started), `subscriptions/listen`
//! (`listen.rs`), and every other request forwarded to the caller's pool child (`call.rs`), whose
//! answers `shape.rs` dresses for a modern client.

mod call;
pub mod check;
mod listen;
mod shape;

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use super::accept::Wants;
use super::auth::Caller;
use super::reply::{Fault, Reject};
use super::AppState;
use crate::core::pool::{owner_key, Era, Lease, PoolError};
use crate::core::spawner::SpawnFailure;
use crate::jsonrpc::{self, Kind};
use crate::protocol;
use check::META_SERVER_INFO;

type Result<T> = std::result::Result<T, Reject>;

/// Who asks and how the answer may be shaped (the POST handler's context, for this era).
pub struct Asking<'a> {
    pub caller: &'a Caller,
    pub wants: Wants,
    /// The caller's pool and MRTR key ([`owner_key`], a SHA-256), made once when first needed.
    pub owner: std::sync::OnceLock<String>,
}

impl Asking<'_> {
    pub fn owner(&self) -> &str {
        self.owner.get_or_init(|| owner_key(&self.caller.identity))
    }
}

/// Serves one modern message.
pub async fn handle(
    state: &Arc<AppState>,
    asking: &Asking<'_>,
    headers: &HeaderMap,
    message: Map<String, Value>,
    kind: Kind,
) -> Result<Response> {
    let (id, method) = match kind {
        Kind::Request { id, method } => (id, method),
        // Notifications carry nothing a sessionless gateway must act on (cancellation is closing
        // the response stream; there is no session to tell about roots).
        Kind::Notification { .. } => return Ok(StatusCode::ACCEPTED.into_response()),
        Kind::Response { .. } => {
            return Err(Reject::client(
                StatusCode::BAD_REQUEST,
                jsonrpc::INVALID_REQUEST,
                "Invalid Request: responses are not sent to a 2026-07-28 server (answer input requests in a retry's inputResponses)",
            ))
        }
    };
    let request = check::check(headers, &message, &method).map_err(|r| r.with_id(&id))?;
    let answer = match method.as_str() {
        "server/discover" => discover(state, asking, &id).await,
        "subscriptions/listen" => {
            listen::listen(state, asking, &request, message, id.clone()).await
        }
        _ => call::call(state, asking, &request, message, id.clone(), &method).await,
    };
    answer.map_err(|r| r.with_id(&id))
}

/// A child for the caller's request.
async fn lease(state: &Arc<AppState>, asking: &Asking<'_>) -> Result<Lease> {
    let stopping = *state.stopping.borrow();
    state
        .pool
        .acquire(
            &state.spawner,
            &asking.caller.identity,
            asking.owner(),
            state.operator_credential.as_ref(),
            stopping,
        )
        .await
        .map_err(pool_reject)
}

fn pool_reject(error: PoolError) -> Reject {
    match error {
        PoolError::ShuttingDown => {
            Reject::at_capacity("the gateway is shutting down; retry on another instance")
        }
        PoolError::Spawn(SpawnFailure::AtCapacity) => {
            Reject::at_capacity("too many MCP server processes are running (MAX_CHILDREN)")
        }
        PoolError::Spawn(failure) => {
            tracing::error!(error = %failure, "no MCP server process for a sessionless request");
            Reject::new(
                StatusCode::BAD_GATEWAY,
                jsonrpc::INTERNAL_ERROR,
                Fault::Upstream,
                "Bad Gateway: the MCP server could not be started; retry later or tell the operator",
            )
        }
    }
}

/// `server/discover`, answered by the gateway from what the child said when it started.
async fn discover(state: &Arc<AppState>, asking: &Asking<'_>, id: &Value) -> Result<Response> {
    let lease = lease(state, asking).await?;
    let worker = &lease.worker;
    let mut result = match worker.era {
        Era::Modern => {
            let mut result = worker.info.as_object().cloned().unwrap_or_default();
            let served: Vec<Value> = result
                .get("supportedVersions")
                .and_then(Value::as_array)
                .map(|v| {
                    v.iter()
                        .filter(|v| v.as_str().is_some_and(protocol::is_modern))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            result.insert("supportedVersions".into(), Value::Array(served));
            result
        }
        Era::Legacy => legacy_discover(&worker.info),
    };
    shape::complete(&mut result, "server/discover", state);
    let body = json!({ "jsonrpc": "2.0", "id": id, "result": result });
    Ok(shape::one(
        asking.wants,
        StatusCode::OK,
        jsonrpc::to_bytes(&body),
    ))
}

/// A `server/discover` result built from a 2025-x child's `initialize` result.
fn legacy_discover(init: &Value) -> Map<String, Value> {
    let mut result = Map::new();
    result.insert("supportedVersions".into(), json!(protocol::MODERN));
    let mut capabilities = init
        .get("capabilities")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    // Log levels are per request in this era (`_meta` logLevel), not a server feature to set.
    capabilities.remove("logging");
    result.insert("capabilities".into(), Value::Object(capabilities));
    if let Some(info) = init.get("serverInfo") {
        result.insert("_meta".into(), json!({ META_SERVER_INFO: info }));
    }
    if let Some(instructions) = init.get("instructions").filter(|i| i.is_string()) {
        result.insert("instructions".into(), instructions.clone());
    }
    result
}

/// The `_meta`-era fields, for requests forwarded to a legacy child.
fn strip_era_fields(message: &mut Map<String, Value>) {
    let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) else {
        return;
    };
    params.remove("inputResponses");
    params.remove("requestState");
    let empty = match params.get_mut("_meta").and_then(Value::as_object_mut) {
        Some(meta) => {
            meta.retain(|name, _| !name.starts_with("io.modelcontextprotocol/"));
            meta.is_empty()
        }
        None => false,
    };
    if empty {
        params.remove("_meta");
    }
}
