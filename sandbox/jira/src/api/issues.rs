//! Issues: get, create, transitions and comments. Every write moves the issue's `updated` and
//! is recorded for the snapshot.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use qiao_sandbox_kit::seed::{JIRA_STATUSES, PROJECTS};
use serde_json::{Map, Value, json};

use super::{Fake, base_url, field_list, parse_body};
use crate::errors::{JiraError, body};
use crate::model::{Comment, FieldSelection, ISSUE_TYPES, Issue, User, adf_text, is_adf, status_json};
use crate::time::format_jira;

/// The id of the transition into the status at `index` of [`JIRA_STATUSES`]: 11, 21, 31, 41.
fn transition_id(index: usize) -> String {
    ((index + 1) * 10 + 1).to_string()
}

const NOT_ADF: &str = "Operation value must be an Atlassian Document (see the Atlassian Document Format)";

pub async fn get_issue(
    State(fake): Fake,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let select =
        FieldSelection::parse(field_list(q.get("fields").map(|f| Value::String(f.clone())).as_ref()), true);
    let s = fake.state();
    match s.issue(&key) {
        Some(issue) => {
            body(StatusCode::OK, &issue.json(&base_url(&headers), &s.worklogs_of(issue.id), &select))
        }
        None => JiraError::issue_not_found().into_response(),
    }
}

/// Properties given on create (`[{"key": k, "value": v}]`).
fn properties(v: Option<&Value>) -> Result<BTreeMap<String, Value>, JiraError> {
    let mut out = BTreeMap::new();
    for p in v.and_then(Value::as_array).into_iter().flatten() {
        let key = p["key"].as_str().filter(|k| !k.is_empty() && k.len() <= 255);
        let key = key.ok_or_else(|| {
            JiraError::bad_request("The property key must be a non-empty string of at most 255 characters.")
        })?;
        out.insert(key.to_string(), p["value"].clone());
    }
    Ok(out)
}

