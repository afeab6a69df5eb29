//! The REST routes, behind Basic auth.

mod issues;
mod search;
mod worklogs;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::errors::{JiraError, unauthorized};
use crate::model::User;
use crate::{DEMO_API_TOKEN, DEMO_EMAIL, JiraFake};

pub(crate) type Fake = State<Arc<JiraFake>>;

/// Every route of the fake site.
pub fn router(fake: Arc<JiraFake>) -> Router {
    Router::new()
        .route("/rest/api/3/myself", get(myself))
        .route("/rest/api/3/search/jql", get(search::get_jql).post(search::post_jql))
        .route("/rest/api/3/search", get(search::removed).post(search::removed))
        .route("/rest/api/2/search", get(search::removed).post(search::removed))
        .route("/rest/api/3/issue", post(issues::create))
        .route("/rest/api/3/issue/{key}", get(issues::get_issue))
        .route("/rest/api/3/issue/{key}/transitions", get(issues::list_transitions).post(issues::transition))
        .route("/rest/api/3/issue/{key}/comment", get(issues::list_comments).post(issues::add_comment))
        .route("/rest/api/3/issue/{key}/worklog", get(worklogs::list_of_issue).post(worklogs::add))
        .route("/rest/api/3/worklog/updated", get(worklogs::updated))
        .route("/rest/api/3/worklog/list", post(worklogs::list))
        .fallback(not_found)
        .route_layer(middleware::from_fn(basic_auth))
        .with_state(fake)
}

async fn not_found() -> Response {
    JiraError::message(axum::http::StatusCode::NOT_FOUND, "null for uri: the resource does not exist")
        .into_response()
}

async fn myself() -> Response {
    crate::errors::body(axum::http::StatusCode::OK, &User::ApiUser.json())
}

/// Refuses requests without the demo account's `Authorization: Basic base64(email:token)`.
async fn basic_auth(req: Request, next: Next) -> Response {
    let ok = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| STANDARD.decode(b64.trim()).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .is_some_and(|pair| pair == format!("{DEMO_EMAIL}:{DEMO_API_TOKEN}"));
    if ok { next.run(req).await } else { unauthorized() }
}

/// `http://<host>` as the client addressed the site, for `self` links.
pub(crate) fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("jira.sandbox");
    format!("http://{host}")
}

/// Parses a JSON request body, answering Jira's 400 when it is not JSON of the right shape.
pub(crate) fn parse_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, JiraError> {
    if bytes.is_empty() {
        return Err(JiraError::bad_request("No content to map due to end-of-input"));
    }
    serde_json::from_slice(bytes).map_err(|e| JiraError::unreadable(&e))
}

/// A comma-separated or JSON-array field list.
pub(crate) fn field_list(v: Option<&Value>) -> Option<Vec<String>> {
    match v? {
        Value::String(s) => {
            Some(s.split(',').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect())
        }
        Value::Array(a) => Some(a.iter().filter_map(Value::as_str).map(str::to_owned).collect()),
        _ => None,
    }
}
