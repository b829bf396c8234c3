//! `mcp-harness load`: a bounded, checked load run against one MCP Streamable HTTP endpoint.
//!
//! 1. `--sessions S` sessions are opened (initialize, then `notifications/initialized`), with
//!    the negotiated `MCP-Protocol-Version` sent on every later request;
//! 2. `--warmup W` calls are made and not counted;
//! 3. `--requests N` calls are made by `--concurrency C` workers, each on its own keep-alive
//!    connection; request `i` goes to session `i mod S`, carries a unique integer id and (for
//!    `echo` without `--args`) a unique message;
//! 4. every reply is checked: status 200, a JSON body or an SSE stream holding the response with
//!    the request's id (notifications before it are skipped), no JSON-RPC or tool error, and for
//!    `echo` the text equal to the message sent;
//! 5. the sessions are ended with DELETE (unless `--keep-sessions`).
//!
//! The whole run is bounded by `--timeout-secs`. Only successful calls enter the latency figures.
//! Request bodies are built from pre-serialized pieces into one buffer per request.

pub mod check;
pub mod cli;
pub mod conn;
pub mod selftest;
pub mod stats;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Uri};
use serde::Serialize;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use check::{check_reply, Expect};
use conn::Conn;
use stats::Latency;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// An `http://` MCP endpoint URL.
    pub target: url::Url,
    /// Bearer token sent on every request.
    pub token: Option<String>,
    pub concurrency: usize,
    pub requests: u64,
    pub sessions: usize,
    pub warmup: u64,
    pub tool: String,
    /// Tool arguments; `None` with `echo` sends `{"message": "load-<id>"}`.
    pub args: Option<Map<String, Value>>,
    /// The version asked for in initialize.
    pub protocol_version: String,
    /// Bound of the whole run (sessions, warm-up, calls, DELETEs).
    pub timeout: Duration,
    /// Leave the sessions open at the end (to measure a server with open sessions).
    pub keep_sessions: bool,
    /// Self-test: the trivial server's thread, whose CPU is reported apart from the client's.
    pub server_thread: Option<selftest::ThreadClock>,
}

impl LoadConfig {
    /// Defaults: 1 session, 1 worker, 1000 echo calls, 60 s bound.
    pub fn new(target: url::Url) -> LoadConfig {
        LoadConfig {
            target,
            token: None,
            concurrency: 1,
            requests: 1000,
            sessions: 1,
            warmup: 0,
            tool: "echo".into(),
            args: None,
            protocol_version: "2025-11-25".into(),
            timeout: Duration::from_secs(60),
            keep_sessions: false,
            server_thread: None,
        }
    }
}

/// The outcome of a run, rendered as text or JSON.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub target: String,
    pub tool: String,
    pub concurrency: usize,
    pub requests: u64,
    pub sessions: usize,
    pub warmup: u64,
    pub sessions_opened: usize,
    /// Latency of the initialize requests that succeeded.
    pub initialize: Latency,
    /// Calls answered (correctly or not).
    pub completed: u64,
    pub ok: u64,
    pub errors: u64,
    /// Error kind to count (session opening, warm-up and calls).
    pub error_kinds: BTreeMap<String, u64>,
    /// The global timeout ended the run early.
    pub timed_out: bool,
    /// Calls never sent (the run timed out or no session could be opened).
    pub not_sent: u64,
    pub duration_s: f64,
    /// Successful calls per second over the measured phase.
    pub throughput_rps: f64,
    pub latency: Latency,
    pub replies_json: u64,
    pub replies_sse: u64,
    pub reconnects: u64,
    /// CPU time of the load generator itself per call (user + system), in microseconds.
    pub client_cpu_us_per_call: f64,
    /// DELETE requests answered with 2xx (404/405 count as not deleted).
    pub sessions_deleted: usize,
    /// Self-test only: CPU time of the trivial server per call, in microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_us_per_call: Option<f64>,
}

impl LoadReport {
    /// True when every session opened, every call succeeded and the run did not time out.
    pub fn passed(&self) -> bool {
        self.errors == 0
            && !self.timed_out
            && self.not_sent == 0
            && self.sessions_opened == self.sessions
            && self.ok == self.requests
    }

