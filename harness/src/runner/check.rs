//! Evaluating a step's expectations and captures against what was received.

use crate::client::{header_value, BodyData};
use crate::interp::{self, Vars};
use crate::matcher::{self, Mismatch};
use crate::scenario::{Capture, CaptureSource, EventPattern, Expect, SsePattern, StreamEnd};
use crate::sse::{SseEvent, SseItem};
use serde_json::Value;

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    /// What went wrong, in one line.
    pub message: String,
    /// The first JSON mismatch, when a matcher failed.
    pub mismatch: Option<Mismatch>,
}

impl Failure {
    pub(crate) fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            mismatch: None,
        }
    }

    fn mismatch(message: impl Into<String>, mismatch: Mismatch) -> Failure {
        Failure {
            message: message.into(),
            mismatch: Some(mismatch),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(m) = &self.mismatch {
            write!(f, " ({m})")?;
        }
        Ok(())
    }
}

/// What a step can look at.
pub(crate) struct View<'a> {
    pub status: Option<u16>,
    pub headers: Option<&'a [(String, String)]>,
    pub is_sse: bool,
    pub data: &'a BodyData,
    /// First SSE item index that belongs to this step.
    pub from: usize,
    /// The event list is complete (body semantics) rather than a prefix (stream semantics).
    pub full: bool,
}

impl View<'_> {
    fn events(&self) -> Vec<&SseEvent> {
        self.data.events_from(self.from)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.data.raw).into_owned()
    }

    fn body_json(&self) -> Result<Value, Failure> {
        if self.data.raw.len() < self.data.total {
            return Err(Failure::new("body too large to parse as JSON"));
        }
        serde_json::from_slice(&self.data.raw).map_err(|e| {
            Failure::new(format!(
                "body is not JSON ({e}): {}",
                shorten(&self.text(), 120)
            ))
        })
    }

    /// The JSON-RPC response: the JSON body, or the first SSE event carrying `result` or `error`.
    pub(crate) fn response(&self) -> Result<Value, Failure> {
        if !self.is_sse {
            return self.body_json();
        }
        self.events()
            .into_iter()
            .filter_map(|e| e.data.as_deref())
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|v| v.get("result").is_some() || v.get("error").is_some())
            .ok_or_else(|| Failure::new("no JSON-RPC response event on the SSE stream"))
    }
}

pub(crate) fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max).collect();
        format!("{cut}…")
    }
}

fn template(value: &Value, vars: &Vars) -> Result<Value, Failure> {
    interp::json(value, vars).map_err(|e| Failure::new(e.to_string()))
}

/// Checks every expectation; the first failure wins.
pub(crate) fn evaluate(expect: &Expect, view: &View<'_>, vars: &Vars) -> Result<(), Failure> {
    if let (Some(spec), Some(status)) = (&expect.status, view.status) {
        if !spec.accepts(status) {
            return Err(Failure::new(format!(
                "status: expected {spec}, actual {status}"
            )));
        }
    }
    if let Some(headers) = view.headers {
        for (name, matcher) in &expect.headers {
            let matcher = template(matcher, vars)?;
            let actual = header_value(headers, name).map(Value::String);
            let path = format!("header {}", name.to_ascii_lowercase());
            matcher::check_optional(&matcher, actual.as_ref(), &path)
                .map_err(|m| Failure::mismatch(format!("header {name}"), m))?;
        }
    }
    if let Some(matcher) = &expect.body {
        let matcher = template(matcher, vars)?;
        matcher::check(&matcher, &Value::String(view.text()))
            .map_err(|m| Failure::mismatch("body", m))?;
    }
    if let Some(matcher) = &expect.json {
        let matcher = template(matcher, vars)?;
        matcher::check(&matcher, &view.body_json()?)
            .map_err(|m| Failure::mismatch("json body", m))?;
    }
    if let Some(matcher) = &expect.response {
        let matcher = template(matcher, vars)?;
        matcher::check(&matcher, &view.response()?)
            .map_err(|m| Failure::mismatch("JSON-RPC response", m))?;
    }
    if let Some(patterns) = &expect.sse {
        if !view.is_sse {
            return Err(Failure::new(
                "expected an SSE body (Content-Type: text/event-stream)",
            ));
        }
        let patterns = patterns
            .iter()
            .map(|p| interp_pattern(p, vars))
            .collect::<Result<Vec<_>, _>>()?;
        check_sequence(&patterns, &view.events(), view.full)?;
    }
    for pattern in &expect.sse_none {
        let pattern = match interp_pattern(&SsePattern::Event(pattern.clone()), vars)? {
            SsePattern::Event(p) => p,
            SsePattern::Gap => unreachable!("interp keeps the kind"),
        };
        if let Some(event) = view
            .events()
            .into_iter()
            .find(|e| match_event(&pattern, e).is_ok())
        {
            return Err(Failure::new(format!(
                "an event matched sse_none: {}",
                describe_event(event)
            )));
        }
    }
    if expect.comment {
        let found = view.data.items[view.from.min(view.data.items.len())..]
            .iter()
            .any(|t| matches!(t.item, SseItem::Comment(_)));
        if !found {
            return Err(Failure::new("no SSE comment arrived"));
        }
    }
    match expect.sse_end {
        Some(StreamEnd::Closed) if !view.data.ended => {
            return Err(Failure::new("the stream was still open"));
        }
        Some(StreamEnd::Open) if view.data.ended => {
            return Err(Failure::new("the stream had ended"));
        }
        _ => {}
    }
    Ok(())
}

