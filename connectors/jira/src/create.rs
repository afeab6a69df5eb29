//! Action `create-issue`.

use qiao_sdk::{ActionOutput, Error, InvokeRequest, Result, Value, json};
use serde::Deserialize;
use serde_json::Map;

use crate::api::Jira;
use crate::config::Config;
use crate::search::{is_project_key, search_page};
use crate::{adf, idempotency};

const OP: &str = "create-issue";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    project: String,
    issuetype: String,
    summary: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    assignee: Option<String>,
    #[serde(default)]
    fields: Map<String, Value>,
}

pub fn invoke(req: InvokeRequest<'_>) -> Result<ActionOutput> {
    let config = Config::load(req.config)?;
    let input: Input = req.input()?;
    if !is_project_key(&input.project) {
        return Err(Error::invalid_input(format!(
            "input.project: {:?} is not a Jira project key (like \"ERP\")",
            input.project
        )));
    }
    if let Some(bad) = input.labels.iter().find(|l| l.is_empty() || l.contains(char::is_whitespace)) {
        return Err(Error::invalid_input(format!(
            "input.labels: {bad:?} is empty or contains spaces, which Jira refuses"
        )));
    }
    if let Some(done) = idempotency::remembered(OP, req.idempotency_key) {
        return Ok(ActionOutput::new(json!({"created": false, "issue": done})));
    }
    let jira = Jira::new(&config);
    let tag = idempotency::tag(req.idempotency_key);
    // A retry after a lost answer: the first attempt's issue carries the tag.
    let jql = format!("project = {} AND labels = \"{tag}\"", input.project);
    let found = search_page(&jira, &jql, &["summary".to_string()], 1, None)?;
    if let Some(issue) = found.issues.first() {
        let out = json!({"id": issue["id"], "key": issue["key"], "self": issue["self"]});
        idempotency::remember(OP, req.idempotency_key, &out)?;
        return Ok(ActionOutput::new(json!({"created": false, "issue": out})));
    }
    let mut labels = input.labels;
    labels.push(tag);
    let mut fields = Map::new();
    fields.insert("project".into(), json!({"key": input.project}));
    fields.insert("issuetype".into(), json!({"name": input.issuetype}));
    fields.insert("summary".into(), json!(input.summary));
    if let Some(d) = &input.description {
        fields.insert("description".into(), adf::from_text(d));
    }
    fields.insert("labels".into(), json!(labels));
    if let Some(a) = &input.assignee {
        fields.insert("assignee".into(), json!({"accountId": a}));
    }
    for (k, v) in input.fields {
        fields.insert(k, v);
    }
    let body = json!({"fields": fields, "properties": [idempotency::property(req.idempotency_key)]});
    let created = jira.json(jira.post("/rest/api/3/issue", &body))?;
    let out = json!({"id": created["id"], "key": created["key"], "self": created["self"]});
    idempotency::remember(OP, req.idempotency_key, &out)?;
    Ok(ActionOutput::new(json!({"created": true, "issue": out})))
}
