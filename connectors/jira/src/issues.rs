//! Trigger `issues-updated`: issues whose `updated` moved, read with the enhanced search.
//!
//! JQL compares `updated` at minute precision in the API user's time zone, and the search
//! index is eventually consistent. Each poll therefore asks from the watermark minus an
//! overlap, rounded down to the minute, and skips what it already emitted: the cursor keeps,
//! for every issue emitted at or after that lower bound, its `updated` instant. An issue is
//! emitted again only when its `updated` changes, so re-reads never duplicate and a late-indexed
//! issue inside the overlap is still caught.

use std::collections::BTreeMap;

use qiao_sdk::{Batch, Error, PollRequest, Result, SourceRecord, Value, json};
use serde::{Deserialize, Serialize};

use crate::api::Jira;
use crate::config::Config;
use crate::search::{Projects, Scope, search_page};
use crate::time::{floor_minute, format_jql_minute, parse_datetime};

/// Fields returned when the params name none.
pub const DEFAULT_FIELDS: &[&str] = &[
    "summary",
    "status",
    "assignee",
    "reporter",
    "updated",
    "created",
    "project",
    "issuetype",
    "labels",
    "priority",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    #[serde(default)]
    project: Option<Projects>,
    #[serde(default)]
    jql: Option<String>,
    #[serde(default)]
    fields: Option<Vec<String>>,
    #[serde(default = "default_overlap")]
    overlap_minutes: u32,
    #[serde(default = "default_page_size")]
    page_size: u32,
    /// Where the first poll starts (ISO 8601, or `yyyy-MM-dd HH:mm` in the configured zone).
    #[serde(default)]
    since: Option<String>,
}

fn default_overlap() -> u32 {
    1
}

fn default_page_size() -> u32 {
    100
}

/// The cursor: the newest `updated` emitted, and every issue emitted at or after the current
/// lower bound with the `updated` it had.
#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
pub struct Cursor {
    /// Newest `updated` emitted (ms).
    #[serde(default)]
    pub watermark_ms: Option<i64>,
    /// Issue key → `updated` (ms) as emitted.
    #[serde(default)]
    pub seen: BTreeMap<String, i64>,
}

pub fn poll(req: PollRequest<'_>) -> Result<Batch> {
    let config = Config::load(req.config)?;
    let params: Params = req.params()?;
    let zone = config.zone()?;
    let scope = Scope { project: params.project, jql: params.jql }.jql()?;
    if params.page_size == 0 || params.page_size > 5000 {
        return Err(Error::config("params.page_size: must be between 1 and 5000"));
    }
    let mut cursor: Cursor = match req.cursor.filter(|c| !c.trim().is_empty()) {
        None => Cursor::default(),
        Some(text) => serde_json::from_str(text)
            .map_err(|e| Error::config(format!("malformed issues-updated cursor ({e}): {text:?}")))?,
    };
    let lower_ms = match cursor.watermark_ms {
        Some(w) => floor_minute(w - i64::from(params.overlap_minutes) * 60_000),
        None => match &params.since {
            None => 0,
            Some(s) => floor_minute(parse_datetime(s, zone.offset_min).ok_or_else(|| {
                Error::config(format!(
                    "params.since: {s:?} is not a datetime (2024-05-01T00:00:00+08:00 or 2024-05-01 00:00)"
                ))
            })?),
        },
    };
    cursor.seen.retain(|_, ms| *ms >= lower_ms);
    let jql = format!(
        "{scope}updated >= \"{}\" ORDER BY updated ASC, key ASC",
        format_jql_minute(lower_ms, zone.offset_min)
    );
    let mut fields: Vec<String> =
        params.fields.unwrap_or_else(|| DEFAULT_FIELDS.iter().map(|f| f.to_string()).collect());
    if !fields.iter().any(|f| f == "updated" || f == "*all" || f == "*navigable") {
        fields.push("updated".into());
    }
    let jira = Jira::new(&config);
    let mut records = Vec::new();
    let mut token: Option<String> = None;
    let is_last = loop {
        let page = search_page(&jira, &jql, &fields, params.page_size, token.as_deref())?;
        for issue in page.issues {
            let key = issue["key"].as_str().unwrap_or_default().to_string();
            let updated = issue["fields"]["updated"].as_str().unwrap_or_default().to_string();
            let Some(ms) = parse_datetime(&updated, zone.offset_min) else {
                return Err(Error::permanent(format!(
                    "issue {key:?} has no readable `updated` ({updated:?})"
                )));
            };
            if key.is_empty() || cursor.seen.get(&key) == Some(&ms) {
                continue;
            }
            cursor.seen.insert(key.clone(), ms);
            cursor.watermark_ms = Some(cursor.watermark_ms.map_or(ms, |w| w.max(ms)));
            records.push(SourceRecord { id: Some(format!("{key}@{updated}")), data: issue });
        }
        // A page of re-reads only (a burst of updates larger than a page in the overlap):
        // follow the token so the poll makes progress.
        match page.next_page_token {
            Some(next) if records.is_empty() && !page.is_last => token = Some(next),
            _ => break page.is_last,
        }
    };
    if cursor.watermark_ms.is_none() && lower_ms > 0 {
        // Nothing yet: start the next poll where this one started.
        cursor.watermark_ms = Some(lower_ms + i64::from(params.overlap_minutes) * 60_000);
    }
    qiao_sdk::debug!("issues-updated: {} records from {jql}", records.len());
    let next = serde_json::to_string(&cursor).map_err(|e| Error::permanent(format!("cursor: {e}")))?;
    Ok(Batch { records, next_cursor: Some(next), more: !is_last })
}

/// The record a flow sees: the issue as the search returned it.
pub fn output_schema() -> Value {
    json!({"type": "object", "properties": {"id": {"type": "string"}, "key": {"type": "string"}, "fields": {"type": "object"}}})
}
