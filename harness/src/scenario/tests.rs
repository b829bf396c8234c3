use super::*;
use std::path::Path;

#[track_caller]
fn parse(text: &str) -> Scenario {
    parse_scenario(text, Path::new("scenarios/x.toml"), "x".into()).unwrap()
}

#[track_caller]
fn parse_err(text: &str) -> String {
    parse_scenario(text, Path::new("scenarios/x.toml"), "x".into())
        .unwrap_err()
        .to_string()
}

const MINIMAL: &str = r#"
name = "ping"
tags = ["2025-06-18", "SHOULD", "core"]
profile = "live"

[[step]]
name = "ping"
send.json = '{"jsonrpc":"2.0","id":"${i}","method":"ping"}'
expect.status = [200, "2xx"]
expect.response = '{"id": 1, "result": {}}'
"#;

#[test]
fn parses_a_minimal_scenario() {
    let s = parse(MINIMAL);
    assert_eq!(s.level, Level::Should);
    assert_eq!(s.profile, Profile::Live);
    assert_eq!(s.steps.len(), 1);
    let step = &s.steps[0];
    assert_eq!(step.location, "scenarios/x.toml:6");
    let Action::Request { send, .. } = &step.action else {
        panic!("not a request")
    };
    assert_eq!(send.method, "POST");
    assert!(matches!(&send.body, Body::Json(v) if v["id"] == "${i}"));
    let status = step.expect.status.as_ref().unwrap();
    assert!(status.accepts(200) && status.accepts(204) && !status.accepts(400));
}

