//! The measured calls: workers sharing one id counter, each on its own connection, and their tallies.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use hyper::Method;
use tokio::time::Instant;

use super::check::{check_reply, Expect};
use super::conn::Conn;
use super::session::Session;
use super::{Era, Plan};

/// Counters of one worker, merged at the end.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) latencies: Vec<u64>,
    pub(super) ok: u64,
    pub(super) errors: BTreeMap<String, u64>,
    pub(super) json: u64,
    pub(super) sse: u64,
    pub(super) reconnects: u64,
    pub(super) timed_out: bool,
}

impl Tally {
    pub(super) fn error(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    pub(super) fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.ok += other.ok;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        self.json += other.json;
        self.sse += other.sse;
        self.reconnects += other.reconnects;
        self.timed_out |= other.timed_out;
    }

    pub(super) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// `count` calls by `concurrency` workers.
pub(super) async fn phase(
    plan: &Arc<Plan>,
    sessions: &Arc<Vec<Session>>,
    ids: &Arc<AtomicU64>,
    concurrency: usize,
    count: u64,
) -> Tally {
    let base = ids.fetch_add(count, Ordering::Relaxed);
    let next = Arc::new(AtomicU64::new(0));
    let per_worker = (count as usize / concurrency) + 1;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let plan = plan.clone();
        let sessions = sessions.clone();
        let next = next.clone();
        tasks.spawn(worker(plan, sessions, next, base, count, per_worker));
    }
    let mut tally = Tally::default();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(part) => tally.merge(part),
            Err(_) => tally.error("worker panicked"),
        }
    }
    tally
}

pub(super) async fn worker(
    plan: Arc<Plan>,
    sessions: Arc<Vec<Session>>,
    next: Arc<AtomicU64>,
    base: u64,
    count: u64,
    capacity: usize,
) -> Tally {
    let mut tally = Tally {
        latencies: Vec::with_capacity(capacity),
        ..Tally::default()
    };
    let mut conn = Conn::new(plan.addr);
    let mut message = String::with_capacity(32);
    let mut digits = itoa_buffer();
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= count {
            break;
        }
        let id = base + index;
        let session = &sessions[(index % sessions.len() as u64) as usize];
        let id_text = format_u64(&mut digits, id);
        let mut body = Vec::with_capacity(160);
        body.extend_from_slice(plan.head);
        body.extend_from_slice(id_text);
        body.extend_from_slice(&plan.middle);
        match &plan.args {
            Some(args) => body.extend_from_slice(args),
            None => {
                message.clear();
                message.push_str("load-");
                message.push_str(std::str::from_utf8(id_text).unwrap_or("0"));
                body.extend_from_slice(br#"{"message":""#);
                body.extend_from_slice(message.as_bytes());
                body.extend_from_slice(br#""}"#);
            }
        }
        body.extend_from_slice(b"}}");
        let modern = plan.era == Era::Modern;
        let expect = match (&plan.args, &plan.fixed_text) {
            (None, _) if modern => Expect::CompleteText(&message),
            (None, _) => Expect::Text(&message),
            (Some(_), Some(text)) if plan.echo && modern => Expect::CompleteText(text),
            (Some(_), Some(text)) if plan.echo => Expect::Text(text),
            _ if modern => Expect::CompleteResult,
            _ => Expect::AnyResult,
        };
        let started = Instant::now();
        let sent = tokio::time::timeout_at(
            plan.deadline,
            conn.send(
                Method::POST,
                &plan.uri,
                &session.headers,
                Bytes::from(body),
                None,
            ),
        )
        .await;
        let reply = match sent {
            Err(_) => {
                tally.timed_out = true;
                tally.error("no reply before the run's time bound");
                break;
            }
            Ok(Err(e)) => {
                tally.error(format!("transport: {e}"));
                continue;
            }
            Ok(Ok(reply)) => reply,
        };
        let elapsed = started.elapsed();
        let content_type = reply.content_type.as_bytes();
        if content_type.starts_with(b"text/event-stream") {
            tally.sse += 1;
        } else {
            tally.json += 1;
        }
        match check_reply(reply.status, content_type, &reply.body, id, &expect) {
            Ok(()) => {
                tally.ok += 1;
                tally.latencies.push(elapsed.as_nanos() as u64);
            }
            Err(kind) => tally.error(kind.to_string()),
        }
    }
    tally.reconnects += conn.reconnects;
    tally
}

pub(super) type DigitBuffer = [u8; 20];

pub(super) fn itoa_buffer() -> DigitBuffer {
    [0; 20]
}

/// Decimal digits of `n` in `buf`, without allocating.
pub(super) fn format_u64(buf: &mut DigitBuffer, mut n: u64) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}
