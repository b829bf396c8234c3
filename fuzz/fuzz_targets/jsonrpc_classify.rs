//! JSON-RPC classification: every verdict agrees with the message's members, and the fast
//! probe never disagrees with the full classifier.
#![no_main]

use gateway::fuzzing::{classify, probe_response, Kind};
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

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        assert!(
            probe_response(data).is_none(),
            "the probe read invalid JSON"
        );
        return;
    };
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
