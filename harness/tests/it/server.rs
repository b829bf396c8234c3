//! A scripted MCP-like server on 127.0.0.1:0: canned JSON and SSE answers, enough to drive every
//! feature of the runner (sessions, streams, server requests, comments, auth challenges).

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::{any, get};
use axum::Router;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

#[derive(Default)]
struct Inner {
    sessions: HashSet<String>,
    next_session: u32,
    pending: HashMap<String, oneshot::Sender<Value>>,
    flaky_calls: u32,
    limited_calls: HashMap<String, u32>,
}

type Shared = Arc<Mutex<Inner>>;

/// Starts the server and returns its MCP endpoint URL.
pub async fn start() -> String {
    let state: Shared = Arc::default();
    let app = Router::new()
        .route("/mcp", any(mcp))
        .route(
            "/.well-known/oauth-protected-resource",
            get(|headers: HeaderMap| async move { prm(&headers, "") }),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(|headers: HeaderMap| async move { prm(&headers, "/mcp") }),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/mcp")
}

fn prm(headers: &HeaderMap, path: &str) -> Response {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let body = json!({
        "resource": format!("http://{host}{path}"),
        "authorization_servers": ["https://auth.example"],
        "timestamp": "2026-01-01T00:00:00Z",
    });
    json_response(StatusCode::OK, &body)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("date", "Thu, 01 Jan 2026 00:00:00 GMT")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn rpc_error(status: StatusCode, code: i64, message: &str) -> Response {
    json_response(
        status,
        &json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}}),
    )
}

fn sse(rx: mpsc::Receiver<String>) -> Response {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, Infallible>(Bytes::from(chunk)), rx))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn event(message: &Value) -> String {
    format!("data: {message}\n\n")
}

async fn mcp(
    State(state): State<Shared>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some(auth) = header("authorization") {
        if auth != "Bearer token-a-secret" && auth != "Bearer token-b-secret" {
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header(
                    "www-authenticate",
                    r#"Bearer error="invalid_token", resource_metadata="http://x/.well-known/oauth-protected-resource""#,
                )
                .body(Body::empty())
                .unwrap();
        }
    }
    let session = header("mcp-session-id");
    let known = session
        .as_ref()
        .is_some_and(|s| state.lock().unwrap().sessions.contains(s));
    match method {
        Method::GET => {
            if !known {
                return rpc_error(StatusCode::NOT_FOUND, -32001, "Session not found");
            }
            let (tx, rx) = mpsc::channel(8);
            tokio::spawn(async move {
                let _ = tx.send(": keepalive\n\n".to_string()).await;
                // Hold the stream open until the client goes away.
                tx.closed().await;
            });
            return sse(rx);
        }
        Method::DELETE => {
            let removed = session.is_some_and(|s| state.lock().unwrap().sessions.remove(&s));
            let status = if removed {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            return Response::builder()
                .status(status)
                .body(Body::empty())
                .unwrap();
        }
        Method::POST => {}
        _ => {
            return Response::builder()
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header("allow", "GET, POST, DELETE")
                .body(Body::empty())
                .unwrap()
        }
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return rpc_error(StatusCode::BAD_REQUEST, -32700, "Parse error");
    };
    let id = message.get("id").cloned();
    let rpc_method = message.get("method").and_then(Value::as_str).unwrap_or("");
    if rpc_method == "initialize" {
        let mut inner = state.lock().unwrap();
        inner.next_session += 1;
        let sid = format!("session-{}", inner.next_session);
        inner.sessions.insert(sid.clone());
        let version = message["params"]["protocolVersion"].clone();
        let body = json!({"jsonrpc": "2.0", "id": id, "result": {
            "protocolVersion": version, "capabilities": {}, "serverInfo": {"name": "scripted", "version": "1"}}});
        let mut response = json_response(StatusCode::OK, &body);
        response
            .headers_mut()
            .insert("mcp-session-id", sid.parse().unwrap());
        return response;
    }
    match &session {
        None => {
            return rpc_error(
                StatusCode::BAD_REQUEST,
                -32000,
                "Mcp-Session-Id header is required",
            )
        }
        Some(_) if !known => return rpc_error(StatusCode::NOT_FOUND, -32001, "Session not found"),
        Some(_) => {}
    }
    if id.is_none() {
        return Response::builder()
            .status(StatusCode::ACCEPTED)
            .body(Body::empty())
            .unwrap();
    }
    if message.get("result").is_some() || message.get("error").is_some() {
        let key = id.as_ref().map(|v| v.to_string()).unwrap_or_default();
        if let Some(waiter) = state.lock().unwrap().pending.remove(&key) {
            let _ = waiter.send(message.clone());
        }
        return Response::builder()
            .status(StatusCode::ACCEPTED)
            .body(Body::empty())
            .unwrap();
    }
    let id = id.unwrap();
    if rpc_method == "harness/flaky" {
        let mut inner = state.lock().unwrap();
        inner.flaky_calls += 1;
        if inner.flaky_calls % 2 == 1 {
            let mut response =
                rpc_error(StatusCode::TOO_MANY_REQUESTS, -32000, "Too many requests");
            response
                .headers_mut()
                .insert("retry-after", "0".parse().unwrap());
            return response;
        }
    }
    if rpc_method == "harness/limited" {
        let mut inner = state.lock().unwrap();
        let calls = inner
            .limited_calls
            .entry(session.clone().unwrap_or_default())
            .or_default();
        *calls += 1;
        if *calls > 3 {
            let mut response =
                rpc_error(StatusCode::TOO_MANY_REQUESTS, -32000, "Too many requests");
            response
                .headers_mut()
                .insert("retry-after", "7".parse().unwrap());
            return response;
        }
    }
    match rpc_method {
        "harness/flaky" | "harness/limited" => json_response(
            StatusCode::OK,
            &json!({"jsonrpc": "2.0", "id": id, "result": {}}),
        ),
        "ping" => json_response(
            StatusCode::OK,
            &json!({"jsonrpc": "2.0", "id": id, "result": {}}),
        ),
        "tools/call" => tools_call(&state, id, &message["params"]),
        _ => json_response(
            StatusCode::OK,
            &json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "Method not found"}}),
        ),
    }
}

