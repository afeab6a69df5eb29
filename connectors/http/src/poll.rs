//! Trigger `poll-json`: pages through a JSON list, one page per `poll`, with an optional
//! `since` watermark that advances after the last page of each round.

use qiao_sdk::http::{Request, Response};
use qiao_sdk::{Batch, Error, PollRequest, Result, SourceRecord, Value};
use serde::Deserialize;
use serde_json::Map;

use crate::config::Config;
use crate::cursor::{Cursor, PageState, later_of, track_max};
use crate::link_header::next_link;
use crate::urls::resolve_reference;
use crate::values::{header_pairs, kind, lookup, query_pairs, scalar_text};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    url: String,
    #[serde(default)]
    query: Map<String, Value>,
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    records_path: Option<String>,
    #[serde(default)]
    id_field: Option<String>,
    #[serde(default)]
    pagination: Pagination,
    #[serde(default)]
    since: Option<Since>,
}

#[derive(Deserialize, Default)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
enum Pagination {
    #[default]
    None,
    Page {
        #[serde(default = "default_page_param")]
        param: String,
        #[serde(default = "default_page_start")]
        start: u64,
        #[serde(default)]
        size_param: Option<String>,
        #[serde(default)]
        size: Option<u64>,
    },
    Offset {
        #[serde(default = "default_offset_param")]
        param: String,
        #[serde(default = "default_limit_param")]
        limit_param: String,
        #[serde(default = "default_limit")]
        limit: u64,
    },
    NextLink {
        path: String,
    },
    LinkHeader,
    Token {
        token_path: String,
        param: String,
    },
}

fn default_page_param() -> String {
    "page".into()
}
fn default_page_start() -> u64 {
    1
}
fn default_offset_param() -> String {
    "offset".into()
}
fn default_limit_param() -> String {
    "limit".into()
}
fn default_limit() -> u64 {
    100
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Since {
    field: String,
    param: String,
    #[serde(default)]
    initial: Option<Value>,
}

impl Params {
    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut non_empty = |field: &str, value: &str| {
            if value.is_empty() {
                problems.push(format!("params.{field}: must not be empty"));
            }
        };
        non_empty("url", &self.url);
        match &self.pagination {
            Pagination::None | Pagination::LinkHeader => {}
            Pagination::Page { param, size_param, .. } => {
                non_empty("pagination.param", param);
                if let Some(size_param) = size_param {
                    non_empty("pagination.size_param", size_param);
                }
            }
            Pagination::Offset { param, limit_param, .. } => {
                non_empty("pagination.param", param);
                non_empty("pagination.limit_param", limit_param);
            }
            Pagination::NextLink { path } => non_empty("pagination.path", path),
            Pagination::Token { token_path, param } => {
                non_empty("pagination.token_path", token_path);
                non_empty("pagination.param", param);
            }
        }
        if let Some(since) = &self.since {
            non_empty("since.field", &since.field);
            non_empty("since.param", &since.param);
        }
        match &self.pagination {
            Pagination::Page { size_param: Some(_), size: None, .. } => {
                problems.push("params.pagination.size_param: needs pagination.size".into());
            }
            Pagination::Page { size: Some(0), .. } => {
                problems.push("params.pagination.size: must be at least 1".into())
            }
            Pagination::Offset { limit: 0, .. } => {
                problems.push("params.pagination.limit: must be at least 1".into())
            }
            _ => {}
        }
        if let Some(initial) = self.since.as_ref().and_then(|s| s.initial.as_ref())
            && !(initial.is_string() || initial.is_number() || initial.is_null())
        {
            problems
                .push(format!("params.since.initial: must be a string or a number, got {}", kind(initial)));
        }
        problems
    }

    /// Whether a page state from the cursor belongs to this pagination mode.
    fn accepts(&self, state: &PageState) -> bool {
        matches!(
            (&self.pagination, state),
            (Pagination::Page { .. }, PageState::Page(_))
                | (Pagination::Offset { .. }, PageState::Offset(_))
                | (Pagination::NextLink { .. } | Pagination::LinkHeader, PageState::Url(_))
                | (Pagination::Token { .. }, PageState::Token(_))
        )
    }
}

/// Runs the `poll-json` trigger: fetches one page.
pub(crate) fn run(req: PollRequest<'_>) -> Result<Batch> {
    let config = Config::load(req.config)?;
    let params: Params = req.params()?;
    let problems = params.problems();
    if !problems.is_empty() {
        return Err(Error::config(problems.join("; ")));
    }
    let cursor = Cursor::parse(req.cursor)?;

    let since = params.since.as_ref().and_then(|s| cursor.since.clone().or_else(|| s.initial.clone()));
    let since = since.filter(|v| !v.is_null());
    let state = cursor.next.filter(|state| params.accepts(state));
    // A page state continues the round; without one a new round starts and forgets max_seen.
    let mut max_seen = if state.is_some() { cursor.max_seen } else { None };

    let request = build(&config, &params, since.as_ref(), state.as_ref())?;
    let url = request.url().to_owned();
    let response = request.send()?.error_for_status()?;
    let body: Value = response.json()?;
    let records = records(&body, params.records_path.as_deref().unwrap_or_default())?;

    let since_field = params.since.as_ref().map(|s| s.field.as_str());
    let id_field = params.id_field.as_deref().filter(|f| !f.is_empty());
    let mut out = Vec::with_capacity(records.len());
    for record in records {
        if let Some(value) = since_field.and_then(|field| lookup(record, field)) {
            track_max(&mut max_seen, value);
        }
        let id = id_field.and_then(|field| lookup(record, field)).and_then(record_id);
        out.push(SourceRecord { id, data: record.clone() });
    }

    let next = next_page(&params, state.as_ref(), &url, &response, &body, out.len());
    let more = next.is_some();
    let cursor = match next {
        Some(next) => Cursor { since, max_seen, next: Some(next) },
        None => Cursor { since: later_of(since, max_seen), max_seen: None, next: None },
    };
    qiao_sdk::debug!(
        "poll-json: {} records from {}; more: {more}",
        out.len(),
        url.split('?').next().unwrap_or_default()
    );
    Ok(Batch { records: out, next_cursor: Some(cursor.to_text()), more })
}

