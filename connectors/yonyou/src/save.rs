//! The `save` action: one document to the single save API, a list to the batch save API with
//! one outcome per input, in order. Each document carries a key derived from the engine's
//! idempotency key in `resubmitCheckKey` (configurable), so a retried save is deduplicated.

use qiao_sdk::{ActionOutput, Error, InvokeRequest, Result, Value, json};
use serde::Deserialize;

use crate::api;
use crate::config::Config;
use crate::sign::check_key;

/// Single save API when the input names none.
pub const DEFAULT_PATH: &str = "/yonbip/fi/ficloud/openapi/voucher/addVoucher";
/// Batch save API when the input names none.
pub const DEFAULT_BATCH_PATH: &str = "/yonbip/fi/ficloud/openapi/voucher/batchAddVoucher";

/// How a single document goes into the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Envelope {
    /// `{"data": doc}` (MDD saves).
    Data,
    /// The document itself (`addVoucher`).
    None,
}

/// Input of `save`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SaveInput {
    data: Value,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    batch_path: Option<String>,
    #[serde(default)]
    envelope: Option<Envelope>,
}

/// Puts the derived key into `doc` unless it has one already.
fn stamp(doc: &mut Value, field: &str, key: String) {
    if field.is_empty() {
        return;
    }
    if let Some(o) = doc.as_object_mut() {
        let present = o.get(field).is_some_and(|v| !v.is_null() && v != "");
        if !present {
            o.insert(field.to_string(), Value::String(key));
        }
    }
}

/// Runs `save`.
pub fn run(req: InvokeRequest<'_>) -> Result<ActionOutput> {
    let config = Config::load(req.config)?;
    let input: SaveInput = req.input()?;
    let field = config.idempotency_field.as_str();
    match input.data {
        Value::Object(_) => {
            let path = input.path.as_deref().unwrap_or(DEFAULT_PATH);
            let envelope = input.envelope.unwrap_or(if path.ends_with("/addVoucher") {
                Envelope::None
            } else {
                Envelope::Data
            });
            let mut doc = input.data;
            stamp(&mut doc, field, check_key(req.idempotency_key, None));
            let body = match envelope {
                Envelope::Data => json!({"data": doc}),
                Envelope::None => doc,
            };
            let answer = api::call(&config, "POST", path, &[], Some(&body))?;
            Ok(ActionOutput::new(answer.get("data").cloned().unwrap_or(Value::Null)))
        }
        Value::Array(mut docs) => {
            if docs.is_empty() {
                return Err(Error::invalid_input("input.data: an empty list saves nothing"));
            }
            if let Some(i) = docs.iter().position(|d| !d.is_object()) {
                return Err(Error::invalid_input(format!("input.data[{i}]: must be an object")));
            }
            for (i, doc) in docs.iter_mut().enumerate() {
                stamp(doc, field, check_key(req.idempotency_key, Some(i)));
            }
            let path = input.batch_path.as_deref().unwrap_or(DEFAULT_BATCH_PATH);
            let answer = api::call(&config, "POST", path, &[], Some(&json!({"data": docs})))?;
            let data = answer.get("data").cloned().unwrap_or(Value::Null);
            let items = outcomes(&docs, field, &data);
            let ok = items.iter().filter(|r| r.is_ok()).count();
            let output = json!({
                "count": docs.len(), "successCount": ok, "failCount": docs.len() - ok,
                "messages": data.get("messages").cloned().unwrap_or(json!([])),
            });
            Ok(ActionOutput { output, items: Some(items) })
        }
        _ => Err(Error::invalid_input("input.data: must be an object or a list of objects")),
    }
}

