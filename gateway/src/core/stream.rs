//! An SSE stream's events, kept in a bounded buffer so a dropped connection can resume with
//! `Last-Event-ID`.
//!
//! Producers push; consumers pull what is after the last event they sent, woken by a watch
//! channel. Nothing is queued per consumer, so a slow or vanished client costs at most the buffer.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use tokio::sync::watch;

use super::replay::ReplayBudget;

/// One message on a stream. `seq` starts at 1; 0 names the priming event.
#[derive(Clone, Debug)]
pub struct Event {
    pub seq: u64,
    pub data: Bytes,
    /// The JSON-RPC response that ends a request's stream.
    pub is_final: bool,
}

/// What a consumer finds after its last seen event.
#[derive(Debug)]
pub struct Pending {
    pub events: Vec<Event>,
    /// No more events will come.
    pub done: bool,
    /// Events after the consumer's position were evicted: it cannot be served without a gap.
    pub gap: bool,
}

pub struct EventStream {
    id: u64,
    /// Unique in the process (ids are per session): the replay budget's key.
    uid: u64,
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
    /// The connection reading the stream: 0 for none, else the ticket it attached with.
    holder: AtomicU64,
    next_ticket: AtomicU64,
    /// Some connection has read the stream (a finished stream nobody read yet is about to be).
    was_read: std::sync::atomic::AtomicBool,
    primings: std::sync::atomic::AtomicU64,
}

struct Inner {
    next_seq: u64,
    events: VecDeque<Event>,
    capacity: usize,
    /// Bytes of `events`, and the most they may hold (the newest event is always kept).
    bytes: usize,
    max_bytes: usize,
    finals_remaining: usize,
    done: bool,
    /// The final chunk was handed to a connection (request streams).
    delivered: bool,
    /// The ticket of the connection that delivered it last (0: none).
    delivered_by: u64,
    /// The replay budget dropped the events: the stream cannot be resumed.
    discarded: bool,
    /// The budget that counts this stream once it is finished (set when a channel retains it).
    link: Option<Link>,
    /// Evict only other messages, never a response (a batch's answer, see `keeping_responses`).
    keep_finals: bool,
}

#[derive(Clone)]
struct Link {
    budget: Weak<ReplayBudget>,
    stream: Weak<EventStream>,
    session: u64,
}

static NEXT_UID: AtomicU64 = AtomicU64::new(1);

impl EventStream {
    /// A stream that ends after `finals` responses (0: never ends by itself, as the GET stream),
    /// keeping at most `capacity` events.
    pub fn new(id: u64, capacity: usize, finals: usize) -> EventStream {
        EventStream::bounded(id, capacity, usize::MAX, finals)
    }

