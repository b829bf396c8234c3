//! The two middlewares every request meets.
//!
//! `edge` wraps the whole router: it counts the request, then applies any matching
//! faults before the real handler can run. `require_token` wraps `/apis/v1` only: it
//! answers 401 for a missing or unknown token and hands the caller's identity on.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use crate::api_error::ApiError;
use crate::faults::FaultKind;
use crate::state::MockState;
use crate::tokens::{bearer_token, Identity};

/// The caller's identity, put into request extensions by [`require_token`].
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub Identity);

/// Where control routes live; they are neither counted nor subject to faults.
pub(crate) const CONTROL_PREFIX: &str = "/_mock";

pub(crate) async fn edge(
    State(state): State<Arc<MockState>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let is_control = path
        .strip_prefix(CONTROL_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    if is_control {
        return next.run(request).await;
    }
    let method = request.method().as_str().to_owned();
    let token = bearer_token(request.headers()).map(str::to_owned);
    let seq = state
        .calls
        .record(&method, &request.uri().to_string(), &path, token.is_some());
    let plan = state.faults.take(&method, &path, token.as_deref());
    if plan.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(plan.delay_ms)).await;
    }
    let response = match plan.terminal {
        None | Some(FaultKind::Latency { .. }) => next.run(request).await,
        Some(FaultKind::Status { status }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            ApiError::status(status).into_response()
        }
        Some(FaultKind::RateLimit { retry_after }) => {
            ApiError::rate_limited(retry_after).into_response()
        }
        Some(FaultKind::Malformed) => malformed_json(),
        Some(FaultKind::Drop) => {
            state.calls.finish(seq, None, plan.fired);
            return dropped_connection();
        }
    };
    state
        .calls
        .finish(seq, Some(response.status().as_u16()), plan.fired);
    response
}

pub(crate) async fn require_token(
    State(state): State<Arc<MockState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let identity = bearer_token(request.headers()).and_then(|token| state.identity(token));
    match identity {
        Some(identity) => {
            request.extensions_mut().insert(Caller(identity));
            next.run(request).await
        }
        None => ApiError::unauthorized().into_response(),
    }
}

/// A 200 that claims to be JSON but is cut off mid-object.
fn malformed_json() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"name": "Alice Example", "loginId": "alice@exa"#,
    )
        .into_response()
}

/// A response whose body fails before its first byte: hyper then aborts the connection
/// without writing the (still buffered) head, so the client sees the socket close with
/// no HTTP response at all. This works the same when the router is embedded elsewhere.
fn dropped_connection() -> Response {
    let failing = futures_util::stream::iter([Err::<Bytes, std::io::Error>(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "mock-coda drop fault",
    ))]);
    Response::new(Body::from_stream(failing))
}