/// The 1-based position a message names as `第N条`.
fn position(message: &str) -> Option<usize> {
    let rest = &message[message.find('第')? + '第'.len_utf8()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    if digits.is_empty() || !rest[digits.len()..].starts_with('条') {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

fn text(v: &Value) -> String {
    v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())
}

/// One outcome per input document, in order, from a batch answer `{count, sucessCount,
/// failCount, messages, infos}`: failures by the position (`第N条`) or the key their message
/// names, successes by the key echoed in `infos`, else by order among the positions that did
/// not fail. An input with no reported outcome is `transient` (a retry is deduplicated).
pub fn outcomes(docs: &[Value], field: &str, data: &Value) -> Vec<std::result::Result<Value, Error>> {
    let infos: Vec<Value> = data.get("infos").and_then(Value::as_array).cloned().unwrap_or_default();
    let messages: Vec<String> =
        data.get("messages").and_then(Value::as_array).into_iter().flatten().map(text).collect();
    let key_of = |v: &Value| -> Option<String> {
        (!field.is_empty()).then(|| v.get(field).and_then(Value::as_str).map(str::to_string)).flatten()
    };
    let mut failed: Vec<Option<String>> = vec![None; docs.len()];
    let mut unattributed = Vec::new();
    for m in &messages {
        let at = position(m)
            .map(|n| n - 1)
            .filter(|i| *i < docs.len())
            .or_else(|| docs.iter().position(|d| key_of(d).is_some_and(|k| m.contains(&k))));
        match at {
            Some(i) => failed[i] = Some(m.clone()),
            None => unattributed.push(m.clone()),
        }
    }
    let keyed = !infos.is_empty()
        && infos.iter().all(|i| key_of(i).is_some())
        && docs.iter().all(|d| key_of(d).is_some());
    let unknown = |i: usize| {
        let mut msg = format!("yonyou reported no outcome for item {i} of the batch");
        if !unattributed.is_empty() {
            msg.push_str(&format!(" (messages: {})", unattributed.join("; ")));
        }
        Err(Error::transient(msg))
    };
    if keyed {
        return docs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                if let Some(info) = infos.iter().find(|info| key_of(info) == key_of(d)) {
                    Ok(info.clone())
                } else if let Some(m) = &failed[i] {
                    Err(Error::invalid_input(m.clone()))
                } else {
                    unknown(i)
                }
            })
            .collect();
    }
    let survivors = failed.iter().filter(|f| f.is_none()).count();
    let mut next_info = infos.iter();
    (0..docs.len())
        .map(|i| match &failed[i] {
            Some(m) => Err(Error::invalid_input(m.clone())),
            None if survivors == infos.len() => next_info.next().cloned().ok_or(()).or_else(|()| unknown(i)),
            None => unknown(i),
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use qiao_sdk::ErrorClass;

    #[test]
    fn positions_are_read_from_messages() {
        assert_eq!(position("第12条[k]：部门不存在"), Some(12));
        assert_eq!(position("第1行分录金额不能为空"), None);
        assert_eq!(position("第0条：x"), None);
        assert_eq!(position("保存失败"), None);
    }

    fn docs(n: usize) -> Vec<Value> {
        (0..n).map(|i| json!({"resubmitCheckKey": format!("k{i}"), "n": i})).collect()
    }

    #[test]
    fn keyed_outcomes_follow_the_keys() {
        let data = json!({"count": 4, "sucessCount": 2, "failCount": 2,
            "messages": ["第2条[k1]：部门编码[D9]不存在", "单据[k3]保存失败"],
            "infos": [{"resubmitCheckKey": "k2", "billCode": "记-2"}, {"resubmitCheckKey": "k0", "billCode": "记-1"}]});
        let out = outcomes(&docs(4), "resubmitCheckKey", &data);
        assert_eq!(out[0].as_ref().unwrap()["billCode"], "记-1");
        assert_eq!(out[1].as_ref().unwrap_err(), &Error::invalid_input("第2条[k1]：部门编码[D9]不存在"));
        assert_eq!(out[2].as_ref().unwrap()["billCode"], "记-2");
        assert_eq!(out[3].as_ref().unwrap_err().message(), "单据[k3]保存失败");
    }

    #[test]
    fn without_keys_outcomes_follow_positions() {
        let docs: Vec<Value> = (0..3).map(|i| json!({"n": i})).collect();
        let data = json!({"messages": ["第2条：金额不能为空"], "infos": [{"id": "a"}, {"id": "c"}]});
        let out = outcomes(&docs, "", &data);
        assert_eq!(out[0].as_ref().unwrap()["id"], "a");
        assert_eq!(out[1].as_ref().unwrap_err().class(), ErrorClass::InvalidInput);
        assert_eq!(out[2].as_ref().unwrap()["id"], "c");
        // Counts that do not add up: the unexplained items are transient, never guessed.
        let data = json!({"messages": ["保存失败"], "infos": [{"id": "a"}]});
        let out = outcomes(&docs, "", &data);
        assert!(out.iter().all(|o| o.as_ref().is_err_and(|e| e.class() == ErrorClass::Transient)), "{out:?}");
        assert!(out[0].as_ref().unwrap_err().message().contains("保存失败"));
    }

    #[test]
    fn stamping_keeps_a_given_key() {
        let mut d = json!({"resubmitCheckKey": "mine"});
        stamp(&mut d, "resubmitCheckKey", "derived".into());
        assert_eq!(d["resubmitCheckKey"], "mine");
        let mut d = json!({"a": 1});
        stamp(&mut d, "resubmitCheckKey", "derived".into());
        assert_eq!(d["resubmitCheckKey"], "derived");
        let mut d = json!({"a": 1});
        stamp(&mut d, "", "derived".into());
        assert_eq!(d, json!({"a": 1}));
    }
}
