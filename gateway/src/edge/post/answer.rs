//! The shape of a POST's answer: one JSON body, a JSON array (a batch), or an SSE stream.

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::accept::Wants;
use super::timer::{CallTimer, Shape};
use super::{accepted, AppState, Result};
use crate::core::session::Session;
use crate::core::stream::EventStream;
use crate::edge::headers::SESSION_ID;
use crate::edge::sse::{self, SseSpec};
use crate::protocol;

pub(super) async fn respond(
    state: &Arc<AppState>,
    session: &Arc<Session>,
    wants: Wants,
    stream: Arc<EventStream>,
    guard: Box<dyn Send + Sync>,
    mut timer: CallTimer,
) -> Result<Response> {
    match wants {
        Wants::Json => {
            let mut responses = timer.collect_responses(session).await;
            timer.disarm();
            drop(guard);
            // Cancelled by the client (notifications/cancelled): no response is due, and none
            // is made up.
            Ok(match responses.pop() {
                Some(body) => json_response(body, None),
                None => accepted(),
            })
        }
        Wants::Sse => {
            timer.hand_off();
            Ok(stream_response(state, session, stream, guard))
        }
        Wants::Both => match timer.wait_for_shape().await {
            Shape::Json(mut bodies) if bodies.len() == 1 => {
                timer.disarm();
                Ok(json_response(bodies.remove(0), None))
            }
            _ => {
                timer.hand_off();
                Ok(stream_response(state, session, stream, guard))
            }
        },
    }
}

pub(super) async fn respond_batch(
    state: &Arc<AppState>,
    session: &Arc<Session>,
    wants: Wants,
    stream: Arc<EventStream>,
    guard: Box<dyn Send + Sync>,
    mut timer: CallTimer,
) -> Result<Response> {
    match wants {
        Wants::Json => {
            let responses = timer.collect_responses(session).await;
            timer.disarm();
            drop(guard);
            Ok(if responses.is_empty() {
                accepted()
            } else {
                json_array(StatusCode::OK, &responses)
            })
        }
        Wants::Sse => {
            timer.hand_off();
            Ok(stream_response(state, session, stream, guard))
        }
        Wants::Both => match timer.wait_for_shape().await {
            Shape::Json(bodies) => {
                timer.disarm();
                Ok(json_array(StatusCode::OK, &bodies))
            }
            _ => {
                timer.hand_off();
                Ok(stream_response(state, session, stream, guard))
            }
        },
    }
}

/// Several JSON-RPC messages as one JSON array body.
pub(super) fn json_array(status: StatusCode, bodies: &[bytes::Bytes]) -> Response {
    let mut array = Vec::with_capacity(bodies.iter().map(|b| b.len() + 1).sum::<usize>() + 2);
    array.push(b'[');
    for (i, body) in bodies.iter().enumerate() {
        if i > 0 {
            array.push(b',');
        }
        array.extend_from_slice(body);
    }
    array.push(b']');
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes::Bytes::from(array),
    )
        .into_response()
}

pub(super) fn set_session_header(response: &mut Response, session_id: &str) {
    if let Ok(value) = HeaderValue::from_str(session_id) {
        response.headers_mut().insert(SESSION_ID, value);
    }
}

pub(super) fn json_response(body: bytes::Bytes, session_id: Option<&str>) -> Response {
    let mut response = (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response();
    if let Some(id) = session_id {
        set_session_header(&mut response, id);
    }
    response
}

/// An SSE answer made of messages already in hand (initialize with notifications before it).
pub(super) fn sse_from_events(
    session: &Arc<Session>,
    events: Vec<bytes::Bytes>,
    keepalive: std::time::Duration,
) -> Response {
    let stream = session.channel.open_stream(1);
    let count = events.len();
    for (i, data) in events.into_iter().enumerate() {
        stream.push(data, i + 1 == count);
    }
    stream.try_attach();
    sse::response(SseSpec {
        stream,
        after: 0,
        priming: protocol::wants_priming(session.version()),
        keepalive,
        stop: None,
        delivered_to: None,
        guard: None,
    })
}

fn stream_response(
    state: &Arc<AppState>,
    session: &Arc<Session>,
    stream: Arc<EventStream>,
    guard: Box<dyn Send + Sync>,
) -> Response {
    session.channel.retain(&stream);
    stream.try_attach();
    sse::response(SseSpec {
        stream,
        after: 0,
        priming: protocol::wants_priming(session.version()),
        keepalive: state.config.sse.keepalive,
        stop: None,
        delivered_to: None,
        guard: Some(guard),
    })
}
