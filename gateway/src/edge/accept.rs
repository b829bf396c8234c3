//! `Accept` negotiation for `POST /mcp` (RFC 9110 §12.5.1).
//!
//! The gateway can answer a POST with `application/json` or `text/event-stream`. The MCP
//! transport asks clients to list both, but RFC 9110 says that no `Accept` means any type is
//! acceptable and `*/*` says so explicitly; clients that send neither (curl, the
//! verification commands in deployment guides, hand-written scripts) must not be refused for it. So:
//!
//! - `application/json` acceptable and `text/event-stream` asked for by name (`text/event-stream`
//!   or `text/*`): [`Wants::Both`], JSON for a lone response and SSE when more comes first;
//! - `application/json` acceptable but SSE not asked for (no `Accept`, `*/*`, `application/*`,
//!   `application/json`): [`Wants::Json`], never an SSE stream the client did not ask for;
//! - only SSE acceptable: [`Wants::Sse`], every answer as a stream;
//! - neither (for example `text/html`, or `application/json;q=0` alone): 406.
//!
//! Media ranges are matched case-insensitively with their parameters: the most specific range
//! that matches a type decides its weight, `q=0` excludes it, and a range with parameters the
//! gateway's answers do not have (anything but `charset=utf-8`) does not match. Elements that do
//! not parse are ignored; an `Accept` with no element that parses is disregarded like a missing
//! one, which RFC 9110 §12.5.1 allows.

use axum::http::{header, HeaderMap};

/// What a POST's answer may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wants {
    /// JSON for a lone response, SSE when anything comes before it.
    Both,
    /// JSON only: messages the child sends before the response go to the session's GET stream.
    Json,
    /// SSE only, even for a lone response.
    Sse,
}

/// How the client's `Accept` lets the gateway answer; None when it excludes both types.
pub fn negotiate(headers: &HeaderMap) -> Option<Wants> {
    // What MCP clients send on every call: answered without parsing (the hot path).
    let mut fields = headers.get_all(header::ACCEPT).iter();
    if let (Some(only), None) = (fields.next(), fields.next()) {
        let value = only.as_bytes();
        if value.eq_ignore_ascii_case(b"application/json, text/event-stream")
            || value.eq_ignore_ascii_case(b"text/event-stream, application/json")
        {
            return Some(Wants::Both);
        }
    }
    let ranges = parse(headers);
    if ranges.is_empty() {
        return Some(Wants::Json);
    }
    let json = best(&ranges, "application", "json");
    let sse = best(&ranges, "text", "event-stream");
    let json_ok = json.is_some_and(|m| m.q > 0);
    let sse_ok = sse.is_some_and(|m| m.q > 0);
    // `*/*` makes SSE acceptable but does not ask for it.
    let sse_asked = sse.is_some_and(|m| m.q > 0 && m.named_type);
    match (json_ok, sse_ok) {
        (true, _) if sse_asked => Some(Wants::Both),
        (true, _) => Some(Wants::Json),
        (false, true) => Some(Wants::Sse),
        (false, false) => None,
    }
}

/// One media range: lowercase type and subtype, parameters other than the weight, and the
/// weight in thousandths.
#[derive(Debug, PartialEq)]
struct Range {
    kind: String,
    subtype: String,
    params: Vec<(String, String)>,
    q: u16,
}

/// The range that decides a type's weight.
#[derive(Clone, Copy, Debug)]
struct Match {
    q: u16,
    /// The range names the top-level type (`text/…`), not `*/*`.
    named_type: bool,
}

fn parse(headers: &HeaderMap) -> Vec<Range> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        // A field that is not visible ASCII says nothing usable.
        .filter_map(|value| value.to_str().ok())
        .flat_map(split_list)
        .filter_map(|element| parse_range(&element))
        .collect()
}

/// Splits a comma-separated list, keeping commas inside quoted strings.
fn split_list(value: &str) -> Vec<String> {
    split_unquoted(value, ',')
}

/// Splits `text` on `separator` wherever it is outside a quoted string (backslash escapes
/// honoured inside quotes).
fn split_unquoted(text: &str, separator: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(std::mem::take(&mut current));
            continue;
        }
        current.push(c);
    }
    parts.push(current);
    parts
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn parse_range(element: &str) -> Option<Range> {
    let mut parts = split_params(element).into_iter();
    let media = parts.next()?;
    let (kind, subtype) = media.trim().split_once('/')?;
    let (kind, subtype) = (kind.trim(), subtype.trim());
    if !is_token(kind) || !is_token(subtype) || (kind == "*" && subtype != "*") {
        return None;
    }
    let mut range = Range {
        kind: kind.to_ascii_lowercase(),
        subtype: subtype.to_ascii_lowercase(),
        params: Vec::new(),
        q: 1000,
    };
    for part in parts {
        let (name, value) = part.split_once('=')?;
        let name = name.trim().to_ascii_lowercase();
        let value = unquote(value.trim())?;
        if !is_token(&name) {
            return None;
        }
        if name == "q" {
            range.q = parse_weight(&value)?;
            // Anything after the weight is an accept-extension, not a media type parameter.
            break;
        }
        range.params.push((name, value));
    }
    Some(range)
}

