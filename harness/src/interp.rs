//! `${var}` interpolation of captured and configured variables.
//!
//! In plain strings (paths, header values, raw bodies, durations) every `${name}` is replaced by
//! the variable's text: a JSON string without quotes, anything else as compact JSON.
//! In JSON templates (bodies and expectations) a string that is exactly `"${name}"` is replaced by
//! the variable's JSON value (so a captured numeric id stays a number); other strings are
//! interpolated as text. `$${` writes a literal `${`.

use serde_json::Value;
use std::collections::BTreeMap;

/// Variables in scope for a step: configured ones, scenario defaults and captures.
pub type Vars = BTreeMap<String, Value>;

/// A `${name}` that has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("undefined variable ${{{0}}}")]
pub struct Undefined(pub String);

/// The text form of a variable value.
pub fn to_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

enum Segment<'a> {
    Text(&'a str),
    Var(&'a str),
}

/// Splits a template into literal text and `${name}` references.
fn segments(template: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push(Segment::Text(&rest[..pos]));
        let after = &rest[pos..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push(Segment::Text("${"));
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            match tail.find('}') {
                Some(end) if end > 0 && tail[..end].chars().all(is_name_char) => {
                    out.push(Segment::Var(&tail[..end]));
                    rest = &tail[end + 1..];
                }
                _ => {
                    out.push(Segment::Text("${"));
                    rest = tail;
                }
            }
        } else {
            out.push(Segment::Text("$"));
            rest = &after[1..];
        }
    }
    out.push(Segment::Text(rest));
    out
}

/// Interpolates a plain string.
pub fn text(template: &str, vars: &Vars) -> Result<String, Undefined> {
    let mut out = String::with_capacity(template.len());
    for segment in segments(template) {
        match segment {
            Segment::Text(t) => out.push_str(t),
            Segment::Var(name) => match vars.get(name) {
                Some(v) => out.push_str(&to_text(v)),
                None => return Err(Undefined(name.to_string())),
            },
        }
    }
    Ok(out)
}

/// The variable names a template refers to.
pub fn references(template: &str) -> Vec<String> {
    segments(template)
        .into_iter()
        .filter_map(|s| match s {
            Segment::Var(name) => Some(name.to_string()),
            Segment::Text(_) => None,
        })
        .collect()
}

/// The variable names a JSON template refers to.
pub fn json_references(template: &Value) -> Vec<String> {
    match template {
        Value::String(s) => references(s),
        Value::Array(items) => items.iter().flat_map(json_references).collect(),
        Value::Object(map) => map.values().flat_map(json_references).collect(),
        _ => Vec::new(),
    }
}

/// Interpolates a JSON template.
pub fn json(template: &Value, vars: &Vars) -> Result<Value, Undefined> {
    Ok(match template {
        Value::String(s) => {
            let whole = s
                .strip_prefix("${")
                .and_then(|t| t.strip_suffix('}'))
                .filter(|name| !name.is_empty() && name.chars().all(is_name_char));
            match whole {
                Some(name) => vars
                    .get(name)
                    .cloned()
                    .ok_or_else(|| Undefined(name.to_string()))?,
                None => Value::String(text(s, vars)?),
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| json(item, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), json(v, vars)?)))
                .collect::<Result<_, Undefined>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars() -> Vars {
        let mut vars = Vars::new();
        vars.insert("session".into(), json!("abc-1"));
        vars.insert("id".into(), json!(7));
        vars.insert("obj".into(), json!({"a": 1}));
        vars
    }

    #[test]
    fn text_interpolation() {
        let v = vars();
        assert_eq!(text("s=${session};i=${id}", &v).unwrap(), "s=abc-1;i=7");
        assert_eq!(text("$${session} $ ${ x", &v).unwrap(), "${session} $ ${ x");
        assert_eq!(text("${obj}", &v).unwrap(), r#"{"a":1}"#);
        assert_eq!(text("${nope}", &v), Err(Undefined("nope".into())));
        assert_eq!(references("a ${x} ${y.z} $${w}"), vec!["x", "y.z"]);
    }

    proptest::proptest! {
        #[test]
        fn text_without_placeholders_is_unchanged(text in "[^{]*") {
            proptest::prop_assert_eq!(super::text(&text, &Vars::new()).unwrap(), text);
        }

        #[test]
        fn escaped_placeholders_are_literal(name in "[a-z_]{1,8}", before in "[a-z ]{0,5}") {
            let template = format!("{before}$${{{name}}}");
            proptest::prop_assert_eq!(
                super::text(&template, &Vars::new()).unwrap(),
                format!("{before}${{{name}}}")
            );
        }
    }

    #[test]
    fn json_interpolation_keeps_types() {
        let v = vars();
        let template = json!({"id": "${id}", "s": "id-${id}", "o": ["${obj}"], "n": null});
        assert_eq!(
            json(&template, &v).unwrap(),
            json!({"id": 7, "s": "id-7", "o": [{"a": 1}], "n": null})
        );
        // In document order: the harness always builds serde_json with `preserve_order`.
        assert_eq!(json_references(&template), vec!["id", "id", "obj"]);
    }
}
