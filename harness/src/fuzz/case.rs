//! One fuzz case: an HTTP request built from a well-formed MCP request and then mutated
//! (headers, JSON structure, types, ids, Unicode, batches, session ids, event ids), bounded in
//! size; how it prints; and the smaller variants the shrinker tries.

use serde_json::{json, Value};

use super::rng::Rng;

/// Largest body a case sends, so every run stays bounded whatever the mutations.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Post,
    Get,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Get => "GET",
            Method::Delete => "DELETE",
        }
    }
}

/// A header value: literal bytes, or a value filled in when the case is sent (so the case
/// prints without the token and replays against fresh sessions).
#[derive(Clone, Debug, PartialEq)]
pub enum HeaderVal {
    Bytes(Vec<u8>),
    /// `Bearer <the token from --token-env>`.
    Token,
    /// The id of the session this case runs on.
    OwnSession,
    /// The id of the other live fuzz session.
    OtherSession,
    /// The protocol version the session negotiated.
    Version,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Case {
    pub method: Method,
    pub headers: Vec<(String, HeaderVal)>,
    pub body: Option<Vec<u8>>,
    /// Copies sent at the same time (concurrent DELETEs).
    pub copies: usize,
}

impl Case {
    /// The JSON-RPC ids a server may answer this request with (those of the body's requests).
    pub fn request_ids(&self) -> Vec<Value> {
        let Some(body) = &self.body else {
            return Vec::new();
        };
        let members = match serde_json::from_slice::<Value>(body) {
            Ok(Value::Array(items)) => items,
            Ok(item) => vec![item],
            Err(_) => return Vec::new(),
        };
        members
            .iter()
            .filter_map(|m| m.get("id"))
            .filter(|id| id.is_string() || id.is_i64() || id.is_u64())
            .cloned()
            .collect()
    }

    /// The request as text (the token never appears: it prints as `Bearer $TOKEN`).
    pub fn render(&self) -> String {
        let mut out = format!("{} (x{})\n", self.method.as_str(), self.copies);
        for (name, value) in &self.headers {
            let value = match value {
                HeaderVal::Bytes(b) => escape(b, 200),
                HeaderVal::Token => "Bearer $TOKEN".into(),
                HeaderVal::OwnSession => "<this session's id>".into(),
                HeaderVal::OtherSession => "<another live session's id>".into(),
                HeaderVal::Version => "<negotiated protocol version>".into(),
            };
            out.push_str(&format!("{name}: {value}\n"));
        }
        if let Some(body) = &self.body {
            out.push('\n');
            out.push_str(&escape(body, 2000));
            out.push('\n');
        }
        out
    }

