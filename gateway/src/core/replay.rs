//! The budget for finished request streams kept for `Last-Event-ID`.
//!
//! Each stream is bounded by itself (SSE_REPLAY_EVENTS, SSE_REPLAY_BYTES) and each session keeps
//! at most 64 of them, but without a budget in bytes that multiplied to gigabytes per identity.
//! Here a finished stream is counted against its session (SSE_REPLAY_SESSION_BYTES) and against
//! the whole gateway (SSE_REPLAY_TOTAL_BYTES); when either is exceeded, the streams that finished
//! first are dropped first. A stream whose response was written to a connection is dropped once
//! SSE_RESUME_WINDOW_SECS have passed: a client that lost the end of it has that long to resume.
//!
//! A dropped stream's events are released at once ([`EventStream::discard`]); a resume of it gets
//! 410. A stream still being written to its connection is never dropped.
//!
//! Lock order: the ledger, then a stream. Streams call in here only without their own lock held.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::stream::EventStream;
use crate::metrics::METRICS;

/// How much finished request streams may hold, and for how long once delivered.
#[derive(Clone, Copy, Debug)]
pub struct ReplayLimits {
    /// Bytes one session keeps (SSE_REPLAY_SESSION_BYTES).
    pub session_bytes: usize,
    /// Bytes the whole gateway keeps (SSE_REPLAY_TOTAL_BYTES).
    pub total_bytes: usize,
    /// Time a delivered stream stays resumable (SSE_RESUME_WINDOW_SECS).
    pub resume_window: Duration,
}

impl ReplayLimits {
    /// No budget: for channels made outside the gateway (tests of other modules).
    pub fn unbounded() -> ReplayLimits {
        ReplayLimits {
            session_bytes: usize::MAX,
            total_bytes: usize::MAX,
            resume_window: Duration::from_secs(u64::from(u32::MAX)),
        }
    }
}

/// One process-wide ledger of finished, retained request streams.
pub struct ReplayBudget {
    limits: ReplayLimits,
    ledger: Mutex<Ledger>,
    /// Wakes the sweeper when a resume window starts (or the budget is dropped).
    wake: Arc<Notify>,
}

#[derive(Default)]
struct Ledger {
    next_ticket: u64,
    total: usize,
    /// Finished streams by ticket, which is their finish order.
    held: BTreeMap<u64, Held>,
    /// Stream uid → ticket.
    tickets: HashMap<u64, u64>,
    sessions: HashMap<u64, SessionLedger>,
    /// (deadline, stream uid) in delivery order; the window is the same for all, so the front
    /// is always due first.
    expiry: VecDeque<(Instant, u64)>,
    sweeper: bool,
}

struct Held {
    stream: Weak<EventStream>,
    uid: u64,
    session: u64,
    bytes: usize,
}

#[derive(Default)]
struct SessionLedger {
    bytes: usize,
    tickets: BTreeSet<u64>,
}

