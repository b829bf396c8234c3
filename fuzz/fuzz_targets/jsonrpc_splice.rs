//! `probe_response` + `splice_id`: the spliced bytes are the message with the new id (parsed,
//! they equal the parsed line with `id` replaced; for a compact line, byte for byte what
//! re-serializing it with the new id gives), the span is exactly the id's bytes, and the
//! spliced line stays one line.
#![no_main]

use gateway::fuzzing::{map_to_bytes, probe_response, splice_id};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// The client's id for this call, chosen by the first input byte: an integer or a string
/// (with quotes, escapes, control characters and non-ASCII, all of which must be escaped).
fn client_id(selector: &[u8]) -> Value {
    match selector.first().copied().unwrap_or(0) % 4 {
        0 => Value::from(u64::from_le_bytes(pad(selector))),
        1 => Value::from(i64::from_le_bytes(pad(selector))),
        _ => Value::String(String::from_utf8_lossy(selector).into_owned()),
    }
}

fn pad(bytes: &[u8]) -> [u8; 8] {
    let mut out = [0u8; 8];
    for (o, b) in out.iter_mut().zip(bytes.iter().skip(1)) {
        *o = *b;
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let (selector, line) = coda_mcp_fuzz::split_at_byte(data, 0xff);
    let (selector, line) = if line.is_empty() {
        (&b""[..], selector)
    } else {
        (selector, line)
    };
    // `upstream::Lines` never yields a line holding a newline.
    if line.contains(&b'\n') {
        return;
    }
    let Some(probe) = probe_response(line) else {
        return;
    };
    let span = probe.id_span.clone();
    assert_eq!(
        &line[span.clone()],
        probe.id.to_string().as_bytes(),
        "span is not the id"
    );
    let id = client_id(selector);
    let spliced = splice_id(line, span, &id);
    assert!(
        !spliced.contains(&b'\n'),
        "a spliced line must stay one line"
    );
    let mut want: Map<String, Value> =
        serde_json::from_slice(line).expect("the probe read valid JSON");
    let compact = map_to_bytes(&want)[..] == *line;
    want.insert("id".into(), id);
    let got: Map<String, Value> = serde_json::from_slice(&spliced).expect("spliced bytes are JSON");
    assert_eq!(got, want);
    if compact {
        assert_eq!(
            spliced,
            map_to_bytes(&want),
            "compact line: bytes differ from re-serialization"
        );
    }
});
