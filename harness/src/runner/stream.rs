//! Named streams: reading an SSE stream until a step's checks pass, and concurrent copies of a request.

use super::check::{self, Failure, View};
use super::ScenarioRun;
use crate::scenario::{Send, Step};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

impl ScenarioRun<'_> {
    /// Reads a named stream until the step's checks pass, the stream ends or the bound runs out.
    pub(super) async fn read(
        &mut self,
        step: &Step,
        name: &str,
        within: Duration,
    ) -> Result<(), Failure> {
        let deadline = Instant::now() + within;
        let waits_full = !step.expect.sse_none.is_empty()
            || step.expect.sse_end == Some(crate::scenario::StreamEnd::Open);
        let body_expect = crate::scenario::Expect {
            status: None,
            headers: Vec::new(),
            ..step.expect.clone()
        };
        let mut stream = self
            .streams
            .remove(name)
            .ok_or_else(|| Failure::new(format!("stream {name:?} is not open")))?;
        let result = loop {
            let data = stream.answer.body.snapshot();
            let view = View {
                status: None,
                headers: None,
                is_sse: stream.answer.is_sse,
                data: &data,
                from: stream.cursor,
                full: data.ended,
            };
            let verdict = check::evaluate(&body_expect, &view, &self.vars).and_then(|()| {
                step.captures
                    .iter()
                    .filter(|(_, c)| !matches!(c.source, crate::scenario::CaptureSource::Header(_)))
                    .filter_map(|(n, c)| match check::capture(n, c, &view) {
                        Ok(v) => Some(Ok((n.clone(), v))),
                        Err(_) if c.optional => None,
                        Err(failure) => Some(Err(failure)),
                    })
                    .collect::<Result<Vec<_>, _>>()
            });
            let finished = data.ended || Instant::now() >= deadline;
            match verdict {
                Ok(values) if !waits_full || finished => {
                    self.vars.extend(values);
                    break Ok(data.items.len());
                }
                Err(failure) if finished => break Err((failure, data.items.len())),
                _ => {}
            }
            stream.answer.body.wait_change(deadline).await;
        };
        let end = match &result {
            Ok(end) | Err((_, end)) => *end,
        };
        self.transcript.body(&stream.answer, stream.cursor);
        stream.cursor = end;
        self.streams.insert(name.to_string(), stream);
        result.map(|_| ()).map_err(|(failure, _)| failure)
    }

    pub(super) async fn concurrent(
        &mut self,
        step: &Step,
        send: &Send,
        copies: u32,
        within: Duration,
    ) -> Result<(), Failure> {
        let mut requests = Vec::new();
        for i in 0..copies {
            let mut vars = self.vars.clone();
            vars.insert("i".into(), Value::from(i));
            requests.push((self.build_request(step, send, &vars)?, vars));
        }
        self.pacer.wait(self.config, step.paced).await;
        self.transcript.push(format!(
            "# sending {copies} copies at once; showing the first failing one (or the first)"
        ));
        let client = Arc::new(self.client.clone());
        let tasks = requests.into_iter().map(|(request, vars)| {
            let client = Arc::clone(&client);
            let expect = step.expect.clone();
            async move {
                let deadline = Instant::now() + within;
                let outcome = match client.send(&request, within).await {
                    Err(e) => Err(Failure::new(e.to_string())),
                    Ok(mut answer) => {
                        answer.body.wait_end(deadline).await;
                        let data = answer.body.snapshot();
                        let view = View {
                            status: Some(answer.status),
                            headers: Some(&answer.headers),
                            is_sse: answer.is_sse,
                            data: &data,
                            from: 0,
                            full: data.ended,
                        };
                        let verdict = check::evaluate(&expect, &view, &vars);
                        return (request, Some(answer), verdict);
                    }
                };
                (request, None, outcome)
            }
        });
        let results = futures_util::future::join_all(tasks).await;
        let failing = results.iter().position(|(_, _, v)| v.is_err());
        let shown = failing.unwrap_or(0);
        if let Some((request, answer, _)) = results.get(shown) {
            self.transcript.push(format!("# copy i={shown}"));
            self.transcript.request(request);
            if let Some(answer) = answer {
                self.transcript.answer_head(answer);
                self.transcript.body(answer, 0);
            }
        }
        match failing {
            Some(index) => {
                let failed = results.iter().filter(|(_, _, v)| v.is_err()).count();
                let (_, _, verdict) = &results[index];
                let failure = verdict.clone().expect_err("position found an error");
                Err(Failure {
                    message: format!(
                        "{failed} of {copies} copies failed; copy i={index}: {}",
                        failure.message
                    ),
                    mismatch: failure.mismatch,
                })
            }
            None => Ok(()),
        }
    }
}
