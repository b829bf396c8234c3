//! `Last-Event-ID` parsing: every id the gateway writes (events and primings, any stream and
//! position) parses back to its stream and position, and any text that parses names numbers
//! that are really in it.
#![no_main]

use gateway::fuzzing::{parse_event_id, EventStream};
use libfuzzer_sys::fuzz_target;

fn u64_at(data: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(bytes)
}

fuzz_target!(|data: &[u8]| {
    // Round trip of what the gateway writes.
    let stream_id = u64_at(data, 0);
    let seq = u64_at(data, 8);
    let stream = EventStream::new(stream_id, 1, 0);
    assert_eq!(
        parse_event_id(&stream.event_id(seq)),
        Some((stream_id, seq))
    );
    let primings = data.get(16).copied().unwrap_or(0) % 4 + 1;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..primings {
        let id = stream.priming_id(seq);
        assert_eq!(parse_event_id(&id), Some((stream_id, seq)), "{id}");
        assert!(seen.insert(id.clone()), "priming id {id} repeated");
    }

    // Arbitrary header text (as `headers::text` hands it: visible ASCII, or U+FFFD).
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((stream, seq)) = parse_event_id(text) {
        let trimmed = text.trim();
        let (head, tail) = trimmed.split_once('-').expect("a parsed id has a dash");
        assert_eq!(head.parse::<u64>().ok(), Some(stream));
        let tail = tail.split_once('.').map_or(tail, |(s, _)| s);
        assert_eq!(tail.parse::<u64>().ok(), Some(seq));
        // The canonical form of what was read parses to the same place.
        assert_eq!(
            parse_event_id(&format!("{stream}-{seq}")),
            Some((stream, seq))
        );
    }
});
