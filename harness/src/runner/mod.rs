//! Runs scenarios against a target: requests, named streams, captures, identities and pacing.

mod check;
mod transcript;

pub(crate) use check::shorten;
pub use check::Failure;

use crate::client::{Answer, Client, Request};
use crate::eras::Eras;
use crate::interp::{self, Vars};
use crate::report::{Outcome, Report, ScenarioReport, StepOutcome, StepReport};
use crate::scenario::{self, Action, Body, Identity, Profile, Scenario, Send, StatusSpec, Step};
use check::View;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;
use transcript::Transcript;

/// Variables every scenario can use: `${target}` (the MCP endpoint URL), `${origin}`
/// (scheme://host[:port]), `${mcp_path}` (its path), `${i}` (the copy index in a concurrent step),
/// and `${token}` / `${token_b}` when tokens are configured (values are redacted in transcripts).
pub const BUILTIN_VARS: &[&str] = &["target", "origin", "mcp_path", "i", "token", "token_b"];

/// Everything a run needs besides the scenarios.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The MCP endpoint, e.g. `https://mcp.example.com/mcp`.
    pub target: url::Url,
    /// Token A (identity `a`).
    pub token: Option<String>,
    /// Token B (identity `b`).
    pub second_token: Option<String>,
    /// `live` runs only `profile = "live"` scenarios; `local` runs everything.
    pub profile: Profile,
    /// Run only scenarios with one of these tags (all when empty).
    pub include_tags: Vec<String>,
    /// Leave out scenarios with any of these tags.
    pub exclude_tags: Vec<String>,
    /// `--var` values; they override scenario defaults.
    pub vars: Vars,
    /// Minimum time between any two requests.
    pub min_interval: Duration,
    /// Minimum time between two `paced = true` requests (auth-related endpoints).
    pub paced_interval: Duration,
    /// Bound of every wait when neither the step nor the scenario sets one.
    pub default_timeout: Duration,
    /// Longest `Retry-After` honoured before the single retry of a 429.
    pub max_retry_wait: Duration,
    /// Print a progress line per scenario to stderr.
    pub progress: bool,
    /// Warnings (failed SHOULD/MAY checks) fail the run too; for certifying a reference
    /// deployment whose own contract is stricter than the spec.
    pub strict: bool,
    /// Probe the target's eras before the scenarios (`run`), or before a scenario about the
    /// 2026-07-28 era (`run_scenario`), unless [`RunConfig::eras`] already says.
    pub discover_eras: bool,
    /// The target's eras when known in advance (no probes then).
    pub eras: Option<Eras>,
    /// `--require-era`: eras the target must serve; scenarios for them fail instead of being
    /// skipped, and the run fails when one is missing.
    pub require_eras: Vec<String>,
}

impl RunConfig {
    /// Defaults for a profile: `live` keeps paced requests under 10 per minute and spaces all
    /// requests by 250 ms; `local` does not pace.
    pub fn new(target: url::Url, profile: Profile) -> RunConfig {
        let (min_interval, paced_interval) = match profile {
            Profile::Live => (Duration::from_millis(250), Duration::from_millis(6500)),
            Profile::Local => (Duration::ZERO, Duration::ZERO),
        };
        RunConfig {
            target,
            token: None,
            second_token: None,
            profile,
            include_tags: Vec::new(),
            exclude_tags: Vec::new(),
            vars: Vars::new(),
            min_interval,
            paced_interval,
            default_timeout: Duration::from_secs(10),
            max_retry_wait: Duration::from_secs(30),
            progress: false,
            strict: false,
            discover_eras: true,
            eras: None,
            require_eras: Vec::new(),
        }
    }

    /// True when the tag filters select the scenario.
    pub fn selects(&self, scenario: &Scenario) -> bool {
        let has = |tag: &String| scenario.tags.contains(tag);
        (self.include_tags.is_empty() || self.include_tags.iter().any(has))
            && !self.exclude_tags.iter().any(has)
    }

