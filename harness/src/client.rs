//! HTTP on the wire: send one request, then read its body chunk by chunk in a background task
//! that feeds the SSE parser, so that steps can wait (bounded) for what they need.

use crate::sse::{SseEvent, SseItem, SseParser};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Bytes of a body kept for assertions; the rest is counted but dropped.
const MAX_KEPT_BODY: usize = 8 * 1024 * 1024;

/// A transport-level failure (connection refused, TLS, timeout before the headers).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The request could not be built or sent.
    #[error("request failed: {0}")]
    Send(String),
    /// No response head arrived in time.
    #[error("no response within {0:?}")]
    Timeout(Duration),
}

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// HTTP method.
    pub method: String,
    /// Absolute URL.
    pub url: url::Url,
    /// Headers in order.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Option<Vec<u8>>,
    /// Send HTTP/1 header names in Title-Case (`Mcp-Protocol-Version`) instead of the usual
    /// lower case, to check that a server compares names case-insensitively.
    pub title_case: bool,
}

/// The shared HTTP client: no redirects, no default timeout (every wait is bounded by the step).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    title_case: reqwest::Client,
}

impl Client {
    /// A client that works against http and https targets.
    pub fn new() -> Result<Client, ClientError> {
        let builder = || {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(10))
                .user_agent(concat!("mcp-harness/", env!("CARGO_PKG_VERSION")))
        };
        let http = builder()
            .build()
            .map_err(|e| ClientError::Send(e.to_string()))?;
        let title_case = builder()
            .http1_title_case_headers()
            .build()
            .map_err(|e| ClientError::Send(e.to_string()))?;
        Ok(Client { http, title_case })
    }

    /// Sends a request and returns once the response head arrived (or `within` ran out).
    pub async fn send(&self, request: &Request, within: Duration) -> Result<Answer, ClientError> {
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|e| ClientError::Send(e.to_string()))?;
        let http = if request.title_case {
            &self.title_case
        } else {
            &self.http
        };
        let mut builder = http.request(method, request.url.clone());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let response = match tokio::time::timeout(within, builder.send()).await {
            Err(_) => return Err(ClientError::Timeout(within)),
            Ok(Err(e)) => return Err(ClientError::Send(error_chain(&e))),
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let is_sse = headers.iter().any(|(k, v)| {
            k.eq_ignore_ascii_case("content-type")
                && v.to_ascii_lowercase().starts_with("text/event-stream")
        });
        let body = Body::spawn(response, is_sse);
        Ok(Answer {
            status,
            headers,
            is_sse,
            body,
        })
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A response whose body is being read in the background.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Response headers (lowercase names, in order).
    pub headers: Vec<(String, String)>,
    /// True when `Content-Type` is `text/event-stream`.
    pub is_sse: bool,
    /// The body reader.
    pub body: Body,
}

impl Answer {
    /// All values of a header, joined by `, ` (`None` when absent).
    pub fn header(&self, name: &str) -> Option<String> {
        header_value(&self.headers, name)
    }
}

/// All values of a header in a list, joined by `, `.
pub fn header_value(headers: &[(String, String)], name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// One SSE item with its arrival time.
#[derive(Debug, Clone)]
pub struct Timed {
    /// The item.
    pub item: SseItem,
    /// When it was parsed.
    pub at: Instant,
}

/// What has been read of a body so far.
#[derive(Debug, Default, Clone)]
pub struct BodyData {
    /// The bytes kept (up to 8 MiB).
    pub raw: Vec<u8>,
    /// Total bytes received.
    pub total: usize,
    /// Parsed SSE items (only for SSE bodies).
    pub items: Vec<Timed>,
    /// The body ended (cleanly or by error).
    pub ended: bool,
    /// A read error, if the body broke off.
    pub error: Option<String>,
    /// An unterminated SSE block was pending at the end.
    pub incomplete_tail: bool,
}

impl BodyData {
    /// The SSE events from item index `from` on.
    pub fn events_from(&self, from: usize) -> Vec<&SseEvent> {
        self.items[from.min(self.items.len())..]
            .iter()
            .filter_map(|t| match &t.item {
                SseItem::Event(e) => Some(e),
                SseItem::Comment(_) => None,
            })
            .collect()
    }
}

/// A body being read by a background task; dropping it stops the task (closing the connection).
#[derive(Debug)]
pub struct Body {
    data: Arc<Mutex<BodyData>>,
    changed: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Body {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Body {
    fn spawn(mut response: reqwest::Response, is_sse: bool) -> Body {
        let data = Arc::new(Mutex::new(BodyData::default()));
        let (tx, changed) = watch::channel(0u64);
        let shared = Arc::clone(&data);
        let task = tokio::spawn(async move {
            let mut parser = SseParser::new();
            loop {
                let chunk = response.chunk().await;
                let now = Instant::now();
                {
                    let mut body = shared.lock().expect("body lock");
                    match chunk {
                        Ok(Some(bytes)) => {
                            body.total += bytes.len();
                            let room = MAX_KEPT_BODY.saturating_sub(body.raw.len());
                            body.raw.extend_from_slice(&bytes[..bytes.len().min(room)]);
                            if is_sse {
                                let items = parser.feed(&bytes);
                                body.items
                                    .extend(items.into_iter().map(|item| Timed { item, at: now }));
                            }
                        }
                        Ok(None) => {
                            body.incomplete_tail = is_sse && parser.finish();
                            body.ended = true;
                        }
                        Err(e) => {
                            body.error = Some(error_chain(&e));
                            body.incomplete_tail = is_sse && parser.finish();
                            body.ended = true;
                        }
                    }
                }
                tx.send_modify(|v| *v += 1);
                if shared.lock().expect("body lock").ended {
                    break;
                }
            }
        });
        Body {
            data,
            changed,
            task,
        }
    }

    /// A copy of what has been read so far.
    pub fn snapshot(&self) -> BodyData {
        self.data.lock().expect("body lock").clone()
    }

    /// Runs `f` over the data read so far.
    pub fn with<R>(&self, f: impl FnOnce(&BodyData) -> R) -> R {
        f(&self.data.lock().expect("body lock"))
    }

    /// Waits until new data arrives or `deadline` passes; returns false on the deadline or when
    /// the body has ended and nothing more will come.
    pub async fn wait_change(&mut self, deadline: Instant) -> bool {
        if self.with(|d| d.ended) && !self.changed.has_changed().unwrap_or(false) {
            return false;
        }
        match tokio::time::timeout_at(deadline, self.changed.changed()).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => false,
        }
    }

    /// Waits until the body ends or `deadline` passes.
    pub async fn wait_end(&mut self, deadline: Instant) {
        while !self.with(|d| d.ended) {
            if !self.wait_change(deadline).await {
                return;
            }
        }
    }
}
