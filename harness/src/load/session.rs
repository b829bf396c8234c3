//! Sessions of a load run: opened with initialize (reading the negotiated version), ended with DELETE.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::Method;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::calls::Tally;
use super::check;
use super::check::{check_reply, Expect};
use super::conn::Conn;
use super::{LoadConfig, Plan};

/// One open session: its id (if the server gave one) and the headers of its calls.
pub(super) struct Session {
    pub(super) id: Option<HeaderValue>,
    pub(super) headers: HeaderMap,
}

pub(super) const SESSION_ID: &str = "mcp-session-id";
pub(super) const PROTOCOL_VERSION: &str = "mcp-protocol-version";

/// Opens the sessions, `concurrency` at a time.
pub(super) async fn open_sessions(
    plan: &Arc<Plan>,
    config: &LoadConfig,
    ids: &Arc<AtomicU64>,
    tally: &mut Tally,
) -> (Vec<Session>, Vec<u64>) {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..config.concurrency.min(config.sessions) {
        let plan = plan.clone();
        let ids = ids.clone();
        let next = next.clone();
        let total = config.sessions as u64;
        let version = config.protocol_version.clone();
        tasks.spawn(async move {
            let mut conn = Conn::new(plan.addr);
            let mut opened = Vec::new();
            let mut tally = Tally::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let base = &plan.bases[n as usize % plan.bases.len()];
                let id = ids.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                match tokio::time::timeout_at(
                    plan.deadline,
                    open_one(&plan, base, &mut conn, id, &version),
                )
                .await
                {
                    Ok(Ok(session)) => {
                        tally.latencies.push(started.elapsed().as_nanos() as u64);
                        opened.push(session);
                    }
                    Ok(Err(kind)) => tally.error(format!("initialize: {kind}")),
                    Err(_) => {
                        tally.timed_out = true;
                        break;
                    }
                }
            }
            tally.reconnects += conn.reconnects;
            (opened, tally)
        });
    }
    let mut sessions = Vec::new();
    let mut latencies = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        if let Ok((opened, mut part)) = joined {
            sessions.extend(opened);
            latencies.append(&mut part.latencies);
            tally.merge(part);
        }
    }
    (sessions, latencies)
}

pub(super) async fn open_one(
    plan: &Plan,
    base: &HeaderMap,
    conn: &mut Conn,
    id: u64,
    version: &str,
) -> Result<Session, String> {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": { "name": "mcp-harness-load", "version": env!("CARGO_PKG_VERSION") },
        },
    });
    let reply = conn
        .send(
            Method::POST,
            &plan.uri,
            base,
            Bytes::from(body.to_string()),
            Some(SESSION_ID),
        )
        .await
        .map_err(|e| e.to_string())?;
    check_reply(
        reply.status,
        reply.content_type.as_bytes(),
        &reply.body,
        id,
        &Expect::AnyResult,
    )
    .map_err(|e| e.to_string())?;
    let negotiated = negotiated_version(&reply.content_type, &reply.body)
        .ok_or_else(|| "no protocolVersion in the initialize result".to_string())?;
    let mut headers = base.clone();
    if let Some(session) = &reply.wanted {
        headers.insert(HeaderName::from_static(SESSION_ID), session.clone());
    }
    headers.insert(
        HeaderName::from_static(PROTOCOL_VERSION),
        HeaderValue::from_str(&negotiated).map_err(|e| e.to_string())?,
    );
    let note = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let reply = conn
        .send(
            Method::POST,
            &plan.uri,
            &headers,
            Bytes::from_static(note),
            None,
        )
        .await
        .map_err(|e| format!("notifications/initialized: {e}"))?;
    if !(200..300).contains(&reply.status) {
        return Err(format!(
            "notifications/initialized: HTTP status {}",
            reply.status
        ));
    }
    Ok(Session {
        id: reply_session(&headers),
        headers,
    })
}

pub(super) fn reply_session(headers: &HeaderMap) -> Option<HeaderValue> {
    headers.get(SESSION_ID).cloned()
}

/// `result.protocolVersion` of an initialize reply (JSON or SSE).
pub(super) fn negotiated_version(content_type: &HeaderValue, body: &[u8]) -> Option<String> {
    let from = |value: &Value| {
        value
            .pointer("/result/protocolVersion")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    if content_type.as_bytes().starts_with(b"text/event-stream") {
        let mut found = None;
        check::for_each_event(body, |data| {
            found = serde_json::from_slice::<Value>(data)
                .ok()
                .as_ref()
                .and_then(from);
            found.is_none()
        });
        found
    } else {
        serde_json::from_slice::<Value>(body)
            .ok()
            .as_ref()
            .and_then(from)
    }
}

/// Ends the sessions with DELETE; returns how many were answered with 2xx.
pub(super) async fn delete_sessions(
    plan: &Arc<Plan>,
    sessions: &Arc<Vec<Session>>,
    concurrency: usize,
) -> usize {
    let with_id: Vec<usize> = (0..sessions.len())
        .filter(|&i| sessions[i].id.is_some())
        .collect();
    let with_id = Arc::new(with_id);
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now().max(plan.deadline) + Duration::from_secs(5);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency.min(with_id.len()) {
        let plan = plan.clone();
        let sessions = sessions.clone();
        let with_id = with_id.clone();
        let next = next.clone();
        tasks.spawn(async move {
            let mut conn = Conn::new(plan.addr);
            let mut deleted = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&index) = with_id.get(i) else { break };
                let sent = tokio::time::timeout_at(
                    deadline,
                    conn.send(
                        Method::DELETE,
                        &plan.uri,
                        &sessions[index].headers,
                        Bytes::new(),
                        None,
                    ),
                )
                .await;
                match sent {
                    Ok(Ok(reply)) if (200..300).contains(&reply.status) => deleted += 1,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            deleted
        });
    }
    let mut deleted = 0;
    while let Some(joined) = tasks.join_next().await {
        deleted += joined.unwrap_or(0);
    }
    deleted
}
