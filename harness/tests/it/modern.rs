//! A small 2026-07-28 server on 127.0.0.1:0 that follows the modern rules the scenarios check,
//! modern-only or dual-era, with optional bearer auth, and with at most one planted
//! [`Deviation`], so that tests can show each scenario passes a correct server and fails (or warns)
//! on a single deviation. Tool, resource and prompt names follow the official conformance fixture
//! contract (`test_simple_text`, `test://static-text`, ...), like the scenarios.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use harness::modern::{decode_header_value, LEGACY_VERSIONS, MODERN_VERSION};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

pub const TOKEN: &str = "token-a-secret";
const SECRET: u64 = 0x5eed_cafe_f00d_0001;

/// One planted departure from the modern rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deviation {
    None,
    /// Serves requests whose `_meta` lacks clientCapabilities.
    MetaNotChecked,
    /// Ignores MCP-Protocol-Version (missing or different).
    ProtocolHeaderNotChecked,
    /// Ignores Mcp-Method.
    MethodHeaderNotChecked,
    /// Ignores Mcp-Name.
    NameHeaderNotChecked,
    /// Compares header values without case.
    ValuesCaseInsensitive,
    /// Compares `=?base64?…?=` values as text.
    NoBase64Decode,
    /// -32022 without `data.supported`.
    UnsupportedVersionNoData,
    /// Still answers `ping`.
    PingServed,
    /// Unknown methods get HTTP 200 with the -32601 error.
    UnknownMethod200,
    /// Modern answers carry an `Mcp-Session-Id`.
    MintsSessionId,
    /// A stray `Mcp-Session-Id` gets 404.
    StraySessionRejected,
    /// Results without `resultType`.
    NoResultType,
    /// List results without `ttlMs`/`cacheScope`.
    NoCachingHints,
    /// Notifications get 200.
    Notification200,
    /// GET opens a stream even on a modern-only server.
    GetServed,
    /// A tampered `requestState` is accepted.
    StateNotVerified,
    /// A retry without `inputResponses` completes.
    MissingInputsComplete,
    /// `subscriptions/listen` sends no acknowledgement.
    ListenNoAck,
    /// The acknowledgement carries another `subscriptionId` than the listen request's id.
    ListenWrongTag,
    /// Undeclared capabilities are not checked (no -32021).
    NoCapabilityCheck,
    /// A foreign `Origin` is served.
    OriginNotChecked,
    /// Modern calls log without `_meta` logLevel.
    LogsWithoutLevel,
    /// No token needed.
    NoAuth,
    /// A modern-only server that starts a legacy session on `initialize`.
    InitializeServed,
    /// A dual-era server whose legacy answers carry `resultType`, `ttlMs` and `cacheScope`.
    LegacyAnswersLeak,
    /// A closed response stream wedges the server: later requests get 503.
    WedgedAfterCancel,
    /// `server/discover` without `supportedVersions`.
    DiscoverWithoutVersions,
    /// A `_meta` without protocolVersion is served with the header's version.
    MetaVersionFromHeader,
    /// `resources/subscribe` and `unsubscribe` still answer `{}`.
    SubscribeServed,
    /// Every `Origin` is refused, the endpoint's own included.
    EveryOriginRejected,
    /// The MRTR elicitation tool completes at once, never asking.
    MrtrNeverAsks,
}

#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub dual_era: bool,
    pub auth: bool,
    pub deviation: Deviation,
}

struct Inner {
    options: Options,
    sessions: Mutex<HashSet<String>>,
    next: AtomicU32,
    wedged: AtomicBool,
}

type Shared = Arc<Inner>;