    /// A few lines for people.
    pub fn to_human(&self) -> String {
        let l = &self.latency;
        let mut out = String::new();
        out.push_str(&format!(
            "load: {} tools/call {} on {} session(s), concurrency {}, {} requests (+{} warm-up)\n",
            self.target, self.tool, self.sessions, self.concurrency, self.requests, self.warmup
        ));
        out.push_str(&format!(
            "  sessions opened {}/{}, initialize p50 {:.3} ms, max {:.3} ms\n",
            self.sessions_opened, self.sessions, self.initialize.p50_ms, self.initialize.max_ms
        ));
        out.push_str(&format!(
            "  {} ok, {} errors, {} not sent in {:.3} s: {:.0} requests/s\n",
            self.ok, self.errors, self.not_sent, self.duration_s, self.throughput_rps
        ));
        out.push_str(&format!(
            "  latency ms: p50 {:.3}  p90 {:.3}  p99 {:.3}  max {:.3}  mean {:.3}\n",
            l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.mean_ms
        ));
        out.push_str(&format!(
            "  replies: {} JSON, {} SSE; reconnects {}; load generator CPU {:.1} us/call",
            self.replies_json, self.replies_sse, self.reconnects, self.client_cpu_us_per_call
        ));
        if let Some(server) = self.server_cpu_us_per_call {
            out.push_str(&format!("; trivial server CPU {server:.1} us/call"));
        }
        out.push('\n');
        for (kind, count) in &self.error_kinds {
            out.push_str(&format!("  error: {count} x {kind}\n"));
        }
        if self.timed_out {
            out.push_str("  the run hit its time bound (--timeout-secs)\n");
        }
        out.push_str(if self.passed() {
            "  result: PASS\n"
        } else {
            "  result: FAIL\n"
        });
        out
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("load needs an http:// target (got {0})")]
    Scheme(String),
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("bad target: {0}")]
    Target(String),
    #[error("--concurrency, --requests and --sessions must be at least 1")]
    Zero,
}

/// One open session: its id (if the server gave one) and the headers of its calls.
struct Session {
    id: Option<HeaderValue>,
    headers: HeaderMap,
}

/// Everything the workers share.
struct Plan {
    addr: SocketAddr,
    uri: Uri,
    base: HeaderMap,
    deadline: Instant,
    /// `{"jsonrpc":"2.0","id":`
    head: &'static [u8],
    /// `,"method":"tools/call","params":{"name":"TOOL","arguments":`
    middle: Vec<u8>,
    /// Fixed arguments (compact JSON), or None for unique echo messages.
    args: Option<Vec<u8>>,
    /// The text an echo must return when the arguments are fixed.
    fixed_text: Option<String>,
    echo: bool,
}

const SESSION_ID: &str = "mcp-session-id";
const PROTOCOL_VERSION: &str = "mcp-protocol-version";

/// Counters of one worker, merged at the end.
#[derive(Default)]
struct Tally {
    latencies: Vec<u64>,
    ok: u64,
    errors: BTreeMap<String, u64>,
    json: u64,
    sse: u64,
    reconnects: u64,
    timed_out: bool,
}