pub async fn create(State(fake): Fake, headers: HeaderMap, bytes: Bytes) -> Response {
    let run = || -> Result<Response, JiraError> {
        let v: Value = parse_body(&bytes)?;
        let fields = v["fields"].as_object().cloned().unwrap_or_default();
        let mut errors = Map::new();
        let mut err = |field: &str, message: &str| {
            errors.insert(field.to_string(), json!(message));
        };
        let project = fields.get("project").and_then(|p| {
            let key = p["key"].as_str();
            let id = p["id"].as_str().map(str::to_owned).or_else(|| p["id"].as_u64().map(|n| n.to_string()));
            PROJECTS.iter().enumerate().position(|(i, proj)| {
                key.is_some_and(|k| k.eq_ignore_ascii_case(proj.jira_key))
                    || id.as_deref() == Some(&(10000 + i).to_string())
            })
        });
        if project.is_none() {
            err("project", "Specify a valid project ID or key");
        }
        let issue_type = match fields.get("issuetype") {
            None => {
                err("issuetype", "Specify an issue type");
                None
            }
            Some(t) => {
                let found = ISSUE_TYPES.iter().position(|(id, name)| t["id"] == *id || t["name"] == *name);
                if found.is_none() {
                    err("issuetype", "The issue type selected is invalid.");
                }
                found
            }
        };
        let summary =
            fields.get("summary").and_then(Value::as_str).map(str::trim).unwrap_or_default().to_string();
        if summary.is_empty() {
            err("summary", "You must specify a summary of the issue.");
        } else if summary.chars().count() > 255 {
            err("summary", "Summary must be less than 255 characters.");
        }
        let description = match fields.get("description") {
            None | Some(Value::Null) => None,
            Some(d) if is_adf(d) => Some(d.clone()),
            Some(_) => {
                err("description", NOT_ADF);
                None
            }
        };
        let mut labels = Vec::new();
        match fields.get("labels") {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) => {
                for l in a {
                    match l.as_str() {
                        Some(s) if !s.is_empty() && !s.contains(' ') && s.len() <= 255 => {
                            labels.push(s.to_string())
                        }
                        _ => err(
                            "labels",
                            &format!(
                                "The label '{}' contains spaces which is invalid.",
                                l.as_str().unwrap_or_default()
                            ),
                        ),
                    }
                }
            }
            Some(_) => err("labels", "data was not an array"),
        }
        let assignee = match fields.get("assignee") {
            None | Some(Value::Null) => None,
            Some(a) => {
                let user = a["accountId"].as_str().and_then(User::by_account_id);
                if user.is_none() {
                    err("assignee", "Specified user does not exist or you do not have required permissions");
                }
                user
            }
        };
        let mut custom = Map::new();
        for (k, val) in &fields {
            match k.as_str() {
                "project" | "issuetype" | "summary" | "description" | "labels" | "assignee" | "priority" => {}
                k if k.starts_with("customfield_")
                    && k["customfield_".len()..].chars().all(|c| c.is_ascii_digit()) =>
                {
                    custom.insert(k.to_string(), val.clone());
                }
                other => err(
                    other,
                    &format!(
                        "Field '{other}' cannot be set. It is not on the appropriate screen, or unknown."
                    ),
                ),
            }
        }
        let props = properties(v.get("properties"))?;
        let (Some(project), Some(issue_type), true) = (project, issue_type, errors.is_empty()) else {
            return Err(JiraError::fields(errors));
        };
        let now = fake.now_ms();
        let mut s = fake.state();
        let id = s.next_issue_id;
        s.next_issue_id += 1;
        let issue = Issue {
            id,
            project,
            number: s.next_number(project),
            issue_type,
            summary,
            description,
            status: 0,
            assignee,
            reporter: User::ApiUser,
            labels,
            custom,
            estimate_seconds: 0,
            created_ms: now,
            updated_ms: now,
            comments: vec![],
            properties: props,
        };
        let key = issue.key();
        s.writes.created_issues.push(json!({
            "key": key, "id": id.to_string(), "project": issue.project_key(), "summary": issue.summary,
            "labels": issue.labels, "created": format_jira(now),
            "properties": issue.properties,
        }));
        s.issues.push(issue);
        let base = base_url(&headers);
        Ok(body(
            StatusCode::CREATED,
            &json!({"id": id.to_string(), "key": key, "self": format!("{base}/rest/api/3/issue/{id}")}),
        ))
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

pub async fn list_transitions(
    State(fake): Fake,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let include_unavailable = q.get("includeUnavailableTransitions").is_some_and(|v| v == "true");
    let s = fake.state();
    let Some(issue) = s.issue(&key) else {
        return JiraError::issue_not_found().into_response();
    };
    let transitions: Vec<Value> = (0..JIRA_STATUSES.len())
        .filter_map(|i| {
            let available = i != issue.status;
            (available || include_unavailable).then(|| {
                json!({"id": transition_id(i), "name": JIRA_STATUSES[i].1, "to": status_json(i),
                       "hasScreen": false, "isGlobal": true, "isInitial": false, "isAvailable": available,
                       "isConditional": false, "isLooped": false})
            })
        })
        .collect();
    body(StatusCode::OK, &json!({"expand": "transitions", "transitions": transitions}))
}

pub async fn transition(State(fake): Fake, Path(key): Path<String>, bytes: Bytes) -> Response {
    let run = || -> Result<Response, JiraError> {
        let v: Value = parse_body(&bytes)?;
        let id = v["transition"]["id"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| v["transition"]["id"].as_u64().map(|n| n.to_string()));
        let Some(id) = id else {
            return Err(JiraError::bad_request("Missing 'transition' identifier"));
        };
        let now = fake.now_ms();
        let mut s = fake.state();
        let issue = s.issue_mut(&key).ok_or_else(JiraError::issue_not_found)?;
        let target = (0..JIRA_STATUSES.len()).find(|&i| transition_id(i) == id && i != issue.status);
        let Some(target) = target else {
            return Err(JiraError::bad_request(format!("Transition id '{id}' is not valid for this issue.")));
        };
        let from = issue.status_name();
        issue.status = target;
        issue.updated_ms = now;
        let record =
            json!({"issue": issue.key(), "from": from, "to": issue.status_name(), "at": format_jira(now)});
        s.writes.transitions.push(record);
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

pub async fn list_comments(
    State(fake): Fake,
    headers: HeaderMap,
    Path(key): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let start: usize = q.get("startAt").and_then(|v| v.parse().ok()).unwrap_or(0);
    let max: usize = q.get("maxResults").and_then(|v| v.parse().ok()).unwrap_or(5000).min(5000);
    let with_properties = q.get("expand").is_some_and(|e| e.split(',').any(|x| x.trim() == "properties"));
    let newest_first = q.get("orderBy").is_some_and(|o| o == "-created");
    let s = fake.state();
    let Some(issue) = s.issue(&key) else {
        return JiraError::issue_not_found().into_response();
    };
    let base = base_url(&headers);
    let mut all: Vec<&Comment> = issue.comments.iter().collect();
    if newest_first {
        all.reverse();
    }
    let page: Vec<Value> =
        all.iter().skip(start).take(max).map(|c| c.json(&base, issue.id, with_properties)).collect();
    body(StatusCode::OK, &json!({"startAt": start, "maxResults": max, "total": all.len(), "comments": page}))
}

pub async fn add_comment(
    State(fake): Fake,
    headers: HeaderMap,
    Path(key): Path<String>,
    bytes: Bytes,
) -> Response {
    let run = || -> Result<Response, JiraError> {
        let v: Value = parse_body(&bytes)?;
        let body_doc = match v.get("body") {
            None | Some(Value::Null) => {
                return Err(JiraError::field("comment", "Comment body can not be empty!"));
            }
            Some(b) if is_adf(b) => b.clone(),
            Some(_) => return Err(JiraError::field("comment", NOT_ADF)),
        };
        let props = properties(v.get("properties"))?;
        let now = fake.now_ms();
        let mut s = fake.state();
        let id = s.next_comment_id;
        let issue = s.issue_mut(&key).ok_or_else(JiraError::issue_not_found)?;
        let comment =
            Comment { id, author: User::ApiUser, body: body_doc, created_ms: now, properties: props };
        let out = comment.json(&base_url(&headers), issue.id, false);
        let record = json!({"id": id.to_string(), "issue": issue.key(), "text": adf_text(&comment.body), "properties": comment.properties});
        issue.comments.push(comment);
        issue.updated_ms = now;
        s.next_comment_id += 1;
        s.writes.comments.push(record);
        Ok(body(StatusCode::CREATED, &out))
    };
    run().unwrap_or_else(IntoResponse::into_response)
}
