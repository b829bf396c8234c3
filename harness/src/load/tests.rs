use super::calls::{format_u64, itoa_buffer};
use super::session::negotiated_version;
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
