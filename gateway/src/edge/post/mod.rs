//! `POST /mcp`: one JSON-RPC message (or a 2025-03-26 batch) in, JSON or SSE out.
//!
//! This file checks the request and dispatches by kind; `parse` reads the body, `initialize`
//! opens a session (through the core), `call` and `batch` forward to the session's MCP server,
//! `timer` bounds the wait for its answers and `answer` shapes them as JSON or SSE.

mod answer;
mod batch;
mod call;
mod initialize;
mod parse;
mod timer;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde_json::{Map, Value};

use super::accept::{self, Wants};
use super::auth::Caller;
use super::body;
use super::headers;
use super::reply::Reject;
use super::session::{check_protocol_header, child_gone, lookup_session};
use super::{AppState, RequestId};
use crate::core::router::Outgoing;
use crate::core::session::{short, Session};
use crate::jsonrpc::{self, Kind};

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
        // The permit is held while the body is parsed, too.
        let (bytes, _permit) = body::read_post(state, body).await?;
        // A session's plain request (most requests) is forwarded without building its tree.
        if request_headers.contains_key(headers::SESSION_ID) {
            if let Some(raw) = jsonrpc::probe_request(&bytes).filter(|r| r.method != "initialize") {
                drop(_permit);
                return session_request(state, request_headers, context, &bytes, raw).await;
            }
        }
        parse::parse_body(&bytes, state.config.http.max_batch_members)?
    };
    match parsed {
        parse::Parsed::Single(message) => single(state, request_headers, context, message).await,
        parse::Parsed::Batch(items) => batch::batch(state, request_headers, context, items).await,
    }
}

/// [`single`] for a request [`jsonrpc::probe_request`] read: it names a session and claims no
/// era in `_meta`, so it is a legacy call (the checks and their order are `single`'s).
async fn session_request(
    state: &Arc<AppState>,
    request_headers: &HeaderMap,
    context: &Context,
    body: &[u8],
    raw: jsonrpc::RawRequest,
) -> Result<Response> {
    let session = find_session(state, request_headers, context).await?;
    check_protocol_header(request_headers)?;
    let outgoing = Outgoing::Raw {
        body,
        id_span: raw.id_span,
        method: &raw.method,
    };
    call::call(
        state,
        &session,
        context.wants,
        outgoing,
        raw.id,
        &raw.method,
    )
    .await
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
    let kind = classify(&message)?;
    if super::modern::check::is_modern(request_headers, &message, &kind) {
        let asking = super::modern::Asking {
            caller: &context.caller,
            wants: context.wants,
            owner: std::sync::OnceLock::new(),
        };
        return super::modern::handle(state, &asking, request_headers, message, kind).await;
    }
    if let Kind::Request { method, id } = &kind {
        if method == "initialize" {
            return initialize::initialize(state, request_headers, context, message, id.clone())
                .await;
        }
    }
    let session = find_session(state, request_headers, context).await?;
    check_protocol_header(request_headers)?;
    match kind {
        Kind::Request { id, method } => {
            let outgoing = Outgoing::Message(message);
            call::call(state, &session, context.wants, outgoing, id, &method).await
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

fn accepted() -> Response {
    StatusCode::ACCEPTED.into_response()
}

async fn find_session(
    state: &Arc<AppState>,
    request_headers: &HeaderMap,
    context: &Context,
) -> Result<Arc<Session>> {
    lookup_session(state, request_headers, &context.caller, &context.request_id).await
}
