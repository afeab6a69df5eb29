//! Reading JSON values: dotted paths, scalars as text, query objects.

use qiao_sdk::Value;
use serde_json::Map;

/// The value at a dotted `path` (`data.items`, `items.0.id`): object keys, or array indexes
/// for numeric segments. An empty path is `value` itself.
pub(crate) fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    if path.is_empty() {
        return Some(value);
    }
    path.split('.').try_fold(value, |current, segment| match current {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A string, number or boolean as text (`"abc"` → `abc`, `12` → `12`); `None` otherwise.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The JSON type of `value`, for messages (`an object`).
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Query parameters from an object, sorted by key: scalars give one pair, arrays repeat the
/// key once per element, `null` (alone or in an array) is skipped. `field` names the object
/// in errors (`query`).
pub(crate) fn query_pairs(query: &Map<String, Value>, field: &str) -> Result<Vec<(String, String)>, String> {
    let mut keys: Vec<&String> = query.keys().collect();
    keys.sort();
    let mut pairs = Vec::new();
    for key in keys {
        let value = &query[key.as_str()];
        let items = match value {
            Value::Array(items) => items.as_slice(),
            other => std::slice::from_ref(other),
        };
        for item in items {
            match item {
                Value::Null => {}
                item => match scalar_text(item) {
                    Some(text) => pairs.push((key.clone(), text)),
                    None => {
                        return Err(format!(
                            "{field}.{key} must be a string, number, boolean or an array of them, got {}",
                            kind(item)
                        ));
                    }
                },
            }
        }
    }
    Ok(pairs)
}

/// Header values from an object: scalars as text, `null` skipped; `field` names the object in
/// errors.
pub(crate) fn header_pairs(
    headers: &Map<String, Value>,
    field: &str,
) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for (name, value) in headers {
        if value.is_null() {
            continue;
        }
        let text = scalar_text(value).ok_or_else(|| {
            format!("{field}.{name} must be a string, number or boolean, got {}", kind(value))
        })?;
        crate::headers::check_header_name(name).map_err(|e| format!("{field}: {e}"))?;
        crate::headers::check_header_value(&text).map_err(|e| format!("{field}.{name}: {e}"))?;
        pairs.push((name.clone(), text));
    }
    Ok(pairs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use qiao_sdk::json;

    #[test]
    fn dotted_lookup() {
        let v = json!({"data": {"items": [{"id": 7}], "meta": null}});
        assert_eq!(lookup(&v, "data.items.0.id"), Some(&json!(7)));
        assert_eq!(lookup(&v, ""), Some(&v));
        assert_eq!(lookup(&v, "data.meta"), Some(&Value::Null));
        assert_eq!(lookup(&v, "data.missing"), None);
        assert_eq!(lookup(&v, "data.items.x"), None);
    }

    #[test]
    fn query_objects() {
        let q = json!({"z": "last", "a": [1, "two", null, true], "skip": null, "s": "x y"});
        let pairs = query_pairs(q.as_object().unwrap(), "query").unwrap();
        let expected = [("a", "1"), ("a", "two"), ("a", "true"), ("s", "x y"), ("z", "last")];
        assert_eq!(pairs, expected.map(|(k, v)| (k.to_string(), v.to_string())));
        let q = json!({"f": {"nested": 1}});
        assert_eq!(
            query_pairs(q.as_object().unwrap(), "query").unwrap_err(),
            "query.f must be a string, number, boolean or an array of them, got an object"
        );
    }

    #[test]
    fn header_objects() {
        let h = json!({"X-Count": 3, "X-Skip": null});
        assert_eq!(
            header_pairs(h.as_object().unwrap(), "headers").unwrap(),
            [("X-Count".to_string(), "3".to_string())]
        );
        let h = json!({"X-Bad": ["a"]});
        assert!(header_pairs(h.as_object().unwrap(), "headers").is_err());
        let h = json!({"Bad Name": "a"});
        assert_eq!(
            header_pairs(h.as_object().unwrap(), "headers").unwrap_err(),
            "headers: \"Bad Name\" is not a valid header name"
        );
    }
}
