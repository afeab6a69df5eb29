//! What the fake holds: issues, comments and worklogs, and how each renders as Jira JSON.

use std::collections::BTreeMap;

use qiao_sandbox_kit::seed::{JIRA_STATUSES, PEOPLE, PROJECTS};
use serde_json::{Map, Value, json};

use crate::time::{SITE_TIME_ZONE, format_jira};

/// The API user the demo credentials belong to (the integration account, not one of the
/// seeded employees).
pub const API_USER_ACCOUNT_ID: &str = "712020:qiao-integration-bot";
/// Display name of the API user.
pub const API_USER_NAME: &str = "桥 集成账号";

/// Issue types every project has: (id, name).
pub const ISSUE_TYPES: &[(&str, &str)] = &[("10001", "任务"), ("10002", "故事"), ("10004", "缺陷")];

/// A user reference: an index into [`PEOPLE`] or the API user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum User {
    /// A seeded employee.
    Person(usize),
    /// The integration account behind the demo credentials.
    ApiUser,
}

impl User {
    /// Jira's user object.
    pub fn json(self) -> Value {
        match self {
            User::Person(i) => {
                let p = &PEOPLE[i % PEOPLE.len()];
                json!({"accountId": p.jira_account_id, "displayName": p.name, "emailAddress": p.email,
                       "active": true, "timeZone": SITE_TIME_ZONE, "accountType": "atlassian"})
            }
            User::ApiUser => json!({"accountId": API_USER_ACCOUNT_ID, "displayName": API_USER_NAME,
                                    "active": true, "timeZone": SITE_TIME_ZONE, "accountType": "atlassian"}),
        }
    }

    /// The user with `account_id`, if known.
    pub fn by_account_id(account_id: &str) -> Option<User> {
        if account_id == API_USER_ACCOUNT_ID {
            return Some(User::ApiUser);
        }
        PEOPLE.iter().position(|p| p.jira_account_id == account_id).map(User::Person)
    }
}

/// A comment on an issue.
#[derive(Clone, Debug)]
pub struct Comment {
    /// Numeric id.
    pub id: u64,
    /// Who wrote it.
    pub author: User,
    /// ADF body.
    pub body: Value,
    /// Creation time (ms).
    pub created_ms: i64,
    /// Comment properties (key → value).
    pub properties: BTreeMap<String, Value>,
}

/// An issue.
#[derive(Clone, Debug)]
pub struct Issue {
    /// Numeric id (`10042`).
    pub id: u64,
    /// Index into [`PROJECTS`].
    pub project: usize,
    /// Number within the project (`42` of `ERP-42`).
    pub number: u32,
    /// Index into [`ISSUE_TYPES`].
    pub issue_type: usize,
    /// Summary.
    pub summary: String,
    /// ADF description, if any.
    pub description: Option<Value>,
    /// Index into [`JIRA_STATUSES`].
    pub status: usize,
    /// Assignee.
    pub assignee: Option<User>,
    /// Reporter.
    pub reporter: User,
    /// Labels.
    pub labels: Vec<String>,
    /// Custom fields set at creation (`customfield_10020` → value).
    pub custom: Map<String, Value>,
    /// Original estimate in seconds.
    pub estimate_seconds: u64,
    /// Creation time (ms).
    pub created_ms: i64,
    /// Last update (ms).
    pub updated_ms: i64,
    /// Comments, oldest first.
    pub comments: Vec<Comment>,
    /// Issue properties (key → value).
    pub properties: BTreeMap<String, Value>,
}

impl Issue {
    /// `ERP-42`.
    pub fn key(&self) -> String {
        format!("{}-{}", PROJECTS[self.project].jira_key, self.number)
    }

