//! The `bill-query` trigger: `ExecuteBillQuery` rows as named records, paged until a short
//! page, with a changed-since cursor when `modified_field` is given.
//!
//! With `modified_field` (`FModifyDate`), a sweep reads `M >= since` ordered by
//! `M, FID[, entry id]` and pages by keyset (`M > m or (M = m and FID > f ...)`) so rows
//! modified during the sweep cannot shift a page boundary (offset paging drops or repeats rows
//! then, spec §6). Rows at `since` already delivered (their ids are in the cursor) are skipped,
//! so a bill saved in the same second as the last one seen is still picked up. Without
//! `modified_field`, pages follow `StartRow`/`Limit` over `order`, and each cycle re-reads the
//! whole result set.

use qiao_sdk::{Batch, Error, Result, SourceRecord, Value, json};
use serde::{Deserialize, Serialize};

use crate::client;
use crate::config::Config;
use crate::reply::status_of;

/// The largest `Limit` K/3 accepts.
pub const MAX_PAGE: u32 = 10_000;

/// Params of `bill-query`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// FormId (`PUR_Requisition`).
    pub form_id: String,
    /// Field keys to read (`FBillNo`, `FMaterialId.FNumber`, `FEntity_FEntryID`).
    pub field_keys: Vec<String>,
    /// A `FilterString`.
    #[serde(default)]
    pub filter: Option<String>,
    /// `OrderString` when `modified_field` is not given.
    #[serde(default = "default_order")]
    pub order: String,
    /// The modify-time field for a changed-since cursor (`FModifyDate`).
    #[serde(default)]
    pub modified_field: Option<String>,
    /// Rows per page.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
}

fn default_order() -> String {
    "FID ASC".into()
}

fn default_page_size() -> u32 {
    500
}

/// The cursor: where the last sweep ended, and where the current sweep is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct Cursor {
    /// Modified value the next sweep starts at (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    since: Option<String>,
    /// Record ids already delivered at `since`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    seen: Vec<String>,
    /// Mid-sweep: the last row read (modified value, FID, entry id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<(Value, Value, Value)>,
    /// Mid-sweep: newest modified value so far, and the ids at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    high: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    high_ids: Vec<String>,
    /// Offset mode: the next `StartRow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start: Option<u64>,
}

/// Runs one page of `bill-query`.
pub fn bill_query(config: &Config, params: &Params, cursor: Option<&str>) -> Result<Batch> {
    if params.page_size == 0 || params.page_size > MAX_PAGE {
        return Err(Error::config(format!(
            "params.page_size: must be 1 to {MAX_PAGE}, got {}",
            params.page_size
        )));
    }
    if params.field_keys.is_empty() {
        return Err(Error::config("params.field_keys: must name at least one field"));
    }
    let cursor: Cursor = match cursor {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| Error::config(format!("cursor {text:?} is not this trigger's: {e}")))?,
        None => Cursor::default(),
    };
    let mut keys = params.field_keys.clone();
    let mut ensure = |k: &str| {
        if !keys.iter().any(|x| x.eq_ignore_ascii_case(k)) {
            keys.push(k.to_string());
        }
    };
    ensure("FID");
    if let Some(m) = &params.modified_field {
        ensure(m);
    }
    let entry_key = keys.iter().find(|k| k.to_ascii_lowercase().ends_with("_fentryid")).cloned();
    match &params.modified_field {
        Some(m) => changed_since(config, params, &keys, m, entry_key.as_deref(), cursor),
        None => offset_page(config, params, &keys, entry_key.as_deref(), cursor),
    }
}

fn quote(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("'{}'", s.replace('\'', "''")),
        other => format!("'{}'", other.to_string().replace('\'', "''")),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn with_user_filter(user: Option<&str>, extra: &str) -> String {
    match user.map(str::trim).filter(|f| !f.is_empty()) {
        Some(f) => format!("({f}) and {extra}"),
        None => extra.to_string(),
    }
}

fn fetch(
    config: &Config,
    params: &Params,
    keys: &[String],
    filter: String,
    order: String,
    start: u64,
) -> Result<Vec<Vec<Value>>> {
    let data = json!({
        "FormId": params.form_id, "FieldKeys": keys.join(","), "FilterString": filter,
        "OrderString": order, "TopRowCount": 0, "StartRow": start, "Limit": params.page_size, "SubSystemId": ""
    });
    let reply = client::call(config, "ExecuteBillQuery", &json!({"data": data}))?;
    if let Some(status) = status_of(&reply) {
        return Err(status.error(&format!("ExecuteBillQuery on {}", params.form_id)));
    }
    let rows: Vec<Vec<Value>> = serde_json::from_value(reply).map_err(|e| {
        Error::permanent(format!(
            "ExecuteBillQuery on {} answered rows of an unexpected shape: {e}",
            params.form_id
        ))
    })?;
    Ok(rows)
}

fn cell<'a>(keys: &[String], row: &'a [Value], key: &str) -> &'a Value {
    keys.iter().position(|k| k.eq_ignore_ascii_case(key)).and_then(|i| row.get(i)).unwrap_or(&Value::Null)
}

