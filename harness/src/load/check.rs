//! Checking one reply to a request: a JSON body or an SSE stream, the right id, and content.

use serde_json::Value;

/// What the result of a call must contain.
#[derive(Debug, Clone, PartialEq)]
pub enum Expect<'a> {
    /// A result (any) that is not a tool error (`isError: true`).
    AnyResult,
    /// A tool result whose first content item is text equal to this.
    Text(&'a str),
    /// As `AnyResult`, and (2026-07-28 era) the result carries `resultType: "complete"`.
    CompleteResult,
    /// As `Text`, and (2026-07-28 era) the result carries `resultType: "complete"`.
    CompleteText(&'a str),
}

/// Why a reply is not the expected answer. The `Display` form is the error kind counted in
/// reports, so it holds no per-request detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("unexpected Content-Type")]
    ContentType,
    #[error("body is not JSON")]
    NotJson,
    #[error("reply is not a JSON-RPC response object")]
    NotResponse,
    #[error("reply id differs from the request id")]
    WrongId,
    #[error("JSON-RPC error {0}")]
    RpcError(i64),
    #[error("tool result has isError: true")]
    ToolError,
    #[error("result text differs from the text sent")]
    WrongText,
    #[error("result has no text content")]
    NoText,
    #[error("result lacks resultType: complete")]
    NotComplete,
    #[error("SSE stream ended without the response")]
    NoResponseInStream,
    #[error("SSE stream carried a response with a foreign id")]
    ForeignIdInStream,
}

/// Checks an HTTP reply (status, Content-Type, body) to the request with integer id `id`.
pub fn check_reply(
    status: u16,
    content_type: &[u8],
    body: &[u8],
    id: u64,
    expect: &Expect<'_>,
) -> Result<(), ReplyError> {
    if status != 200 {
        return Err(ReplyError::Status(status));
    }
    if starts_with_ignore_case(content_type, b"application/json") {
        let value: Value = serde_json::from_slice(body).map_err(|_| ReplyError::NotJson)?;
        check_response(&value, id, expect)
    } else if starts_with_ignore_case(content_type, b"text/event-stream") {
        check_sse(body, id, expect)
    } else {
        Err(ReplyError::ContentType)
    }
}

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// Checks one JSON-RPC response object.
pub fn check_response(value: &Value, id: u64, expect: &Expect<'_>) -> Result<(), ReplyError> {
    let object = value.as_object().ok_or(ReplyError::NotResponse)?;
    if object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(ReplyError::NotResponse);
    }
    if object.get("id").and_then(Value::as_u64) != Some(id) {
        return Err(ReplyError::WrongId);
    }
    if let Some(error) = object.get("error") {
        let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
        return Err(ReplyError::RpcError(code));
    }
    let result = object.get("result").ok_or(ReplyError::NotResponse)?;
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        return Err(ReplyError::ToolError);
    }
    let (complete, want) = match expect {
        Expect::AnyResult => (false, None),
        Expect::Text(want) => (false, Some(*want)),
        Expect::CompleteResult => (true, None),
        Expect::CompleteText(want) => (true, Some(*want)),
    };
    if complete && result.get("resultType").and_then(Value::as_str) != Some("complete") {
        return Err(ReplyError::NotComplete);
    }
    match want {
        None => Ok(()),
        Some(want) => {
            let text = result
                .get("content")
                .and_then(|c| c.get(0))
                .filter(|item| item.get("type").and_then(Value::as_str) == Some("text"))
                .and_then(|item| item.get("text"))
                .and_then(Value::as_str)
                .ok_or(ReplyError::NoText)?;
            if text == want {
                Ok(())
            } else {
                Err(ReplyError::WrongText)
            }
        }
    }
}

/// Checks an SSE body: notifications and requests are skipped, the response with `id` is
/// checked, a response with any other id is an error.
pub fn check_sse(body: &[u8], id: u64, expect: &Expect<'_>) -> Result<(), ReplyError> {
    let mut outcome = Err(ReplyError::NoResponseInStream);
    for_each_event(body, |data| {
        let Ok(value) = serde_json::from_slice::<Value>(data) else {
            outcome = Err(ReplyError::NotJson);
            return false;
        };
        if value.get("method").is_some() {
            return true;
        }
        if value.get("id").and_then(Value::as_u64) != Some(id) {
            outcome = Err(ReplyError::ForeignIdInStream);
            return false;
        }
        outcome = check_response(&value, id, expect);
        false
    });
    outcome
}

