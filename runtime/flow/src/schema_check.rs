//! A small JSON Schema checker for connection configs and trigger params.
//!
//! Connectors describe their config and params with JSON Schema. The `jsonschema` crate would
//! check every keyword, but even without default features it brings about 55 crates (regex,
//! fancy-regex, num-bigint, ahash, URI parsing, ...) for what are small, flat objects here. This
//! checker covers the keywords connector schemas use: `type` (one or a list), `enum`, `const`,
//! `properties`, `required`, `additionalProperties` (false or a schema), `items`,
//! `minItems`/`maxItems`, `minLength`/`maxLength`, `minimum`/`maximum`,
//! `exclusiveMinimum`/`exclusiveMaximum`, `allOf`, `anyOf`, `oneOf`, and boolean schemas.
//! Other keywords (`$ref`, `pattern`, `format`, ...) are ignored, so a value they would refuse
//! is accepted here and refused by the connector's own `validate-config` at startup.

use serde_json::Value;

use crate::source_map::{index_path, key_path};

/// Checks `value` against `schema`, pushing (path, message) problems. `hide(path)` says
/// whether the value at `path` is secret and must not be quoted.
pub(crate) fn check(
    schema: &Value,
    value: &Value,
    path: &str,
    hide: &dyn Fn(&str) -> bool,
    out: &mut Vec<(String, String)>,
) {
    let schema = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            out.push((path.into(), "no value is allowed here".into()));
            return;
        }
        Value::Object(s) => s,
        _ => return,
    };
    let show = |v: &Value| if hide(path) { "***".to_string() } else { quote(v) };

    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !types.is_empty() && !types.iter().any(|t| has_type(value, t)) {
            out.push((
                path.into(),
                format!("expected {}, got {} {}", types.join(" or "), kind(value), show(value)),
            ));
            return;
        }
    }
    if let Some(Value::Array(options)) = schema.get("enum")
        && !options.contains(value)
    {
        let allowed: Vec<String> = options.iter().map(quote).collect();
        out.push((path.into(), format!("{} is not one of {}", show(value), allowed.join(", "))));
    }
    if let Some(c) = schema.get("const")
        && c != value
    {
        out.push((path.into(), format!("{} must be {}", show(value), quote(c))));
    }
    for sub in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        check(sub, value, path, hide, out);
    }
    for (keyword, exactly_one) in [("anyOf", false), ("oneOf", true)] {
        if let Some(Value::Array(branches)) = schema.get(keyword) {
            if let Some((tag, chosen)) = tagged_branch(branches, value) {
                match chosen {
                    Ok(branch) => check(branch, value, path, hide, out),
                    Err(tags) => out.push((
                        key_path(path, tag),
                        format!(
                            "{} is not one of {}",
                            value.get(tag).map_or_else(|| "null".into(), quote),
                            tags.join(", ")
                        ),
                    )),
                }
                continue;
            }
            let passing = branches
                .iter()
                .filter(|b| {
                    let mut tmp = Vec::new();
                    check(b, value, path, hide, &mut tmp);
                    tmp.is_empty()
                })
                .count();
            if passing == 0 || (exactly_one && passing > 1) {
                out.push((
                    path.into(),
                    format!("{} matches {passing} of the allowed shapes ({keyword})", show(value)),
                ));
            }
        }
    }

    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            for name in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !map.contains_key(name) {
                    out.push((path.into(), format!("missing required field {name:?}")));
                }
            }
            for (k, v) in map {
                let child = key_path(path, k);
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => check(sub, v, &child, hide, out),
                    None => match schema.get("additionalProperties") {
                        Some(Value::Bool(false)) => {
                            let known: Vec<&str> =
                                props.map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
                            out.push((
                                child,
                                format!(
                                    "unknown field {k:?} (known: {})",
                                    crate::catalog::list_or_none(&known)
                                ),
                            ));
                        }
                        Some(sub @ Value::Object(_)) => check(sub, v, &child, hide, out),
                        _ => {}
                    },
                }
            }
        }
        Value::Array(items) => {
            let n = items.len();
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64).filter(|m| (n as u64) < *m) {
                out.push((path.into(), format!("expected at least {min} items, got {n}")));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64).filter(|m| (n as u64) > *m) {
                out.push((path.into(), format!("expected at most {max} items, got {n}")));
            }
            if let Some(sub) = schema.get("items").filter(|s| s.is_object() || s.is_boolean()) {
                for (i, item) in items.iter().enumerate() {
                    check(sub, item, &index_path(path, i), hide, out);
                }
            }
        }
        Value::String(s) => {
            let n = s.chars().count() as u64;
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64).filter(|m| n < *m) {
                out.push((
                    path.into(),
                    if min == 1 {
                        "must not be empty".into()
                    } else {
                        format!("{} is shorter than {min} characters", show(value))
                    },
                ));
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64).filter(|m| n > *m) {
                out.push((path.into(), format!("{} is longer than {max} characters", show(value))));
            }
        }
        Value::Number(num) => {
            let x = num.as_f64().unwrap_or(f64::NAN);
            let bound = |k: &str| schema.get(k).and_then(Value::as_f64);
            if let Some(m) = bound("minimum").filter(|m| x < *m) {
                out.push((path.into(), format!("{} is less than the minimum {m}", show(value))));
            }
            if let Some(m) = bound("maximum").filter(|m| x > *m) {
                out.push((path.into(), format!("{} is more than the maximum {m}", show(value))));
            }
            if let Some(m) = bound("exclusiveMinimum").filter(|m| x <= *m) {
                out.push((path.into(), format!("{} must be more than {m}", show(value))));
            }
            if let Some(m) = bound("exclusiveMaximum").filter(|m| x >= *m) {
                out.push((path.into(), format!("{} must be less than {m}", show(value))));
            }
        }
        _ => {}
    }
}

