//! The gateway's SSE encoder against the harness's SSE parser: whatever a child answers, the
//! events the gateway frames are read back by the parser exactly (ids, type, data), over any
//! chunking of the bytes.
//!
//! Input: child stdout lines (as `Lines` yields them: split on `\n`, trailing `\r` dropped,
//! blank ones skipped), each answered to the client under an id the input chooses.
#![no_main]

use bytes::Bytes;
use coda_mcp_fuzz::{chunk_sizes, chunks, runtime, split_at_byte};
use gateway::fuzzing::{response_for_client, sse_body};
use harness::sse::{SseItem, SseParser};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    // Layout: [stream id][priming?] chunk-seed 0x00 lines
    if data.len() < 2 {
        return;
    }
    let stream_id = u64::from(data[0]);
    let priming = data[1] & 1 == 1;
    let (seed, body) = split_at_byte(&data[2..], 0);
    let mut events: Vec<Bytes> = Vec::new();
    for (i, line) in body.split(|&b| b == b'\n').take(16).enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let client_id = if i % 2 == 0 {
            Value::from(i as u64)
        } else {
            Value::from(format!("c-{i}\u{2028}\""))
        };
        if let Some(out) = response_for_client(line, &client_id) {
            events.push(out);
        }
    }
    if events.is_empty() && !priming {
        return;
    }
    let wire = runtime().block_on(sse_body(stream_id, &events, priming));
    let mut parser = SseParser::new();
    let mut items = Vec::new();
    for chunk in chunks(&wire, &chunk_sizes(seed)) {
        items.extend(parser.feed(chunk));
    }
    assert!(!parser.finish(), "the stream ended inside an event");
    let mut items = items.into_iter();
    if priming {
        match items.next() {
            Some(SseItem::Event(e)) => {
                assert_eq!(e.id.as_deref(), Some(format!("{stream_id}-0").as_str()));
                assert_eq!(e.data.as_deref(), Some(""));
            }
            other => panic!("no priming event first: {other:?}"),
        }
    }
    for (seq, sent) in events.iter().enumerate() {
        let Some(SseItem::Event(e)) = items.next() else {
            panic!(
                "event {} is missing; wire: {:?}",
                seq + 1,
                String::from_utf8_lossy(&wire)
            );
        };
        assert_eq!(
            e.id.as_deref(),
            Some(format!("{stream_id}-{}", seq + 1).as_str())
        );
        assert_eq!(e.event.as_deref(), Some("message"));
        let sent = std::str::from_utf8(sent).expect("JSON is UTF-8");
        assert_eq!(
            e.data.as_deref(),
            Some(sent),
            "data read back differs; wire: {:?}",
            String::from_utf8_lossy(&wire)
        );
        let parsed: Value =
            serde_json::from_str(e.data.as_deref().unwrap_or("")).expect("data is JSON");
        assert!(parsed.get("id").is_some());
    }
    let rest: Vec<_> = items.collect();
    assert!(rest.is_empty(), "extra items: {rest:?}");
});