fn interp_pattern(pattern: &SsePattern, vars: &Vars) -> Result<SsePattern, Failure> {
    Ok(match pattern {
        SsePattern::Gap => SsePattern::Gap,
        SsePattern::Event(p) => {
            let field = |v: &Option<Value>| v.as_ref().map(|v| template(v, vars)).transpose();
            SsePattern::Event(EventPattern {
                id: field(&p.id)?,
                event: field(&p.event)?,
                data: field(&p.data)?,
                json: field(&p.json)?,
                retry: field(&p.retry)?,
                optional: p.optional,
            })
        }
    })
}

pub(crate) fn describe_event(event: &SseEvent) -> String {
    let mut parts = Vec::new();
    if let Some(id) = &event.id {
        parts.push(format!("id={id:?}"));
    }
    if let Some(kind) = &event.event {
        parts.push(format!("event={kind:?}"));
    }
    if let Some(retry) = event.retry {
        parts.push(format!("retry={retry}"));
    }
    match &event.data {
        Some(data) => parts.push(format!("data={}", shorten(data, 160))),
        None => parts.push("no data".to_string()),
    }
    parts.join(" ")
}

/// Matches one event; the error is the first differing field.
pub(crate) fn match_event(pattern: &EventPattern, event: &SseEvent) -> Result<(), Mismatch> {
    let text = |v: &Option<String>| v.clone().map(Value::String);
    if let Some(m) = &pattern.id {
        matcher::check_optional(m, text(&event.id).as_ref(), "event.id")?;
    }
    if let Some(m) = &pattern.event {
        matcher::check_optional(m, text(&event.event).as_ref(), "event.event")?;
    }
    if let Some(m) = &pattern.retry {
        let retry = event.retry.map(Value::from);
        matcher::check_optional(m, retry.as_ref(), "event.retry")?;
    }
    if let Some(m) = &pattern.data {
        matcher::check_optional(m, text(&event.data).as_ref(), "event.data")?;
    }
    if let Some(m) = &pattern.json {
        let parsed = event
            .data
            .as_deref()
            .and_then(|d| serde_json::from_str::<Value>(d).ok());
        match parsed {
            Some(value) => {
                matcher::check(m, &value).map_err(|mut mm| {
                    mm.path = mm.path.replacen('$', "event.json", 1);
                    mm
                })?;
            }
            None => {
                return Err(Mismatch {
                    path: "event.data".to_string(),
                    expected: "JSON".to_string(),
                    actual: event
                        .data
                        .as_deref()
                        .map_or("<absent>".to_string(), |d| shorten(d, 80)),
                })
            }
        }
    }
    Ok(())
}

fn matches_from(
    patterns: &[SsePattern],
    events: &[&SseEvent],
    full: bool,
    budget: &mut u32,
) -> bool {
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    match patterns.split_first() {
        None => !full || events.is_empty(),
        Some((SsePattern::Gap, rest)) => {
            (0..=events.len()).any(|skip| matches_from(rest, &events[skip..], full, budget))
        }
        Some((SsePattern::Event(pattern), rest)) => {
            let here = events
                .first()
                .is_some_and(|e| match_event(pattern, e).is_ok())
                && matches_from(rest, &events[1..], full, budget);
            here || (pattern.optional && matches_from(rest, events, full, budget))
        }
    }
}

/// Matches an ordered pattern list; `full` means every event must be accounted for.
pub(crate) fn check_sequence(
    patterns: &[SsePattern],
    events: &[&SseEvent],
    full: bool,
) -> Result<(), Failure> {
    let mut budget = 200_000;
    if matches_from(patterns, events, full, &mut budget) {
        return Ok(());
    }
    Err(explain_sequence(patterns, events, full))
}

/// A greedy walk that names the first pattern that could not be placed.
fn explain_sequence(patterns: &[SsePattern], events: &[&SseEvent], full: bool) -> Failure {
    let mut position = 0;
    let mut gap = false;
    for (index, pattern) in patterns.iter().enumerate() {
        let pattern = match pattern {
            SsePattern::Gap => {
                gap = true;
                continue;
            }
            SsePattern::Event(p) => p,
        };
        let candidates = if gap {
            events.len().saturating_sub(position)
        } else {
            1
        };
        let found = (position..position + candidates)
            .take_while(|i| *i < events.len())
            .find(|i| match_event(pattern, events[*i]).is_ok());
        match found {
            Some(i) => {
                position = i + 1;
                gap = false;
            }
            None if pattern.optional => {}
            None => {
                let message = format!(
                    "SSE pattern #{} not matched at event #{} of {}",
                    index + 1,
                    position + 1,
                    events.len()
                );
                return match events.get(position) {
                    Some(event) => match match_event(pattern, event) {
                        Err(m) => Failure::mismatch(message, m),
                        Ok(()) => Failure::new(message),
                    },
                    None => Failure::new(format!("{message}: no more events")),
                };
            }
        }
    }
    if full && !gap && position < events.len() {
        return Failure::new(format!(
            "unexpected extra SSE event #{}: {}",
            position + 1,
            describe_event(events[position])
        ));
    }
    Failure::new("SSE events did not match the pattern list")
}