    /// Token values to scrub from transcripts, raw and percent-encoded (as in a query string).
    fn secrets(&self) -> Vec<String> {
        let mut secrets = Vec::new();
        for token in [&self.token, &self.second_token].into_iter().flatten() {
            if token.is_empty() {
                continue;
            }
            let encoded: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
            if encoded != *token {
                secrets.push(encoded);
            }
            secrets.push(token.clone());
        }
        secrets
    }
}

/// Spaces requests out across a whole run.
#[derive(Debug, Default)]
pub struct Pacer {
    last: Mutex<(Option<Instant>, Option<Instant>)>,
}

impl Pacer {
    pub(crate) async fn wait(&self, config: &RunConfig, paced: bool) {
        let mut last = self.last.lock().await;
        let now = Instant::now();
        let mut ready = now;
        if let Some(any) = last.0 {
            ready = ready.max(any + config.min_interval);
        }
        if paced {
            if let Some(p) = last.1 {
                ready = ready.max(p + config.paced_interval);
            }
        }
        tokio::time::sleep_until(ready).await;
        let sent = Instant::now();
        last.0 = Some(sent);
        if paced {
            last.1 = Some(sent);
        }
    }
}

/// Runs scenarios one after another and collects the report.
pub async fn run(config: &RunConfig, scenarios: &[Scenario]) -> Report {
    let started = std::time::Instant::now();
    let pacer = Pacer::default();
    let client = Client::new();
    let selected: Vec<&Scenario> = scenarios.iter().filter(|s| config.selects(s)).collect();
    let eras = match (&config.eras, &client) {
        (Some(eras), _) => Some(eras.clone()),
        (None, Ok(client)) if config.discover_eras => {
            let eras = crate::eras::discover(config, client, &pacer).await;
            if config.progress {
                eprintln!("{}", eras.line());
            }
            Some(eras)
        }
        _ => None,
    };
    let mut reports = Vec::new();
    for (n, scenario) in selected.iter().enumerate() {
        if config.progress {
            eprintln!("[{}/{}] {}", n + 1, selected.len(), scenario.id);
        }
        let report = match &client {
            Ok(client) => run_scenario_with(config, client, &pacer, eras.as_ref(), scenario).await,
            Err(e) => ScenarioReport::errored(scenario, e.to_string()),
        };
        if config.progress {
            eprintln!(
                "[{}/{}] {} {}",
                n + 1,
                selected.len(),
                report.outcome,
                scenario.id
            );
        }
        reports.push(report);
    }
    let mut report = Report::new(config, reports, started.elapsed());
    if let Some(eras) = eras {
        report.missing_required_eras = crate::eras::missing_required(&eras, &config.require_eras);
        report.eras = eras.served.clone();
        report.era_discovery = Some(eras);
    }
    report
}

/// Runs one scenario with a fresh client and pacer (for one-test-per-file runners).
///
/// Eras are probed first only when the scenario is about the 2026-07-28 era (tags `2026-07-28`,
/// `dual-era`, `modern-only`) and [`RunConfig::eras`] does not say, so legacy scenarios send
/// exactly what they did before eras existed.
pub async fn run_scenario(config: &RunConfig, scenario: &Scenario) -> ScenarioReport {
    let client = match Client::new() {
        Ok(client) => client,
        Err(e) => return ScenarioReport::errored(scenario, e.to_string()),
    };
    let pacer = Pacer::default();
    let eras = match &config.eras {
        Some(eras) => Some(eras.clone()),
        None if config.discover_eras && scenario.concerns_modern_era() => {
            Some(crate::eras::discover(config, &client, &pacer).await)
        }
        None => None,
    };
    run_scenario_with(config, &client, &pacer, eras.as_ref(), scenario).await
}

/// Loads one scenario file (its id relative to `root`) and runs it: the entry point for
/// one-test-per-file runners. A malformed file is an error, not a failed report.
pub async fn run_file(
    config: &RunConfig,
    root: &std::path::Path,
    path: &std::path::Path,
) -> Result<ScenarioReport, scenario::ScenarioError> {
    let scenario = scenario::load_file(root, path)?;
    Ok(run_scenario(config, &scenario).await)
}

