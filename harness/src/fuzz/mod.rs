//! `mcp-harness fuzz`: a wire-level fuzzer for any MCP Streamable HTTP deployment.
//!
//! It opens sessions, then sends mutated but bounded requests ([`case`]) at a bounded rate and
//! checks every answer ([`check`]): no 5xx other than 502/503, every error a JSON-RPC error
//! body whose id follows the rules, every answer within its bound, no answer crossing to
//! another request or session, and, after each case, a clean session that still works. The
//! run is reproducible from its random seed (`--seed`); a failure is shrunk (headers, body members dropped while
//! it persists) and reported with that seed and the smallest request that still fails.

pub mod cli;

mod case;
mod check;
mod rng;
mod wire;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::time::Instant;

pub use check::Invariant;

use case::{Case, Context, HeaderVal, Method};
use rng::Rng;
use wire::{Fill, Outcome};

/// Replays the shrinker may spend on one failure.
const MAX_SHRINK_REPLAYS: usize = 200;

#[derive(Clone, Debug)]
pub struct FuzzConfig {
    pub target: url::Url,
    pub token: Option<String>,
    pub duration: Duration,
    pub seed: u64,
    /// Requests per second, at most.
    pub rate: u32,
    /// The bound on every answer.
    pub answer_timeout: Duration,
    /// The protocol version asked for in initialize.
    pub protocol_version: String,
}

impl FuzzConfig {
    pub fn new(target: url::Url, seed: u64) -> FuzzConfig {
        FuzzConfig {
            target,
            token: None,
            duration: Duration::from_secs(60),
            seed,
            rate: 50,
            answer_timeout: Duration::from_secs(15),
            protocol_version: "2025-11-25".into(),
        }
    }
}

/// A failure, shrunk.
#[derive(Clone, Debug)]
pub struct Finding {
    pub invariant: Invariant,
    pub detail: String,
    /// The case number in the run (with the run's `--seed`, where a replay finds it).
    pub case_no: u64,
    /// The smallest request found that still breaks the invariant.
    pub minimal: String,
    pub original: String,
}

#[derive(Debug)]
pub struct FuzzReport {
    pub seed: u64,
    pub cases: u64,
    pub requests: u64,
    pub findings: Vec<Finding>,
}

impl FuzzReport {
    pub fn passed(&self) -> bool {
        self.findings.is_empty()
    }

    pub fn to_json(&self) -> String {
        let findings: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                json!({
                    "invariant": f.invariant.as_str(),
                    "detail": f.detail,
                    "case": f.case_no,
                    "minimal_request": f.minimal,
                    "original_request": f.original,
                })
            })
            .collect();
        serde_json::to_string_pretty(&json!({
            "seed": self.seed,
            "cases": self.cases,
            "requests": self.requests,
            "passed": self.passed(),
            "findings": findings,
        }))
        .unwrap_or_default()
    }

    pub fn to_human(&self) -> String {
        let mut out = format!(
            "mcp-harness fuzz: seed {}, {} cases, {} requests, {} finding(s)\n",
            self.seed,
            self.cases,
            self.requests,
            self.findings.len()
        );
        for f in &self.findings {
            out.push_str(&format!(
                "\nFINDING [{}] at case {} (seed {}): {}\n--- minimal failing request ---\n{}--- original request ---\n{}",
                f.invariant.as_str(),
                f.case_no,
                self.seed,
                f.detail,
                f.minimal,
                f.original
            ));
        }
        if !self.findings.is_empty() {
            out.push_str(&format!("\nreproduce with --seed {}\n", self.seed));
        }
        out
    }
}

/// Spaces requests to at most `rate` per second.
struct Pacer {
    next: Instant,
    period: Duration,
}

impl Pacer {
    async fn wait(&mut self) {
        tokio::time::sleep_until(self.next).await;
        self.next = Instant::now().max(self.next) + self.period;
    }
}