fn tools_call(state: &Shared, id: Value, params: &Value) -> Response {
    let name = params["name"].as_str().unwrap_or("").to_string();
    let (tx, rx) = mpsc::channel(16);
    let state = Arc::clone(state);
    let params = params.clone();
    match name.as_str() {
        "echo" => {
            let text = params["arguments"]["message"].clone();
            json_response(
                StatusCode::OK,
                &json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": text}]}}),
            )
        }
        "progress" => {
            let token = params["_meta"]["progressToken"].clone();
            tokio::spawn(async move {
                let _ = tx.send("id: ev-0\r\ndata:\r\n\r\n".to_string()).await;
                for progress in [0, 50, 100] {
                    let note = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                        "params": {"progressToken": token, "progress": progress, "total": 100}});
                    let _ = tx.send(event(&note)).await;
                }
                let done = json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": "done"}]}});
                // Split one event across chunks to exercise the incremental parser.
                let text = event(&done);
                let (a, b) = text.split_at(text.len() / 2);
                let _ = tx.send(a.to_string()).await;
                let _ = tx.send(b.to_string()).await;
            });
            sse(rx)
        }
        "sample" => {
            tokio::spawn(async move {
                let (answer_tx, answer_rx) = oneshot::channel();
                state
                    .lock()
                    .unwrap()
                    .pending
                    .insert("\"s-1\"".to_string(), answer_tx);
                let request = json!({"jsonrpc": "2.0", "id": "s-1", "method": "sampling/createMessage",
                    "params": {"messages": [], "maxTokens": 10}});
                let _ = tx.send(event(&request)).await;
                let answer = answer_rx.await.unwrap_or(Value::Null);
                let text = format!(
                    "LLM response: {}",
                    answer["result"]["content"]["text"].as_str().unwrap_or("?")
                );
                let done = json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": text}]}});
                let _ = tx.send(event(&done)).await;
            });
            sse(rx)
        }
        _ => json_response(
            StatusCode::OK,
            &json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32602, "message": "Unknown tool"}}),
        ),
    }
}
