//! The HTTP/1.1 server under the router: one task per connection, with the limits that keep slow
//! or hostile clients from holding the gateway's file descriptors.
//!
//! - A client has HEADER_READ_TIMEOUT_SECS to send a request's headers (hyper's timer, which also
//!   runs while a kept-alive connection waits for its next request).
//! - A kept-alive connection with no request in progress is closed after HTTP_IDLE_TIMEOUT_SECS.
//! - A request body must arrive within BODY_READ_TIMEOUT_SECS of its headers; otherwise the
//!   connection is closed (the client is the one that stalled; nobody is left to read an answer).
//! - At most MAX_CONNECTIONS connections are open; a connection beyond it is accepted and closed at
//!   once, so the kernel's backlog never fills with connections nobody will serve.
//! - An accept error (EMFILE and the like) is answered by waiting, with a backoff, and a warning at
//!   most every 10 s: never a busy loop, never an exit.
//!
//! Responses in progress are not subject to any of these: an SSE stream stays open as long as it
//! delivers (keep-alives included), since the connection is neither idle nor reading headers.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower_service::Service;

use crate::config::HttpSettings;
use crate::metrics::METRICS;

/// The connection limits, from the settings.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
}

impl ConnLimits {
    /// MAX_CONNECTIONS is held to half the open-file limit: the other half stays for children's
    /// pipes, Coda calls, the audit log and the OAuth database.
    pub fn new(config: &HttpSettings) -> ConnLimits {
        let wanted = config.max_connections;
        let max_connections = match open_file_limit() {
            Some(limit) => wanted.min(usize::try_from(limit / 2).unwrap_or(usize::MAX).max(1)),
            None => wanted,
        };
        if max_connections < wanted {
            tracing::warn!(
                max_connections,
                wanted,
                "MAX_CONNECTIONS lowered to half the open-file limit (ulimit -n)"
            );
        }
        ConnLimits {
            header_read_timeout: config.header_read_timeout,
            idle_timeout: config.idle_timeout,
            body_read_timeout: config.body_read_timeout,
            max_connections,
        }
    }
}