/// Why a scenario cannot run under this configuration, if so.
pub fn skip_reason(config: &RunConfig, scenario: &Scenario) -> Option<String> {
    if config.profile == Profile::Live && scenario.profile == Profile::Local {
        return Some("local profile scenario (run with --profile local)".to_string());
    }
    if scenario.needs_token() && config.token.is_none() {
        return Some("needs a token (--token-env)".to_string());
    }
    if scenario.needs_second_token() && config.second_token.is_none() {
        return Some("needs a second token (--second-token-env)".to_string());
    }
    let mut extra = config.vars.clone();
    for name in ["token", "token_b"] {
        extra.remove(name);
    }
    if config.token.is_some() {
        extra.insert("token".into(), Value::Null);
    }
    if config.second_token.is_some() {
        extra.insert("token_b".into(), Value::Null);
    }
    let missing: Vec<String> = scenario::undefined_vars(scenario, &extra)
        .into_iter()
        .filter(|name| !["token", "token_b"].contains(&name.as_str()) || !extra.contains_key(name))
        .collect();
    if !missing.is_empty() {
        return Some(format!("needs --var {}", missing.join(", --var ")));
    }
    None
}

struct Stream {
    answer: Answer,
    cursor: usize,
}

struct ScenarioRun<'a> {
    config: &'a RunConfig,
    client: &'a Client,
    pacer: &'a Pacer,
    scenario: &'a Scenario,
    vars: Vars,
    streams: HashMap<String, Stream>,
    transcript: Transcript,
}

/// Runs one scenario with a shared client and pacer.
/// With `eras`, a scenario for an era the target does not serve is skipped with the reason, or
/// fails when `--require-era` names that era.
pub async fn run_scenario_with(
    config: &RunConfig,
    client: &Client,
    pacer: &Pacer,
    eras: Option<&Eras>,
    scenario: &Scenario,
) -> ScenarioReport {
    let started = std::time::Instant::now();
    if let Some(miss) = eras.and_then(|eras| crate::eras::skip_reason(eras, scenario)) {
        if crate::eras::required(&config.require_eras, &miss.era) {
            return ScenarioReport::errored(
                scenario,
                format!("--require-era {}: {}", miss.era, miss.reason),
            );
        }
        return ScenarioReport::skipped(scenario, miss.reason);
    }
    if let Some(reason) = skip_reason(config, scenario) {
        return ScenarioReport::skipped(scenario, reason);
    }
    let mut vars = scenario.vars.clone();
    vars.extend(config.vars.clone());
    vars.insert("target".into(), Value::String(config.target.to_string()));
    vars.insert(
        "origin".into(),
        Value::String(config.target.origin().ascii_serialization()),
    );
    vars.insert(
        "mcp_path".into(),
        Value::String(config.target.path().to_string()),
    );
    if let Some(token) = &config.token {
        vars.insert("token".into(), Value::String(token.clone()));
    }
    if let Some(token) = &config.second_token {
        vars.insert("token_b".into(), Value::String(token.clone()));
    }
    let mut run = ScenarioRun {
        config,
        client,
        pacer,
        scenario,
        vars,
        streams: HashMap::new(),
        transcript: Transcript {
            lines: Vec::new(),
            secrets: config.secrets(),
        },
    };
    let mut steps = Vec::new();
    let mut failed = false;
    for step in &scenario.steps {
        if failed && !step.always {
            steps.push(StepReport::new(step, StepOutcome::Skipped, None));
            continue;
        }
        run.transcript
            .push(format!("# step {}: {}", step.index, step.name));
        let result = run.step(step).await;
        let outcome = match (&result, failed) {
            (Ok(()), _) => StepOutcome::Pass,
            (Err(_), true) => StepOutcome::Warn,
            (Err(_), false) if step.level.is_advisory() => StepOutcome::Warn,
            (Err(_), false) => {
                failed = true;
                StepOutcome::Fail
            }
        };
        if let Err(failure) = &result {
            run.transcript
                .push(format!("# step {} failed: {failure}", step.index));
        }
        steps.push(StepReport::new(step, outcome, result.err()));
    }
    run.streams.clear();
    let outcome = if steps.iter().any(|s| s.outcome == StepOutcome::Fail) {
        Outcome::Fail
    } else if steps.iter().any(|s| s.outcome == StepOutcome::Warn) {
        Outcome::Warn
    } else {
        Outcome::Pass
    };
    ScenarioReport::finished(
        scenario,
        outcome,
        steps,
        run.transcript.tail(30),
        started.elapsed(),
    )
}

