//! OAuth discovery without auth: RFC 9728 protected resource metadata (at both well-known paths)
//! and RFC 8414 authorization server metadata. Only endpoints this deployment serves are named.
//!
//! With sign-in off (`OAUTH=off` or `AUTH_MODE=none`) there is no authorization server: the
//! protected resource document names none (`authorization_servers` is optional in RFC 9728 §2,
//! `resource` is its only required member), and the authorization server document is 404. An
//! RFC 8414 document must list a non-empty `response_types_supported` and an
//! `authorization_endpoint` for the code flow; there is nothing truthful to put there, and an
//! empty one (what this used to serve) is invalid and sends clients into a dead end.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::auth::{public_base, SCOPE};
use super::reply::Reject;
use super::AppState;
use crate::audit::{Event, EventType};
use crate::jsonrpc;
use crate::ratelimit::{retry_after_secs, Decision};

pub async fn protected_resource(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Json<Value> {
    let base = base_of(&state, &request);
    let mut document = json!({
        "resource": format!("{base}/mcp"),
        "authorization_servers": [base],
        "bearer_methods_supported": ["header"],
        "scopes_supported": [SCOPE],
        "resource_name": state.config.service.name,
    });
    if state.oauth.is_none() {
        if let Some(map) = document.as_object_mut() {
            map.remove("authorization_servers");
        }
    }
    Json(document)
}

pub async fn authorization_server(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Response {
    let base = base_of(&state, &request);
    // OAuth on: exactly the endpoints `crate::oauth` serves.
    if let Some(oauth) = &state.oauth {
        return Json(crate::oauth::metadata::authorization_server(
            &base,
            &oauth.settings,
        ))
        .into_response();
    }
    // Sign-in off: no authorization server exists here (see the module comment).
    (
        StatusCode::NOT_FOUND,
        Json(json!({
            "error": "not_found",
            "error_description": "this gateway runs no OAuth authorization server (sign-in is off); send a Coda API token as the bearer token",
        })),
    )
        .into_response()
}

fn base_of(state: &AppState, request: &Request) -> String {
    public_base(state, request.headers(), super::peer_of(request))
}

/// Discovery documents are static and cacheable: each request counts against a per-IP budget of
/// its own (DISCOVERY_RATE_LIMIT_PER_MIN), never against failed authentications, so a client
/// re-reading them cannot lock its address out of /mcp. Browsers may read them from any origin.
pub async fn guard(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let request_id = super::request_id_of(&request);
    let ip = super::client_ip_of(&state, &request);
    let key = super::ip_key(ip);
    let mut response = match state.discovery_limit.check(&key).await {
        Ok(Decision::Allow) => next.run(request).await,
        Err(e) => {
            tracing::warn!(error = %e, request_id, "shared state (Redis) unavailable; discovery refused");
            super::auth::refusal_reject(
                crate::identity::Refusal::StateUnavailable {
                    retry_after: crate::shared::RETRY_AFTER_SECS,
                },
                "",
            )
            .request_id(&request_id)
            .into_response()
        }
        Ok(Decision::Deny { retry_after }) => {
            let retry_after = retry_after_secs(retry_after);
            crate::metrics::METRICS
                .rate_limited
                .inc(&[("limiter", "discovery")]);
            state.audit.emit(
                Event::new(EventType::RateLimited)
                    .ip(ip)
                    .request_id(&request_id)
                    .reason("discovery_per_ip"),
            );
            Reject::client(
                StatusCode::TOO_MANY_REQUESTS,
                jsonrpc::TRANSPORT_ERROR,
                format!("Too Many Requests: discovery is limited per address; retry after {retry_after} s"),
            )
            .retry_after(retry_after)
            .request_id(&request_id)
            .into_response()
        }
    };
    let derived = state.config.http.public_url.is_none();
    let ok = response.status().is_success();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("retry-after, x-request-id"),
    );
    headers.insert(header::CACHE_CONTROL, cache_control(ok, derived));
    if derived {
        // Without PUBLIC_URL the document names the request's own host, so a shared cache must
        // key on it (or one client's Host would be served to everyone).
        headers.insert(
            header::VARY,
            HeaderValue::from_static("Host, X-Forwarded-Host, X-Forwarded-Proto"),
        );
    }
    response
}

/// A document built from PUBLIC_URL is the same for everyone and may sit in any cache. One built
/// from the request's `Host` (PUBLIC_URL unset, loopback only) may not be shared: a shared cache
/// would serve one requester's host to all. A refusal (429) is never cached.
fn cache_control(ok: bool, derived: bool) -> HeaderValue {
    match (ok, derived) {
        (false, _) => HeaderValue::from_static("no-store"),
        (true, false) => HeaderValue::from_static("public, max-age=300"),
        (true, true) => HeaderValue::from_static("private, max-age=300"),
    }
}
