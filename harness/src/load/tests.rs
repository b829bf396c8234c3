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
        era: Era::Legacy,
        identities: 0,
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

#[test]
fn modern_reply_must_be_complete() {
    use super::check::{check_response, Expect, ReplyError};
    let plain = serde_json::json!({"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"hi"}]}});
    assert_eq!(check_response(&plain, 3, &Expect::Text("hi")), Ok(()));
    assert_eq!(
        check_response(&plain, 3, &Expect::CompleteText("hi")),
        Err(ReplyError::NotComplete)
    );
    assert_eq!(
        check_response(&plain, 3, &Expect::CompleteResult),
        Err(ReplyError::NotComplete)
    );
    let mut complete = plain.clone();
    complete["result"]["resultType"] = serde_json::json!("complete");
    assert_eq!(
        check_response(&complete, 3, &Expect::CompleteText("hi")),
        Ok(())
    );
    assert_eq!(
        check_response(&complete, 3, &Expect::CompleteText("other")),
        Err(ReplyError::WrongText)
    );
    complete["result"]["resultType"] = serde_json::json!("incomplete");
    assert_eq!(
        check_response(&complete, 3, &Expect::CompleteResult),
        Err(ReplyError::NotComplete)
    );
}

#[test]
fn tokens_file_lines_and_mock_coda_json() {
    use super::cli::parse_tokens;
    assert_eq!(
        parse_tokens("# ids\nmock-a\n\n  mock-b  \n").unwrap(),
        vec!["mock-a", "mock-b"]
    );
    let json = r#"[{"token":"t1","loginId":"a@example.com","name":"A"},"t2"]"#;
    assert_eq!(parse_tokens(json).unwrap(), vec!["t1", "t2"]);
    assert!(parse_tokens("").is_err());
    assert!(parse_tokens("[]").is_err());
    assert!(parse_tokens(r#"[{"name":"no token"}]"#).is_err());
    assert!(parse_tokens(r#"["with space"]"#).is_err());
}

#[test]
fn modern_meta_carries_the_required_fields() {
    let text = String::from_utf8(modern_meta()).unwrap();
    let value: Value = serde_json::from_str(&format!("{{{text}}}")).unwrap();
    let meta = &value["_meta"];
    assert_eq!(
        meta["io.modelcontextprotocol/protocolVersion"],
        crate::modern::MODERN_VERSION
    );
    assert!(meta["io.modelcontextprotocol/clientCapabilities"].is_object());
    assert_eq!(
        meta["io.modelcontextprotocol/clientInfo"]["name"],
        "mcp-harness-load"
    );
}

async fn self_test_run(era: Era, tokens: Vec<String>) -> LoadReport {
    let server = selftest::TrivialServer::start().unwrap();
    let mut config =
        LoadConfig::new(url::Url::parse(&format!("http://{}/mcp", server.addr)).unwrap());
    config.concurrency = 3;
    config.requests = 90;
    config.warmup = 5;
    config.era = era;
    config.tokens = tokens;
    run(&config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_run_is_sessionless_and_checked() {
    let tokens: Vec<String> = (0..3).map(|i| format!("token-{i}")).collect();
    let report = self_test_run(Era::Modern, tokens).await;
    assert!(report.passed(), "{}", report.to_human());
    assert_eq!(report.era, Era::Modern);
    assert_eq!(report.identities, 3);
    // One pseudo-session per identity, none opened with initialize, none deleted.
    assert_eq!(report.sessions, 3);
    assert_eq!(report.initialize.count, 0);
    assert_eq!(report.sessions_deleted, 0);
    assert_eq!(report.ok, 90);
    // The same server answers legacy runs without resultType: a legacy run passes too.
    let legacy = self_test_run(Era::Legacy, Vec::new()).await;
    assert!(legacy.passed(), "{}", legacy.to_human());
    assert_eq!(legacy.sessions_deleted, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_token_is_refused_before_sending() {
    let mut config = LoadConfig::new(url::Url::parse("http://127.0.0.1:9/mcp").unwrap());
    config.tokens = vec!["bad\ntoken".into()];
    assert!(matches!(run(&config).await, Err(LoadError::Token)));
}