fn interp_text(template: &str, vars: &Vars) -> Result<String, Failure> {
    interp::text(template, vars).map_err(|e| Failure::new(e.to_string()))
}

impl ScenarioRun<'_> {
    fn within(&self, step: &Step) -> Result<Duration, Failure> {
        match step.within.as_ref().or(self.scenario.timeout.as_ref()) {
            Some(template) => {
                let text = interp_text(template, &self.vars)?;
                scenario::parse_duration(&text).map_err(Failure::new)
            }
            None => Ok(self.config.default_timeout),
        }
    }

    async fn step(&mut self, step: &Step) -> Result<(), Failure> {
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

    fn build_request(&self, step: &Step, send: &Send, vars: &Vars) -> Result<Request, Failure> {
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
    async fn send_once(
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

    async fn request(
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

    fn check_head(&mut self, step: &Step, answer: &Answer) -> Result<(), Failure> {
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

    fn capture(&mut self, step: &Step, view: &View<'_>) -> Result<(), Failure> {
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

    /// Reads a named stream until the step's checks pass, the stream ends or the bound runs out.
    async fn read(&mut self, step: &Step, name: &str, within: Duration) -> Result<(), Failure> {
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

    async fn concurrent(
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

fn has_body_checks(step: &Step) -> bool {
    let e = &step.expect;
    e.body.is_some()
        || e.json.is_some()
        || e.response.is_some()
        || e.sse.is_some()
        || !e.sse_none.is_empty()
        || e.sse_end.is_some()
        || e.comment
        || step
            .captures
            .iter()
            .any(|(_, c)| !matches!(c.source, crate::scenario::CaptureSource::Header(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pacer_spaces_requests_and_paced_ones_more() {
        let mut config = RunConfig::new(
            url::Url::parse("http://127.0.0.1:1/mcp").unwrap(),
            Profile::Live,
        );
        config.min_interval = Duration::from_millis(250);
        config.paced_interval = Duration::from_secs(6);
        let pacer = Pacer::default();
        let start = Instant::now();
        pacer.wait(&config, true).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        pacer.wait(&config, false).await;
        assert_eq!(start.elapsed(), Duration::from_millis(250));
        pacer.wait(&config, true).await;
        assert_eq!(start.elapsed(), Duration::from_secs(6));
        pacer.wait(&config, false).await;
        assert_eq!(start.elapsed(), Duration::from_millis(6250));
    }

    #[test]
    fn live_and_local_defaults() {
        let url = url::Url::parse("http://127.0.0.1:1/mcp").unwrap();
        let live = RunConfig::new(url.clone(), Profile::Live);
        assert!(
            live.paced_interval >= Duration::from_secs(6),
            "under 10 per minute"
        );
        let local = RunConfig::new(url, Profile::Local);
        assert_eq!(local.paced_interval, Duration::ZERO);
    }

    /// The request a scenario's step `index` (0-based) would send, with `vars`.
    fn built(text: &str, index: usize, vars: Vars) -> Request {
        let scenario =
            scenario::parse_scenario(text, std::path::Path::new("scenarios/x.toml"), "x".into())
                .unwrap();
        let config = RunConfig::new(
            url::Url::parse("http://127.0.0.1:1/mcp").unwrap(),
            Profile::Local,
        );
        let client = Client::new().unwrap();
        let pacer = Pacer::default();
        let run = ScenarioRun {
            config: &config,
            client: &client,
            pacer: &pacer,
            scenario: &scenario,
            vars: vars.clone(),
            streams: HashMap::new(),
            transcript: Transcript {
                lines: Vec::new(),
                secrets: Vec::new(),
            },
        };
        let step = &scenario.steps[index];
        let Action::Request { send, .. } = &step.action else {
            panic!("not a request step")
        };
        run.build_request(step, send, &vars).unwrap()
    }

    fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
        request
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    const MODERN: &str = r#"
[defaults]
modern = true
headers = { "MCP-Protocol-Version" = "from-defaults" }
[[step]]
send.json = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"café","arguments":{}}}'
[[step]]
send.json = '{"jsonrpc":"2.0","id":2,"method":"resources/read","params":{"uri":"test://static-text"}}'
send.meta_omit = ["protocolVersion"]
send.headers = { "mcp-method" = "tools/list", "Mcp-Name" = { base64 = "${name}" } }
send.omit_headers = ["MCP-Protocol-Version"]
[[step]]
send.modern = false
send.json = '{"jsonrpc":"2.0","id":3,"method":"tools/list"}'
[[step]]
send.raw = '{"jsonrpc":"2.0","id":4,"method":"tools/list"}'
"#;

    #[test]
    fn modern_helper_fills_meta_and_mirrors_headers() {
        let mut vars = Vars::new();
        vars.insert("name".into(), Value::from("test://static-text"));
        vars.insert(
            "client_capabilities".into(),
            serde_json::json!({"sampling": {}}),
        );
        let call = built(MODERN, 0, vars.clone());
        let body: Value = serde_json::from_slice(call.body.as_ref().unwrap()).unwrap();
        let meta = &body["params"]["_meta"];
        assert_eq!(
            meta["io.modelcontextprotocol/protocolVersion"],
            "2026-07-28"
        );
        assert_eq!(
            meta["io.modelcontextprotocol/clientCapabilities"],
            serde_json::json!({"sampling": {}})
        );
        assert_eq!(body["params"]["arguments"], serde_json::json!({}));
        // The mirrored header replaces the [defaults] one; a non-ASCII name is encoded.
        assert_eq!(header(&call, "MCP-Protocol-Version"), Some("2026-07-28"));
        assert_eq!(header(&call, "Mcp-Method"), Some("tools/call"));
        assert_eq!(header(&call, "Mcp-Name"), Some("=?base64?Y2Fmw6k=?="));

        let read = built(MODERN, 1, vars.clone());
        let body: Value = serde_json::from_slice(read.body.as_ref().unwrap()).unwrap();
        assert!(body["params"]["_meta"]
            .get("io.modelcontextprotocol/protocolVersion")
            .is_none());
        assert_eq!(header(&read, "MCP-Protocol-Version"), None, "omitted");
        assert_eq!(
            header(&read, "Mcp-Method"),
            Some("tools/list"),
            "a step's header wins, whatever its case"
        );
        assert_eq!(
            read.headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("mcp-method"))
                .count(),
            1
        );
        assert_eq!(
            header(&read, "Mcp-Name"),
            Some("=?base64?dGVzdDovL3N0YXRpYy10ZXh0?=")
        );

        let legacy = built(MODERN, 2, vars.clone());
        let body: Value = serde_json::from_slice(legacy.body.as_ref().unwrap()).unwrap();
        assert!(body.get("params").is_none(), "send.modern = false");
        assert_eq!(
            header(&legacy, "MCP-Protocol-Version"),
            Some("from-defaults")
        );
        assert_eq!(header(&legacy, "Mcp-Method"), None);

        let raw = built(MODERN, 3, vars);
        assert_eq!(
            raw.body.as_deref(),
            Some(&br#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#[..]),
            "raw bodies are sent as written"
        );
    }

    #[test]
    fn transcripts_redact_tokens_everywhere() {
        let mut transcript = Transcript {
            lines: Vec::new(),
            secrets: vec!["s3cr3t".into()],
        };
        transcript.request(&Request {
            method: "POST".into(),
            url: url::Url::parse("http://h/mcp?access_token=s3cr3t").unwrap(),
            headers: vec![("Authorization".into(), "Bearer s3cr3t".into())],
            body: Some(b"{\"t\":\"s3cr3t\"}".to_vec()),
            title_case: false,
        });
        let text = transcript.tail(10).join("\n");
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(
            text.contains("> Authorization: Bearer <redacted>"),
            "{text}"
        );
        assert!(text.contains("access_token=<redacted>"), "{text}");
    }
}
