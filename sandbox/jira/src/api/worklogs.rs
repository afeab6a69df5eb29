//! Worklogs: per issue (list, add), and site-wide changes (`/worklog/updated`) with the bulk
//! read `/worklog/list`.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::{Fake, base_url, parse_body};
use crate::errors::{JiraError, body};
use crate::model::{User, Worklog, adf_text, is_adf, parse_time_spent};
use crate::time::{format_jira, parse_jira};

/// Most ids `/worklog/list` takes.
const LIST_MAX_IDS: usize = 1000;

fn expands_properties(q: &HashMap<String, String>) -> bool {
    q.get("expand").is_some_and(|e| e.split(',').any(|x| x.trim() == "properties"))
}

pub async fn list_of_issue(
    State(fake): Fake,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let num = |name: &str| q.get(name).and_then(|v| v.parse::<i64>().ok());
    let start = num("startAt").unwrap_or(0).max(0) as usize;
    let max = num("maxResults").unwrap_or(5000).clamp(1, 5000) as usize;
    let after = num("startedAfter");
    let before = num("startedBefore");
    let with_properties = expands_properties(&q);
    let s = fake.state();
    let Some(issue) = s.issue(&key) else {
        return JiraError::issue_not_found().into_response();
    };
    let base = base_url(&headers);
    let matching: Vec<&Worklog> = s
        .worklogs_of(issue.id)
        .into_iter()
        .filter(|w| after.is_none_or(|a| w.started_ms >= a) && before.is_none_or(|b| w.started_ms < b))
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(start)
        .take(max)
        .map(|w| if with_properties { w.json_with_properties(&base) } else { w.json(&base) })
        .collect();
    body(
        StatusCode::OK,
        &json!({"startAt": start, "maxResults": max, "total": matching.len(), "worklogs": page}),
    )
}

