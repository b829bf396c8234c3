//! A session's routing endpoint: its standalone (GET) stream and the streams of its requests,
//! kept for a while so that a dropped connection can resume with `Last-Event-ID`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::replay::{ReplayBudget, ReplayLimits};
use super::stream::EventStream;
use crate::config::SseSettings;

/// The stream id of the standalone GET stream; request streams count from 1.
pub const STANDALONE: u64 = 0;

/// How much a session's streams may hold.
#[derive(Clone)]
pub struct BufferLimits {
    /// Events kept per stream for `Last-Event-ID` (SSE_REPLAY_EVENTS).
    pub replay_events: usize,
    /// Bytes kept per stream (SSE_REPLAY_BYTES); the newest event always stays.
    pub replay_bytes: usize,
    /// Standalone messages kept while no GET stream is open (SSE_PENDING_EVENTS).
    pub pending_events: usize,
    /// Request streams kept for resumption.
    pub retained_streams: usize,
    /// The byte budgets and resume window of finished request streams, shared by every session.
    pub replay: Arc<ReplayBudget>,
}

impl BufferLimits {
    pub fn new(sse: &SseSettings) -> BufferLimits {
        BufferLimits {
            replay_events: sse.replay_events,
            replay_bytes: sse.replay_bytes,
            pending_events: sse.pending_events,
            retained_streams: 64,
            replay: ReplayBudget::new(ReplayLimits {
                session_bytes: sse.replay_session_bytes,
                total_bytes: sse.replay_total_bytes,
                resume_window: sse.resume_window,
            }),
        }
    }
}

pub struct Channel {
    /// Internal key of the session (not its public id).
    pub key: u64,
    /// The era its calls are counted under in metrics (a session's, or sessionless).
    era: std::sync::OnceLock<&'static str>,
    pub standalone: Arc<EventStream>,
    /// Highest standalone seq written to some GET connection: a new GET without
    /// `Last-Event-ID` starts after it instead of replaying what was already delivered.
    pub standalone_delivered: AtomicU64,
    next_stream: AtomicU64,
    replay_events: usize,
    replay_bytes: usize,
    replay: Arc<ReplayBudget>,
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
            replay,
        } = limits;
        Channel {
            key,
            era: std::sync::OnceLock::new(),
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
            replay,
            retained: Mutex::new(Retained {
                streams: HashMap::new(),
                order: VecDeque::new(),
                capacity: retained_streams.max(1),
            }),
        }
    }

    /// Counts this channel's calls as sessionless (2026-07-28) ones.
    pub fn mark_modern(&self) {
        let _ = self.era.set(crate::protocol::MODERN[0]);
    }

    /// `legacy` (a session's channel) or the modern revision.
    pub fn era(&self) -> &'static str {
        self.era.get().copied().unwrap_or("legacy")
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
    /// Once finished, it counts against the replay budgets.
    pub fn retain(&self, stream: &Arc<EventStream>) {
        let mut released = Vec::new();
        {
            let mut retained = self.lock_retained();
            if retained
                .streams
                .insert(stream.id(), stream.clone())
                .is_none()
            {
                retained.order.push_back(stream.id());
            }
            while retained.order.len() > retained.capacity {
                if let Some(old) = retained.order.pop_front() {
                    released.extend(retained.streams.remove(&old));
                }
            }
        }
        for old in released {
            old.unlink();
            self.replay.forget(old.uid());
        }
        stream.link(&self.replay, self.key);
    }

    fn lock_retained(&self) -> std::sync::MutexGuard<'_, Retained> {
        self.retained.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stream a `Last-Event-ID` names, if it is still kept (not dropped by the replay budgets
    /// or at the end of its resume window).
    pub fn find(&self, stream_id: u64) -> Option<Arc<EventStream>> {
        if stream_id == STANDALONE {
            return Some(self.standalone.clone());
        }
        self.replay.sweep();
        let mut retained = self.lock_retained();
        let stream = retained.streams.get(&stream_id).cloned()?;
        if stream.is_discarded() {
            retained.streams.remove(&stream_id);
            retained.order.retain(|id| *id != stream_id);
            return None;
        }
        Some(stream)
    }

    /// Ends every stream: the session is over, nothing of it can be resumed.
    pub fn close(&self) {
        self.standalone.finish();
        let streams: Vec<Arc<EventStream>> = {
            let mut retained = self.lock_retained();
            retained.order.clear();
            retained.streams.drain().map(|(_, s)| s).collect()
        };
        for stream in streams {
            stream.unlink();
            stream.finish();
            self.replay.forget(stream.uid());
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        let retained = self.lock_retained();
        for stream in retained.streams.values() {
            stream.unlink();
            self.replay.forget(stream.uid());
        }
    }
}

impl Channel {
    /// A GET connection is reading the standalone stream.
    pub fn standalone_attached(&self) -> bool {
        self.standalone.is_attached()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn a_delivered_stream_is_found_until_its_resume_window_ends() {
        let replay = ReplayBudget::new(ReplayLimits {
            session_bytes: 1000,
            total_bytes: 1000,
            resume_window: Duration::from_secs(60),
        });
        let channel = Channel::new(
            1,
            BufferLimits {
                replay_events: 16,
                replay_bytes: 1000,
                pending_events: 16,
                retained_streams: 4,
                replay: replay.clone(),
            },
        );
        let stream = channel.open_stream(1);
        channel.retain(&stream);
        assert!(stream.try_attach());
        stream.push(Bytes::from_static(b"answer"), true);
        assert_eq!(replay.total_bytes(), 6, "counted once finished");
        stream.mark_delivered(stream.holder());
        stream.detach(stream.holder());
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(channel.find(stream.id()).is_some());
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert!(channel.find(stream.id()).is_none(), "the window is over");
        assert_eq!(replay.total_bytes(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn closing_the_channel_releases_its_share_of_the_budget() {
        let replay = ReplayBudget::new(ReplayLimits::unbounded());
        let channel = Channel::new(
            1,
            BufferLimits {
                replay_events: 16,
                replay_bytes: 1000,
                pending_events: 16,
                retained_streams: 1,
                replay: replay.clone(),
            },
        );
        let first = channel.open_stream(1);
        channel.retain(&first);
        first.push(Bytes::from_static(b"one"), true);
        let second = channel.open_stream(1);
        channel.retain(&second);
        assert_eq!(replay.total_bytes(), 0, "the first left with the count cap");
        second.push(Bytes::from_static(b"two"), true);
        assert_eq!(replay.total_bytes(), 3);
        channel.close();
        assert_eq!(replay.total_bytes(), 0);
    }
}
