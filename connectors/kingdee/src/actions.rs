//! The actions: `save`, `batch-save`, `submit`, `audit`, `delete`, `view` and
//! `save-submit-audit`, with duplicate protection for saves.
//!
//! K/3's Save has no idempotency key. The connector writes the engine's idempotency key into a
//! field of the bill (`dedup_field`, default `FNote`) as `qiao:<key>` and marks the attempt in
//! `kv` before sending. When the same key comes again while the mark is still there (the last
//! attempt ended without a definite answer), it first looks the bill up with
//! `ExecuteBillQuery` (`<field> like '%qiao:<key>%'`) and only saves what is not there yet. The
//! mark is removed once the action has a definite outcome.

use qiao_sdk::{ActionOutput, Error, ErrorClass, Result, Value, json, kv};
use serde::Deserialize;

use crate::client;
use crate::config::Config;
use crate::reply::{Status, status_of};

fn default_dedup_field() -> String {
    "FNote".into()
}

/// Input of `save` and `save-submit-audit`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveInput {
    /// FormId.
    pub form_id: String,
    /// The bill (`Model`).
    pub model: Value,
    /// Other Save options (`NeedUpDateFields`, `IsVerifyBaseDataField`, ...), merged into `data`.
    #[serde(default)]
    pub options: serde_json::Map<String, Value>,
    /// Field that carries the idempotency marker; `""` turns duplicate protection off.
    #[serde(default = "default_dedup_field")]
    pub dedup_field: String,
}

/// Input of `batch-save`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchSaveInput {
    /// FormId.
    pub form_id: String,
    /// The bills.
    pub models: Vec<Value>,
    /// Other BatchSave options, merged into `data`.
    #[serde(default)]
    pub options: serde_json::Map<String, Value>,
    /// As for `save`; each model gets `qiao:<key>#<index>`.
    #[serde(default = "default_dedup_field")]
    pub dedup_field: String,
}

/// Input of `submit`, `audit` and `delete`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperateInput {
    /// FormId.
    pub form_id: String,
    /// Bill numbers.
    #[serde(default)]
    pub numbers: Vec<String>,
    /// Internal ids (take priority over numbers).
    #[serde(default)]
    pub ids: Vec<Value>,
}

/// Input of `view`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewInput {
    /// FormId.
    pub form_id: String,
    /// Bill number.
    #[serde(default)]
    pub number: Option<String>,
    /// Internal id (takes priority).
    #[serde(default)]
    pub id: Option<Value>,
}

fn pending_key(idempotency_key: &str) -> String {
    format!("pending:{idempotency_key}")
}

fn marker(idempotency_key: &str) -> String {
    format!("qiao:{idempotency_key}")
}

/// Writes `marker` into `field` of `model` (appended in parentheses to text already there).
fn mark_model(model: &Value, field: &str, marker: &str) -> Result<Value> {
    let mut model = model.clone();
    let Some(obj) = model.as_object_mut() else {
        return Err(Error::invalid_input("input.model: must be an object"));
    };
    if field.is_empty() {
        return Ok(model);
    }
    let existing =
        obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(field)).map(|(k, v)| (k.clone(), v.clone()));
    let (key, value) = match existing {
        Some((k, Value::String(s))) if !s.trim().is_empty() => (k, format!("{s} ({marker})")),
        Some((k, _)) => (k, marker.to_string()),
        None => (field.to_string(), marker.to_string()),
    };
    obj.insert(key, Value::String(value));
    Ok(model)
}

/// A bill found by its marker: id, number, status, the marker field.
#[derive(Debug, Clone, PartialEq)]
struct Found {
    id: Value,
    number: String,
    status: String,
    note: String,
}

/// Bills whose `field` contains `pattern` (a marker prefix).
fn find_marked(config: &Config, form_id: &str, field: &str, pattern: &str) -> Result<Vec<Found>> {
    // `[` opens a character class in SQL Server's LIKE; `_` matches any character, itself included.
    let like = pattern.replace('\'', "''").replace('[', "_");
    let data = json!({"FormId": form_id, "FieldKeys": format!("FID,FBillNo,FDocumentStatus,{field}"),
                      "FilterString": format!("{field} like '%{like}%'"), "OrderString": "FID ASC",
                      "StartRow": 0, "Limit": 2000});
    let reply = client::call(config, "ExecuteBillQuery", &json!({"data": data}))?;
    if let Some(status) = status_of(&reply) {
        return Err(status.error(&format!("duplicate check on {form_id}")));
    }
    let rows = reply.as_array().cloned().unwrap_or_default();
    Ok(rows
        .iter()
        .filter_map(|r| {
            let r = r.as_array()?;
            Some(Found {
                id: r.first()?.clone(),
                number: r.get(1)?.as_str().unwrap_or_default().to_string(),
                status: r.get(2)?.as_str().unwrap_or_default().to_string(),
                note: r.get(3)?.as_str().unwrap_or_default().to_string(),
            })
        })
        .collect())
}