    /// Smaller variants, most reducing first: without each header, without the body, and the
    /// body with one JSON member (or batch element) fewer.
    pub fn smaller(&self) -> Vec<Case> {
        let mut out = Vec::new();
        for i in 0..self.headers.len() {
            let mut c = self.clone();
            c.headers.remove(i);
            out.push(c);
        }
        if self.copies > 1 {
            let mut c = self.clone();
            c.copies = 1;
            out.push(c);
        }
        if let Some(body) = &self.body {
            let mut c = self.clone();
            c.body = None;
            out.push(c);
            match serde_json::from_slice::<Value>(body) {
                Ok(value) => {
                    for smaller in smaller_values(&value) {
                        let mut c = self.clone();
                        c.body = Some(serde_json::to_vec(&smaller).unwrap_or_default());
                        out.push(c);
                    }
                }
                Err(_) if body.len() > 1 => {
                    let mut c = self.clone();
                    c.body = Some(body[..body.len() / 2].to_vec());
                    out.push(c);
                }
                Err(_) => {}
            }
        }
        out
    }
}

/// `value` with one member, element or nesting level fewer (top level and one level down).
fn smaller_values(value: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    match value {
        Value::Array(items) => {
            for i in 0..items.len() {
                let mut v = items.clone();
                v.remove(i);
                out.push(Value::Array(v));
            }
            if items.len() == 1 {
                out.push(items[0].clone());
            }
        }
        Value::Object(map) => {
            for key in map.keys() {
                let mut m = map.clone();
                m.remove(key);
                out.push(Value::Object(m));
            }
            for (key, inner) in map {
                for smaller in smaller_values_shallow(inner) {
                    let mut m = map.clone();
                    m.insert(key.clone(), smaller);
                    out.push(Value::Object(m));
                }
            }
        }
        _ => {}
    }
    out
}

fn smaller_values_shallow(value: &Value) -> Vec<Value> {
    match value {
        Value::Object(map) if !map.is_empty() => map
            .keys()
            .map(|k| {
                let mut m = map.clone();
                m.remove(k);
                Value::Object(m)
            })
            .collect(),
        Value::Array(items) if !items.is_empty() => {
            vec![Value::Array(items[..items.len() / 2].to_vec())]
        }
        Value::String(s) if !s.is_empty() => vec![Value::String(String::new())],
        _ => Vec::new(),
    }
}

fn escape(bytes: &[u8], max: usize) -> String {
    let text: String = String::from_utf8_lossy(&bytes[..bytes.len().min(max)])
        .chars()
        .flat_map(|c| {
            if c.is_control() && c != '\n' {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if bytes.len() > max {
        format!("{text}... ({} bytes)", bytes.len())
    } else {
        text
    }
}

/// What the generator knows of the run so far.
pub struct Context<'a> {
    pub case_no: u64,
    /// SSE event ids seen in answers, for `Last-Event-ID` replays.
    pub event_ids: &'a [String],
}

const ODD_STRINGS: [&str; 12] = [
    "",
    "\u{0}",
    "\u{2028}\u{2029}",
    "\u{feff}ping",
    "\u{202e}gnip",
    "\u{1f600}",
    "e\u{301}",
    "\\",
    "\"",
    "tools/call\u{0}",
    "PING",
    " ping ",
];

fn odd_value(rng: &mut Rng) -> Value {
    match rng.below(12) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(1.5),
        3 => json!(-1),
        4 => json!(u64::MAX),
        5 => json!(i64::MIN),
        6 => json!([]),
        7 => json!({}),
        8 => json!("x".repeat(rng.below(4096))),
        9 => json!(rng.pick(&ODD_STRINGS)),
        10 => json!(1e300),
        _ => json!([1, "a", null]),
    }
}

/// A well-formed message to start from; its id names the case (`fz-<case>-<n>`).
fn base_message(rng: &mut Rng, case_no: u64, n: usize) -> Value {
    let id = format!("fz-{case_no}-{n}");
    match rng.below(8) {
        0 => json!({"jsonrpc":"2.0","id":id,"method":"ping"}),
        1 => json!({"jsonrpc":"2.0","id":id,"method":"tools/list","params":{}}),
        2 => {
            json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"echo","arguments":{"message":format!("m-{case_no}")}}})
        }
        3 => {
            json!({"jsonrpc":"2.0","id":id,"method":"resources/list","params":{"_meta":{"progressToken":id}}})
        }
        4 => json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        5 => json!({"jsonrpc":"2.0","id":id,"result":{}}),
        6 => {
            json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"fuzz","version":"0"}}})
        }
        _ => json!({"jsonrpc":"2.0","id":id,"method":"no/such/method","params":{"x":1}}),
    }
}

