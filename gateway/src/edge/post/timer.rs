//! CALL_TIMEOUT_SECS for the calls of one POST, and the waits it bounds: for the answer's shape
//! (JSON or SSE), or for every response (a JSON-only client).

use std::sync::Arc;

use super::AppState;
use crate::core::router::Router;
use crate::core::session::{short, Session};
use crate::core::stream::EventStream;
use crate::jsonrpc;

/// CALL_TIMEOUT_SECS for the calls of one POST: the client gets an error, the child a cancel.
///
/// While the handler waits for the answer's shape it keeps the deadline itself (no task per
/// call); when the answer becomes an SSE stream, or the handler is dropped (the client went away)
/// before the calls ended, a task takes over the rest of the wait.
pub(super) struct CallTimer {
    deadline: tokio::time::Instant,
    timeout: std::time::Duration,
    router: Arc<Router>,
    stream: Arc<EventStream>,
    upstream_ids: Vec<u64>,
    armed: bool,
}

impl CallTimer {
    pub(super) fn arm(
        state: &Arc<AppState>,
        router: Arc<Router>,
        stream: Arc<EventStream>,
        upstream_ids: Vec<u64>,
    ) -> CallTimer {
        let timeout = state.config.sessions.call_timeout;
        CallTimer {
            deadline: tokio::time::Instant::now() + timeout,
            timeout,
            router,
            stream,
            upstream_ids,
            armed: true,
        }
    }

    /// Waits for the answer's shape; at the deadline the calls are abandoned (their error
    /// responses end the stream) and the wait goes on.
    pub(super) async fn wait_for_shape(&mut self) -> Shape {
        if let Ok(shape) =
            tokio::time::timeout_at(self.deadline, wait_for_shape(&self.stream)).await
        {
            return shape;
        }
        self.expire().await;
        wait_for_shape(&self.stream).await
    }

    /// For a JSON-only client: waits for every response, relaying anything else the child says
    /// meanwhile to the session's GET stream; at the deadline the calls are abandoned (their
    /// error responses end the stream) and the wait goes on.
    pub(super) async fn collect_responses(&mut self, session: &Session) -> Vec<bytes::Bytes> {
        let mut collected = Collected::default();
        let stream = self.stream.clone();
        if tokio::time::timeout_at(
            self.deadline,
            collect_responses(&stream, session, &mut collected),
        )
        .await
        .is_err()
        {
            self.expire().await;
            collect_responses(&stream, session, &mut collected).await;
        }
        collected.responses
    }

    async fn expire(&mut self) {
        self.armed = false;
        abandon(&self.router, &self.upstream_ids, self.timeout).await;
    }

    /// The answer is complete: nothing left to time out.
    pub(super) fn disarm(&mut self) {
        self.armed = false;
    }

    /// Hands the rest of the wait to a task (the answer is streamed, or the handler is gone).
    pub(super) fn hand_off(&mut self) {
        if !self.armed || self.stream.is_done() {
            self.armed = false;
            return;
        }
        self.armed = false;
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let router = self.router.clone();
        let stream = self.stream.clone();
        let upstream_ids = std::mem::take(&mut self.upstream_ids);
        let (deadline, timeout) = (self.deadline, self.timeout);
        runtime.spawn(async move {
            let mut changed = stream.subscribe();
            let done = async {
                while !stream.is_done() {
                    if changed.changed().await.is_err() {
                        return;
                    }
                }
            };
            if tokio::time::timeout_at(deadline, done).await.is_err() {
                abandon(&router, &upstream_ids, timeout).await;
            }
        });
    }
}

impl Drop for CallTimer {
    fn drop(&mut self) {
        self.hand_off();
    }
}

async fn abandon(router: &Router, upstream_ids: &[u64], timeout: std::time::Duration) {
    let message = format!(
        "The MCP server did not answer within {} s (CALL_TIMEOUT_SECS)",
        timeout.as_secs()
    );
    for &id in upstream_ids {
        router.abandon(id, jsonrpc::INTERNAL_ERROR, &message).await;
    }
}

/// Waits until the answer's shape is known: all responses and nothing else (JSON), or
/// something else first (SSE).
async fn wait_for_shape(stream: &Arc<EventStream>) -> Shape {
    let mut changed = stream.subscribe();
    loop {
        let pending = stream.after(0);
        if pending.events.iter().any(|e| !e.is_final) {
            return Shape::Sse;
        }
        if pending.done {
            return if pending.events.is_empty() {
                Shape::Empty
            } else {
                Shape::Json(pending.events.into_iter().map(|e| e.data).collect())
            };
        }
        if changed.changed().await.is_err() {
            return Shape::Empty;
        }
    }
}

/// What a JSON-only answer has read of its stream so far.
#[derive(Default)]
struct Collected {
    last: u64,
    responses: Vec<bytes::Bytes>,
}

/// Reads the stream to its end: responses are kept, everything else goes to the GET stream.
async fn collect_responses(
    stream: &Arc<EventStream>,
    session: &Session,
    collected: &mut Collected,
) {
    let mut changed = stream.subscribe();
    loop {
        let pending = stream.after(collected.last);
        if pending.gap {
            tracing::warn!(
                session = %short(&session.id),
                stream = stream.id(),
                "more messages arrived at once than the answer's buffer keeps; some were lost"
            );
        }
        for event in pending.events {
            collected.last = event.seq;
            if event.is_final {
                collected.responses.push(event.data);
            } else {
                session.channel.standalone.push(event.data, false);
            }
        }
        if pending.done || changed.changed().await.is_err() {
            return;
        }
    }
}

pub(super) enum Shape {
    Json(Vec<bytes::Bytes>),
    Sse,
    /// Ended without any answer (cancelled by the client).
    Empty,
}
