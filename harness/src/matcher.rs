//! JSON subset matching with a small operator vocabulary.
//!
//! An expected value matches an actual value when:
//! - both are scalars and equal (numbers compare by value: `1` matches `1.0`);
//! - both are objects and every expected key matches the actual key (extra actual keys are fine);
//! - both are arrays of the same length and match element by element;
//! - the expected value is an operator object (every key starts with `$`):
//!   - `{"$any": true}`: anything that is present;
//!   - `{"$absent": true}`: the key is missing (only meaningful as an object member or header);
//!   - `{"$type": "string" | "number" | "integer" | "boolean" | "null" | "object" | "array"}`;
//!   - `{"$regex": "..."}`: a string that the regex finds a match in (use `^…$` to anchor);
//!   - `{"$contains": X}`: an array with some element matching X, or a string containing X;
//!   - `{"$all": X}`: an array whose every element matches X;
//!   - `{"$eq": X}`: exact equality (no subset rule for objects);
//!   - `{"$not": X}`: anything that does not match X;
//!   - `{"$one_of": [X, Y]}`: matches one of the alternatives;
//!   - `{"$len": N}`: an array, object or string with N elements, members or characters;
//!   - `{"$min": N}` / `{"$max": N}`: a number at least / at most N (`ttlMs` >= 0).
//!
//! Several operators in one object must all hold.
//! A mismatch reports the JSON path of the first difference, like `$.result.content[0].text`.

use serde_json::Value;
use std::fmt;

/// The first difference found between an expectation and an actual value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mismatch {
    /// JSON path of the mismatching value, e.g. `$.error.code`.
    pub path: String,
    /// The expectation at that path, rendered compactly.
    pub expected: String,
    /// The actual value at that path (`<absent>` when missing), rendered compactly.
    pub actual: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "at {}: expected {}, actual {}",
            self.path, self.expected, self.actual
        )
    }
}

/// Matches `actual` against `expected`, returning the first mismatch.
pub fn check(expected: &Value, actual: &Value) -> Result<(), Mismatch> {
    check_at(expected, Some(actual), "$")
}

/// Like [`check`], for a value that may be missing (a header, an object member).
pub fn check_optional(
    expected: &Value,
    actual: Option<&Value>,
    path: &str,
) -> Result<(), Mismatch> {
    check_at(expected, actual, path)
}

/// True when `value` is an operator object (non-empty, every key starts with `$`).
pub fn is_operator(value: &Value) -> bool {
    match value {
        Value::Object(map) => !map.is_empty() && map.keys().all(|k| k.starts_with('$')),
        _ => false,
    }
}

/// Checks an expectation for unknown operators or bad regexes, returning a message for the first.
pub fn validate(expected: &Value) -> Result<(), String> {
    match expected {
        Value::Object(map) if is_operator(expected) => {
            for (op, arg) in map {
                match op.as_str() {
                    "$any" | "$absent" | "$eq" => {}
                    "$type" => {
                        let known = [
                            "string", "number", "integer", "boolean", "null", "object", "array",
                        ];
                        if !arg.as_str().is_some_and(|t| known.contains(&t)) {
                            return Err(format!("$type must be one of {known:?}, got {arg}"));
                        }
                    }
                    "$regex" => {
                        let pattern = arg.as_str().ok_or("$regex needs a string")?;
                        if !pattern.contains("${") {
                            regex::Regex::new(pattern)
                                .map_err(|e| format!("bad $regex {pattern:?}: {e}"))?;
                        }
                    }
                    "$contains" | "$not" | "$all" => validate(arg)?,
                    "$one_of" => {
                        let options = arg.as_array().ok_or("$one_of needs an array")?;
                        options.iter().try_for_each(validate)?;
                    }
                    "$len" => {
                        arg.as_u64().ok_or("$len needs a non-negative integer")?;
                    }
                    "$min" | "$max" => {
                        arg.as_f64().ok_or(format!("{op} needs a number"))?;
                    }
                    other => return Err(format!("unknown matcher operator {other}")),
                }
            }
            Ok(())
        }
        Value::Object(map) => {
            if let Some(op) = map.keys().find(|k| k.starts_with('$')) {
                return Err(format!(
                    "{op} stands beside ordinary keys; an operator object holds only $ keys"
                ));
            }
            map.values().try_for_each(validate)
        }
        Value::Array(items) => items.iter().try_for_each(validate),
        _ => Ok(()),
    }
}