#[test]
fn bare_placeholders_in_json_are_quoted() {
    assert_eq!(
        quote_bare_placeholders(r#"{"id": ${i}, "s": "a${x}b", "q": "\"${y}"}"#),
        r#"{"id": "${i}", "s": "a${x}b", "q": "\"${y}"}"#
    );
    let s = parse(
        r#"
[[step]]
send.json = '{"jsonrpc":"2.0","id":${i},"method":"ping"}'
"#,
    );
    let Action::Request { send, .. } = &s.steps[0].action else {
        panic!()
    };
    assert!(matches!(&send.body, Body::Json(v) if v["id"] == "${i}"));
}

/// `[reference.*]` describes the repository's own reference deployment: the harness accepts it
/// and the scenario it loads is the same as without it; it must still be a table.
#[test]
fn the_reference_table_is_accepted_and_ignored() {
    let with = format!(
        "{MINIMAL}\n[reference.gateway]\nenv = {{ SESSION_IDLE_TTL_SECS = 2, MODE = \"x\" }}\n"
    );
    let (plain, referenced) = (parse(MINIMAL), parse(&with));
    assert_eq!(format!("{referenced:?}"), format!("{plain:?}"));
    let err = parse_err(&format!("reference = 3\n{MINIMAL}"));
    assert!(
        err.starts_with("scenarios/x.toml:1:") && err.contains("expected a map"),
        "{err}"
    );
}

#[test]
fn toml_syntax_errors_carry_line_and_column() {
    let err = parse_err("name = \"x\"\n\n[[step]\n");
    assert!(err.starts_with("scenarios/x.toml:3:"), "{err}");
}

#[test]
fn unknown_keys_are_rejected_with_their_line() {
    let err = parse_err("name = \"x\"\n[[step]]\nsend.method = \"GET\"\nexpect.stauts = 200\n");
    assert!(err.starts_with("scenarios/x.toml:4:"), "{err}");
    assert!(err.contains("stauts"), "{err}");
}

#[test]
fn invalid_json_reports_the_json_line() {
    let text = "[[step]]\nsend.json = '''\n{\"jsonrpc\": \"2.0\",\n \"id\": 1,,\n}\n'''\n";
    let err = parse_err(text);
    assert!(err.starts_with("scenarios/x.toml:4:"), "{err}");
    assert!(err.contains("send.json is not valid JSON"), "{err}");
}

#[test]
fn semantic_errors_point_at_the_step() {
    let err =
        parse_err("[[step]]\nname = \"a\"\nsend.method = \"GET\"\n\n[[step]]\nread = \"nope\"\n");
    assert_eq!(
        err,
        "scenarios/x.toml:5:1: step \"a\" uses stream \"nope\" before a step opens it with stream = \"nope\""
            .replace("\"a\"", "\"read stream nope\"")
    );
    let err = parse_err("[[step]]\nsend.method = \"GET\"\nwait = \"1s\"\n");
    assert!(
        err.contains("exactly one of send, read, close, wait"),
        "{err}"
    );
    let err = parse_err("[[step]]\nsend.method = \"GET\"\nexpect.status = \"6xx\"\n");
    assert!(err.contains("bad status class"), "{err}");
    let err =
        parse_err("[[step]]\nsend.method = \"GET\"\nexpect.json = '{\"a\": {\"$regx\": 1}}'\n");
    assert!(err.contains("unknown matcher operator $regx"), "{err}");
    let err = parse_err("tags = [\"MUST\", \"MAY\"]\n[[step]]\nwait = \"1s\"\n");
    assert!(
        err.starts_with("scenarios/x.toml:1:17: more than one level tag"),
        "{err}"
    );
    let err = parse_err("[[step]]\nwait = \"soon\"\n");
    assert!(err.contains("bad duration"), "{err}");
    let err = parse_err("name = \"no steps\"\n");
    assert!(err.contains("at least one [[step]]"), "{err}");
    let err = parse_err(
        "[[step]]\nsend.method = \"POST\"\nconcurrency = 4\ncapture.x = { header = \"a\" }\n",
    );
    assert!(err.contains("concurrent step cannot"), "{err}");
}

#[test]
fn sse_patterns_and_captures() {
    let s = parse(
        r#"
[[step]]
stream = "call"
send.json = '{"jsonrpc":"2.0","id":1,"method":"tools/call"}'
expect.sse = [
  { id = { "$any" = true }, data = "" },
  "...",
  { json = '{"id": 1}', optional = true },
]
capture.req = { sse = '{"method": "sampling/createMessage"}', path = "id" }
capture.meta = { header = "WWW-Authenticate", regex = 'resource_metadata="([^"]+)"' }

[[step]]
read = "call"
expect.sse_none = [{ json = '{"id": 1}' }]
"#,
    );
    let sse = s.steps[0].expect.sse.as_ref().unwrap();
    assert_eq!(sse.len(), 3);
    assert!(matches!(sse[1], SsePattern::Gap));
    assert!(matches!(&sse[2], SsePattern::Event(p) if p.optional));
    assert_eq!(s.steps[0].captures.len(), 2);
    assert_eq!(s.steps[1].expect.sse_none.len(), 1);
}

#[test]
fn includes_expand_steps_and_default_vars() {
    let dir = std::env::temp_dir().join(format!("harness-include-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("_lib")).unwrap();
    std::fs::write(
        dir.join("_lib/init.toml"),
        "[vars]\nversion = \"2025-06-18\"\n\n[[step]]\nname = \"init\"\nsend.json = '{\"v\": \"${version}\"}'\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("a.toml"),
        "[vars]\nversion = \"2025-11-25\"\n\n[[step]]\ninclude = \"_lib/init.toml\"\n\n[[step]]\nwait = \"1ms\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("_lib/ignored.toml"), "not = [valid").unwrap();
    let scenarios = load_dir(&dir).unwrap();
    assert_eq!(scenarios.len(), 1);
    let s = &scenarios[0];
    assert_eq!(s.id, "a");
    assert_eq!(s.steps.len(), 2);
    assert_eq!(s.steps[0].name, "init");
    assert!(
        s.steps[0].location.ends_with("_lib/init.toml:4"),
        "{}",
        s.steps[0].location
    );
    assert_eq!(s.steps[1].index, 2);
    assert_eq!(s.vars["version"], "2025-11-25");
    std::fs::write(
        dir.join("b.toml"),
        "[[step]]\ninclude = \"_lib/init.toml\"\nname = \"x\"\n",
    )
    .unwrap();
    let err = load_dir(&dir).unwrap_err().to_string();
    assert!(
        err.contains("b.toml:1:1: a step with `include` may not have other keys"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn undefined_variables_are_listed() {
    let s = parse(
        r#"
needs_vars = ["ttl"]
[defaults]
headers = { "Mcp-Session-Id" = "${session}" }
[[step]]
send.path = "${mcp_path}?x=${x}"
capture.session = { header = "Mcp-Session-Id" }
[[step]]
wait = "${ttl}"
"#,
    );
    assert_eq!(undefined_vars(&s, &Vars::new()), vec!["ttl", "x"]);
    let mut extra = Vars::new();
    extra.insert("ttl".into(), "1s".into());
    extra.insert("x".into(), 1.into());
    assert!(undefined_vars(&s, &extra).is_empty());
}

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms").unwrap().as_millis(), 500);
    assert_eq!(parse_duration("1.5s").unwrap().as_millis(), 1500);
    assert_eq!(parse_duration("2m").unwrap().as_secs(), 120);
    assert_eq!(parse_duration("3").unwrap().as_secs(), 3);
    assert!(parse_duration("-1s").is_err());
}

#[test]
fn ids_are_relative_paths() {
    assert_eq!(
        scenario_id(
            Path::new("scenarios"),
            Path::new("scenarios/session/delete.toml")
        ),
        "session/delete"
    );
}

#[test]
fn ids_are_relative_to_the_enclosing_scenarios_folder() {
    let base = std::env::temp_dir().join(format!("harness-ids-{}", std::process::id()));
    let area = base.join("scenarios/session");
    std::fs::create_dir_all(&area).unwrap();
    std::fs::write(area.join("delete.toml"), "[[step]]\nwait = \"1ms\"\n").unwrap();
    let by_dir = load_paths(std::slice::from_ref(&area)).unwrap();
    let by_root = load_paths(&[base.join("scenarios")]).unwrap();
    let by_file = load_paths(&[area.join("delete.toml")]).unwrap();
    for loaded in [&by_dir, &by_root, &by_file] {
        assert_eq!(loaded[0].id, "session/delete");
    }
    let other = base.join("elsewhere");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("x.toml"), "[[step]]\nwait = \"1ms\"\n").unwrap();
    assert_eq!(load_paths(std::slice::from_ref(&other)).unwrap()[0].id, "x");
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn modern_helper_keys_and_base64_headers() {
    let s = parse(
        r#"
tags = ["2026-07-28", "dual-era", "2025-11-25"]
[defaults]
modern = true
[[step]]
send.json = '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
send.meta_omit = ["clientCapabilities"]
send.headers = { "Mcp-Name" = { base64 = "x${i}" }, "X-Plain" = "p" }
[[step]]
send.modern = false
send.json = '{"jsonrpc":"2.0","id":2,"method":"initialize"}'
"#,
    );
    assert!(s.modern);
    assert!(s.concerns_modern_era());
    assert_eq!(s.version_tags(), ["2026-07-28", "2025-11-25"]);
    let Action::Request { send, .. } = &s.steps[0].action else {
        panic!()
    };
    assert_eq!(send.modern, None, "follows [defaults]");
    assert_eq!(send.meta_omit, ["clientCapabilities"]);
    assert_eq!(
        send.headers,
        [
            (
                "Mcp-Name".to_string(),
                HeaderValue {
                    template: "x${i}".into(),
                    base64: true
                }
            ),
            (
                "X-Plain".to_string(),
                HeaderValue {
                    template: "p".into(),
                    base64: false
                }
            )
        ]
    );
    let Action::Request { send, .. } = &s.steps[1].action else {
        panic!()
    };
    assert_eq!(send.modern, Some(false));
    assert!(!parse(MINIMAL).concerns_modern_era());
}

#[test]
fn modern_helper_errors_name_the_line() {
    let err = parse_err(
        "[[step]]\nsend.json = '{\"method\":\"x\"}'\nsend.meta_omit = [\"clientCaps\"]\n",
    );
    assert!(
        err.starts_with("scenarios/x.toml:1:1: send.meta_omit: unknown _meta field \"clientCaps\""),
        "{err}"
    );
    let err = parse_err("[[step]]\nsend.modern = false\nsend.meta_omit = [\"clientInfo\"]\n");
    assert!(
        err.contains("send.meta_omit needs the modern helper"),
        "{err}"
    );
    let err = parse_err("[[step]]\nsend.headers = { A = { hex = \"x\" } }\n");
    assert!(
        err.contains("send.headers.A: a header table is { base64"),
        "{err}"
    );
    let err = parse_err("[[step]]\nsend.headers = { A = 3 }\n");
    assert!(
        err.contains("send.headers.A: a header value is a string"),
        "{err}"
    );
}

/// Found by fuzz/scenario_toml: a bare CR made an error with an empty message.
#[test]
fn every_toml_error_says_something() {
    for text in ["spec = [\"a\",\r\"b\"]\n", "a = 1\r", "\r"] {
        match parse_scenario(text, Path::new("scenarios/x.toml"), "x".into()) {
            Err(ScenarioError::Invalid { message, line, .. }) => {
                assert!(!message.is_empty(), "{text:?}");
                assert!(line >= 1);
            }
            other => panic!("{text:?}: {other:?}"),
        }
    }
}

/// Found by fuzz/scenario_toml: serde_json reports column 0 for an error at a line's start;
/// positions are 1-based.
#[test]
fn json_errors_at_a_line_start_have_column_one() {
    let text = MINIMAL.replace(
        r#"send.json = '{"jsonrpc":"2.0","id":"${i}","method":"ping"}'"#,
        "send.json = '''\n{\"a\": \"x\n\"}'''",
    );
    match parse_scenario(&text, Path::new("scenarios/x.toml"), "x".into()) {
        Err(ScenarioError::Invalid { col, message, .. }) => {
            assert!(message.contains("not valid JSON"), "{message}");
            assert!(col >= 1, "col {col}: {message}");
        }
        other => panic!("{other:?}"),
    }
}

/// An include that names a device or a huge file is refused with a message instead of being read
/// without end.
#[test]
fn an_include_of_an_endless_file_is_refused() {
    let err = parse_err("[[step]]\ninclude = \"/dev/zero\"\n");
    assert!(err.contains("cannot read include /dev/zero"), "{err}");
    assert!(err.contains("larger than"), "{err}");
}
