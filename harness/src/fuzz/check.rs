//! The invariants every answer must keep, whatever was sent.

use serde_json::Value;

use super::case::Case;
use super::wire::{Answer, Outcome};

/// Which invariant an answer broke (the shrinker keeps a smaller case only when it breaks the
/// same one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invariant {
    /// A 5xx other than the documented 502 (upstream gone) and 503 (capacity, draining).
    ServerError,
    /// An error status without a JSON-RPC error body, or a malformed JSON-RPC message.
    ErrorShape,
    /// An error or response carrying an id that the request did not send.
    WrongId,
    /// No answer (or no end of the answer) within the bound.
    Late,
    /// The connection failed without an answer.
    NoAnswer,
    /// A response that belongs to another request or session.
    Crossed,
    /// The target stopped serving a clean session.
    Unhealthy,
}

impl Invariant {
    pub fn as_str(self) -> &'static str {
        match self {
            Invariant::ServerError => "no 5xx other than 502/503",
            Invariant::ErrorShape => "every error is a JSON-RPC error body",
            Invariant::WrongId => "an error's id is the request's id or null",
            Invariant::Late => "every answer within its bound",
            Invariant::NoAnswer => "every request gets an answer",
            Invariant::Crossed => "no answer for one session arrives on another",
            Invariant::Unhealthy => "the target still serves a clean session",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Violation {
    pub invariant: Invariant,
    pub detail: String,
}

fn violation(invariant: Invariant, detail: impl Into<String>) -> Option<Violation> {
    Some(Violation {
        invariant,
        detail: detail.into(),
    })
}

/// Checks one answer to `case`. `foreign` says whether an id was sent by some other request
/// (the answer then crossed over).
pub fn check(
    case: &Case,
    outcome: &Outcome,
    foreign: &dyn Fn(&Value) -> bool,
) -> Option<Violation> {
    let answer = match outcome {
        Outcome::Late => return violation(Invariant::Late, "no status line within the bound"),
        Outcome::NoAnswer(e) => return violation(Invariant::NoAnswer, e.clone()),
        Outcome::Answer(answer) => answer,
    };
    if answer.status >= 500 && !matches!(answer.status, 502 | 503) {
        return violation(
            Invariant::ServerError,
            format!("status {}: {}", answer.status, snippet(answer)),
        );
    }
    if answer.body_late {
        return violation(
            Invariant::Late,
            format!(
                "status {} but the body did not end within the bound",
                answer.status
            ),
        );
    }
    let sent = case.request_ids();
    let (messages, _) = answer.messages();
    if answer.status >= 400 {
        if !answer.content_type.starts_with("application/json") {
            return violation(
                Invariant::ErrorShape,
                format!(
                    "status {} with Content-Type {:?}: {}",
                    answer.status,
                    answer.content_type,
                    snippet(answer)
                ),
            );
        }
        let [message] = messages.as_slice() else {
            return violation(
                Invariant::ErrorShape,
                format!(
                    "status {}: not one JSON-RPC error: {}",
                    answer.status,
                    snippet(answer)
                ),
            );
        };
        if let Some(v) = error_shape(message) {
            return violation(
                Invariant::ErrorShape,
                format!("status {}: {v}: {}", answer.status, snippet(answer)),
            );
        }
    }
    for message in &messages {
        let Some(object) = message.as_object() else {
            return violation(
                Invariant::ErrorShape,
                format!("not a JSON-RPC message: {}", short(message)),
            );
        };
        if object.get("jsonrpc") != Some(&Value::from("2.0")) {
            return violation(
                Invariant::ErrorShape,
                format!("`jsonrpc` is not \"2.0\": {}", short(message)),
            );
        }
        let is_response = object.contains_key("result") || object.contains_key("error");
        if !is_response {
            continue;
        }
        if object.contains_key("error") {
            if let Some(v) = error_shape(message) {
                return violation(Invariant::ErrorShape, format!("{v}: {}", short(message)));
            }
        }
        match object.get("id") {
            None | Some(Value::Null) if object.contains_key("error") => {}
            Some(id) if sent.contains(id) => {}
            Some(id) if foreign(id) => {
                return violation(
                    Invariant::Crossed,
                    format!(
                        "a response with id {id}, which another request sent: {}",
                        short(message)
                    ),
                );
            }
            other => {
                return violation(
                    Invariant::WrongId,
                    format!(
                        "a response with id {:?}, which this request did not send: {}",
                        other,
                        short(message)
                    ),
                );
            }
        }
    }
    None
}

/// What is wrong with a JSON-RPC error object, if anything.
fn error_shape(message: &Value) -> Option<String> {
    let error = message.get("error")?;
    if message.get("jsonrpc") != Some(&Value::from("2.0")) {
        return Some("`jsonrpc` is not \"2.0\"".into());
    }
    if !error.get("code").is_some_and(|c| c.is_i64()) {
        return Some("`error.code` is not an integer".into());
    }
    if !error.get("message").is_some_and(Value::is_string) {
        return Some("`error.message` is not a string".into());
    }
    None
}

fn short(value: &Value) -> String {
    let text = value.to_string();
    text.chars().take(300).collect()
}

fn snippet(answer: &Answer) -> String {
    String::from_utf8_lossy(&answer.body[..answer.body.len().min(300)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::super::case::{HeaderVal, Method};
    use super::super::wire::Answer;
    use super::*;
    use bytes::Bytes;

    fn case(body: &str) -> Case {
        Case {
            method: Method::Post,
            headers: vec![("authorization".into(), HeaderVal::Token)],
            body: Some(body.as_bytes().to_vec()),
            copies: 1,
        }
    }

    fn answer(status: u16, body: &str) -> Outcome {
        Outcome::Answer(Answer {
            status,
            content_type: "application/json".into(),
            body: Bytes::from(body.to_string()),
            body_late: false,
            session_id: None,
        })
    }

    #[test]
    fn invariants_are_told_apart() {
        let c = case(r#"{"jsonrpc":"2.0","id":"fz-1-0","method":"ping"}"#);
        let none = |_: &Value| false;
        let ok = answer(200, r#"{"jsonrpc":"2.0","id":"fz-1-0","result":{}}"#);
        assert!(check(&c, &ok, &none).is_none());
        let err = answer(
            400,
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"x"}}"#,
        );
        assert!(check(&c, &err, &none).is_none());
        let kind = |o: &Outcome, f: &dyn Fn(&Value) -> bool| check(&c, o, f).map(|v| v.invariant);
        assert_eq!(
            kind(&answer(500, "{}"), &none),
            Some(Invariant::ServerError)
        );
        assert_eq!(
            kind(
                &answer(
                    503,
                    r#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"busy"}}"#
                ),
                &none
            ),
            None
        );
        assert_eq!(
            kind(&answer(404, "not found"), &none),
            Some(Invariant::ErrorShape)
        );
        assert_eq!(
            kind(
                &answer(200, r#"{"jsonrpc":"2.0","id":7,"result":{}}"#),
                &none
            ),
            Some(Invariant::WrongId)
        );
        assert_eq!(
            kind(
                &answer(200, r#"{"jsonrpc":"2.0","id":7,"result":{}}"#),
                &|_| true
            ),
            Some(Invariant::Crossed)
        );
        assert_eq!(kind(&Outcome::Late, &none), Some(Invariant::Late));
    }
}
