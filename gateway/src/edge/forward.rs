//! Replicas behind a balancer without stickiness: a request naming a legacy session this replica
//! does not hold is forwarded over HTTP to the replica that owns it (the session directory in
//! Redis says which), and the owner's answer is streamed back unchanged, SSE chunk by chunk.
//!
//! Runs after authentication here (failed tokens are counted against the client's address on
//! the replica it reached) and the owner authenticates the bearer token again, so the identity
//! check happens where the session lives. The forwarder proves itself with an HMAC under
//! REPLICA_SECRET (`shared::credential`); a request carrying one is served where it lands and
//! never forwarded again. An owner that is gone (no directory entry, or the connection fails)
//! is answered 404, so the client initializes again.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::Caller;
use super::body;
use super::headers::{self, SESSION_ID};
use super::reply::{Fault, Reject};
use super::{request_id_of, AppState};
use crate::audit::{Event, EventType};
use crate::config::Config;
use crate::core::session::short;
use crate::jsonrpc;
use crate::shared::credential;
use crate::shared::directory::Directory;

/// Request headers the owner needs; everything else (cookies, Origin, proxies' headers) stays.
const FORWARDED_REQUEST_HEADERS: [&str; 6] = [
    "mcp-session-id",
    "mcp-protocol-version",
    "accept",
    "content-type",
    "last-event-id",
    "authorization",
];

/// Answer headers that describe one hop's connection, not the answer.
const HOP_BY_HOP: [&str; 5] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "upgrade",
];

/// What forwarding needs: the directory, an HTTP client and the secret.
pub struct Forwarder {
    pub directory: Directory,
    client: reqwest::Client,
    secret: crate::identity::Secret,
    own_url: String,
}

impl Forwarder {
    /// None without REDIS_URL. The read timeout outlasts the owner's longest silence: a call's
    /// timeout, or the gap between SSE keep-alives.
    pub fn new(
        config: &Config,
        shared: &crate::shared::Shared,
    ) -> anyhow::Result<Option<Forwarder>> {
        let Some(settings) = &config.replicas else {
            return Ok(None);
        };
        let silence = config
            .sessions
            .call_timeout
            .max(config.children.start_timeout)
            .max(config.sse.keepalive);
        let client = reqwest::Client::builder()
            .connect_timeout(config.forwarding.connect_timeout)
            .read_timeout(silence + Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Some(Forwarder {
            directory: Directory::new(shared.clone(), config.forwarding.directory_ttl),
            client,
            secret: settings.secret.clone(),
            own_url: settings.replica_url.clone(),
        }))
    }
}

/// Shared state could not be read: the client should retry shortly.
pub(crate) fn redis_unavailable() -> Reject {
    Reject::new(
        StatusCode::SERVICE_UNAVAILABLE,
        jsonrpc::TRANSPORT_ERROR,
        Fault::Gateway,
        "Service Unavailable: the replicas' shared state (Redis) does not answer; retry later",
    )
    .retry_after(5)
}

