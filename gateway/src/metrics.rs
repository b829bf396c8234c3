//! Prometheus metrics in text format, without a metrics dependency: counters, gauges and
//! histograms over atomics, with label values drawn from small fixed sets so cardinality stays
//! bounded whatever clients send.
//!
//! One process-wide registry ([`METRICS`]): metrics describe the process, and plumbing a handle
//! through every layer would cost more than it explains.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    300.0,
];

/// Counters keyed by their label set, rendered in order.
#[derive(Default)]
pub struct Family(Mutex<BTreeMap<String, u64>>);

impl Family {
    pub fn inc(&self, labels: &[(&str, &str)]) {
        self.add(labels, 1);
    }

    pub fn add(&self, labels: &[(&str, &str)], n: u64) {
        let key = render_labels(labels);
        *self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default() += n;
    }

    pub fn get(&self, labels: &[(&str, &str)]) -> u64 {
        let key = render_labels(labels);
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    fn render(&self, out: &mut String, name: &str) {
        for (labels, value) in self.0.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    }
}

pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|bound| secs <= *bound) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str) {
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

#[derive(Default)]
pub struct Metrics {
    pub http_requests: Family,
    pub http_duration: Histogram,
    pub rpc_calls: Family,
    pub rpc_duration: Histogram,
    pub sse_streams_open: AtomicU64,
    /// Bytes of request streams kept for `Last-Event-ID` (bounded in total by SSE_REPLAY_TOTAL_BYTES).
    pub sse_replay_bytes: AtomicU64,
    /// Client connections open, and those closed at once because MAX_CONNECTIONS were open.
    pub connections_open: AtomicU64,
    pub connections_refused: AtomicU64,
    pub children_spawned: AtomicU64,
    pub children_exited: Family,
    pub auth_outcomes: Family,
    pub rate_limited: Family,
    pub whoami_cache: Family,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

/// Values read at scrape time from their owners.
pub struct Gauges {
    pub sessions_active: usize,
    pub children_active: usize,
    /// Identities with sessionless (2026-07-28) children, and those children.
    pub pool_identities: usize,
    pub pool_children: usize,
    /// Sessionless calls waiting for the client's `inputResponses`.
    pub mrtr_pending: usize,
    pub draining: bool,
}

impl Metrics {
    /// The whole registry in Prometheus text format (version 0.0.4).
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let help = |out: &mut String, name: &str, kind: &str, text: &str| {
            let _ = writeln!(out, "# HELP {name} {text}\n# TYPE {name} {kind}");
        };
        help(
            &mut out,
            "mcp_gateway_http_requests_total",
            "counter",
            "HTTP requests by method, route and status.",
        );
        self.http_requests
            .render(&mut out, "mcp_gateway_http_requests_total");
        help(
            &mut out,
            "mcp_gateway_http_request_duration_seconds",
            "histogram",
            "Time to the response head, all routes.",
        );
        self.http_duration
            .render(&mut out, "mcp_gateway_http_request_duration_seconds");
        help(&mut out, "mcp_gateway_jsonrpc_calls_total", "counter", "JSON-RPC requests forwarded to children, by method, outcome (result, error, timeout, child_exit, cancelled) and era (legacy: a session; 2026-07-28: sessionless).");
        self.rpc_calls
            .render(&mut out, "mcp_gateway_jsonrpc_calls_total");
        help(
            &mut out,
            "mcp_gateway_jsonrpc_call_duration_seconds",
            "histogram",
            "Time from forwarding a request to the child's response.",
        );
        self.rpc_duration
            .render(&mut out, "mcp_gateway_jsonrpc_call_duration_seconds");
        help(
            &mut out,
            "mcp_gateway_sessions_active",
            "gauge",
            "Sessions alive now.",
        );
        let _ = writeln!(
            out,
            "mcp_gateway_sessions_active {}",
            gauges.sessions_active
        );
        help(
            &mut out,
            "mcp_gateway_sse_streams_open",
            "gauge",
            "SSE responses being written now (POST and GET).",
        );
        let _ = writeln!(
            out,
            "mcp_gateway_sse_streams_open {}",
            self.sse_streams_open.load(Ordering::Relaxed)
        );
        help(
            &mut out,
            "mcp_gateway_sse_replay_bytes",
            "gauge",
            "Bytes of request streams kept for Last-Event-ID resumption.",
        );
        let _ = writeln!(
            out,
            "mcp_gateway_sse_replay_bytes {}",
            self.sse_replay_bytes.load(Ordering::Relaxed)
        );
        help(
            &mut out,
            "mcp_gateway_connections_open",
            "gauge",
            "Client connections open now.",
        );
        let _ = writeln!(
            out,
            "mcp_gateway_connections_open {}",
            self.connections_open.load(Ordering::Relaxed)
        );
        help(
            &mut out,
            "mcp_gateway_connections_refused_total",
            "counter",
            "Client connections closed at once because MAX_CONNECTIONS were open.",
        );
        let _ = writeln!(
            out,
            "mcp_gateway_connections_refused_total {}",
            self.connections_refused.load(Ordering::Relaxed)
        );
        help(
            &mut out,
            "mcp_gateway_children_active",
            "gauge",
            "Child processes running now.",
        );
        let _ = writeln!(
            out,
            "mcp_gateway_children_active {}",
            gauges.children_active
        );
        for (name, text, value) in [
            (
                "mcp_gateway_pool_identities",
                "Identities with sessionless (2026-07-28) children now.",
                gauges.pool_identities,
            ),
            (
                "mcp_gateway_pool_children",
                "Sessionless (2026-07-28) child processes running now (within children_active).",
                gauges.pool_children,
            ),
            (
                "mcp_gateway_mrtr_pending",
                "Sessionless calls waiting for the client's inputResponses (MRTR).",
                gauges.mrtr_pending,
            ),
        ] {
            help(&mut out, name, "gauge", text);
            let _ = writeln!(out, "{name} {value}");
        }
        help(
            &mut out,
            "mcp_gateway_children_spawned_total",
            "counter",
            "Child processes started.",
        );
        let _ = writeln!(
            out,
            "mcp_gateway_children_spawned_total {}",
            self.children_spawned.load(Ordering::Relaxed)
        );
        help(
            &mut out,
            "mcp_gateway_children_exited_total",
            "counter",
            "Child processes that ended, by reason (exit_status, signal, line_too_long).",
        );
        self.children_exited
            .render(&mut out, "mcp_gateway_children_exited_total");
        help(&mut out, "mcp_gateway_auth_total", "counter", "Authentication outcomes (success, missing_token, malformed_token, invalid_token, not_allowed, coda_unavailable).");
        self.auth_outcomes
            .render(&mut out, "mcp_gateway_auth_total");
        help(
            &mut out,
            "mcp_gateway_rate_limited_total",
            "counter",
            "Requests refused with 429, by limiter (ip, identity, discovery).",
        );
        self.rate_limited
            .render(&mut out, "mcp_gateway_rate_limited_total");
        help(
            &mut out,
            "mcp_gateway_whoami_cache_total",
            "counter",
            "Token checks answered from the cache (hit) or by asking Coda (miss).",
        );
        self.whoami_cache
            .render(&mut out, "mcp_gateway_whoami_cache_total");
        help(
            &mut out,
            "mcp_gateway_draining",
            "gauge",
            "1 while shutting down.",
        );
        let _ = writeln!(out, "mcp_gateway_draining {}", u8::from(gauges.draining));
        out
    }
}

/// A JSON-RPC method as a label: the MCP methods by name, anything else as `other`.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 22] = [
        "initialize",
        "ping",
        "server/discover",
        "subscriptions/listen",
        "tools/list",
        "tools/call",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "logging/setLevel",
        "completion/complete",
        "tasks/get",
        "tasks/result",
        "tasks/cancel",
        "tasks/list",
        "sampling/createMessage",
        "elicitation/create",
        "roots/list",
    ];
    KNOWN
        .iter()
        .find(|known| **known == method)
        .copied()
        .unwrap_or("other")
}

fn render_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut out = String::from("{");
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let value = value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(out, "{name}=\"{value}\"");
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let metrics = Metrics::default();
        metrics
            .http_requests
            .inc(&[("method", "POST"), ("route", "mcp"), ("status", "200")]);
        metrics
            .http_requests
            .inc(&[("method", "POST"), ("route", "mcp"), ("status", "200")]);
        metrics.rpc_duration.observe(Duration::from_micros(700));
        let text = metrics.render(&Gauges {
            sessions_active: 3,
            children_active: 2,
            pool_identities: 1,
            pool_children: 1,
            mrtr_pending: 0,
            draining: false,
        });
        assert!(text.contains(
            "mcp_gateway_http_requests_total{method=\"POST\",route=\"mcp\",status=\"200\"} 2"
        ));
        assert!(text.contains("mcp_gateway_jsonrpc_call_duration_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("mcp_gateway_jsonrpc_call_duration_seconds_count 1"));
        assert!(text.contains("mcp_gateway_sessions_active 3"));
        assert_eq!(method_label("tools/call"), "tools/call");
        assert_eq!(method_label("x/../evil\"label"), "other");
    }
}