/// Whether `note` carries exactly `marker` (not a longer marker that starts with it).
fn carries(note: &str, marker: &str) -> bool {
    note.match_indices(marker).any(|(at, _)| {
        let next = note[at + marker.len()..].chars().next();
        next.is_none_or(|c| c == ')' || c.is_whitespace())
    })
}

fn definite(result: &Result<ActionOutput>) -> bool {
    match result {
        Ok(_) => true,
        Err(e) => matches!(e.class(), ErrorClass::InvalidInput | ErrorClass::Config | ErrorClass::Permanent),
    }
}

/// Runs `body` with the pending mark of `key` set. `body` learns whether an earlier attempt
/// may have reached the server, and answers its result plus whether something stays saved
/// under this key that a replay must find (a saved bill whose later stage failed, the saved
/// items of a partly failed batch). The mark is cleared on a definite outcome that leaves
/// nothing behind.
fn guarded(
    key: &str,
    enabled: bool,
    body: impl FnOnce(bool) -> (Result<ActionOutput>, bool),
) -> Result<ActionOutput> {
    if !enabled {
        return body(false).0;
    }
    let pending = pending_key(key);
    let retry = kv::get(&pending).is_some();
    if !retry {
        kv::set(&pending, b"1")?;
    }
    let (result, keep) = body(retry);
    if definite(&result) && !keep {
        kv::delete(&pending);
    }
    result
}

fn save_data(model: Value, options: &serde_json::Map<String, Value>) -> Value {
    let mut data = options.clone();
    data.insert("Model".into(), model);
    Value::Object(data)
}

fn single(status: &Status) -> Option<(Value, String)> {
    status.successes.first().map(|s| (s.id.clone(), s.number.clone()))
}

/// `save`.
pub fn save(config: &Config, input: &SaveInput, key: &str) -> Result<ActionOutput> {
    guarded(key, !input.dedup_field.is_empty(), |retry| {
        let result = save_once(config, input, key, retry).map(|(id, number, found)| {
            ActionOutput::new(json!({"Id": id, "Number": number, "deduplicated": found.is_some()}))
        });
        (result, false)
    })
}

/// Saves unless a retry finds the bill; returns (id, number, status of the found bill).
fn save_once(
    config: &Config,
    input: &SaveInput,
    key: &str,
    retry: bool,
) -> Result<(Value, String, Option<String>)> {
    let marker = marker(key);
    if retry {
        let found = find_marked(config, &input.form_id, &input.dedup_field, &marker)?;
        if let Some(f) = found.into_iter().find(|f| carries(&f.note, &marker)) {
            qiao_sdk::debug!("save of {key} already reached kingdee as {}", f.number);
            return Ok((f.id, f.number, Some(f.status)));
        }
    }
    let model = mark_model(&input.model, &input.dedup_field, &marker)?;
    let reply = client::call(
        config,
        "Save",
        &json!({"formid": input.form_id, "data": save_data(model, &input.options)}),
    )?;
    let status =
        status_of(&reply).ok_or_else(|| Error::permanent("Save answered without a ResponseStatus"))?;
    if !status.ok {
        return Err(status.error(&format!("Save of {}", input.form_id)));
    }
    let (id, number) =
        single(&status).ok_or_else(|| Error::permanent("Save succeeded without SuccessEntitys"))?;
    Ok((id, number, None))
}

/// `batch-save`: one `BatchSave`, one outcome per input model in order.
pub fn batch_save(config: &Config, input: &BatchSaveInput, key: &str) -> Result<ActionOutput> {
    if input.models.is_empty() {
        return Err(Error::invalid_input("input.models: must hold at least one model"));
    }
    let dedup = !input.dedup_field.is_empty();
    guarded(key, dedup, |retry| match batch_once(config, input, key, retry) {
        Ok(out) => {
            let partial = out.items.as_ref().is_some_and(|items| items.iter().any(|i| i.is_err()));
            (Ok(out), partial)
        }
        Err(e) => (Err(e), false),
    })
}

