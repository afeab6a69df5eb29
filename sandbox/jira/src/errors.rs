//! Jira's error answers: `{"errorMessages": [...], "errors": {field: message}}` with the HTTP
//! status carrying the meaning.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// What Jira answers for an issue that does not exist or cannot be seen.
pub const ISSUE_NOT_FOUND: &str = "Issue does not exist or you do not have permission to see it.";

/// The message of the 410 the removed search endpoints answer (CHANGE-2046).
pub const SEARCH_REMOVED: &str = "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046";

/// The body of a 401 for missing or refused credentials (plain text, as Jira's REST layer
/// answers before any resource runs).
pub const UNAUTHORIZED_BODY: &str = "Client must be authenticated to access this resource.";

/// A Jira error answer.
#[derive(Debug)]
pub struct JiraError {
    status: StatusCode,
    messages: Vec<String>,
    errors: Map<String, Value>,
}

impl JiraError {
    /// `status` with `errorMessages: [message]`.
    pub fn message(status: StatusCode, message: impl Into<String>) -> Self {
        JiraError { status, messages: vec![message.into()], errors: Map::new() }
    }

    /// A 400 with one field error.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Map::new();
        errors.insert(field.into(), Value::String(message.into()));
        JiraError { status: StatusCode::BAD_REQUEST, messages: vec![], errors }
    }

    /// A 400 with several field errors.
    pub fn fields(errors: Map<String, Value>) -> Self {
        JiraError { status: StatusCode::BAD_REQUEST, messages: vec![], errors }
    }

    /// A 400 with `errorMessages: [message]`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::message(StatusCode::BAD_REQUEST, message)
    }

    /// The 404 for an unknown or hidden issue.
    pub fn issue_not_found() -> Self {
        Self::message(StatusCode::NOT_FOUND, ISSUE_NOT_FOUND)
    }

    /// A 400 for a body that is not JSON (Jira quotes the parser).
    pub fn unreadable(e: &serde_json::Error) -> Self {
        Self::bad_request(format!("Unexpected character in the request body: {e}"))
    }
}

impl IntoResponse for JiraError {
    fn into_response(self) -> Response {
        body(self.status, &json!({"errorMessages": self.messages, "errors": self.errors}))
    }
}

/// A JSON answer with `status`.
pub fn body(status: StatusCode, value: &Value) -> Response {
    let mut resp = (status, value.to_string()).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json;charset=UTF-8"));
    resp
}

/// The answer for refused credentials.
pub fn unauthorized() -> Response {
    let mut resp = (StatusCode::UNAUTHORIZED, UNAUTHORIZED_BODY).into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain;charset=UTF-8"));
    h.insert("x-seraph-loginreason", HeaderValue::from_static("AUTHENTICATED_FAILED"));
    h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"protected-area\""));
    resp
}
