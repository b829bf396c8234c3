//! The `send`, `expect`, SSE pattern and `capture` tables to the model.

use super::build::{line_col, toml_to_json, Ctx};
use super::raw::{RawCapture, RawExpect, RawSend};
use super::{model::*, ScenarioError};
use crate::matcher;
use serde_json::Value;
use std::ops::Range;
use toml::Spanned;

pub(super) fn status_spec(value: &toml::Value) -> Result<StatusSpec, String> {
    fn item(value: &toml::Value) -> Result<StatusItem, String> {
        match value {
            toml::Value::Integer(code) if (100..=599).contains(code) => {
                Ok(StatusItem::Code(*code as u16))
            }
            toml::Value::String(text) => {
                let bytes = text.as_bytes();
                if bytes.len() == 3
                    && (b'1'..=b'5').contains(&bytes[0])
                    && text[1..].eq_ignore_ascii_case("xx")
                {
                    Ok(StatusItem::Class(u16::from(bytes[0] - b'0')))
                } else {
                    Err(format!("bad status class {text:?} (use \"4xx\")"))
                }
            }
            other => Err(format!("bad status {other} (use 404, \"4xx\" or a list)")),
        }
    }
    match value {
        toml::Value::Array(items) if !items.is_empty() => Ok(StatusSpec(
            items.iter().map(item).collect::<Result<_, _>>()?,
        )),
        other => Ok(StatusSpec(vec![item(other)?])),
    }
}

/// Turns a `json`-like TOML value into JSON: a string is JSON text, a table is taken as is.
pub(super) fn json_value(
    ctx: &Ctx<'_>,
    value: Spanned<toml::Value>,
    what: &str,
) -> Result<Value, ScenarioError> {
    let span = value.span();
    match value.into_inner() {
        toml::Value::String(text) => parse_json_text(ctx, &span, &text, what),
        other => Ok(toml_to_json(&other)),
    }
}

pub(super) fn parse_json_text(
    ctx: &Ctx<'_>,
    span: &Range<usize>,
    text: &str,
    what: &str,
) -> Result<Value, ScenarioError> {
    serde_json::from_str(text).map_err(|e| {
        let (line, col) = line_col(ctx.text, span.start);
        // Literal strings that start with a newline drop it, so JSON line 1 is the next line.
        let first_line_skipped = ctx.text[span.start..]
            .strip_prefix("'''")
            .or_else(|| ctx.text[span.start..].strip_prefix("\"\"\""))
            .is_some_and(|rest| rest.starts_with('\n') || rest.starts_with("\r\n"));
        let json_line = e.line().max(1) - 1 + usize::from(first_line_skipped);
        ScenarioError::Invalid {
            path: ctx.path.to_path_buf(),
            line: line + json_line,
            col: if json_line == 0 {
                col
            } else {
                e.column().max(1)
            },
            message: format!("{what} is not valid JSON: {e}"),
        }
    })
}

pub(super) fn matcher_value(
    ctx: &Ctx<'_>,
    value: Spanned<toml::Value>,
    what: &str,
    string_is_json: bool,
) -> Result<Value, ScenarioError> {
    let span = value.span();
    let value = if string_is_json {
        json_value(ctx, value, what)?
    } else {
        toml_to_json(value.get_ref())
    };
    matcher::validate(&value).map_err(|m| ctx.error(span, format!("{what}: {m}")))?;
    Ok(value)
}

