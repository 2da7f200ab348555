//! Where the text of a payload is: the payload itself when it is a string, else the string
//! values at the configured JSON pointers, where a `*` segment stands for every element of an
//! array (or member of an object): `/messages/*/content`.

use annex_core::stage::StageResult;
use serde_json::Value;

/// The pointers text stages read by default: `{"text": …}` and chat-style messages.
pub(crate) const DEFAULT_FIELDS: [&str; 2] = ["/text", "/messages/*/content"];

/// The default `fields` as a JSON value (for the stages' default configs).
pub(crate) fn default_fields() -> Vec<String> {
    DEFAULT_FIELDS.iter().map(|f| (*f).to_owned()).collect()
}

/// The JSON Schema of a `fields` config key.
pub(crate) fn fields_schema() -> Value {
    serde_json::json!({
        "type": "array",
        "items": {"type": "string", "pattern": "^(/[^/]*)*$"},
        "description": "JSON pointers to the text in object payloads (`*` matches every array element); a string payload is always the text",
        "default": DEFAULT_FIELDS,
    })
}

/// Every text of `payload`, with its JSON pointer.
pub(crate) fn texts<'a>(payload: &'a Value, fields: &[String]) -> Vec<(String, &'a str)> {
    let mut out = Vec::new();
    if let Value::String(s) = payload {
        out.push((String::new(), s.as_str()));
        return out;
    }
    for field in fields {
        let segments = segments(field);
        collect(payload, &segments, String::new(), &mut out);
    }
    out
}

/// Replaces every text of `payload` for which `f` returns a new one; whether any changed.
pub(crate) fn map_texts(payload: &mut Value, fields: &[String], f: &mut dyn FnMut(&str) -> String) -> bool {
    if let Value::String(s) = payload {
        return replace(s, f);
    }
    let mut changed = false;
    for field in fields {
        let segments = segments(field);
        changed |= walk_mut(payload, &segments, f);
    }
    changed
}

/// A text stage's answer: `modified` with every text rewritten by `f`, or `continue` when
/// none changes.
pub(crate) fn rewrite(payload: &Value, fields: &[String], f: impl Fn(&str) -> String) -> StageResult {
    let mut out = payload.clone();
    if map_texts(&mut out, fields, &mut |s| f(s)) {
        StageResult::modified(out)
    } else {
        StageResult::continue_()
    }
}

fn replace(s: &mut String, f: &mut dyn FnMut(&str) -> String) -> bool {
    let new = f(s);
    let changed = new != *s;
    if changed {
        *s = new;
    }
    changed
}

/// `/a/b~1c` → `["a", "b/c"]`; `""` → `[]`.
fn segments(pointer: &str) -> Vec<String> {
    pointer.split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~")).collect()
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn collect<'a>(value: &'a Value, rest: &[String], at: String, out: &mut Vec<(String, &'a str)>) {
    let Some((head, tail)) = rest.split_first() else {
        if let Value::String(s) = value {
            out.push((at, s.as_str()));
        }
        return;
    };
    match value {
        Value::Array(items) if head == "*" => {
            for (i, item) in items.iter().enumerate() {
                collect(item, tail, format!("{at}/{i}"), out);
            }
        }
        Value::Object(members) if head == "*" => {
            for (k, v) in members {
                collect(v, tail, format!("{at}/{}", escape(k)), out);
            }
        }
        Value::Array(items) => {
            if let Some(item) = head.parse::<usize>().ok().and_then(|i| items.get(i)) {
                collect(item, tail, format!("{at}/{head}"), out);
            }
        }
        Value::Object(members) => {
            if let Some(v) = members.get(head) {
                collect(v, tail, format!("{at}/{}", escape(head)), out);
            }
        }
        _ => {}
    }
}

fn walk_mut(value: &mut Value, rest: &[String], f: &mut dyn FnMut(&str) -> String) -> bool {
    let Some((head, tail)) = rest.split_first() else {
        return match value {
            Value::String(s) => replace(s, f),
            _ => false,
        };
    };
    match value {
        Value::Array(items) if head == "*" => {
            let mut changed = false;
            for item in items {
                changed |= walk_mut(item, tail, f);
            }
            changed
        }
        Value::Object(members) if head == "*" => {
            let mut changed = false;
            for v in members.values_mut() {
                changed |= walk_mut(v, tail, f);
            }
            changed
        }
        Value::Array(items) => match head.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
            Some(item) => walk_mut(item, tail, f),
            None => false,
        },
        Value::Object(members) => match members.get_mut(head.as_str()) {
            Some(v) => walk_mut(v, tail, f),
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_the_string_payload_and_the_configured_fields() {
        let fields = default_fields();
        assert_eq!(texts(&json!("hi"), &fields), vec![(String::new(), "hi")]);
        let chat = json!({"text": "a", "messages": [{"role": "user", "content": "b"}, {"content": 3}]});
        assert_eq!(
            texts(&chat, &fields),
            vec![("/text".to_owned(), "a"), ("/messages/0/content".to_owned(), "b")]
        );
        assert!(texts(&json!(42), &fields).is_empty());
        let odd = json!({"a/b": {"x": "y"}});
        assert_eq!(texts(&odd, &["/a~1b/*".to_owned()]), vec![("/a~1b/x".to_owned(), "y")]);
    }

    #[test]
    fn replaces_only_what_changes() {
        let fields = default_fields();
        let mut chat = json!({"text": "A", "messages": [{"content": "b"}], "other": "C"});
        let changed = map_texts(&mut chat, &fields, &mut |s| s.to_lowercase());
        assert!(changed);
        assert_eq!(chat, json!({"text": "a", "messages": [{"content": "b"}], "other": "C"}));
        assert!(!map_texts(&mut chat, &fields, &mut |s| s.to_lowercase()));
    }
}