fn record(keys: &[String], row: &[Value], entry_key: Option<&str>) -> (String, SourceRecord) {
    let fid = text(cell(keys, row, "FID"));
    let id = match entry_key {
        Some(e) => format!("{fid}-{}", text(cell(keys, row, e))),
        None => fid,
    };
    let data: serde_json::Map<String, Value> =
        keys.iter().zip(row.iter()).map(|(k, v)| (k.clone(), v.clone())).collect();
    (id.clone(), SourceRecord { id: Some(id), data: Value::Object(data) })
}

fn changed_since(
    config: &Config,
    params: &Params,
    keys: &[String],
    m: &str,
    entry_key: Option<&str>,
    cursor: Cursor,
) -> Result<Batch> {
    let mut bound = match &cursor.after {
        Some((mv, fid, entry)) => {
            let tail = match entry_key {
                Some(e) if !entry.is_null() => {
                    format!("FID > {f} or (FID = {f} and {e} > {})", quote(entry), f = quote(fid))
                }
                _ => format!("FID > {}", quote(fid)),
            };
            format!("({m} > {mv} or ({m} = {mv} and ({tail})))", mv = quote(mv))
        }
        None => match &cursor.since {
            Some(since) => format!("{m} >= {}", quote(&Value::String(since.clone()))),
            None => String::new(),
        },
    };
    if bound.is_empty() {
        bound = "1 = 1".into();
    }
    let filter = if bound == "1 = 1" {
        params.filter.clone().unwrap_or_default()
    } else {
        with_user_filter(params.filter.as_deref(), &bound)
    };
    let mut order = format!("{m} ASC,FID ASC");
    if let Some(e) = entry_key {
        order.push_str(&format!(",{e} ASC"));
    }
    let rows = fetch(config, params, keys, filter, order, 0)?;
    let full = rows.len() == params.page_size as usize;
    let mut high = cursor.high.clone().or_else(|| cursor.since.clone());
    let mut high_ids = if cursor.high.is_some() { cursor.high_ids.clone() } else { cursor.seen.clone() };
    let mut records = Vec::new();
    let mut last = None;
    for row in &rows {
        let (id, rec) = record(keys, row, entry_key);
        let mv = cell(keys, row, m).clone();
        let mtext = text(&mv);
        last = Some((
            mv,
            cell(keys, row, "FID").clone(),
            entry_key.map_or(Value::Null, |e| cell(keys, row, e).clone()),
        ));
        if cursor.since.as_deref() == Some(mtext.as_str()) && cursor.seen.contains(&id) {
            continue;
        }
        if high.as_deref() != Some(mtext.as_str()) {
            high = Some(mtext);
            high_ids.clear();
        }
        if !high_ids.contains(&id) {
            high_ids.push(id);
        }
        records.push(rec);
    }
    let next = if full {
        Cursor { after: last.or(cursor.after.clone()), high, high_ids, ..cursor }
    } else {
        Cursor { since: high, seen: high_ids, ..Cursor::default() }
    };
    Ok(Batch { records, next_cursor: Some(to_text(&next)?), more: full })
}

fn offset_page(
    config: &Config,
    params: &Params,
    keys: &[String],
    entry_key: Option<&str>,
    cursor: Cursor,
) -> Result<Batch> {
    let start = cursor.start.unwrap_or(0);
    let rows =
        fetch(config, params, keys, params.filter.clone().unwrap_or_default(), params.order.clone(), start)?;
    let full = rows.len() == params.page_size as usize;
    let records = rows.iter().map(|r| record(keys, r, entry_key).1).collect();
    let next = Cursor { start: Some(if full { start + rows.len() as u64 } else { 0 }), ..Cursor::default() };
    Ok(Batch { records, next_cursor: Some(to_text(&next)?), more: full })
}