fn render(value: Option<&Value>) -> String {
    match value {
        None => "<absent>".to_string(),
        Some(v) => {
            let text = v.to_string();
            if text.chars().count() > 200 {
                let cut: String = text.chars().take(200).collect();
                format!("{cut}…")
            } else {
                text
            }
        }
    }
}

fn mismatch(path: &str, expected: impl Into<String>, actual: Option<&Value>) -> Mismatch {
    Mismatch {
        path: path.to_string(),
        expected: expected.into(),
        actual: render(actual),
    }
}

fn check_at(expected: &Value, actual: Option<&Value>, path: &str) -> Result<(), Mismatch> {
    if is_operator(expected) {
        return check_operators(expected, actual, path);
    }
    let Some(actual) = actual else {
        return Err(mismatch(path, render(Some(expected)), None));
    };
    match (expected, actual) {
        (Value::Object(want), Value::Object(have)) => {
            for (key, want_value) in want {
                let child = child_key(path, key);
                check_at(want_value, have.get(key), &child)?;
            }
            Ok(())
        }
        (Value::Array(want), Value::Array(have)) => {
            if want.len() != have.len() {
                return Err(mismatch(
                    path,
                    format!("an array of {} items", want.len()),
                    Some(actual),
                ));
            }
            for (index, (w, h)) in want.iter().zip(have).enumerate() {
                check_at(w, Some(h), &format!("{path}[{index}]"))?;
            }
            Ok(())
        }
        (Value::Number(a), Value::Number(b)) if a.as_f64() == b.as_f64() => Ok(()),
        _ if expected == actual => Ok(()),
        _ => Err(mismatch(path, render(Some(expected)), Some(actual))),
    }
}

fn child_key(path: &str, key: &str) -> String {
    if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !key.is_empty() {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Value::String(key.to_string()))
    }
}

fn check_operators(expected: &Value, actual: Option<&Value>, path: &str) -> Result<(), Mismatch> {
    let Value::Object(ops) = expected else {
        unreachable!("is_operator checked the shape")
    };
    for (op, arg) in ops {
        check_operator(op, arg, actual, path)?;
    }
    Ok(())
}