/// Calls `on_data` with the data of each SSE event (data lines joined with `\n`); events
/// without data (priming events, comments) are skipped. Stops when `on_data` returns false.
pub fn for_each_event(body: &[u8], mut on_data: impl FnMut(&[u8]) -> bool) {
    let mut data: Vec<u8> = Vec::new();
    let mut has_data = false;
    let mut lines = body.split(|&b| b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            // An event whose data is empty (a priming event) is not dispatched.
            if has_data && !data.is_empty() && !on_data(&data) {
                return;
            }
            data.clear();
            has_data = false;
            continue;
        }
        if let Some(rest) = line.strip_prefix(b"data") {
            let value = match rest.first() {
                None => rest,
                Some(b':') => rest[1..].strip_prefix(b" ").unwrap_or(&rest[1..]),
                Some(_) => continue,
            };
            if has_data {
                data.push(b'\n');
            }
            data.extend_from_slice(value);
            has_data = true;
        }
        if lines.peek().is_none() && has_data && !data.is_empty() {
            // A stream cut after the last data line: dispatch what is there.
            on_data(&data);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: &[u8] = b"application/json";
    const SSE: &[u8] = b"text/event-stream";

    fn echo(id: u64, text: &str) -> String {
        serde_json::json!({"jsonrpc":"2.0","id":id,"result":{"content":[{"type":"text","text":text}]}})
            .to_string()
    }

    #[test]
    fn json_reply_with_matching_id_and_text() {
        let body = echo(7, "hi");
        assert_eq!(
            check_reply(200, JSON, body.as_bytes(), 7, &Expect::Text("hi")),
            Ok(())
        );
        assert_eq!(
            check_reply(
                200,
                b"Application/JSON; charset=utf-8",
                body.as_bytes(),
                7,
                &Expect::AnyResult
            ),
            Ok(())
        );
    }

    #[test]
    fn json_reply_errors() {
        let body = echo(7, "hi");
        let b = body.as_bytes();
        assert_eq!(
            check_reply(200, JSON, b, 8, &Expect::Text("hi")),
            Err(ReplyError::WrongId)
        );
        assert_eq!(
            check_reply(200, JSON, b, 7, &Expect::Text("ho")),
            Err(ReplyError::WrongText)
        );
        assert_eq!(
            check_reply(429, JSON, b, 7, &Expect::AnyResult),
            Err(ReplyError::Status(429))
        );
        assert_eq!(
            check_reply(200, b"text/plain", b, 7, &Expect::AnyResult),
            Err(ReplyError::ContentType)
        );
        assert_eq!(
            check_reply(200, JSON, b"{", 7, &Expect::AnyResult),
            Err(ReplyError::NotJson)
        );
        let error = br#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"x"}}"#;
        assert_eq!(
            check_reply(200, JSON, error, 7, &Expect::AnyResult),
            Err(ReplyError::RpcError(-32602))
        );
        let tool_error = br#"{"jsonrpc":"2.0","id":7,"result":{"isError":true,"content":[]}}"#;
        assert_eq!(
            check_reply(200, JSON, tool_error, 7, &Expect::AnyResult),
            Err(ReplyError::ToolError)
        );
        let no_text = br#"{"jsonrpc":"2.0","id":7,"result":{"content":[]}}"#;
        assert_eq!(
            check_reply(200, JSON, no_text, 7, &Expect::Text("x")),
            Err(ReplyError::NoText)
        );
        // A string id is not the integer the request carried.
        let string_id = br#"{"jsonrpc":"2.0","id":"7","result":{}}"#;
        assert_eq!(
            check_reply(200, JSON, string_id, 7, &Expect::AnyResult),
            Err(ReplyError::WrongId)
        );
        let no_version = br#"{"id":7,"result":{}}"#;
        assert_eq!(
            check_reply(200, JSON, no_version, 7, &Expect::AnyResult),
            Err(ReplyError::NotResponse)
        );
    }

    #[test]
    fn sse_reply_skips_notifications_and_priming() {
        let body = format!(
            "id: 0\ndata:\n\n: comment\n\nevent: message\ndata: {}\n\nid: 2\r\ndata: {}\r\n\r\n",
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#,
            echo(42, "x")
        );
        assert_eq!(
            check_reply(200, SSE, body.as_bytes(), 42, &Expect::Text("x")),
            Ok(())
        );
        // Data split over two lines is joined with a newline (valid JSON whitespace).
        let split = "data: {\"jsonrpc\":\"2.0\",\ndata: \"id\":1,\"result\":{}}\n\n";
        assert_eq!(
            check_reply(200, SSE, split.as_bytes(), 1, &Expect::AnyResult),
            Ok(())
        );
        // No trailing blank line.
        let cut = format!("data: {}", echo(3, "y"));
        assert_eq!(
            check_reply(200, SSE, cut.as_bytes(), 3, &Expect::Text("y")),
            Ok(())
        );
    }

    #[test]
    fn sse_reply_errors() {
        let foreign = format!("data: {}\n\n", echo(5, "x"));
        assert_eq!(
            check_reply(200, SSE, foreign.as_bytes(), 6, &Expect::AnyResult),
            Err(ReplyError::ForeignIdInStream)
        );
        let only_note = "data: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\"}\n\n";
        assert_eq!(
            check_reply(200, SSE, only_note.as_bytes(), 6, &Expect::AnyResult),
            Err(ReplyError::NoResponseInStream)
        );
        assert_eq!(
            check_reply(200, SSE, b"data: nope\n\n", 6, &Expect::AnyResult),
            Err(ReplyError::NotJson)
        );
        let wrong = format!("data: {}\n\n", echo(6, "a"));
        assert_eq!(
            check_reply(200, SSE, wrong.as_bytes(), 6, &Expect::Text("b")),
            Err(ReplyError::WrongText)
        );
    }
}
