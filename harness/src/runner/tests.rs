use super::*;
use crate::client::Request;
use crate::scenario::Action;

#[tokio::test(start_paused = true)]
async fn pacer_spaces_requests_and_paced_ones_more() {
    let mut config = RunConfig::new(
        url::Url::parse("http://127.0.0.1:1/mcp").unwrap(),
        Profile::Live,
    );
    config.min_interval = Duration::from_millis(250);
    config.paced_interval = Duration::from_secs(6);
    let pacer = Pacer::default();
    let start = Instant::now();
    pacer.wait(&config, true).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    pacer.wait(&config, false).await;
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    pacer.wait(&config, true).await;
    assert_eq!(start.elapsed(), Duration::from_secs(6));
    pacer.wait(&config, false).await;
    assert_eq!(start.elapsed(), Duration::from_millis(6250));
}

#[test]
fn live_and_local_defaults() {
    let url = url::Url::parse("http://127.0.0.1:1/mcp").unwrap();
    let live = RunConfig::new(url.clone(), Profile::Live);
    assert!(
        live.paced_interval >= Duration::from_secs(6),
        "under 10 per minute"
    );
    let local = RunConfig::new(url, Profile::Local);
    assert_eq!(local.paced_interval, Duration::ZERO);
}

/// The request a scenario's step `index` (0-based) would send, with `vars`.
fn built(text: &str, index: usize, vars: Vars) -> Request {
    let scenario =
        scenario::parse_scenario(text, std::path::Path::new("scenarios/x.toml"), "x".into())
            .unwrap();
    let config = RunConfig::new(
        url::Url::parse("http://127.0.0.1:1/mcp").unwrap(),
        Profile::Local,
    );
    let client = Client::new().unwrap();
    let pacer = Pacer::default();
    let run = ScenarioRun {
        config: &config,
        client: &client,
        pacer: &pacer,
        scenario: &scenario,
        vars: vars.clone(),
        streams: HashMap::new(),
        transcript: Transcript {
            lines: Vec::new(),
            secrets: Vec::new(),
        },
    };
    let step = &scenario.steps[index];
    let Action::Request { send, .. } = &step.action else {
        panic!("not a request step")
    };
    run.build_request(step, send, &vars).unwrap()
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

const MODERN: &str = r#"
[defaults]
modern = true
headers = { "MCP-Protocol-Version" = "from-defaults" }
[[step]]
send.json = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"café","arguments":{}}}'
[[step]]
send.json = '{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"test://static-text"}}'
send.meta_omit = ["protocolVersion"]
send.headers = { "mcp-method" = "tools/list", "Mcp-Name" = { base64 = "${name}" } }
send.omit_headers = ["MCP-Protocol-Version"]
[[step]]
send.modern = false
send.json = '{"jsonrpc":"2.0","id":3,"method":"tools/list"}'
[[step]]
send.raw = '{"jsonrpc":"2.0","id":4,"method":"tools/list"}'
"#;

#[test]
fn modern_helper_fills_meta_and_mirrors_headers() {
    let mut vars = Vars::new();
    vars.insert("name".into(), Value::from("test://static-text"));
    vars.insert(
        "client_capabilities".into(),
        serde_json::json!({"sampling": {}}),
    );
    let call = built(MODERN, 0, vars.clone());
    let body: Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
    let meta = &body["params"]["_meta"];
    assert_eq!(
        meta["io.modelcontextprotocol/protocolVersion"],
        "2026-07-28"
    );
    assert_eq!(
        meta["io.modelcontextprotocol/clientCapabilities"],
        serde_json::json!({"sampling": {}})
    );
    assert_eq!(body["params"]["arguments"], serde_json::json!({}));
    // The mirrored header replaces the [defaults] one; a non-ASCII name is encoded.
    assert_eq!(header(&call, "MCP-Protocol-Version"), Some("2026-07-28"));
    assert_eq!(header(&call, "Mcp-Method"), Some("tools/call"));
    assert_eq!(header(&call, "Mcp-Name"), Some("=?base64?Y2Fmw6k=?="));

    let read = built(MODERN, 1, vars.clone());
    let body: Value = serde_json::from_slice(read.body.as_ref().unwrap()).unwrap();
    assert!(body["params"]["_meta"]
        .get("io.modelcontextprotocol/protocolVersion")
        .is_none());
    assert_eq!(header(&read, "MCP-Protocol-Version"), None, "omitted");
    assert_eq!(
        header(&read, "Mcp-Method"),
        Some("tools/list"),
        "a step's header wins, whatever its case"
    );
    assert_eq!(
        read.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("mcp-method"))
            .count(),
        1
    );
    assert_eq!(
        header(&read, "Mcp-Name"),
        Some("=?base64?dGVzdDovL3N0YXRpYy10ZXh0?=")
    );

    let legacy = built(MODERN, 2, vars.clone());
    let body: Value = serde_json::from_slice(legacy.body.as_ref().unwrap()).unwrap();
    assert!(body.get("params").is_none(), "send.modern = false");
    assert_eq!(
        header(&legacy, "MCP-Protocol-Version"),
        Some("from-defaults")
    );
    assert_eq!(header(&legacy, "Mcp-Method"), None);

    let raw = built(MODERN, 3, vars);
    assert_eq!(
        raw.body.as_deref(),
        Some(&br#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#[..]),
        "raw bodies are sent as written"
    );
}

#[test]
fn transcripts_redact_tokens_everywhere() {
    let mut transcript = Transcript {
        lines: Vec::new(),
        secrets: vec!["s3cr3t".into()],
    };
    transcript.request(&Request {
        method: "POST".into(),
        url: url::Url::parse("http://h/mcp?access_token=s3cr3t").unwrap(),
        headers: vec![("Authorization".into(), "Bearer s3cr3t".into())],
        body: Some(b"{\"t\":\"s3cr3t\"}".to_vec()),
        title_case: false,
    });
    let text = transcript.tail(10).join("\n");
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(
        text.contains("> Authorization: Bearer <redacted>"),
        "{text}"
    );
    assert!(text.contains("access_token=<redacted>"), "{text}");
}
