//! Reading a request body within MAX_BODY_BYTES, and the rest of one that is too large.
//!
//! A server that answers 413 and closes the connection while the client is still sending makes
//! the kernel reset the connection (unread data at close), and the client then sees "connection
//! reset" or "broken pipe" instead of the 413 that says what to fix. So the rest of a refused
//! body is read and thrown away in the background while the answer goes out ("lingering
//! close"), bounded in bytes and time; past either bound the connection is closed as before.

use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::sync::SemaphorePermit;

use super::reply::Reject;
use super::AppState;
use crate::jsonrpc;

/// Most of a refused body read and discarded after the answer.
pub const DRAIN_BYTES: u64 = 8 << 20;
/// Longest time spent discarding a refused body.
pub const DRAIN_FOR: Duration = Duration::from_secs(2);

#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    /// Over the limit (declared by Content-Length or found while reading).
    TooLarge,
    /// The body could not be read (the client went away, or was too slow).
    Read,
}

/// A POST body within MAX_BODY_BYTES, read under a MAX_CONCURRENT_BODIES permit that the caller
/// keeps while it parses the bytes (concurrent large bodies cannot take the memory); refusals as
/// the client's answer (503 at capacity, 413 too large, 400 unreadable).
pub async fn read_post(
    state: &AppState,
    body: Body,
) -> Result<(Bytes, SemaphorePermit<'_>), Reject> {
    let permit = state.bodies.try_acquire().map_err(|_| {
        Reject::at_capacity(
            "too many request bodies are being read at once (MAX_CONCURRENT_BODIES)",
        )
    })?;
    let limit = state.config.http.max_body_bytes;
    match read_limited(body, limit).await {
        Ok(bytes) => Ok((bytes, permit)),
        Err(BodyError::TooLarge) => Err(Reject::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            jsonrpc::TRANSPORT_ERROR,
            format!("Payload Too Large: the body exceeds MAX_BODY_BYTES ({limit} bytes)"),
        )),
        Err(BodyError::Read) => Err(Reject::client(
            StatusCode::BAD_REQUEST,
            jsonrpc::TRANSPORT_ERROR,
            "Bad Request: the request body could not be read to its end",
        )),
    }
}

/// The whole body, at most `limit` bytes. A body that arrives in one frame (the usual case) is
/// returned without a copy.
pub async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, BodyError> {
    if body.size_hint().lower() > limit as u64 {
        drain_later(body);
        return Err(BodyError::TooLarge);
    }
    let mut whole: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|_| BodyError::Read)?.into_data() else {
            continue; // trailers
        };
        len += data.len();
        if len > limit {
            drain_later(body);
            return Err(BodyError::TooLarge);
        }
        match whole.take() {
            None if joined.is_empty() => whole = Some(data),
            first => {
                if let Some(first) = first {
                    joined.extend_from_slice(&first);
                }
                joined.extend_from_slice(&data);
            }
        }
    }
    Ok(whole.unwrap_or_else(|| joined.freeze()))
}

/// Reads and discards what is left of `body`, up to [`DRAIN_BYTES`] or [`DRAIN_FOR`], so the
/// connection closes cleanly after the refusal (or stays usable, when the body ends in time).
fn drain_later(mut body: Body) {
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + DRAIN_FOR;
        let mut read = 0u64;
        while read < DRAIN_BYTES {
            match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    read += frame.data_ref().map_or(0, |data| data.len() as u64);
                }
                _ => break,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn chunked(chunks: &[&'static [u8]]) -> Body {
        let frames: Vec<Result<Bytes, std::io::Error>> =
            chunks.iter().map(|c| Ok(Bytes::from_static(c))).collect();
        Body::from_stream(stream::iter(frames))
    }

    #[tokio::test]
    async fn one_frame_comes_back_as_it_is_and_several_are_joined() {
        let body = Body::from(Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(read_limited(body, 64).await.unwrap(), &b"{\"a\":1}"[..]);
        let body = chunked(&[b"{\"a\"", b":", b"1}"]);
        assert_eq!(read_limited(body, 64).await.unwrap(), &b"{\"a\":1}"[..]);
        assert_eq!(read_limited(chunked(&[]), 64).await.unwrap(), &b""[..]);
    }

    #[tokio::test]
    async fn the_limit_is_inclusive_and_one_byte_more_is_too_large() {
        assert!(read_limited(chunked(&[b"1234", b"5678"]), 8).await.is_ok());
        assert_eq!(
            read_limited(chunked(&[b"1234", b"56789"]), 8).await,
            Err(BodyError::TooLarge)
        );
        // Declared too large: refused before reading.
        let declared = Body::from(Bytes::from(vec![b'x'; 100]));
        assert_eq!(read_limited(declared, 99).await, Err(BodyError::TooLarge));
    }

    #[tokio::test]
    async fn a_failing_body_is_a_read_error() {
        let frames: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"{")),
            Err(std::io::Error::other("reset")),
        ];
        let body = Body::from_stream(stream::iter(frames));
        assert_eq!(read_limited(body, 64).await, Err(BodyError::Read));
    }
}
