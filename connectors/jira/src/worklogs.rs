//! Trigger `worklogs-updated`: worklogs created or changed, from `GET /rest/api/3/worklog/updated`
//! (one page per poll) and `POST /rest/api/3/worklog/list` (≤ 1000 ids per call), with their
//! issue's key, project, summary and status from one batched search per 100 issues.
//!
//! The cursor is the `until` of the last page read plus the ids updated at exactly that
//! millisecond, so a server that treats `since` as inclusive does not repeat them.

use std::collections::BTreeMap;

use qiao_sdk::{Batch, Error, PollRequest, Result, SourceRecord, Value, json};
use serde::{Deserialize, Serialize};

use crate::adf;
use crate::api::Jira;
use crate::config::Config;
use crate::search::{Projects, is_project_key, search_all};
use crate::time::{format_utc, parse_datetime};

/// Most ids per `/worklog/list` call.
pub const LIST_CHUNK: usize = 1000;
/// Most issue ids per `id in (...)` search.
pub const ISSUE_CHUNK: usize = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    /// Keep only worklogs of these projects.
    #[serde(default)]
    project: Option<Projects>,
    /// Where the first poll starts (ISO 8601 or epoch milliseconds); default: everything.
    #[serde(default)]
    since: Option<Value>,
    /// Look up each worklog's issue (key, project, summary, status).
    #[serde(default = "yes")]
    include_issue: bool,
}

fn yes() -> bool {
    true
}

/// The cursor.
#[derive(Serialize, Deserialize, Default, Debug, PartialEq)]
pub struct Cursor {
    /// `since` of the next request (ms).
    pub since_ms: i64,
    /// Worklogs already emitted whose update time is exactly `since_ms`.
    #[serde(default)]
    pub ids_at_since: Vec<u64>,
}

fn id_of(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))
}

pub fn poll(req: PollRequest<'_>) -> Result<Batch> {
    let config = Config::load(req.config)?;
    let params: Params = req.params()?;
    let zone = config.zone()?;
    let projects = params.project.as_ref().map(Projects::keys);
    if let Some(bad) = projects.iter().flatten().find(|k| !is_project_key(k)) {
        return Err(Error::config(format!(
            "params.project: {bad:?} is not a Jira project key (like \"ERP\")"
        )));
    }
    let cursor: Cursor = match req.cursor.filter(|c| !c.trim().is_empty()) {
        Some(text) => serde_json::from_str(text)
            .map_err(|e| Error::config(format!("malformed worklogs-updated cursor ({e}): {text:?}")))?,
        None => Cursor {
            since_ms: match &params.since {
                None | Some(Value::Null) => 0,
                Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
                Some(Value::String(s)) => parse_datetime(s, zone.offset_min)
                    .ok_or_else(|| Error::config(format!("params.since: {s:?} is not a datetime")))?,
                Some(other) => return Err(Error::config(format!("params.since: {other} is not a datetime"))),
            },
            ids_at_since: vec![],
        },
    };
    let jira = Jira::new(&config);
    let page =
        jira.json(jira.get("/rest/api/3/worklog/updated").query("since", cursor.since_ms.to_string()))?;
    let values = page["values"].as_array().cloned().unwrap_or_default();
    let last_page = page["lastPage"].as_bool().unwrap_or(true);
    let changes: Vec<(u64, i64)> = values
        .iter()
        .filter_map(|v| Some((id_of(&v["worklogId"])?, v["updatedTime"].as_i64()?)))
        .filter(|(id, at)| {
            *at > cursor.since_ms || (*at == cursor.since_ms && !cursor.ids_at_since.contains(id))
        })
        .collect();
    let until = page["until"].as_i64().unwrap_or(cursor.since_ms).max(cursor.since_ms);
    // Follow `nextPage` when it names a later `since`; `until` otherwise.
    let next_since = page["nextPage"]
        .as_str()
        .and_then(|u| u.split_once("since=").and_then(|(_, s)| s.split('&').next()?.parse::<i64>().ok()))
        .filter(|s| !last_page && *s >= cursor.since_ms)
        .unwrap_or(until);

    let mut worklogs: BTreeMap<u64, Value> = BTreeMap::new();
    let ids: Vec<u64> = changes.iter().map(|(id, _)| *id).collect();
    for chunk in ids.chunks(LIST_CHUNK) {
        let found = jira.json(jira.post("/rest/api/3/worklog/list", &json!({"ids": chunk})))?;
        for w in found.as_array().into_iter().flatten() {
            if let Some(id) = id_of(&w["id"]) {
                worklogs.insert(id, w.clone());
            }
        }
    }
    let issues = if params.include_issue { issues_of(&jira, worklogs.values())? } else { BTreeMap::new() };
    let mut records = Vec::new();
    for (id, at) in &changes {
        // Deleted between the two calls: nothing to emit.
        let Some(w) = worklogs.get(id) else { continue };
        let issue =
            w["issueId"].as_str().map(str::to_owned).or_else(|| w["issueId"].as_u64().map(|n| n.to_string()));
        let issue = issue.and_then(|i| issues.get(&i)).cloned();
        if let Some(keys) = &projects {
            let project = issue.as_ref().and_then(|i| i["project"].as_str());
            if !project.is_some_and(|p| keys.iter().any(|k| k == p)) {
                continue;
            }
        }
        records.push(SourceRecord {
            id: Some(format!("{id}@{at}")),
            data: normalise(w, issue, zone.offset_min),
        });
    }
    let mut ids_at_since: Vec<u64> =
        changes.iter().filter(|(_, at)| *at == next_since).map(|(id, _)| *id).collect();
    if next_since == cursor.since_ms {
        ids_at_since.extend(cursor.ids_at_since.iter().copied());
        ids_at_since.sort_unstable();
        ids_at_since.dedup();
    }
    let next = Cursor { since_ms: next_since, ids_at_since };
    qiao_sdk::debug!("worklogs-updated: {} records since {}", records.len(), cursor.since_ms);
    let next = serde_json::to_string(&next).map_err(|e| Error::permanent(format!("cursor: {e}")))?;
    Ok(Batch { records, next_cursor: Some(next), more: !last_page })
}