fn check_operator(
    op: &str,
    arg: &Value,
    actual: Option<&Value>,
    path: &str,
) -> Result<(), Mismatch> {
    let wanted = || format!("{{{}: {}}}", Value::String(op.to_string()), arg);
    match op {
        "$absent" => {
            let want_absent = arg.as_bool().unwrap_or(true);
            if actual.is_some() == want_absent {
                return Err(mismatch(path, wanted(), actual));
            }
            Ok(())
        }
        "$any" => actual
            .map(|_| ())
            .ok_or_else(|| mismatch(path, wanted(), None)),
        "$not" => match check_at(arg, actual, path) {
            Ok(()) => Err(mismatch(path, wanted(), actual)),
            Err(_) => Ok(()),
        },
        "$one_of" => {
            let options = arg.as_array().map(Vec::as_slice).unwrap_or_default();
            if options.iter().any(|o| check_at(o, actual, path).is_ok()) {
                Ok(())
            } else {
                Err(mismatch(path, wanted(), actual))
            }
        }
        _ => {
            let Some(value) = actual else {
                return Err(mismatch(path, wanted(), None));
            };
            let ok = match op {
                "$type" => type_matches(arg.as_str().unwrap_or_default(), value),
                "$regex" => match (arg.as_str(), value.as_str()) {
                    (Some(pattern), Some(text)) => regex::Regex::new(pattern)
                        .map(|re| re.is_match(text))
                        .unwrap_or(false),
                    _ => false,
                },
                "$contains" => match value {
                    Value::Array(items) => items.iter().any(|item| check(arg, item).is_ok()),
                    Value::String(text) => arg.as_str().is_some_and(|needle| text.contains(needle)),
                    _ => false,
                },
                "$all" => value
                    .as_array()
                    .is_some_and(|items| items.iter().all(|item| check(arg, item).is_ok())),
                "$eq" => arg == value,
                "$len" => {
                    let len = match value {
                        Value::Array(items) => Some(items.len()),
                        Value::Object(map) => Some(map.len()),
                        Value::String(text) => Some(text.chars().count()),
                        _ => None,
                    };
                    len.is_some() && len.map(|l| l as u64) == arg.as_u64()
                }
                "$min" => matches!((value.as_f64(), arg.as_f64()), (Some(v), Some(n)) if v >= n),
                "$max" => matches!((value.as_f64(), arg.as_f64()), (Some(v), Some(n)) if v <= n),
                _ => false,
            };
            if ok {
                Ok(())
            } else {
                Err(mismatch(path, wanted(), Some(value)))
            }
        }
    }
}

fn type_matches(kind: &str, value: &Value) -> bool {
    match kind {
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        _ => false,
    }
}