    /// [`EventStream::new`] that also keeps at most `max_bytes` of event data; the newest event
    /// stays whatever its size, so a response can always be delivered.
    pub fn bounded(id: u64, capacity: usize, max_bytes: usize, finals: usize) -> EventStream {
        EventStream {
            id,
            uid: NEXT_UID.fetch_add(1, Ordering::Relaxed),
            inner: Mutex::new(Inner {
                next_seq: 1,
                events: VecDeque::new(),
                capacity: capacity.max(1),
                bytes: 0,
                max_bytes,
                finals_remaining: finals,
                done: false,
                delivered: false,
                delivered_by: 0,
                discarded: false,
                link: None,
                keep_finals: false,
            }),
            changed: watch::channel(0).0,
            holder: AtomicU64::new(0),
            next_ticket: AtomicU64::new(1),
            was_read: std::sync::atomic::AtomicBool::new(false),
            primings: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Over its bounds the stream drops its oldest message that is not a response, and never a
    /// response: every answer of a batch reaches its client, however many notifications come
    /// between (at most `finals` responses are ever kept, so the bound stays).
    pub fn keeping_responses(self) -> EventStream {
        self.lock().keep_finals = true;
        self
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn uid(&self) -> u64 {
        self.uid
    }

    /// Has `budget` count this stream against `session` once it is finished (now, if it is).
    pub fn link(self: &Arc<Self>, budget: &Arc<ReplayBudget>, session: u64) {
        let done = {
            let mut inner = self.lock();
            inner.link = Some(Link {
                budget: Arc::downgrade(budget),
                stream: Arc::downgrade(self),
                session,
            });
            inner.done
        };
        if done {
            budget.settle(self, session);
        }
    }

    /// No budget counts this stream any more (its channel let it go).
    pub fn unlink(&self) {
        self.lock().link = None;
    }

    /// Tells the linked budget the stream finished. Called without the stream's lock.
    fn settle(link: Option<Link>) {
        if let Some(link) = link {
            if let (Some(budget), Some(stream)) = (link.budget.upgrade(), link.stream.upgrade()) {
                budget.settle(&stream, link.session);
            }
        }
    }

    /// Bytes of the events kept now.
    pub fn buffered_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The response was handed to the connection attached with `ticket`: the resume window
    /// starts.
    pub fn mark_delivered(&self, ticket: u64) {
        let link = {
            let mut inner = self.lock();
            inner.delivered = true;
            inner.delivered_by = ticket;
            inner.link.clone()
        };
        if let Some(link) = link {
            if let Some(budget) = link.budget.upgrade() {
                budget.delivered(self, link.session);
            }
        }
    }

    /// Whether the events may be released now without cutting a reader short: no connection
    /// holds the stream (and one did: a POST answer is retained just before its reader attaches),
    /// or the one holding it has already been handed the end.
    pub fn can_discard(&self) -> bool {
        let holder = self.holder();
        if holder == 0 {
            self.was_read()
        } else {
            self.lock().delivered_by == holder
        }
    }

    pub fn is_delivered(&self) -> bool {
        self.lock().delivered
    }

    /// Releases the events for good (replay budget, resume window); a reader sees a gap.
    pub fn discard(&self) {
        {
            let mut inner = self.lock();
            inner.events = VecDeque::new();
            inner.bytes = 0;
            inner.discarded = true;
            inner.done = true;
        }
        self.changed.send_modify(|_| {});
    }

    pub fn is_discarded(&self) -> bool {
        self.lock().discarded
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a message; returns false when the stream had already ended (the message is dropped).
    pub fn push(&self, data: Bytes, is_final: bool) -> bool {
        let seq = {
            let mut inner = self.lock();
            if inner.done {
                return false;
            }
            let seq = inner.next_seq;
            inner.next_seq += 1;
            inner.bytes += data.len();
            inner.events.push_back(Event {
                seq,
                data,
                is_final,
            });
            while inner.events.len() > inner.capacity
                || (inner.bytes > inner.max_bytes && inner.events.len() > 1)
            {
                let victim = if inner.keep_finals {
                    match inner.events.iter().position(|e| !e.is_final) {
                        Some(index) => index,
                        None => break,
                    }
                } else {
                    0
                };
                if let Some(old) = inner.events.remove(victim) {
                    inner.bytes -= old.data.len();
                }
            }
            let mut finished = None;
            if is_final && inner.finals_remaining > 0 {
                inner.finals_remaining -= 1;
                if inner.finals_remaining == 0 {
                    inner.done = true;
                    finished = inner.link.clone();
                }
            }
            (seq, finished)
        };
        let (seq, finished) = seq;
        EventStream::settle(finished);
        self.changed.send_replace(seq);
        true
    }

    /// Ends the stream without (more) responses: cancelled, session ended, gateway draining.
    pub fn finish(&self) {
        let mut inner = self.lock();
        if !inner.done {
            inner.done = true;
            let link = inner.link.clone();
            drop(inner);
            EventStream::settle(link);
            self.changed.send_modify(|_| {});
        }
    }

    pub fn is_done(&self) -> bool {
        self.lock().done
    }

    /// Everything after `after` (a seq), and whether the stream is over.
    pub fn after(&self, after: u64) -> Pending {
        let inner = self.lock();
        let first_kept = inner
            .events
            .front()
            .map(|e| e.seq)
            .unwrap_or(inner.next_seq);
        // A stream keeping responses drops only notifications and server requests: a consumer
        // that missed some still gets every response, so it goes on rather than ending.
        let gap = !inner.keep_finals && after + 1 < first_kept;
        let events: Vec<Event> = inner
            .events
            .iter()
            .filter(|e| e.seq > after)
            .cloned()
            .collect();
        Pending {
            events,
            done: inner.done,
            gap,
        }
    }

    /// Whether everything after `after` is still kept, so a resume from there has no gap.
    pub fn can_resume_after(&self, after: u64) -> bool {
        let inner = self.lock();
        if inner.discarded {
            return false;
        }
        let first_kept = inner
            .events
            .front()
            .map(|e| e.seq)
            .unwrap_or(inner.next_seq);
        after + 1 >= first_kept && after < inner.next_seq
    }

    /// The position closest to `after` that can be served without a gap: not before the oldest
    /// kept event, not past the newest event.
    pub fn resumable_from(&self, after: u64) -> u64 {
        let inner = self.lock();
        let first_kept = inner
            .events
            .front()
            .map(|e| e.seq)
            .unwrap_or(inner.next_seq);
        after
            .min(inner.next_seq - 1)
            .max(first_kept.saturating_sub(1))
    }

    /// A receiver woken on every change (push or finish).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Claims the stream for one connection; false when another connection holds it.
    pub fn try_attach(&self) -> bool {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        let attached = self
            .holder
            .compare_exchange(0, ticket, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if attached {
            self.was_read.store(true, Ordering::Release);
        }
        attached
    }

    /// Whether some connection has attached to the stream at some point.
    pub fn was_read(&self) -> bool {
        self.was_read.load(Ordering::Acquire)
    }

    /// Claims the stream for a new connection even if another holds it (a resume with
    /// `Last-Event-ID` whose old connection broke without the gateway noticing); the old reader
    /// sees [`EventStream::holder`] change and ends.
    pub fn take_over(&self) -> u64 {
        let ticket = self.next_ticket.fetch_add(1, Ordering::Relaxed);
        self.holder.store(ticket, Ordering::Release);
        self.was_read.store(true, Ordering::Release);
        self.changed.send_modify(|_| {});
        ticket
    }

    /// The ticket of the connection holding the stream (0: none).
    pub fn holder(&self) -> u64 {
        self.holder.load(Ordering::Acquire)
    }

    pub fn is_attached(&self) -> bool {
        self.holder() != 0
    }

    /// Releases the claim of the connection with `ticket`; a later holder keeps its own.
    pub fn detach(&self, ticket: u64) {
        let _ = self
            .holder
            .compare_exchange(ticket, 0, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The SSE event id of an event of this stream: it names the stream, so a resume finds it.
    pub fn event_id(&self, seq: u64) -> String {
        format!("{}-{}", self.id, seq)
    }

    /// The id of a priming event at position `seq`: the first one of a stream is `S-0`; later
    /// ones (resumes, new GET streams) get a `.N` suffix so no event id is ever repeated.
    pub fn priming_id(&self, seq: u64) -> String {
        let n = self.primings.fetch_add(1, Ordering::Relaxed);
        if n == 0 && seq == 0 {
            self.event_id(0)
        } else {
            format!("{}-{}.{}", self.id, seq, n + 1)
        }
    }
}

/// Splits a `Last-Event-ID` into (stream, seq).
/// A priming event's id may carry a `.N` suffix that keeps it unique; it resumes like `seq`.
pub fn parse_event_id(text: &str) -> Option<(u64, u64)> {
    let (stream, seq) = text.trim().split_once('-')?;
    let seq = seq.split_once('.').map(|(seq, _)| seq).unwrap_or(seq);
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_and_ends_after_final() {
        let stream = EventStream::new(3, 2, 1);
        assert!(stream.push(Bytes::from_static(b"a"), false));
        assert!(stream.push(Bytes::from_static(b"b"), false));
        assert!(stream.push(Bytes::from_static(b"c"), true));
        assert!(!stream.push(Bytes::from_static(b"late"), false));
        let pending = stream.after(0);
        assert!(pending.gap, "event 1 was evicted");
        assert_eq!(pending.events.len(), 2);
        assert!(pending.done);
        let pending = stream.after(1);
        assert!(!pending.gap);
        assert_eq!(stream.event_id(2), "3-2");
        assert_eq!(parse_event_id("3-2"), Some((3, 2)));
        assert_eq!(parse_event_id("x"), None);
    }

    #[test]
    fn bytes_are_bounded_but_the_newest_event_stays() {
        let stream = EventStream::bounded(1, 100, 10, 0);
        for _ in 0..5 {
            stream.push(Bytes::from_static(b"abcd"), false);
        }
        let kept = stream.after(0);
        assert!(kept.gap);
        assert_eq!(kept.events.len(), 2, "8 bytes fit under 10, 12 do not");
        stream.push(Bytes::from(vec![b'x'; 50]), false);
        let kept = stream.after(0);
        assert_eq!(
            kept.events.len(),
            1,
            "a big event evicts the rest but is kept itself"
        );
        assert_eq!(kept.events[0].data.len(), 50);
    }

    #[test]
    fn a_resume_position_is_held_to_what_is_kept() {
        let stream = EventStream::new(0, 2, 0);
        for _ in 0..4 {
            stream.push(Bytes::from_static(b"n"), false);
        }
        // Events 3 and 4 are kept.
        assert_eq!(stream.resumable_from(0), 2, "what was dropped is skipped");
        assert_eq!(stream.resumable_from(3), 3);
        assert_eq!(stream.resumable_from(99), 4, "not past the newest");
        assert!(!stream.after(stream.resumable_from(0)).gap);
    }

    #[test]
    fn a_stream_keeping_responses_drops_only_other_messages() {
        let stream = EventStream::bounded(1, 3, 10, 3).keeping_responses();
        stream.push(Bytes::from_static(b"answer-1"), true);
        for _ in 0..5 {
            stream.push(Bytes::from_static(b"progress"), false);
        }
        stream.push(Bytes::from_static(b"answer-2"), true);
        stream.push(Bytes::from_static(b"answer-3"), true);
        let kept = stream.after(0);
        let data: Vec<&[u8]> = kept.events.iter().map(|e| &e.data[..]).collect();
        assert_eq!(data, vec![&b"answer-1"[..], b"answer-2", b"answer-3"]);
        assert!(kept.done);
        assert!(!kept.gap, "the first answer is still there");
        let stream = EventStream::bounded(2, 2, usize::MAX, 1).keeping_responses();
        for _ in 0..4 {
            stream.push(Bytes::from_static(b"progress"), false);
        }
        assert!(!stream.after(0).gap, "dropped notifications end nothing");
    }

    #[test]
    fn only_one_consumer() {
        let stream = EventStream::new(0, 4, 0);
        assert!(stream.try_attach());
        let first = stream.holder();
        assert!(!stream.try_attach());
        stream.detach(first);
        assert!(stream.try_attach());
    }

    #[test]
    fn a_take_over_moves_the_claim_and_the_old_holder_cannot_release_it() {
        let stream = EventStream::new(0, 4, 0);
        assert!(stream.try_attach());
        let old = stream.holder();
        let woken = stream.subscribe();
        let new = stream.take_over();
        assert_ne!(old, new);
        assert_eq!(stream.holder(), new);
        assert!(woken.has_changed().unwrap(), "the old reader is woken");
        stream.detach(old);
        assert_eq!(
            stream.holder(),
            new,
            "the old reader's end leaves the new claim"
        );
        assert!(!stream.try_attach());
        stream.detach(new);
        assert!(!stream.is_attached());
    }
}