/// Issue id → `{id, key, project, summary, status}` for the issues of `worklogs`.
fn issues_of<'a>(
    jira: &Jira<'_>,
    worklogs: impl Iterator<Item = &'a Value>,
) -> Result<BTreeMap<String, Value>> {
    let mut ids: Vec<String> = worklogs
        .filter_map(|w| {
            w["issueId"].as_str().map(str::to_owned).or_else(|| w["issueId"].as_u64().map(|n| n.to_string()))
        })
        .filter(|id| id.bytes().all(|b| b.is_ascii_digit()) && !id.is_empty())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let fields: Vec<String> = ["project", "summary", "status", "issuetype"].map(String::from).to_vec();
    let mut out = BTreeMap::new();
    for chunk in ids.chunks(ISSUE_CHUNK) {
        let jql = format!("id in ({})", chunk.join(", "));
        for issue in search_all(jira, &jql, &fields, ISSUE_CHUNK as u32)? {
            let id = issue["id"].as_str().unwrap_or_default().to_string();
            let f = &issue["fields"];
            out.insert(
                id.clone(),
                json!({"id": id, "key": issue["key"], "project": f["project"]["key"], "summary": f["summary"],
                       "status": f["status"]["name"], "issuetype": f["issuetype"]["name"]}),
            );
        }
    }
    Ok(out)
}

/// The record of worklog `w`: Jira's fields, datetimes in UTC ISO 8601, the comment as text
/// (`commentAdf` keeps the document), and the issue when known.
pub fn normalise(w: &Value, issue: Option<Value>, offset_min: i32) -> Value {
    let utc = |field: &str| {
        w[field]
            .as_str()
            .and_then(|s| parse_datetime(s, offset_min))
            .map(format_utc)
            .map_or(Value::Null, Value::String)
    };
    let issue_key = issue.as_ref().map_or(Value::Null, |i| i["key"].clone());
    let project = issue.as_ref().map_or(Value::Null, |i| i["project"].clone());
    json!({
        "id": w["id"],
        "issueId": w["issueId"],
        "issueKey": issue_key,
        "project": project,
        "issue": issue.unwrap_or(Value::Null),
        "author": {"accountId": w["author"]["accountId"], "displayName": w["author"]["displayName"]},
        "timeSpentSeconds": w["timeSpentSeconds"],
        "timeSpent": w["timeSpent"],
        "started": utc("started"),
        "created": utc("created"),
        "updated": utc("updated"),
        "comment": if w["comment"].is_null() { Value::String(String::new()) } else { Value::String(adf::to_text(&w["comment"])) },
        "commentAdf": w["comment"],
        "self": w["self"],
    })
}

/// The record a flow sees.
pub fn output_schema() -> Value {
    json!({"type": "object", "properties": {
        "id": {"type": "string"}, "issueId": {"type": "string"}, "issueKey": {"type": ["string", "null"]},
        "project": {"type": ["string", "null"]}, "timeSpentSeconds": {"type": "integer"},
        "started": {"type": "string", "description": "ISO 8601, UTC"}, "author": {"type": "object"},
        "comment": {"type": "string"}}})
}
