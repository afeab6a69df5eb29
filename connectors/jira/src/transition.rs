//! Action `transition-issue`: move an issue to a status, by target status name or transition
//! id. An issue already in the target status succeeds without a write, so retries are safe.

use qiao_sdk::{ActionOutput, Error, InvokeRequest, Result, Value, json};
use serde::Deserialize;

use crate::api::{Jira, segment};
use crate::config::Config;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    issue: String,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    transition: Option<Value>,
}

pub fn invoke(req: InvokeRequest<'_>) -> Result<ActionOutput> {
    let config = Config::load(req.config)?;
    let input: Input = req.input()?;
    let transition_id = match &input.transition {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(Error::invalid_input(format!("input.transition: {other} is not a transition id")));
        }
    };
    if input.to.is_some() == transition_id.is_some() {
        return Err(Error::invalid_input(
            "input: give exactly one of `to` (a status name) or `transition` (an id)",
        ));
    }
    let jira = Jira::new(&config);
    let issue_path = format!("/rest/api/3/issue/{}", segment(&input.issue));
    let issue = jira.json(jira.get(&issue_path).query("fields", "status"))?;
    let current = issue["fields"]["status"]["name"].as_str().unwrap_or_default().to_string();
    let done = |to: &str, moved: bool| {
        ActionOutput::new(json!({"issue": issue["key"], "from": current, "to": to, "transitioned": moved}))
    };
    if let Some(to) = &input.to
        && to.eq_ignore_ascii_case(&current)
    {
        return Ok(done(&current, false));
    }
    let list = jira.json(
        jira.get(&format!("{issue_path}/transitions")).query("includeUnavailableTransitions", "true"),
    )?;
    let transitions = list["transitions"].as_array().cloned().unwrap_or_default();
    let to_name = |t: &Value| t["to"]["name"].as_str().unwrap_or_default().to_string();
    let available = |t: &&Value| t["isAvailable"].as_bool().unwrap_or(true);
    let chosen = match (&transition_id, &input.to) {
        (Some(id), _) => transitions.iter().find(|t| t["id"] == id.as_str()),
        (None, Some(to)) => {
            transitions.iter().filter(available).find(|t| to_name(t).eq_ignore_ascii_case(to)).or_else(|| {
                transitions
                    .iter()
                    .filter(available)
                    .find(|t| t["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(to)))
            })
        }
        (None, None) => None,
    };
    let Some(chosen) = chosen else {
        let names: Vec<String> = transitions
            .iter()
            .filter(available)
            .map(|t| format!("{} (id {})", to_name(t), t["id"].as_str().unwrap_or("?")))
            .collect();
        let wanted = transition_id.map(|id| format!("transition {id}")).or(input.to).unwrap_or_default();
        return Err(Error::invalid_input(format!(
            "issue {} (status {current:?}) has no {wanted:?}; available: {}",
            input.issue,
            names.join(", ")
        )));
    };
    let target = to_name(chosen);
    if target.eq_ignore_ascii_case(&current) {
        return Ok(done(&current, false));
    }
    if !available(&chosen) {
        return Err(Error::invalid_input(format!(
            "transition {} to {target:?} is not available for {} in status {current:?}",
            chosen["id"], input.issue
        )));
    }
    jira.send(jira.post(&format!("{issue_path}/transitions"), &json!({"transition": {"id": chosen["id"]}})))?;
    Ok(done(&target, true))
}