fn build(
    config: &Config,
    params: &Params,
    since: Option<&Value>,
    state: Option<&PageState>,
) -> Result<Request> {
    let url = match state {
        Some(PageState::Url(url)) => url.clone(),
        _ => config.resolve_url(&params.url).map_err(Error::config)?,
    };
    let mut pairs = Vec::new();
    if !matches!(state, Some(PageState::Url(_))) {
        pairs = query_pairs(&params.query, "params.query").map_err(Error::config)?;
        if let (Some(since_params), Some(value)) = (&params.since, since.and_then(scalar_text)) {
            pairs.push((since_params.param.clone(), value));
        }
        match (&params.pagination, state) {
            (Pagination::Page { param, start, size_param, size }, state) => {
                let page = match state {
                    Some(PageState::Page(n)) => *n,
                    _ => *start,
                };
                pairs.push((param.clone(), page.to_string()));
                if let (Some(size_param), Some(size)) = (size_param, size) {
                    pairs.push((size_param.clone(), size.to_string()));
                }
            }
            (Pagination::Offset { param, limit_param, limit }, state) => {
                let offset = match state {
                    Some(PageState::Offset(n)) => *n,
                    _ => 0,
                };
                pairs.push((param.clone(), offset.to_string()));
                pairs.push((limit_param.clone(), limit.to_string()));
            }
            (Pagination::Token { param, .. }, Some(PageState::Token(token))) => {
                pairs.push((param.clone(), token.clone()));
            }
            _ => {}
        }
    }

    let mut headers = config.headers();
    for (name, value) in header_pairs(&params.headers, "params.headers").map_err(Error::config)? {
        headers.set(&name, &value);
    }
    headers.set_default("accept", "application/json");

    let mut request = Request::get(url).query_pairs(pairs);
    for (name, value) in headers.into_vec() {
        request = request.header(name, value);
    }
    if let Some(ms) = config.timeout_ms {
        request = request.timeout_ms(ms);
    }
    Ok(request)
}

/// The records array at `path` in the body; anything else is a `permanent` error.
fn records<'a>(body: &'a Value, path: &str) -> Result<&'a Vec<Value>> {
    match lookup(body, path) {
        Some(Value::Array(items)) => Ok(items),
        Some(other) if path.is_empty() => Err(Error::permanent(format!(
            "the response body is {}, expected an array of records (set records_path to where the array is)",
            kind(other)
        ))),
        Some(other) => Err(Error::permanent(format!(
            "records_path {path:?} is {} in the response, expected an array",
            kind(other)
        ))),
        None => Err(Error::permanent(format!("records_path {path:?} was not found in the response"))),
    }
}

/// A record id from a string (non-empty) or a number.
fn record_id(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Where the next page starts, or `None` after the last page of the round.
fn next_page(
    params: &Params,
    state: Option<&PageState>,
    url: &str,
    response: &Response,
    body: &Value,
    count: usize,
) -> Option<PageState> {
    let count = u64::try_from(count).unwrap_or(u64::MAX);
    match &params.pagination {
        Pagination::None => None,
        Pagination::Page { start, size, .. } => {
            let page = match state {
                Some(PageState::Page(n)) => *n,
                _ => *start,
            };
            let short = size.is_some_and(|size| count < size);
            (count > 0 && !short).then(|| PageState::Page(page.saturating_add(1)))
        }
        Pagination::Offset { limit, .. } => {
            let offset = match state {
                Some(PageState::Offset(n)) => *n,
                _ => 0,
            };
            (count >= *limit).then(|| PageState::Offset(offset.saturating_add(count)))
        }
        Pagination::NextLink { path } => {
            let link = lookup(body, path).and_then(Value::as_str).filter(|l| !l.trim().is_empty())?;
            follow(url, link)
        }
        Pagination::LinkHeader => follow(url, &next_link(response.header_all("link"))?),
        Pagination::Token { token_path, .. } => {
            let token = lookup(body, token_path).and_then(scalar_text).filter(|t| !t.is_empty())?;
            if matches!(state, Some(PageState::Token(previous)) if *previous == token) {
                qiao_sdk::warn!("poll-json: the API returned the token it was sent; stopping this round");
                return None;
            }
            Some(PageState::Token(token))
        }
    }
}

/// The next URL, unless it is the URL just fetched (a loop).
fn follow(current: &str, link: &str) -> Option<PageState> {
    let next = resolve_reference(current, link);
    if next == current {
        qiao_sdk::warn!("poll-json: the next link points at the page just fetched; stopping this round");
        return None;
    }
    Some(PageState::Url(next))
}

#[cfg(test)]
#[path = "poll_tests.rs"]
mod tests;