impl ReplayBudget {
    pub fn new(limits: ReplayLimits) -> Arc<ReplayBudget> {
        Arc::new(ReplayBudget {
            limits,
            ledger: Mutex::new(Ledger::default()),
            wake: Arc::new(Notify::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes held now, by all sessions.
    pub fn total_bytes(&self) -> usize {
        self.lock().total
    }

    /// Bytes held now by one session.
    pub fn session_bytes(&self, session: u64) -> usize {
        self.lock().sessions.get(&session).map_or(0, |s| s.bytes)
    }

    /// A retained stream of `session` has finished: count it, then drop the oldest finished
    /// streams while a budget is exceeded. Idempotent.
    pub fn settle(self: &Arc<Self>, stream: &Arc<EventStream>, session: u64) {
        let now = Instant::now();
        let mut ledger = self.lock();
        self.expire(&mut ledger, now);
        if ledger.tickets.contains_key(&stream.uid()) || stream.is_discarded() {
            return;
        }
        let ticket = ledger.next_ticket;
        ledger.next_ticket += 1;
        let bytes = stream.buffered_bytes();
        ledger.tickets.insert(stream.uid(), ticket);
        ledger.held.insert(
            ticket,
            Held {
                stream: Arc::downgrade(stream),
                uid: stream.uid(),
                session,
                bytes,
            },
        );
        let entry = ledger.sessions.entry(session).or_default();
        entry.bytes += bytes;
        entry.tickets.insert(ticket);
        ledger.total += bytes;
        METRICS
            .sse_replay_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        if stream.is_delivered() {
            self.start_window(&mut ledger, stream.uid(), now);
        }
        self.enforce(&mut ledger, Some(session));
    }

    /// A retained stream's response was written to a connection: its resume window starts, and
    /// it may now be dropped for the budgets.
    pub fn delivered(self: &Arc<Self>, stream: &EventStream, session: u64) {
        let now = Instant::now();
        let mut ledger = self.lock();
        if ledger.tickets.contains_key(&stream.uid()) {
            self.start_window(&mut ledger, stream.uid(), now);
        }
        self.expire(&mut ledger, now);
        self.enforce(&mut ledger, Some(session));
    }

    /// The channel let go of the stream (session ended, too many streams): stop counting it.
    pub fn forget(&self, uid: u64) {
        let mut ledger = self.lock();
        if let Some(ticket) = ledger.tickets.get(&uid).copied() {
            remove(&mut ledger, ticket);
        }
    }

    /// Drops every stream whose resume window is over.
    pub fn sweep(&self) {
        let mut ledger = self.lock();
        self.expire(&mut ledger, Instant::now());
    }

    fn start_window(self: &Arc<Self>, ledger: &mut Ledger, uid: u64, now: Instant) {
        ledger
            .expiry
            .push_back((now + self.limits.resume_window, uid));
        if !ledger.sweeper {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                ledger.sweeper = true;
                runtime.spawn(sweeper(Arc::downgrade(self), self.wake.clone()));
            }
        }
        self.wake.notify_one();
    }

    fn expire(&self, ledger: &mut Ledger, now: Instant) {
        while let Some(&(deadline, uid)) = ledger.expiry.front() {
            if deadline > now {
                break;
            }
            ledger.expiry.pop_front();
            if let Some(ticket) = ledger.tickets.get(&uid).copied() {
                if droppable(ledger, ticket) {
                    drop_stream(ledger, ticket);
                } else {
                    // A resume is replaying it right now: look again one window later.
                    ledger
                        .expiry
                        .push_back((now + self.limits.resume_window, uid));
                }
            }
        }
    }

    /// Oldest first: the session's own streams while it is over its budget, then anyone's while
    /// the gateway is over its total. A stream still being written to its connection stays.
    fn enforce(&self, ledger: &mut Ledger, session: Option<u64>) {
        if let Some(session) = session {
            let over = |l: &Ledger| {
                l.sessions.get(&session).map_or(0, |s| s.bytes) > self.limits.session_bytes
            };
            if over(ledger) {
                let candidates: Vec<u64> = ledger
                    .sessions
                    .get(&session)
                    .map(|s| s.tickets.iter().copied().collect())
                    .unwrap_or_default();
                for ticket in candidates {
                    if !over(ledger) {
                        break;
                    }
                    if droppable(ledger, ticket) {
                        drop_stream(ledger, ticket);
                    }
                }
            }
        }
        if ledger.total > self.limits.total_bytes {
            let candidates: Vec<u64> = ledger.held.keys().copied().collect();
            for ticket in candidates {
                if ledger.total <= self.limits.total_bytes {
                    break;
                }
                if droppable(ledger, ticket) {
                    drop_stream(ledger, ticket);
                }
            }
        }
    }
}

impl Drop for ReplayBudget {
    fn drop(&mut self) {
        let total = self.lock().total;
        METRICS
            .sse_replay_bytes
            .fetch_sub(total as u64, Ordering::Relaxed);
        // The sweeper holds only a weak reference: wake it so it sees we are gone.
        self.wake.notify_one();
    }
}

/// A stream may be dropped unless a reader would be cut short ([`EventStream::can_discard`]).
fn droppable(ledger: &Ledger, ticket: u64) -> bool {
    match ledger.held.get(&ticket).and_then(|h| h.stream.upgrade()) {
        Some(stream) => stream.can_discard(),
        None => true,
    }
}

/// Stops counting the stream of `ticket` and releases its events.
fn drop_stream(ledger: &mut Ledger, ticket: u64) {
    if let Some(stream) = remove(ledger, ticket) {
        tracing::debug!(
            stream = stream.id(),
            "replay buffer dropped (budget or resume window)"
        );
        stream.discard();
    }
}

fn remove(ledger: &mut Ledger, ticket: u64) -> Option<Arc<EventStream>> {
    let held = ledger.held.remove(&ticket)?;
    ledger.tickets.remove(&held.uid);
    if let Some(session) = ledger.sessions.get_mut(&held.session) {
        session.bytes -= held.bytes;
        session.tickets.remove(&ticket);
        if session.tickets.is_empty() {
            ledger.sessions.remove(&held.session);
        }
    }
    ledger.total -= held.bytes;
    METRICS
        .sse_replay_bytes
        .fetch_sub(held.bytes as u64, Ordering::Relaxed);
    held.stream.upgrade()
}

/// Drops delivered streams when their resume window ends, so an idle session does not keep
/// them until its next request. Ends when the budget is dropped.
async fn sweeper(budget: Weak<ReplayBudget>, wake: Arc<Notify>) {
    loop {
        let next = match budget.upgrade() {
            Some(budget) => {
                budget.sweep();
                let ledger = budget.lock();
                ledger.expiry.front().map(|(deadline, _)| *deadline)
            }
            None => return,
        };
        match next {
            Some(deadline) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn limits(session_bytes: usize, total_bytes: usize, window_secs: u64) -> ReplayLimits {
        ReplayLimits {
            session_bytes,
            total_bytes,
            resume_window: Duration::from_secs(window_secs),
        }
    }

    /// A finished, retained stream of `bytes` bytes whose connection went away.
    fn finished(id: u64, bytes: usize) -> Arc<EventStream> {
        let stream = Arc::new(EventStream::new(id, 16, 1));
        stream.push(Bytes::from(vec![b'x'; bytes]), true);
        assert!(stream.try_attach());
        stream.detach(stream.holder());
        stream
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_over_its_budget_loses_its_oldest_finished_streams_first() {
        let budget = ReplayBudget::new(limits(10, 1000, 60));
        let (a, b, c) = (finished(1, 4), finished(2, 4), finished(3, 4));
        budget.settle(&a, 7);
        budget.settle(&b, 7);
        assert_eq!(budget.session_bytes(7), 8);
        budget.settle(&c, 7);
        assert!(a.is_discarded(), "the oldest goes first");
        assert!(!b.is_discarded() && !c.is_discarded());
        assert_eq!(budget.session_bytes(7), 8);
        assert_eq!(a.buffered_bytes(), 0, "its events are released");
        assert!(!a.can_resume_after(0));
        assert!(b.can_resume_after(0));
        // Settling again counts nothing twice.
        budget.settle(&b, 7);
        assert_eq!(budget.total_bytes(), 8);
    }

    #[tokio::test(start_paused = true)]
    async fn the_total_budget_drops_the_oldest_finished_stream_of_any_session() {
        let budget = ReplayBudget::new(limits(100, 10, 60));
        let (a, b, c) = (finished(1, 4), finished(1, 4), finished(2, 4));
        budget.settle(&a, 1);
        budget.settle(&b, 2);
        budget.settle(&c, 2);
        assert!(a.is_discarded(), "session 1's stream finished first");
        assert!(!b.is_discarded() && !c.is_discarded());
        assert_eq!(budget.total_bytes(), 8);
        assert_eq!(budget.session_bytes(1), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_still_being_written_is_never_dropped() {
        let budget = ReplayBudget::new(limits(4, 1000, 60));
        let (a, b) = (finished(1, 5), finished(2, 4));
        assert!(a.try_attach(), "a's connection is still writing it");
        let unread = Arc::new(EventStream::new(3, 16, 1));
        unread.push(Bytes::from_static(b"xxxx"), true);
        budget.settle(&a, 1);
        budget.settle(&unread, 1);
        budget.settle(&b, 1);
        assert!(!a.is_discarded());
        assert!(
            !unread.is_discarded(),
            "a POST answer retained just before its reader attached"
        );
        assert!(b.is_discarded(), "the one that can go goes, newest or not");
        // Once a's response is out, the budget applies to it too.
        a.mark_delivered(a.holder());
        budget.delivered(&a, 1);
        assert!(a.is_discarded());
        assert_eq!(budget.total_bytes(), 4, "only the unread answer is left");
    }

    #[tokio::test(start_paused = true)]
    async fn a_delivered_stream_is_dropped_after_the_resume_window() {
        let budget = ReplayBudget::new(limits(1000, 1000, 60));
        let (delivered, undelivered) = (finished(1, 4), finished(2, 4));
        budget.settle(&delivered, 1);
        budget.settle(&undelivered, 1);
        delivered.mark_delivered(0);
        budget.delivered(&delivered, 1);
        tokio::time::sleep(Duration::from_secs(59)).await;
        budget.sweep();
        assert!(
            delivered.can_resume_after(0),
            "still inside the resume window"
        );
        // The sweeper task drops it on time, without any further call.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(delivered.is_discarded());
        assert!(
            !undelivered.is_discarded(),
            "a response nobody received stays resumable"
        );
        assert_eq!(budget.total_bytes(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_resume_being_replayed_outlasts_the_window() {
        let budget = ReplayBudget::new(limits(1000, 1000, 60));
        let stream = finished(1, 4);
        budget.settle(&stream, 1);
        stream.mark_delivered(0);
        budget.delivered(&stream, 1);
        assert!(stream.try_attach(), "a resume reads it again");
        tokio::time::sleep(Duration::from_secs(61)).await;
        budget.sweep();
        assert!(!stream.is_discarded(), "not cut while it is being replayed");
        stream.detach(stream.holder());
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert!(stream.is_discarded(), "dropped one window later");
    }

    #[tokio::test(start_paused = true)]
    async fn forgetting_a_stream_stops_counting_it() {
        let budget = ReplayBudget::new(limits(1000, 1000, 60));
        let a = finished(1, 4);
        budget.settle(&a, 1);
        budget.forget(a.uid());
        assert_eq!(budget.total_bytes(), 0);
        assert!(!a.is_discarded(), "forgetting is not dropping");
    }
}