/// For unions whose branches are objects told apart by a constant property (`type: bearer`):
/// the property name and the branch the value selects, or the allowed tags. `None` when the
/// union is not tagged that way or the value is not an object with that property.
fn tagged_branch<'s>(
    branches: &'s [Value],
    value: &Value,
) -> Option<(&'s str, Result<&'s Value, Vec<String>>)> {
    let obj = value.as_object()?;
    let first = branches.first()?.get("properties")?.as_object()?;
    let tag = first.iter().find(|(_, p)| p.get("const").is_some()).map(|(k, _)| k.as_str())?;
    let consts: Vec<&Value> = branches
        .iter()
        .map(|b| b.get("properties").and_then(|p| p.get(tag)).and_then(|p| p.get("const")))
        .collect::<Option<_>>()?;
    let given = obj.get(tag)?;
    Some(match consts.iter().position(|c| *c == given) {
        Some(i) => (tag, Ok(&branches[i])),
        None => (tag, Err(consts.iter().map(|c| quote(c)).collect())),
    })
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => true,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// JSON text of a value, cut to 60 characters.
fn quote(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 { format!("{}…", s.chars().take(60).collect::<String>()) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(schema: Value, value: Value) -> Vec<String> {
        let mut out = Vec::new();
        check(&schema, &value, "params", &|p| p.ends_with("token"), &mut out);
        out.into_iter().map(|(p, m)| format!("{p}: {m}")).collect()
    }

    #[test]
    fn checks_objects() {
        let schema = json!({
            "type": "object",
            "properties": {
                "project": {"type": "string", "minLength": 2},
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                "mode": {"enum": ["full", "delta"]},
                "token": {"type": "string", "maxLength": 3},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2}
            },
            "required": ["project"],
            "additionalProperties": false
        });
        assert!(problems(schema.clone(), json!({"project": "PM", "limit": 50, "mode": "delta"})).is_empty());
        assert_eq!(
            problems(
                schema,
                json!({"limit": "50", "mode": "all", "extra": 1, "token": "s3cr3t", "tags": ["a", 2, "c"]})
            ),
            vec![
                "params: missing required field \"project\"",
                "params.extra: unknown field \"extra\" (known: limit, mode, project, tags, token)",
                "params.limit: expected integer, got string \"50\"",
                "params.mode: \"all\" is not one of \"full\", \"delta\"",
                "params.tags: expected at most 2 items, got 3",
                "params.tags[1]: expected string, got integer 2",
                "params.token: *** is longer than 3 characters",
            ]
        );
    }

    #[test]
    fn checks_numbers_unions_and_booleans() {
        assert!(problems(json!({"type": "integer"}), json!(3.0)).is_empty());
        assert_eq!(
            problems(json!({"type": ["string", "null"]}), json!(1)),
            vec!["params: expected string or null, got integer 1"]
        );
        assert_eq!(problems(json!({"exclusiveMinimum": 0}), json!(0)), vec!["params: 0 must be more than 0"]);
        assert_eq!(problems(json!(false), json!(1)), vec!["params: no value is allowed here"]);
        assert!(problems(json!(true), json!(1)).is_empty());
        let any = json!({"anyOf": [{"type": "string"}, {"type": "integer"}]});
        assert!(problems(any.clone(), json!(1)).is_empty());
        assert_eq!(problems(any, json!(true)), vec!["params: true matches 0 of the allowed shapes (anyOf)"]);
        let tagged = json!({"oneOf": [
            {"type": "object", "required": ["type"], "properties": {"type": {"const": "none"}}, "additionalProperties": false},
            {"type": "object", "required": ["type", "size"], "properties": {"type": {"const": "page"}, "size": {"type": "integer"}}}
        ]});
        assert_eq!(
            problems(tagged.clone(), json!({"type": "cursor"})),
            vec!["params.type: \"cursor\" is not one of \"none\", \"page\""]
        );
        assert_eq!(
            problems(tagged.clone(), json!({"type": "page"})),
            vec!["params: missing required field \"size\""]
        );
        assert!(problems(tagged.clone(), json!({"type": "page", "size": 5})).is_empty());
        assert_eq!(
            problems(tagged, json!({"size": 5})),
            vec!["params: {\"size\":5} matches 0 of the allowed shapes (oneOf)"]
        );
        let long = "x".repeat(100);
        assert_eq!(
            problems(json!({"enum": ["a"]}), json!(long)),
            vec![format!("params: \"{}… is not one of \"a\"", "x".repeat(59))]
        );
    }
}
