//! Sending a case and reading its answer, bounded in size and time.

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tokio::time::Instant;

use super::case::{Case, HeaderVal, Method};
use crate::sse::{self, SseItem};

/// Most of an answer's body that is read; the rest is dropped (the check sees it as cut).
const MAX_ANSWER: usize = 1024 * 1024;
/// How long a GET stream is read before the fuzzer lets go of it (streams stay open).
const STREAM_WINDOW: Duration = Duration::from_millis(300);

/// What fills in a case's placeholders when it is sent.
#[derive(Clone, Debug, Default)]
pub struct Fill {
    pub token: Option<String>,
    pub own_session: Option<String>,
    pub other_session: Option<String>,
    pub version: String,
}

/// One answer, or why there was none.
#[derive(Debug)]
pub enum Outcome {
    Answer(Answer),
    /// No status line within the bound.
    Late,
    /// The connection failed before a status line.
    NoAnswer(String),
}

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
    /// The body did not end within the bound (for anything but a GET stream).
    pub body_late: bool,
    /// The session id the server handed out, if any.
    pub session_id: Option<String>,
}

impl Answer {
    /// The JSON-RPC messages in the body (a JSON body, or the `data` of SSE events), and the
    /// SSE event ids seen.
    pub fn messages(&self) -> (Vec<Value>, Vec<String>) {
        let mut messages = Vec::new();
        let mut ids = Vec::new();
        if self.content_type.starts_with("text/event-stream") {
            for item in sse::parse_all(&self.body) {
                if let SseItem::Event(event) = item {
                    ids.extend(event.id);
                    if let Some(data) = event.data.filter(|d| !d.trim().is_empty()) {
                        messages.push(serde_json::from_str(&data).unwrap_or(Value::String(data)));
                    }
                }
            }
        } else if !self.body.is_empty() {
            match serde_json::from_slice::<Value>(&self.body) {
                Ok(Value::Array(items)) => messages.extend(items),
                Ok(value) => messages.push(value),
                Err(_) => messages.push(Value::String(
                    String::from_utf8_lossy(&self.body).into_owned(),
                )),
            }
        }
        (messages, ids)
    }
}

fn header_map(case: &Case, fill: &Fill) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in &case.headers {
        let bytes: Option<Vec<u8>> = match value {
            HeaderVal::Bytes(b) => Some(b.clone()),
            HeaderVal::Token => fill
                .token
                .as_ref()
                .map(|t| format!("Bearer {t}").into_bytes()),
            HeaderVal::OwnSession => fill.own_session.clone().map(String::into_bytes),
            HeaderVal::OtherSession => fill.other_session.clone().map(String::into_bytes),
            HeaderVal::Version => Some(fill.version.clone().into_bytes()),
        };
        let (Ok(name), Some(Ok(value))) = (
            HeaderName::from_bytes(name.as_bytes()),
            bytes.map(|b| HeaderValue::from_bytes(&b)),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    headers
}

/// Sends one copy of `case` and reads the answer within `bound`.
pub async fn send(
    client: &reqwest::Client,
    url: &url::Url,
    case: &Case,
    fill: &Fill,
    bound: Duration,
) -> Outcome {
    let method = match case.method {
        Method::Post => reqwest::Method::POST,
        Method::Get => reqwest::Method::GET,
        Method::Delete => reqwest::Method::DELETE,
    };
    let mut request = client
        .request(method, url.clone())
        .headers(header_map(case, fill));
    if let Some(body) = &case.body {
        request = request.body(body.clone());
    }
    let deadline = Instant::now() + bound;
    let response = match tokio::time::timeout_at(deadline, request.send()).await {
        Err(_) => return Outcome::Late,
        Ok(Err(e)) => return Outcome::NoAnswer(without_url(&e)),
        Ok(Ok(response)) => response,
    };
    let status = response.status().as_u16();
    let text = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = text("content-type").unwrap_or_default();
    let session_id = text("mcp-session-id");
    let is_stream = case.method == Method::Get && content_type.starts_with("text/event-stream");
    let read_until = if is_stream {
        Instant::now() + STREAM_WINDOW
    } else {
        deadline
    };
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    let mut body_late = false;
    loop {
        match tokio::time::timeout_at(read_until, chunks.next()).await {
            Err(_) => {
                body_late = !is_stream;
                break;
            }
            Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(chunk))) => {
                body.extend_from_slice(&chunk);
                if body.len() >= MAX_ANSWER {
                    break;
                }
            }
        }
    }
    Outcome::Answer(Answer {
        status,
        content_type,
        body: Bytes::from(body),
        body_late,
        session_id,
    })
}

/// A transport error's kind and causes, without the URL (the caller's own; it adds nothing).
fn without_url(e: &reqwest::Error) -> String {
    let mut text = if e.is_connect() {
        "connect failed"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    }
    .to_string();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        text.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    text
}
