//! `mcp-harness fuzz` against a small MCP server of our own with one planted defect: it must
//! be found and reported with its seed and a shrunk request; without the defect, nothing is.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use harness::fuzz::{FuzzConfig, Invariant};
use serde_json::{json, Value};

#[derive(Clone, Copy, PartialEq)]
enum Defect {
    None,
    /// Unparseable JSON is answered with 500 instead of a JSON-RPC parse error.
    ServerErrorOnBadJson,
    /// Each answer carries the id of the previous request, whichever session sent it.
    CrossedAnswers,
}

struct Planted {
    defect: Defect,
    next_session: AtomicU64,
    sessions: Mutex<Vec<String>>,
    last_id: Mutex<Value>,
}

fn error(status: StatusCode, code: i64, message: &str) -> Response {
    let body = json!({"jsonrpc":"2.0","id":null,"error":{"code":code,"message":message}});
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn mcp(
    State(s): State<Arc<Planted>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let session = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let known = session
        .as_ref()
        .is_some_and(|id| s.sessions.lock().unwrap().contains(id));
    if method == Method::DELETE {
        if !known {
            return error(StatusCode::NOT_FOUND, -32001, "Session not found");
        }
        s.sessions
            .lock()
            .unwrap()
            .retain(|id| Some(id) != session.as_ref());
        return StatusCode::OK.into_response();
    }
    if method != Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, -32000, "Method not allowed");
    }
    let message: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) if s.defect == Defect::ServerErrorOnBadJson => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response()
        }
        Err(_) => return error(StatusCode::BAD_REQUEST, -32700, "Parse error"),
    };
    let Some(object) = message.as_object() else {
        return error(StatusCode::BAD_REQUEST, -32600, "Invalid Request");
    };
    let id = object
        .get("id")
        .filter(|id| id.is_string() || id.is_i64() || id.is_u64())
        .cloned();
    if object.get("method") == Some(&json!("initialize")) && session.is_none() {
        let Some(id) = id else {
            return error(StatusCode::BAD_REQUEST, -32600, "Invalid Request");
        };
        let new = format!("s{}", s.next_session.fetch_add(1, Ordering::Relaxed));
        s.sessions.lock().unwrap().push(new.clone());
        let body = json!({"jsonrpc":"2.0","id":id,"result":{"protocolVersion":"2025-11-25","capabilities":{},"serverInfo":{"name":"planted","version":"0"}}});
        return (
            StatusCode::OK,
            [
                ("content-type", "application/json"),
                ("mcp-session-id", new.as_str()),
            ],
            body.to_string(),
        )
            .into_response();
    }
    if !known {
        return error(StatusCode::NOT_FOUND, -32001, "Session not found");
    }
    let Some(id) = id else {
        return StatusCode::ACCEPTED.into_response();
    };
    if !object.get("method").is_some_and(Value::is_string) {
        return StatusCode::ACCEPTED.into_response();
    }
    let answered = if s.defect == Defect::CrossedAnswers {
        std::mem::replace(&mut *s.last_id.lock().unwrap(), id.clone())
    } else {
        id
    };
    let body = json!({"jsonrpc":"2.0","id":answered,"result":{}});
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn start(defect: Defect) -> url::Url {
    let state = Arc::new(Planted {
        defect,
        next_session: AtomicU64::new(1),
        sessions: Mutex::new(Vec::new()),
        last_id: Mutex::new(json!("nobody")),
    });
    let app = Router::new().route("/mcp", any(mcp)).with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/mcp").parse().unwrap()
}

fn config(url: url::Url, seed: u64, secs: u64) -> FuzzConfig {
    let mut config = FuzzConfig::new(url, seed);
    config.duration = Duration::from_secs(secs);
    config.rate = 400;
    config.answer_timeout = Duration::from_secs(5);
    config
}

#[tokio::test]
async fn a_500_on_malformed_json_is_found_shrunk_and_reported_with_its_seed() {
    let url = start(Defect::ServerErrorOnBadJson).await;
    let report = harness::fuzz::run(&config(url, 77, 20)).await.unwrap();
    assert!(!report.passed(), "the planted 500 was not found");
    let finding = &report.findings[0];
    assert_eq!(
        finding.invariant,
        Invariant::ServerError,
        "{}",
        report.to_human()
    );
    let text = report.to_human();
    assert!(text.contains("seed 77"), "{text}");
    assert!(text.contains("--seed 77"), "{text}");
    // Shrunk: the defect needs no header at all, so the minimal request has none.
    let minimal_headers = finding
        .minimal
        .lines()
        .skip(1)
        .take_while(|l| !l.is_empty())
        .count();
    assert_eq!(minimal_headers, 0, "{text}");
    assert!(finding.minimal.len() <= finding.original.len());
    let json: Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["seed"], 77);
    assert_eq!(json["passed"], false);
}

#[tokio::test]
async fn answers_crossed_between_sessions_are_found() {
    let url = start(Defect::CrossedAnswers).await;
    let report = harness::fuzz::run(&config(url, 5, 20)).await.unwrap();
    assert!(!report.passed(), "crossed answers were not found");
    let invariant = report.findings[0].invariant;
    assert!(
        matches!(
            invariant,
            Invariant::Crossed | Invariant::WrongId | Invariant::Unhealthy
        ),
        "{}",
        report.to_human()
    );
    assert!(report.to_human().contains("seed 5"));
}

#[tokio::test]
async fn the_same_server_without_the_defect_passes() {
    let url = start(Defect::None).await;
    let report = harness::fuzz::run(&config(url, 77, 3)).await.unwrap();
    assert!(report.passed(), "{}", report.to_human());
    assert!(report.cases > 10, "{}", report.to_human());
}

#[tokio::test]
async fn the_cli_exits_non_zero_with_the_seed_and_refuses_remote_targets() {
    let url = start(Defect::ServerErrorOnBadJson).await;
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-harness"))
        .args([
            "fuzz",
            "--target",
            url.as_str(),
            "--duration-secs",
            "20",
            "--seed",
            "9",
            "--rate",
            "400",
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("seed 9") && stdout.contains("no 5xx other than 502/503"),
        "{stdout}"
    );

    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-harness"))
        .args([
            "fuzz",
            "--target",
            "http://192.0.2.1/mcp",
            "--duration-secs",
            "1",
        ])
        .output()
        .await
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("--allow-remote"));
}
