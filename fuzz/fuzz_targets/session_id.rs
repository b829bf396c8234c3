//! `Mcp-Session-Id` handling: any header bytes read as text either exactly (visible ASCII) or
//! as the "garbage" marker, and the short form logged for a session id is a prefix of at most
//! 8 bytes of it, never splitting a character (no panic on any text).
#![no_main]

use gateway::fuzzing::{header_text, short_session_id};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let short = short_session_id(text);
        assert!(text.starts_with(short));
        assert!(short.len() <= 8);
        assert!(short.len() == text.len().min(8) || !text.is_char_boundary(text.len().min(8)));
    }
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert("mcp-session-id", value);
    let text = header_text(&headers, "mcp-session-id").expect("the header is present");
    match std::str::from_utf8(data) {
        Ok(exact)
            if data
                .iter()
                .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) =>
        {
            assert_eq!(text, exact)
        }
        _ => assert_eq!(text, "\u{fffd}"),
    }
    let short = short_session_id(text);
    assert!(text.starts_with(short) && short.len() <= 8);
    assert!(header_text(&headers, "last-event-id").is_none());
});
