//! The security audit trail: one JSON line per event, written by a background task so that a
//! slow sink never slows a request (events beyond the queue are counted and dropped).
//!
//! Events carry an identity or a token-hash prefix, never a token.

use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

/// Events queued for the writer before new ones are dropped.
const QUEUE: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    AuthSuccess,
    AuthFailure,
    RateLimited,
    SessionCreated,
    SessionExpired,
    SessionDeleted,
    SessionHijackRejected,
    /// A 2026-07-28 retry whose `requestState` failed verification (tampered, another caller's,
    /// or issued for another request).
    RequestStateRejected,
    ChildExit,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::AuthSuccess => "AUTH_SUCCESS",
            EventType::AuthFailure => "AUTH_FAILURE",
            EventType::RateLimited => "RATE_LIMITED",
            EventType::SessionCreated => "SESSION_CREATED",
            EventType::SessionExpired => "SESSION_EXPIRED",
            EventType::SessionDeleted => "SESSION_DELETED",
            EventType::SessionHijackRejected => "SESSION_HIJACK_REJECTED",
            EventType::RequestStateRejected => "REQUEST_STATE_REJECTED",
            EventType::ChildExit => "CHILD_EXIT",
        }
    }
}

/// One audit event; build with the setters, then [`Audit::emit`].
#[derive(Clone, Debug)]
pub struct Event {
    kind: EventType,
    fields: Map<String, Value>,
}

impl Event {
    pub fn new(kind: EventType) -> Event {
        Event {
            kind,
            fields: Map::new(),
        }
    }
    fn set(mut self, key: &str, value: impl Into<Value>) -> Event {
        self.fields.insert(key.into(), value.into());
        self
    }
    pub fn ip(self, ip: Option<IpAddr>) -> Event {
        match ip {
            Some(ip) => self.set("clientIp", ip.to_string()),
            None => self,
        }
    }
    pub fn identity(self, subject: &str) -> Event {
        self.set("identity", subject)
    }
    /// The first 12 hex digits of the token's SHA-256 (see [`crate::identity::token_fingerprint`]).
    pub fn token_hash(self, hash: Option<&str>) -> Event {
        match hash {
            Some(hash) => self.set("tokenHash", hash),
            None => self,
        }
    }
    pub fn session(self, session_prefix: &str) -> Event {
        self.set("sessionId", session_prefix)
    }
    pub fn request_id(self, request_id: &str) -> Event {
        self.set("requestId", request_id)
    }
    pub fn reason(self, reason: &str) -> Event {
        self.set("reason", reason)
    }
    pub fn detail(self, key: &str, value: impl Into<Value>) -> Event {
        self.set(key, value)
    }
}

/// Where audit lines go.
#[derive(Clone, Debug)]
pub enum Sink {
    Stdout,
    Stderr,
    File(std::path::PathBuf),
    /// Kept in memory (tests).
    Memory(Arc<std::sync::Mutex<Vec<String>>>),
    Off,
}

impl Sink {
    pub fn parse(text: &str) -> Sink {
        match text {
            "stdout" | "-" => Sink::Stdout,
            "stderr" => Sink::Stderr,
            "off" | "none" => Sink::Off,
            path => Sink::File(path.into()),
        }
    }
}

#[derive(Clone)]
pub struct Audit {
    tx: Option<mpsc::Sender<String>>,
    service: Arc<str>,
    dropped: Arc<AtomicU64>,
}

impl Audit {
    /// Starts the writer task. A file sink is opened (append, created if missing) at once, so a
    /// bad path fails at startup.
    pub fn start(sink: Sink, service: &str) -> std::io::Result<Audit> {
        let service: Arc<str> = Arc::from(service);
        let dropped = Arc::new(AtomicU64::new(0));
        let mut writer: Box<dyn FnMut(&str) + Send> = match sink {
            Sink::Off => {
                return Ok(Audit {
                    tx: None,
                    service,
                    dropped,
                })
            }
            Sink::Stdout => Box::new(|line: &str| {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }),
            Sink::Stderr => Box::new(|line: &str| {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }),
            Sink::File(path) => {
                let mut file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?;
                Box::new(move |line: &str| {
                    let _ = writeln!(file, "{line}");
                })
            }
            Sink::Memory(lines) => Box::new(move |line: &str| {
                lines
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line.to_string());
            }),
        };
        let (tx, mut rx) = mpsc::channel::<String>(QUEUE);
        // Writing may block (a full pipe); it does so on a blocking thread, never on the runtime.
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || {
                while let Some(line) = rx.blocking_recv() {
                    writer(&line);
                }
            })?;
        Ok(Audit {
            tx: Some(tx),
            service,
            dropped,
        })
    }

    /// Audit that writes nothing (tests and embedding).
    pub fn off() -> Audit {
        Audit {
            tx: None,
            service: Arc::from("coda-mcp"),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn emit(&self, event: Event) {
        let Some(tx) = &self.tx else { return };
        let mut line = json!({
            "timestamp": crate::timefmt::now_rfc3339(),
            "service": &*self.service,
            "event": event.kind.as_str(),
        });
        if let Value::Object(map) = &mut line {
            map.extend(event.fields);
        }
        if tx.try_send(line.to_string()).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "audit queue full; events dropped");
            }
        }
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits (bounded) until queued events are written: shutdown calls this last.
    pub async fn flush(&self, timeout: std::time::Duration) {
        let Some(tx) = &self.tx else { return };
        let deadline = tokio::time::Instant::now() + timeout;
        while tx.capacity() < tx.max_capacity() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
