//! The per-scenario transcript: request and response lines, with every secret redacted.

use super::check;
use crate::client::{Answer, Request};

/// Keeps the request/response lines of a scenario, with secrets redacted.
#[derive(Debug, Default)]
pub(crate) struct Transcript {
    pub(super) lines: Vec<String>,
    pub(super) secrets: Vec<String>,
}

impl Transcript {
    pub(super) fn push(&mut self, line: impl Into<String>) {
        let mut line: String = line.into();
        for secret in &self.secrets {
            line = line.replace(secret.as_str(), "<redacted>");
        }
        self.lines.push(check::shorten(&line, 300));
    }

    pub(super) fn request(&mut self, request: &Request) {
        self.push(format!("> {} {}", request.method, request.url));
        for (name, value) in &request.headers {
            if name.eq_ignore_ascii_case("authorization") {
                let scheme = value.split_whitespace().next().unwrap_or("");
                self.push(format!("> {name}: {scheme} <redacted>"));
            } else {
                self.push(format!("> {name}: {value}"));
            }
        }
        if let Some(body) = &request.body {
            self.push(format!(
                "> {} ({} bytes)",
                String::from_utf8_lossy(&body[..body.len().min(400)]).trim_end(),
                body.len()
            ));
        }
    }

    pub(super) fn answer_head(&mut self, answer: &Answer) {
        self.push(format!("< {}", answer.status));
        for (name, value) in &answer.headers {
            self.push(format!("< {name}: {value}"));
        }
    }

    pub(super) fn body(&mut self, answer: &Answer, from: usize) {
        let data = answer.body.snapshot();
        if answer.is_sse {
            for item in &data.items[from.min(data.items.len())..] {
                match &item.item {
                    crate::sse::SseItem::Event(e) => {
                        self.push(format!("< [event] {}", check::describe_event(e)))
                    }
                    crate::sse::SseItem::Comment(c) => self.push(format!("< [comment] {c:?}")),
                }
            }
        } else if from == 0 && !data.raw.is_empty() {
            let text = String::from_utf8_lossy(&data.raw).into_owned();
            self.push(format!("< {}", text.trim_end()));
        }
        if data.ended {
            if let Some(e) = &data.error {
                self.push(format!("< [body error] {e}"));
            } else if from == 0 || answer.is_sse {
                self.push(format!("< [end of body, {} bytes]", data.total));
            }
        }
    }

    pub(crate) fn tail(&self, n: usize) -> Vec<String> {
        self.lines[self.lines.len().saturating_sub(n)..].to_vec()
    }
}
