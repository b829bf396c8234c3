//! A modern request forwarded to the caller's pool child, and MRTR around it: a legacy child's
//! requests to the client become `input_required`, the retry's `inputResponses` go back to it.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::super::accept::Wants;
use super::check::ModernRequest;
use super::{lease, shape, strip_era_fields, AppState, Asking, Result};
use crate::audit::{Event, EventType};
use crate::core::modern::{Asked, InputRequest, ModernCall, Outbound};
use crate::core::mrtr::{request_digest, Parked, StateError};
use crate::core::pool::Era;
use crate::edge::reply::Reject;
use crate::edge::session::child_gone;
use crate::jsonrpc;

/// Requests that may answer `input_required` (2026-07-28 MRTR).
const MRTR_METHODS: [&str; 3] = ["tools/call", "prompts/get", "resources/read"];

fn invalid_params(message: impl Into<String>) -> Reject {
    Reject::client(StatusCode::BAD_REQUEST, jsonrpc::INVALID_PARAMS, message)
}

/// The retry's answers: an object of result objects; anything else is the client's error.
fn input_responses(params: Option<&Map<String, Value>>) -> Result<Map<String, Value>> {
    let Some(value) = params.and_then(|p| p.get("inputResponses")) else {
        return Ok(Map::new());
    };
    let Some(responses) = value.as_object() else {
        return Err(invalid_params(
            "Invalid params: inputResponses must be an object mapping each inputRequests key to the client's result",
        ));
    };
    if let Some((key, _)) = responses.iter().find(|(_, v)| !v.is_object()) {
        return Err(invalid_params(format!(
            "Invalid params: inputResponses[{key:?}] must be a result object"
        )));
    }
    Ok(responses.clone())
}

pub async fn call(
    state: &Arc<AppState>,
    asking: &Asking<'_>,
    request: &ModernRequest,
    mut message: Map<String, Value>,
    id: Value,
    method: &str,
) -> Result<Response> {
    let params = message.get("params").and_then(Value::as_object);
    let mrtr = MRTR_METHODS.contains(&method);
    let responses = if mrtr {
        input_responses(params)?
    } else {
        Map::new()
    };
    // Only the three MRTR methods ever park a call: the others need no owner or digest.
    let (owner, digest) = if mrtr {
        (asking.owner().to_string(), request_digest(method, params))
    } else {
        (String::new(), [0; 32])
    };
    let request_state = params
        .and_then(|p| p.get("requestState"))
        .map(|s| s.as_str().map(str::to_string));
    let resumed = match request_state {
        Some(None) => {
            return Err(invalid_params(
                "Invalid params: requestState must be a string",
            ))
        }
        Some(Some(text)) if mrtr => match state.parked.take(&text, &owner, method, &digest) {
            Ok(parked) => parked,
            Err(refusal) => {
                state.audit.emit(
                    Event::new(EventType::RequestStateRejected)
                        .identity(&asking.caller.identity.subject)
                        .token_hash(asking.caller.identity.token_hash.as_deref())
                        .reason(&refusal.to_string()),
                );
                return Err(state_refused(refusal));
            }
        },
        _ => None,
    };
    let asked = Asked {
        capabilities: &request.capabilities,
        log_level: request.log_level,
        input_responses: &responses,
        gather: state.config.modern.mrtr_gather,
        relay_all: false,
    };
    let call = match resumed {
        Some(parked) => match resume(parked, &asked).await {
            Resumed::Running(call) => call,
            Resumed::StillWaiting(call, waiting) => {
                return Ok(input_required(
                    state, asking, call, waiting, &owner, method, digest, &id,
                ))
            }
        },
        None => {
            if mrtr && !state.parked.is_empty() {
                for mut stale in state.parked.supersede(&owner, &digest) {
                    stale
                        .call
                        .cancel("The client started the request again")
                        .await;
                }
            }
            let lease = lease(state, asking).await?;
            if lease.worker.era == Era::Legacy {
                strip_era_fields(&mut message);
            }
            ModernCall::start(lease, message, id.clone())
                .await
                .map_err(|_| child_gone())?
        }
    };
    drive(
        state,
        asking,
        call,
        &asked,
        Context {
            owner,
            method,
            digest,
            id: &id,
        },
    )
    .await
}

/// What a retry did to its parked call.
enum Resumed {
    /// Every request it waited for is answered: it runs on.
    Running(ModernCall),
    /// Some answers are still missing (they are asked again).
    StillWaiting(ModernCall, Vec<InputRequest>),
}

async fn resume(parked: Parked, asked: &Asked<'_>) -> Resumed {
    let Parked { call, waiting, .. } = parked;
    let mut missing = Vec::new();
    for request in waiting {
        match asked.input_responses.get(&request.key) {
            Some(answer) => call.reply(&request.gateway_id, Ok(answer.clone())).await,
            None => missing.push(request),
        }
    }
    if missing.is_empty() {
        Resumed::Running(call)
    } else {
        Resumed::StillWaiting(call, missing)
    }
}

fn state_refused(refusal: StateError) -> Reject {
    invalid_params(format!(
        "Invalid params: {refusal}; send the request again without requestState"
    ))
}

/// What a parked call is filed under.
struct Context<'a> {
    owner: String,
    method: &'a str,
    digest: [u8; 32],
    id: &'a Value,
}