/// Extracts a capture's value.
pub(crate) fn capture(name: &str, capture: &Capture, view: &View<'_>) -> Result<Value, Failure> {
    let missing = |what: &str| Failure::new(format!("capture {name}: {what}"));
    let mut value = match &capture.source {
        CaptureSource::Header(header) => {
            let headers = view
                .headers
                .ok_or_else(|| missing("headers are not available in a read step"))?;
            Value::String(
                header_value(headers, header)
                    .ok_or_else(|| missing(&format!("no {header} header")))?,
            )
        }
        CaptureSource::Response(path) => {
            let response = view.response()?;
            matcher::lookup(&response, path)
                .cloned()
                .ok_or_else(|| missing(&format!("nothing at {path} in the response")))?
        }
        CaptureSource::Body(path) => {
            let body = view.body_json()?;
            matcher::lookup(&body, path)
                .cloned()
                .ok_or_else(|| missing(&format!("nothing at {path} in the body")))?
        }
        CaptureSource::Sse { pattern, field } => {
            let event = view
                .events()
                .into_iter()
                .find(|e| match_event(pattern, e).is_ok())
                .ok_or_else(|| missing("no SSE event matched"))?;
            match field.as_str() {
                "id" => event.id.clone().map(Value::String),
                "event" => event.event.clone().map(Value::String),
                "data" => event.data.clone().map(Value::String),
                "retry" => event.retry.map(Value::from),
                _ => event
                    .data
                    .as_deref()
                    .and_then(|d| serde_json::from_str::<Value>(d).ok()),
            }
            .ok_or_else(|| missing(&format!("the event has no {field}")))?
        }
    };
    if let Some(path) = &capture.path {
        value = matcher::lookup(&value, path)
            .cloned()
            .ok_or_else(|| missing(&format!("nothing at {path}")))?;
    }
    if let Some(pattern) = &capture.regex {
        let re = regex::Regex::new(pattern).map_err(|e| missing(&e.to_string()))?;
        let text = interp::to_text(&value);
        let found = re
            .captures(&text)
            .ok_or_else(|| missing(&format!("regex {pattern:?} did not match {text:?}")))?;
        let kept = found
            .get(1)
            .or_else(|| found.get(0))
            .map_or("", |m| m.as_str());
        value = Value::String(kept.to_string());
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(id: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            id: id.map(str::to_string),
            data: Some(data.to_string()),
            ..SseEvent::default()
        }
    }

    fn pat(json: Value) -> SsePattern {
        SsePattern::Event(EventPattern {
            json: Some(json),
            ..EventPattern::default()
        })
    }

    #[test]
    fn sequences_with_gaps_and_optional_items() {
        let events = [
            ev(Some("1"), ""),
            ev(None, r#"{"method":"notifications/progress"}"#),
            ev(None, r#"{"id":2,"result":{}}"#),
        ];
        let refs: Vec<&SseEvent> = events.iter().collect();
        let priming = SsePattern::Event(EventPattern {
            id: Some(json!({"$any": true})),
            data: Some(json!("")),
            ..EventPattern::default()
        });
        let response = pat(json!({"id": 2}));
        check_sequence(
            &[priming.clone(), SsePattern::Gap, response.clone()],
            &refs,
            true,
        )
        .unwrap();
        check_sequence(&[SsePattern::Gap, response.clone()], &refs, true).unwrap();
        check_sequence(std::slice::from_ref(&priming), &refs, false).unwrap();
        let err = check_sequence(std::slice::from_ref(&priming), &refs, true).unwrap_err();
        assert!(
            err.message.starts_with("unexpected extra SSE event #2"),
            "{err}"
        );
        let err = check_sequence(std::slice::from_ref(&response), &refs, true).unwrap_err();
        assert_eq!(err.message, "SSE pattern #1 not matched at event #1 of 3");
        assert_eq!(err.mismatch.unwrap().path, "event.data");
        let mut optional = EventPattern {
            json: Some(json!({"method": "nope"})),
            ..EventPattern::default()
        };
        optional.optional = true;
        check_sequence(
            &[
                priming,
                SsePattern::Event(optional),
                SsePattern::Gap,
                response,
            ],
            &refs,
            true,
        )
        .unwrap();
    }

    #[test]
    fn json_mismatch_paths_point_into_the_event() {
        let event = ev(None, r#"{"id":2,"result":{"x":1}}"#);
        let err = match_event(
            &EventPattern {
                json: Some(json!({"result": {"x": 2}})),
                ..EventPattern::default()
            },
            &event,
        )
        .unwrap_err();
        assert_eq!(err.path, "event.json.result.x");
    }
}
