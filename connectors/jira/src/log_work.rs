//! Action `add-worklog`: logs time on an issue, tagged with the idempotency key as a worklog
//! property; a retry finds the tagged worklog (same `started`) instead of logging twice.

use qiao_sdk::{ActionOutput, Error, InvokeRequest, Result, Value, clock, json};
use serde::Deserialize;

use crate::api::{Jira, segment};
use crate::config::Config;
use crate::time::{format_jira, parse_datetime};
use crate::worklogs::normalise;
use crate::{adf, idempotency};

const OP: &str = "add-worklog";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    issue: String,
    seconds: u64,
    /// When the work started: ISO 8601 (an offset, or local to the configured zone) or epoch ms.
    #[serde(default)]
    started: Option<Value>,
    #[serde(default)]
    comment: Option<String>,
}

pub fn invoke(req: InvokeRequest<'_>) -> Result<ActionOutput> {
    let config = Config::load(req.config)?;
    let input: Input = req.input()?;
    let zone = config.zone()?;
    if input.seconds < 60 {
        return Err(Error::invalid_input("input.seconds: Jira logs whole minutes; give at least 60"));
    }
    let started_ms = match &input.started {
        None | Some(Value::Null) => clock::now_ms() as i64,
        Some(Value::Number(n)) => {
            n.as_i64().ok_or_else(|| Error::invalid_input("input.started: not epoch milliseconds"))?
        }
        Some(Value::String(s)) => parse_datetime(s, zone.offset_min).ok_or_else(|| {
            Error::invalid_input(format!("input.started: {s:?} is not an ISO 8601 datetime"))
        })?,
        Some(other) => return Err(Error::invalid_input(format!("input.started: {other} is not a datetime"))),
    };
    if let Some(mut done) = idempotency::remembered(OP, req.idempotency_key) {
        done["created"] = json!(false);
        return Ok(ActionOutput::new(done));
    }
    let jira = Jira::new(&config);
    let path = format!("/rest/api/3/issue/{}/worklog", segment(&input.issue));
    let around = jira.json(
        jira.get(&path)
            .query("startedAfter", (started_ms - 60_000).to_string())
            .query("startedBefore", (started_ms + 60_000).to_string())
            .query("expand", "properties"),
    )?;
    let previous = around["worklogs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|w| idempotency::carries(w, req.idempotency_key));
    let (worklog, created) = match previous {
        Some(w) => (w.clone(), false),
        None => {
            let mut body = json!({
                "started": format_jira(started_ms, zone.offset_min),
                "timeSpentSeconds": input.seconds,
                "properties": [idempotency::property(req.idempotency_key)],
            });
            if let Some(c) = input.comment.as_deref().filter(|c| !c.trim().is_empty()) {
                body["comment"] = adf::from_text(c);
            }
            let req_ = jira.post(&path, &body).query("adjustEstimate", "auto").query("notifyUsers", "false");
            (jira.json(req_)?, true)
        }
    };
    let mut out = normalise(&worklog, None, zone.offset_min);
    out["issueKey"] = json!(input.issue);
    out["created"] = json!(created);
    if let Some(o) = out.as_object_mut() {
        o.remove("commentAdf");
    }
    idempotency::remember(OP, req.idempotency_key, &out)?;
    Ok(ActionOutput::new(out))
}
