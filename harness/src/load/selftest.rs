//! `load --self-test`: a trivial MCP-shaped HTTP server on 127.0.0.1:0, on its own thread and
//! single-threaded runtime, to measure the load generator's own ceiling.
//!
//! It answers `initialize` with a canned result and a session id, notifications with 202, and
//! every other request with an echo result built from the request's `id` and
//! `arguments.message`, found by a byte scan (the bodies are the load generator's own).
//! A request claiming the 2026-07-28 era (`MCP-Protocol-Version: 2026-07-28`) must carry
//! `Mcp-Method`, `Mcp-Name` and a `_meta` with the protocol version (else 400, as the gateway
//! answers), and its result carries `resultType: "complete"`.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

/// A running trivial server; dropping it stops the accept loop.
pub struct TrivialServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TrivialServer {
    /// Binds 127.0.0.1:0 and serves on a thread of its own.
    pub fn start() -> std::io::Result<TrivialServer> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("trivial-server".into())
            .spawn(move || runtime.block_on(serve(listener, stop_rx)))?;
        Ok(TrivialServer {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// A probe of the server thread's CPU time in nanoseconds (CLOCK_THREAD_CPUTIME of it).
    pub fn cpu_probe(&self) -> Option<ThreadClock> {
        use std::os::unix::thread::JoinHandleExt;
        let thread = self.thread.as_ref()?.as_pthread_t();
        let mut clock: libc::clockid_t = 0;
        // SAFETY: the thread is alive (joined only on drop); the call only writes `clock`.
        (unsafe { libc::pthread_getcpuclockid(thread, &mut clock) } == 0)
            .then_some(ThreadClock(clock))
    }
}

/// The CPU clock of one thread of this process.
#[derive(Debug, Clone, Copy)]
pub struct ThreadClock(libc::clockid_t);

impl ThreadClock {
    /// CPU time the thread used so far, in nanoseconds.
    pub fn cpu_ns(&self) -> Option<u64> {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime only writes `now`.
        (unsafe { libc::clock_gettime(self.0, &mut now) } == 0)
            .then(|| now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64)
    }
}

impl Drop for TrivialServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(listener: std::net::TcpListener, mut stop: oneshot::Receiver<()>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), hyper::service::service_fn(answer))
                        .await;
                });
            }
        }
    }
    connections.abort_all();
}

const INIT_RESULT: &str = r#"{"protocolVersion":"2025-11-25","capabilities":{"tools":{}},"serverInfo":{"name":"trivial","version":"0"}}"#;

async fn answer(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::POST {
        return Ok(status(StatusCode::OK));
    }
    let headers = request.headers();
    let modern = headers
        .get("mcp-protocol-version")
        .is_some_and(|v| v.as_bytes() == crate::modern::MODERN_VERSION.as_bytes());
    let mirrored = headers.contains_key("mcp-method") && headers.contains_key("mcp-name");
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(status(StatusCode::BAD_REQUEST)),
    };
    let Some(id) = find_after(&body, b"\"id\":").map(digits) else {
        return Ok(status(StatusCode::ACCEPTED));
    };
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
    out.extend_from_slice(id);
    let meta = find_after(
        &body,
        br#""io.modelcontextprotocol/protocolVersion":"2026-07-28""#,
    );
    if modern && (!mirrored || meta.is_none()) {
        return Ok(status(StatusCode::BAD_REQUEST));
    }
    let mut response = if find_after(&body, br#""method":"initialize""#).is_some() {
        out.extend_from_slice(br#","result":"#);
        out.extend_from_slice(INIT_RESULT.as_bytes());
        out.push(b'}');
        let mut response = Response::new(Full::new(Bytes::from(out)));
        response.headers_mut().insert(
            "mcp-session-id",
            HeaderValue::from_static("trivial-session"),
        );
        response
    } else {
        let message = find_after(&body, br#""message":""#)
            .map(|rest| &rest[..rest.iter().position(|&b| b == b'"').unwrap_or(0)])
            .unwrap_or(b"");
        out.extend_from_slice(br#","result":{"content":[{"type":"text","text":""#);
        out.extend_from_slice(message);
        out.extend_from_slice(br#""}]"#);
        if modern {
            out.extend_from_slice(br#","resultType":"complete""#);
        }
        out.extend_from_slice(b"}}");
        Response::new(Full::new(Bytes::from(out)))
    };
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(response)
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}

fn find_after<'a>(haystack: &'a [u8], needle: &[u8]) -> Option<&'a [u8]> {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|at| &haystack[at + needle.len()..])
}

fn digits(rest: &[u8]) -> &[u8] {
    let end = rest
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(rest.len());
    &rest[..end]
}
