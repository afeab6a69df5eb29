//! The trigger `entities-changed`: entities whose change timestamp moved since the last round,
//! oldest first, one server page per poll.
//!
//! A round asks for `changed ge <since>` (plus the flow's extra filter), ordered by the change
//! timestamp and then the key, and follows `__next` / `@odata.nextLink` page by page. The
//! watermark moves only on the last page of a round, to the newest change time seen; the keys
//! seen at exactly that instant are kept, so the next round (which asks with `ge`) skips them
//! instead of emitting them again. Record id: `<key>@<change time>`.

use qiao_sdk::{Batch, Error, PollRequest, Result, SourceRecord, Value};
use serde::{Deserialize, Serialize};

use crate::client::Service;
use crate::config::Config;
use crate::keys::{key_fields, key_text};
use crate::values::{iso, normalize, timestamp_ms};

/// A string or a list of strings (`"A,B"` or `["A", "B"]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Names {
    /// Comma-separated.
    One(String),
    /// A list.
    Many(Vec<String>),
}

impl Names {
    /// The names.
    pub fn list(&self) -> Vec<String> {
        match self {
            Names::One(s) => s.split(',').map(|n| n.trim().to_string()).filter(|n| !n.is_empty()).collect(),
            Names::Many(v) => v.clone(),
        }
    }
}

fn default_changed() -> String {
    "LastChangeDateTime".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    service: String,
    entity_set: String,
    #[serde(default = "default_changed")]
    changed_field: String,
    #[serde(default)]
    changed_type: Option<String>,
    #[serde(default)]
    version: Option<u8>,
    #[serde(default)]
    select: Option<Names>,
    #[serde(default)]
    filter: Option<String>,
    #[serde(default)]
    key_fields: Vec<String>,
    #[serde(default)]
    numbers: Vec<String>,
    #[serde(default)]
    initial: Option<String>,
}

/// The trigger's cursor (JSON text, opaque to the engine).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Cursor {
    /// The watermark: change time the round asks `ge` for.
    pub since: String,
    /// Keys already emitted with a change time equal to `since`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub seen: Vec<String>,
    /// The next page of the current round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Newest change time seen so far in the current round.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<String>,
    /// Keys seen at `max` in the current round.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub max_keys: Vec<String>,
}

fn literal(ms: i64, v4: bool, datetime: bool) -> String {
    match (v4, datetime) {
        (true, _) => iso(ms),
        (false, false) => format!("datetimeoffset'{}'", iso(ms)),
        (false, true) => format!("datetime'{}'", iso(ms).trim_end_matches('Z')),
    }
}