pub(super) fn build_send(
    ctx: &Ctx<'_>,
    span: &Range<usize>,
    raw: RawSend,
) -> Result<Send, ScenarioError> {
    let method = raw
        .method
        .unwrap_or_else(|| "POST".to_string())
        .to_uppercase();
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(ctx.error(span.clone(), format!("bad method {method:?}")));
    }
    if raw.json.is_some() && raw.raw.is_some() {
        return Err(ctx.error(span.clone(), "send.json and send.raw are exclusive"));
    }
    let body = if let Some(json) = raw.json {
        let json_span = json.span();
        let value = match json.into_inner() {
            toml::Value::String(text) => {
                // `${name}` placeholders may stand where a JSON value goes; check the syntax with
                // them replaced by 0, and interpolate the parsed tree at run time.
                let probe = placeholder_probe(&text);
                parse_json_text(ctx, &json_span, &probe, "send.json")?;
                let quoted = quote_bare_placeholders(&text);
                serde_json::from_str(&quoted)
                    .map_err(|e| ctx.error(json_span, format!("send.json: {e}")))?
            }
            other => toml_to_json(&other),
        };
        Body::Json(value)
    } else if let Some(text) = raw.raw {
        Body::Raw(text)
    } else {
        Body::None
    };
    let mut headers = Vec::new();
    for (name, value) in raw.headers {
        headers.push((
            name.clone(),
            header_value(&value)
                .map_err(|m| ctx.error(span.clone(), format!("send.headers.{name}: {m}")))?,
        ));
    }
    for field in &raw.meta_omit {
        if !crate::modern::META_FIELDS.contains(&field.as_str()) {
            return Err(ctx.error(
                span.clone(),
                format!(
                    "send.meta_omit: unknown _meta field {field:?} (use {:?})",
                    crate::modern::META_FIELDS
                ),
            ));
        }
    }
    if !raw.meta_omit.is_empty() && raw.modern == Some(false) {
        return Err(ctx.error(
            span.clone(),
            "send.meta_omit needs the modern helper (send.modern = false turns it off)",
        ));
    }
    Ok(Send {
        method,
        path: raw.path,
        url: raw.url,
        headers,
        modern: raw.modern,
        meta_omit: raw.meta_omit,
        title_case_headers: raw.title_case_headers,
        omit_headers: raw.omit_headers,
        use_defaults: raw.defaults.unwrap_or(true),
        body,
        pad_bytes: raw.pad_bytes.unwrap_or(0),
    })
}

/// A header value: a string template, or `{ base64 = "template" }` for the `=?base64?…?=` form.
fn header_value(value: &toml::Value) -> Result<HeaderValue, String> {
    match value {
        toml::Value::String(text) => Ok(HeaderValue {
            template: text.clone(),
            base64: false,
        }),
        toml::Value::Table(table) if table.len() == 1 => match table.get("base64") {
            Some(toml::Value::String(text)) => Ok(HeaderValue {
                template: text.clone(),
                base64: true,
            }),
            _ => Err("a header table is { base64 = \"text\" }".to_string()),
        },
        other => Err(format!(
            "a header value is a string or {{ base64 = \"text\" }}, got {other}"
        )),
    }
}

/// Replaces every `${name}` with `0` (valid both inside strings and as a value).
fn placeholder_probe(text: &str) -> String {
    let re = regex::Regex::new(r"\$\{[A-Za-z0-9_.\-]+\}").expect("static regex");
    re.replace_all(text, "0").into_owned()
}

/// Wraps `${name}` placeholders that stand outside JSON strings in quotes, so that
/// `"id": ${i}` parses and later gets the typed value.
pub(super) fn quote_bare_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if !in_string && rest.starts_with("${") {
            if let Some(end) = rest.find('}') {
                out.push('"');
                out.push_str(&rest[..=end]);
                out.push('"');
                rest = &rest[end + 1..];
                continue;
            }
        }
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

