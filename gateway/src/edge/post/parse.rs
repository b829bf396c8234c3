//! Reading a POST body: one message object, or a batch bounded while it is parsed.

use axum::http::StatusCode;
use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{invalid_request, Result};
use crate::edge::reply::Reject;
use crate::jsonrpc;

/// A POST body: one message object, or the members of a batch.
pub(super) enum Parsed {
    Single(Map<String, Value>),
    Batch(Vec<Value>),
}

/// Parses a body; a batch is refused as soon as it has more than `max_members` members, before
/// the rest is parsed, so a body of 90,000 tiny members costs no more than one of 256.
pub(super) fn parse_body(bytes: &[u8], max_members: usize) -> Result<Parsed> {
    let parse_error = || {
        Reject::client(
            StatusCode::BAD_REQUEST,
            jsonrpc::PARSE_ERROR,
            "Parse error: the body is not valid JSON",
        )
    };
    let is_batch = bytes
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'[');
    if !is_batch {
        return match serde_json::from_slice::<Value>(bytes).map_err(|_| parse_error())? {
            Value::Object(message) => Ok(Parsed::Single(message)),
            _ => Err(invalid_request(
                "Invalid Request: the body must be a JSON-RPC message object",
            )),
        };
    }
    let over = std::cell::Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let items = BoundedBatch {
        max: max_members,
        over: &over,
    }
    .deserialize(&mut deserializer);
    if over.get() {
        return Err(Reject::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            jsonrpc::INVALID_REQUEST,
            format!(
                "Content Too Large: a batch may have at most MAX_BATCH_MEMBERS ({max_members}) members; send the rest in further batches"
            ),
        ));
    }
    let items = items.map_err(|_| parse_error())?;
    deserializer.end().map_err(|_| parse_error())?;
    Ok(Parsed::Batch(items))
}

/// Collects a JSON array's members, stopping with an error after `max` of them.
struct BoundedBatch<'a> {
    max: usize,
    over: &'a std::cell::Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for BoundedBatch<'_> {
    type Value = Vec<Value>;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Vec<Value>, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for BoundedBatch<'_> {
    type Value = Vec<Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of JSON-RPC messages")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Vec<Value>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max));
        while let Some(item) = seq.next_element::<Value>()? {
            if items.len() == self.max {
                self.over.set(true);
                return Err(serde::de::Error::custom("too many batch members"));
            }
            items.push(item);
        }
        Ok(items)
    }
}