/// The soft RLIMIT_NOFILE, unless unlimited or unknown.
fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we pass, which lives for the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (rc == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Serves `app` on `listener` until `stop` turns true, then stops accepting, lets every
/// connection finish what it is doing (idle ones close at once) and returns when all are closed.
/// Dropping the returned future ends every connection.
pub async fn run(
    app: Router,
    listener: TcpListener,
    limits: ConnLimits,
    stop: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let mut stopped = stop.clone();
    let mut backoff = AcceptBackoff::new();
    let mut refusals = RefusalLog::default();
    loop {
        tokio::select! {
            biased;
            _ = stopped_now(&mut stopped) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    backoff.reset();
                    if connections.len() >= limits.max_connections {
                        // Closing at once frees the descriptor and tells the client to go away;
                        // leaving it in the backlog would only make it wait for nothing.
                        METRICS.connections_refused.fetch_add(1, Ordering::Relaxed);
                        refusals.note(limits.max_connections);
                        drop(socket);
                        continue;
                    }
                    connections.spawn(connection(socket, peer, app.clone(), limits, stop.clone()));
                }
                Err(error) => backoff.wait(&error).await,
            }
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Waits after a failed accept, longer each time in a row (10 ms up to 1 s); warns at most every
/// 10 s with how many failures it did not log.
struct AcceptBackoff {
    delay: Duration,
    last_warning: Option<Instant>,
    unlogged: u64,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MOST: Duration = Duration::from_secs(1);

    fn new() -> AcceptBackoff {
        AcceptBackoff {
            delay: Self::FIRST,
            last_warning: None,
            unlogged: 0,
        }
    }

    fn reset(&mut self) {
        self.delay = Self::FIRST;
    }

    async fn wait(&mut self, error: &std::io::Error) {
        let now = Instant::now();
        if self
            .last_warning
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            tracing::warn!(%error, not_logged = self.unlogged, retry_in_ms = self.delay.as_millis() as u64,
                "cannot accept connections (open-file limit?); waiting before the next try");
            self.last_warning = Some(now);
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Self::MOST);
    }
}

/// Logs refusals at MAX_CONNECTIONS at most every 10 s.
#[derive(Default)]
struct RefusalLog {
    last: Option<Instant>,
    unlogged: u64,
}

impl RefusalLog {
    fn note(&mut self, max_connections: usize) {
        let now = Instant::now();
        if self
            .last
            .is_none_or(|t| now.duration_since(t) >= Duration::from_secs(10))
        {
            tracing::warn!(
                max_connections,
                not_logged = self.unlogged,
                "MAX_CONNECTIONS connections open; closing new ones at once"
            );
            self.last = Some(now);
            self.unlogged = 0;
        } else {
            self.unlogged += 1;
        }
    }
}

/// What a connection's requests tell its task.
struct ConnState {
    /// Requests in progress (from their headers until their response body is done or dropped).
    active: watch::Sender<usize>,
    /// A request body missed its deadline: the connection is to be closed.
    kill: Notify,
}

/// Counts one request as in progress for as long as it lives.
struct Active(Arc<ConnState>);

impl Active {
    fn new(conn: Arc<ConnState>) -> Active {
        conn.active.send_modify(|n| *n += 1);
        Active(conn)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Removes a connection from the open-connections gauge however its task ends.
struct Open;

impl Open {
    fn new() -> Open {
        METRICS.connections_open.fetch_add(1, Ordering::Relaxed);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        METRICS.connections_open.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(
    socket: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ConnLimits,
    mut stop: watch::Receiver<bool>,
) {
    let _open = Open::new();
    let state = Arc::new(ConnState {
        active: watch::channel(0).0,
        kill: Notify::new(),
    });
    let service = {
        let state = state.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let active = Active::new(state.clone());
            let mut request = request
                .map(|body| DeadlineBody::new(body, limits.body_read_timeout, state.clone()));
            request.extensions_mut().insert(ConnectInfo(peer));
            let mut app = app.clone();
            async move {
                let response = match app.call(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                Ok::<_, Infallible>(response.map(|body| {
                    axum::body::Body::new(Tracked {
                        body,
                        _active: active,
                    })
                }))
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(TokioIo::new(socket), service);
    tokio::pin!(conn);
    let idle = idle_for(state.active.subscribe(), limits.idle_timeout);
    tokio::pin!(idle);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "connection ended");
                }
                break;
            }
            _ = stopped_now(&mut stop), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = &mut idle, if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = state.kill.notified() => {
                tracing::debug!(%peer, "request body not received within BODY_READ_TIMEOUT_SECS; connection closed");
                break;
            }
        }
    }
}

/// Resolves when `stop` turns true (or its sender is gone).
async fn stopped_now(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Resolves once no request has been in progress for `idle`.
async fn idle_for(mut active: watch::Receiver<usize>, idle: Duration) {
    loop {
        let quiet = async { active.wait_for(|n| *n == 0).await.is_ok() }.await;
        if !quiet {
            return std::future::pending().await;
        }
        let busy = async {
            let _ = active.wait_for(|n| *n > 0).await;
        };
        tokio::select! {
            _ = tokio::time::sleep(idle) => return,
            _ = busy => {}
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within BODY_READ_TIMEOUT_SECS")]
struct BodyTimeout;

/// A request body that must be complete by a deadline; past it, it fails and has the
/// connection closed.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    conn: Arc<ConnState>,
}

impl DeadlineBody {
    fn new(inner: Incoming, timeout: Duration, conn: Arc<ConnState>) -> DeadlineBody {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            conn,
        }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.conn.kill.notify_one();
            return Poll::Ready(Some(Err(BodyTimeout.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted as in progress until it is done or dropped.
struct Tracked {
    body: axum::body::Body,
    _active: Active,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn accept_errors_back_off_up_to_a_second_and_reset_on_success() {
        let mut backoff = AcceptBackoff::new();
        let error = std::io::Error::from_raw_os_error(libc::EMFILE);
        let mut waits = Vec::new();
        for _ in 0..9 {
            let started = Instant::now();
            backoff.wait(&error).await;
            waits.push(started.elapsed().as_millis());
        }
        assert_eq!(waits, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(backoff.unlogged, 8, "one warning, the rest counted");
        backoff.reset();
        let started = Instant::now();
        backoff.wait(&error).await;
        assert_eq!(started.elapsed().as_millis(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_without_a_request_in_progress() {
        let state = Arc::new(ConnState {
            active: watch::channel(0).0,
            kill: Notify::new(),
        });
        let request = Active::new(state.clone());
        let idle = idle_for(state.active.subscribe(), Duration::from_secs(5));
        tokio::pin!(idle);
        // A request in progress (an SSE stream, say) keeps it busy however long it lasts.
        assert!(tokio::time::timeout(Duration::from_secs(60), &mut idle)
            .await
            .is_err());
        drop(request);
        let started = Instant::now();
        idle.await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
