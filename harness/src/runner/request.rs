//! Requests of a step: built from the scenario (interpolated), paced (honouring one `Retry-After`),
//! sent, and repeated while the step asks for it.

use super::check::{self, Failure, View};
use super::{has_body_checks, interp_text, ScenarioRun, Stream};
use crate::client::{Answer, Request};
use crate::interp::{self, Vars};
use crate::scenario::{Body, Identity, Send, StatusSpec, Step};
use std::time::Duration;
use tokio::time::Instant;

impl ScenarioRun<'_> {
    pub(super) fn build_request(
        &self,
        step: &Step,
        send: &Send,
        vars: &Vars,
    ) -> Result<Request, Failure> {
        let url = if let Some(url) = &send.url {
            let text = interp_text(url, vars)?;
            url::Url::parse(&text).map_err(|e| Failure::new(format!("bad url {text:?}: {e}")))?
        } else if let Some(path) = &send.path {
            let text = interp_text(path, vars)?;
            self.config
                .target
                .join(&text)
                .map_err(|e| Failure::new(format!("bad path {text:?}: {e}")))?
        } else {
            self.config.target.clone()
        };
        let modern = send.modern.unwrap_or(self.scenario.modern);
        let mut mirrored = Vec::new();
        let mut body = match &send.body {
            Body::None => None,
            Body::Json(template) => {
                let mut value =
                    interp::json(template, vars).map_err(|e| Failure::new(e.to_string()))?;
                if modern {
                    crate::modern::fill_meta(&mut value, vars, &send.meta_omit);
                    mirrored = crate::modern::mirrored_headers(&value, vars);
                }
                Some(value.to_string().into_bytes())
            }
            Body::Raw(template) => Some(interp_text(template, vars)?.into_bytes()),
        };
        if send.pad_bytes > 0 {
            body.get_or_insert_with(Vec::new)
                .extend(std::iter::repeat_n(b' ', send.pad_bytes));
        }
        let mut headers: Vec<(String, String)> = Vec::new();
        let set = |headers: &mut Vec<(String, String)>, name: &str, value: String| {
            headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
            headers.push((name.to_string(), value));
        };
        match send.method.as_str() {
            "GET" => set(&mut headers, "Accept", "text/event-stream".into()),
            "DELETE" => {}
            _ => set(
                &mut headers,
                "Accept",
                "application/json, text/event-stream".into(),
            ),
        }
        if body.is_some() {
            set(&mut headers, "Content-Type", "application/json".into());
        }
        let token = match step.identity {
            Identity::A => self.config.token.as_ref(),
            Identity::B => self.config.second_token.as_ref(),
            Identity::None => None,
        };
        if let Some(token) = token {
            set(&mut headers, "Authorization", format!("Bearer {token}"));
        }
        if send.use_defaults {
            for (name, template) in &self.scenario.default_headers {
                // A default whose variables are not captured yet is left out.
                if let Ok(value) = interp::text(template, vars) {
                    set(&mut headers, name, value);
                }
            }
        }
        // The mirrored modern headers come after the defaults, so a step's own headers (a
        // mismatch on purpose) replace them and `omit_headers` removes them.
        for (name, value) in mirrored {
            set(&mut headers, &name, value);
        }
        for (name, template) in &send.headers {
            let mut value = interp_text(&template.template, vars)?;
            if template.base64 {
                value = crate::modern::base64_sentinel(&value);
            }
            set(&mut headers, name, value);
        }
        headers.retain(|(k, _)| !send.omit_headers.iter().any(|o| o.eq_ignore_ascii_case(k)));
        Ok(Request {
            method: send.method.clone(),
            url,
            headers,
            body,
            title_case: send.title_case_headers,
        })
    }

    /// Sends with pacing, honouring one `Retry-After` on an unexpected 429.
    /// Returns the answer and the instant the (last) request went out, so that waits for the
    /// body are bounded from there rather than from before the pacing delay.
    pub(super) async fn send_once(
        &mut self,
        step: &Step,
        request: &Request,
        within: Duration,
        accepts_429: bool,
    ) -> Result<(Answer, Instant), Failure> {
        let mut retried = false;
        loop {
            self.pacer.wait(self.config, step.paced).await;
            let sent = Instant::now();
            self.transcript.request(request);
            let answer = self
                .client
                .send(request, within)
                .await
                .map_err(|e| Failure::new(e.to_string()))?;
            self.transcript.answer_head(&answer);
            if answer.status == 429 && !accepts_429 && !retried {
                let wait = answer
                    .header("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs)
                    .unwrap_or(Duration::from_secs(1))
                    .min(self.config.max_retry_wait);
                self.transcript.push(format!(
                    "# 429: waiting {wait:?} (Retry-After), then retrying once"
                ));
                drop(answer);
                tokio::time::sleep(wait).await;
                retried = true;
                continue;
            }
            return Ok((answer, sent));
        }
    }

    pub(super) async fn request(
        &mut self,
        step: &Step,
        send: &Send,
        stream: Option<&str>,
        repeat: u32,
        until: Option<&StatusSpec>,
        within: Duration,
    ) -> Result<(), Failure> {
        let accepts_429 = step.expect.status.as_ref().is_some_and(|s| s.accepts(429))
            || until.is_some_and(|u| u.accepts(429));
        let request = self.build_request(step, send, &self.vars)?;
        let mut tries = 0;
        loop {
            tries += 1;
            let (mut answer, sent) = self.send_once(step, &request, within, accepts_429).await?;
            let deadline = sent + within;
            if let Some(until) = until {
                if !until.accepts(answer.status) {
                    if tries < repeat {
                        continue;
                    }
                    return Err(Failure::new(format!(
                        "status {until} not reached after {tries} tries; last status {}",
                        answer.status
                    )));
                }
            }
            if let Some(name) = stream {
                self.check_head(step, &answer)?;
                self.streams
                    .insert(name.to_string(), Stream { answer, cursor: 0 });
                if has_body_checks(step) {
                    return self.read(step, name, within).await;
                }
                return Ok(());
            }
            answer.body.wait_end(deadline).await;
            self.transcript.body(&answer, 0);
            let data = answer.body.snapshot();
            let view = View {
                status: Some(answer.status),
                headers: Some(&answer.headers),
                is_sse: answer.is_sse,
                data: &data,
                from: 0,
                full: data.ended,
            };
            check::evaluate(&step.expect, &view, &self.vars)?;
            self.capture(step, &view)?;
            if until.is_some() || tries >= repeat {
                return Ok(());
            }
        }
    }
}
