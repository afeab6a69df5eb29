//! The three request body styles every WebAPI service accepts, reduced to one [`Args`]:
//! positional `{"parameters": [..]}`, named `{"formid": .., "data": ..}` (keys matched
//! case-insensitively) and the legacy ApiClient wrapper whose `parameters` is a JSON-encoded
//! array. A body that is none of these is taken as the `data` object itself.

use serde_json::{Map, Value};

/// A request's arguments.
#[derive(Debug, Clone, PartialEq)]
pub enum Args {
    /// `parameters` as an array, in order (strings holding JSON are left as they are).
    Positional(Vec<Value>),
    /// The named keys, lowercased.
    Named(Map<String, Value>),
}

impl Args {
    /// Parses a request body; `None` when it is not a JSON object.
    pub fn parse(body: &[u8]) -> Option<Args> {
        let Value::Object(obj) = serde_json::from_slice::<Value>(body).ok()? else {
            return None;
        };
        let lower: Map<String, Value> = obj.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        match lower.get("parameters") {
            Some(Value::Array(list)) => Some(Args::Positional(list.clone())),
            Some(Value::String(text)) => match serde_json::from_str::<Value>(text).ok()? {
                Value::Array(list) => Some(Args::Positional(list)),
                _ => None,
            },
            _ if lower.contains_key("data") || is_login(&lower) => Some(Args::Named(lower)),
            // Raw: the body is the data object itself.
            _ => Some(Args::Named(Map::from_iter([("data".to_string(), Value::Object(lower))]))),
        }
    }

    /// The positional argument `index`, or the named argument under any of `names`.
    pub fn get(&self, index: usize, names: &[&str]) -> Option<&Value> {
        match self {
            Args::Positional(list) => list.get(index),
            Args::Named(map) => names.iter().find_map(|n| map.get(&n.to_ascii_lowercase())),
        }
    }

    /// Argument `index` / `names` as text (numbers are written out).
    pub fn text(&self, index: usize, names: &[&str]) -> Option<String> {
        match self.get(index, names)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// `(form id, data)` of a DynamicFormService call: positional `[formid, data]` or `[data]`
    /// (ExecuteBillQuery), named `formid` + `data`. A `data` string is parsed as JSON.
    pub fn form_call(&self) -> (Option<String>, Value) {
        let (form, data) = match self {
            Args::Positional(list) if list.len() == 1 => (None, list.first()),
            Args::Positional(list) => (list.first().and_then(Value::as_str).map(str::to_string), list.get(1)),
            Args::Named(map) => {
                (map.get("formid").and_then(Value::as_str).map(str::to_string), map.get("data"))
            }
        };
        let data = match data {
            Some(Value::String(text)) => serde_json::from_str(text).unwrap_or(Value::Null),
            Some(v) => v.clone(),
            None => Value::Null,
        };
        (form, data)
    }
}

fn is_login(map: &Map<String, Value>) -> bool {
    map.contains_key("acctid") || map.contains_key("username")
}

/// `obj[key]` with the key matched case-insensitively (K/3 field keys are not case-sensitive).
pub fn get_ci<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    let map = obj.as_object()?;
    map.get(key).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn all_three_styles_give_the_same_call() {
        let data = json!({"Model": {"FNote": "备注"}});
        let positional = json!({"parameters": ["PRJ_LaborCost", data.to_string()]});
        let named = json!({"FormId": "PRJ_LaborCost", "data": data});
        let legacy = json!({"format": 1, "useragent": "ApiClient", "rid": "1",
            "parameters": json!(["PRJ_LaborCost", data]).to_string(), "timestamp": "2024-05-01 00:00:00", "v": "1.0"});
        for body in [positional, named, legacy] {
            let args = Args::parse(body.to_string().as_bytes()).unwrap_or(Args::Positional(vec![]));
            assert_eq!(args.form_call(), (Some("PRJ_LaborCost".to_string()), data.clone()), "{body}");
        }
    }

    #[test]
    fn raw_bodies_are_the_data_and_queries_take_one_argument() {
        let raw = json!({"FormId": "PUR_Requisition", "FieldKeys": "FID"});
        let args = Args::parse(raw.to_string().as_bytes()).unwrap_or(Args::Positional(vec![]));
        let (_, data) = args.form_call();
        assert_eq!(get_ci(&data, "formid"), Some(&json!("PUR_Requisition")));
        let positional = json!({"parameters": [raw.to_string()]});
        let args = Args::parse(positional.to_string().as_bytes()).unwrap_or(Args::Positional(vec![]));
        assert_eq!(args.form_call().1, json!({"FormId": "PUR_Requisition", "FieldKeys": "FID"}));
    }

    #[test]
    fn login_arguments_by_position_or_name() {
        let named = json!({"acctID": "A", "userName": "demo", "lcid": 2052});
        let args = Args::parse(named.to_string().as_bytes()).unwrap_or(Args::Positional(vec![]));
        assert_eq!(args.text(0, &["acctid"]).as_deref(), Some("A"));
        assert_eq!(args.text(3, &["lcid"]).as_deref(), Some("2052"));
        let positional = json!({"parameters": ["A", "demo", "pw", 2052]});
        let args = Args::parse(positional.to_string().as_bytes()).unwrap_or(Args::Positional(vec![]));
        assert_eq!(args.text(1, &["username"]).as_deref(), Some("demo"));
        assert!(Args::parse(b"[1]").is_none());
    }
}
