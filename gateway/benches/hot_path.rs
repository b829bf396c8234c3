//! CPU per message of the gateway's per-call JSON work, old way against new, in process:
//! `cargo bench -p gateway --bench hot_path`. End-to-end figures (gateway CPU per call under
//! `mcp-harness load`) move by tens of percent on a shared machine; these loops isolate what a
//! change saves. Each figure is the fastest of several rounds (the least disturbed by others).

use std::hint::black_box;
use std::time::Instant;

use gateway::jsonrpc::{self, Kind};
use serde_json::{json, Map, Value};

const ROUNDS: usize = 7;
const ITERATIONS: u32 = 100_000;

fn measure(name: &str, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..ITERATIONS {
            f();
        }
        best = best.min(start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS));
    }
    println!("{name:<58} {best:>8.0} ns");
    best
}

fn main() {
    let request = br#"{"jsonrpc":"2.0","id":4711,"method":"tools/call","params":{"name":"echo","arguments":{"message":"load-4711"}}}"#;
    let response =
        br#"{"jsonrpc":"2.0","id":17,"result":{"content":[{"type":"text","text":"load-4711"}]}}"#;
    let client_id = json!(4711);

    println!("per message (fastest of {ROUNDS} rounds of {ITERATIONS})");
    let old = measure("legacy request: parse tree, classify, re-serialize", || {
        let Ok(Value::Object(mut message)) = serde_json::from_slice::<Value>(black_box(request))
        else {
            panic!("request")
        };
        let Ok(Kind::Request { .. }) = jsonrpc::classify(&message) else {
            panic!("kind")
        };
        let _ = black_box(jsonrpc::progress_token(&message));
        message.insert("id".into(), json!(17u64));
        black_box(jsonrpc::map_to_bytes(&message));
    });
    let new = measure("legacy request: probe_request + splice_id", || {
        let raw = jsonrpc::probe_request(black_box(request)).expect("probe");
        black_box(jsonrpc::splice_id(request, raw.id_span, &json!(17u64)));
    });
    println!("  saved {:.0} ns per request", old - new);

    measure("response: probe_response + splice_id (both eras)", || {
        let raw = jsonrpc::probe_response(black_box(response)).expect("probe");
        black_box(jsonrpc::splice_id(response, raw.id_span, &client_id));
    });

    let old = measure(
        "modern answer: parse tree, add resultType, re-serialize",
        || {
            let Ok(Value::Object(mut message)) =
                serde_json::from_slice::<Value>(black_box(response))
            else {
                panic!("response")
            };
            message.insert("id".into(), client_id.clone());
            if let Some(result) = message.get_mut("result").and_then(Value::as_object_mut) {
                if !result.contains_key("resultType") {
                    result.insert("resultType".into(), json!("complete"));
                }
            }
            black_box(jsonrpc::map_to_bytes(&message));
        },
    );
    let new = measure("modern answer: probe_result + append_member", || {
        let raw = jsonrpc::probe_result(black_box(response)).expect("probe");
        black_box(jsonrpc::append_member(
            response,
            raw.result_span,
            raw.result_empty,
            br#""resultType":"complete""#,
        ));
    });
    println!("  saved {:.0} ns per answer", old - new);

    let modern = br#"{"jsonrpc":"2.0","id":4711,"method":"tools/call","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}},"name":"echo","arguments":{"message":"load-4711"}}}"#;
    let message: Map<String, Value> = serde_json::from_slice(modern).expect("modern request");
    let params = message.get("params").and_then(Value::as_object);
    measure("modern request: request_digest (MRTR)", || {
        black_box(gateway::core::mrtr::request_digest(
            "tools/call",
            black_box(params),
        ));
    });
}