/// Splits `type/sub; a=b; q=0.5` on semicolons outside quoted strings.
fn split_params(element: &str) -> Vec<String> {
    split_unquoted(element, ';')
}

/// A token as is, or a quoted string without its quotes and escapes.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return is_token(value).then(|| value.to_string());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::new();
    let mut escaped = false;
    for c in inner.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    (!escaped).then_some(out)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_weight(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths: u16 = format!("{fraction:0<3}").parse().ok()?;
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// Whether a range's parameters fit the gateway's answers, which are UTF-8 and carry none.
fn params_fit(range: &Range) -> bool {
    range
        .params
        .iter()
        .all(|(name, value)| name == "charset" && value.eq_ignore_ascii_case("utf-8"))
}

/// The most specific range matching `kind/subtype` (RFC 9110 §12.5.1: the most specific
/// reference has precedence; among equally specific ones the highest weight wins).
fn best(ranges: &[Range], kind: &str, subtype: &str) -> Option<Match> {
    ranges
        .iter()
        .filter(|r| {
            (r.kind == "*" || r.kind == kind)
                && (r.subtype == "*" || r.subtype == subtype)
                && params_fit(r)
        })
        .map(|r| {
            let specificity = u8::from(r.kind != "*")
                + u8::from(r.subtype != "*")
                + u8::from(!r.params.is_empty());
            (specificity, r.q, r.kind != "*")
        })
        .max()
        .map(|(_, q, named_type)| Match { q, named_type })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn wants(values: &[&str]) -> Option<Wants> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        }
        negotiate(&headers)
    }

    #[test]
    fn no_accept_or_wildcards_mean_json_only() {
        assert_eq!(wants(&[]), Some(Wants::Json));
        assert_eq!(wants(&["*/*"]), Some(Wants::Json));
        assert_eq!(wants(&["application/*"]), Some(Wants::Json));
        assert_eq!(wants(&["application/json"]), Some(Wants::Json));
        assert_eq!(
            wants(&["APPLICATION/JSON; Charset=UTF-8"]),
            Some(Wants::Json)
        );
        assert_eq!(
            wants(&["", " "]),
            Some(Wants::Json),
            "empty fields say nothing"
        );
        assert_eq!(wants(&["json, ;;;"]), Some(Wants::Json), "nothing parses");
    }

    #[test]
    fn both_when_event_stream_is_asked_for_by_name() {
        assert_eq!(
            wants(&["application/json, text/event-stream"]),
            Some(Wants::Both)
        );
        assert_eq!(
            wants(&["text/event-stream;q=0.9, application/json;q=1"]),
            Some(Wants::Both)
        );
        assert_eq!(wants(&["application/json", "text/*"]), Some(Wants::Both));
        assert_eq!(wants(&["*/*, text/event-stream"]), Some(Wants::Both));
        assert_eq!(
            wants(&["Text/Event-Stream, application/json"]),
            Some(Wants::Both)
        );
    }

    #[test]
    fn sse_only_when_json_is_excluded() {
        assert_eq!(wants(&["text/event-stream"]), Some(Wants::Sse));
        assert_eq!(
            wants(&["text/event-stream, application/json;q=0"]),
            Some(Wants::Sse)
        );
        assert_eq!(wants(&["application/json;q=0, */*"]), Some(Wants::Sse));
    }

    #[test]
    fn excluding_both_is_refused() {
        assert_eq!(wants(&["text/html"]), None);
        assert_eq!(wants(&["text/html, image/*"]), None);
        assert_eq!(wants(&["application/json;q=0"]), None);
        assert_eq!(wants(&["*/*;q=0"]), None);
        assert_eq!(
            wants(&["*/*, application/json;q=0, text/event-stream;q=0.000"]),
            None,
            "the most specific range decides"
        );
        assert_eq!(
            wants(&["application/json; profile=\"x,y\""]),
            None,
            "a variant the gateway does not produce; the quoted comma stays inside"
        );
        assert_eq!(wants(&["text/event-stream;charset=latin1"]), None);
    }

    #[test]
    fn weights_parse_strictly() {
        assert_eq!(parse_weight("0"), Some(0));
        assert_eq!(parse_weight("0.5"), Some(500));
        assert_eq!(parse_weight("0.001"), Some(1));
        assert_eq!(parse_weight("1.000"), Some(1000));
        assert_eq!(parse_weight("1.5"), None);
        assert_eq!(parse_weight("0.0001"), None);
        assert_eq!(parse_weight("-1"), None);
        assert_eq!(parse_weight("0.x"), None);
        // A malformed weight drops its element, not the header.
        assert_eq!(
            wants(&["application/json;q=2, text/html"]),
            None,
            "the only JSON element is malformed"
        );
        assert_eq!(
            wants(&["application/json;q=0.5;ext=1, text/event-stream"]),
            Some(Wants::Both),
            "accept-extensions after q are ignored"
        );
    }
}