    /// The project key.
    pub fn project_key(&self) -> &'static str {
        PROJECTS[self.project].jira_key
    }

    /// The status name.
    pub fn status_name(&self) -> &'static str {
        JIRA_STATUSES[self.status].1
    }

    /// Every field this issue has, as Jira renders them. `worklogs` are this issue's worklogs.
    pub fn all_fields(&self, base: &str, worklogs: &[&Worklog]) -> Map<String, Value> {
        let project = &PROJECTS[self.project];
        let (type_id, type_name) = ISSUE_TYPES[self.issue_type];
        let spent: u64 = worklogs.iter().map(|w| w.time_spent_seconds).sum();
        let shown: Vec<Value> = worklogs.iter().take(20).map(|w| w.json(base)).collect();
        let mut f = Map::new();
        f.insert("summary".into(), json!(self.summary));
        f.insert("status".into(), status_json(self.status));
        f.insert("assignee".into(), self.assignee.map_or(Value::Null, User::json));
        f.insert("reporter".into(), self.reporter.json());
        f.insert("creator".into(), self.reporter.json());
        f.insert("created".into(), json!(format_jira(self.created_ms)));
        f.insert("updated".into(), json!(format_jira(self.updated_ms)));
        f.insert(
            "project".into(),
            json!({"id": (10000 + self.project).to_string(), "key": project.jira_key, "name": project.name,
                   "projectTypeKey": "software", "self": format!("{base}/rest/api/3/project/{}", 10000 + self.project)}),
        );
        f.insert("issuetype".into(), json!({"id": type_id, "name": type_name, "subtask": false}));
        f.insert("priority".into(), json!({"id": "3", "name": "Medium"}));
        f.insert("labels".into(), json!(self.labels));
        f.insert("description".into(), self.description.clone().unwrap_or(Value::Null));
        f.insert(
            "timetracking".into(),
            json!({"originalEstimateSeconds": self.estimate_seconds, "timeSpentSeconds": spent,
                   "remainingEstimateSeconds": self.estimate_seconds.saturating_sub(spent)}),
        );
        f.insert(
            "worklog".into(),
            json!({"startAt": 0, "maxResults": 20, "total": worklogs.len(), "worklogs": shown}),
        );
        let comments: Vec<Value> = self.comments.iter().map(|c| c.json(base, self.id, false)).collect();
        f.insert(
            "comment".into(),
            json!({"startAt": 0, "maxResults": comments.len(), "total": comments.len(), "comments": comments}),
        );
        for (k, v) in &self.custom {
            f.insert(k.clone(), v.clone());
        }
        f
    }

    /// The issue object with the fields `select` picks.
    pub fn json(&self, base: &str, worklogs: &[&Worklog], select: &FieldSelection) -> Value {
        let all = self.all_fields(base, worklogs);
        let mut out =
            json!({"id": self.id.to_string(), "self": format!("{base}/rest/api/3/issue/{}", self.id)});
        if select.is_ids_only() {
            return json!({"id": self.id.to_string()});
        }
        out["key"] = json!(self.key());
        out["fields"] = Value::Object(select.pick(all));
        out
    }
}

/// Jira's status object for the status at `index` in [`JIRA_STATUSES`].
pub fn status_json(index: usize) -> Value {
    let (id, name, category) = JIRA_STATUSES[index];
    let (cat_id, cat_name, color) = match category {
        "new" => (2, "To Do", "blue-gray"),
        "done" => (3, "Done", "green"),
        _ => (4, "In Progress", "yellow"),
    };
    json!({"id": id, "name": name,
           "statusCategory": {"id": cat_id, "key": category, "name": cat_name, "colorName": color}})
}

/// Which fields a search or a get returns.
#[derive(Clone, Debug)]
pub enum FieldSelection {
    /// No `fields` given to the enhanced search: ids only.
    IdsOnly,
    /// `*all` / `*navigable` (minus any `-field`).
    All(Vec<String>),
    /// The named fields.
    Named(Vec<String>),
}

impl FieldSelection {
    /// From the `fields` parameter; `None` means it was not given.
    pub fn parse(fields: Option<Vec<String>>, default_all: bool) -> Self {
        let Some(fields) = fields.filter(|f| !f.is_empty()) else {
            return if default_all { FieldSelection::All(vec![]) } else { FieldSelection::IdsOnly };
        };
        let excluded: Vec<String> =
            fields.iter().filter_map(|f| f.strip_prefix('-')).map(str::to_owned).collect();
        if fields.iter().any(|f| f == "*all" || f == "*navigable") {
            FieldSelection::All(excluded)
        } else {
            FieldSelection::Named(fields.into_iter().filter(|f| !f.starts_with('-')).collect())
        }
    }

    fn is_ids_only(&self) -> bool {
        matches!(self, FieldSelection::IdsOnly)
    }

    fn pick(&self, mut all: Map<String, Value>) -> Map<String, Value> {
        match self {
            FieldSelection::IdsOnly => Map::new(),
            FieldSelection::All(excluded) => {
                for e in excluded {
                    all.remove(e);
                }
                all
            }
            FieldSelection::Named(names) => {
                names.iter().filter_map(|n| all.remove(n).map(|v| (n.clone(), v))).collect()
            }
        }
    }
}

impl Comment {
    /// Jira's comment object.
    pub fn json(&self, base: &str, issue_id: u64, with_properties: bool) -> Value {
        let mut c = json!({
            "self": format!("{base}/rest/api/3/issue/{issue_id}/comment/{}", self.id),
            "id": self.id.to_string(),
            "author": self.author.json(),
            "updateAuthor": self.author.json(),
            "body": self.body,
            "created": format_jira(self.created_ms),
            "updated": format_jira(self.created_ms),
            "jsdPublic": true,
        });
        if with_properties {
            c["properties"] = properties_json(&self.properties);
        }
        c
    }
}