pub(super) fn build_expect(
    ctx: &Ctx<'_>,
    span: &Range<usize>,
    raw: RawExpect,
) -> Result<Expect, ScenarioError> {
    let status = match &raw.status {
        Some(value) => Some(status_spec(value).map_err(|m| ctx.error(span.clone(), m))?),
        None => None,
    };
    let mut headers = Vec::new();
    for (name, value) in raw.headers {
        let value = toml_to_json(&value);
        matcher::validate(&value)
            .map_err(|m| ctx.error(span.clone(), format!("expect.headers.{name}: {m}")))?;
        headers.push((name, value));
    }
    let body = raw
        .body
        .map(|b| matcher_value(ctx, b, "expect.body", false))
        .transpose()?;
    let json = raw
        .json
        .map(|b| matcher_value(ctx, b, "expect.json", true))
        .transpose()?;
    let response = raw
        .response
        .map(|b| matcher_value(ctx, b, "expect.response", true))
        .transpose()?;
    let sse = raw
        .sse
        .map(|items| {
            items
                .into_iter()
                .map(|item| sse_pattern(ctx, item))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let mut sse_none = Vec::new();
    for item in raw.sse_none.unwrap_or_default() {
        let item_span = item.span();
        match sse_pattern(ctx, item)? {
            SsePattern::Event(pattern) => sse_none.push(pattern),
            SsePattern::Gap => {
                return Err(ctx.error(item_span, "\"...\" makes no sense in sse_none"))
            }
        }
    }
    let sse_end = match raw.sse_end.as_deref() {
        None => None,
        Some("closed") => Some(StreamEnd::Closed),
        Some("open") => Some(StreamEnd::Open),
        Some(other) => {
            return Err(ctx.error(
                span.clone(),
                format!("sse_end must be \"closed\" or \"open\", got {other:?}"),
            ))
        }
    };
    Ok(Expect {
        status,
        headers,
        body,
        json,
        response,
        sse,
        sse_none,
        sse_end,
        comment: raw.comment,
    })
}

fn sse_pattern(ctx: &Ctx<'_>, item: Spanned<toml::Value>) -> Result<SsePattern, ScenarioError> {
    let span = item.span();
    let err = |m: String| ctx.error(span.clone(), m);
    match item.into_inner() {
        toml::Value::String(text) if text == "..." => Ok(SsePattern::Gap),
        toml::Value::Table(table) => {
            let mut pattern = EventPattern::default();
            for (key, value) in table {
                let as_matcher =
                    |value: &toml::Value, json_text: bool| -> Result<Value, ScenarioError> {
                        let value = match value {
                            toml::Value::String(text) if json_text => {
                                parse_json_text(ctx, &span, text, "sse json")?
                            }
                            other => toml_to_json(other),
                        };
                        matcher::validate(&value).map_err(|m| ctx.error(span.clone(), m))?;
                        Ok(value)
                    };
                match key.as_str() {
                    "id" => pattern.id = Some(as_matcher(&value, false)?),
                    "event" => pattern.event = Some(as_matcher(&value, false)?),
                    "data" => pattern.data = Some(as_matcher(&value, false)?),
                    "json" => pattern.json = Some(as_matcher(&value, true)?),
                    "retry" => pattern.retry = Some(as_matcher(&value, false)?),
                    "optional" => {
                        pattern.optional = value
                            .as_bool()
                            .ok_or_else(|| err("optional must be a boolean".to_string()))?
                    }
                    other => {
                        return Err(err(format!(
                            "unknown SSE pattern key {other:?} (use id, event, data, json, retry, optional)"
                        )))
                    }
                }
            }
            Ok(SsePattern::Event(pattern))
        }
        other => Err(err(format!(
            "an SSE pattern is a table like {{ json = '...' }} or \"...\", got {other}"
        ))),
    }
}

pub(super) fn build_capture(
    ctx: &Ctx<'_>,
    span: &Range<usize>,
    raw: RawCapture,
) -> Result<Capture, ScenarioError> {
    let sources = [
        raw.header.is_some(),
        raw.response.is_some(),
        raw.body.is_some(),
        raw.sse.is_some(),
    ];
    if sources.iter().filter(|s| **s).count() != 1 {
        return Err(ctx.error(
            span.clone(),
            "a capture needs exactly one of header, response, body or sse",
        ));
    }
    if let Some(pattern) = &raw.regex {
        regex::Regex::new(pattern)
            .map_err(|e| ctx.error(span.clone(), format!("bad capture regex: {e}")))?;
    }
    let source = if let Some(name) = raw.header {
        CaptureSource::Header(name)
    } else if let Some(path) = raw.response {
        CaptureSource::Response(path)
    } else if let Some(path) = raw.body {
        CaptureSource::Body(path)
    } else {
        let sse = raw.sse.expect("checked above");
        let pattern = match sse.get_ref() {
            toml::Value::Table(_) => match sse_pattern(ctx, sse)? {
                SsePattern::Event(pattern) => pattern,
                SsePattern::Gap => unreachable!("a table is never a gap"),
            },
            _ => EventPattern {
                json: Some(matcher_value(ctx, sse, "capture.sse", true)?),
                ..EventPattern::default()
            },
        };
        let field = raw.sse_field.unwrap_or_else(|| "json".to_string());
        if !["json", "id", "event", "data", "retry"].contains(&field.as_str()) {
            return Err(ctx.error(span.clone(), format!("bad sse_field {field:?}")));
        }
        CaptureSource::Sse { pattern, field }
    };
    Ok(Capture {
        source,
        path: raw.path,
        regex: raw.regex,
        optional: raw.optional,
    })
}
