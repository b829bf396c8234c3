//! One step of a scenario: its time bound, what it does, and the checks on a reply's head.

use super::check::{self, Failure, View};
use super::{interp_text, ScenarioRun};
use crate::client::Answer;
use crate::scenario::{self, Action, Step};
use std::time::Duration;

impl ScenarioRun<'_> {
    pub(super) fn within(&self, step: &Step) -> Result<Duration, Failure> {
        match step.within.as_ref().or(self.scenario.timeout.as_ref()) {
            Some(template) => {
                let text = interp_text(template, &self.vars)?;
                scenario::parse_duration(&text).map_err(Failure::new)
            }
            None => Ok(self.config.default_timeout),
        }
    }

    pub(super) async fn step(&mut self, step: &Step) -> Result<(), Failure> {
        let within = self.within(step)?;
        match &step.action {
            Action::Wait { duration } => {
                let text = interp_text(duration, &self.vars)?;
                let duration = scenario::parse_duration(&text).map_err(Failure::new)?;
                self.transcript.push(format!("# waiting {duration:?}"));
                tokio::time::sleep(duration).await;
                Ok(())
            }
            Action::Close { stream } => {
                self.streams.remove(stream);
                Ok(())
            }
            Action::Read { stream } => self.read(step, stream, within).await,
            Action::Request {
                send,
                stream,
                concurrency,
                repeat,
                until,
            } => {
                if *concurrency > 1 {
                    self.concurrent(step, send, *concurrency, within).await
                } else {
                    self.request(
                        step,
                        send,
                        stream.as_deref(),
                        *repeat,
                        until.as_ref(),
                        within,
                    )
                    .await
                }
            }
        }
    }

    pub(super) fn check_head(&mut self, step: &Step, answer: &Answer) -> Result<(), Failure> {
        let empty = Default::default();
        let view = View {
            status: Some(answer.status),
            headers: Some(&answer.headers),
            is_sse: answer.is_sse,
            data: &empty,
            from: 0,
            full: false,
        };
        let head_only = crate::scenario::Expect {
            status: step.expect.status.clone(),
            headers: step.expect.headers.clone(),
            ..Default::default()
        };
        check::evaluate(&head_only, &view, &self.vars)?;
        for (name, capture) in &step.captures {
            if let crate::scenario::CaptureSource::Header(_) = capture.source {
                match check::capture(name, capture, &view) {
                    Ok(value) => {
                        self.vars.insert(name.clone(), value);
                    }
                    Err(_) if capture.optional => {}
                    Err(failure) => return Err(failure),
                }
            }
        }
        Ok(())
    }

    pub(super) fn capture(&mut self, step: &Step, view: &View<'_>) -> Result<(), Failure> {
        for (name, capture) in &step.captures {
            match check::capture(name, capture, view) {
                Ok(value) => {
                    self.vars.insert(name.clone(), value);
                }
                Err(_) if capture.optional => {}
                Err(failure) => return Err(failure),
            }
        }
        Ok(())
    }
}
