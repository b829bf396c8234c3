//! Just enough YAML for the suite's two small files: `expected-failures.yml`
//! (`server: [a, b]` or a block list) and `requirements/<revision>.yaml` (block lists of strings
//! or of flat maps, with `>-` folded scalars).
//!
//! Top-level keys map to lists; each item is a string or a flat string map. Anything else is an
//! error with the line number, never a silent misreading.

use std::collections::BTreeMap;

/// One list item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `- name`
    Scalar(String),
    /// `- key: value` followed by more `key: value` lines.
    Map(BTreeMap<String, String>),
}

impl Item {
    /// The scalar, or the map's value under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        match self {
            Item::Scalar(_) => None,
            Item::Map(map) => map.get(key).map(String::as_str),
        }
    }
}

/// Top-level key to its list (a key with no list, like `server:` alone, maps to an empty one).
pub type Doc = BTreeMap<String, Vec<Item>>;

fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (c, Some(q)) if c == q => quote = None,
            ('#', None) if i == 0 || line[..i].ends_with([' ', '\t']) => return &line[..i],
            _ => {}
        }
    }
    line
}

fn unquote(value: &str) -> String {
    let v = value.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_string();
        }
    }
    v.to_string()
}

fn flow_list(value: &str, line: usize) -> Result<Vec<Item>, String> {
    let inner = value
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .ok_or_else(|| format!("line {line}: expected a [flow, list]"))?;
    Ok(inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| Item::Scalar(unquote(s)))
        .collect())
}

/// Parses the subset described above.
pub fn parse(text: &str) -> Result<Doc, String> {
    let mut doc = Doc::new();
    let mut key: Option<String> = None;
    // The map item being filled, its indentation, and a pending folded scalar key.
    let mut item_indent = 0usize;
    let mut folded: Option<(String, usize)> = None;
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = strip_comment(raw).trim_end();
        if line.trim().is_empty() || line.trim() == "---" {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let content = line.trim_start();
        if let Some((fkey, findent)) = &folded {
            if indent > *findent {
                let list = doc.get_mut(key.as_deref().unwrap_or_default());
                if let Some(Item::Map(map)) = list.and_then(|l| l.last_mut()) {
                    let entry = map.entry(fkey.clone()).or_default();
                    if !entry.is_empty() {
                        entry.push(' ');
                    }
                    entry.push_str(content);
                }
                continue;
            }
            folded = None;
        }
        if indent == 0 {
            let (k, rest) = content
                .split_once(':')
                .ok_or_else(|| format!("line {line_no}: expected `key:`"))?;
            let k = unquote(k);
            let rest = rest.trim();
            let list = match rest {
                "" | "~" | "null" => Vec::new(),
                r if r.starts_with('[') => flow_list(r, line_no)?,
                _ => return Err(format!("line {line_no}: {k}: expected a list")),
            };
            doc.insert(k.clone(), list);
            key = Some(k);
            continue;
        }
        let Some(k) = key.clone() else {
            return Err(format!("line {line_no}: indented line outside any key"));
        };
        let list = doc.entry(k).or_default();
        let (is_item, body, body_indent) = match content.strip_prefix("- ") {
            Some(body) => (true, body.trim_start(), indent + 2),
            None if content == "-" => (true, "", indent + 2),
            None => (false, content, indent),
        };
        if is_item {
            item_indent = body_indent;
        } else if indent != item_indent || !matches!(list.last(), Some(Item::Map(_))) {
            return Err(format!("line {line_no}: unexpected indentation"));
        }
        match body
            .split_once(": ")
            .or_else(|| body.strip_suffix(':').map(|k| (k, "")))
        {
            Some((mk, mv)) if !body.starts_with(['"', '\'']) => {
                let (mk, mv) = (unquote(mk), mv.trim());
                if is_item {
                    list.push(Item::Map(BTreeMap::new()));
                }
                let Some(Item::Map(map)) = list.last_mut() else {
                    return Err(format!("line {line_no}: mixed list items"));
                };
                if matches!(mv, ">" | ">-" | "|" | "|-") {
                    map.insert(mk.clone(), String::new());
                    folded = Some((mk, body_indent));
                } else {
                    map.insert(mk, unquote(mv));
                }
            }
            _ if is_item => list.push(Item::Scalar(unquote(body))),
            _ => return Err(format!("line {line_no}: expected `key: value`")),
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_failures_forms() {
        let doc = parse("# c\nserver: []\n").unwrap();
        assert_eq!(doc["server"], []);
        let doc = parse("server: [a, \"b\"] # why\nclient:\n").unwrap();
        assert_eq!(
            doc["server"],
            [Item::Scalar("a".into()), Item::Scalar("b".into())]
        );
        assert_eq!(doc["client"], []);
        let doc = parse("server:\n  - a  # flaky\n  - 'b'\n").unwrap();
        assert_eq!(
            doc["server"],
            [Item::Scalar("a".into()), Item::Scalar("b".into())]
        );
        assert!(parse("server: a\n").unwrap_err().contains("line 1"));
    }

    #[test]
    fn requirements_not_scored() {
        let text = "server:\n  - ping\nnot_scored:\n  - scenario: x\n    leg: server\n    reason: pending\n    note: >-\n      the fixture\n      cannot\n  - scenario: y\n    leg: client\n    reason: extension\n";
        let doc = parse(text).unwrap();
        assert_eq!(doc["server"], [Item::Scalar("ping".into())]);
        let ns = &doc["not_scored"];
        assert_eq!(ns.len(), 2);
        assert_eq!(ns[0].get("scenario"), Some("x"));
        assert_eq!(ns[0].get("note"), Some("the fixture cannot"));
        assert_eq!(ns[1].get("leg"), Some("client"));
    }
}
