//! A session's routing endpoint: its standalone (GET) stream and the streams of its requests,
//! kept for a while so that a dropped connection can resume with `Last-Event-ID`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::stream::EventStream;

/// The stream id of the standalone GET stream; request streams count from 1.
pub const STANDALONE: u64 = 0;

/// How much a session's streams may hold.
#[derive(Clone, Copy, Debug)]
pub struct BufferLimits {
    /// Events kept per stream for `Last-Event-ID` (SSE_REPLAY_EVENTS).
    pub replay_events: usize,
    /// Bytes kept per stream (SSE_REPLAY_BYTES); the newest event always stays.
    pub replay_bytes: usize,
    /// Standalone messages kept while no GET stream is open (SSE_PENDING_EVENTS).
    pub pending_events: usize,
    /// Request streams kept for resumption.
    pub retained_streams: usize,
}

pub struct Channel {
    /// Internal key of the session (not its public id).
    pub key: u64,
    pub standalone: Arc<EventStream>,
    /// Highest standalone seq written to some GET connection: a new GET without
    /// `Last-Event-ID` starts after it instead of replaying what was already delivered.
    pub standalone_delivered: AtomicU64,
    next_stream: AtomicU64,
    replay_events: usize,
    replay_bytes: usize,
    retained: Mutex<Retained>,
}

struct Retained {
    streams: HashMap<u64, Arc<EventStream>>,
    order: VecDeque<u64>,
    capacity: usize,
}

impl Channel {
    /// `replay_events`: events kept per stream; `pending_events`: standalone messages kept while no
    /// GET stream is open; `retained_streams`: request streams kept for resumption.
    pub fn new(key: u64, limits: BufferLimits) -> Channel {
        let BufferLimits {
            replay_events,
            replay_bytes,
            pending_events,
            retained_streams,
        } = limits;
        Channel {
            key,
            standalone: Arc::new(EventStream::bounded(
                STANDALONE,
                pending_events,
                replay_bytes,
                0,
            )),
            standalone_delivered: AtomicU64::new(0),
            next_stream: AtomicU64::new(1),
            replay_events,
            replay_bytes,
            retained: Mutex::new(Retained {
                streams: HashMap::new(),
                order: VecDeque::new(),
                capacity: retained_streams.max(1),
            }),
        }
    }

    /// A new stream for one request (or a batch expecting `finals` responses).
    pub fn open_stream(&self, finals: usize) -> Arc<EventStream> {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        Arc::new(EventStream::bounded(
            id,
            self.replay_events,
            self.replay_bytes,
            finals,
        ))
    }

    /// A stream for a batch expecting `finals` answers: the replay budget (SSE_REPLAY_EVENTS,
    /// SSE_REPLAY_BYTES) bounds the other messages, and no answer is ever evicted, so a batch
    /// larger than the budget loses none. Its answers cost what as many single calls' would;
    /// MAX_BATCH_MEMBERS and MAX_INFLIGHT_PER_SESSION bound `finals`.
    pub fn open_batch_stream(&self, finals: usize) -> Arc<EventStream> {
        let id = self.next_stream.fetch_add(1, Ordering::Relaxed);
        Arc::new(
            EventStream::bounded(
                id,
                self.replay_events.saturating_add(finals),
                self.replay_bytes,
                finals,
            )
            .keeping_responses(),
        )
    }

    /// Keeps a request stream so it can be resumed; the oldest retained one is let go first.
    pub fn retain(&self, stream: &Arc<EventStream>) {
        let mut retained = self.retained.lock().unwrap_or_else(|e| e.into_inner());
        if retained
            .streams
            .insert(stream.id(), stream.clone())
            .is_none()
        {
            retained.order.push_back(stream.id());
        }
        while retained.order.len() > retained.capacity {
            if let Some(old) = retained.order.pop_front() {
                retained.streams.remove(&old);
            }
        }
    }

    /// The stream a `Last-Event-ID` names, if it is still kept.
    pub fn find(&self, stream_id: u64) -> Option<Arc<EventStream>> {
        if stream_id == STANDALONE {
            return Some(self.standalone.clone());
        }
        let retained = self.retained.lock().unwrap_or_else(|e| e.into_inner());
        retained.streams.get(&stream_id).cloned()
    }

    /// Ends every stream: the session is over.
    pub fn close(&self) {
        self.standalone.finish();
        let retained = self.retained.lock().unwrap_or_else(|e| e.into_inner());
        for stream in retained.streams.values() {
            stream.finish();
        }
    }
}

impl Channel {
    /// A GET connection is reading the standalone stream.
    pub fn standalone_attached(&self) -> bool {
        self.standalone.is_attached()
    }
}
