//! `probe_result` + `append_member` (the 2026-07-28 edge completing a child's result in place):
//! the probe reads only successful responses with an object result, its spans are exactly the
//! id and the result object, `has_result_type` and `result_empty` say what the parsed result
//! says, and appending `resultType` gives the parsed line with that member added to the result
//! (for a compact line, byte for byte what re-serializing the parsed tree gives); the completed
//! line stays one line.
#![no_main]

use gateway::fuzzing::{append_member, map_to_bytes, probe_result};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|line: &[u8]| {
    let Some(probe) = probe_result(line) else {
        return;
    };
    let mut want: Map<String, Value> =
        serde_json::from_slice(line).expect("the probe read valid JSON");
    assert!(want.contains_key("id") && !want.contains_key("error") && !want.contains_key("method"));
    assert_eq!(want.get("jsonrpc"), Some(&Value::from("2.0")));
    let id: Value = serde_json::from_slice(&line[probe.id_span.clone()]).expect("span is the id");
    assert_eq!(want.get("id"), Some(&id), "span is not the id");
    let result: Map<String, Value> = serde_json::from_slice(&line[probe.result_span.clone()])
        .expect("span is the result object");
    assert_eq!(
        want.get("result"),
        Some(&Value::Object(result.clone())),
        "span is not the result"
    );
    assert_eq!(probe.has_result_type, result.contains_key("resultType"));
    assert_eq!(probe.result_empty, result.is_empty());
    let compact = map_to_bytes(&want)[..] == *line;
    let completed = append_member(
        line,
        probe.result_span.clone(),
        probe.result_empty,
        br#""resultType":"complete""#,
    );
    assert!(
        !completed.contains(&b'\n'),
        "a completed line must stay one line"
    );
    if !probe.has_result_type {
        if let Some(Value::Object(result)) = want.get_mut("result") {
            result.insert("resultType".into(), Value::from("complete"));
        }
        let got: Map<String, Value> =
            serde_json::from_slice(&completed).expect("completed bytes are JSON");
        assert_eq!(got, want);
        if compact {
            assert_eq!(
                completed,
                map_to_bytes(&want),
                "compact line: bytes differ from re-serialization"
            );
        }
    }
});