/// Starts the server and returns its MCP endpoint URL.
pub async fn start(options: Options) -> String {
    let state: Shared = Arc::new(Inner {
        options,
        sessions: Mutex::default(),
        next: AtomicU32::new(1),
        wedged: AtomicBool::new(false),
    });
    let app = Router::new().route("/mcp", any(mcp)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/mcp")
}

fn respond(status: StatusCode, body: Option<&Value>) -> Response {
    let builder = Response::builder().status(status);
    match body {
        Some(body) => builder
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
        None => builder.body(Body::empty()).unwrap(),
    }
}

fn error(
    status: StatusCode,
    id: &Value,
    code: i64,
    message: &str,
    data: Option<Value>,
) -> Response {
    let mut error = json!({"code": code, "message": message});
    if let Some(data) = data {
        error["data"] = data;
    }
    respond(
        status,
        Some(&json!({"jsonrpc": "2.0", "id": id, "error": error})),
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
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn event(message: &Value) -> String {
    format!("data: {message}\n\n")
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn signature(nonce: &str) -> u64 {
    // Not cryptography: enough to tell a state this server issued from an edited one.
    nonce.bytes().fold(SECRET, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

async fn mcp(
    State(state): State<Shared>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let options = state.options;
    let dev = options.deviation;
    if state.wedged.load(Ordering::SeqCst) {
        return respond(StatusCode::SERVICE_UNAVAILABLE, None);
    }
    if let Some(origin) = header(&headers, "origin") {
        let local =
            origin.starts_with("http://127.0.0.1") || origin.starts_with("http://localhost");
        if (!local && dev != Deviation::OriginNotChecked) || dev == Deviation::EveryOriginRejected {
            return respond(StatusCode::FORBIDDEN, None);
        }
    }
    if options.auth
        && dev != Deviation::NoAuth
        && header(&headers, "authorization") != Some(&format!("Bearer {TOKEN}"))
    {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(
                "www-authenticate",
                r#"Bearer error="invalid_token", resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource""#,
            )
            .body(Body::empty())
            .unwrap();
    }
    let header_version = header(&headers, "mcp-protocol-version");
    let modern_header = header_version.is_some_and(|v| !LEGACY_VERSIONS.contains(&v));
    if method != Method::POST {
        if dev == Deviation::GetServed && method == Method::GET {
            let (tx, rx) = mpsc::channel(1);
            tokio::spawn(async move { tx.closed().await });
            return sse(rx);
        }
        if !options.dual_era || modern_header || method != Method::DELETE {
            return Response::builder()
                .status(StatusCode::METHOD_NOT_ALLOWED)
                .header("allow", "POST")
                .body(Body::empty())
                .unwrap();
        }
        let removed = header(&headers, "mcp-session-id")
            .is_some_and(|s| state.sessions.lock().unwrap().remove(s));
        let status = if removed {
            StatusCode::OK
        } else {
            StatusCode::NOT_FOUND
        };
        return respond(status, None);
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return error(
            StatusCode::BAD_REQUEST,
            &Value::Null,
            -32700,
            "Parse error",
            None,
        );
    };
    let meta = message
        .pointer("/params/_meta")
        .cloned()
        .unwrap_or(Value::Null);
    let claims_version = meta
        .get("io.modelcontextprotocol/protocolVersion")
        .is_some();
    if claims_version || modern_header {
        return modern(&state, &headers, &message, &meta).await;
    }
    legacy(&state, &headers, &message)
}

fn legacy(state: &Shared, headers: &HeaderMap, message: &Value) -> Response {
    let options = state.options;
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    let rpc = message.get("method").and_then(Value::as_str).unwrap_or("");
    if rpc == "initialize" {
        if !options.dual_era && options.deviation != Deviation::InitializeServed {
            let requested = message.pointer("/params/protocolVersion").cloned();
            return error(
                StatusCode::BAD_REQUEST,
                &id,
                -32022,
                "Unsupported protocol version: this server speaks 2026-07-28",
                Some(json!({"supported": [MODERN_VERSION], "requested": requested})),
            );
        }
        let sid = format!("legacy-{}", state.next.fetch_add(1, Ordering::SeqCst));
        state.sessions.lock().unwrap().insert(sid.clone());
        let mut response = respond(
            StatusCode::OK,
            Some(&json!({"jsonrpc": "2.0", "id": id, "result": {
                "protocolVersion": "2025-11-25", "capabilities": {"tools": {}, "logging": {}},
                "serverInfo": {"name": "modern-test-server", "version": "1"}}})),
        );
        response
            .headers_mut()
            .insert("mcp-session-id", sid.parse().unwrap());
        return response;
    }
    if !options.dual_era {
        return error(
            StatusCode::BAD_REQUEST,
            &id,
            -32600,
            "This server speaks 2026-07-28 only",
            None,
        );
    }
    match header(headers, "mcp-session-id") {
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                &id,
                -32000,
                "Mcp-Session-Id header is required",
                None,
            )
        }
        Some(s) if !state.sessions.lock().unwrap().contains(s) => {
            return error(
                StatusCode::NOT_FOUND,
                &id,
                -32001,
                "Session not found",
                None,
            )
        }
        Some(_) => {}
    }
    if message.get("id").is_none() {
        return respond(StatusCode::ACCEPTED, None);
    }
    let mut result = match rpc {
        "ping" | "logging/setLevel" => json!({}),
        "tools/list" => json!({"tools": tools()}),
        _ => return error(StatusCode::OK, &id, -32601, "Method not found", None),
    };
    if options.deviation == Deviation::LegacyAnswersLeak && rpc == "tools/list" {
        result["resultType"] = json!("complete");
        result["ttlMs"] = json!(0);
        result["cacheScope"] = json!("private");
    }
    respond(
        StatusCode::OK,
        Some(&json!({"jsonrpc": "2.0", "id": id, "result": result})),
    )
}

fn tools() -> Value {
    let names = [
        "test_simple_text",
        "test_error_handling",
        "test_tool_with_logging",
        "test_tool_with_progress",
        "test_missing_capability",
        "test_input_required_result_elicitation",
        "test_input_required_result_request_state",
    ];
    names
        .iter()
        .map(|n| json!({"name": n, "description": n, "inputSchema": {"type": "object"}}))
        .collect()
}

fn text(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}]})
}