impl Tally {
    fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.ok += other.ok;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        self.json += other.json;
        self.sse += other.sse;
        self.reconnects += other.reconnects;
        self.timed_out |= other.timed_out;
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Runs a whole load: sessions, warm-up, measured calls, DELETEs.
pub async fn run(config: &LoadConfig) -> Result<LoadReport, LoadError> {
    if config.concurrency == 0 || config.requests == 0 || config.sessions == 0 {
        return Err(LoadError::Zero);
    }
    let target = &config.target;
    if target.scheme() != "http" {
        return Err(LoadError::Scheme(target.to_string()));
    }
    let host = target
        .host_str()
        .ok_or_else(|| LoadError::Target(target.to_string()))?;
    let port = target.port_or_known_default().unwrap_or(80);
    let addr = tokio::net::lookup_host((host, port))
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| LoadError::Resolve(format!("{host}:{port}")))?;
    let path = match target.query() {
        Some(query) => format!("{}?{query}", target.path()),
        None => target.path().to_string(),
    };
    let uri: Uri = path
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| LoadError::Target(e.to_string()))?;
    let mut base = HeaderMap::new();
    let authority = match target.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let header =
        |text: &str| HeaderValue::from_str(text).map_err(|e| LoadError::Target(e.to_string()));
    base.insert(hyper::header::HOST, header(&authority)?);
    base.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    base.insert(
        hyper::header::ACCEPT,
        HeaderValue::from_static("application/json, text/event-stream"),
    );
    base.insert(
        hyper::header::USER_AGENT,
        HeaderValue::from_static(concat!("mcp-harness-load/", env!("CARGO_PKG_VERSION"))),
    );
    if let Some(token) = &config.token {
        let mut value = header(&format!("Bearer {token}"))?;
        value.set_sensitive(true);
        base.insert(hyper::header::AUTHORIZATION, value);
    }
    let echo = config.tool == "echo";
    let args = config
        .args
        .as_ref()
        .map(|a| serde_json::to_vec(a).unwrap_or_default());
    let fixed_text = config
        .args
        .as_ref()
        .and_then(|a| a.get("message"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut middle = br#","method":"tools/call","params":{"name":"#.to_vec();
    middle.extend_from_slice(&serde_json::to_vec(&config.tool).unwrap_or_default());
    middle.extend_from_slice(br#","arguments":"#);
    let plan = Arc::new(Plan {
        addr,
        uri,
        base,
        deadline: Instant::now() + config.timeout,
        head: br#"{"jsonrpc":"2.0","id":"#,
        middle,
        args: if echo && config.args.is_none() {
            None
        } else {
            Some(args.unwrap_or_else(|| b"{}".to_vec()))
        },
        fixed_text,
        echo,
    });

    let mut tally = Tally::default();
    let ids = Arc::new(AtomicU64::new(1));
    let (sessions, init_latencies) = open_sessions(&plan, config, &ids, &mut tally).await;
    let sessions_opened = sessions.len();
    let mut init_latencies = init_latencies;
    let initialize = stats::summarize(&mut init_latencies);
    let sessions = Arc::new(sessions);

    let mut report = LoadReport {
        target: config.target.to_string(),
        tool: config.tool.clone(),
        concurrency: config.concurrency,
        requests: config.requests,
        sessions: config.sessions,
        warmup: config.warmup,
        sessions_opened,
        initialize,
        completed: 0,
        ok: 0,
        errors: 0,
        error_kinds: BTreeMap::new(),
        timed_out: false,
        not_sent: config.requests,
        duration_s: 0.0,
        throughput_rps: 0.0,
        latency: Latency::default(),
        replies_json: 0,
        replies_sse: 0,
        reconnects: 0,
        client_cpu_us_per_call: 0.0,
        sessions_deleted: 0,
        server_cpu_us_per_call: None,
    };
    if sessions.is_empty() {
        report.error_kinds = tally.errors;
        report.errors = report.error_kinds.values().sum();
        return Ok(report);
    }

    if config.warmup > 0 {
        let warm = phase(&plan, &sessions, &ids, config.concurrency, config.warmup).await;
        for (kind, count) in warm.errors {
            *tally.errors.entry(format!("warm-up: {kind}")).or_default() += count;
        }
        tally.timed_out |= warm.timed_out;
    }

    let server_cpu = || config.server_thread.and_then(|clock| clock.cpu_ns());
    let server_before = server_cpu();
    let cpu_before = process_cpu_ns();
    let started = Instant::now();
    let mut measured = phase(&plan, &sessions, &ids, config.concurrency, config.requests).await;
    let elapsed = started.elapsed();
    let mut cpu_used = process_cpu_ns().saturating_sub(cpu_before);
    if let (Some(before), Some(after)) = (server_before, server_cpu()) {
        // The process's CPU includes the server thread's: report them apart.
        let server_used = after.saturating_sub(before);
        cpu_used = cpu_used.saturating_sub(server_used);
        report.server_cpu_us_per_call =
            Some(server_used as f64 / 1e3 / (measured.ok + measured.error_count()).max(1) as f64);
    }

    let completed = measured.ok + measured.error_count();
    report.completed = completed;
    report.ok = measured.ok;
    report.not_sent = config.requests.saturating_sub(completed);
    report.duration_s = elapsed.as_secs_f64();
    report.throughput_rps = measured.ok as f64 / elapsed.as_secs_f64().max(1e-9);
    report.latency = stats::summarize(&mut measured.latencies);
    report.replies_json = measured.json;
    report.replies_sse = measured.sse;
    report.client_cpu_us_per_call = cpu_used as f64 / 1e3 / completed.max(1) as f64;
    tally.merge(std::mem::take(&mut measured));
    report.reconnects = tally.reconnects;
    report.timed_out = tally.timed_out;

    if !config.keep_sessions {
        report.sessions_deleted = delete_sessions(&plan, &sessions, config.concurrency).await;
    }
    report.errors = tally.error_count();
    report.error_kinds = tally.errors;
    Ok(report)
}

/// CPU time (user + system) of this process so far, in nanoseconds.
pub fn process_cpu_ns() -> u64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0;
    }
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000_000 + t.tv_usec as u64 * 1_000;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Opens the sessions, `concurrency` at a time.
async fn open_sessions(
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
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let id = ids.fetch_add(1, Ordering::Relaxed);
                let started = Instant::now();
                match tokio::time::timeout_at(
                    plan.deadline,
                    open_one(&plan, &mut conn, id, &version),
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

async fn open_one(plan: &Plan, conn: &mut Conn, id: u64, version: &str) -> Result<Session, String> {
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
            &plan.base,
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
    let mut headers = plan.base.clone();
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

fn reply_session(headers: &HeaderMap) -> Option<HeaderValue> {
    headers.get(SESSION_ID).cloned()
}

/// `result.protocolVersion` of an initialize reply (JSON or SSE).
fn negotiated_version(content_type: &HeaderValue, body: &[u8]) -> Option<String> {
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

/// `count` calls by `concurrency` workers.
async fn phase(
    plan: &Arc<Plan>,
    sessions: &Arc<Vec<Session>>,
    ids: &Arc<AtomicU64>,
    concurrency: usize,
    count: u64,
) -> Tally {
    let base = ids.fetch_add(count, Ordering::Relaxed);
    let next = Arc::new(AtomicU64::new(0));
    let per_worker = (count as usize / concurrency) + 1;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let plan = plan.clone();
        let sessions = sessions.clone();
        let next = next.clone();
        tasks.spawn(worker(plan, sessions, next, base, count, per_worker));
    }
    let mut tally = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(part) => tally.merge(part),
            Err(_) => tally.error("worker panicked"),
        }
    }
    tally
}

async fn worker(
    plan: Arc<Plan>,
    sessions: Arc<Vec<Session>>,
    next: Arc<AtomicU64>,
    base: u64,
    count: u64,
    capacity: usize,
) -> Tally {
    let mut tally = Tally {
        latencies: Vec::with_capacity(capacity),
        ..Tally::default()
    };
    let mut conn = Conn::new(plan.addr);
    let mut message = String::with_capacity(32);
    let mut digits = itoa_buffer();
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= count {
            break;
        }
        let id = base + index;
        let session = &sessions[(index % sessions.len() as u64) as usize];
        let id_text = format_u64(&mut digits, id);
        let mut body = Vec::with_capacity(160);
        body.extend_from_slice(plan.head);
        body.extend_from_slice(id_text);
        body.extend_from_slice(&plan.middle);
        match &plan.args {
            Some(args) => body.extend_from_slice(args),
            None => {
                message.clear();
                message.push_str("load-");
                message.push_str(std::str::from_utf8(id_text).unwrap_or("0"));
                body.extend_from_slice(br#"{"message":""#);
                body.extend_from_slice(message.as_bytes());
                body.extend_from_slice(br#""}"#);
            }
        }
        body.extend_from_slice(b"}}");
        let expect = match (&plan.args, &plan.fixed_text) {
            (None, _) => Expect::Text(&message),
            (Some(_), Some(text)) if plan.echo => Expect::Text(text),
            _ => Expect::AnyResult,
        };
        let started = Instant::now();
        let sent = tokio::time::timeout_at(
            plan.deadline,
            conn.send(
                Method::POST,
                &plan.uri,
                &session.headers,
                Bytes::from(body),
                None,
            ),
        )
        .await;
        let reply = match sent {
            Err(_) => {
                tally.timed_out = true;
                tally.error("no reply before the run's time bound");
                break;
            }
            Ok(Err(e)) => {
                tally.error(format!("transport: {e}"));
                continue;
            }
            Ok(Ok(reply)) => reply,
        };
        let elapsed = started.elapsed();
        let content_type = reply.content_type.as_bytes();
        if content_type.starts_with(b"text/event-stream") {
            tally.sse += 1;
        } else {
            tally.json += 1;
        }
        match check_reply(reply.status, content_type, &reply.body, id, &expect) {
            Ok(()) => {
                tally.ok += 1;
                tally.latencies.push(elapsed.as_nanos() as u64);
            }
            Err(kind) => tally.error(kind.to_string()),
        }
    }
    tally.reconnects += conn.reconnects;
    tally
}

type DigitBuffer = [u8; 20];

fn itoa_buffer() -> DigitBuffer {
    [0; 20]
}

/// Decimal digits of `n` in `buf`, without allocating.
fn format_u64(buf: &mut DigitBuffer, mut n: u64) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

/// Ends the sessions with DELETE; returns how many were answered with 2xx.
async fn delete_sessions(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_ids_without_allocating() {
        let mut buf = itoa_buffer();
        assert_eq!(format_u64(&mut buf, 0), b"0");
        assert_eq!(format_u64(&mut buf, 7), b"7");
        assert_eq!(format_u64(&mut buf, 1234567890), b"1234567890");
        assert_eq!(
            format_u64(&mut buf, u64::MAX),
            u64::MAX.to_string().as_bytes()
        );
    }

    #[test]
    fn reads_negotiated_version_from_json_and_sse() {
        let json = HeaderValue::from_static("application/json");
        let sse = HeaderValue::from_static("text/event-stream");
        let body = br#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18"}}"#;
        assert_eq!(
            negotiated_version(&json, body).as_deref(),
            Some("2025-06-18")
        );
        let stream = format!(
            "id: 0\ndata:\n\ndata: {}\n\n",
            std::str::from_utf8(body).unwrap()
        );
        assert_eq!(
            negotiated_version(&sse, stream.as_bytes()).as_deref(),
            Some("2025-06-18")
        );
        assert_eq!(negotiated_version(&json, b"{}"), None);
    }

    #[test]
    fn report_passes_only_when_everything_succeeded() {
        let mut report = LoadReport {
            target: "http://127.0.0.1:1/mcp".into(),
            tool: "echo".into(),
            concurrency: 1,
            requests: 2,
            sessions: 1,
            warmup: 0,
            sessions_opened: 1,
            initialize: Latency::default(),
            completed: 2,
            ok: 2,
            errors: 0,
            error_kinds: BTreeMap::new(),
            timed_out: false,
            not_sent: 0,
            duration_s: 1.0,
            throughput_rps: 2.0,
            latency: Latency::default(),
            replies_json: 2,
            replies_sse: 0,
            reconnects: 0,
            client_cpu_us_per_call: 1.0,
            sessions_deleted: 1,
            server_cpu_us_per_call: None,
        };
        assert!(report.passed());
        assert!(report.to_human().contains("PASS"));
        report.errors = 1;
        assert!(!report.passed());
        report.errors = 0;
        report.timed_out = true;
        assert!(!report.passed());
        report.timed_out = false;
        report.sessions_opened = 0;
        assert!(!report.passed());
        let json: Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["ok"], 2);
        assert!(json.get("server_cpu_us_per_call").is_none());
    }
}