pub async fn add(State(fake): Fake, headers: HeaderMap, Path(key): Path<String>, bytes: Bytes) -> Response {
    let run = || -> Result<Response, JiraError> {
        let v: Value = parse_body(&bytes)?;
        let now = fake.now_ms();
        let mut errors = Map::new();
        let seconds = match (v.get("timeSpentSeconds"), v.get("timeSpent").and_then(Value::as_str)) {
            (Some(_), Some(_)) => {
                errors.insert(
                    "timeLogged".into(),
                    json!("Provide either timeSpent or timeSpentSeconds, not both."),
                );
                None
            }
            (Some(s), None) => s.as_u64().filter(|s| *s > 0),
            (None, Some(text)) => parse_time_spent(text).filter(|s| *s > 0),
            (None, None) => None,
        };
        if seconds.is_none() && errors.is_empty() {
            errors.insert("timeLogged".into(), json!("You must indicate the time spent working."));
        }
        let started = match v.get("started") {
            None | Some(Value::Null) => Some(now),
            Some(s) => {
                let parsed = s.as_str().and_then(parse_jira);
                if parsed.is_none() {
                    errors.insert(
                        "started".into(),
                        json!(format!("Could not parse the date '{}': use yyyy-MM-dd'T'HH:mm:ss.SSSZ, e.g. 2021-01-17T12:34:00.000+0000.", s.as_str().unwrap_or_default())),
                    );
                }
                parsed
            }
        };
        let comment = match v.get("comment") {
            None | Some(Value::Null) => None,
            Some(c) if is_adf(c) => Some(c.clone()),
            Some(_) => {
                errors.insert(
                    "comment".into(),
                    json!(
                        "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
                    ),
                );
                None
            }
        };
        let mut properties = BTreeMap::new();
        for p in v.get("properties").and_then(Value::as_array).into_iter().flatten() {
            if let Some(k) = p["key"].as_str() {
                properties.insert(k.to_string(), p["value"].clone());
            }
        }
        let mut s = fake.state();
        let issue_id = s.issue(&key).map(|i| i.id).ok_or_else(JiraError::issue_not_found)?;
        let (Some(seconds), Some(started_ms), true) = (seconds, started, errors.is_empty()) else {
            return Err(JiraError::fields(errors));
        };
        let id = s.next_worklog_id;
        s.next_worklog_id += 1;
        let worklog = Worklog {
            id,
            issue_id,
            author: User::ApiUser,
            comment,
            started_ms,
            time_spent_seconds: seconds,
            created_ms: now,
            updated_ms: now,
            properties,
        };
        let out = worklog.json(&base_url(&headers));
        if let Some(issue) = s.issue_mut(&key) {
            issue.updated_ms = now;
        }
        let record = json!({
            "id": id.to_string(), "issue": key, "timeSpentSeconds": seconds, "started": format_jira(started_ms),
            "text": worklog.comment.as_ref().map(adf_text).unwrap_or_default(), "properties": worklog.properties,
        });
        s.worklogs.push(worklog);
        s.writes.worklogs.push(record);
        Ok(body(StatusCode::CREATED, &out))
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

pub async fn updated(
    State(fake): Fake,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let since = match q.get("since").map(|s| s.parse::<i64>()) {
        None => 0,
        Some(Ok(s)) => s,
        Some(Err(_)) => {
            return JiraError::bad_request("since must be a UNIX timestamp in milliseconds").into_response();
        }
    };
    let with_properties = expands_properties(&q);
    let visible_until = fake.now_ms() - fake.worklog_settle_ms();
    let size = fake.worklog_page_size();
    let s = fake.state();
    let mut changed: Vec<&Worklog> =
        s.worklogs.iter().filter(|w| w.updated_ms > since && w.updated_ms <= visible_until).collect();
    changed.sort_by_key(|w| (w.updated_ms, w.id));
    // A page never splits worklogs updated in the same millisecond, so `since = until` on the
    // next page loses none of them.
    let mut take = changed.len().min(size);
    while take > 0 && take < changed.len() && changed[take].updated_ms == changed[take - 1].updated_ms {
        take += 1;
    }
    let last_page = take == changed.len();
    let until = changed[..take].last().map_or(since, |w| w.updated_ms);
    let values: Vec<Value> = changed[..take]
        .iter()
        .map(|w| {
            let props = if with_properties {
                w.properties.iter().map(|(k, v)| json!({"key": k, "value": v})).collect()
            } else {
                vec![]
            };
            json!({"worklogId": w.id, "updatedTime": w.updated_ms, "properties": props})
        })
        .collect();
    let base = base_url(&headers);
    let mut out = json!({
        "values": values, "since": since, "until": until,
        "self": format!("{base}/rest/api/3/worklog/updated?since={since}"), "lastPage": last_page,
    });
    if !last_page {
        out["nextPage"] = json!(format!("{base}/rest/api/3/worklog/updated?since={until}"));
    }
    body(StatusCode::OK, &out)
}

pub async fn list(
    State(fake): Fake,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    bytes: Bytes,
) -> Response {
    let run = || -> Result<Response, JiraError> {
        let v: Value = parse_body(&bytes)?;
        let ids: Vec<u64> = v["ids"]
            .as_array()
            .ok_or_else(|| JiraError::bad_request("ids must be an array of worklog ids"))?
            .iter()
            .filter_map(|id| id.as_u64().or_else(|| id.as_str().and_then(|s| s.parse().ok())))
            .collect();
        if ids.len() > LIST_MAX_IDS {
            return Err(JiraError::bad_request(format!(
                "The number of worklog IDs must not exceed {LIST_MAX_IDS}."
            )));
        }
        let base = base_url(&headers);
        let with_properties = expands_properties(&q);
        let s = fake.state();
        let found: Vec<Value> = s
            .worklogs
            .iter()
            .filter(|w| ids.contains(&w.id))
            .map(|w| if with_properties { w.json_with_properties(&base) } else { w.json(&base) })
            .collect();
        Ok(body(StatusCode::OK, &Value::Array(found)))
    };
    run().unwrap_or_else(IntoResponse::into_response)
}