fn batch_once(config: &Config, input: &BatchSaveInput, key: &str, retry: bool) -> Result<ActionOutput> {
    {
        let n = input.models.len();
        let mut items: Vec<Option<std::result::Result<Value, Error>>> = vec![None; n];
        let base = marker(key);
        if retry {
            for f in find_marked(config, &input.form_id, &input.dedup_field, &format!("{base}#"))? {
                let index = (0..n).find(|i| carries(&f.note, &format!("{base}#{i}")));
                if let Some(i) = index {
                    items[i] = Some(Ok(json!({"Id": f.id, "Number": f.number})));
                }
            }
        }
        let todo: Vec<usize> = (0..n).filter(|i| items[*i].is_none()).collect();
        if !todo.is_empty() {
            let models = todo
                .iter()
                .map(|&i| mark_model(&input.models[i], &input.dedup_field, &format!("{base}#{i}")))
                .collect::<Result<Vec<_>>>()?;
            let mut data = save_data(Value::Array(models), &input.options);
            data["BatchCount"] = json!(todo.len());
            let reply = client::call(config, "BatchSave", &json!({"formid": input.form_id, "data": data}))?;
            let status = status_of(&reply)
                .ok_or_else(|| Error::permanent("BatchSave answered without a ResponseStatus"))?;
            for s in &status.successes {
                if let Some(&i) = todo.get(s.index) {
                    items[i] = Some(Ok(json!({"Id": s.id, "Number": s.number})));
                }
            }
            for (pos, &i) in todo.iter().enumerate() {
                let errors: Vec<_> = status.errors.iter().filter(|e| e.index == pos).cloned().collect();
                if !errors.is_empty() && items[i].is_none() {
                    let text = format!(
                        "BatchSave of {} item {i} failed: {}",
                        input.form_id,
                        crate::reply::join(&errors)
                    );
                    items[i] = Some(Err(Error::invalid_input(text)));
                }
            }
            if !status.ok
                && status.errors.iter().all(|e| e.index >= todo.len())
                && status.successes.is_empty()
            {
                return Err(status.error(&format!("BatchSave of {}", input.form_id)));
            }
        }
        let items: Vec<std::result::Result<Value, Error>> = items
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                o.unwrap_or_else(|| {
                    Err(Error::invalid_input(format!("BatchSave reported nothing for item {i}")))
                })
            })
            .collect();
        let saved = items.iter().filter(|i| i.is_ok()).count();
        let output = json!({"saved": saved, "failed": n - saved,
            "results": items.iter().map(|i| match i { Ok(v) => v.clone(), Err(e) => json!({"error": e.message()}) }).collect::<Vec<_>>()});
        Ok(ActionOutput { output, items: Some(items) })
    }
}

fn operate_data(input: &OperateInput) -> Result<Value> {
    if input.numbers.is_empty() && input.ids.is_empty() {
        return Err(Error::invalid_input("input: give numbers or ids"));
    }
    let ids: Vec<String> =
        input.ids.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect();
    Ok(json!({"CreateOrgId": 0, "Numbers": input.numbers, "Ids": ids.join(","), "NetworkCtrl": false}))
}

/// `submit`, `audit` or `delete` (`op` is the service: `Submit`, `Audit`, `Delete`).
pub fn operate(config: &Config, op: &str, input: &OperateInput) -> Result<ActionOutput> {
    let data = operate_data(input)?;
    let reply = client::call(config, op, &json!({"formid": input.form_id, "data": data}))?;
    let status = status_of(&reply)
        .ok_or_else(|| Error::permanent(format!("{op} answered without a ResponseStatus")))?;
    if !status.ok {
        return Err(status.error(&format!("{op} on {}", input.form_id)));
    }
    let done: Vec<Value> = status.successes.iter().map(|s| json!({"Id": s.id, "Number": s.number})).collect();
    Ok(ActionOutput::new(json!({"items": done})))
}