/// Changes one part of a message: a member's type, the id, a string's Unicode, a member more
/// or fewer, or nesting.
fn mutate_message(rng: &mut Rng, message: &mut Value) {
    let Value::Object(map) = message else {
        return;
    };
    match rng.below(7) {
        0 => {
            let key = *rng.pick(&["jsonrpc", "id", "method", "params", "result", "error"]);
            map.insert(key.into(), odd_value(rng));
        }
        1 => {
            let id = match rng.below(5) {
                0 => json!(u64::MAX),
                1 => serde_json::from_str("123456789012345678901234567890").unwrap_or(Value::Null),
                2 => json!(-9_007_199_254_740_993i64),
                3 => json!("i".repeat(1 + rng.below(8192))),
                _ => json!(format!("fz-{}", rng.pick(&ODD_STRINGS))),
            };
            map.insert("id".into(), id);
        }
        2 => {
            map.insert("method".into(), json!(rng.pick(&ODD_STRINGS)));
        }
        3 => {
            let keys: Vec<String> = map.keys().cloned().collect();
            if !keys.is_empty() {
                map.remove(&keys[rng.below(keys.len())]);
            }
        }
        4 => {
            map.insert(format!("x{}", rng.below(1000)), odd_value(rng));
        }
        5 => {
            let depth = 1 + rng.below(300);
            let mut nested = json!(0);
            for _ in 0..depth {
                nested = if rng.chance(50) {
                    json!([nested])
                } else {
                    json!({ "a": nested })
                };
            }
            map.insert("params".into(), nested);
        }
        _ => {
            map.insert(
                "params".into(),
                json!({ "name": rng.pick(&ODD_STRINGS), "arguments": odd_value(rng) }),
            );
        }
    }
}

fn standard_headers(method: Method) -> Vec<(String, HeaderVal)> {
    let mut headers = vec![
        ("authorization".to_string(), HeaderVal::Token),
        ("mcp-session-id".to_string(), HeaderVal::OwnSession),
        ("mcp-protocol-version".to_string(), HeaderVal::Version),
    ];
    match method {
        Method::Post => {
            headers.push((
                "accept".into(),
                HeaderVal::Bytes(b"application/json, text/event-stream".to_vec()),
            ));
            headers.push((
                "content-type".into(),
                HeaderVal::Bytes(b"application/json".to_vec()),
            ));
        }
        Method::Get => headers.push((
            "accept".into(),
            HeaderVal::Bytes(b"text/event-stream".to_vec()),
        )),
        Method::Delete => {}
    }
    headers
}

const ODD_HEADER_VALUES: [&[u8]; 14] = [
    b"",
    b"*/*",
    b"text/html",
    b"application/json;charset=utf-16",
    b"APPLICATION/JSON",
    b"text/event-stream;q=0",
    b"application/json, text/event-stream, application/json",
    b"\xff\xfe obs-text",
    b"Bearer",
    b"Basic dXNlcjpwYXNz",
    b"2024-11-05",
    b"1999-01-01",
    b"0",
    b"   ",
];

fn mutate_headers(rng: &mut Rng, headers: &mut Vec<(String, HeaderVal)>, ctx: &Context<'_>) {
    match rng.below(7) {
        0 if !headers.is_empty() => {
            headers.remove(rng.below(headers.len()));
        }
        1 if !headers.is_empty() => {
            let i = rng.below(headers.len());
            headers[i].1 = HeaderVal::Bytes(rng.pick(&ODD_HEADER_VALUES).to_vec());
        }
        2 => {
            // A stray session id: unknown, malformed, or another session's.
            let value = match rng.below(5) {
                0 => HeaderVal::OtherSession,
                1 => HeaderVal::Bytes(format!("{:032x}", rng.next_u64()).into_bytes()),
                2 => HeaderVal::Bytes(b"../../etc/passwd".to_vec()),
                3 => HeaderVal::Bytes(vec![b'a'; 1 + rng.below(4000)]),
                _ => HeaderVal::Bytes("\u{e9}t\u{e9}".as_bytes().to_vec()),
            };
            set(headers, "mcp-session-id", value);
        }
        3 => {
            // A replayed or made-up event id.
            let value = if !ctx.event_ids.is_empty() && rng.chance(70) {
                rng.pick(ctx.event_ids).clone()
            } else {
                (*rng.pick(&[
                    "0-0",
                    "1-18446744073709551615",
                    "x-y",
                    "-",
                    "99-1.5",
                    "1-0.999999",
                ]))
                .to_string()
            };
            headers.push(("last-event-id".into(), HeaderVal::Bytes(value.into_bytes())));
        }
        4 => {
            headers.push((
                "accept".into(),
                HeaderVal::Bytes(rng.pick(&ODD_HEADER_VALUES).to_vec()),
            ));
        }
        5 => {
            let origin = *rng.pick(&[
                "http://evil.example.com",
                "null",
                "http://127.0.0.1:1",
                "http://localhost.evil.com",
            ]);
            headers.push((
                "origin".into(),
                HeaderVal::Bytes(origin.as_bytes().to_vec()),
            ));
        }
        _ => {
            let name = *rng.pick(&["mcp-protocol-version", "content-type", "authorization"]);
            set(
                headers,
                name,
                HeaderVal::Bytes(rng.pick(&ODD_HEADER_VALUES).to_vec()),
            );
        }
    }
}