struct Fuzzer {
    config: FuzzConfig,
    client: reqwest::Client,
    pacer: Pacer,
    requests: u64,
    /// Protocol version the target negotiated.
    version: String,
    /// Two live fuzz sessions (cases run on the first; the second is "another session").
    sessions: [Option<String>; 2],
    /// The session kept clean (only pings) to check the target still serves.
    clean: Option<String>,
    /// Every request id sent, with the session it went to.
    sent_ids: HashMap<String, Option<String>>,
    event_ids: Vec<String>,
    counter: u64,
}

impl Fuzzer {
    fn fill(&self, own: Option<String>, other: Option<String>) -> Fill {
        Fill {
            token: self.config.token.clone(),
            own_session: own,
            other_session: other,
            version: self.version.clone(),
        }
    }

    async fn send(&mut self, case: &Case, fill: &Fill) -> Vec<Outcome> {
        let mut futures = Vec::new();
        for _ in 0..case.copies.max(1) {
            self.pacer.wait().await;
            self.requests += 1;
            futures.push(wire::send(
                &self.client,
                &self.config.target,
                case,
                fill,
                self.config.answer_timeout,
            ));
        }
        futures_util::future::join_all(futures).await
    }

    /// initialize + notifications/initialized; the new session's id.
    async fn open_session(&mut self) -> Result<Option<String>, check::Violation> {
        self.counter += 1;
        let id = format!("fz-open-{}", self.counter);
        let body = json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":{
            "protocolVersion": self.config.protocol_version,
            "capabilities": {},
            "clientInfo": {"name": "mcp-harness-fuzz", "version": env!("CARGO_PKG_VERSION")}}});
        let case = post_case(&body, false);
        let outcome = self.send(&case, &self.fill(None, None)).await.remove(0);
        let answer = self.healthy(&case, outcome, &id)?;
        if let Some(version) = answer
            .get("result")
            .and_then(|r| r.get("protocolVersion"))
            .and_then(Value::as_str)
        {
            self.version = version.to_string();
        }
        let session = answer
            .get("__session")
            .and_then(Value::as_str)
            .map(str::to_string);
        let note = post_case(
            &json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
            true,
        );
        let outcome = self
            .send(&note, &self.fill(session.clone(), None))
            .await
            .remove(0);
        if let Some(v) = check::check(&note, &outcome, &|_| false) {
            return Err(unhealthy(format!(
                "notifications/initialized: {}",
                v.detail
            )));
        }
        Ok(session)
    }

    /// The answer to a well-formed request (`id`) must be a 200 with its result.
    fn healthy(&self, case: &Case, outcome: Outcome, id: &str) -> Result<Value, check::Violation> {
        if let Some(v) = check::check(case, &outcome, &|_| false) {
            return Err(unhealthy(format!("{}: {}", v.invariant.as_str(), v.detail)));
        }
        let Outcome::Answer(answer) = outcome else {
            return Err(unhealthy("no answer"));
        };
        let (messages, _) = answer.messages();
        let found = messages
            .into_iter()
            .find(|m| m.get("id") == Some(&Value::from(id)));
        match found {
            Some(mut m) if answer.status == 200 && m.get("result").is_some() => {
                if let (Some(obj), Some(s)) = (m.as_object_mut(), answer.session_id) {
                    obj.insert("__session".into(), Value::String(s));
                }
                Ok(m)
            }
            _ => Err(unhealthy(format!(
                "status {} without the result for {id}",
                answer.status
            ))),
        }
    }

    /// A ping on the clean session (re-opened when it expired); every so often a whole new session.
    async fn health(&mut self, full: bool) -> Result<(), check::Violation> {
        if full || self.clean.is_none() {
            let fresh = self.open_session().await?;
            let old = std::mem::replace(&mut self.clean, fresh);
            if let Some(old) = old {
                self.delete(&old).await;
            }
        }
        self.counter += 1;
        let id = format!("fz-health-{}", self.counter);
        let case = post_case(&json!({"jsonrpc":"2.0","id":id,"method":"ping"}), true);
        let outcome = self
            .send(&case, &self.fill(self.clean.clone(), None))
            .await
            .remove(0);
        if let Outcome::Answer(a) = &outcome {
            if a.status == 404 {
                // Expired by the target's own idle rules: a new one must work.
                self.clean = None;
                return Box::pin(self.health(false)).await;
            }
        }
        self.healthy(&case, outcome, &id).map(|_| ())
    }

    async fn delete(&mut self, session: &str) {
        let case = Case {
            method: Method::Delete,
            headers: vec![
                ("authorization".into(), HeaderVal::Token),
                ("mcp-session-id".into(), HeaderVal::OwnSession),
                ("mcp-protocol-version".into(), HeaderVal::Version),
            ],
            body: None,
            copies: 1,
        };
        let _ = self
            .send(&case, &self.fill(Some(session.to_string()), None))
            .await;
    }

    async fn ensure_sessions(&mut self) -> Result<(), check::Violation> {
        for i in 0..2 {
            if self.sessions[i].is_none() {
                self.sessions[i] = self.open_session().await?;
            }
        }
        Ok(())
    }

    /// Runs `case` on the current sessions; the first violation, if any.
    async fn run_case(
        &mut self,
        case: &Case,
    ) -> Result<Option<check::Violation>, check::Violation> {
        self.ensure_sessions().await?;
        let own = self.sessions[0].clone();
        let other = self.sessions[1].clone();
        let target_session = case
            .headers
            .iter()
            .rev()
            .find(|(n, _)| n == "mcp-session-id")
            .and_then(|(_, v)| match v {
                HeaderVal::OwnSession => own.clone(),
                HeaderVal::OtherSession => other.clone(),
                HeaderVal::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            });
        for id in case.request_ids() {
            if let Some(id) = id.as_str() {
                self.sent_ids.insert(id.to_string(), target_session.clone());
            }
        }
        let outcomes = self.send(case, &self.fill(own.clone(), other)).await;
        let mine: Vec<String> = case
            .request_ids()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        let sent_ids = &self.sent_ids;
        let foreign = |id: &Value| {
            id.as_str()
                .is_some_and(|s| sent_ids.contains_key(s) && !mine.iter().any(|m| m == s))
        };
        let mut found = None;
        for outcome in &outcomes {
            if let Outcome::Answer(answer) = outcome {
                let (messages, ids) = answer.messages();
                self.event_ids.extend(ids);
                if case.method == Method::Get {
                    // On a GET stream, a response may only answer a request sent to the same session.
                    for m in &messages {
                        if let (Some(id), true) = (
                            m.get("id").and_then(Value::as_str),
                            m.get("result").is_some() || m.get("error").is_some(),
                        ) {
                            if let Some(session) = self.sent_ids.get(id) {
                                if *session != target_session {
                                    found = found.or(Some(check::Violation {
                                        invariant: Invariant::Crossed,
                                        detail: format!(
                                            "response {id} on another session's stream"
                                        ),
                                    }));
                                }
                            }
                        }
                    }
                }
            }
            if found.is_none() {
                found = check::check(case, outcome, &foreign);
            }
        }
        self.event_ids.truncate(64);
        // Sessions a case opened (an initialize without a session id) are ended at once, so
        // the run never piles them up against the target's session limit.
        let opened: Vec<String> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Answer(a) => a.session_id.clone(),
                _ => None,
            })
            .filter(|s| !self.sessions.contains(&Some(s.clone())))
            .collect();
        for s in opened {
            self.delete(&s).await;
        }
        // A DELETE may have ended either session: start the next case on fresh ones.
        if case.method == Method::Delete {
            let both = std::mem::take(&mut self.sessions);
            for s in both.into_iter().flatten() {
                self.delete(&s).await;
            }
        }
        Ok(found)
    }

    /// Smaller cases that still break `invariant`, until none does or the budget is spent.
    async fn shrink(&mut self, mut case: Case, invariant: Invariant) -> Case {
        let mut replays = 0;
        'outer: loop {
            for smaller in case.smaller() {
                if replays >= MAX_SHRINK_REPLAYS {
                    break 'outer;
                }
                replays += 1;
                if let Ok(Some(v)) = self.run_case(&smaller).await {
                    if v.invariant == invariant {
                        case = smaller;
                        continue 'outer;
                    }
                }
            }
            break;
        }
        case
    }
}