/// A worklog.
#[derive(Clone, Debug)]
pub struct Worklog {
    /// Numeric id.
    pub id: u64,
    /// The issue's numeric id.
    pub issue_id: u64,
    /// Who logged it.
    pub author: User,
    /// ADF comment, if any.
    pub comment: Option<Value>,
    /// When the work started (ms).
    pub started_ms: i64,
    /// Seconds worked.
    pub time_spent_seconds: u64,
    /// Creation time (ms).
    pub created_ms: i64,
    /// Last update (ms).
    pub updated_ms: i64,
    /// Worklog properties (key → value).
    pub properties: BTreeMap<String, Value>,
}

impl Worklog {
    /// Jira's worklog object.
    pub fn json(&self, base: &str) -> Value {
        let mut w = json!({
            "self": format!("{base}/rest/api/3/issue/{}/worklog/{}", self.issue_id, self.id),
            "id": self.id.to_string(),
            "issueId": self.issue_id.to_string(),
            "author": self.author.json(),
            "updateAuthor": self.author.json(),
            "created": format_jira(self.created_ms),
            "updated": format_jira(self.updated_ms),
            "started": format_jira(self.started_ms),
            "timeSpent": time_spent_text(self.time_spent_seconds),
            "timeSpentSeconds": self.time_spent_seconds,
        });
        if let Some(c) = &self.comment {
            w["comment"] = c.clone();
        }
        w
    }

    /// The worklog object with its properties (`expand=properties`).
    pub fn json_with_properties(&self, base: &str) -> Value {
        let mut w = self.json(base);
        w["properties"] = properties_json(&self.properties);
        w
    }
}

fn properties_json(props: &BTreeMap<String, Value>) -> Value {
    Value::Array(props.iter().map(|(k, v)| json!({"key": k, "value": v})).collect())
}

/// `7200` → `2h`, `9000` → `2h 30m` (Jira's 8-hour day, 5-day week).
pub fn time_spent_text(secs: u64) -> String {
    let mut rest = secs / 60;
    let mut parts = Vec::new();
    for (unit, minutes) in [("w", 5 * 8 * 60), ("d", 8 * 60), ("h", 60), ("m", 1)] {
        if rest >= minutes {
            parts.push(format!("{}{unit}", rest / minutes));
            rest %= minutes;
        }
    }
    if parts.is_empty() { "0m".into() } else { parts.join(" ") }
}

/// Parses Jira's duration text (`1d 2h 30m`, `45m`, `1w`) into seconds.
pub fn parse_time_spent(text: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut any = false;
    for part in text.split_whitespace() {
        let (num, unit) = part.split_at(part.len().checked_sub(1)?);
        let n: u64 = num.parse().ok()?;
        total += n * match unit {
            "w" => 5 * 8 * 3600,
            "d" => 8 * 3600,
            "h" => 3600,
            "m" => 60,
            _ => return None,
        };
        any = true;
    }
    any.then_some(total)
}

/// The plain text of an ADF document (paragraphs joined with newlines), for snapshots.
pub fn adf_text(doc: &Value) -> String {
    fn walk(node: &Value, out: &mut String) {
        match node["type"].as_str() {
            Some("text") => out.push_str(node["text"].as_str().unwrap_or_default()),
            Some("hardBreak") => out.push('\n'),
            _ => {
                for child in node["content"].as_array().into_iter().flatten() {
                    walk(child, out);
                }
                if node["type"] == "paragraph" {
                    out.push('\n');
                }
            }
        }
    }
    let mut out = String::new();
    walk(doc, &mut out);
    out.trim_end_matches('\n').to_owned()
}

/// Whether `v` looks like an ADF document (`{"type":"doc","version":1,"content":[...]}`).
pub fn is_adf(v: &Value) -> bool {
    v["type"] == "doc" && v["version"] == 1 && v["content"].is_array()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        assert_eq!(time_spent_text(7200), "2h");
        assert_eq!(time_spent_text(9000), "2h 30m");
        assert_eq!(time_spent_text(8 * 3600 + 60), "1d 1m");
        assert_eq!(parse_time_spent("1d 2h 30m"), Some(8 * 3600 + 2 * 3600 + 1800));
        assert_eq!(parse_time_spent("2x"), None);
        assert_eq!(parse_time_spent(""), None);
    }

    #[test]
    fn adf_text_reads_paragraphs() {
        let doc = json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": "第一行"}, {"type": "hardBreak"}, {"type": "text", "text": "b"}]},
            {"type": "paragraph", "content": [{"type": "text", "text": "二"}]}]});
        assert!(is_adf(&doc));
        assert_eq!(adf_text(&doc), "第一行\nb\n二");
        assert!(!is_adf(&json!("plain")));
    }
}