/// `view`.
pub fn view(config: &Config, input: &ViewInput) -> Result<ActionOutput> {
    if input.number.is_none() && input.id.is_none() {
        return Err(Error::invalid_input("input: give number or id"));
    }
    let id = input
        .id
        .as_ref()
        .map_or_else(String::new, |v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
    let data = json!({"CreateOrgId": 0, "Number": input.number.clone().unwrap_or_default(), "Id": id, "IsSortBySeq": false});
    let reply = client::call(config, "View", &json!({"formid": input.form_id, "data": data}))?;
    if let Some(status) = status_of(&reply)
        && !status.ok
    {
        return Err(status.error(&format!("View on {}", input.form_id)));
    }
    match reply.get("Result").and_then(|r| r.get("Result")) {
        Some(entity) if entity.is_object() => Ok(ActionOutput::new(entity.clone())),
        _ => Err(Error::invalid_input(format!("View on {}: no such bill", input.form_id))),
    }
}

/// `save-submit-audit`: stops at the first failing stage and names it.
pub fn save_submit_audit(config: &Config, input: &SaveInput, key: &str) -> Result<ActionOutput> {
    guarded(key, !input.dedup_field.is_empty(), |retry| {
        let (id, number, found_status) = match save_once(config, input, key, retry) {
            Ok(saved) => saved,
            Err(e) => return (Err(e), false),
        };
        let status = found_status.clone().unwrap_or_else(|| "A".into());
        let by_id = OperateInput { form_id: input.form_id.clone(), numbers: vec![], ids: vec![id.clone()] };
        let stage = |op: &str| {
            operate(config, op, &by_id).map_err(|e| {
                let text = format!(
                    "stage {} failed for bill {number} (Id {id}, saved): {}",
                    op.to_lowercase(),
                    e.message()
                );
                qiao_sdk::error_of_class(e.class(), text, e.retry_after_ms())
            })
        };
        if matches!(status.as_str(), "A" | "D" | "Z")
            && let Err(e) = stage("Submit")
        {
            return (Err(e), true);
        }
        if status != "C"
            && let Err(e) = stage("Audit")
        {
            return (Err(e), true);
        }
        let out = json!({"Id": id, "Number": number, "FDocumentStatus": "C", "deduplicated": found_status.is_some()});
        (Ok(ActionOutput::new(out)), false)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use qiao_sdk::http::Response;
    use qiao_sdk::testing::MockHost;

    fn config() -> Config {
        Config::parse(&json!({"base_url": "https://k3.test", "acct_id": "a", "user_name": "u", "app_id": "1_x", "app_secret": "s"}))
            .unwrap()
    }

    fn session() -> Value {
        json!({"sid": "S", "cookies": [], "of": config().fingerprint()})
    }

    fn ok_status(entities: Value) -> Value {
        json!({"Result": {"ResponseStatus": {"IsSuccess": true, "Errors": [], "SuccessEntitys": entities, "MsgCode": 0}}})
    }

    #[test]
    fn markers_are_written_and_matched_exactly() {
        let m = mark_model(&json!({"FNote": "联调"}), "FNote", "qiao:k").unwrap();
        assert_eq!(m["FNote"], "联调 (qiao:k)");
        let m = mark_model(&json!({"fnote": ""}), "FNote", "qiao:k").unwrap();
        assert_eq!(m["fnote"], "qiao:k");
        assert!(carries("联调 (qiao:k#1)", "qiao:k#1"));
        assert!(!carries("qiao:k#10", "qiao:k#1"));
        assert!(mark_model(&json!([1]), "FNote", "x").is_err());
    }

    #[test]
    fn a_retry_looks_the_bill_up_before_saving_again() {
        let host = MockHost::new()
            .kv_json("session", &session())
            .kv("pending:f:r:book", "1")
            .http(|req| {
                assert!(req.url().ends_with("ExecuteBillQuery.common.kdsvc"), "{}", req.url());
                Ok(Response::new(200).with_json(&json!([[100200, "RGCB000200", "A", "qiao:f:r:book"]])))
            })
            .install();
        let input: SaveInput =
            serde_json::from_value(json!({"form_id": "PRJ_LaborCost", "model": {"FHours": 1}})).unwrap();
        let out = save(&config(), &input, "f:r:book").unwrap();
        assert_eq!(out.output, json!({"Id": 100200, "Number": "RGCB000200", "deduplicated": true}));
        assert_eq!(host.requests().len(), 1);
        let filter = host.requests()[0].body_json().unwrap()["data"]["FilterString"].clone();
        assert_eq!(filter, "FNote like '%qiao:f:r:book%'");
        assert_eq!(host.kv_get("pending:f:r:book"), None);
    }

    #[test]
    fn a_first_save_marks_then_clears_and_reports_validation_errors() {
        let host = MockHost::new()
            .kv_json("session", &session())
            .http(|req| {
                let body = req.body_json().unwrap();
                if body["data"]["Model"]["FHours"] == 0 {
                    return Ok(Response::new(200).with_json(&json!({"Result": {"ResponseStatus": {"IsSuccess": false, "MsgCode": 11,
                        "Errors": [{"FieldName": "FHours", "Message": "字段“工时”必须是大于0的数值", "DIndex": 0}]}}})));
                }
                assert_eq!(body["data"]["Model"]["FNote"], "qiao:k1");
                assert_eq!(body["data"]["IsVerifyBaseDataField"], true);
                Ok(Response::new(200).with_json(&ok_status(json!([{"Id": 7, "Number": "RGCB7", "DIndex": 0}]))))
            })
            .install();
        let input: SaveInput =
            serde_json::from_value(json!({"form_id": "PRJ_LaborCost", "model": {"FHours": 1},
            "options": {"IsVerifyBaseDataField": true}}))
            .unwrap();
        let out = save(&config(), &input, "k1").unwrap();
        assert_eq!(out.output["Number"], "RGCB7");
        let bad: SaveInput =
            serde_json::from_value(json!({"form_id": "PRJ_LaborCost", "model": {"FHours": 0}})).unwrap();
        let e = save(&config(), &bad, "k2").unwrap_err();
        assert_eq!(e.class(), ErrorClass::InvalidInput);
        assert!(e.message().contains("FHours: 字段“工时”必须是大于0的数值"), "{e}");
        assert!(host.kv_keys().iter().all(|k| !k.starts_with("pending:")), "{:?}", host.kv_keys());
    }

    #[test]
    fn a_transient_failure_leaves_the_mark() {
        let host = MockHost::new().kv_json("session", &session()).http(|_| Ok(Response::new(503))).install();
        let input: SaveInput =
            serde_json::from_value(json!({"form_id": "PRJ_LaborCost", "model": {}})).unwrap();
        assert_eq!(save(&config(), &input, "k").unwrap_err().class(), ErrorClass::Transient);
        assert_eq!(host.kv_get("pending:k"), Some(b"1".to_vec()));
    }

    #[test]
    fn batch_save_maps_dindex_to_input_order() {
        let _host = MockHost::new()
            .kv_json("session", &session())
            .http(|req| {
                let body = req.body_json().unwrap();
                assert_eq!(body["data"]["BatchCount"], 3);
                assert_eq!(body["data"]["Model"][2]["FNote"], "qiao:b#2");
                Ok(Response::new(200).with_json(&json!({"Result": {"ResponseStatus": {"IsSuccess": false, "MsgCode": 11,
                    "SuccessEntitys": [{"Id": 1, "Number": "N1", "DIndex": 0}, {"Id": 3, "Number": "N3", "DIndex": 2}],
                    "Errors": [{"FieldName": "FCostCenterId", "Message": "不存在", "DIndex": 1}]}}})))
            })
            .install();
        let input: BatchSaveInput =
            serde_json::from_value(json!({"form_id": "PRJ_LaborCost", "models": [{}, {}, {}]})).unwrap();
        let out = batch_save(&config(), &input, "b").unwrap();
        let items = out.items.unwrap();
        assert_eq!(items[0].as_ref().unwrap()["Number"], "N1");
        let e = items[1].as_ref().unwrap_err();
        assert_eq!(e.class(), ErrorClass::InvalidInput);
        assert!(e.message().contains("FCostCenterId: 不存在"), "{e}");
        assert_eq!(items[2].as_ref().unwrap()["Number"], "N3");
        assert_eq!(out.output["saved"], 2);
    }

    #[test]
    fn save_submit_audit_names_the_failing_stage() {
        let _host = MockHost::new()
            .kv_json("session", &session())
            .http(|req| {
                if req.url().contains(".Save.") {
                    return Ok(Response::new(200)
                        .with_json(&ok_status(json!([{"Id": 9, "Number": "RGCB9", "DIndex": 0}]))));
                }
                if req.url().contains(".Submit.") {
                    assert_eq!(req.body_json().unwrap()["data"]["Ids"], "9");
                    return Ok(Response::new(200)
                        .with_json(&ok_status(json!([{"Id": 9, "Number": "RGCB9", "DIndex": 0}]))));
                }
                Ok(Response::new(200)
                    .with_json(&json!({"Result": {"ResponseStatus": {"IsSuccess": false, "MsgCode": 11,
                    "Errors": [{"FieldName": null, "Message": "审批流未通过", "DIndex": 0}]}}})))
            })
            .install();
        let input: SaveInput =
            serde_json::from_value(json!({"form_id": "PRJ_LaborCost", "model": {}})).unwrap();
        let e = save_submit_audit(&config(), &input, "k").unwrap_err();
        assert_eq!(e.class(), ErrorClass::InvalidInput);
        assert!(e.message().starts_with("stage audit failed for bill RGCB9 (Id 9, saved): "), "{e}");
    }
}
