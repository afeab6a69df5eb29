//! `GET`/`POST /rest/api/3/search/jql` (enhanced search, `nextPageToken` paging) and the 410 of
//! the removed `/rest/api/{2,3}/search`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Fake, base_url, field_list, parse_body};
use crate::errors::{JiraError, SEARCH_REMOVED, body};
use crate::jql;
use crate::model::FieldSelection;

/// Largest `maxResults` honoured.
const MAX_RESULTS: usize = 5000;
/// `maxResults` when not given.
const DEFAULT_MAX_RESULTS: usize = 50;
/// Page tokens expire after seven days.
const TOKEN_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

/// The removed legacy search.
pub async fn removed() -> Response {
    JiraError::message(StatusCode::GONE, SEARCH_REMOVED).into_response()
}

struct Params {
    jql: Option<String>,
    fields: Option<Vec<String>>,
    max_results: Option<usize>,
    next_page_token: Option<String>,
}

pub async fn get_jql(
    State(fake): Fake,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let max_results = match q.get("maxResults").map(|m| m.parse::<usize>()) {
        Some(Err(_)) => return JiraError::bad_request("maxResults must be a number").into_response(),
        Some(Ok(m)) => Some(m),
        None => None,
    };
    let params = Params {
        jql: q.get("jql").cloned(),
        fields: field_list(q.get("fields").map(|f| Value::String(f.clone())).as_ref()),
        max_results,
        next_page_token: q.get("nextPageToken").cloned(),
    };
    search(&fake, &base_url(&headers), params).unwrap_or_else(IntoResponse::into_response)
}

pub async fn post_jql(State(fake): Fake, headers: HeaderMap, bytes: Bytes) -> Response {
    let run = || {
        let v: Value = parse_body(&bytes)?;
        if v.get("expand").is_some_and(|e| !e.is_string()) {
            return Err(JiraError::bad_request("expand must be a comma-separated string"));
        }
        let max_results = match v.get("maxResults") {
            None | Some(Value::Null) => None,
            Some(m) => {
                Some(m.as_u64().ok_or_else(|| JiraError::bad_request("maxResults must be a number"))? as usize)
            }
        };
        let params = Params {
            jql: v.get("jql").and_then(Value::as_str).map(str::to_owned),
            fields: field_list(v.get("fields")),
            max_results,
            next_page_token: v.get("nextPageToken").and_then(Value::as_str).map(str::to_owned),
        };
        search(&fake, &base_url(&headers), params)
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

fn jql_hash(jql: &str) -> String {
    hex::encode(&Sha256::digest(jql.as_bytes())[..8])
}

fn search(fake: &crate::JiraFake, base: &str, p: Params) -> Result<Response, JiraError> {
    let now = fake.now_ms();
    let jql_text = p.jql.unwrap_or_default();
    let query = jql::parse(&jql_text, now).map_err(JiraError::bad_request)?;
    let offset = match &p.next_page_token {
        None => 0,
        Some(token) => read_token(token, &jql_text, now)
            .ok_or_else(|| JiraError::bad_request("The provided next page token is invalid or expired."))?,
    };
    let max = p.max_results.unwrap_or(DEFAULT_MAX_RESULTS).clamp(1, MAX_RESULTS);
    let select = FieldSelection::parse(p.fields, false);
    let s = fake.state();
    let mut hits: Vec<_> = s.issues.iter().filter(|i| query.matches(i)).collect();
    query.sort(&mut hits);
    let page: Vec<Value> =
        hits.iter().skip(offset).take(max).map(|i| i.json(base, &s.worklogs_of(i.id), &select)).collect();
    let end = offset + page.len();
    let is_last = end >= hits.len();
    let mut out = json!({"issues": page, "isLast": is_last});
    if !is_last {
        let token = json!({"o": end, "q": jql_hash(&jql_text), "t": now}).to_string();
        out["nextPageToken"] = json!(URL_SAFE_NO_PAD.encode(token));
    }
    Ok(body(StatusCode::OK, &out))
}

/// The offset a token carries, if it belongs to `jql` and has not expired.
fn read_token(token: &str, jql: &str, now: i64) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    let fresh = now - v["t"].as_i64()? < TOKEN_TTL_MS;
    (fresh && v["q"] == jql_hash(jql)).then_some(v["o"].as_u64()? as usize)
}