/// The middleware on `/mcp`, inside authentication.
pub async fn forward(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let Some(forwarder) = state.forwarder.as_ref() else {
        return next.run(request).await;
    };
    let rid = request_id_of(&request);
    let method = request.method().clone();
    let session_id = headers::text(request.headers(), SESSION_ID).map(str::to_string);
    // A forwarded request: served here, whatever the directory says (the loop guard).
    if let Some(value) = request.headers().get(credential::HEADER) {
        let checked = value
            .to_str()
            .map_err(|_| credential::CredentialError::Malformed)
            .and_then(|value| {
                credential::verify(
                    forwarder.secret.expose().as_bytes(),
                    method.as_str(),
                    session_id.as_deref().unwrap_or(""),
                    value,
                    credential::unix_now(),
                )
            });
        return match checked {
            Ok(()) => next.run(request).await,
            Err(error) => {
                tracing::warn!(%error, "refused a request with a bad replica credential");
                Reject::client(
                    StatusCode::FORBIDDEN,
                    jsonrpc::TRANSPORT_ERROR,
                    format!("Forbidden: {error}"),
                )
                .request_id(&rid)
                .into_response()
            }
        };
    }
    let Some(session_id) = session_id else {
        return next.run(request).await;
    };
    // A 2026-07-28 request ignores a stray session id: it is served here, by this replica's pool.
    if headers::text(request.headers(), headers::PROTOCOL_VERSION)
        .is_some_and(crate::protocol::is_modern)
    {
        return next.run(request).await;
    }
    if !matches!(method, Method::POST | Method::GET | Method::DELETE)
        || state.store.holds(&session_id)
    {
        return next.run(request).await;
    }
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        return next.run(request).await;
    };
    let entry = match forwarder.directory.lookup(&session_id).await {
        Ok(Some(entry)) if entry.owner != forwarder.own_url => entry,
        // Nobody owns it (or we did and it ended): answered here, 404.
        Ok(_) => return next.run(request).await,
        Err(error) => {
            tracing::warn!(%error, "session directory lookup failed");
            return redis_unavailable().request_id(&rid).into_response();
        }
    };
    if entry.subject != caller.identity.subject {
        state.audit.emit(
            Event::new(EventType::SessionHijackRejected)
                .ip(caller.ip)
                .identity(&caller.identity.subject)
                .token_hash(caller.identity.token_hash.as_deref())
                .session(short(&session_id))
                .request_id(&rid),
        );
        return Reject::session_not_found().request_id(&rid).into_response();
    }
    match send(&state, forwarder, &entry.owner, &session_id, request).await {
        Ok(response) => response,
        Err(reject) => reject.request_id(&rid).into_response(),
    }
}

/// Sends the request to `<owner>/mcp` and streams the answer back.
async fn send(
    state: &AppState,
    forwarder: &Forwarder,
    owner: &str,
    session_id: &str,
    request: Request,
) -> Result<Response, Reject> {
    let (parts, body) = request.into_parts();
    let body = if parts.method == Method::POST {
        Some(body::read_post(state, body).await?.0)
    } else {
        None
    };
    let mut outgoing = forwarder
        .client
        .request(parts.method.clone(), format!("{owner}/mcp"))
        .headers(pick(&parts.headers, &FORWARDED_REQUEST_HEADERS))
        .header(
            credential::HEADER,
            credential::sign(
                forwarder.secret.expose().as_bytes(),
                parts.method.as_str(),
                session_id,
                credential::unix_now(),
            ),
        );
    if let Some(body) = body {
        outgoing = outgoing.body(body);
    }
    let answer = outgoing
        .send()
        .await
        .map_err(|error| gone_or_failed(owner, &error))?;
    tracing::debug!(session = %short(session_id), owner, status = answer.status().as_u16(), "forwarded to the owning replica");
    let mut response = Response::builder().status(answer.status().as_u16());
    if let Some(headers) = response.headers_mut() {
        for (name, value) in answer.headers() {
            if !HOP_BY_HOP.contains(&name.as_str()) {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    response
        .body(Body::from_stream(answer.bytes_stream()))
        .map_err(|_| forward_failed())
}

fn pick(from: &HeaderMap, names: &[&'static str]) -> HeaderMap {
    let mut picked = HeaderMap::new();
    for name in names {
        for value in from.get_all(*name) {
            picked.append(HeaderName::from_static(name), value.clone());
        }
    }
    picked
}

/// The owner cannot be reached: it is gone, and so is the session (404, initialize again).
/// Any other failure is the gateway's (502) or a timeout (504).
fn gone_or_failed(owner: &str, error: &reqwest::Error) -> Reject {
    if error.is_connect() {
        tracing::info!(
            owner,
            "the replica owning a session cannot be reached; answering 404"
        );
        return Reject::session_not_found();
    }
    tracing::warn!(owner, error = %error, "forwarding to the owning replica failed");
    if error.is_timeout() {
        return Reject::new(
            StatusCode::GATEWAY_TIMEOUT,
            jsonrpc::INTERNAL_ERROR,
            Fault::Gateway,
            "Gateway Timeout: the replica holding this session did not answer in time",
        );
    }
    forward_failed()
}

fn forward_failed() -> Reject {
    Reject::new(
        StatusCode::BAD_GATEWAY,
        jsonrpc::INTERNAL_ERROR,
        Fault::Gateway,
        "Bad Gateway: the replica holding this session failed to answer; retry, or initialize again",
    )
}
