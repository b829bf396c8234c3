//! A loopback HTTP proxy that adds `Authorization: Bearer <token>` to every request.
//!
//! The official conformance suite cannot send any header of its own, so `mcp-harness conformance`
//! points it at this proxy instead of the target. The proxy listens on `127.0.0.1:0`, accepts
//! HTTP/1.1, and forwards every request to the target's origin with the same method, path, query,
//! headers and body. Bodies stream both ways frame by frame (hyper to hyper, no buffering), so
//! SSE events reach the suite as the target sends them and a client that hangs up closes the
//! upstream connection too.
//!
//! What it changes:
//! - `Authorization` is set to `Bearer <token>` (replacing any the client sent) when a token is
//!   configured;
//! - `Host`: a request addressed to the proxy itself (a loopback host name with the proxy's port,
//!   or no `Host` at all) gets the target's authority, so the target sees its own name; any other
//!   `Host` (the suite's `dns-rebinding-protection` scenario sends `Host: evil.example.com`) is
//!   forwarded **unchanged**, so the target still sees the foreign host and must refuse it;
//! - hop-by-hop headers (`Connection` and the ones it names, `Keep-Alive`, `Proxy-*`, `TE`,
//!   `Trailer`, `Transfer-Encoding`, `Upgrade`) are dropped both ways (hyper frames bodies anew).
//!
//! `Origin` and every other header pass unchanged both ways, and no `Via` or `X-Forwarded-*` is
//! added. An unreachable target is answered `502` with a `text/plain` body naming the proxy.

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

type Upstream = Client<HttpsConnector<HttpConnector>, Incoming>;
type ProxyBody = Either<Incoming, Full<Bytes>>;

/// A running proxy; dropping it (or [`AuthProxy::shutdown`]) stops it and closes its connections.
#[derive(Debug)]
pub struct AuthProxy {
    addr: SocketAddr,
    url: url::Url,
    state: Arc<State>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

struct State {
    /// `scheme://host[:port]` of the target, without a trailing slash.
    origin: String,
    /// The target's authority, as its `Host` header.
    authority: HeaderValue,
    /// The proxy's own port (a `Host` naming a loopback host with it is "the proxy").
    port: u16,
    /// `Bearer <token>`, marked sensitive.
    authorization: Option<HeaderValue>,
    client: Upstream,
    requests: AtomicU64,
    foreign_hosts: AtomicU64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("origin", &self.origin)
            .field("port", &self.port)
            .field("token", &self.authorization.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// The proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The target is not an absolute http(s) URL with a host.
    #[error("the target must be an http or https URL with a host, got {0:?}")]
    BadTarget(String),
    /// The token cannot go in a header.
    #[error("the token contains characters that cannot go in an HTTP header")]
    BadToken,
    /// TLS setup failed.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// Binding 127.0.0.1:0 failed.
    #[error("cannot listen on 127.0.0.1: {0}")]
    Bind(#[from] std::io::Error),
}

impl AuthProxy {
    /// Starts a proxy on `127.0.0.1:0` in front of `target` (any URL on the target's origin; only
    /// its scheme, host and port are used). Must run inside a Tokio runtime.
    pub async fn start(target: &url::Url, token: Option<&str>) -> Result<AuthProxy, ProxyError> {
        let bad = || ProxyError::BadTarget(target.to_string());
        if !matches!(target.scheme(), "http" | "https") || target.host_str().is_none() {
            return Err(bad());
        }
        let origin = target.origin().ascii_serialization();
        let authority =
            HeaderValue::from_str(&target[url::Position::BeforeHost..url::Position::AfterPort])
                .map_err(|_| bad())?;
        let authorization = token
            .map(|t| {
                let mut v = HeaderValue::from_str(&format!("Bearer {}", t.trim()))
                    .map_err(|_| ProxyError::BadToken)?;
                v.set_sensitive(true);
                Ok::<_, ProxyError>(v)
            })
            .transpose()?;

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| ProxyError::Tls(e.to_string()))?
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client: Upstream = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);

        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let url = url::Url::parse(&format!(
            "http://{addr}{}",
            &target[url::Position::BeforePath..]
        ))
        .map_err(|_| bad())?;
        let state = Arc::new(State {
            origin,
            authority,
            port: addr.port(),
            authorization,
            client,
            requests: AtomicU64::new(0),
            foreign_hosts: AtomicU64::new(0),
        });
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, state.clone(), stopped));
        Ok(AuthProxy {
            addr,
            url,
            state,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The proxy's address (`127.0.0.1:PORT`).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The target URL rewritten onto the proxy: same path and query, proxy origin.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// How many requests were forwarded (or answered 502).
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// How many requests carried a `Host` that is not the proxy's and went on unchanged.
    pub fn foreign_hosts(&self) -> u64 {
        self.state.foreign_hosts.load(Ordering::Relaxed)
    }

    /// Stops accepting, closes every open connection and waits for the accept task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for AuthProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>, mut stopped: oneshot::Receiver<()>) {
    // Dropping the set (when this task ends or is aborted) aborts every connection task.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(forward(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// True when `host` (a `Host` header value) names this proxy: a loopback name with its port.
fn names_proxy(host: &str, port: u16) -> bool {
    let host = host.trim().to_ascii_lowercase();
    let (name, host_port) = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((v6, tail)) => (v6.to_string(), tail.strip_prefix(':')),
            None => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, p)) => (name.to_string(), Some(p)),
            None => (host.clone(), None),
        },
    };
    let loopback = name == "localhost"
        || name == "::1"
        || name.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback());
    loopback && host_port.and_then(|p| p.parse::<u16>().ok()) == Some(port)
}

