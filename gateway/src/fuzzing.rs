//! The parsers the `fuzz/` crate drives, re-exported in one place so the fuzz
//! targets do not need the gateway's modules public. Not an API: names here follow the code
//! they point to, and this module is the one place to adjust when those move.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;

pub use crate::config::{parse_origin, Flags};
pub use crate::core::session::short as short_session_id;
pub use crate::core::stream::{parse_event_id, EventStream};
pub use crate::edge::headers::{accepts, is_json, text as header_text};
pub use crate::edge::origin::OriginPolicy;
pub use crate::jsonrpc::{
    append_member, classify, map_to_bytes, probe_request, probe_response, probe_result, splice_id,
    Kind, RawResponse, RawResult,
};
pub use crate::oauth::cimd::{check_redirect_uri, redirect_uris};
pub use crate::oauth::crypto::valid_pkce_text;
pub use crate::oauth::handlers::canonical_resource;
pub use crate::oauth::page::{escape as html_escape, redirect_host};
pub use crate::upstream::{read_bounded_line, LineRead};
pub use crate::values::{Cidr, TrustedProxies};

/// The OAuth endpoints' form and query parser (a repeated parameter is an error).
pub fn form_pairs(text: &[u8]) -> Result<std::collections::HashMap<String, String>, String> {
    crate::oauth::handlers::pairs(text)
}

/// What the router sends the client for one child stdout line that answers a call now known
/// to the client as `client_id` (see `Router::inbound`): the line with only its id's bytes
/// replaced when [`probe_response`] reads it, otherwise the parsed response re-serialized with
/// the new id; `None` for anything that is not a response.
pub fn response_for_client(line: &[u8], client_id: &Value) -> Option<Bytes> {
    if let Some(raw) = probe_response(line) {
        return Some(splice_id(line, raw.id_span, client_id));
    }
    let Ok(Value::Object(mut message)) = serde_json::from_slice::<Value>(line) else {
        return None;
    };
    match classify(&message) {
        Ok(Kind::Response { .. }) => {
            message.insert("id".into(), client_id.clone());
            Some(map_to_bytes(&message))
        }
        _ => None,
    }
}

/// The bytes of the SSE response the gateway writes for a request stream with id `stream_id`
/// holding `events`, with the priming event when `priming` (as for 2025-11-25 sessions).
pub async fn sse_body(stream_id: u64, events: &[Bytes], priming: bool) -> Bytes {
    let stream = Arc::new(EventStream::new(stream_id, events.len().max(1), 0));
    for data in events {
        stream.push(data.clone(), false);
    }
    stream.finish();
    let response = crate::edge::sse::response(crate::edge::sse::SseSpec {
        stream,
        after: 0,
        priming,
        keepalive: Duration::from_secs(3600),
        stop: None,
        delivered_to: None,
        guard: None,
    });
    axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap_or_default()
}