/// Runs one poll.
pub fn run(req: PollRequest<'_>) -> Result<Batch> {
    let config = Config::load(req.config)?;
    let p: Params = req.params()?;
    let version = config.version(p.version)?;
    let keys = key_fields(&p.entity_set, &p.key_fields).ok_or_else(|| {
        Error::config(format!(
            "params.key_fields: required for entity set {:?} (its keys are not known)",
            p.entity_set
        ))
    })?;
    let datetime = match p.changed_type.as_deref() {
        None | Some("datetimeoffset") => false,
        Some("datetime") => true,
        Some(other) => {
            return Err(Error::config(format!(
                "params.changed_type: datetimeoffset or datetime, got {other:?}"
            )));
        }
    };
    let svc = Service::new(&config, &p.service, version);
    let cursor = match req.cursor.map(str::trim).filter(|c| !c.is_empty()) {
        Some(text) => serde_json::from_str::<Cursor>(text)
            .map_err(|e| Error::config(format!("malformed entities-changed cursor {text:?}: {e}")))?,
        None => {
            let initial = p.initial.clone().unwrap_or_else(|| iso(0));
            let ms = crate::values::parse_iso(&initial).ok_or_else(|| {
                Error::config(format!("params.initial: not an ISO 8601 timestamp: {initial:?}"))
            })?;
            Cursor { since: iso(ms), ..Cursor::default() }
        }
    };
    let since_ms = crate::values::parse_iso(&cursor.since).ok_or_else(|| {
        Error::config(format!("malformed entities-changed cursor: since {:?}", cursor.since))
    })?;

    let request = match &cursor.next {
        Some(next) => qiao_sdk::http::Request::get(svc.resolve(next)),
        None => {
            let mut filter = format!("{} ge {}", p.changed_field, literal(since_ms, svc.v4(), datetime));
            if let Some(extra) = p.filter.as_deref().filter(|f| !f.trim().is_empty()) {
                filter = format!("({filter}) and ({extra})");
            }
            let mut order = vec![format!("{} asc", p.changed_field)];
            order.extend(keys.iter().map(|k| format!("{k} asc")));
            let mut r = qiao_sdk::http::Request::get(svc.url(&p.entity_set))
                .query("$filter", filter)
                .query("$orderby", order.join(","));
            if let Some(select) = &p.select {
                let mut names = select.list();
                for needed in std::iter::once(&p.changed_field).chain(keys.iter()) {
                    if !names.contains(needed) {
                        names.push(needed.clone());
                    }
                }
                r = r.query("$select", names.join(","));
            }
            r
        }
    };
    let body: Value = crate::errors::check(svc.send(request)?)?.json()?;
    let (rows, next) = if svc.v4() {
        (body.get("value"), body.get("@odata.nextLink"))
    } else {
        (body.pointer("/d/results"), body.pointer("/d/__next"))
    };
    let rows = rows.and_then(Value::as_array).ok_or_else(|| {
        Error::permanent(format!("{} answered without a result list", svc.url(&p.entity_set)))
    })?;
    let next = next.and_then(Value::as_str).filter(|n| !n.is_empty()).map(str::to_string);

    let mut max_ms = cursor.max.as_deref().and_then(crate::values::parse_iso);
    let mut max_keys = cursor.max_keys.clone();
    let mut records = Vec::with_capacity(rows.len());
    for row in rows {
        let Some(changed) = row.get(&p.changed_field).and_then(timestamp_ms) else {
            qiao_sdk::warn!("an entity of {} has no {} value; skipped", p.entity_set, p.changed_field);
            continue;
        };
        let key = key_text(row, &keys);
        if changed < since_ms || (changed == since_ms && cursor.seen.contains(&key)) {
            continue;
        }
        match max_ms {
            Some(m) if changed < m => {}
            Some(m) if changed == m => max_keys.push(key.clone()),
            _ => {
                max_ms = Some(changed);
                max_keys = vec![key.clone()];
            }
        }
        records.push(SourceRecord {
            id: Some(format!("{key}@{}", iso(changed))),
            data: normalize(row.clone(), &p.numbers),
        });
    }

    if let Some(next) = next {
        if cursor.next.as_deref() == Some(next.as_str()) {
            return Err(Error::permanent(format!("{} returned its own URL as the next page", p.entity_set)));
        }
        let cursor = Cursor {
            next: Some(next),
            max: max_ms.map(iso),
            max_keys,
            since: cursor.since.clone(),
            seen: cursor.seen.clone(),
        };
        return Ok(Batch { records, next_cursor: Some(to_text(&cursor)?), more: true });
    }
    let end = match max_ms {
        Some(m) if m > since_ms => Cursor { since: iso(m), seen: dedup(max_keys), ..Cursor::default() },
        Some(_) => {
            let mut seen = cursor.seen.clone();
            seen.extend(max_keys);
            Cursor { since: cursor.since.clone(), seen: dedup(seen), ..Cursor::default() }
        }
        None => Cursor { since: cursor.since.clone(), seen: cursor.seen.clone(), ..Cursor::default() },
    };
    Ok(Batch { records, next_cursor: Some(to_text(&end)?), more: false })
}

fn dedup(mut keys: Vec<String>) -> Vec<String> {
    keys.sort();
    keys.dedup();
    keys
}

fn to_text(c: &Cursor) -> Result<String> {
    serde_json::to_string(c).map_err(|e| Error::permanent(format!("cursor does not serialize: {e}")))
}
