//! The HTTP edge: routes, layers, status codes, headers and SSE framing on the wire.
//! It knows HTTP, not child processes: it hands parsed messages to the core.

mod accept;
pub mod auth;
pub mod body;
mod discovery;
pub mod forward;
mod get;
pub(crate) mod headers;
mod health;
mod modern;
#[cfg(test)]
mod no_process_tests;
pub mod origin;
mod post;
pub mod reply;
#[cfg(test)]
mod sanitize_tests;
mod session;
pub mod sse;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::Router;

use crate::metrics::METRICS;
use reply::Reject;

pub use crate::app::{
    body_permits, client_ip_of, ip_key, peer_of, request_id_of, AppState, RequestId,
};

/// Assembles the application: one place, so tests and `serve` build the same thing.
pub fn app(state: Arc<AppState>) -> Router {
    let mcp: MethodRouter<Arc<AppState>> = axum::routing::post(post::handle)
        .get(get::stream)
        .delete(get::delete)
        .fallback(method_not_allowed);
    // Layers wrap from the inside out: the origin check runs before authentication, so a
    // browser on a hostile page learns nothing about tokens; it also answers CORS preflights
    // (OPTIONS), which therefore never reach authentication.
    let mcp = Router::new()
        .route("/mcp", mcp)
        // Replicas: inside authentication, so only an authenticated request is forwarded.
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            forward::forward,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), check_origin));
    let discovery = Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(discovery::protected_resource),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(discovery::protected_resource),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::authorization_server),
        )
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            discovery::guard,
        ));
    // OAuth endpoints: an empty router unless OAuth is on; under the per-IP guard.
    let oauth = crate::oauth::routes(&state);
    Router::new()
        .merge(mcp)
        .merge(discovery)
        .merge(oauth)
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .layer(middleware::from_fn(request_id))
        .with_state(state)
}

async fn method_not_allowed() -> Response {
    Reject::client(
        StatusCode::METHOD_NOT_ALLOWED,
        crate::jsonrpc::TRANSPORT_ERROR,
        "Method not allowed: use POST, GET or DELETE",
    )
    .header(header::ALLOW, "GET, POST, DELETE")
    .into_response()
}

/// Request headers a browser client may send: the MCP transport's own headers
/// plus the standard ones an MCP client sets.
const CORS_ALLOW_HEADERS: &str = "authorization, content-type, accept, mcp-session-id, mcp-protocol-version, last-event-id, mcp-method, mcp-name";
/// Response headers a browser client must be able to read.
const CORS_EXPOSE_HEADERS: &str = "mcp-session-id, www-authenticate, retry-after, x-request-id";

/// The answer to `OPTIONS /mcp`. A preflight carries no credentials by design, so it is answered
/// before authentication (and never counts as a failed one); [`check_origin`] already refused an
/// untrusted `Origin`. Without an `Origin` it is not a CORS preflight: the allowed methods only.
fn preflight(origin: Option<&HeaderValue>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ALLOW,
        HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
    );
    let Some(origin) = origin else {
        return response;
    };
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, DELETE"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(CORS_ALLOW_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(CORS_EXPOSE_HEADERS),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

/// Refuses a present, untrusted `Origin` with 403 (a JSON-RPC error without id); echoes trusted
/// ones for CORS.
async fn check_origin(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .map(|v| v.to_str().unwrap_or("").to_string());
    let request_id = request_id_of(&request);
    if let Some(origin) = &origin {
        if !state.origins.allows(origin) {
            tracing::warn!(origin = %origin, "request from an untrusted Origin refused");
            return Reject::client(
                StatusCode::FORBIDDEN,
                crate::jsonrpc::TRANSPORT_ERROR,
                "Forbidden: Origin not allowed",
            )
            .without_id()
            .request_id(&request_id)
            .into_response();
        }
    }
    if request.method() == Method::OPTIONS {
        return preflight(request.headers().get(header::ORIGIN));
    }
    let mut response = next.run(request).await;
    if let Some(origin) = origin {
        if let Ok(value) = HeaderValue::from_str(&origin) {
            let headers = response.headers_mut();
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
            headers.insert(header::VARY, HeaderValue::from_static("Origin"));
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(CORS_EXPOSE_HEADERS),
            );
        }
    }
    response
}

/// A route as a metrics label (paths clients invent must not become labels).
fn route_label(path: &str) -> &'static str {
    match path {
        "/mcp" => "mcp",
        "/health" => "health",
        "/ready" => "ready",
        "/metrics" => "metrics",
        p if p.starts_with("/.well-known/") => "discovery",
        p if p.starts_with("/oauth/") => "oauth",
        _ => "other",
    }
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

/// Gives every request an id (in a span, in the response header, in error bodies).
async fn request_id(mut request: Request, next: Next) -> Response {
    let id = crate::edge::headers::new_request_id();
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    let route = route_label(request.uri().path());
    let started = tokio::time::Instant::now();
    let span = tracing::info_span!("request", request_id = %id, method = %method, path = %request.uri().path());
    let mut response = tracing::Instrument::instrument(next.run(request), span).await;
    METRICS.http_duration.observe(started.elapsed());
    METRICS.http_requests.inc(&[
        ("method", method_name(&method)),
        ("route", route),
        ("status", response.status().as_str()),
    ]);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    if method != Method::GET || response.status() != StatusCode::OK {
        tracing::debug!(request_id = %id, status = response.status().as_u16(), "answered");
    }
    response
}
