//! The `list` trigger: any paged list API, one page per poll, with an optional changed-since
//! watermark on a row timestamp (`pubts`).
//!
//! The cursor is JSON text: `{"since": …}` between rounds, `{"since": …, "max_seen": …,
//! "page": n}` while a round has more pages. The watermark only moves after the last page.

use qiao_sdk::{Batch, Error, PollRequest, Result, SourceRecord, Value, json};
use serde::{Deserialize, Serialize};

use crate::api;
use crate::config::Config;

/// Page size when the params give none.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The largest page the list APIs serve.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Params of `list`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// The list API.
    pub path: String,
    /// Merged into the body.
    #[serde(default)]
    pub conditions: serde_json::Map<String, Value>,
    /// Rows per page.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Row timestamp for the watermark.
    #[serde(default)]
    pub modified_field: Option<String>,
    /// Watermark of the first round.
    #[serde(default)]
    pub since: Option<String>,
    /// The record id field.
    #[serde(default = "default_id_field")]
    pub id_field: String,
}

fn default_page_size() -> u32 {
    DEFAULT_PAGE_SIZE
}

fn default_id_field() -> String {
    "id".into()
}

/// Where a round is.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The watermark every page of this round filters on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// The largest row timestamp seen so far in this round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_seen: Option<String>,
    /// The next page of this round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
}

impl Cursor {
    fn parse(text: Option<&str>) -> Result<Cursor> {
        match text.map(str::trim).filter(|t| !t.is_empty()) {
            None => Ok(Cursor::default()),
            Some(t) => serde_json::from_str(t)
                .map_err(|e| Error::config(format!("malformed yonyou list cursor {t:?}: {e}"))),
        }
    }
}

/// The request body of one page.
pub fn page_body(params: &ListParams, since: Option<&str>, page: u32) -> Value {
    let mut body = params.conditions.clone();
    body.insert("pageIndex".into(), json!(page));
    body.insert("pageSize".into(), json!(params.page_size));
    if let (Some(field), Some(since)) = (&params.modified_field, since) {
        let mut vos = body.get("simpleVOs").and_then(Value::as_array).cloned().unwrap_or_default();
        vos.push(json!({"field": field, "op": "egt", "value1": since}));
        body.insert("simpleVOs".into(), Value::Array(vos));
    }
    // Stable order across pages: a row changed mid-round keeps its place.
    body.entry("queryOrders").or_insert_with(|| json!([{"field": params.id_field, "order": "asc"}]));
    Value::Object(body)
}

/// The rows and page count of a list answer: `data.recordList` with `data.pageCount`, or
/// `data` as an array (one page), in the `{code}` or the legacy `{success}` envelope.
pub fn rows_of(answer: &Value, path: &str) -> Result<(Vec<Value>, u32)> {
    let data = answer.get("data").unwrap_or(answer);
    if let Some(rows) = data.as_array() {
        return Ok((rows.clone(), 1));
    }
    let Some(rows) = data.get("recordList").and_then(Value::as_array) else {
        return Err(Error::permanent(format!("{path} answered without data.recordList or a data array")));
    };
    let pages = data.get("pageCount").and_then(Value::as_u64).unwrap_or(1);
    Ok((rows.clone(), u32::try_from(pages).unwrap_or(u32::MAX)))
}

fn id_of(row: &Value, field: &str) -> Option<String> {
    match row.get(field)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Runs one poll.
pub fn run(req: PollRequest<'_>) -> Result<Batch> {
    let config = Config::load(req.config)?;
    let params: ListParams = req.params()?;
    if params.page_size == 0 || params.page_size > MAX_PAGE_SIZE {
        return Err(Error::config(format!(
            "params.page_size: must be 1..={MAX_PAGE_SIZE}, got {}",
            params.page_size
        )));
    }
    let cursor = Cursor::parse(req.cursor)?;
    let since = cursor.since.clone().or_else(|| params.since.clone());
    let page = cursor.page.unwrap_or(1).max(1);
    let body = page_body(&params, since.as_deref(), page);
    let answer = api::call(&config, "POST", &params.path, &[], Some(&body))?;
    let (rows, page_count) = rows_of(&answer, &params.path)?;

    let mut max_seen = cursor.max_seen.clone();
    if let Some(field) = &params.modified_field {
        for stamp in rows.iter().filter_map(|r| r.get(field).and_then(Value::as_str)) {
            if max_seen.as_deref().is_none_or(|m| stamp > m) {
                max_seen = Some(stamp.to_string());
            }
        }
    }
    let more = page < page_count && !rows.is_empty();
    let next = if more {
        Cursor { since: since.clone(), max_seen, page: Some(page + 1) }
    } else {
        let watermark = match (since, max_seen) {
            (Some(s), Some(m)) => Some(if m > s { m } else { s }),
            (s, m) => m.or(s),
        };
        Cursor { since: watermark, max_seen: None, page: None }
    };
    let records =
        rows.into_iter().map(|row| SourceRecord { id: id_of(&row, &params.id_field), data: row }).collect();
    let next_cursor = serde_json::to_string(&next)
        .map_err(|e| Error::permanent(format!("cursor does not serialize: {e}")))?;
    Ok(Batch { records, next_cursor: Some(next_cursor), more })
}