/// Reads the call until the client's answer is known: JSON when it is the first thing, an SSE
/// stream when notifications come first (and the client takes SSE).
async fn drive(
    state: &Arc<AppState>,
    asking: &Asking<'_>,
    mut call: ModernCall,
    asked: &Asked<'_>,
    context: Context<'_>,
) -> Result<Response> {
    let timeout = state.config.sessions.call_timeout;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let out = match tokio::time::timeout_at(deadline, call.next(asked)).await {
            Ok(out) => out,
            Err(_) => {
                call.abandon(&timeout_message(timeout)).await;
                call.next(asked).await
            }
        };
        match out {
            Outbound::Notification(first) if asking.wants != Wants::Json => {
                return Ok(stream(state, call, asked, context, first, deadline));
            }
            // A JSON-only client gets the answer alone.
            Outbound::Notification(_) => continue,
            terminal => {
                let (status, body) = terminal_body(state, call, terminal, &context)?;
                return Ok(shape::one(asking.wants, status, body));
            }
        }
    }
}

fn timeout_message(timeout: std::time::Duration) -> String {
    format!(
        "The MCP server did not answer within {} s (CALL_TIMEOUT_SECS)",
        timeout.as_secs()
    )
}

/// The answer that ends a request (or the refusal when there is none). The call is parked, or
/// dropped: unanswered, that cancels it on the child.
fn terminal_body(
    state: &Arc<AppState>,
    call: ModernCall,
    out: Outbound,
    context: &Context<'_>,
) -> Result<(StatusCode, Bytes)> {
    match out {
        Outbound::Final(response) => {
            shape::answer(response, context.id, context.method, state).ok_or_else(child_gone)
        }
        Outbound::InputRequired(waiting) => {
            // Only three methods may ask; a child asking during another is refused the question.
            if !MRTR_METHODS.contains(&context.method) {
                return Err(invalid_params(
                    "The MCP server asked the client for input during a request that cannot carry input_required",
                ));
            }
            Ok((StatusCode::OK, park(state, call, waiting, context)))
        }
        Outbound::MissingCapabilities(names) => {
            let required: Map<String, Value> =
                names.iter().map(|n| (n.to_string(), json!({}))).collect();
            drop(call);
            Err(Reject::client(
                StatusCode::BAD_REQUEST,
                jsonrpc::MISSING_CLIENT_CAPABILITY,
                format!(
                    "Missing required client capability: this request needs {} (declare it in _meta[\"io.modelcontextprotocol/clientCapabilities\"])",
                    names.join(", ")
                ),
            )
            .data("requiredCapabilities", Value::Object(required)))
        }
        Outbound::Gone | Outbound::Notification(_) => Err(child_gone()),
    }
}

/// Parks the call and answers `input_required`.
fn park(
    state: &Arc<AppState>,
    call: ModernCall,
    waiting: Vec<InputRequest>,
    context: &Context<'_>,
) -> Bytes {
    let request_state = state.parked.park(
        call,
        waiting.clone(),
        &context.owner,
        context.method,
        context.digest,
    );
    input_required_body(&waiting, &request_state, context.id)
}

fn input_required_body(waiting: &[InputRequest], request_state: &str, id: &Value) -> Bytes {
    let requests: Map<String, Value> = waiting
        .iter()
        .map(|w| (w.key.clone(), w.request.clone()))
        .collect();
    jsonrpc::to_bytes(&json!({
        "jsonrpc": "2.0",
        "id": id,
        "result": {
            "resultType": "input_required",
            "inputRequests": requests,
            "requestState": request_state,
        },
    }))
}

#[allow(clippy::too_many_arguments)]
fn input_required(
    state: &Arc<AppState>,
    asking: &Asking<'_>,
    call: ModernCall,
    waiting: Vec<InputRequest>,
    owner: &str,
    method: &str,
    digest: [u8; 32],
    id: &Value,
) -> Response {
    let request_state = state
        .parked
        .park(call, waiting.clone(), owner, method, digest);
    shape::one(
        asking.wants,
        StatusCode::OK,
        input_required_body(&waiting, &request_state, id),
    )
}

/// The rest of the call as an SSE stream, fed by a task that reads the call; the client closing
/// the stream drops the task's call, which cancels it on the child.
fn stream(
    state: &Arc<AppState>,
    mut call: ModernCall,
    asked: &Asked<'_>,
    context: Context<'_>,
    first: Bytes,
    deadline: tokio::time::Instant,
) -> Response {
    let (tx, rx) = mpsc::channel(shape::STREAM_BUFFER);
    let state = state.clone();
    let capabilities = asked.capabilities.clone();
    let responses = asked.input_responses.clone();
    let (log_level, gather) = (asked.log_level, asked.gather);
    let (owner, method, digest, id) = (
        context.owner,
        context.method.to_string(),
        context.digest,
        context.id.clone(),
    );
    tokio::spawn(async move {
        let asked = Asked {
            capabilities: &capabilities,
            log_level,
            input_responses: &responses,
            gather,
            relay_all: false,
        };
        let context = Context {
            owner,
            method: &method,
            digest,
            id: &id,
        };
        if tx.send(first).await.is_err() {
            return;
        }
        let timeout = state.config.sessions.call_timeout;
        loop {
            let out = tokio::select! {
                out = tokio::time::timeout_at(deadline, call.next(&asked)) => match out {
                    Ok(out) => out,
                    Err(_) => {
                        call.abandon(&timeout_message(timeout)).await;
                        call.next(&asked).await
                    }
                },
                // The client closed the stream: dropping the call cancels it.
                _ = tx.closed() => return,
            };
            let body = match out {
                Outbound::Notification(body) => {
                    if tx.send(body).await.is_err() {
                        return;
                    }
                    continue;
                }
                terminal => match terminal_body(&state, call, terminal, &context) {
                    Ok((_, body)) => body,
                    Err(reject) => reject.with_id(&id).body(),
                },
            };
            let _ = tx.send(body).await;
            return;
        }
    });
    shape::stream(rx, None)
}