fn unhealthy(detail: impl Into<String>) -> check::Violation {
    check::Violation {
        invariant: Invariant::Unhealthy,
        detail: detail.into(),
    }
}

/// A well-formed POST of `body` on the case's own session (or, for initialize, on none).
fn post_case(body: &Value, with_session: bool) -> Case {
    let mut headers = vec![
        ("authorization".to_string(), HeaderVal::Token),
        (
            "accept".into(),
            HeaderVal::Bytes(b"application/json, text/event-stream".to_vec()),
        ),
        (
            "content-type".into(),
            HeaderVal::Bytes(b"application/json".to_vec()),
        ),
    ];
    if with_session {
        headers.push(("mcp-session-id".into(), HeaderVal::OwnSession));
        headers.push(("mcp-protocol-version".into(), HeaderVal::Version));
    }
    Case {
        method: Method::Post,
        headers,
        body: Some(serde_json::to_vec(body).unwrap_or_default()),
        copies: 1,
    }
}

/// Runs the fuzzer for `config.duration` (or until the first finding, which is shrunk).
pub async fn run(config: &FuzzConfig) -> anyhow::Result<FuzzReport> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(4)
        .build()?;
    let rate = config.rate.clamp(1, 10_000);
    let mut fuzzer = Fuzzer {
        client,
        pacer: Pacer {
            next: Instant::now(),
            period: Duration::from_secs(1) / rate,
        },
        requests: 0,
        version: config.protocol_version.clone(),
        sessions: [None, None],
        clean: None,
        sent_ids: HashMap::new(),
        event_ids: Vec::new(),
        counter: 0,
        config: config.clone(),
    };
    let mut rng = Rng::new(config.seed);
    let end = Instant::now() + config.duration;
    let mut findings = Vec::new();
    let mut case_no = 0;
    if let Err(v) = fuzzer.health(true).await {
        findings.push(Finding {
            invariant: v.invariant,
            detail: format!("before any case: {}", v.detail),
            case_no: 0,
            minimal: String::new(),
            original: String::new(),
        });
    }
    while findings.is_empty() && Instant::now() < end {
        case_no += 1;
        let event_ids = fuzzer.event_ids.clone();
        let case = case::generate(
            &mut rng,
            &Context {
                case_no,
                event_ids: &event_ids,
            },
        );
        let violation = match fuzzer.run_case(&case).await {
            Ok(v) => v,
            Err(v) => Some(v),
        };
        let violation = match violation {
            Some(v) => Some(v),
            None => fuzzer.health(case_no % 25 == 0).await.err(),
        };
        if let Some(v) = violation {
            let minimal = if v.invariant == Invariant::Unhealthy {
                case.clone()
            } else {
                fuzzer.shrink(case.clone(), v.invariant).await
            };
            findings.push(Finding {
                invariant: v.invariant,
                detail: v.detail,
                case_no,
                minimal: minimal.render(),
                original: case.render(),
            });
        }
    }
    if findings.is_empty() {
        if let Err(v) = fuzzer.health(true).await {
            findings.push(Finding {
                invariant: v.invariant,
                detail: format!("after the run: {}", v.detail),
                case_no,
                minimal: String::new(),
                original: String::new(),
            });
        }
    }
    for s in [
        fuzzer.sessions[0].clone(),
        fuzzer.sessions[1].clone(),
        fuzzer.clean.clone(),
    ]
    .into_iter()
    .flatten()
    {
        fuzzer.delete(&s).await;
    }
    Ok(FuzzReport {
        seed: config.seed,
        cases: case_no,
        requests: fuzzer.requests,
        findings,
    })
}