fn to_text(c: &Cursor) -> Result<String> {
    serde_json::to_string(c).map_err(|e| Error::permanent(format!("cursor does not serialize: {e}")))
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

    fn host(pages: Vec<Value>) -> qiao_sdk::testing::InstalledHost {
        let mut pages = pages.into_iter();
        MockHost::new()
            .kv_json("session", &json!({"sid": "S", "cookies": [], "of": config().fingerprint()}))
            .http(move |_| Ok(Response::new(200).with_json(&pages.next().unwrap_or(json!([])))))
            .install()
    }

    #[test]
    fn keyset_pages_skip_seen_rows_and_carry_ties() {
        let params: Params =
            serde_json::from_value(json!({"form_id": "PRJ_LaborCost", "field_keys": ["FBillNo"],
            "modified_field": "FModifyDate", "filter": "FDocumentStatus='C'", "page_size": 2}))
            .unwrap();
        let h = host(vec![
            json!([["RGCB1", 1, "2025-03-01T09:00:00"], ["RGCB2", 2, "2025-03-01T09:37:00"]]),
            json!([["RGCB3", 3, "2025-03-01T09:37:00"]]),
        ]);
        let first = bill_query(&config(), &params, None).unwrap();
        assert!(first.more);
        assert_eq!(first.records.len(), 2);
        assert_eq!(
            first.records[0].data,
            json!({"FBillNo": "RGCB1", "FID": 1, "FModifyDate": "2025-03-01T09:00:00"})
        );
        let second = bill_query(&config(), &params, first.next_cursor.as_deref()).unwrap();
        assert!(!second.more);
        let c: Cursor = serde_json::from_str(second.next_cursor.as_deref().unwrap()).unwrap();
        assert_eq!(
            (c.since.as_deref(), c.seen.clone()),
            (Some("2025-03-01T09:37:00"), vec!["2".to_string(), "3".to_string()])
        );
        let sent: Vec<Value> = h.requests().iter().map(|r| r.body_json().unwrap()["data"].clone()).collect();
        assert_eq!(sent[0]["FieldKeys"], "FBillNo,FID,FModifyDate");
        assert_eq!(sent[0]["FilterString"], "FDocumentStatus='C'");
        assert_eq!(sent[0]["OrderString"], "FModifyDate ASC,FID ASC");
        assert_eq!(
            sent[1]["FilterString"],
            "(FDocumentStatus='C') and (FModifyDate > '2025-03-01T09:37:00' or (FModifyDate = '2025-03-01T09:37:00' and (FID > 2)))"
        );
        drop(h);

        // The next cycle starts at the tie instant and skips what it already delivered.
        let h = host(vec![
            json!([["RGCB2", 2, "2025-03-01T09:37:00"], ["RGCB3", 3, "2025-03-01T09:37:00"]]),
            json!([]),
        ]);
        let third = bill_query(&config(), &params, second.next_cursor.as_deref()).unwrap();
        assert!(third.records.is_empty());
        assert!(third.more, "a full page, even if all skipped, asks for the next");
        let sent = h.requests()[0].body_json().unwrap();
        assert_eq!(
            sent["data"]["FilterString"],
            "(FDocumentStatus='C') and FModifyDate >= '2025-03-01T09:37:00'"
        );
    }

    #[test]
    fn offset_pages_and_entry_ids() {
        let params: Params = serde_json::from_value(json!({"form_id": "PUR_Requisition",
            "field_keys": ["FID", "FBillNo", "FEntity_FEntryID"], "page_size": 2}))
        .unwrap();
        let h = host(vec![json!([[1, "CGSQ1", 11], [1, "CGSQ1", 12]]), json!([[2, "CGSQ2", 13]])]);
        let a = bill_query(&config(), &params, None).unwrap();
        assert_eq!(a.records[1].id.as_deref(), Some("1-12"));
        let b = bill_query(&config(), &params, a.next_cursor.as_deref()).unwrap();
        assert!(!b.more);
        assert_eq!(b.next_cursor.as_deref(), Some(r#"{"start":0}"#));
        let starts: Vec<Value> =
            h.requests().iter().map(|r| r.body_json().unwrap()["data"]["StartRow"].clone()).collect();
        assert_eq!(starts, [json!(0), json!(2)]);
    }

    #[test]
    fn query_errors_are_classified() {
        let params: Params = serde_json::from_value(json!({"form_id": "X", "field_keys": ["FID"]})).unwrap();
        let _h = host(vec![json!([[{"Result": {"ResponseStatus": {"IsSuccess": false, "MsgCode": 8,
            "Errors": [{"Message": "Limit不能超过10000"}]}}}]])]);
        let e = bill_query(&config(), &params, None).unwrap_err();
        assert_eq!(e.class(), qiao_sdk::ErrorClass::InvalidInput);
        let bad: Params =
            serde_json::from_value(json!({"form_id": "X", "field_keys": ["FID"], "page_size": 20000}))
                .unwrap();
        assert_eq!(bill_query(&config(), &bad, None).unwrap_err().class(), qiao_sdk::ErrorClass::Config);
    }
}
