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
//! With `--era modern` (the 2026-07-28 era) there is no session: no initialize, no DELETE; every
//! call carries `params._meta` (`io.modelcontextprotocol/protocolVersion`, `clientCapabilities`,
//! `clientInfo`) and the mirrored headers `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name`,
//! and every reply must also carry `resultType: "complete"`. Call `i` goes to identity
//! `i mod K` (the K bearer tokens given, one when none), which loads a per-identity child pool.
//! Several tokens spread the legacy sessions over identities the same way.
//!
//! The whole run is bounded by `--timeout-secs`. Only successful calls enter the latency figures.
//! Request bodies are built from pre-serialized pieces into one buffer per request.

mod calls;
pub mod check;
pub mod cli;
pub mod conn;
pub mod selftest;
mod session;
pub mod stats;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::Uri;
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use calls::{phase, Tally};
use session::{delete_sessions, open_sessions, Session};
use stats::Latency;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// An `http://` MCP endpoint URL.
    pub target: url::Url,
    /// Bearer tokens: session `i` (legacy) or call `i` (modern) uses token `i mod K`; none sends
    /// no Authorization header.
    pub tokens: Vec<String>,
    /// Legacy sessions (initialize, session id) or the sessionless 2026-07-28 era.
    pub era: Era,
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
            tokens: Vec::new(),
            era: Era::Legacy,
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

/// The protocol era a run speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Era {
    /// Sessions: initialize, `Mcp-Session-Id`, DELETE at the end.
    Legacy,
    /// 2026-07-28: sessionless calls with `_meta` and mirrored headers.
    Modern,
}

/// The outcome of a run, rendered as text or JSON.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub target: String,
    pub era: Era,
    /// Distinct bearer tokens used (0: none sent).
    pub identities: usize,
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
            "load: {} tools/call {} on {} session(s), {} identities, era {:?}, concurrency {}, {} requests (+{} warm-up)\n",
            self.target,
            self.tool,
            self.sessions,
            self.identities,
            self.era,
            self.concurrency,
            self.requests,
            self.warmup
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
    #[error("a bearer token is not a valid header value")]
    Token,
}

/// Everything the workers share.
struct Plan {
    addr: SocketAddr,
    uri: Uri,
    /// Headers of identity `k` (the shared ones plus its Authorization, if any).
    bases: Vec<HeaderMap>,
    era: Era,
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
    let mut bases = Vec::with_capacity(config.tokens.len().max(1));
    for token in &config.tokens {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| LoadError::Token)?;
        value.set_sensitive(true);
        let mut with = base.clone();
        with.insert(hyper::header::AUTHORIZATION, value);
        bases.push(with);
    }
    if bases.is_empty() {
        bases.push(base);
    }
    let identities = config.tokens.len();
    let modern = config.era == Era::Modern;
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
    let mut middle = br#","method":"tools/call","params":{"#.to_vec();
    if modern {
        middle.extend_from_slice(&modern_meta());
        middle.push(b',');
    }
    middle.extend_from_slice(br#""name":"#);
    middle.extend_from_slice(&serde_json::to_vec(&config.tool).unwrap_or_default());
    middle.extend_from_slice(br#","arguments":"#);
    let plan = Arc::new(Plan {
        addr,
        uri,
        bases,
        era: config.era,
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
    let (sessions, init_latencies) = if modern {
        (modern_identities(&plan, &config.tool)?, Vec::new())
    } else {
        open_sessions(&plan, config, &ids, &mut tally).await
    };
    let session_count = if modern {
        sessions.len()
    } else {
        config.sessions
    };
    let sessions_opened = sessions.len();
    let mut init_latencies = init_latencies;
    let initialize = stats::summarize(&mut init_latencies);
    let sessions = Arc::new(sessions);

    let mut report = LoadReport {
        target: config.target.to_string(),
        era: config.era,
        identities,
        tool: config.tool.clone(),
        concurrency: config.concurrency,
        requests: config.requests,
        sessions: session_count,
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

    if !config.keep_sessions && !modern {
        report.sessions_deleted = delete_sessions(&plan, &sessions, config.concurrency).await;
    }
    report.errors = tally.error_count();
    report.error_kinds = tally.errors;
    Ok(report)
}

/// The compact `"_meta":{...}` member every 2026-07-28 call carries.
fn modern_meta() -> Vec<u8> {
    let key = |field: &str| format!("{}{field}", crate::modern::META_PREFIX);
    let mut meta = Map::new();
    meta.insert(
        key("protocolVersion"),
        Value::String(crate::modern::MODERN_VERSION.into()),
    );
    meta.insert(key("clientCapabilities"), Value::Object(Map::new()));
    meta.insert(
        key("clientInfo"),
        serde_json::json!({"name": "mcp-harness-load", "version": env!("CARGO_PKG_VERSION")}),
    );
    let mut out = br#""_meta":"#.to_vec();
    out.extend_from_slice(&serde_json::to_vec(&Value::Object(meta)).unwrap_or_default());
    out
}

/// The 2026-07-28 era has no session: one pseudo-session per identity, holding that identity's
/// headers plus the mirrored ones (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`).
fn modern_identities(plan: &Plan, tool: &str) -> Result<Vec<Session>, LoadError> {
    let name = HeaderValue::from_str(&crate::modern::encode_header_value(tool))
        .map_err(|e| LoadError::Target(format!("tool name: {e}")))?;
    Ok(plan
        .bases
        .iter()
        .map(|base| {
            let mut headers = base.clone();
            headers.insert(
                HeaderName::from_static(session::PROTOCOL_VERSION),
                HeaderValue::from_static(crate::modern::MODERN_VERSION),
            );
            headers.insert(
                HeaderName::from_static("mcp-method"),
                HeaderValue::from_static("tools/call"),
            );
            headers.insert(HeaderName::from_static("mcp-name"), name.clone());
            Session { id: None, headers }
        })
        .collect())
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

#[cfg(test)]
mod tests;
