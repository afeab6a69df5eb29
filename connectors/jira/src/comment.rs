//! Action `add-comment`: text → ADF comment, tagged with the idempotency key as a comment
//! property; a retry finds the tagged comment instead of adding a second one.

use qiao_sdk::{ActionOutput, Error, InvokeRequest, Result, Value, json};
use serde::Deserialize;

use crate::api::{Jira, segment};
use crate::config::Config;
use crate::{adf, idempotency};

const OP: &str = "add-comment";
/// Newest comments searched for the tag of a previous attempt.
const LOOKBACK: u32 = 100;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    issue: String,
    #[serde(default)]
    text: Option<String>,
    /// A ready ADF document instead of `text`.
    #[serde(default)]
    adf: Option<Value>,
}

fn output(issue: &str, c: &Value, created: bool) -> Value {
    json!({"issue": issue, "id": c["id"], "self": c["self"], "created": created})
}

pub fn invoke(req: InvokeRequest<'_>) -> Result<ActionOutput> {
    let config = Config::load(req.config)?;
    let input: Input = req.input()?;
    let body = match (&input.text, &input.adf) {
        (Some(t), None) if !t.trim().is_empty() => adf::from_text(t),
        (None, Some(doc)) if doc["type"] == "doc" => doc.clone(),
        _ => {
            return Err(Error::invalid_input(
                "input: give `text` (non-empty) or `adf` (an ADF document), not both",
            ));
        }
    };
    if let Some(mut done) = idempotency::remembered(OP, req.idempotency_key) {
        done["created"] = json!(false);
        return Ok(ActionOutput::new(done));
    }
    let jira = Jira::new(&config);
    let path = format!("/rest/api/3/issue/{}/comment", segment(&input.issue));
    let recent = jira.json(
        jira.get(&path)
            .query("orderBy", "-created")
            .query("maxResults", LOOKBACK.to_string())
            .query("expand", "properties"),
    )?;
    if let Some(c) = recent["comments"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| idempotency::carries(c, req.idempotency_key))
    {
        let out = output(&input.issue, c, false);
        idempotency::remember(OP, req.idempotency_key, &out)?;
        return Ok(ActionOutput::new(out));
    }
    let created = jira.json(
        jira.post(&path, &json!({"body": body, "properties": [idempotency::property(req.idempotency_key)]})),
    )?;
    let out = output(&input.issue, &created, true);
    idempotency::remember(OP, req.idempotency_key, &out)?;
    Ok(ActionOutput::new(out))
}