async fn modern(state: &Shared, headers: &HeaderMap, message: &Value, meta: &Value) -> Response {
    let dev = state.options.deviation;
    let id = message.get("id").cloned().unwrap_or(Value::Null);
    let rpc = message.get("method").and_then(Value::as_str).unwrap_or("");
    let params = message.get("params").cloned().unwrap_or(json!({}));
    let from_header = header(headers, "mcp-protocol-version").map(|v| json!(v));
    let claimed = match meta.get("io.modelcontextprotocol/protocolVersion") {
        None if dev == Deviation::MetaVersionFromHeader => from_header.as_ref(),
        claimed => claimed,
    };
    let capabilities = meta.get("io.modelcontextprotocol/clientCapabilities");
    if claimed.is_none() || (capabilities.is_none() && dev != Deviation::MetaNotChecked) {
        return error(
            StatusCode::BAD_REQUEST,
            &id,
            -32602,
            "params._meta needs protocolVersion and clientCapabilities",
            None,
        );
    }
    let claimed = claimed.and_then(Value::as_str).unwrap_or("");
    if claimed != MODERN_VERSION {
        let data = (dev != Deviation::UnsupportedVersionNoData)
            .then(|| json!({"supported": [MODERN_VERSION], "requested": claimed}));
        return error(
            StatusCode::BAD_REQUEST,
            &id,
            -32022,
            "Unsupported protocol version",
            data,
        );
    }
    let same = |raw: Option<&str>, want: &str| -> bool {
        let Some(raw) = raw else { return false };
        let value = if dev == Deviation::NoBase64Decode {
            Some(raw.to_string())
        } else {
            decode_header_value(raw)
        };
        match value {
            Some(v) if dev == Deviation::ValuesCaseInsensitive => v.eq_ignore_ascii_case(want),
            Some(v) => v == want,
            None => false,
        }
    };
    let mismatch = |what: &str| {
        error(
            StatusCode::BAD_REQUEST,
            &id,
            -32020,
            &format!("{what} header does not match the body"),
            None,
        )
    };
    if dev != Deviation::ProtocolHeaderNotChecked
        && !same(header(headers, "mcp-protocol-version"), claimed)
    {
        return mismatch("MCP-Protocol-Version");
    }
    if dev != Deviation::MethodHeaderNotChecked && !same(header(headers, "mcp-method"), rpc) {
        return mismatch("Mcp-Method");
    }
    if ["tools/call", "resources/read", "prompts/get"].contains(&rpc)
        && dev != Deviation::NameHeaderNotChecked
    {
        let name = params
            .get("name")
            .or_else(|| params.get("uri"))
            .and_then(Value::as_str)
            .unwrap_or("");
        if !same(header(headers, "mcp-name"), name) {
            return mismatch("Mcp-Name");
        }
    }
    if dev == Deviation::StraySessionRejected && header(headers, "mcp-session-id").is_some() {
        return error(
            StatusCode::NOT_FOUND,
            &id,
            -32001,
            "Session not found",
            None,
        );
    }
    if message.get("id").is_none() {
        let status = if dev == Deviation::Notification200 {
            StatusCode::OK
        } else {
            StatusCode::ACCEPTED
        };
        return respond(status, None);
    }
    let hints = |mut result: Value| {
        if dev != Deviation::NoCachingHints {
            result["ttlMs"] = json!(0);
            result["cacheScope"] = json!("private");
        }
        result
    };
    let result = match rpc {
        "server/discover" => {
            let mut result = hints(json!({
                "supportedVersions": [MODERN_VERSION],
                "capabilities": {"tools": {}, "resources": {}, "prompts": {}, "logging": {}},
                "instructions": "modern test server",
                "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "modern-test-server", "version": "1"}}}));
            if dev == Deviation::DiscoverWithoutVersions {
                result.as_object_mut().unwrap().remove("supportedVersions");
            }
            result
        }
        "tools/list" => hints(json!({"tools": tools()})),
        "resources/list" => hints(
            json!({"resources": [{"uri": "test://static-text", "name": "static-text", "mimeType": "text/plain"}]}),
        ),
        "resources/templates/list" => hints(
            json!({"resourceTemplates": [{"uriTemplate": "test://template/{id}/data", "name": "template"}]}),
        ),
        "prompts/list" => hints(json!({"prompts": [{"name": "test_simple_prompt"}]})),
        "resources/read" => {
            if params["uri"] != "test://static-text" {
                return error(StatusCode::OK, &id, -32602, "Resource not found", None);
            }
            hints(
                json!({"contents": [{"uri": "test://static-text", "mimeType": "text/plain",
                "text": "This is the content of the static text resource."}]}),
            )
        }
        "prompts/get" => json!({"messages": [{"role": "user",
            "content": {"type": "text", "text": "This is a simple prompt for testing."}}]}),
        "ping" if dev == Deviation::PingServed => json!({}),
        "resources/subscribe" | "resources/unsubscribe" if dev == Deviation::SubscribeServed => {
            json!({})
        }
        "subscriptions/listen" => return listen(dev, id),
        "tools/call" => match tool_call(state, &id, &params, meta, capabilities).await {
            Ok(result) => result,
            Err(response) => return response,
        },
        _ => {
            let status = if dev == Deviation::UnknownMethod200 {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            return error(status, &id, -32601, "Method not found", None);
        }
    };
    let mut result = result;
    if dev != Deviation::NoResultType && result.get("resultType").is_none() {
        result["resultType"] = json!("complete");
    }
    let mut response = respond(
        StatusCode::OK,
        Some(&json!({"jsonrpc": "2.0", "id": id, "result": result})),
    );
    if dev == Deviation::MintsSessionId {
        response
            .headers_mut()
            .insert("mcp-session-id", "minted-1".parse().unwrap());
    }
    response
}

fn listen(dev: Deviation, id: Value) -> Response {
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(async move {
        if dev != Deviation::ListenNoAck {
            let tag = if dev == Deviation::ListenWrongTag {
                json!("subscription-1")
            } else {
                id
            };
            let ack = json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
                "params": {"_meta": {"io.modelcontextprotocol/subscriptionId": tag}}});
            let _ = tx.send(event(&ack)).await;
        }
        tx.closed().await;
    });
    sse(rx)
}

async fn tool_call(
    state: &Shared,
    id: &Value,
    params: &Value,
    meta: &Value,
    capabilities: Option<&Value>,
) -> Result<Value, Response> {
    let dev = state.options.deviation;
    let name = params["name"].as_str().unwrap_or("");
    let inputs = params.get("inputResponses");
    let result = match name {
        "test_simple_text" => text("This is a simple text response for testing."),
        "test_error_handling" => {
            json!({"content": [{"type": "text", "text": "boom"}], "isError": true})
        }
        "test_missing_capability" => {
            let declared = capabilities.is_some_and(|c| c.get("sampling").is_some());
            if !declared && dev != Deviation::NoCapabilityCheck {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    id,
                    -32021,
                    "Missing required client capability: sampling",
                    Some(json!({"requiredCapabilities": {"sampling": {}}})),
                ));
            }
            text("sampling capability present")
        }
        "test_tool_with_logging" => {
            let level = meta.get("io.modelcontextprotocol/logLevel");
            if level.is_none() && dev != Deviation::LogsWithoutLevel {
                text("Tool with logging executed successfully")
            } else {
                let (tx, rx) = mpsc::channel(8);
                let id = id.clone();
                tokio::spawn(async move {
                    for data in ["started", "processing", "completed"] {
                        let note = json!({"jsonrpc": "2.0", "method": "notifications/message",
                            "params": {"level": "info", "data": data}});
                        let _ = tx.send(event(&note)).await;
                    }
                    let done = json!({"jsonrpc": "2.0", "id": id, "result": {"resultType": "complete",
                        "content": [{"type": "text", "text": "Tool with logging executed successfully"}]}});
                    let _ = tx.send(event(&done)).await;
                });
                return Err(sse(rx));
            }
        }
        "test_tool_with_progress" => {
            let token = meta.get("progressToken").cloned().unwrap_or(json!(0));
            let (tx, rx) = mpsc::channel(1);
            let id = id.clone();
            let state = Arc::clone(state);
            tokio::spawn(async move {
                for progress in [0, 50, 100] {
                    let note = json!({"jsonrpc": "2.0", "method": "notifications/progress",
                        "params": {"progressToken": token, "progress": progress, "total": 100}});
                    if tx.send(event(&note)).await.is_err() {
                        // The client closed the stream: the call is cancelled.
                        if dev == Deviation::WedgedAfterCancel {
                            state.wedged.store(true, Ordering::SeqCst);
                        }
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                let done = json!({"jsonrpc": "2.0", "id": id, "result": {"resultType": "complete",
                    "content": [{"type": "text", "text": "progress done"}]}});
                let _ = tx.send(event(&done)).await;
            });
            return Err(sse(rx));
        }
        "test_input_required_result_elicitation" => {
            match inputs.and_then(|i| i.pointer("/user_name/content/name")) {
                _ if dev == Deviation::MrtrNeverAsks => text("Hello, stranger!"),
                Some(name) => text(&format!("Hello, {}!", name.as_str().unwrap_or("?"))),
                None => json!({"resultType": "input_required", "inputRequests": {"user_name": {
                    "method": "elicitation/create", "params": {"message": "What is your name?",
                    "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}}}}}}),
            }
        }
        "test_input_required_result_request_state" => {
            let state_text = params.get("requestState").and_then(Value::as_str);
            let confirmed = inputs.and_then(|i| i.get("confirm")).is_some();
            let valid = state_text.is_some_and(|s| {
                let mut parts = s.splitn(2, '.');
                let nonce = parts.next().unwrap_or("");
                let sig = parts.next().unwrap_or("");
                sig == signature(nonce).to_string()
            });
            match (state_text, valid || dev == Deviation::StateNotVerified) {
                (Some(_), false) => {
                    return Err(error(
                        StatusCode::BAD_REQUEST,
                        id,
                        -32602,
                        "Invalid requestState",
                        None,
                    ))
                }
                (Some(_), true) if confirmed || dev == Deviation::MissingInputsComplete => {
                    text("state-ok: requestState validated")
                }
                _ => {
                    let nonce = format!("n{}", state.next.fetch_add(1, Ordering::SeqCst));
                    let sealed = format!("{nonce}.{}", signature(&nonce));
                    json!({"resultType": "input_required", "requestState": sealed,
                        "inputRequests": {"confirm": {"method": "elicitation/create",
                        "params": {"message": "Please confirm",
                        "requestedSchema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}}}}})
                }
            }
        }
        _ => {
            return Err(error(
                StatusCode::OK,
                id,
                -32602,
                &format!("Unknown tool: {name}"),
                None,
            ))
        }
    };
    Ok(result)
}