/// Looks up a dotted path such as `result.content[0].text` (an optional leading `$.` is allowed).
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let path = path.trim();
    let path = path.strip_prefix('$').unwrap_or(path);
    let path = path.strip_prefix('.').unwrap_or(path);
    let mut current = value;
    if path.is_empty() {
        return Some(current);
    }
    for segment in path.split('.') {
        let (key, indices) = match segment.find('[') {
            Some(open) => (&segment[..open], &segment[open..]),
            None => (segment, ""),
        };
        if !key.is_empty() {
            current = current.get(key)?;
        }
        for index in indices.split('[').filter(|s| !s.is_empty()) {
            let index: usize = index.strip_suffix(']')?.parse().ok()?;
            current = current.get(index)?;
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[track_caller]
    fn check_fails(expected: Value, actual: Value, want: &str) {
        let err = check(&expected, &actual).expect_err("expected a mismatch");
        assert_eq!(err.to_string(), want);
    }

    #[test]
    fn min_and_max_bound_numbers() {
        check(
            &json!({"ttlMs": {"$type": "integer", "$min": 0}}),
            &json!({"ttlMs": 0}),
        )
        .unwrap();
        check(&json!({"$min": 1, "$max": 2}), &json!(1.5)).unwrap();
        check_fails(
            json!({"ttlMs": {"$min": 0}}),
            json!({"ttlMs": -1}),
            r#"at $.ttlMs: expected {"$min": 0}, actual -1"#,
        );
        check_fails(
            json!({"$max": 2}),
            json!(3),
            r#"at $: expected {"$max": 2}, actual 3"#,
        );
        check_fails(
            json!({"$min": 0}),
            json!("5"),
            r#"at $: expected {"$min": 0}, actual "5""#,
        );
        assert_eq!(
            validate(&json!({"$min": "x"})),
            Err("$min needs a number".into())
        );
    }

    #[test]
    fn subset_and_paths() {
        let actual = json!({"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"hi"}],"x":1}});
        check(
            &json!({"id": 1, "result": {"content": [{"text": "hi"}]}}),
            &actual,
        )
        .unwrap();
        check_fails(
            json!({"result": {"content": [{"text": "ho"}]}}),
            actual.clone(),
            r#"at $.result.content[0].text: expected "ho", actual "hi""#,
        );
        check_fails(
            json!({"result": {"content": []}}),
            actual.clone(),
            r#"at $.result.content: expected an array of 0 items, actual [{"type":"text","text":"hi"}]"#,
        );
        check_fails(
            json!({"error": {}}),
            actual,
            "at $.error: expected {}, actual <absent>",
        );
    }

    #[test]
    fn operators() {
        let actual = json!({"id": null, "s": "Bearer realm=x", "n": 2.0, "a": [1, {"k": "v"}]});
        let expected = json!({
            "id": {"$type": "null"},
            "s": {"$regex": "^Bearer ", "$contains": "realm"},
            "n": 2,
            "a": {"$contains": {"k": "v"}, "$len": 2},
            "missing": {"$absent": true},
            "other": {"$not": {"$any": true}},
        });
        check(&expected, &actual).unwrap();
        check(&json!({"$one_of": [1, "a"]}), &json!("a")).unwrap();
        check(
            &json!({"$all": {"k": {"$type": "string"}}}),
            &json!([{"k": "a"}, {"k": "b"}]),
        )
        .unwrap();
        check_fails(
            json!({"$all": {"k": 1}}),
            json!([{"k": 1}, {"k": 2}]),
            r#"at $: expected {"$all": {"k":1}}, actual [{"k":1},{"k":2}]"#,
        );
        check_fails(
            json!({"id": {"$absent": true}}),
            actual.clone(),
            r#"at $.id: expected {"$absent": true}, actual null"#,
        );
        check_fails(
            json!({"a": {"$contains": 3}}),
            actual.clone(),
            r#"at $.a: expected {"$contains": 3}, actual [1,{"k":"v"}]"#,
        );
        check_fails(
            json!({"n": {"$type": "integer"}}),
            actual,
            r#"at $.n: expected {"$type": "integer"}, actual 2.0"#,
        );
        check_fails(
            json!({"$eq": {"a": 1}}),
            json!({"a": 1, "b": 2}),
            r#"at $: expected {"$eq": {"a":1}}, actual {"a":1,"b":2}"#,
        );
    }

    #[test]
    fn odd_keys_are_quoted_in_paths() {
        check_fails(
            json!({"a-b": 1}),
            json!({"a-b": 2}),
            r#"at $["a-b"]: expected 1, actual 2"#,
        );
    }

    #[test]
    fn validation() {
        assert!(validate(&json!({"x": {"$regex": "("}})).is_err());
        assert!(validate(&json!({"x": {"$typo": 1}})).is_err());
        assert!(validate(&json!({"x": {"$type": "str"}})).is_err());
        assert!(validate(&json!({"id": 1, "$one_of": []})).is_err());
        assert!(validate(&json!({"x": [{"$contains": {"$len": 1}}]})).is_ok());
    }

    fn plain_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "[a-z ]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{1,4}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn every_value_matches_itself_and_eq(value in plain_json()) {
            proptest::prop_assert!(check(&value, &value).is_ok());
            let eq = json!({"$eq": value.clone()});
            let any = json!({"$any": true});
            proptest::prop_assert!(check(&eq, &value).is_ok());
            proptest::prop_assert!(check(&any, &value).is_ok());
        }

        #[test]
        fn a_subset_of_an_object_matches_it(value in plain_json(), keep in 0usize..4) {
            if let Value::Object(map) = &value {
                let subset: serde_json::Map<String, Value> =
                    map.iter().take(keep).map(|(k, v)| (k.clone(), v.clone())).collect();
                proptest::prop_assert!(check(&Value::Object(subset), &value).is_ok());
            }
        }
    }

    #[test]
    fn lookup_paths() {
        let value = json!({"result": {"content": [{"text": "hi"}]}, "a": [[1, 2]]});
        assert_eq!(lookup(&value, "result.content[0].text"), Some(&json!("hi")));
        assert_eq!(lookup(&value, "$.a[0][1]"), Some(&json!(2)));
        assert_eq!(lookup(&value, ""), Some(&value));
        assert_eq!(lookup(&value, "result.nope"), None);
    }
}