async fn forward(state: &State, req: Request<Incoming>) -> Response<ProxyBody> {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let (mut parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    let uri: Uri = match format!("{}{}", state.origin, path).parse() {
        Ok(uri) => uri,
        Err(e) => return local_reply(StatusCode::BAD_REQUEST, &format!("bad request target: {e}")),
    };
    parts.uri = uri;
    parts.version = hyper::Version::HTTP_11;
    strip_hop_by_hop(&mut parts.headers);
    let own_host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|h| names_proxy(h, state.port));
    if own_host {
        parts.headers.insert(header::HOST, state.authority.clone());
    } else {
        state.foreign_hosts.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(auth) = &state.authorization {
        parts.headers.insert(header::AUTHORIZATION, auth.clone());
    }
    match state.client.request(Request::from_parts(parts, body)).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, Either::Left(body))
        }
        Err(e) => {
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(inner) = source {
                message = format!("{message}: {inner}");
                source = inner.source();
            }
            local_reply(
                StatusCode::BAD_GATEWAY,
                &format!("cannot reach {}: {message}", state.origin),
            )
        }
    }
}

fn local_reply(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Full::new(Bytes::from(format!(
        "mcp-harness conformance proxy: {message}\n"
    )))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_host_detection() {
        for own in [
            "127.0.0.1:4000",
            "localhost:4000",
            "LOCALHOST:4000",
            "[::1]:4000",
            "127.1.2.3:4000",
        ] {
            assert!(names_proxy(own, 4000), "{own}");
        }
        for foreign in [
            "evil.example.com",
            "evil.example.com:4000",
            "127.0.0.1:4001",
            "127.0.0.1",
            "localhost",
            "localhost.evil.com:4000",
            "[::1",
        ] {
            assert!(!names_proxy(foreign, 4000), "{foreign}");
        }
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-drop"),
        );
        headers.insert("x-drop", HeaderValue::from_static("1"));
        headers.insert("x-keep", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example.com"),
        );
        strip_hop_by_hop(&mut headers);
        let names: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["x-keep", "origin"]);
    }
}
