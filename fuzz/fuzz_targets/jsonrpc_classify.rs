//! JSON-RPC classification: every verdict agrees with the message's members, and the fast
//! probes (responses from the child, requests from a client) never disagree with the full
//! classifier. A probed request is one line, has no `_meta`, and spliced with a new id it is
//! the parsed request with that id.
#![no_main]

use gateway::fuzzing::{classify, probe_request, probe_response, splice_id, Kind};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fn valid_id(id: &Value) -> bool {
    id.is_string() || id.is_i64() || id.is_u64()
}

fn check(message: &Map<String, Value>) {
    let version_ok = message.get("jsonrpc") == Some(&Value::String("2.0".into()));
    match classify(message) {
        Ok(Kind::Request { id, method }) => {
            assert!(version_ok);
            assert_eq!(message.get("method"), Some(&Value::String(method)));
            assert_eq!(message.get("id"), Some(&id));
            assert!(valid_id(&id), "request id {id}");
        }
        Ok(Kind::Notification { method }) => {
            assert!(version_ok);
            assert_eq!(message.get("method"), Some(&Value::String(method)));
            assert!(!message.contains_key("id"));
        }
        Ok(Kind::Response { id }) => {
            assert!(version_ok);
            assert!(!message.contains_key("method"));
            assert_ne!(
                message.contains_key("result"),
                message.contains_key("error")
            );
            assert_eq!(message.get("id"), Some(&id));
            assert!(valid_id(&id) || (id.is_null() && message.contains_key("error")));
        }
        Err(_) => {
            // Refused: something must be wrong with it.
            let ok_request = message.get("method").is_some_and(Value::is_string)
                && message.get("id").is_none_or(valid_id);
            let ok_response = !message.contains_key("method")
                && message.contains_key("result") != message.contains_key("error")
                && message.get("id").is_some_and(|id| {
                    valid_id(id) || (id.is_null() && message.contains_key("error"))
                });
            assert!(!version_ok || !(ok_request || ok_response), "{message:?}");
        }
    }
}

/// What the edge forwards for a probed request: classified as a request with the same id and
/// method, no `_meta` in object params, one line, and the splice is the request re-addressed.
fn check_request_probe(data: &[u8], message: &Map<String, Value>) {
    let Some(probe) = probe_request(data) else {
        return;
    };
    match classify(message) {
        Ok(Kind::Request { id, method }) => {
            assert_eq!(id, probe.id);
            assert_eq!(method, probe.method);
        }
        other => panic!("probe read a request the classifier calls {other:?}"),
    }
    match message.get("params") {
        None | Some(Value::Null) => {}
        Some(Value::Object(params)) => assert!(!params.contains_key("_meta")),
        Some(other) => panic!("probe took params {other}"),
    }
    assert!(!data.contains(&b'\n') && !data.contains(&b'\r'));
    let id: Value = serde_json::from_slice(&data[probe.id_span.clone()]).expect("span is the id");
    assert_eq!(id, probe.id);
    let spliced = splice_id(data, probe.id_span, &Value::from(7u64));
    let mut want = message.clone();
    want.insert("id".into(), Value::from(7u64));
    let got: Map<String, Value> = serde_json::from_slice(&spliced).expect("spliced is JSON");
    assert_eq!(got, want);
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        assert!(
            probe_response(data).is_none(),
            "the probe read invalid JSON"
        );
        assert!(
            probe_request(data).is_none(),
            "the request probe read invalid JSON"
        );
        return;
    };
    if let Value::Object(message) = &value {
        check_request_probe(data, message);
    } else {
        assert!(
            probe_request(data).is_none(),
            "the request probe read a non-object"
        );
    }
    let probe = probe_response(data);
    match &value {
        Value::Object(message) => {
            check(message);
            if let Some(probe) = probe {
                // The probe only takes responses with non-negative integer ids.
                match classify(message) {
                    Ok(Kind::Response { id }) => assert_eq!(id.as_u64(), Some(probe.id)),
                    other => panic!("probe read a response the classifier calls {other:?}"),
                }
                assert_eq!(probe.is_error, message.contains_key("error"));
            }
        }
        Value::Array(batch) => {
            assert!(probe.is_none(), "the probe read a batch");
            for member in batch {
                if let Value::Object(message) = member {
                    check(message);
                }
            }
        }
        _ => assert!(probe.is_none()),
    }
});