fn set(headers: &mut Vec<(String, HeaderVal)>, name: &str, value: HeaderVal) {
    headers.retain(|(n, _)| n != name);
    headers.push((name.to_string(), value));
}

/// The next case of the run.
pub fn generate(rng: &mut Rng, ctx: &Context<'_>) -> Case {
    let method = match rng.below(10) {
        0 | 1 => Method::Get,
        2 => Method::Delete,
        _ => Method::Post,
    };
    let mut headers = standard_headers(method);
    let mut copies = 1;
    if method == Method::Delete && rng.chance(60) {
        copies = 2 + rng.below(3);
    }
    let body = (method == Method::Post).then(|| {
        let body = if rng.chance(40) {
            let n = 1 + rng.below(4);
            let mut items: Vec<Value> = (0..n).map(|i| base_message(rng, ctx.case_no, i)).collect();
            for item in items.iter_mut() {
                if rng.chance(50) {
                    mutate_message(rng, item);
                }
            }
            if rng.chance(10) {
                items.clear();
            }
            serde_json::to_vec(&Value::Array(items)).unwrap_or_default()
        } else {
            let mut message = base_message(rng, ctx.case_no, 0);
            for _ in 0..rng.below(3) {
                mutate_message(rng, &mut message);
            }
            serde_json::to_vec(&message).unwrap_or_default()
        };
        match rng.below(10) {
            // Truncated JSON.
            0 | 1 => body[..rng.below(body.len().max(1))].to_vec(),
            // Raw bytes, invalid UTF-8 included.
            2 => (0..rng.below(64)).map(|_| rng.next_u64() as u8).collect(),
            _ => body,
        }
    });
    for _ in 0..rng.below(3) {
        mutate_headers(rng, &mut headers, ctx);
    }
    let body = body.map(|mut b| {
        b.truncate(MAX_BODY);
        b
    });
    Case {
        method,
        headers,
        body,
        copies,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_reproducible_and_bounded() {
        let ctx = Context {
            case_no: 1,
            event_ids: &["3-1".to_string()],
        };
        let a: Vec<Case> = (0..200)
            .scan(Rng::new(42), |r, _| Some(generate(r, &ctx)))
            .collect();
        let b: Vec<Case> = (0..200)
            .scan(Rng::new(42), |r, _| Some(generate(r, &ctx)))
            .collect();
        assert_eq!(a, b);
        assert!(a
            .iter()
            .all(|c| c.body.as_ref().is_none_or(|b| b.len() <= MAX_BODY)));
        assert!(a.iter().any(|c| c.method == Method::Get));
        assert!(a.iter().any(|c| c.copies > 1));
        assert!(!a[0].render().contains("mock-token"));
    }

    #[test]
    fn smaller_cases_drop_headers_and_members() {
        let case = Case {
            method: Method::Post,
            headers: vec![
                ("accept".into(), HeaderVal::Bytes(b"x".to_vec())),
                ("authorization".into(), HeaderVal::Token),
            ],
            body: Some(br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#.to_vec()),
            copies: 1,
        };
        let smaller = case.smaller();
        assert!(smaller.iter().any(|c| c.headers.len() == 1));
        assert!(smaller.iter().any(|c| c.body.is_none()));
        assert!(smaller
            .iter()
            .any(|c| c.body.as_deref() == Some(&br#"{"jsonrpc":"2.0","method":"ping"}"#[..])));
        assert_eq!(case.request_ids(), vec![json!(1)]);
        assert!(case.render().contains("Bearer $TOKEN"));
    }
}
