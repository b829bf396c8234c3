//! SSE framing on the wire: events with ids that name their stream, comment keep-alives,
//! the 2025-11-25 priming event, and a clean end.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::watch;
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use crate::core::channel::{Channel, STANDALONE};
use crate::core::stream::EventStream;
use crate::metrics::METRICS;

/// How one SSE response behaves.
pub struct SseSpec {
    pub stream: Arc<EventStream>,
    /// Send events after this seq (0: from the start).
    pub after: u64,
    pub priming: bool,
    pub keepalive: Duration,
    /// Ends the response when it turns true (standalone streams end at shutdown; request streams
    /// run to their response).
    pub stop: Option<watch::Receiver<bool>>,
    /// For the standalone stream: where to record what was delivered.
    pub delivered_to: Option<Arc<Channel>>,
    /// Held until the response ends (in-flight counters and the like).
    pub guard: Option<Box<dyn Send + Sync>>,
}

/// Releases the stream's single-consumer claim when the connection goes away (unless a resume
/// took the stream over meanwhile: then the claim is the new connection's).
struct Attachment {
    stream: Arc<EventStream>,
    ticket: u64,
}

impl Attachment {
    fn new(stream: Arc<EventStream>, ticket: u64) -> Attachment {
        METRICS.sse_streams_open.fetch_add(1, Ordering::Relaxed);
        Attachment { stream, ticket }
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        METRICS.sse_streams_open.fetch_sub(1, Ordering::Relaxed);
        self.stream.detach(self.ticket);
    }
}

struct State {
    spec: SseSpec,
    changed: watch::Receiver<u64>,
    ticker: tokio::time::Interval,
    last: u64,
    priming_due: bool,
    ended: bool,
    attachment: Attachment,
}

/// A `text/event-stream` response reading `spec.stream`. The caller has attached the stream.
pub fn response(spec: SseSpec) -> Response {
    let ticket = spec.stream.holder();
    response_attached(spec, ticket)
}

/// [`response`] for the connection that attached with `ticket` (from
/// [`EventStream::take_over`]); it ends when another connection takes the stream over.
pub fn response_attached(spec: SseSpec, ticket: u64) -> Response {
    let changed = spec.stream.subscribe();
    let mut ticker = interval_at(Instant::now() + spec.keepalive, spec.keepalive);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let state = State {
        changed,
        ticker,
        last: spec.after,
        priming_due: spec.priming,
        ended: false,
        attachment: Attachment::new(spec.stream.clone(), ticket),
        spec,
    };
    let body = futures_util::stream::unfold(state, |mut state| async move {
        next_chunk(&mut state)
            .await
            .map(|chunk| (Ok::<Bytes, std::convert::Infallible>(chunk), state))
    });
    event_stream(Body::from_stream(body))
}

/// A 200 `text/event-stream` response of `body`: not cached, and not buffered by nginx and
/// similar proxies (`X-Accel-Buffering: no`).
pub fn event_stream(body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

async fn next_chunk(state: &mut State) -> Option<Bytes> {
    if state.ended {
        return None;
    }
    if state.priming_due {
        state.priming_due = false;
        let mut out = BytesMut::new();
        // The priming id names the position the stream starts from, so resuming with it
        // replays exactly what follows.
        put_line(
            &mut out,
            "id: ",
            state.spec.stream.priming_id(state.last).as_bytes(),
        );
        out.put_slice(b"data: \n\n");
        return Some(out.freeze());
    }
    loop {
        if state.spec.stream.holder() != state.attachment.ticket {
            // A resume took the stream over: this connection is presumed dead; end it.
            state.ended = true;
            return None;
        }
        let pending = state.spec.stream.after(state.last);
        if pending.gap {
            tracing::warn!(
                stream = state.spec.stream.id(),
                "SSE consumer fell behind the replay buffer; ending the stream"
            );
            state.ended = true;
            return None;
        }
        if !pending.events.is_empty() {
            let mut out = BytesMut::new();
            for event in &pending.events {
                put_line(
                    &mut out,
                    "id: ",
                    state.spec.stream.event_id(event.seq).as_bytes(),
                );
                out.put_slice(b"event: message\n");
                put_line(&mut out, "data: ", &event.data);
                out.put_u8(b'\n');
                state.last = event.seq;
            }
            if let Some(channel) = &state.spec.delivered_to {
                channel
                    .standalone_delivered
                    .fetch_max(state.last, Ordering::AcqRel);
            }
            if pending.done {
                // Everything is out: end after this chunk.
                state.ended = true;
                if state.spec.stream.id() != STANDALONE {
                    // The response's resume window starts (the replay budget drops it after).
                    state.spec.stream.mark_delivered(state.attachment.ticket);
                }
            }
            return Some(out.freeze());
        }
        if pending.done {
            return None;
        }
        let stop = async {
            match state.spec.stop.as_mut() {
                Some(stop) => {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            changed = state.changed.changed() => {
                if changed.is_err() {
                    return None;
                }
            }
            // Keep-alives are framed here rather than with axum's `Sse::keep_alive`: this body
            // is a byte stream of already-framed events (the child's bytes go out as they are,
            // with no `Event` re-encoding), and the tick must share this `select!` with the
            // take-over and shutdown checks so that an idle stream still notices both. The
            // ticker is tokio time, so tests with a paused clock drive it too.
            _ = state.ticker.tick() => return Some(Bytes::from_static(b": keepalive\n\n")),
            _ = stop => {
                state.ended = true;
                return None;
            }
        }
    }
}

fn put_line(out: &mut BytesMut, field: &str, value: &[u8]) {
    out.put_slice(field.as_bytes());
    out.put_slice(value);
    out.put_u8(b'\n');
}
